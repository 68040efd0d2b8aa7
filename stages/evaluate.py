"""Stage evaluate: models/*.pt + data/packed/test.npz -> metrics/evaluate.json, metrics/evaluate/"""

from pathlib import Path

from omniglot_mtl.core.environment import apply_cpu_portable
from omniglot_mtl.core.errors import run_stage
from omniglot_mtl.core.params import load_params


def main() -> None:
    params = load_params()  # and the rest by check_params
    apply_cpu_portable(params.cpu.portable)  # before torch is imported, here:
    from omniglot_mtl.core.devices import resolve_device
    from omniglot_mtl.evaluation.evaluate import write_evaluation
    from omniglot_mtl.models.networks import MODEL_KINDS

    metrics = write_evaluation(
        {kind: Path(f"models/{kind}.pt") for kind in MODEL_KINDS},
        packed_dir=Path("data/packed"),
        index_dir=Path("data/index"),
        device=resolve_device(params.device),
        metrics_path=Path("metrics/evaluate.json"),
        plots_dir=Path("metrics/evaluate"),
    )
    for kind in MODEL_KINDS:
        tasks = ", ".join(f"{t} {m['accuracy']:.3f}" for t, m in metrics[kind].items() if isinstance(m, dict))
        print(f"evaluate {kind}: test accuracy {tasks}")


if __name__ == "__main__":
    run_stage(main)
