"""The ``device`` param: auto | cpu | cuda | cuda:N | mps, checked against what is there;
``train.precision: auto``, which the device decides; and the CPU's memory allocator."""

import ctypes
import os
import sys

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


# glibc's mallopt parameters (malloc.h); 32 MB is the ceiling of glibc's own adaptive threshold
# on 64 bits.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, MAX_MMAP_THRESHOLD = -1, -3, 32 << 20


def keep_freed_cpu_memory() -> bool:
    """Make glibc keep the memory PyTorch frees for the next allocation, instead of handing it
    back to the kernel; return whether it took the settings.

    A training step allocates and frees the same feature maps and gradients every time, several
    MB each. glibc's defaults map blocks that large afresh and trim freed memory off the heap,
    so the steps keep page-faulting memory in again. With blocks up to 32 MB served from the
    heap and the heap never trimmed, a training stage of the seed network on the background set
    took 0.18-0.24 million minor page faults instead of 1.2-2.3 million (2-core EPYC, AVX2 cap).
    A bare step took 12.6-13.8 ms instead of 15.4 ms; whole multi-output stages trained at
    1,845-2,201 images/s (mean 2,013) against 1,809-2,088 (mean 1,906), five alternating runs
    each, within this machine's run-to-run spread. Either setting alone made the bare step
    slower than neither. jemalloc or TCMalloc, which PyTorch's performance tuning guide
    suggests preloading, would do the same.

    The arithmetic is the same: PyTorch aligns every block to 64 bytes wherever it comes from,
    and the checkpoints are byte-identical. The cost is that the process keeps its peak memory
    until it exits. Nothing happens elsewhere than Linux with glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MAX_MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))
