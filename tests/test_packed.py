"""Decoded images (the index stage's data/packed): arrays equal to what the notebook's loader
feeds its network."""

import os

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_set, run_stage
from PIL import Image
from torchvision import transforms

from omniglot_mtl.core.errors import InputError
from omniglot_mtl.core.packed import load_split
from omniglot_mtl.core.params import Split
from omniglot_mtl.data.decode import decode, decode_all
from omniglot_mtl.data.index import index_and_pack
from omniglot_mtl.data.synthetic import generate


def test_decode_matches_the_notebook_transform(tmp_path):
    generate(tmp_path, seed=1, alphabets=2, characters=2, drawers=3)
    paths = sorted(tmp_path.rglob("*.png"))
    for size in (64, 32, 20):
        notebook = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor()])
        for path in paths[:4]:
            expected = notebook(Image.open(path).convert("L"))  # (1, S, S) floats in [0, 1]
            ours = torch.from_numpy(decode(path, size)).float().div(255)
            assert torch.equal(ours, expected[0])
    # Several processes give the same array, in the same order, as one.
    assert np.array_equal(decode_all(paths, 32, workers=2), np.stack([decode(p, 32) for p in paths]))


def test_index_stage_packs_one_array_per_split(tmp_path):
    make_set(tmp_path / "raw" / "s", {"A": 2, "B": 1}, drawers=4)
    manifests, _, _ = index_and_pack(
        {"s": tmp_path / "raw" / "s"}, Split((3,), (4,)), 16, tmp_path / "index", tmp_path / "packed"
    )
    assert {k: len(v) for k, v in manifests.items()} == {"train": 6, "val": 3, "test": 3}
    assert sorted(p.name for p in (tmp_path / "packed").iterdir()) == ["test.npz", "train.npz", "val.npz"]
    train = load_split(tmp_path / "packed", "train")
    manifest = pd.read_csv(tmp_path / "index" / "train.csv")
    assert train.images.shape == (6, 1, 16, 16) and train.images.dtype == torch.uint8
    assert train.labels["character"].tolist() == manifest["character_idx"].tolist() == [0, 0, 1, 1, 2, 2]
    assert train.labels["alphabet"].tolist() == [0, 0, 0, 0, 1, 1]
    assert torch.equal(
        train.images[3, 0], torch.from_numpy(decode(tmp_path / "raw" / manifest["path"][3], 16))
    )
    batch = train.batch(torch.tensor([5, 0]))
    assert batch["image"].dtype == torch.float32 and batch["image"].max() <= 1.0
    assert batch["character"].tolist() == [2, 0]


def test_undecodable_png_names_the_file_and_writes_nothing(tmp_path):
    make_set(tmp_path / "raw" / "s", {"A": 2}, drawers=3)
    bad = tmp_path / "raw" / "s" / "A" / "character02" / "0002_02.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(InputError, match=r"0002_02.png: cannot decode as an image"):
        index_and_pack(
            {"s": tmp_path / "raw" / "s"}, Split((2,), (3,)), 16, tmp_path / "index", tmp_path / "packed"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # neither index nor packed arrays


def test_stage_reports_bad_input_in_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text("data:\n  split: {val_drawers: [1, 2], test_drawers: [2]}\n")
    result = run_stage("index.py", tmp_path)
    assert result.returncode == 1
    assert (
        result.stderr
        == "error: params.yaml: data.split: drawer(s) [2] listed in both val_drawers and test_drawers\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_index_and_packed_are_replaced_together_or_not_at_all(tmp_path, monkeypatch):
    from omniglot_mtl.data import index

    make_set(tmp_path / "raw" / "s", {"A": 2}, drawers=3)
    args = ({"s": tmp_path / "raw" / "s"}, Split((2,), (3,)), 16, tmp_path / "index", tmp_path / "packed")
    index_and_pack(*args)
    before = {p.relative_to(tmp_path).as_posix(): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    make_set(tmp_path / "raw" / "s", {"B": 1}, drawers=3, first_id=10)  # a new alphabet

    def disk_full(*_):
        raise OSError("No space left on device")

    monkeypatch.setattr(index, "write_packed", disk_full)  # the index is written, the arrays fail
    with pytest.raises(OSError, match="No space left"):
        index_and_pack(*args)
    after = {p.relative_to(tmp_path).as_posix(): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert {k: v for k, v in after.items() if not k.startswith("raw/")} == {
        k: v for k, v in before.items() if not k.startswith("raw/")
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index", "packed", "raw"]  # no temporaries


def test_outputs_are_readable_by_others_as_the_umask_allows(tmp_path):
    """Temporary names come from mkdtemp/mkstemp, which make them private (0700/0600); renamed
    into place, outputs must get ordinary modes, or other users of a shared machine cannot read
    them."""
    import stat

    from omniglot_mtl.core.atomic import UMASK, atomic_dir, write_json

    with atomic_dir(tmp_path / "out") as tmp:
        write_json(tmp / "x.json", {"a": 1})
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o777 & ~UMASK
    assert stat.S_IMODE((tmp_path / "out" / "x.json").stat().st_mode) == 0o666 & ~UMASK


def test_decoding_starts_no_more_processes_than_the_cpus_this_process_may_use(tmp_path, monkeypatch):
    """Under SLURM or a cgroup the affinity mask, not the host's core count, says how many."""
    from omniglot_mtl.core import environment
    from omniglot_mtl.data import decode

    started = []

    class Pool:  # records how many workers it was asked for, decodes nothing
        def __init__(self, workers):
            started.append(workers)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def map(self, fn, chunks):
            return [np.zeros((len(c[0]), c[1], c[1]), np.uint8) for c in chunks]

    monkeypatch.setattr(decode, "ProcessPoolExecutor", Pool)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)  # the host
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)  # this job
    assert environment.usable_cpus() == 3
    decode.decode_all([tmp_path / f"{i}.png" for i in range(64 * 512)], 8)
    assert started == [3]


def test_an_output_folder_that_cannot_be_written_is_named_not_its_temporary(tmp_path, monkeypatch):
    """A read-only folder (not testable as root, which the suite may run as): the temporary file or
    folder cannot be made there, and the error names the output, as run_stage prints it."""
    import tempfile

    from omniglot_mtl.core.atomic import atomic_dir, atomic_file

    def denied(*args, dir, prefix, **kwargs):
        raise PermissionError(13, "Permission denied", f"{dir}/{prefix}x1y2")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    monkeypatch.setattr(tempfile, "mkdtemp", denied)
    for atomic, target in ((atomic_file, tmp_path / "models" / "m.pt"), (atomic_dir, tmp_path / "packed")):
        with pytest.raises(PermissionError) as refused, atomic(target):
            pass
        assert (refused.value.filename, refused.value.strerror) == (str(target), "Permission denied")
