"""Cut a smaller set from an Omniglot set folder, to try a recipe on data of another size:

    python benchmarks/cut_set.py SET_FOLDER OUT_FOLDER [--alphabets 20] [--seed 0]
                                 [--drop-drawers 8 9 10 11 12 13 14]

Copies ``--alphabets`` of the set's alphabets (default: all), drawn with
``random.Random(seed).sample`` from their sorted names, with every character and every drawer
but those of ``--drop-drawers`` (drawings are named ``<id>_<drawer>.png``). docs/results.md's "On
a set of another size" ran ``python benchmarks/cut_set.py ../shared/omniglot/images_background
/tmp/cut20 --alphabets 20`` (643 characters, 9,002 training drawings) and, for fewer drawers per
character, ``--drop-drawers 8 9 10 11 12 13 14`` (7 of the 14 training drawers).
"""

import argparse
import random
import shutil
import sys
from pathlib import Path

from omniglot_mtl.data.layout import DRAWING_NAME


def cut(
    source: Path, out: Path, alphabets: int | None, seed: int = 0, drop: tuple[int, ...] = ()
) -> list[str]:
    """Copy ``alphabets`` alphabet folders of ``source`` into ``out``, without the drawings of the
    drawers ``drop``; returns the alphabets' names."""
    names = sorted(p.name for p in source.iterdir() if p.is_dir())
    alphabets = len(names) if alphabets is None else alphabets
    if not 1 <= alphabets <= len(names):
        raise ValueError(f"--alphabets: {source} has {len(names)} alphabets, got {alphabets}")
    chosen = sorted(random.Random(seed).sample(names, alphabets))

    def ignore(folder: str, entries: list[str]) -> list[str]:
        """The drawings by a dropped drawer, read as the index stage reads a drawing's name."""
        matches = ((e, DRAWING_NAME.match(e)) for e in entries)
        return [e for e, match in matches if match and int(match.group(2)) in drop]

    out.mkdir(parents=True)
    for name in chosen:
        shutil.copytree(source / name, out / name, ignore=ignore)
    return chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path, help="a set folder, e.g. ../shared/omniglot/images_background")
    ap.add_argument("out", type=Path, help="a folder that does not exist yet")
    ap.add_argument("--alphabets", type=int, help="how many (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--drop-drawers", type=int, nargs="+", default=[], metavar="N", help="drawers left out")
    args = ap.parse_args()
    try:
        chosen = cut(args.source, args.out, args.alphabets, args.seed, tuple(args.drop_drawers))
    except (ValueError, OSError) as err:
        sys.exit(f"error: {err}")
    print(f"{args.out}: {len(chosen)} alphabets: {', '.join(chosen)}")


if __name__ == "__main__":
    main()
