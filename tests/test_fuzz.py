"""Hostile and damaged input for the folder scanner and the image decoder: a clean result or one
InputError that names the path, never another exception, never a hang.

Property-based (Hypothesis), bounded to a few seconds here. A longer run:

    HYPOTHESIS_PROFILE=long pytest tests/test_fuzz.py
"""

import copy
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import run_stage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from omniglot_mtl.core.errors import InputError, ParamError
from omniglot_mtl.core.params import from_dict
from omniglot_mtl.data.decode import MAX_SIDE, decode
from omniglot_mtl.data.layout import scan_sets
from omniglot_mtl.experiments.recipe import flatten
from omniglot_mtl.training.check import check_registered
from omniglot_mtl.training.loop import make_optimizer
from omniglot_mtl.weighting.methods import make_weighting

settings.register_profile(
    "suite", max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("long", max_examples=5000, deadline=5000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, bit_depth: int = 1, color_type: int = 0, idat: bytes | None = b"") -> bytes:
    """A PNG whose header declares ``width`` x ``height``; its pixels are ``idat`` (zeros if None)."""
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0))
    if idat is None:
        idat = zlib.compress(b"\0" * (height * (1 + (width * bit_depth + 7) // 8)))
    return SIGNATURE + header + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_an_image_bomb_is_refused_on_its_header_in_one_line(tmp_path):
    bomb = tmp_path / "0683_08.png"
    bomb.write_bytes(png(20_000, 20_000))  # 1-bit, a few bytes on disk; 400 million pixels
    with pytest.raises(InputError) as err:
        decode(bomb, 64)
    assert str(err.value).startswith(f"{bomb}: not a drawing: Image size (400000000 pixels) exceeds")
    # Under PIL's own limit, but no drawing: refused before a pixel is decoded.
    big = tmp_path / "big.png"
    big.write_bytes(png(MAX_SIDE + 1, 100))
    with pytest.raises(InputError) as err:
        decode(big, 64)
    assert str(err.value) == (
        f"{big}: declares {MAX_SIDE + 1} x 100 pixels; a drawing is at most {MAX_SIDE} pixels a side "
        "(Omniglot's are 105 x 105)"
    )
    ok = tmp_path / "ok.png"
    ok.write_bytes(png(105, 105, idat=None))
    assert decode(ok, 64).shape == (64, 64)


def test_the_index_stage_names_a_bomb_in_one_line(tmp_path):
    from conftest import make_set

    make_set(tmp_path / "images_background", {"A": 2}, drawers=3)
    bomb = tmp_path / "images_background" / "A" / "character01" / "0001_02.png"
    bomb.write_bytes(png(20_000, 20_000))
    (tmp_path / "params.yaml").write_text(
        "data: {source: folder, folder: images_background, split: {val_drawers: [2], test_drawers: [3]}}\n"
    )
    done = run_stage("index.py", tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: images_background/A/character01/0001_02.png: not a drawing: ")
    assert not (tmp_path / "data").exists()  # nothing written


@given(
    width=st.integers(0, 2**31 - 1),
    height=st.integers(0, 2**31 - 1),
    bit_depth=st.sampled_from([1, 2, 4, 8, 16, 3, 0, 255]),
    color_type=st.sampled_from([0, 2, 3, 4, 6, 1, 7]),
    idat=st.one_of(st.none(), st.binary(max_size=64)),
    cut=st.integers(0, 200),
)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_png_header_decodes_or_is_one_input_error(
    tmp_path, width, height, bit_depth, color_type, idat, cut
):
    if idat is None and height * (1 + (width * bit_depth + 7) // 8) > 1_000_000:
        idat = b""  # zeros for a huge image would take the memory the decoder is meant to save
    data = png(width, height, bit_depth, color_type, idat)
    path = tmp_path / "fuzz.png"
    path.write_bytes(data[: len(data) - cut] if cut < len(data) else data)
    try:
        out = decode(path, 16)
    except InputError as err:
        assert str(err).startswith(f"{path}: ") and "\n" not in str(err)
    else:
        assert out.shape == (16, 16) and out.dtype == np.uint8


@given(st.binary(max_size=300))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_bytes_after_a_png_signature_are_one_input_error(tmp_path, tail):
    path = tmp_path / "noise.png"
    path.write_bytes(SIGNATURE + tail)
    with pytest.raises(InputError) as err:
        decode(path, 16)
    assert str(err.value).startswith(f"{path}: ")


@pytest.mark.parametrize("mode", ["1", "L", "P", "LA", "I;16", "RGBA", "RGB"])
def test_every_image_mode_a_png_can_hold_decodes(tmp_path, mode):
    path = tmp_path / f"{mode.replace(';', '_')}.png"
    Image.new(mode, (105, 105)).save(path)
    assert decode(path, 32).shape == (32, 32)


NAME = st.text(alphabet="abcAB_.-0123456789 é", min_size=1, max_size=12).filter(
    lambda n: n not in (".", "..")
)


@given(
    st.lists(
        st.tuples(st.lists(NAME, min_size=1, max_size=5), st.sampled_from(["file", "png", "dir", "drawing"])),
        max_size=12,
    )
)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_tree_of_names_scans_or_is_one_input_error(tmp_path_factory, entries):
    root = tmp_path_factory.mktemp("tree")
    for parts, kind in entries:
        path = root.joinpath(*parts)
        if kind == "drawing":
            path = path.parent / "0001_01.png"
        elif kind == "png":
            path = path.with_name(path.name + ".png")
        try:
            if kind == "dir":
                path.mkdir(parents=True, exist_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"x")
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            continue  # a name taken by the other kind: not a tree one can make
    try:
        scan = scan_sets({"s": root})  # root as one set folder: <Alphabet>/<character>/<drawing>
    except InputError as err:
        assert "\n" not in str(err) and str(err).startswith(str(root))
    else:
        assert all(Path(d.file).is_file() and d.file == f"{root}/{d.path[2:]}" for d in scan.drawings)
        assert all(Path(p).exists() or Path(p).is_symlink() for p in scan.skipped)


# -- params -----------------------------------------------------------------------------------

PARAMS = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
KEYS = sorted(flatten(PARAMS))  # every key params.yaml has, "train.augment.rotation" and the like
HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(min_value=-(2**70), max_value=2**70), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@given(changes=st.dictionaries(st.sampled_from(KEYS), HOSTILE, min_size=1, max_size=3))
def test_params_at_any_value_load_or_fail_naming_a_key(changes):
    """Any value for any key: a clean load, or one ParamError naming a key of params.yaml."""
    raw = copy.deepcopy(PARAMS)
    for key, value in changes.items():
        *parents, last = key.split(".")
        node = raw
        for part in parents:
            node = node[part]
        node[last] = value
    try:
        params = from_dict(raw)
        check_registered(params)
    except ParamError as err:
        assert str(err).startswith(f"params.yaml: {err.key}: ") and "\n" not in str(err)
        assert err.key.split(".")[0].split("[")[0] in PARAMS, err
        return
    # A clean load: what consumes each value takes it.
    torch.manual_seed(params.seed)
    np.random.default_rng([params.data.synthetic.seed, 1])
    assert 19_280 * params.data.image_size**2 < 2**31  # the background set's index, in bytes
    loss = params.loss
    weighting = make_weighting(loss.weights, loss.method, loss.normalize, loss.methods.get(loss.method))
    losses = {"alphabet": torch.tensor(1.0), "character": torch.tensor(2.0)}
    total = weighting(losses)
    for mean_losses in ({"alphabet": 1.0, "character": 2.0}, {"alphabet": 0.5, "character": 2.5}):
        weighting.end_epoch(mean_losses)  # DWA's weights from two epochs' losses
    weighting.after_step({t: v / 2 for t, v in losses.items()})  # FAMO's logits, one step
    assert torch.isfinite(total) and total > 0 and torch.isfinite(weighting.factors()).all()
    layer = torch.nn.Linear(1, 1)
    optimizer = make_optimizer(layer, weighting, params.train, torch.device("cpu"))
    layer(torch.ones(1, 1)).sum().backward()
    optimizer.step()  # one step at the learning rate and weight decay given leaves finite weights
    assert all(torch.isfinite(p).all() for p in layer.parameters())
