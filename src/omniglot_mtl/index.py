"""Stage ``index``: sample manifests per split and the name -> index maps.

Indices come from sorted names, so they are the same on every machine (the notebook numbered
alphabets in ``os.listdir`` order, which is not). The split is by drawer: every character has
drawings by the same 20 drawers, so val and test measure how well a model reads handwriting it
has never seen, on characters it has.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import atomic_dir, write_json
from .errors import InputError
from .layout import Scan, scan_sets
from .packed import decode_all, write_packed
from .params import Split

COLUMNS = ["path", "set", "alphabet", "character", "drawer", "alphabet_idx", "character_idx"]


def build_index(scan: Scan, split: Split) -> tuple[dict[str, pd.DataFrame], dict, dict]:
    """Return ``({split: manifest}, alphabets, characters)`` for the drawings of ``scan``."""
    if not scan.drawings:
        raise InputError("no drawings found")
    alphabets = {name: i for i, name in enumerate(sorted({d.alphabet for d in scan.drawings}))}
    characters = {name: i for i, name in enumerate(sorted({d.character for d in scan.drawings}))}
    rows = pd.DataFrame([d.__dict__ for d in scan.drawings])
    rows["alphabet_idx"] = rows["alphabet"].map(alphabets)
    rows["character_idx"] = rows["character"].map(characters)
    rows = rows.sort_values(["character_idx", "drawer", "path"], kind="stable").reset_index(drop=True)
    present = set(rows["drawer"])
    for name in ("val_drawers", "test_drawers"):
        missing = sorted(set(getattr(split, name)) - present)
        if missing:
            raise InputError(
                f"params.yaml: data.split.{name}: no drawings by drawer(s) {missing} "
                f"(the data has drawers {min(present)}..{max(present)})"
            )
    held_out = set(split.val_drawers) | set(split.test_drawers)
    masks = {
        "train": ~rows["drawer"].isin(held_out),
        "val": rows["drawer"].isin(split.val_drawers),
        "test": rows["drawer"].isin(split.test_drawers),
    }
    if not masks["train"].any():
        raise InputError("params.yaml: data.split: val and test take every drawer; none is left to train")
    manifests = {name: rows[mask][COLUMNS].reset_index(drop=True) for name, mask in masks.items()}
    return manifests, alphabets, characters


def write_index(manifests: dict[str, pd.DataFrame], alphabets: dict, characters: dict, out: Path) -> None:
    """Write ``{train,val,test}.csv``, ``alphabets.json`` and ``characters.json`` into ``out``."""
    with atomic_dir(out) as tmp:
        for name, frame in manifests.items():
            frame.to_csv(tmp / f"{name}.csv", index=False)
        write_json(tmp / "alphabets.json", alphabets)
        write_json(tmp / "characters.json", characters)


def index_and_pack(
    raw: Path, split: Split, image_size: int, index_dir: Path, packed_dir: Path
) -> tuple[dict[str, pd.DataFrame], Scan]:
    """Stage ``index``: scan ``raw``, write the manifests and maps to ``index_dir`` and every
    image, decoded once, to ``packed_dir``. Nothing is written unless every image decodes.

    Packing lives in this stage rather than one of its own because DVC hashes a dependency's
    files on every ``dvc repro``: one stage fewer reading ``data/raw`` (19,280 files for the
    background set) makes a no-op ``dvc repro`` 0.6 s faster.
    """
    raw = Path(raw)
    scan = scan_sets(raw)
    manifests, alphabets, characters = build_index(scan, split)
    # One decode over all splits: one process pool started, not one per split.
    decoded = decode_all([raw / p for frame in manifests.values() for p in frame["path"]], image_size)
    ends = np.cumsum([len(frame) for frame in manifests.values()])[:-1]
    images = dict(zip(manifests, np.split(decoded, ends), strict=True))
    write_index(manifests, alphabets, characters, index_dir)
    write_packed(manifests, images, packed_dir)
    return manifests, scan


def names_by_index(mapping: dict[str, int]) -> list[str]:
    """The names of a name -> index map, listed by index."""
    return sorted(mapping, key=mapping.get)


def read_maps(index_dir: Path) -> tuple[dict[str, int], dict[str, int]]:
    """The alphabet and character maps written by :func:`write_index`."""
    index_dir = Path(index_dir)
    return tuple(
        json.loads((index_dir / f"{name}.json").read_text(encoding="utf-8"))
        for name in ("alphabets", "characters")
    )
