"""The ``device`` param: auto | cpu | cuda | cuda:N | mps, checked against what is there;
``train.precision: auto``, which the device decides; and ``cuda.deterministic``."""

import os
import sys

import torch

from omniglot_mtl.core.errors import ParamError


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


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively: a CUDA GPU with bf16, a CPU with
    AVX512-BF16 or AMX (oneDNN's own check, which also honours an ONEDNN_MAX_CPU_ISA cap).
    Where it does not, bf16 autocast is emulated: about 12x slower than fp32 on an AVX2 CPU."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return False  # MPS: not measured here, so auto stays fp32


def resolve_precision(setting: str, device: torch.device) -> str:
    """The precision a run uses: ``auto`` is bf16 where the device computes it natively and fp32
    elsewhere; the machine alone decides, never its load. An explicit ``bf16`` where it is
    emulated runs as asked, after one warning line (from the first process of a machine)."""
    if setting == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    emulated = setting == "bf16" and device.type == "cpu" and not native_bf16(device)
    if emulated and os.environ.get("LOCAL_RANK", "0") == "0":  # one line per machine
        print(
            "warning: train.precision: bf16 is emulated on this CPU (no AVX512-BF16 or AMX), "
            "about 12x slower than fp32; set train.precision: auto (or fp32)",
            file=sys.stderr,
        )
    return setting


def configure_cuda(device: torch.device, deterministic: bool) -> None:
    """On a GPU, cuDNN's and cuBLAS's choice of algorithms: deterministic ones, so that a rerun on
    the same GPU model writes the same checkpoint bytes, or the fastest cuDNN finds by timing
    them in this run, whose picks (and so the order of their sums) can change from run to run.
    docs/performance.md, "On a GPU", measures what determinism costs. Nothing changes on other devices."""
    if device.type != "cuda":
        return
    if deterministic:
        # cuBLAS reads it when it starts, at the first matrix product, which comes later.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
