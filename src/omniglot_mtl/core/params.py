"""params.yaml as frozen dataclasses, validated once when a stage starts.

A wrong value fails here with one line that names its key, e.g.
``params.yaml: train.lr: must be > 0, got -1``.
"""

import contextlib
import dataclasses
import difflib
import inspect
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from omniglot_mtl.core.errors import InputError, ParamError
from omniglot_mtl.core.tasks import ALPHABET, CHARACTER

SOURCES = ("synthetic", "omniglot", "folder")
OMNIGLOT_SETS = ("background", "evaluation")
PRECISIONS = ("fp32", "bf16", "auto")
OPTIMIZERS = ("adam", "adamw", "muon")
SCHEDULES = ("constant", "cosine")
# The seeds both torch.manual_seed and numpy's generators take: [0, 2^64).
MAX_SEED = 2**64 - 1
# Omniglot's drawings are 105 px. At 256 px the background set's index holds 19,280 x 256^2
# bytes (1.3 GB) and the seed network's first map at batch 32 is 134 MB; 20,000 px would ask
# numpy for 89 GB before training started.
IMAGE_SIZES = (8, 256)
MAX_INDEX_BYTES = 8 * 2**30  # the synthetic set decoded (both official sets at 256 px: 2 GiB)
MAX_WEIGHT = 1e6  # a static loss weight
MAX_HIDDEN = 65536  # a head's hidden width: on the convnet's 1,024 features, 256 MiB of weights
# Threads: more than any one machine's cores. torch.set_num_threads overflows past
# 2^31, and 100,000 threads crashed the process at exit.
MAX_WORKERS = 1024


def one_of(key: str, value, choices) -> None:
    """Refuse ``value`` unless it is one of ``choices``, suggesting the closest one."""
    if value in choices:
        return
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ParamError(key, f"must be one of {list(choices)}, got {value!r}{hint}")


@dataclass(frozen=True)
class Split:
    val_drawers: tuple[int, ...] = (15, 16, 17)
    test_drawers: tuple[int, ...] = (18, 19, 20)

    def validate(self, key: str) -> None:
        for name in ("val_drawers", "test_drawers"):
            drawers = getattr(self, name)
            if not drawers:
                raise ParamError(f"{key}.{name}", "must list at least one drawer")
            if any(d < 1 for d in drawers):
                raise ParamError(f"{key}.{name}", f"drawer numbers start at 1, got {list(drawers)}")
        both = sorted(set(self.val_drawers) & set(self.test_drawers))
        if both:
            raise ParamError(key, f"drawer(s) {both} listed in both val_drawers and test_drawers")

    def check_drawers(self, present: set[int]) -> None:
        """Refuse a split the data cannot fill: a val or test drawer no drawing is by, or no
        drawer left to train on. ``present``: the drawer numbers of the data's drawings (the
        params check reads them off the source, the index stage off its scan)."""
        for name in ("val_drawers", "test_drawers"):
            missing = sorted(set(getattr(self, name)) - present)
            if missing:
                has = f"the data has drawers {min(present)}..{max(present)}"
                raise ParamError(f"data.split.{name}", f"no drawings by drawer(s) {missing} ({has})")
        if not present - set(self.val_drawers) - set(self.test_drawers):
            raise ParamError("data.split", "val and test take every drawer; none is left to train")


@dataclass(frozen=True)
class Synthetic:
    """Size of the procedural data set that ``data.source: synthetic`` generates."""

    alphabets: int = 8
    characters: int = 12  # per alphabet
    drawers: int = 20
    # The data's own seed, apart from the training ``seed``: a seed sweep retrains on the same data.
    seed: int = 0

    def validate(self, key: str) -> None:
        for name in ("alphabets", "characters"):
            if getattr(self, name) < 2:
                raise ParamError(f"{key}.{name}", f"must be >= 2, got {getattr(self, name)}")
        if not 3 <= self.drawers <= 99:
            raise ParamError(f"{key}.drawers", f"must be between 3 and 99, got {self.drawers}")
        check_seed(f"{key}.seed", self.seed)


