"""Stage ``index``: sample manifests per split and the name -> index maps.

Indices come from sorted names, so they are the same on every machine (the notebook numbered
alphabets in ``os.listdir`` order, which is not). The split is by drawer: every character has
drawings by the same 20 drawers, so val and test measure how well a model reads handwriting it
has never seen, on characters it has.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from omniglot_mtl.core.atomic import atomic_dir, write_json
from omniglot_mtl.core.errors import InputError
from omniglot_mtl.core.packed import write_packed
from omniglot_mtl.core.params import Split
from omniglot_mtl.core.tasks import ALPHABET, CHARACTER, MAPS, TASKS
from omniglot_mtl.data.decode import decode_all
from omniglot_mtl.data.layout import Scan, scan_sets

COLUMNS = ["path", "set", *TASKS, "drawer", *(f"{task}_idx" for task in TASKS)]
MISSING_COLUMNS = [CHARACTER, "split", "missing_drawers"]


def build_index(scan: Scan, split: Split) -> tuple[dict[str, pd.DataFrame], dict, dict]:
    """Return ``({split: manifest}, alphabets, characters)`` for the drawings of ``scan``."""
    if not scan.drawings:
        raise InputError("no drawings found")
    rows = pd.DataFrame([d.__dict__ for d in scan.drawings])
    maps = {task: {name: i for i, name in enumerate(sorted(set(rows[task])))} for task in TASKS}
    for task in TASKS:
        rows[f"{task}_idx"] = rows[task].map(maps[task])
    alphabets, characters = maps[ALPHABET], maps[CHARACTER]
    rows = rows.sort_values(["character_idx", "drawer", "path"], kind="stable").reset_index(drop=True)
    split.check_drawers(set(rows["drawer"]))
    held_out = set(split.val_drawers) | set(split.test_drawers)
    masks = {
        "train": ~rows["drawer"].isin(held_out),
        "val": rows["drawer"].isin(split.val_drawers),
        "test": rows["drawer"].isin(split.test_drawers),
    }
    manifests = {name: rows[mask][COLUMNS].reset_index(drop=True) for name, mask in masks.items()}
    return manifests, alphabets, characters


def missing_drawings(manifests: dict[str, pd.DataFrame], split: Split) -> pd.DataFrame:
    """One row per (character, split) that lacks drawings its split should have: the split's
    drawers for val and test, and for train every other drawer found in the data.

    Omniglot has all 20 drawers for every character; a folder that lost a file would otherwise
    shrink a split without a word (and a character with no test drawing is never tested).
    """
    found: dict[str, set[int]] = {}
    for frame in manifests.values():
        for character, drawer in zip(frame[CHARACTER], frame["drawer"], strict=True):
            found.setdefault(character, set()).add(int(drawer))
    expected = {
        "train": sorted(set(manifests["train"]["drawer"].astype(int))),
        "val": sorted(split.val_drawers),
        "test": sorted(split.test_drawers),
    }
    rows = []
    for character in sorted(found):
        for name, drawers in expected.items():
            lacking = [d for d in drawers if d not in found[character]]
            if lacking:
                rows.append((character, name, " ".join(map(str, lacking))))
    return pd.DataFrame(rows, columns=MISSING_COLUMNS)


def write_index(
    manifests: dict[str, pd.DataFrame], alphabets: dict, characters: dict, missing: pd.DataFrame, out: Path
) -> None:
    """Write ``{train,val,test}.csv``, ``alphabets.json``, ``characters.json`` and
    ``missing_drawings.csv`` (a header alone when nothing is missing) into the folder ``out``."""
    for name, frame in manifests.items():
        frame.to_csv(out / f"{name}.csv", index=False)
    for task, mapping in ((ALPHABET, alphabets), (CHARACTER, characters)):
        write_json(out / f"{MAPS[task]}.json", mapping)
    missing.to_csv(out / "missing_drawings.csv", index=False)


def index_and_pack(
    sets: dict[str, Path], split: Split, image_size: int, index_dir: Path, packed_dir: Path
) -> tuple[dict[str, pd.DataFrame], Scan, pd.DataFrame]:
    """Stage ``index``: scan ``sets`` (``{set name: set folder}``, :func:`sources.source_sets`),
    write the manifests, maps and the list of missing drawings (:func:`missing_drawings`, also
    returned) to ``index_dir`` and every image, decoded once, to ``packed_dir``. Nothing is
    written unless every image decodes, and both folders or neither.
    """
    scan = scan_sets(sets)
    manifests, alphabets, characters = build_index(scan, split)
    missing = missing_drawings(manifests, split)
    files = {d.path: d.file for d in scan.drawings}
    # One decode over all splits: one process pool started, not one per split.
    decoded = decode_all([files[p] for frame in manifests.values() for p in frame["path"]], image_size)
    ends = np.cumsum([len(frame) for frame in manifests.values()])[:-1]
    images = dict(zip(manifests, np.split(decoded, ends), strict=True))
    # Both into temporary folders, renamed into place only when both are whole: the maps and
    # the packed labels always come from the same run.
    with atomic_dir(index_dir) as index_tmp, atomic_dir(packed_dir) as packed_tmp:
        write_index(manifests, alphabets, characters, missing, index_tmp)
        write_packed(manifests, images, packed_tmp)
    return manifests, scan, missing
