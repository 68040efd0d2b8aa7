"""Accuracy against training compute: both models of a recipe trained in this process, as the
pipeline trains them, with the training FLOPs and seconds each one took.

    python benchmarks/speedrun.py DATA_DIR [--recipe recipes/convnet.yaml] [--set KEY=VALUE ...]
                                  [--seeds 0 1 2] [--models multi_input multi_output]
                                  [--test] [--portable]

DATA_DIR is one set in Omniglot layout (e.g. ../shared/omniglot/images_background). Per seed
(``--seeds``, in place of the ``seed`` param), the models are trained on drawers 1-14, their best
epoch chosen on drawers 15-17, and their validation accuracies printed; with --test, the test
drawers' (18-20) too: read them once per recipe you report, never to choose one. The FLOPs are
counted by torch's FlopCounterMode on one training step (the matrix products and convolutions
of the forward and backward pass and of the optimizer step, which ``muon`` has; FAMO's second
forward pass is not counted), times the images trained on. The seconds are ``fit``'s,
validation each epoch included. Threads follow ``train.threads`` and this machine; --portable
caps the instruction sets at AVX2 and the threads at 2, as ``cpu.portable: true`` does
(whatever the recipe says): an AVX2-only CPU's bytes, not its speed. Prints a line per model
and seed, and a JSON line.
"""

import argparse
import json
import sys
import time
from pathlib import Path

if "--portable" in sys.argv:  # before torch is imported
    from omniglot_mtl.core.environment import apply_cpu_portable

    apply_cpu_portable(True)

import torch
from common import ROOT, decoded_splits, machine, study_params  # benchmarks/common.py
from torch.utils.flop_counter import FlopCounterMode

from omniglot_mtl.core.params import as_dict
from omniglot_mtl.core.tasks import CHARACTER
from omniglot_mtl.models.inference import accuracy, character_alphabet
from omniglot_mtl.models.networks import ModelConfig, build_model
from omniglot_mtl.training.distributed import threads_per_process
from omniglot_mtl.training.loop import OneTask, fit, make_optimizer
from omniglot_mtl.weighting.methods import from_params


def step_flops(model: torch.nn.Module, split, cfg) -> float:
    """FLOPs of one training step, per image: the forward and backward pass, and the optimizer
    step's matrix products (``muon``'s orthogonalisation; none in Adam's)."""
    batch = split.batch(torch.arange(cfg.batch_size))
    optimizer = make_optimizer(model, OneTask("character"), cfg, torch.device("cpu"))
    with FlopCounterMode(display=False) as counter:
        out = model(*(batch[k] for k in model.inputs))
        sum(v.float().sum() for v in out.values()).backward()
        optimizer.step()
    return counter.get_total_flops() / cfg.batch_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "convnet.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a param over the recipe")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--models", nargs="+", default=["multi_input", "multi_output"])
    ap.add_argument("--test", action="store_true", help="score the test drawers too")
    ap.add_argument("--portable", action="store_true", help="cap the instruction sets at AVX2")
    args = ap.parse_args()

    data_dir = args.data_dir.resolve()
    overrides = ["data.source=folder", f"data.folder={data_dir}", *args.set]
    params = study_params(overrides, args.recipe)
    torch.set_num_threads(threads_per_process(params.train.threads, portable=args.portable))
    start = time.perf_counter()
    data, alphabets, characters = decoded_splits(data_dir, params)
    print(f"decoded in {time.perf_counter() - start:.0f} s; {machine()}", flush=True)
    configs = {
        kind: ModelConfig.from_params(
            kind, params.model, len(alphabets), len(characters), params.data.image_size
        )
        for kind in args.models
    }
    # Counted on a model of their own: the counted step moves batch norm's running statistics.
    flops = {kind: step_flops(build_model(c), data["train"], params.train) for kind, c in configs.items()}
    char_to_alpha = character_alphabet(alphabets, characters)  # the multi-input model reads within it
    rows = []
    for seed in args.seeds:
        for kind, config in configs.items():
            torch.manual_seed(seed)
            model = build_model(config)
            loss = OneTask(CHARACTER) if kind == "multi_input" else from_params(params.loss)
            start = time.perf_counter()
            result = fit(
                model, loss, data["train"], data["val"], params.train, seed, char_to_alpha=char_to_alpha
            )
            seconds = time.perf_counter() - start
            row = {
                "seed": seed,
                "model": kind,
                "train_tflop": round(flops[kind] * len(data["train"]) * result.epochs / 1e12, 2),
                "fit_s": round(seconds, 1),
                "images_per_s": round(result.images_per_s),
                "best_epoch": result.best_epoch,
                "val": {t: round(v, 4) for t, v in result.best_val.items()},
            }
            if args.test:
                model.load_state_dict(result.best_state)
                test = accuracy(model, data["test"], params.train.precision, char_to_alpha=char_to_alpha)
                row["test"] = {t: round(v, 4) for t, v in test.items()}
            rows.append(row)
            scores = " ".join(
                f"{split} {t} {v:.2%}" for split in ("val", "test") for t, v in row.get(split, {}).items()
            )
            print(
                f"seed {seed} {kind:12} {row['train_tflop']:6.2f} TFLOP {seconds:6.1f} s "
                f"{row['images_per_s']:5d} img/s  best epoch {result.best_epoch}  {scores}",
                flush=True,
            )
    print(json.dumps({"params": as_dict(params), "rows": rows, "machine": machine()}))


if __name__ == "__main__":
    main()
