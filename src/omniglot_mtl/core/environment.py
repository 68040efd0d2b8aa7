"""What a result was made with, and ``cpu.portable``, which makes CPU families agree.

Floating-point results depend on the library versions, the instruction sets oneDNN, MKL and
PyTorch's kernels pick (and so the order of their sums) and the thread count. The same code,
params and data give byte-identical checkpoints where those agree. A checkpoint records exactly
those facts (:func:`determinants`) and nothing else of the machine, so that two machines that
compute the same bytes write the same file.

No torch at import: ``apply_cpu_portable`` must run before torch is imported.
"""

import ctypes
import os
import platform
import sys
from importlib.metadata import version
from pathlib import Path

# cpu.portable: arithmetic that x86-64 CPUs of both vendors do alike (docs/reproducibility.md).
# oneDNN, MKL and PyTorch's own kernels read these variables once, when they first compute.
PORTABLE_CAPS = {
    # Hides AVX512-BF16 and AMX, so that train.precision: auto is fp32 on every CPU.
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    # MKL's matrix products: COMPATIBLE is the one branch MKL promises to compute alike on Intel
    # and AMD. Under AVX2, an AMD CPU runs MKL's AUTO branch instead, with its own kernels.
    "MKL_CBWR": "COMPATIBLE",
    # PyTorch's own kernels (pooling, ELU, losses, Adam): the same code on every CPU with AVX2.
    "ATEN_CPU_CAPABILITY": "avx2",
}
# ... and one thread count everywhere: threads split the reductions, and so change the bytes.
PORTABLE_THREADS = 2


def apply_cpu_portable(portable: bool) -> None:
    """With ``portable``, set :data:`PORTABLE_CAPS` for this process and those it starts, then
    import torch and switch its convolutions to PyTorch's own (im2col and MKL's GEMM).

    oneDNN's convolutions choose their blocking, and so the order of their sums, from the
    CPU's cache sizes; NNPACK's too, and it ignores the caps. With them and ``MKL_CBWR=AVX2``,
    an Intel Xeon and an AMD EPYC wrote other weights (``omniglot-mtl-fingerprint`` names the
    operations a CPU computes otherwise). A stage calls this right after reading its params,
    before anything imports torch: a variable set later may be read too late by one library and
    in time by another. On a CPU that is not x86-64 (an ARM Mac) there is nothing to cap;
    threads are still fixed.
    """
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    if not portable or not x86:
        return
    if any(os.environ.get(k) != v for k, v in PORTABLE_CAPS.items()):
        if "torch" in sys.modules:
            raise RuntimeError("cpu.portable: torch was imported before the instruction sets were capped")
        os.environ.update(PORTABLE_CAPS)
    import torch

    torch.backends.mkldnn.enabled = False
    torch.backends.nnpack.set_flags(False)


# mallopt's options (glibc's malloc.h), and the largest mmap threshold glibc accepts (64-bit).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, MAX_MMAP_THRESHOLD = -1, -3, 32 << 20


def keep_freed_memory() -> bool:
    """Make glibc keep the memory PyTorch frees for the next allocation, instead of handing it
    back to the kernel; return whether it took the settings.

    A training step allocates and frees the same feature maps and gradients every time, several
    MB each. glibc's defaults map blocks that large afresh and trim freed memory off the heap,
    so every step page-faults them in again: 5.5-9.0 million minor faults in a training stage
    of the convnet recipe on the background set. With blocks up to 32 MB served from the heap
    and the heap never trimmed, 0.15 million, and the stage trains 1.12-1.17x as fast on a
    2-core Intel Xeon (docs/results.md, "Speed of the training step"). jemalloc or TCMalloc,
    which PyTorch's tuning guide suggests preloading, would do the same; this needs no install.
    Either setting alone was slower than neither.

    The arithmetic is the same (the checkpoints are byte-identical); the cost is that a training
    process keeps its peak memory until it exits. Nothing happens elsewhere than Linux with glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:  # musl
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MAX_MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask where the OS has one (SLURM, cgroups
    and taskset narrow it), not the host's core count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_model() -> str:
    """The processor's marketing name (Linux: /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def determinants(device, threads: int) -> dict[str, str | int]:
    """What decides a training run's bytes besides code, params and data: stored in the
    checkpoint. Two machines that agree on all of it have been seen to agree to the byte
    (docs/reproducibility.md says which); the CPU model is left out, since two models that run
    the same kernels write the same weights."""
    import torch

    return {
        # The packages whose code computes a checkpoint's bytes (decoding and packing ran before,
        # with Pillow). torch with its build (2.14.1+cu130, 2.14.1+cpu); str(): weights_only
        # loading refuses torch's version subclass.
        "torch": str(torch.__version__),
        "numpy": version("numpy"),
        "device": str(device),
        # The widest instruction set PyTorch's own CPU kernels use here (AVX512, AVX2): under
        # cpu.portable, AVX2 on every CPU that has it.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": threads,
        **{name: os.environ[name] for name in PORTABLE_CAPS if name in os.environ},
        # cpu.portable's other half: convolutions in oneDNN (False: PyTorch's own, im2col + GEMM).
        "onednn": torch.backends.mkldnn.enabled,
        **(gpu(device) if device.type == "cuda" else {}),
    }


def gpu(device) -> dict[str, str | bool]:
    """A GPU's part of :func:`determinants`: its model, the CUDA and cuDNN builds, and whether
    cuDNN was held to deterministic algorithms (cuda.deterministic)."""
    import torch

    return {
        "gpu": torch.cuda.get_device_name(device),
        "cuda": str(torch.version.cuda),
        "cudnn": str(torch.backends.cudnn.version()),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
    }
