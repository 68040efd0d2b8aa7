"""Drawings as people make them: each image kind decodes to what the same drawing saved as a plain
greyscale PNG decodes to, through the decoder, the index stage and predict."""

import numpy as np
import pytest
from conftest import make_set
from PIL import Image

from omniglot_mtl.core.errors import InputError
from omniglot_mtl.core.packed import load_split
from omniglot_mtl.core.params import Split
from omniglot_mtl.data.decode import decode
from omniglot_mtl.data.index import index_and_pack
from omniglot_mtl.data.synthetic import generate


@pytest.fixture(scope="module")
def drawing(tmp_path_factory) -> Image.Image:
    """A synthetic drawing, anti-aliased to grey levels as an app's export is: 8-bit greyscale."""
    root = tmp_path_factory.mktemp("drawing")
    generate(root, seed=3, alphabets=1, characters=1, drawers=3)
    ink = Image.open(sorted(root.rglob("*.png"))[0]).convert("L")
    return ink.resize((210, 210), Image.BILINEAR)  # grey edges, as a drawing app draws them


def transparent(grey: Image.Image, mode: str) -> Image.Image:
    """Black ink on a transparent canvas: black everywhere, the ink in the alpha channel."""
    alpha = Image.eval(grey, lambda v: 255 - v)
    black = Image.new("L", grey.size, 0)
    if mode == "LA":
        return Image.merge("LA", (black, alpha))
    return Image.merge("RGBA", (black, black, black, alpha))


def palette_black_on_transparent(grey: Image.Image) -> Image.Image:
    """A 2-colour palette image whose paper is a transparent black entry (as some apps write)."""
    ink = grey.point(lambda v: 0 if v < 128 else 1).convert("P")
    ink.putpalette([0, 0, 0, 0, 0, 0])  # entry 0: black ink; entry 1: black, made transparent
    ink.info["transparency"] = 1
    return ink


def exif_rotated(grey: Image.Image) -> tuple[Image.Image, Image.Exif]:
    """As a camera stores a photo taken sideways: pixels rotated, EXIF orientation 6 (rotate 90
    degrees clockwise to view)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return grey.transpose(Image.Transpose.ROTATE_90), exif


KINDS = {
    "rgba": lambda g: (transparent(g, "RGBA"), "png"),
    "la": lambda g: (transparent(g, "LA"), "png"),
    "palette_transparent": lambda g: (palette_black_on_transparent(g), "png"),
    "grey_16bit": lambda g: (Image.fromarray(np.asarray(g).astype(np.uint16) * 257), "png"),
    "float_0_1": lambda g: (Image.fromarray(np.asarray(g).astype(np.float32) / 255), "tiff"),
    "cmyk": lambda g: (g.convert("RGB").convert("CMYK"), "tiff"),
    "rgb": lambda g: (g.convert("RGB"), "png"),
}


def save(img, path, fmt, **extra):
    img.save(path, format=fmt.upper(), **extra)
    return path


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_decodes_as_the_plain_greyscale_png(tmp_path, drawing, kind):
    img, fmt = KINDS[kind](drawing)
    plain = drawing.point(lambda v: 0 if v < 128 else 255) if kind == "palette_transparent" else drawing
    expected = decode(save(plain, tmp_path / "plain.png", "png"), 64)
    assert np.array_equal(decode(save(img, tmp_path / f"{kind}.{fmt}", fmt), 64), expected)


def test_dropping_alpha_would_have_read_a_black_square(tmp_path, drawing):
    """What the decoder fixes: the RGBA export's colour channels alone are black everywhere."""
    path = save(transparent(drawing, "RGBA"), tmp_path / "export.png", "png")
    assert np.asarray(Image.open(path).convert("L")).max() == 0
    assert decode(path, 64).mean() > 200  # white paper, as the plain drawing


def test_exif_orientation_is_applied(tmp_path, drawing):
    rotated, exif = exif_rotated(drawing)
    photo = save(rotated, tmp_path / "photo.png", "png", exif=exif)
    expected = decode(save(drawing, tmp_path / "plain.png", "png"), 64)
    assert np.array_equal(decode(photo, 64), expected)
    assert not np.array_equal(decode(save(rotated, tmp_path / "no_exif.png", "png"), 64), expected)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    out = decode(save(Image.fromarray(ramp), tmp_path / "ramp.png", "png"), 64)
    assert out.min() == 0 and out.max() == 255 and len(np.unique(out)) > 200


def test_a_file_pil_cannot_read_is_one_line_naming_it(tmp_path):
    bad = tmp_path / "0001_01.jpg"
    bad.write_bytes(b"\xff\xd8\xff not a jpeg")
    with pytest.raises(InputError, match=rf"^{bad}: cannot decode as an image"):
        decode(bad, 64)


def test_the_index_reads_every_kind_and_upper_case_suffixes(tmp_path, drawing):
    """A set whose drawings are of every kind, named .PNG and .tiff among them, packs to the
    same arrays as the set saved as plain PNGs."""
    make_set(tmp_path / "plain", {"A": len(KINDS)}, drawers=3)
    make_set(tmp_path / "kinds", {"A": len(KINDS)}, drawers=3)
    characters = sorted((tmp_path / "plain" / "A").iterdir())
    for character, kind in zip(characters, sorted(KINDS), strict=True):
        img, fmt = KINDS[kind](drawing)
        plain = drawing.point(lambda v: 0 if v < 128 else 255) if kind == "palette_transparent" else drawing
        for path in sorted(character.iterdir()):
            save(plain, path, "png")
            twin = tmp_path / "kinds" / "A" / character.name / path.name
            twin.unlink()
            suffix = ".PNG" if fmt == "png" else f".{fmt}"
            save(img, twin.with_suffix(suffix), fmt)
    split = Split((2,), (3,))
    index_and_pack({"s": tmp_path / "plain"}, split, 32, tmp_path / "p_index", tmp_path / "p_packed")
    index_and_pack({"s": tmp_path / "kinds"}, split, 32, tmp_path / "k_index", tmp_path / "k_packed")
    for name in ("train", "val", "test"):
        plain, kinds = load_split(tmp_path / "p_packed", name), load_split(tmp_path / "k_packed", name)
        assert kinds.images.equal(plain.images) and kinds.images.shape[0] > 0
