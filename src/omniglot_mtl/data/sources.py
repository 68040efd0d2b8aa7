"""What ``data.source`` names, as set folders on disk in Omniglot's layout
(``<set>/<Alphabet>/<characterNN>/<id>_<drawer>.png``), for the ``index`` stage to read.

``data.source`` is one of
- ``synthetic``: the procedural set of :mod:`omniglot_mtl.data.synthetic` (seed ``data.synthetic.seed``),
  drawn into a scratch folder as set ``synthetic``;
- ``omniglot``: the official zips of ``data.sets``, which the ``download`` stage put in
  ``data/downloads/`` (md5-checked), extracted into a scratch folder;
- ``folder``: ``data.folder``, either one set (its alphabets right inside it) or a folder of
  sets, ``images_background`` and/or ``images_evaluation``, as folders (read where they are) or
  as the official zips (extracted; see :func:`omniglot_mtl.data.folder_source.folder_sets`).

No copy of the drawings is kept: a ``data/raw`` of 19,280 files cost DVC ~20 s of hashing and
caching per run and its stat calls on every ``dvc repro`` (docs/performance.md), and bought
nothing, since the index stage decodes every drawing whenever it runs anyway.
"""

import shutil
import zipfile
from pathlib import Path, PurePosixPath

from omniglot_mtl.core.errors import InputError
from omniglot_mtl.core.params import Data
from omniglot_mtl.data import synthetic
from omniglot_mtl.data.download import check_zip
from omniglot_mtl.data.folder_source import folder_sets

DOWNLOADS = Path("data/downloads")  # the download stage's output


def source_sets(data: Data, scratch: Path, downloads: Path = DOWNLOADS) -> dict[str, Path]:
    """``{set name: set folder}`` for ``data``'s source. The synthetic set and zips are written
    into ``scratch``, an empty folder the caller owns and removes; a folder source is read in
    place."""
    scratch = Path(scratch)
    if data.source == "synthetic":
        s = data.synthetic
        synthetic.generate(scratch / "synthetic", s.seed, s.alphabets, s.characters, s.drawers)
        return {"synthetic": scratch / "synthetic"}
    if data.source == "omniglot":
        pairs = [(f"images_{s}", Path(downloads) / f"images_{s}.zip") for s in data.sets]
        for _, archive in pairs:
            if not archive.is_file():
                raise InputError(f"{archive}: not found; the download stage makes it (dvc repro)")
    else:
        pairs = folder_sets(data)
    sets = {}
    for name, path in pairs:
        if path.suffix == ".zip":
            check_zip(path)
            sets[name] = extract_set(path, name, scratch)
        else:
            sets[name] = path
    return sets


def extract_set(archive: Path, name: str, scratch: Path) -> Path:
    """Extract an official zip, whose drawings lie under ``<name>/``, into ``scratch``."""
    extract_zip(archive, scratch)
    if not (scratch / name).is_dir():
        raise InputError(f"{archive}: holds no {name}/ folder")
    return scratch / name


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
