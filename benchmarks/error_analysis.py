"""Where the multi-output model goes wrong: character errors inside and across alphabets.

    python benchmarks/error_analysis.py [models/multi_output.pt] [--top 10] [--sheet pairs.png]

Run in a project whose `dvc repro` (or `dvc exp run`) has made data/ and the checkpoint. Prints
how many test characters are wrong, how many of those pick a character of another alphabet,
how often the alphabet read off the predicted character is right (an upper bound for any
alphabet head that only follows the character head), and the alphabet pairs confused most.
With --sheet, it also draws the character pairs confused most across alphabets into a PNG: per
row, five training drawings of the true character, then five of the one predicted instead.
"""

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from omniglot_mtl.checkpoints import load_checkpoint
from omniglot_mtl.evaluate import character_alphabet
from omniglot_mtl.index import names_by_index, read_maps
from omniglot_mtl.inference import predict
from omniglot_mtl.packed import load_split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", nargs="?", default="models/multi_output.pt", type=Path)
    ap.add_argument("--top", type=int, default=10, help="how many confused alphabet pairs to list")
    ap.add_argument("--sheet", type=Path, help="a PNG of the character pairs confused most across alphabets")
    ap.add_argument("--rows", type=int, default=40, help="how many character pairs the sheet shows")
    args = ap.parse_args()
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


if __name__ == "__main__":
    main()