@dataclass(frozen=True)
class Data:
    source: str = "synthetic"  # synthetic | omniglot | folder
    folder: str = "data/external"  # source: folder; a dependency of index whatever the source
    sets: tuple[str, ...] = ("background",)
    mirror: str = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python"
    image_size: int = 64
    split: Split = field(default_factory=Split)
    synthetic: Synthetic = field(default_factory=Synthetic)

    def validate(self, key: str) -> None:
        if self.source not in SOURCES:
            hint = ""
            if "/" in self.source or "\\" in self.source:  # a path, as data.source once took
                hint = f"; for a folder, set {key}.source: folder and {key}.folder: {self.source}"
            raise ParamError(f"{key}.source", f"must be one of {list(SOURCES)}, got {self.source!r}{hint}")
        if not self.folder:
            raise ParamError(f"{key}.folder", "is empty; it names a folder (default data/external)")
        unknown = [s for s in self.sets if s not in OMNIGLOT_SETS]
        if unknown or not self.sets or len(set(self.sets)) != len(self.sets):
            raise ParamError(
                f"{key}.sets", f"must list some of {list(OMNIGLOT_SETS)}, each once, got {list(self.sets)}"
            )
        if self.source == "synthetic" and self.sets != ("background",):
            raise ParamError(
                f"{key}.sets",
                f"{list(self.sets)} does not apply to source synthetic, which makes one set; "
                "leave it at [background]",
            )
        # What a backbone needs besides (e.g. the convnet's 16 px) is the backbone's own rule,
        # checked with model.backbone (training.check.check_registered).
        low, high = IMAGE_SIZES
        if not low <= self.image_size <= high:
            raise ParamError(f"{key}.image_size", f"must be between {low} and {high}, got {self.image_size}")
        self.split.validate(f"{key}.split")
        self.synthetic.validate(f"{key}.synthetic")
        if self.source == "synthetic":  # its size is known here: the index's arrays, in memory
            synthetic = self.synthetic
            images = synthetic.alphabets * synthetic.characters * synthetic.drawers
            if images * self.image_size**2 > MAX_INDEX_BYTES:
                gb = images * self.image_size**2 / 2**30
                raise ParamError(
                    f"{key}.synthetic",
                    f"{images:,} drawings of {self.image_size}^2 bytes would hold {gb:,.0f} GiB in memory; "
                    f"at most {MAX_INDEX_BYTES / 2**30:g} GiB",
                )


@dataclass(frozen=True)
class Augment:
    """Random affine distortions of each training image, drawn per image, applied per batch.

    All 0 (the default) leaves the images as they are. Ranges are symmetric: a rotation of 10
    draws angles in [-10, 10] degrees, a scale of 0.1 factors in [0.9, 1.1].
    """

    rotation: float = 0.0  # degrees
    shear: float = 0.0  # degrees
    scale: float = 0.0  # relative
    shift: float = 0.0  # fraction of the image side

    def validate(self, key: str) -> None:
        for name, high in (("rotation", 180.0), ("shear", 45.0), ("scale", 0.5), ("shift", 0.5)):
            value = getattr(self, name)
            if not 0 <= value <= high:
                raise ParamError(f"{key}.{name}", f"must be between 0 and {high:g}, got {value:g}")

    @property
    def enabled(self) -> bool:
        return any((self.rotation, self.shear, self.scale, self.shift))


