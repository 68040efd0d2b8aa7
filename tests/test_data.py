"""Synthetic generator, layout scan, index and split, on tiny generated folders."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_set, run_stage, write_png
from PIL import Image

from omniglot_mtl.core.errors import InputError
from omniglot_mtl.core.params import Split
from omniglot_mtl.data.index import build_index, index_and_pack
from omniglot_mtl.data.layout import scan_sets
from omniglot_mtl.data.synthetic import generate


def digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.png"))
    }


def test_synthetic_is_deterministic_and_in_omniglot_layout(tmp_path):
    assert generate(tmp_path / "a", seed=3, alphabets=2, characters=3, drawers=4) == 24
    generate(tmp_path / "b", seed=3, alphabets=2, characters=3, drawers=4)
    generate(tmp_path / "c", seed=4, alphabets=2, characters=3, drawers=4)
    a, b, c = (digest(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() == c.keys() and a != c
    assert sorted(a)[:2] == ["Synthetic_01/character01/0001_01.png", "Synthetic_01/character01/0001_02.png"]
    assert sorted(a)[-1] == "Synthetic_02/character03/0006_04.png"
    img = Image.open(tmp_path / "a" / sorted(a)[0])
    assert img.size == (105, 105) and img.mode == "1"
    pixels = np.asarray(img)
    assert 0.01 < 1 - pixels.mean() < 0.4  # black strokes on a white page


def test_synthetic_drawings_of_one_character_look_alike(tmp_path):
    # Learnable: a character's drawings by different drawers overlap more than drawings of
    # different characters; not trivial: no two drawings are the same.
    generate(tmp_path, seed=0, alphabets=2, characters=3, drawers=6)
    ink = {}
    for p in sorted(tmp_path.rglob("*.png")):
        ink.setdefault(p.parent, []).append(np.asarray(Image.open(p).resize((26, 26))) == 0)

    def overlap(a, b):
        return (a & b).sum() / max((a | b).sum(), 1)

    chars = list(ink.values())
    same = np.mean([overlap(c[i], c[j]) for c in chars for i in range(6) for j in range(i + 1, 6)])
    diff = np.mean(
        [overlap(a[i], b[i]) for k, a in enumerate(chars) for b in chars[k + 1 :] for i in range(6)]
    )
    assert same > 2 * diff
    assert len({d.tobytes() for c in chars for d in c}) == 36


def test_index_counts_maps_and_drawer_split(tmp_path):
    raw = tmp_path / "raw"
    n = make_set(raw / "images_background", {"Beta": 2, "Alpha": 3}, drawers=5)
    make_set(raw / "images_evaluation", {"Gamma": 1}, drawers=5, first_id=50)
    (raw / "images_background" / ".DS_Store").write_text("x")
    (raw / "images_background" / "Alpha" / "character01" / "Thumbs.db").write_text("x")
    (raw / "images_background" / "README.txt").write_text("x")
    sets = {name: raw / name for name in ("images_background", "images_evaluation")}
    scan = scan_sets(sets)
    assert len(scan.drawings) == n + 5 == 30
    assert scan.skipped == [
        f"{raw}/images_background/.DS_Store",
        f"{raw}/images_background/README.txt",
        f"{raw}/images_background/Alpha/character01/Thumbs.db",
    ]
    assert scan.skipped_summary().startswith("skipped 3 entries that are not drawings: ")

    split = Split(val_drawers=(4,), test_drawers=(5,))
    manifests, _, _ = index_and_pack(sets, split, 8, tmp_path / "index", tmp_path / "packed")
    out = tmp_path / "index"
    assert json.loads((out / "alphabets.json").read_text()) == {"Alpha": 0, "Beta": 1, "Gamma": 2}
    chars = json.loads((out / "characters.json").read_text())
    assert list(chars) == [
        "Alpha/character01",
        "Alpha/character02",
        "Alpha/character03",
        "Beta/character01",
        "Beta/character02",
        "Gamma/character01",
    ]
    assert list(chars.values()) == list(range(6))
    assert {k: len(v) for k, v in manifests.items()} == {"train": 18, "val": 6, "test": 6}
    assert set(manifests["val"]["drawer"]) == {4} and set(manifests["test"]["drawer"]) == {5}
    assert set(manifests["train"]["drawer"]) == {1, 2, 3}
    first = manifests["train"].iloc[0].to_dict()
    assert first == {
        "path": "images_background/Alpha/character01/0003_01.png",
        "set": "images_background",
        "alphabet": "Alpha",
        "character": "Alpha/character01",
        "drawer": 1,
        "alphabet_idx": 0,
        "character_idx": 0,
    }
    csv = (out / "train.csv").read_text().splitlines()
    assert csv[0] == "path,set,alphabet,character,drawer,alphabet_idx,character_idx"
    assert len(csv) == 19
    assert (out / "missing_drawings.csv").read_text() == "character,split,missing_drawers\n"


def test_missing_drawings_are_named_and_the_index_goes_on(tmp_path):
    raw = tmp_path / "drawings"
    make_set(raw / "s", {"A": 3, "B": 1}, drawers=6)
    (tmp_path / "params.yaml").write_text(
        "data: {source: folder, folder: drawings/s, image_size: 8,"
        " split: {val_drawers: [5], test_drawers: [6]}}"
    )
    # character02 of A lost its test drawing and a training one; B's character01 all it had to
    # validate and test with.
    for path in ("A/character02/0002_06.png", "A/character02/0002_01.png", "B/character01/0004_05.png"):
        (raw / "s" / path).unlink()
    (raw / "s" / "B/character01/0004_06.png").unlink()
    result = run_stage("index.py", tmp_path)  # the stage script, as dvc runs it
    assert result.returncode == 0, result.stderr
    index_dir = tmp_path / "data" / "index"
    assert (index_dir / "missing_drawings.csv").read_text().splitlines() == [
        "character,split,missing_drawers",
        "A/character02,train,1",
        "A/character02,test,6",
        "B/character01,val,5",
        "B/character01,test,6",
    ]
    assert result.stdout.splitlines()[-1] == (
        "index: warning: 2 character(s) lack drawings of a split (all in data/index/missing_drawings.csv): "
        "A/character02 train drawer(s) 1; A/character02 test drawer(s) 6; B/character01 val drawer(s) 5; "
        "B/character01 test drawer(s) 6"
    )
    test = pd.read_csv(index_dir / "test.csv")
    assert list(test["character"]) == ["A/character01", "A/character03"]


def test_index_is_identical_on_a_second_run(tmp_path):
    make_set(tmp_path / "raw" / "s", {"B": 2, "A": 2}, drawers=4)
    for run in ("one", "two"):
        index_and_pack(
            {"s": tmp_path / "raw" / "s"},
            Split((3,), (4,)),
            8,
            tmp_path / run / "index",
            tmp_path / run / "packed",
        )
    for name in ("train.csv", "val.csv", "test.csv", "alphabets.json", "characters.json"):
        assert (tmp_path / "one/index" / name).read_bytes() == (tmp_path / "two/index" / name).read_bytes()


@pytest.mark.parametrize(
    "breakage, message",
    [
        (
            lambda r: write_png(r / "s" / "A" / "character01" / "first_01.png", 1),
            "first_01.png: file name is not <id>_<drawer> and an image suffix",
        ),
        (
            lambda r: (r / "s" / "A" / "character09").mkdir(),
            "character09: character folder holds no drawings",
        ),
        (lambda r: (r / "s" / "Empty").mkdir(), "Empty: alphabet folder has no character folders"),
    ],
)
def test_bad_layouts_fail_naming_the_path(tmp_path, breakage, message):
    make_set(tmp_path / "s", {"A": 2}, drawers=3)
    breakage(tmp_path)
    with pytest.raises(InputError, match=message):
        scan_sets({"s": tmp_path / "s"})


def test_split_drawers_must_exist_and_leave_some_to_train(tmp_path):
    make_set(tmp_path / "s", {"A": 2}, drawers=3)
    scan = scan_sets({"s": tmp_path / "s"})
    with pytest.raises(InputError, match=r"data.split.test_drawers: no drawings by drawer\(s\) \[18, 19\]"):
        build_index(scan, Split((1,), (18, 19)))
    with pytest.raises(InputError, match="none is left to train"):
        build_index(scan, Split((1, 2), (3,)))


def test_the_folder_scanner_knows_nothing_of_params():
    """layout.py is Omniglot's folder layout, usable on any folder: it imports no params schema."""
    code = "import sys, omniglot_mtl.data.layout; print('omniglot_mtl.core.params' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout == "False\n"


def test_names_dvc_cannot_hash_are_named_in_one_line(tmp_path):
    """Linux allows any byte in a name; DVC cannot hash one that is not UTF-8 (docs/data.md). The
    scanner names every such entry, escaped, whatever it is: an alphabet folder, a stray file."""
    make_set(tmp_path / "s", {"A": 2, "B": 1}, drawers=3)
    stray = os.fsencode(tmp_path / "s" / "A" / "character01") + b"/notes\xff.txt"
    Path(os.fsdecode(stray)).write_text("x")
    (tmp_path / "s" / "B").rename(os.fsdecode(os.fsencode(tmp_path / "s") + b"/B\xe9"))
    with pytest.raises(InputError) as refused:
        scan_sets({"s": tmp_path / "s"})
    assert str(refused.value) == (
        f"2 name(s) not valid UTF-8, which DVC cannot hash: {tmp_path}/s/B\\xe9, "
        f"{tmp_path}/s/A/character01/notes\\xff.txt; rename them"
    )
