"""Stage ``fetch``: put a data source into ``data/raw/<set>/`` in Omniglot's layout.

``data.source`` is one of
- ``synthetic``: the procedural set of :mod:`omniglot_mtl.synthetic`, written as set ``synthetic``;
- ``omniglot``: the official zips, from ``omniglot/`` if a user put them there, else downloaded
  from ``data.mirror`` into ``omniglot/`` and checked against their published md5;
- a folder in Omniglot layout: either one set (``images_background/``, alphabets inside) or a
  folder that holds ``images_background/`` and/or ``images_evaluation/``.
"""

import shutil
import urllib.error
import zipfile
from pathlib import Path, PurePosixPath

from torchvision.datasets.utils import check_integrity, download_url

from . import layout, synthetic
from .atomic import atomic_dir
from .errors import InputError
from .params import Data

# Official release (MIT licence); torchvision's Omniglot dataset uses the same files.
OMNIGLOT_MD5 = {
    "images_background": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation": "6b91aef0f799c5bb55b94e3f2daec811",
}
ZIP_FOLDER = Path("omniglot")  # where official zips are kept, or put by hand when offline


def fetch(data: Data, out: Path, zip_folder: Path = ZIP_FOLDER) -> layout.Scan:
    """Write ``data.source`` into ``out`` (replaced whole, atomically).

    Returns the scan of ``out``, with the files of the source that were not copied (because they
    are not drawings) added to its ``skipped``.
    """
    skipped = []
    with atomic_dir(out) as tmp:
        if data.source == "synthetic":
            s = data.synthetic
            synthetic.generate(tmp / "synthetic", s.seed, s.alphabets, s.characters, s.drawers)
        elif data.source == "omniglot":
            for name in (f"images_{s}" for s in data.sets):
                archive = official_zip(name, data.mirror, zip_folder)
                extract_zip(archive, tmp)
        else:
            skipped = copy_folder(Path(data.source), data.sets, tmp)
        scan = layout.scan_sets(tmp)
    scan.skipped = skipped + scan.skipped
    return scan


def official_zip(name: str, mirror: str, folder: Path, md5: str | None = None) -> Path:
    """Path of ``folder/<name>.zip`` with a verified md5, downloading it from ``mirror`` if absent."""
    md5 = md5 or OMNIGLOT_MD5[name]
    path = Path(folder) / f"{name}.zip"
    if path.exists():
        if not check_integrity(str(path), md5):
            raise InputError(f"{path}: md5 is not {md5}; the file is damaged or not the official {name}.zip")
        return path
    url = f"{mirror.rstrip('/')}/{name}.zip"
    partial = path.with_name(f".{path.name}.part")
    try:
        # download_url checks the md5 and raises RuntimeError on a mismatch.
        download_url(url, str(partial.parent), partial.name, md5=md5)
    except (urllib.error.URLError, OSError) as err:
        partial.unlink(missing_ok=True)
        raise InputError(
            f"cannot download {url} ({getattr(err, 'reason', err)}); offline, put the official "
            f"{name}.zip into {folder}/, or set data.source to a folder in Omniglot layout"
        ) from None
    except RuntimeError:
        partial.unlink(missing_ok=True)
        raise InputError(f"{url}: downloaded file's md5 is not {md5}") from None
    partial.rename(path)
    return path


def extract_zip(archive: Path, out: Path) -> None:
    """Extract ``archive`` into ``out``, refusing any entry that would land outside it."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                parts = PurePosixPath(info.filename.replace("\\", "/")).parts
                if info.filename.startswith(("/", "\\")) or ".." in parts or ":" in info.filename:
                    raise InputError(f"{archive}: entry {info.filename!r} would extract outside {out}")
            zf.extractall(out)
    except zipfile.BadZipFile as err:
        raise InputError(f"{archive}: not a zip file ({err})") from None
    # Zips made on a Mac carry a __MACOSX/ folder of resource forks.
    shutil.rmtree(out / "__MACOSX", ignore_errors=True)


def copy_folder(source: Path, sets: tuple[str, ...], out: Path) -> list[str]:
    """Copy the drawings of a folder in Omniglot layout into ``out/<set>/``.

    Files that are not drawings stay behind; their paths are returned.
    """
    if not source.is_dir():
        raise InputError(f"data.source: {source} is not 'synthetic', 'omniglot' or an existing folder")
    if any((source / name).is_dir() for name in OMNIGLOT_MD5):
        set_dirs = [source / f"images_{s}" for s in sets]
        for set_dir in set_dirs:
            if not set_dir.is_dir():
                raise InputError(f"data.sets: {set_dir} not found")
    else:  # the folder is itself one set: its alphabets are right inside it
        set_dirs = [source]
    skipped = []
    for set_dir in set_dirs:
        name = set_dir.resolve().name
        scan = layout.scan_alphabets(set_dir, name)
        skipped += [f"{set_dir}/{p}" for p in scan.skipped]
        for drawing in scan.drawings:
            dst = out / name / drawing.path
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(set_dir / drawing.path, dst)
    return skipped
