"""torch.compile (inductor) on the training step: compile time, steady images/s, whole-fit time,
accuracy and run-to-run bytes, with and without, at the default's and the recipe's settings.

    python benchmarks/compile_study.py DATA_DIR [--epochs 3] [--settings default recipe]

DATA_DIR is one set in Omniglot layout, e.g. ../shared/omniglot/images_background. Each leg is
a fresh process (so compilation is paid as a stage pays it): the multi-output model of the
setting (default: the notebook's network, fp32, batch 32, 64 x 64; recipe: recipes/convnet.yaml,
its precision resolved on this machine) trained for ``--epochs`` by :func:`training.fit`, whose
step calls the compiled module when compiled. The compiled legs run twice, to see whether two
runs give the same weights. Prints a table (epoch 1 minus a later epoch's time is the compile
cost; the steady rate is the last epoch's) and a JSON line.
"""

import argparse
import hashlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import ROOT, decoded_splits, machine, study_params  # benchmarks/common.py

from omniglot_mtl.distributed import World
from omniglot_mtl.inference import accuracy
from omniglot_mtl.models import ModelConfig, build_model
from omniglot_mtl.training import fit
from omniglot_mtl.weighting import make_weighting


class Compiled(World):
    """One process whose training step calls ``torch.compile(model)`` (weights shared)."""

    def wrap(self, model, device):
        return torch.compile(model)


def leg(args: argparse.Namespace) -> dict:
    recipe = ROOT / "recipes" / "convnet.yaml" if args.setting == "recipe" else None
    params = study_params([f"train.epochs={args.epochs}"], recipe)
    cfg = params.train
    data, alphabets, characters = decoded_splits(args.data_dir, params)
    torch.manual_seed(params.seed)
    size = params.data.image_size
    config = ModelConfig("multi_output", len(alphabets), len(characters), size, params.model.backbone)
    model = build_model(config)
    weighting = make_weighting(params.loss.weights, params.loss.method, params.loss.normalize)
    ends = [time.perf_counter()]
    world = Compiled() if args.compile else World()
    result = fit(
        model,
        weighting,
        data["train"],
        data["val"],
        cfg,
        params.seed,
        lambda *_: ends.append(time.perf_counter()),
        world,
    )
    epoch_s = [b - a for a, b in zip(ends, ends[1:], strict=False)]
    buffer = io.BytesIO()
    torch.save(result.best_state, buffer)
    model.load_state_dict(result.best_state)
    return {
        "precision": cfg.precision,
        "epoch_s": [round(s, 2) for s in epoch_s],
        "fit_s": round(ends[-1] - ends[0], 1),
        "steady_images_per_s": round(len(data["train"]) / epoch_s[-1]),
        "test_accuracy": {k: round(v, 4) for k, v in accuracy(model, data["test"], cfg.precision).items()},
        "weights_sha256": hashlib.sha256(buffer.getvalue()).hexdigest()[:16],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--settings", nargs="+", default=["default", "recipe"], choices=["default", "recipe"])
    ap.add_argument("--setting", help=argparse.SUPPRESS)
    ap.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.setting:  # child process: one leg, one JSON line
        print(json.dumps(leg(args)))
        return
    rows = []
    for setting in args.settings:
        for compiled in (False, True, True):
            cmd = [sys.executable, __file__, str(args.data_dir), "--epochs", str(args.epochs)]
            cmd += ["--setting", setting] + (["--compile"] if compiled else [])
            start = time.perf_counter()
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1]) | {"setting": setting, "compile": compiled}
            r["process_s"] = round(time.perf_counter() - start, 1)
            rows.append(r)
            print(json.dumps(r), flush=True)
    print(f"{args.data_dir.name}, multi-output model, {args.epochs} epochs | {machine()}")
    print(
        f"{'setting':<8} {'compile':<7} {'prec':<5} {'epoch 1 s':>9} {'last s':>7} {'images/s':>8} "
        f"{'fit s':>6} {'process s':>9}  test accuracy            weights"
    )
    for r in rows:
        acc = " ".join(f"{k} {v:.4f}" for k, v in r["test_accuracy"].items())
        print(
            f"{r['setting']:<8} {str(r['compile']):<7} {r['precision']:<5} {r['epoch_s'][0]:>9.1f} "
            f"{r['epoch_s'][-1]:>7.1f} {r['steady_images_per_s']:>8} {r['fit_s']:>6.1f} "
            f"{r['process_s']:>9.1f}  {acc}  {r['weights_sha256']}"
        )
    print(json.dumps({"machine": machine(), "epochs": args.epochs, "rows": rows}))


if __name__ == "__main__":
    main()
