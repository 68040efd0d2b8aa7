"""Checkpoints: the weights plus everything needed to use them (model arguments, index maps,
params), as plain tensors and containers, so they load with ``torch.load(weights_only=True)``
and never unpickle code."""

import dataclasses
import io
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from omniglot_mtl.core.atomic import atomic_file
from omniglot_mtl.core.errors import InputError
from omniglot_mtl.core.tasks import ALPHABET, CHARACTER, MAPS
from omniglot_mtl.models.backbones import BACKBONES
from omniglot_mtl.models.inference import SHIFTS
from omniglot_mtl.models.networks import MODELS, ModelConfig, build_model

# 2: a multi-output checkpoint names its alphabet read-out (inference.READ_OUTS).
# 3: the model config says the alphabet head's hidden width (models.ModelConfig).
# 4: the convnet's first block has 16 channels (32 before), and the checkpoint says how many
#    views of a drawing to read (inference.SHIFTS), as training chose.
FORMAT = 4


def save_checkpoint(
    path: Path,
    config: ModelConfig,
    state_dict: dict,
    alphabets: dict,
    characters: dict,
    params: dict,
    extra: dict,
) -> None:
    checkpoint = {
        "format": FORMAT,
        "config": config.to_dict(),
        "state_dict": state_dict,
        MAPS[ALPHABET]: alphabets,
        MAPS[CHARACTER]: characters,
        "params": params,
        **extra,
    }
    # torch.save names the zip's top folder after the file it writes to, here a random temporary
    # name; saving to memory first makes the bytes depend on the contents only, so that a
    # reproduced training gives a byte-identical checkpoint (and DVC sees no change).
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    with atomic_file(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """The model (in eval mode, on ``device``) and the whole checkpoint dict.

    Each way a file can fail says what it is: not a checkpoint at all, a checkpoint of another
    format version, or one whose weights do not fit the model its config describes (damaged, or
    edited). Anything else is a bug and keeps its traceback.
    """
    path = Path(path)
    if path.is_file() and not zipfile.is_zipfile(path):  # an image, a text file, an old format
        raise InputError(f"{path}: not a checkpoint (a checkpoint is a zip archive written by torch.save)")
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{path}: checkpoint not found") from None
    except pickle.UnpicklingError:
        # Never PyTorch's own advice here, which is to load it with weights_only=False: that
        # would run whatever code the file holds.
        raise InputError(
            f"{path}: not a checkpoint of this project (it holds objects other than tensors and "
            "plain containers, which are not loaded)"
        ) from None
    except (RuntimeError, OSError, EOFError) as err:  # a truncated or damaged zip
        raise InputError(f"{path}: cannot be read as a checkpoint ({err})".splitlines()[0]) from None
    if not isinstance(checkpoint, dict) or not {"format", "config", "state_dict"} <= set(checkpoint):
        raise InputError(f"{path}: not a checkpoint of this project (a torch file without its keys)")
    if checkpoint["format"] != FORMAT:
        raise InputError(
            f"{path}: checkpoint format {checkpoint['format']!r}; this version of the project reads "
            f"format {FORMAT} (retrain with dvc repro, or use the version that wrote it)"
        )
    views = checkpoint.get("views")
    if type(views) is not int or views not in (1, len(SHIFTS)):
        raise InputError(f"{path}: views {views!r}: 1 or {len(SHIFTS)}")
    config = _config(path, checkpoint["config"])
    model = build_model(config)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:  # missing, unexpected or mis-shaped weights
        raise InputError(
            f"{path}: its weights do not fit the {config.kind} model its config describes "
            f"({err})".splitlines()[0]
        ) from None
    return model.to(device).eval(), checkpoint


def _config(path: Path, raw) -> ModelConfig:
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    if not isinstance(raw, dict) or set(raw) != fields:
        raise InputError(f"{path}: its model config is not this version's (keys {sorted(fields)})")
    if raw["kind"] not in MODELS:
        raise InputError(f"{path}: model kind {raw['kind']!r} is not one of {list(MODELS)}")
    if raw["backbone"] not in BACKBONES:
        known = ", ".join(BACKBONES)
        raise InputError(
            f"{path}: backbone {raw['backbone']!r} is not known to this version (known: {known})"
        )
    return ModelConfig(**raw)
