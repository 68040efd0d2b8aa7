"""The one decoder: any image PIL can open, as a person sees it, to an (S, S) uint8 array.

The index stage and ``omniglot-mtl-predict`` read every drawing here. Omniglot's own 1-bit PNGs
decode as the notebook's loader fed its network, times 255: ``convert("L")`` then
``transforms.Resize((S, S))`` (tests/test_packed.py holds them equal). Drawings made elsewhere
are first brought to what they look like on screen (docs/data.md, "Image kinds"):

- transparency (RGBA, LA, a palette or a colour key with a transparent entry) is composited onto
  white paper: a drawing app's black ink on a transparent canvas is black everywhere in its
  colour channels, and dropping alpha would make it a black square;
- 16-bit and 32-bit integer greyscale is scaled to 8 bits (65,535 -> 255), and floating-point
  greyscale from [0, 1] (or [0, 255] where it exceeds 1), not clipped;
- CMYK and every other colour mode go through RGB to greyscale;
- a photograph's EXIF orientation is applied.
"""

import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from omniglot_mtl.core.environment import usable_cpus
from omniglot_mtl.core.errors import InputError

# Omniglot's drawings are 105 x 105. A side over this bound is no drawing: a decompression bomb
# (a small 1-bit PNG that declares 20,000 x 20,000 pixels decodes to 400 MB) or a photograph.
# Checked on the header, before a pixel is decoded; PIL's own bomb limit (89 million pixels)
# would still let a 9,000 x 9,000 image through, 80 MB for one "drawing".
MAX_SIDE = 4096


def greyscale(img: Image.Image) -> Image.Image:
    """``img`` as an 8-bit greyscale image ("L") that looks as ``img`` does on a white page."""
    img = ImageOps.exif_transpose(img)  # a copy, the same pixels, where there is no EXIF
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        paper = Image.new("RGBA", img.size, "white")
        return Image.alpha_composite(paper, img.convert("RGBA")).convert("L")
    if img.mode.startswith("I") or img.mode == "F":
        values = np.asarray(img, dtype=np.float64)
        top = 65535.0  # 16-bit PNGs and TIFFs; PIL opens them as I;16 or I
        if img.mode == "F":
            top = 1.0 if values.max(initial=0.0) <= 1.0 else 255.0
        return Image.fromarray(np.rint(np.clip(values / top, 0, 1) * 255).astype(np.uint8))
    if img.mode in ("1", "L"):
        return img.convert("L")
    return img.convert("RGB").convert("L")  # CMYK, YCbCr, LAB, HSV and palettes


def decode(path: Path, size: int) -> np.ndarray:
    """One drawing as an (size, size) uint8 array, 255 = white paper.

    Anything that is not a readable image of at most MAX_SIDE pixels a side is an
    :class:`InputError` naming the file: whatever a damaged or hostile file makes PIL raise
    (OSError, SyntaxError, ValueError, EOFError, zlib and struct errors, DecompressionBombError,
    which is none of those) is bad input, not a bug.
    """
    try:
        with warnings.catch_warnings():
            # PIL warns from 89 million pixels; every image that big has a side over MAX_SIDE.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if max(width, height) > MAX_SIDE:
                    raise InputError(
                        f"{path}: declares {width} x {height} pixels; a drawing is at most "
                        f"{MAX_SIDE} pixels a side (Omniglot's are 105 x 105)"
                    )
                grey = greyscale(img)
    except InputError:
        raise
    except Image.DecompressionBombError as err:  # PIL refuses the header itself (not an OSError)
        raise InputError(f"{path}: not a drawing: {str(err).splitlines()[0]}") from None
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not an image") from None
    except Exception as err:  # whatever PIL raises on a damaged file (see the docstring)
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{path}: cannot decode as an image ({message})") from None
    # What torchvision's Resize((S, S)) does to a PIL image, called directly: importing
    # torchvision costs every stage that imports this module about 2 s, for one PIL call.
    return np.array(grey.resize((size, size), Image.BILINEAR), dtype=np.uint8)


def _decode_chunk(args: tuple[list[str], int]) -> np.ndarray:
    paths, size = args
    out = np.empty((len(paths), size, size), np.uint8)
    for i, p in enumerate(paths):
        out[i] = decode(Path(p), size)
    return out


def decode_all(paths: list[Path], size: int, workers: int | None = None) -> np.ndarray:
    """Decode ``paths`` into one (N, size, size) uint8 array, in order, on the CPUs this process
    may use."""
    # PNG decoding holds the GIL, so cores need processes; small sets are not worth starting them.
    workers = min(workers or usable_cpus(), max(1, len(paths) // 512))
    names = [str(p) for p in paths]
    if workers == 1:
        return _decode_chunk((names, size))
    out = np.empty((len(paths), size, size), np.uint8)
    with ProcessPoolExecutor(workers) as pool:
        parts = pool.map(_decode_chunk, [(names[i::workers], size) for i in range(workers)])
        for i, part in enumerate(parts):
            out[i::workers] = part
    return out
