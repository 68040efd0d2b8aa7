"""The ``device`` param: auto | cpu | cuda | cuda:N | mps, checked against what is there."""

import torch

from .params import ParamError


def available_devices() -> list[str]:
    names = ["cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        names.append("mps")
    return names


def resolve_device(name: str) -> torch.device:
    """The torch device for ``name``; one that is not there fails at once, listing what is."""
    available = available_devices()
    if name == "auto":
        return torch.device("cuda" if "cuda" in available else "mps" if "mps" in available else "cpu")
    if name not in available:
        raise ParamError("device", f"{name!r} is not available here; available: auto, {', '.join(available)}")
    return torch.device(name)
