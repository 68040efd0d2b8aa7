"""Where the multi-output model goes wrong: character errors inside and across alphabets.

    python benchmarks/error_analysis.py [models/multi_output.pt] [--top 10]

Run in a project whose `dvc repro` (or `dvc exp run`) has made data/ and the checkpoint. Prints
how many test characters are wrong, how many of those pick a character of another alphabet,
how often the alphabet read off the predicted character is right (an upper bound for any
alphabet head that only follows the character head), and the alphabet pairs confused most.
"""

import argparse
from collections import Counter
from pathlib import Path

from omniglot_mtl.checkpoints import load_checkpoint
from omniglot_mtl.evaluation import character_alphabet
from omniglot_mtl.index import names_by_index, read_maps
from omniglot_mtl.inference import predict
from omniglot_mtl.packed import load_split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", nargs="?", default="models/multi_output.pt", type=Path)
    ap.add_argument("--top", type=int, default=10, help="how many confused alphabet pairs to list")
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


if __name__ == "__main__":
    main()
