"""The packed data: every split's images as one uint8 array with its labels, the index maps,
and their readers. The index stage writes them (:mod:`omniglot_mtl.data.index`); training,
evaluation and predict read them here.

Training batches by indexing one tensor (on the GPU, one tensor already on the device) and
never touches a PNG. Writing needs numpy only; torch is imported where tensors are made
(:func:`load_split`), so the index stage starts without it (importing torch takes 2-3 s).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from omniglot_mtl.core.tasks import ALPHABET, CHARACTER, MAPS, TASKS

if TYPE_CHECKING:
    import torch


def write_packed(manifests: dict[str, pd.DataFrame], images: dict[str, np.ndarray], out: Path) -> None:
    """Write ``out/<split>.npz``: the split's decoded ``images`` and its two label columns.
    ``out`` is a folder the caller made (a temporary one:
    see :func:`omniglot_mtl.data.index.index_and_pack`)."""
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


def names_by_index(mapping: dict[str, int]) -> list[str]:
    """The names of a name -> index map, listed by index."""
    return sorted(mapping, key=mapping.get)


def read_maps(index_dir: Path) -> tuple[dict[str, int], dict[str, int]]:
    """The alphabet and character maps the index stage wrote (``data/index``)."""
    index_dir = Path(index_dir)
    return tuple(
        json.loads((index_dir / f"{name}.json").read_text(encoding="utf-8"))
        for name in (MAPS[ALPHABET], MAPS[CHARACTER])
    )
