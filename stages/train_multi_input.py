"""Stage train_multi_input: data/packed + data/index -> models/multi_input.pt, metrics/train_multi_input/

    python stages/train_multi_input.py

The same command runs under ``torchrun`` (one process per share of each batch, on one machine or
several): docs/distributed.md.
"""

# Nothing here imports torch before cpu.portable has capped the instruction sets (main).
from pathlib import Path

from omniglot_mtl.core.environment import apply_cpu_portable
from omniglot_mtl.core.errors import run_stage
from omniglot_mtl.core.params import load_params


def main() -> None:
    params = load_params()  # and the rest by check_params
    apply_cpu_portable(params.cpu.portable)  # before torch is imported, here:
    from omniglot_mtl.core.tasks import CHARACTER
    from omniglot_mtl.training.loop import OneTask
    from omniglot_mtl.training.train import train_stage

    train_stage(params, "multi_input", OneTask(CHARACTER), project=Path(__file__).resolve().parents[1])


if __name__ == "__main__":
    run_stage(main)
