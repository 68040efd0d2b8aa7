"""Stages train_multi_input and train_multi_output:
data/packed + data/index -> models/<kind>.pt, metrics/train_<kind>/

    python stages/train.py multi_input|multi_output

The same command runs under ``torchrun`` (one process per share of each batch, on one machine or
several): docs/distributed.md.
"""

import resource
import sys
from pathlib import Path

import yaml

# Nothing here imports torch before cpu.portable has capped the instruction sets (main).
from omniglot_mtl.environment import cap_instruction_sets
from omniglot_mtl.errors import run_stage
from omniglot_mtl.params import load_params


def declared_params(stage: str) -> tuple[str, ...]:
    """The params sections ``stage`` declares in dvc.yaml, and so all that its checkpoint may
    record: a section it does not declare could differ in a checkpoint restored from DVC's run
    cache. (dvc.yaml is the stage's own definition: a change to its params reruns it.)"""
    dvc_yaml = Path(__file__).resolve().parents[1] / "dvc.yaml"  # this script's project
    return tuple(yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"][stage]["params"])


def main() -> None:
    params = load_params(registries=False)  # checked by check_params
    cap_instruction_sets(params.cpu.portable)  # before torch is imported, here:
    from omniglot_mtl.models import MODEL_KINDS
    from omniglot_mtl.train import train_model

    if len(sys.argv) != 2 or sys.argv[1] not in MODEL_KINDS:
        sys.exit(f"usage: python stages/train.py {'|'.join(MODEL_KINDS)}")
    kind = sys.argv[1]
    result = train_model(
        params,
        kind,
        packed_dir=Path("data/packed"),
        index_dir=Path("data/index"),
        model_path=Path(f"models/{kind}.pt"),
        metrics_dir=Path(f"metrics/train_{kind}"),
        recorded=declared_params(f"train_{kind}"),
    )
    if result.rank != 0:  # rank 0 speaks for all
        return
    val = ", ".join(f"{task} {acc:.3f}" for task, acc in result.best_val.items())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    peak_mb = peak / (2**20 if sys.platform == "darwin" else 2**10)
    over, each = (f" over {result.processes} processes", " per process") if result.processes > 1 else ("", "")
    print(
        f"{kind}: best epoch {result.best_epoch}, val accuracy {val}, "
        f"{result.images_per_s:.0f} training images/s{over}, peak memory {peak_mb:.0f} MB{each}"
    )


if __name__ == "__main__":
    run_stage(main)
