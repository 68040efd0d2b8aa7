"""Checkpoints: the weights plus everything needed to use them (model arguments, index maps,
params), as plain tensors and containers, so they load with ``torch.load(weights_only=True)``
and never unpickle code."""

import io
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from .atomic import atomic_file
from .errors import InputError
from .models import ModelConfig, build_model

FORMAT = 1


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
        "alphabets": alphabets,
        "characters": characters,
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
    """The model (in eval mode, on ``device``) and the whole checkpoint dict."""
    path = Path(path)
    if path.is_file() and not zipfile.is_zipfile(path):  # an image, a text file, an old format
        raise InputError(f"{path}: not a checkpoint (a checkpoint is a zip archive written by torch.save)")
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
        config = ModelConfig(**checkpoint["config"])
        model = build_model(config)
        model.load_state_dict(checkpoint["state_dict"])
    except FileNotFoundError:
        raise InputError(f"{path}: checkpoint not found") from None
    except pickle.UnpicklingError:
        # Never PyTorch's own advice here, which is to load it with weights_only=False: that
        # would run whatever code the file holds.
        raise InputError(
            f"{path}: not a checkpoint of this project (it holds objects other than tensors and "
            "plain containers, which are not loaded)"
        ) from None
    except Exception as err:  # a damaged, foreign or tampered file: say which, not a traceback
        raise InputError(
            f"{path}: not a checkpoint of this project ({type(err).__name__}: {err})".splitlines()[0]
        ) from None
    return model.to(device).eval(), checkpoint