@dataclass(frozen=True)
class Train:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 0.001  # the peak learning rate under a schedule
    precision: str = "fp32"  # fp32 | bf16 (autocast) | auto (bf16 where native, else fp32)
    optimizer: str = "adam"  # adam | adamw (decoupled weight decay) | muon (adamw, Muon kernels)
    weight_decay: float = 0.0  # adamw and muon only
    muon_lr: float = 0.0  # muon only: each convolution kernel's step, a fraction of its norm
    schedule: str = "constant"  # constant | cosine (linear warm-up, then cosine decay to 0)
    warmup_epochs: float = 0.0  # cosine only
    label_smoothing: float = 0.0
    augment: Augment = field(default_factory=Augment)
    threads: int | str = "auto"  # intra-op threads per process: auto or a number

    def validate(self, key: str) -> None:
        if self.epochs < 1:
            raise ParamError(f"{key}.epochs", f"must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ParamError(f"{key}.batch_size", f"must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ParamError(f"{key}.lr", f"must be > 0, got {self.lr}")
        if self.lr > 10:  # Adam moves each weight by about lr a step; far past 10, to inf in float32
            raise ParamError(f"{key}.lr", f"must be <= 10, got {self.lr:g}")
        one_of(f"{key}.precision", self.precision, PRECISIONS)
        one_of(f"{key}.optimizer", self.optimizer, OPTIMIZERS)
        if self.weight_decay < 0:
            raise ParamError(f"{key}.weight_decay", f"must be >= 0, got {self.weight_decay:g}")
        if self.weight_decay > 1:  # AdamW shrinks each weight by lr * weight_decay a step
            raise ParamError(f"{key}.weight_decay", f"must be <= 1, got {self.weight_decay:g}")
        if self.weight_decay and self.optimizer == "adam":
            # Adam's own weight_decay is an L2 term scaled by the adaptive step: not what
            # "weight decay" means in a modern recipe, so it is not offered.
            raise ParamError(f"{key}.weight_decay", "needs optimizer: adamw or muon (decoupled weight decay)")
        if self.optimizer == "muon" and not 0 < self.muon_lr <= 1:
            raise ParamError(
                f"{key}.muon_lr", f"must be > 0 and <= 1 with optimizer: muon, got {self.muon_lr:g}"
            )
        if self.muon_lr and self.optimizer != "muon":
            raise ParamError(f"{key}.muon_lr", "needs optimizer: muon (or muon_lr: 0)")
        one_of(f"{key}.schedule", self.schedule, SCHEDULES)
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ParamError(
                f"{key}.warmup_epochs",
                f"must be between 0 and epochs ({self.epochs}), got {self.warmup_epochs:g}",
            )
        if self.warmup_epochs and self.schedule != "cosine":
            raise ParamError(f"{key}.warmup_epochs", "needs schedule: cosine")
        if not 0 <= self.label_smoothing < 1:
            raise ParamError(f"{key}.label_smoothing", f"must be in [0, 1), got {self.label_smoothing:g}")
        self.augment.validate(f"{key}.augment")
        if self.threads != "auto" and not (
            isinstance(self.threads, int) and 1 <= self.threads <= MAX_WORKERS
        ):
            raise ParamError(
                f"{key}.threads", f"must be auto or a number from 1 to {MAX_WORKERS}, got {self.threads!r}"
            )


@dataclass(frozen=True)
class Model:
    backbone: str = "seed"
    # Multi-output only: the width of a hidden ReLU layer in the alphabet head; 0: one linear
    # layer, the notebook's (models.MultiOutputNet says why the alphabet head wants one).
    alphabet_hidden: int = 0

    def validate(self, key: str) -> None:
        if not 0 <= self.alphabet_hidden <= MAX_HIDDEN:
            raise ParamError(
                f"{key}.alphabet_hidden", f"must be between 0 and {MAX_HIDDEN}, got {self.alphabet_hidden}"
            )


@dataclass(frozen=True)
class Loss:
    alpha_weight: float = 1.0
    char_weight: float = 1.0
    method: str = "static"
    normalize: bool = False
    # Each weighting method's own hyperparameters, ``loss.<method>.<name>`` in params.yaml (e.g.
    # loss.dwa.temperature): {method: {name: value}}, checked against the method's constructor.
    methods: dict[str, dict] = field(default_factory=dict)

    def validate(self, key: str) -> None:
        for name in ("alpha_weight", "char_weight"):
            # Only the weights' ratio matters to Adam; the total is summed in float32, where a
            # weight below 1e-6 of the other vanishes and one far above 1e6 overflows.
            value = getattr(self, name)
            if value != 0 and not 1 / MAX_WEIGHT <= value <= MAX_WEIGHT:
                raise ParamError(
                    f"{key}.{name}",
                    f"must be 0 or between {1 / MAX_WEIGHT:g} and {MAX_WEIGHT:g}, got {value:g}",
                )
        if self.alpha_weight == 0 and self.char_weight == 0:
            raise ParamError(key, "alpha_weight and char_weight are both 0: nothing would be trained")

    @property
    def weights(self) -> dict[str, float]:
        return {ALPHABET: self.alpha_weight, CHARACTER: self.char_weight}


@dataclass(frozen=True)
class Cpu:
    # Arithmetic that Intel and AMD CPUs do alike, and train.threads: auto at 2, so that they
    # compute the same bytes (environment.apply_cpu_portable, docs/reproducibility.md).
    portable: bool = True


@dataclass(frozen=True)
class Cuda:
    # Deterministic cuDNN and cuBLAS algorithms: the same checkpoint bytes on every rerun on one
    # GPU model (devices.configure_cuda). false: the fastest algorithms cuDNN finds in each run.
    deterministic: bool = True


@dataclass(frozen=True)
class Params:
    seed: int = 0
    device: str = "auto"
    cpu: Cpu = field(default_factory=Cpu)
    cuda: Cuda = field(default_factory=Cuda)
    data: Data = field(default_factory=Data)
    train: Train = field(default_factory=Train)
    model: Model = field(default_factory=Model)
    loss: Loss = field(default_factory=Loss)

    def validate(self) -> None:
        """Each section's own rules; what the registries define (a backbone's name and sizes, a
        weighting method's hyperparameters, a device) is :mod:`omniglot_mtl.training.check`'s."""
        check_seed("seed", self.seed)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if hasattr(value, "validate"):
                value.validate(f.name)


def check_seed(key: str, seed: int) -> None:
    if not 0 <= seed <= MAX_SEED:
        raise ParamError(key, f"must be between 0 and 2^64 - 1 (what torch and numpy take), got {seed}")


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read, type-check and validate ``path``. Missing keys take the defaults above.

    The names the registries define are checked by the params check stage alone
    (:func:`omniglot_mtl.training.check.check_registered`), so that no other stage imports
    torch before ``cpu.portable`` caps it, nor depends on the model and weighting code.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise InputError(f"{path}: not found (run stages from the project root)") from None
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML: {err}".splitlines()[0]) from None
    params = from_dict(Params, raw, "")
    params.validate()
    return params


def from_dict(cls, raw, key: str):
    """Build dataclass ``cls`` from a mapping, naming the key of any unknown or mistyped value."""
    if not isinstance(raw, dict):
        raise ParamError(key or "(top level)", f"must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    if cls is Loss:  # a method's own section, loss.<method>: kept as given, checked by training.check
        raw = dict(raw)
        if "methods" in raw:  # the field that holds those sections, not a key of params.yaml
            raise ParamError(_join(key, "methods"), "unknown key; a method's settings go in loss.<method>")
        raw["methods"] = {k: raw.pop(k) for k in list(raw) if k not in names and isinstance(raw[k], dict)}
    unknown = sorted(set(raw) - names)
    if unknown:
        shown = names - {"methods"}  # Loss.methods holds the loss.<method> sections
        close = difflib.get_close_matches(unknown[0], shown, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ParamError(_join(key, unknown[0]), f"unknown key{hint} (known: {', '.join(sorted(shown))})")
    values = {name: _convert(hints[name], raw[name], _join(key, name)) for name in names if name in raw}
    return cls(**values)


def from_signature(parameters: dict[str, inspect.Parameter], raw: dict, key: str) -> dict:
    """``raw`` converted by the annotations of the function ``parameters`` it will be passed to."""
    unknown = sorted(set(raw) - set(parameters))
    if unknown:
        close = difflib.get_close_matches(unknown[0], parameters, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        known = ", ".join(parameters) or "none"
        raise ParamError(_join(key, unknown[0]), f"unknown key{hint} (known: {known})")
    return {
        name: _convert(parameters[name].annotation, value, _join(key, name)) for name, value in raw.items()
    }


def _convert(hint, value, key: str):
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, key)
    if typing.get_origin(hint) is dict:
        return dict(value)
    if typing.get_origin(hint) is tuple:
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        if not isinstance(value, list | tuple):
            raise ParamError(key, f"must be a list, got {value!r}")
        return tuple(_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if isinstance(hint, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(options) > 1:  # e.g. int | str for "auto" or a number
            for option in options:
                with contextlib.suppress(ParamError):
                    return _convert(option, value, key)
            names = " or ".join({int: "an integer", float: "a number", str: "a string"}[o] for o in options)
            raise ParamError(key, f"must be {names}, got {value!r}")
        hint = options[0]
    # bool is an int in Python; reject it where a number is meant, and vice versa.
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamError(key, f"must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamError(key, f"must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParamError(key, f"must be a number, got {value!r}")
        if not math.isfinite(value):  # .inf or .nan in YAML: no consumer of a number takes them
            raise ParamError(key, f"must be a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ParamError(key, f"must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported parameter type {hint} for {key}")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def as_dict(params) -> dict:
    """Params as plain JSON-able data in params.yaml's shape (tuples become lists), e.g. to store
    in a checkpoint."""
    plain = _plain(dataclasses.asdict(params))
    if "loss" in plain:  # loss.<method> sections where params.yaml has them
        plain["loss"] |= plain["loss"].pop("methods")
    return plain


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj
