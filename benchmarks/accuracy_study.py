"""Where the multi-output model's accuracy stops: its errors, and what seeds, test-time views
and averaged models would buy. Both studies guided issue 8's decisions (nothing here is built
into the pipeline).

    python benchmarks/accuracy_study.py errors [models/multi_output.pt] [--top 10] [--sheet pairs.png]
    python benchmarks/accuracy_study.py trials DATA_DIR [--set KEY=VALUE ...] [--seeds 0 1] [--views 8]

errors: run in a project whose `dvc repro` (or `dvc exp run`) has made data/ and the checkpoint.
Prints how many test characters are wrong, how many of those pick a character of another
alphabet, how often the alphabet read off the predicted character is right (an upper bound for
any alphabet head that only follows the character head), and the alphabet pairs confused most.
With --sheet, it also draws the character pairs confused most across alphabets into a PNG: per
row, five training drawings of the true character, then five of the one predicted instead.

trials: DATA_DIR is one set in Omniglot layout (e.g. ../shared/omniglot/images_background). The
multi-output model is trained in this process with the 40-epoch recipe (recipes/convnet-long.yaml,
then any --set, values in YAML), once per seed, on drawers 1-14 with the best epoch chosen on
15-17 (as the pipeline does), and scored on drawers 18-20: alone (each head's argmax, as
`metrics/evaluate.json` reports it); via characters (the alphabet whose characters'
probabilities sum highest); with views (the mean log-probability over the image and views-1
random distortions of it, within the recipe's `train.augment` ranges); and as an ensemble (the
seeds' models' log-probabilities averaged). Prints a table and a JSON line.
"""

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from common import ROOT, decoded_splits, machine, study_params  # benchmarks/common.py
from PIL import Image

from omniglot_mtl.core.packed import PackedSplit, load_split, names_by_index, read_maps
from omniglot_mtl.core.params import Params, as_dict
from omniglot_mtl.models.checkpoints import load_checkpoint
from omniglot_mtl.models.inference import character_alphabet, predict
from omniglot_mtl.models.networks import ModelConfig, build_model
from omniglot_mtl.training.augment import random_affine
from omniglot_mtl.training.loop import fit
from omniglot_mtl.weighting.methods import from_params

# --- errors ----------------------------------------------------------------------------------


def errors(args: argparse.Namespace) -> None:
    model, _ = load_checkpoint(args.checkpoint)
    alphabets, characters = read_maps(Path("data/index"))
    test = load_split(Path("data/packed"), "test")
    logits = predict(model, test)
    to_alphabet = character_alphabet(alphabets, characters)
    true_char, true_alpha = test.labels["character"], test.labels["alphabet"]
    pred_char = logits["character"].argmax(1)
    wrong = pred_char != true_char
    across = wrong & (to_alphabet[pred_char] != true_alpha)
    print(f"test images {len(test)}; character errors {int(wrong.sum())} ({wrong.float().mean():.1%})")
    share = across.sum() / wrong.sum()
    print(f"  picking a character of another alphabet: {int(across.sum())} ({share:.0%} of errors)")
    via_character = (to_alphabet[pred_char] == true_alpha).float().mean()
    print(f"alphabet of the predicted character right: {via_character:.2%}")
    print(f"alphabet head right: {(logits['alphabet'].argmax(1) == true_alpha).float().mean():.2%}")
    names = names_by_index(alphabets)
    pairs = Counter(
        " / ".join(sorted((names[a], names[b])))
        for a, b in zip(true_alpha[across].tolist(), to_alphabet[pred_char[across]].tolist(), strict=True)
    )
    print("alphabet pairs most confused by the character head:")
    for pair, count in pairs.most_common(args.top):
        print(f"  {count:3d}  {pair}")
    if args.sheet:
        confused = Counter(zip(true_char[across].tolist(), pred_char[across].tolist(), strict=True))
        train = load_split(Path("data/packed"), "train")
        chars = names_by_index(characters)
        rows = [pair for pair, _ in confused.most_common(args.rows)]
        draw_sheet(rows, train.images[:, 0].numpy(), train.labels["character"].numpy(), args.sheet)
        print(f"{args.sheet}: {len(rows)} rows (true character | predicted character):")
        for i, (true, pred) in enumerate(rows):
            print(f"  {i:3d}  {confused[true, pred]}x  {chars[true]}  ->  {chars[pred]}")


def draw_sheet(rows: list[tuple[int, int]], images: np.ndarray, labels: np.ndarray, out: Path) -> None:
    """Per row, five drawings of each character of a pair, a grey gap between the two."""
    size, per, gap = images.shape[-1], 5, 8
    sheet = np.full((len(rows) * (size + 2), (2 * per) * size + gap), 160, np.uint8)
    for r, pair in enumerate(rows):
        for side, char in enumerate(pair):
            for k, img in enumerate(images[labels == char][:per]):
                x = (side * per + k) * size + side * gap
                sheet[r * (size + 2) : r * (size + 2) + size, x : x + size] = img
    Image.fromarray(sheet).resize((sheet.shape[1] * 2, sheet.shape[0] * 2), Image.NEAREST).save(out)


# --- trials ----------------------------------------------------------------------------------


def splits(data_dir: Path, params: Params) -> tuple[dict[str, PackedSplit], torch.Tensor, int, int]:
    out, alphabets, characters = decoded_splits(data_dir, params)
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


def trials(args: argparse.Namespace) -> None:
    data_dir = args.data_dir.resolve()
    # The 40-epoch recipe, with the data source the JSON line should name and any --set.
    overrides = ["data.source=folder", f"data.folder={data_dir}", *args.set]
    params = study_params(overrides, ROOT / "recipes" / "convnet-long.yaml")
    data, to_alphabet, n_alpha, n_char = splits(data_dir, params)
    test, rows, sums = data["test"], [], {1: None, args.views: None}
    for seed in args.seeds:
        torch.manual_seed(seed)
        config = ModelConfig.from_params(
            "multi_output", params.model, n_alpha, n_char, params.data.image_size
        )
        model = build_model(config)
        start = time.perf_counter()
        result = fit(model, from_params(params.loss), data["train"], data["val"], params.train, seed)
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
    print(machine())
    print(json.dumps({"params": as_dict(params), "rows": rows, "machine": machine()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    studies = ap.add_subparsers(dest="study", required=True)
    p = studies.add_parser("errors", help="the trained model's errors, inside and across alphabets")
    p.add_argument("checkpoint", nargs="?", default="models/multi_output.pt", type=Path)
    p.add_argument("--top", type=int, default=10, help="how many confused alphabet pairs to list")
    p.add_argument("--sheet", type=Path, help="a PNG of the character pairs confused most across alphabets")
    p.add_argument("--rows", type=int, default=40, help="how many character pairs the sheet shows")
    p = studies.add_parser("trials", help="seeds, test-time views and ensembles of the recipe's model")
    p.add_argument("data_dir", type=Path)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a param over the recipe")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--views", type=int, default=8, help="test-time views per image, the image included")
    args = ap.parse_args()
    {"errors": errors, "trials": trials}[args.study](args)


if __name__ == "__main__":
    main()
