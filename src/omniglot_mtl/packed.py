"""Decoded images: every image decoded once into one uint8 array per split, and its reader.

The arrays hold exactly what the notebook's loader fed its network, times 255: PIL decode,
``convert("L")``, ``transforms.Resize((S, S))`` (tests/test_packed.py holds them equal).
Training then batches by indexing one tensor (on the GPU, one tensor already on the device) and
never touches a PNG.

Writing needs numpy and PIL only; torch is imported where tensors are made (:func:`load_split`),
so the index stage starts without it (importing torch takes 2-3 s on a small CPU).
"""

from __future__ import annotations

import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from PIL import Image

from .environment import usable_cpus
from .errors import InputError
from .tasks import TASKS

if TYPE_CHECKING:
    import torch

# Omniglot's drawings are 105 x 105. A side over this bound is no drawing: a decompression bomb
# (a small 1-bit PNG that declares 20,000 x 20,000 pixels decodes to 400 MB) or a photograph.
# Checked on the header, before a pixel is decoded; PIL's own bomb limit (89 million pixels)
# would still let a 9,000 x 9,000 image through, 80 MB for one "drawing".
MAX_SIDE = 4096


def decode(path: Path, size: int) -> np.ndarray:
    """One drawing as the notebook's loader sees it: an (size, size) uint8 array, 255 = white.

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
                gray = img.convert("L")
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
    return np.array(gray.resize((size, size), Image.BILINEAR), dtype=np.uint8)


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


def write_packed(manifests: dict[str, pd.DataFrame], images: dict[str, np.ndarray], out: Path) -> None:
    """Write ``out/<split>.npz``: the split's decoded ``images`` and its two label columns.
    ``out`` is a folder the caller made (a temporary one: see :func:`index.index_and_pack`)."""
    for split, manifest in manifests.items():
        np.savez(
            out / f"{split}.npz",
            images=images[split],
            **{task: manifest[f"{task}_idx"].to_numpy(np.int64) for task in TASKS},
        )


@dataclass
class PackedSplit:
    """One split as tensors: images (N, 1, S, S) uint8 and integer labels per task."""

    images: torch.Tensor
    labels: dict[str, torch.Tensor]  # task (tasks.TASKS) -> (N,) int64

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device: torch.device) -> PackedSplit:
        return PackedSplit(self.images.to(device), {k: v.to(device) for k, v in self.labels.items()})

    def batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Rows ``idx`` as a batch: float images in [0, 1] plus labels, on the split's device."""
        batch = {k: v[idx] for k, v in self.labels.items()}
        batch["image"] = self.images[idx].float().div_(255)
        return batch


def load_split(packed_dir: Path, split: str) -> PackedSplit:
    import torch

    path = Path(packed_dir) / f"{split}.npz"
    with np.load(path, allow_pickle=False) as f:
        images = torch.from_numpy(f["images"]).unsqueeze(1)
        labels = {task: torch.from_numpy(f[task]) for task in TASKS}
    return PackedSplit(images, labels)
