"""Stage ``download``: the official Omniglot zips, into ``data/downloads/``, md5-checked.

A declared, cached DVC output: with ``data.source: omniglot`` the stage downloads the zips of
``data.sets`` from ``data.mirror``; with any other source the folder holds one note saying so
(an empty output makes DVC warn on every run). Switching back to ``omniglot`` restores the zips
from DVC's run cache instead of downloading them again. Offline, put the zips in a folder and
use ``data.source: folder`` with ``data.folder`` pointing at it: the same md5 check applies.

Plain urllib and hashlib: this stage imports no torch.
"""

import hashlib
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from omniglot_mtl.core.atomic import atomic_dir
from omniglot_mtl.core.errors import InputError
from omniglot_mtl.core.params import Data

# Official release (MIT licence); torchvision's Omniglot dataset uses the same files.
OMNIGLOT_MD5 = {
    "images_background": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation": "6b91aef0f799c5bb55b94e3f2daec811",
}


NOTHING = "NOTHING_DOWNLOADED"  # the note, the one file in out when data.source is not omniglot


def download(data: Data, out: Path) -> list[Path]:
    """Replace ``out`` with the zips of ``data.sets`` (none unless ``data.source`` is omniglot)."""
    with atomic_dir(out) as tmp:
        if data.source != "omniglot":
            (tmp / NOTHING).write_text("data.source is not omniglot: nothing to download\n", encoding="utf-8")
        for s in data.sets if data.source == "omniglot" else ():
            download_zip(f"images_{s}", data.mirror, tmp)
    return sorted(Path(out).glob("*.zip"))


def download_zip(name: str, mirror: str, folder: Path) -> Path:
    """Download ``<mirror>/<name>.zip`` into ``folder`` and check its md5."""
    md5 = OMNIGLOT_MD5[name]
    url = f"{mirror.rstrip('/')}/{name}.zip"
    path = Path(folder) / f"{name}.zip"
    try:
        with urllib.request.urlopen(url, timeout=60) as response, path.open("wb") as f:
            shutil.copyfileobj(response, f, length=1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as err:
        path.unlink(missing_ok=True)
        raise InputError(
            f"data.mirror: cannot download {url} ({getattr(err, 'reason', err)}); offline, put the "
            f"official {name}.zip in a folder and set data.source: folder, data.folder: that folder"
        ) from None
    if file_md5(path) != md5:
        path.unlink()
        raise InputError(f"data.mirror: {url}: the downloaded file's md5 is not {md5}")
    return path


def check_zip(path: Path) -> None:
    """An official zip put somewhere by hand: refuse a damaged or foreign one by its md5."""
    md5 = OMNIGLOT_MD5[path.name.removesuffix(".zip")]
    if file_md5(path) != md5:
        raise InputError(f"{path}: md5 is not {md5}; the file is damaged or not the official {path.name}")


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with Path(path).open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
