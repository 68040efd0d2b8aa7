"""Stage train_multi_output: data/packed + data/index -> models/multi_output.pt, metrics/train_multi_output/

    python stages/train_multi_output.py

The loss is params.yaml's ``loss`` section: a method of omniglot_mtl.weighting. The same command
runs under ``torchrun``: docs/distributed.md.
"""

# Nothing here imports torch before cpu.portable has capped the instruction sets (main).
from pathlib import Path

from omniglot_mtl.core.environment import apply_cpu_portable
from omniglot_mtl.core.errors import run_stage
from omniglot_mtl.core.params import load_params


def main() -> None:
    params = load_params()  # and the rest by check_params
    apply_cpu_portable(params.cpu.portable)  # before torch is imported, here:
    from omniglot_mtl.training.train import train_stage
    from omniglot_mtl.weighting.methods import from_params

    train_stage(params, "multi_output", from_params(params.loss), project=Path(__file__).resolve().parents[1])


if __name__ == "__main__":
    run_stage(main)
