"""Trials for the multi-output model: seeds, test-time views, the alphabet read off the
characters, and the seeds' models averaged.

    python benchmarks/multi_output_trials.py DATA_DIR [--set KEY=VALUE ...] [--seeds 0 1] [--views 8]

DATA_DIR is one set in Omniglot layout (e.g. ../shared/omniglot/images_background). The
multi-output model is trained in this process with the convnet recipe (recipes/convnet.yaml,
then any --set, values in YAML), once per seed, on drawers 1-14 with the best epoch chosen on
15-17 (as the pipeline does), and scored on drawers 18-20:

- alone: each head's argmax, as `metrics/evaluate.json` reports it;
- via characters: the alphabet whose characters' probabilities sum highest;
- views: the mean log-probability over the image and views-1 random distortions of it, drawn
  within the recipe's `train.augment` ranges (test-time augmentation);
- ensemble: the seeds' models' log-probabilities averaged (with and without views).

It measures what these would buy; the pipeline does none of them. Prints a table and a JSON line.
"""

import argparse
import json
import time
from pathlib import Path

import torch
from fresh_clone import ROOT, set_params  # benchmarks/: the script's own folder
from train_speed import decoded_split

from omniglot_mtl.augment import random_affine
from omniglot_mtl.evaluate import character_alphabet
from omniglot_mtl.index import build_index
from omniglot_mtl.inference import predict
from omniglot_mtl.layout import scan_alphabets
from omniglot_mtl.models import ModelConfig, build_model
from omniglot_mtl.packed import PackedSplit
from omniglot_mtl.params import Params, as_dict, from_dict
from omniglot_mtl.recipe import merged, read_recipe
from omniglot_mtl.training import fit
from omniglot_mtl.weighting import make_weighting


def recipe(overrides: list[str]) -> Params:
    """The convnet recipe as Params, with ``overrides`` (KEY=VALUE) applied last."""
    values = merged(as_dict(Params()), read_recipe(ROOT / "recipes" / "convnet.yaml"))
    params = from_dict(Params, set_params(values, overrides), "")
    params.validate()
    return params


def splits(data_dir: Path, params: Params) -> tuple[dict[str, PackedSplit], torch.Tensor, int, int]:
    index, alphabets, characters = build_index(scan_alphabets(data_dir, data_dir.name), params.data.split)
    out = {name: decoded_split(data_dir, frame, params.data.image_size) for name, frame in index.items()}
    return out, character_alphabet(alphabets, characters), len(alphabets), len(characters)


def log_probs(model, test: PackedSplit, params: Params, views: int) -> dict[str, torch.Tensor]:
    """Mean log-probabilities per task over the image and ``views - 1`` distortions of it."""
    draws = torch.Generator().manual_seed(0)
    total = {t: v.log_softmax(1) for t, v in predict(model, test, params.train.precision).items()}
    for _ in range(views - 1):
        warped = random_affine(test.images.float() / 255, params.train.augment, draws) * 255
        for t, v in predict(model, PackedSplit(warped, test.labels), params.train.precision).items():
            total[t] += v.log_softmax(1)
    return {t: v / views for t, v in total.items()}


def scores(lp: dict[str, torch.Tensor], test: PackedSplit, to_alphabet: torch.Tensor) -> dict[str, float]:
    alphabet, character = test.labels["alphabet"], test.labels["character"]
    via = torch.zeros_like(lp["alphabet"]).index_add_(1, to_alphabet, lp["character"].exp())
    return {
        "alphabet": (lp["alphabet"].argmax(1) == alphabet).float().mean().item(),
        "character": (lp["character"].argmax(1) == character).float().mean().item(),
        "alphabet_via_characters": (via.argmax(1) == alphabet).float().mean().item(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a param over the recipe")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--views", type=int, default=8, help="test-time views per image, the image included")
    args = ap.parse_args()
    data_dir = args.data_dir.resolve()
    params = recipe(["data.source=folder", f"data.folder={data_dir}", *args.set])  # as the JSON says
    data, to_alphabet, n_alpha, n_char = splits(data_dir, params)
    test, rows, sums = data["test"], [], {1: None, args.views: None}
    for seed in args.seeds:
        torch.manual_seed(seed)
        model = build_model(ModelConfig("multi_output", n_alpha, n_char, params.data.image_size, "convnet"))
        weighting = make_weighting(params.loss.weights, params.loss.method, params.loss.normalize)
        start = time.perf_counter()
        result = fit(model, weighting, data["train"], data["val"], params.train, seed)
        seconds = time.perf_counter() - start
        model.load_state_dict(result.best_state)
        run = {"best_epoch": result.best_epoch, "train_s": round(seconds)}
        for views in sums:
            lp = log_probs(model, test, params, views)
            rows.append({"seed": seed, "views": views} | scores(lp, test, to_alphabet) | run)
            sums[views] = lp if sums[views] is None else {t: sums[views][t] + lp[t] for t in lp}
    if len(args.seeds) > 1:
        for views, lp in sums.items():
            rows.append({"seed": "ensemble", "views": views} | scores(lp, test, to_alphabet))
    print(f"{'seed':>9} {'views':>5} {'alphabet':>9} {'character':>9} {'alphabet via characters':>23}")
    for r in rows:
        print(
            f"{r['seed']!s:>9} {r['views']:>5} {r['alphabet']:>9.2%} {r['character']:>9.2%}"
            f" {r['alphabet_via_characters']:>23.2%}"
        )
    print(json.dumps({"params": as_dict(params), "rows": rows}))


if __name__ == "__main__":
    main()
