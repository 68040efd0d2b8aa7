"""Stage ``fetch``: put the data source into ``data/raw/<set>/`` in Omniglot's layout.

``data.source`` is one of
- ``synthetic``: the procedural set of :mod:`omniglot_mtl.synthetic` (seed ``data.synthetic.seed``),
  written as set ``synthetic``;
- ``omniglot``: the official zips of ``data.sets``, which the ``download`` stage put in
  ``data/downloads/`` (md5-checked);
- ``folder``: ``data.folder``, either one set (its alphabets right inside it) or a folder of
  sets, ``images_background`` and/or ``images_evaluation``, as folders or as the official zips
  (see :func:`omniglot_mtl.folder_source.folder_sets`).
"""

import shutil
import zipfile
from pathlib import Path, PurePosixPath

from . import layout, synthetic
from .atomic import atomic_dir
from .download import check_zip
from .errors import InputError
from .folder_source import folder_sets
from .params import Data

DOWNLOADS = Path("data/downloads")  # the download stage's output


def fetch(data: Data, out: Path, downloads: Path = DOWNLOADS) -> layout.Scan:
    """Write ``data``'s source into ``out`` (replaced whole, atomically).

    Returns the scan of ``out``, with the files of the source that were not copied (because they
    are not drawings) added to its ``skipped``.
    """
    left = layout.Scan([], [])  # what the source holds besides drawings, named in the source
    with atomic_dir(out) as tmp:
        if data.source == "synthetic":
            s = data.synthetic
            synthetic.generate(tmp / "synthetic", s.seed, s.alphabets, s.characters, s.drawers)
        elif data.source == "omniglot":
            for s in data.sets:
                archive = Path(downloads) / f"images_{s}.zip"
                if not archive.is_file():
                    raise InputError(f"{archive}: not found; the download stage makes it (dvc repro)")
                check_zip(archive)
                extract_zip(archive, tmp)
        else:
            for name, path in folder_sets(data):
                if path.suffix == ".zip":
                    check_zip(path)
                    extract_zip(path, tmp)
                else:
                    copy_set(path, name, tmp, left)
        scan = layout.scan_sets(tmp)
    scan.skipped = left.skipped + scan.skipped
    scan.why |= left.why
    return scan


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


def copy_set(set_dir: Path, name: str, out: Path, left: layout.Scan) -> None:
    """Copy the drawings of one set folder into ``out/<name>/``; add the entries left behind,
    because they are not drawings, to ``left`` (with their paths in the source)."""
    scan = layout.scan_alphabets(set_dir, name)
    for drawing in scan.drawings:
        dst = out / name / drawing.path
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(set_dir / drawing.path, dst)
    for path in scan.skipped:
        left.skip(f"{set_dir}/{path}", scan.why.get(path))
