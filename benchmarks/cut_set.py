"""Cut a smaller set from an Omniglot set folder, to try a recipe on data of another size:

    python benchmarks/cut_set.py SET_FOLDER OUT_FOLDER --alphabets 20 [--seed 0]

Copies ``--alphabets`` of the set's alphabets, drawn with ``random.Random(seed).sample`` from
their sorted names, whole (every character, every drawer). docs/results.md's "On a set of
another size" ran ``python benchmarks/cut_set.py ../shared/omniglot/images_background
/tmp/cut20 --alphabets 20``: 643 characters, 9,002 training drawings.
"""

import argparse
import random
import shutil
import sys
from pathlib import Path


def cut(source: Path, out: Path, alphabets: int, seed: int = 0) -> list[str]:
    """Copy ``alphabets`` alphabet folders of ``source`` into ``out``; returns their names."""
    names = sorted(p.name for p in source.iterdir() if p.is_dir())
    if not 1 <= alphabets <= len(names):
        raise ValueError(f"--alphabets: {source} has {len(names)} alphabets, got {alphabets}")
    chosen = sorted(random.Random(seed).sample(names, alphabets))
    out.mkdir(parents=True)
    for name in chosen:
        shutil.copytree(source / name, out / name)
    return chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path, help="a set folder, e.g. ../shared/omniglot/images_background")
    ap.add_argument("out", type=Path, help="a folder that does not exist yet")
    ap.add_argument("--alphabets", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    try:
        chosen = cut(args.source, args.out, args.alphabets, args.seed)
    except (ValueError, OSError) as err:
        sys.exit(f"error: {err}")
    print(f"{args.out}: {len(chosen)} alphabets: {', '.join(chosen)}")


if __name__ == "__main__":
    main()
