"""What a result was made with: library versions and the processor.

Floating-point results depend on them: the same code, params and data give byte-identical
checkpoints on the same processor model with the same versions, and figures that differ in the
3rd or 4th digit on another CPU family (oneDNN and MKL pick their kernels, and so the order of
their sums, by the instruction sets they find). Stored in every checkpoint.
"""

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

# Variables that cap the instruction sets oneDNN, MKL and PyTorch's kernels use (and so change
# the results' last digits): recorded when set.
CPU_CAPS = ("ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "ATEN_CPU_CAPABILITY")
PACKAGES = ("torchvision", "numpy", "pillow", "dvc", "dvclive", "torchmetrics")


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


def describe(device: torch.device) -> dict[str, str]:
    env = {
        "python": platform.python_version(),
        # With its build (2.14.1+cu130, 2.14.1+cpu); str(): weights_only loading refuses the subclass.
        "torch": str(torch.__version__),
        **{name: _version(name) for name in PACKAGES},
        "platform": f"{sys.platform} {platform.machine()}",
        "cpu": cpu_model(),
        # The widest instruction set PyTorch's own CPU kernels use here (e.g. AVX512, AVX2).
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "device": str(device),
        **{name: os.environ[name] for name in CPU_CAPS if name in os.environ},
    }
    # A GPU's model and CUDA version belong here too; not written before a GPU can test them.
    return env


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"
