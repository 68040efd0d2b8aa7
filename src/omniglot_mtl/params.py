"""params.yaml as frozen dataclasses, validated once when a stage starts.

A wrong value fails here with one line that names its key, e.g.
``params.yaml: train.lr: must be > 0, got -1``.
"""

import ast
import contextlib
import dataclasses
import difflib
import functools
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import InputError
from .tasks import ALPHABET, CHARACTER

SOURCES = ("synthetic", "omniglot", "folder")
OMNIGLOT_SETS = ("background", "evaluation")
PRECISIONS = ("fp32", "bf16", "auto")
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine")


@functools.cache
def registered(module: str) -> dict[str, dict]:
    """What ``omniglot_mtl/<module>.py`` registers with ``@register("name", key=value, ...)``:
    ``{name: {key: value}}``, read from its source, so that the params check learns the valid
    backbones and loss weighting methods from where they are defined without importing torch."""
    tree = ast.parse((Path(__file__).parent / f"{module}.py").read_text(encoding="utf-8"))
    found = {}
    for node in ast.walk(tree):
        for deco in getattr(node, "decorator_list", []):
            if isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "register":
                name = ast.literal_eval(deco.args[0])
                found[name] = {k.arg: ast.literal_eval(k.value) for k in deco.keywords}
    return found


class ParamError(InputError):
    def __init__(self, key: str, message: str):
        super().__init__(f"params.yaml: {key}: {message}")
        self.key = key


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


@dataclass(frozen=True)
class Data:
    source: str = "synthetic"  # synthetic | omniglot | folder
    folder: str = "data/external"  # source: folder; a dependency of fetch whatever the source
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
        # The seed network's Linear takes 16*(S/2)^2 features, so S must be even; a backbone may
        # need more (its min_image_size, checked with model.backbone).
        if self.image_size < 8 or self.image_size % 2:
            raise ParamError(f"{key}.image_size", f"must be an even number >= 8, got {self.image_size}")
        self.split.validate(f"{key}.split")
        self.synthetic.validate(f"{key}.synthetic")


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
    optimizer: str = "adam"  # adam | adamw (decoupled weight decay)
    weight_decay: float = 0.0  # adamw only
    schedule: str = "constant"  # constant | cosine (linear warm-up, then cosine decay to 0)
    warmup_epochs: float = 0.0  # cosine only
    label_smoothing: float = 0.0
    augment: Augment = field(default_factory=Augment)
    # Processes on this machine (DistributedDataParallel); under torchrun the launcher decides.
    processes: int = 1
    threads: int | str = "auto"  # intra-op threads per process: auto or a number

    def validate(self, key: str) -> None:
        if self.epochs < 1:
            raise ParamError(f"{key}.epochs", f"must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ParamError(f"{key}.batch_size", f"must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ParamError(f"{key}.lr", f"must be > 0, got {self.lr}")
        one_of(f"{key}.precision", self.precision, PRECISIONS)
        one_of(f"{key}.optimizer", self.optimizer, OPTIMIZERS)
        if self.weight_decay < 0:
            raise ParamError(f"{key}.weight_decay", f"must be >= 0, got {self.weight_decay:g}")
        if self.weight_decay and self.optimizer != "adamw":
            # Adam's own weight_decay is an L2 term scaled by the adaptive step: not what
            # "weight decay" means in a modern recipe, so it is not offered.
            raise ParamError(f"{key}.weight_decay", "needs optimizer: adamw (decoupled weight decay)")
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
        if self.processes < 1:
            raise ParamError(f"{key}.processes", f"must be >= 1, got {self.processes}")
        if self.batch_size % self.processes:
            raise ParamError(
                f"{key}.batch_size",
                f"{self.batch_size} is not a multiple of {key}.processes ({self.processes}); "
                "each process takes an equal share of a batch",
            )
        if self.threads != "auto" and not (isinstance(self.threads, int) and self.threads >= 1):
            raise ParamError(f"{key}.threads", f"must be auto or a number >= 1, got {self.threads!r}")


@dataclass(frozen=True)
class Model:
    backbone: str = "seed"


@dataclass(frozen=True)
class Loss:
    alpha_weight: float = 1.0
    char_weight: float = 1.0
    method: str = "static"
    normalize: bool = False

    def validate(self, key: str) -> None:
        for name in ("alpha_weight", "char_weight"):
            if getattr(self, name) < 0:
                raise ParamError(f"{key}.{name}", f"must be >= 0, got {getattr(self, name)}")
        if self.alpha_weight == 0 and self.char_weight == 0:
            raise ParamError(key, "alpha_weight and char_weight are both 0: nothing would be trained")

    @property
    def weights(self) -> dict[str, float]:
        return {ALPHABET: self.alpha_weight, CHARACTER: self.char_weight}


@dataclass(frozen=True)
class Cpu:
    # Cap the instruction sets at AVX2 and train.threads: auto at 2, so that x86-64 CPUs of
    # different families compute the same bytes (environment.py, docs/reproducibility.md).
    portable: bool = True


@dataclass(frozen=True)
class Params:
    seed: int = 0
    device: str = "auto"
    cpu: Cpu = field(default_factory=Cpu)
    data: Data = field(default_factory=Data)
    train: Train = field(default_factory=Train)
    model: Model = field(default_factory=Model)
    loss: Loss = field(default_factory=Loss)

    def validate(self, registries: bool = True) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if hasattr(value, "validate"):
                value.validate(f.name)
        if registries:
            self.validate_names()

    def validate_names(self) -> None:
        """The names defined by registries (backbones.py, weighting.py), and what they imply."""
        one_of("model.backbone", self.model.backbone, registered("backbones"))
        one_of("loss.method", self.loss.method, registered("weighting"))
        backbone, size = self.model.backbone, self.data.image_size
        smallest = registered("backbones")[backbone].get("min_image_size", 8)
        if size < smallest:
            raise ParamError(
                "data.image_size", f"must be >= {smallest} for model.backbone: {backbone}, got {size}"
            )


# The modules whose @register names validate_names reads: dependencies of every stage that asks.
REGISTRIES = ("backbones", "weighting")


def load_params(path: str | Path = "params.yaml", registries: bool = True) -> Params:
    """Read, type-check and validate ``path``. Missing keys take the defaults above.

    ``registries=False`` leaves out the names that backbones.py and weighting.py define: the
    data stages pass it, so that editing a model file does not make them (and so every stage)
    rerun; the params check before them checked the names already.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise InputError(f"{path}: not found (run stages from the project root)") from None
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML: {err}".splitlines()[0]) from None
    params = from_dict(Params, raw, "")
    params.validate(registries)
    return params


def from_dict(cls, raw, key: str):
    """Build dataclass ``cls`` from a mapping, naming the key of any unknown or mistyped value."""
    if not isinstance(raw, dict):
        raise ParamError(key or "(top level)", f"must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        close = difflib.get_close_matches(unknown[0], names, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ParamError(_join(key, unknown[0]), f"unknown key{hint} (known: {', '.join(sorted(names))})")
    values = {name: _convert(hints[name], raw[name], _join(key, name)) for name in names if name in raw}
    return cls(**values)


def _convert(hint, value, key: str):
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, key)
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
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ParamError(key, f"must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported parameter type {hint} for {key}")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def as_dict(params) -> dict:
    """Params as plain JSON-able data (tuples become lists), e.g. to store in a checkpoint."""
    return _plain(dataclasses.asdict(params))


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj
