"""params.yaml as frozen dataclasses that pydantic validates when a stage reads them.

Each field's annotation is its rule: a strict type (YAML's ``true`` is no integer, ``"3"`` no
number) and a range, or a check against the fields above it. A wrong value fails with one
line that names its key, e.g. ``params.yaml: train.lr: must be > 0, got -1``: :func:`fault`
turns pydantic's first error into that line.
"""

import inspect
from collections.abc import Callable
from dataclasses import field, fields, is_dataclass
from pathlib import Path
from typing import Annotated

import pydantic
import yaml
from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass

from omniglot_mtl.core.errors import InputError, ParamError, did_you_mean
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

# Unknown keys are errors; .inf and .nan are no number any consumer takes; a default obeys the
# rules too (muon_lr: 0 with optimizer: muon is refused).
CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True)


def show(value) -> str:
    """A value as an error message quotes it: floats short, lists as YAML wrote them."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        value = list(value)
    return repr(value)


def rule(test: Callable[..., bool], message: str) -> AfterValidator:
    """A field's check: ``message`` (``{value}`` is the value given) unless ``test(value)``."""

    def check(value):
        if not test(value):
            raise ValueError(message.format(value=show(value)))
        return value

    return AfterValidator(check)


def between(low: float, high: float) -> AfterValidator:
    return rule(lambda v: low <= v <= high, f"must be between {low:g} and {high:g}, got {{value}}")


def not_one_of(value, choices) -> str | None:
    """Why ``value`` is not one of ``choices`` (suggesting the closest one), or None if it is."""
    if value in choices:
        return None
    return f"must be one of {list(choices)}, got {value!r}{did_you_mean(value, choices, quote=True)}"


def one_of(key: str, value, choices) -> None:
    """Refuse ``value`` unless it is one of ``choices``: the registries' names (training.check)."""
    message = not_one_of(value, choices)
    if message:
        raise ParamError(key, message)


def choice(choices) -> AfterValidator:
    def check(value):
        message = not_one_of(value, choices)
        if message:
            raise ValueError(message)
        return value

    return AfterValidator(check)


Seed = Annotated[
    StrictInt,
    rule(
        lambda v: 0 <= v <= MAX_SEED,
        "must be between 0 and 2^64 - 1 (what torch and numpy take), got {value}",
    ),
]
Drawers = Annotated[
    tuple[StrictInt, ...],
    rule(len, "must list at least one drawer"),
    rule(lambda ds: all(d >= 1 for d in ds), "drawer numbers start at 1, got {value}"),
]
Weight = Annotated[
    StrictFloat,
    # Only the weights' ratio matters to Adam; the total is summed in float32, where a weight
    # below 1e-6 of the other vanishes and one far above 1e6 overflows.
    rule(
        lambda v: v == 0 or 1 / MAX_WEIGHT <= v <= MAX_WEIGHT,
        f"must be 0 or between {1 / MAX_WEIGHT:g} and {MAX_WEIGHT:g}, got {{value}}",
    ),
]


def check_threads(value: int | str) -> int | str:
    if value == "auto" or (type(value) is int and 1 <= value <= MAX_WORKERS):
        return value
    raise ValueError(f"must be auto or a number from 1 to {MAX_WORKERS}, got {value!r}")


@dataclass(frozen=True, config=CONFIG)
class Split:
    val_drawers: Drawers = (15, 16, 17)
    test_drawers: Drawers = (18, 19, 20)

    @model_validator(mode="after")
    def _apart(self):
        both = sorted(set(self.val_drawers) & set(self.test_drawers))
        if both:
            raise ValueError(f"drawer(s) {both} listed in both val_drawers and test_drawers")
        return self

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


@dataclass(frozen=True, config=CONFIG)
class Synthetic:
    """Size of the procedural data set that ``data.source: synthetic`` generates."""

    alphabets: Annotated[StrictInt, Field(ge=2)] = 8
    characters: Annotated[StrictInt, Field(ge=2)] = 12  # per alphabet
    drawers: Annotated[StrictInt, between(3, 99)] = 20
    # The data's own seed, apart from the training ``seed``: a seed sweep retrains on the same data.
    seed: Seed = 0


@dataclass(frozen=True, config=CONFIG)
class Data:
    source: StrictStr = "synthetic"  # synthetic | omniglot | folder
    folder: Annotated[StrictStr, rule(bool, "is empty; it names a folder (default data/external)")] = (
        "data/external"  # source: folder; a dependency of index whatever the source
    )
    sets: Annotated[
        tuple[StrictStr, ...],
        rule(
            lambda s: s and set(s) <= set(OMNIGLOT_SETS) and len(set(s)) == len(s),
            f"must list some of {list(OMNIGLOT_SETS)}, each once, got {{value}}",
        ),
    ] = ("background",)
    mirror: StrictStr = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python"
    # What a backbone needs besides (e.g. the convnet's 16 px) is the backbone's own rule,
    # checked with model.backbone (training.check.check_registered).
    image_size: Annotated[StrictInt, between(*IMAGE_SIZES)] = 64
    split: Split = field(default_factory=Split)
    synthetic: Synthetic = field(default_factory=Synthetic)

    @field_validator("source")
    @classmethod
    def _source(cls, source: str) -> str:
        message = not_one_of(source, SOURCES)
        if message and ("/" in source or "\\" in source):  # a path, as data.source once took
            folder = f"for a folder, set data.source: folder and data.folder: {source}"
            message = f"{message.split('; did')[0]}; {folder}"
        if message:
            raise ValueError(message)
        return source

    @field_validator("sets")
    @classmethod
    def _one_set(cls, sets: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if info.data.get("source") == "synthetic" and sets != ("background",):
            raise ValueError(
                f"{list(sets)} does not apply to source synthetic, which makes one set; "
                "leave it at [background]"
            )
        return sets

    @field_validator("synthetic")
    @classmethod
    def _fits_memory(cls, synthetic: Synthetic, info: ValidationInfo) -> Synthetic:
        # Its size is known here: the index's arrays, in memory.
        size = info.data.get("image_size")
        if info.data.get("source") == "synthetic" and size:
            images = synthetic.alphabets * synthetic.characters * synthetic.drawers
            if images * size**2 > MAX_INDEX_BYTES:
                raise ValueError(
                    f"{images:,} drawings of {size}^2 bytes would hold {images * size**2 / 2**30:,.0f} GiB "
                    f"in memory; at most {MAX_INDEX_BYTES / 2**30:g} GiB"
                )
        return synthetic


@dataclass(frozen=True, config=CONFIG)
class Augment:
    """Random affine distortions of each training image, drawn per image, applied per batch.

    All 0 (the default) leaves the images as they are. Ranges are symmetric: a rotation of 10
    draws angles in [-10, 10] degrees, a scale of 0.1 factors in [0.9, 1.1].
    """

    rotation: Annotated[StrictFloat, between(0, 180)] = 0.0  # degrees
    shear: Annotated[StrictFloat, between(0, 45)] = 0.0  # degrees
    scale: Annotated[StrictFloat, between(0, 0.5)] = 0.0  # relative
    shift: Annotated[StrictFloat, between(0, 0.5)] = 0.0  # fraction of the image side

    @property
    def enabled(self) -> bool:
        return any((self.rotation, self.shear, self.scale, self.shift))


@dataclass(frozen=True, config=CONFIG)
class Train:
    epochs: Annotated[StrictInt, Field(ge=1)] = 10
    # A floor on the optimizer steps: more epochs where ``epochs`` would take fewer (a smaller
    # set), so that a recipe tuned in steps holds on any set size (loop.epochs_for). 0: off.
    min_steps: Annotated[StrictInt, Field(ge=0)] = 0
    batch_size: Annotated[StrictInt, Field(ge=1)] = 32
    # The peak learning rate under a schedule. Adam moves each weight by about lr a step: far
    # past 10, to inf in float32.
    lr: Annotated[StrictFloat, Field(gt=0, le=10)] = 0.001
    precision: Annotated[StrictStr, choice(PRECISIONS)] = "fp32"  # bf16: autocast; auto: bf16 where native
    optimizer: Annotated[StrictStr, choice(OPTIMIZERS)] = "adam"  # muon: adamw, Muon on the kernels
    # adamw and muon only. AdamW shrinks each weight by lr * weight_decay a step.
    weight_decay: Annotated[StrictFloat, Field(ge=0, le=1)] = 0.0
    muon_lr: StrictFloat = 0.0  # muon only: each convolution kernel's step, a fraction of its norm
    schedule: Annotated[StrictStr, choice(SCHEDULES)] = "constant"  # cosine: linear warm-up, cosine decay
    warmup_epochs: StrictFloat = 0.0  # cosine only
    label_smoothing: Annotated[StrictFloat, Field(ge=0, lt=1)] = 0.0
    augment: Augment = field(default_factory=Augment)
    threads: Annotated[int | str, PlainValidator(check_threads)] = "auto"  # per process: auto or a number

    @field_validator("weight_decay")
    @classmethod
    def _decoupled(cls, weight_decay: float, info: ValidationInfo) -> float:
        # Adam's own weight_decay is an L2 term scaled by the adaptive step: not what "weight
        # decay" means in a modern recipe, so it is not offered.
        if weight_decay and info.data.get("optimizer") == "adam":
            raise ValueError("needs optimizer: adamw or muon (decoupled weight decay)")
        return weight_decay

    @field_validator("muon_lr")
    @classmethod
    def _muon(cls, muon_lr: float, info: ValidationInfo) -> float:
        muon = info.data.get("optimizer") == "muon"
        if muon and not 0 < muon_lr <= 1:
            raise ValueError(f"must be > 0 and <= 1 with optimizer: muon, got {muon_lr:g}")
        if muon_lr and not muon:
            raise ValueError("needs optimizer: muon (or muon_lr: 0)")
        return muon_lr

    @field_validator("warmup_epochs")
    @classmethod
    def _warmup(cls, warmup: float, info: ValidationInfo) -> float:
        epochs = info.data.get("epochs", 1)
        if not 0 <= warmup <= epochs:
            raise ValueError(f"must be between 0 and epochs ({epochs}), got {warmup:g}")
        if warmup and info.data.get("schedule") != "cosine":
            raise ValueError("needs schedule: cosine")
        return warmup


@dataclass(frozen=True, config=CONFIG)
class Model:
    backbone: StrictStr = "seed"  # one of models.backbones.BACKBONES (training.check)
    # Multi-output only: the width of a hidden ReLU layer in the alphabet head; 0: one linear
    # layer, the notebook's (models.MultiOutputNet says why the alphabet head wants one).
    alphabet_hidden: Annotated[StrictInt, between(0, MAX_HIDDEN)] = 0


@dataclass(frozen=True, config=CONFIG)
class Loss:
    alpha_weight: Weight = 1.0
    char_weight: Weight = 1.0
    method: StrictStr = "static"  # one of weighting.methods.METHODS (training.check)
    normalize: StrictBool = False
    # Each weighting method's own hyperparameters, ``loss.<method>.<name>`` in params.yaml (e.g.
    # loss.dwa.temperature): {method: {name: value}}, checked against the method's constructor
    # by training.check.
    methods: dict[str, dict] = field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _gather_methods(cls, raw):
        """params.yaml's ``loss.<method>`` sections into ``methods`` (not itself a key there)."""
        if not isinstance(raw, dict):
            return raw
        own = {"alpha_weight", "char_weight", "method", "normalize"}
        sections = {k: v for k, v in raw.items() if k not in own and isinstance(v, dict)}
        return {k: v for k, v in raw.items() if k not in sections} | {"methods": sections}

    @model_validator(mode="after")
    def _trains_something(self):
        if self.alpha_weight == 0 and self.char_weight == 0:
            raise ValueError("alpha_weight and char_weight are both 0: nothing would be trained")
        return self

    @property
    def weights(self) -> dict[str, float]:
        return {ALPHABET: self.alpha_weight, CHARACTER: self.char_weight}


@dataclass(frozen=True, config=CONFIG)
class Cpu:
    # Arithmetic that Intel and AMD CPUs do alike, and train.threads: auto at 2, so that they
    # compute the same bytes (environment.apply_cpu_portable, docs/reproducibility.md).
    portable: StrictBool = True


@dataclass(frozen=True, config=CONFIG)
class Cuda:
    # Deterministic cuDNN and cuBLAS algorithms: the same checkpoint bytes on every rerun on one
    # GPU model (devices.configure_cuda). false: the fastest algorithms cuDNN finds in each run.
    deterministic: StrictBool = True


@dataclass(frozen=True, config=CONFIG)
class Params:
    """The whole of params.yaml. What the registries define (a backbone's name and sizes, a
    weighting method's hyperparameters, a device) is :mod:`omniglot_mtl.training.check`'s."""

    seed: Seed = 0
    device: StrictStr = "auto"  # checked against this machine by training.check
    cpu: Cpu = field(default_factory=Cpu)
    cuda: Cuda = field(default_factory=Cuda)
    data: Data = field(default_factory=Data)
    train: Train = field(default_factory=Train)
    model: Model = field(default_factory=Model)
    loss: Loss = field(default_factory=Loss)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``path``. Missing keys take the defaults above.

    The names the registries define are checked by the params check stage alone
    (:func:`omniglot_mtl.training.check.check_registered`), so that no other stage imports
    torch before ``cpu.portable`` caps it, nor depends on the model and weighting code.
    """
    raw = read_yaml(Path(path), "not found (run stages from the project root)")
    return from_dict({} if raw is None else raw)


def read_yaml(path: Path, missing: str):
    """The YAML file ``path``; a missing or malformed one is one :class:`InputError` naming it."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: {missing}") from None
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML: {err}".splitlines()[0]) from None


def from_dict(raw) -> Params:
    """Params from params.yaml's mapping; the first fault as one :class:`ParamError`."""
    try:
        return pydantic.TypeAdapter(Params).validate_python(raw)
    except pydantic.ValidationError as err:
        raise fault(err, Params) from None


def from_signature(parameters: dict[str, inspect.Parameter], raw, key: str) -> dict:
    """``raw`` validated by the annotations and defaults of the function ``parameters`` belong to
    (a weighting method's keyword-only arguments), strictly, as params.yaml's own fields."""
    fields_ = {name: (p.annotation, p.default) for name, p in parameters.items()}
    model = pydantic.create_model(key, __config__=CONFIG | ConfigDict(strict=True), **fields_)
    try:
        return dict(model.model_validate(raw))
    except pydantic.ValidationError as err:
        raise fault(err, model, key) from None


TYPES = {  # pydantic's error types -> what the value must be
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "tuple_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "dataclass_type": "must be a mapping",
}
BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def fault(err: pydantic.ValidationError, root: type, prefix: str = "") -> ParamError:
    """The first of ``err``'s errors as one line naming its key. ``root``: what was validated
    (for the keys an unknown one may have meant), found under ``prefix`` in params.yaml."""
    first = err.errors(include_url=False)[0]
    *parents, last = first["loc"] or ("",)
    key = prefix
    for part in first["loc"]:
        key = f"{key}[{part}]" if isinstance(part, int) else f"{key}.{part}" if key else str(part)
    kind, ctx, value = first["type"], first.get("ctx", {}), first["input"]
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        known = sorted(names(root, parents) - {"methods"})  # Loss.methods holds loss.<method>
        hint = did_you_mean(last, known)
        return ParamError(key, f"unknown key{hint} (known: {', '.join(known) or 'none'})")
    if kind == "value_error":
        return ParamError(key or "(top level)", str(ctx["error"]))
    bound = next((b for b in BOUNDS if b in ctx), None)
    if bound:
        return ParamError(key, f"must be {BOUNDS[bound]} {show(ctx[bound])}, got {show(value)}")
    must = TYPES.get(kind, first["msg"][:1].lower() + first["msg"][1:])
    return ParamError(key or "(top level)", f"{must}, got {show(value)}")


def names(cls: type, path) -> set[str]:
    """The field names of the section of ``cls`` at ``path`` (a dataclass's or a model's)."""
    for part in path:
        cls = {f.name: f.type for f in fields(cls)}[part]
    if is_dataclass(cls):
        return {f.name for f in fields(cls)}
    return set(cls.model_fields)


def as_dict(params: Params) -> dict:
    """Params as plain JSON-able data in params.yaml's shape (tuples become lists), e.g. to store
    in a checkpoint."""
    plain = pydantic.TypeAdapter(Params).dump_python(params, mode="json")
    plain["loss"] |= plain["loss"].pop("methods")  # loss.<method> sections where params.yaml has them
    return plain
