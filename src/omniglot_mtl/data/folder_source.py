"""What a data source holds, decided from names only (no image is opened): which sets a
``data.folder`` holds and which drawers its drawings carry. The params check uses it to refuse a
param that the data makes wrong (a set the folder lacks, a split drawer no drawing has, a split
that leaves nothing to train on), and a folder the index stage would refuse, before DVC deletes
any stage's outputs. A folder is read by the index stage's own scanner (:mod:`.layout`).
"""

import zipfile
from pathlib import Path

from omniglot_mtl.core.errors import ParamError
from omniglot_mtl.core.params import OMNIGLOT_SETS, Data
from omniglot_mtl.data.layout import DRAWING_NAME, scan_sets

OMNIGLOT_DRAWERS = range(1, 21)  # every character of both official sets was drawn by drawers 01..20


def folder_sets(data: Data) -> list[tuple[str, Path]]:
    """What ``data.source: folder`` reads: ``(set name, set folder or official zip)`` pairs.

    ``data.folder`` is either a folder of sets, holding ``images_background`` and/or
    ``images_evaluation`` as folders or as the official zips (``data.sets`` chooses; a folder
    wins over a zip of the same set), or one set, its alphabets right inside it, read whole: there
    ``data.sets`` has nothing to choose and anything but its default is refused. Looks at names
    only, so the params check can call it before any stage runs.

    The zips buy the offline path with no unzip step: the official ``images_background.zip``
    copied into a folder, ``dvc exp run -S data.source=folder -S
    data.folder=/path/to/that/folder`` reads it, md5-checked.
    """
    folder = Path(data.folder)
    if not folder.is_dir():
        raise ParamError("data.folder", f"{folder} is not a folder")
    official = [f"images_{s}" for s in OMNIGLOT_SETS]
    if any((folder / n).is_dir() or (folder / f"{n}.zip").is_file() for n in official):
        pairs = []
        for s in data.sets:
            name = f"images_{s}"
            if (folder / name).is_dir():
                pairs.append((name, folder / name))
            elif (folder / f"{name}.zip").is_file():
                pairs.append((name, folder / f"{name}.zip"))
            else:
                raise ParamError("data.sets", f"{s}: {folder} holds neither {name}/ nor {name}.zip")
        return pairs
    if not any(entry.is_dir() and not entry.name.startswith(".") for entry in folder.iterdir()):
        raise ParamError(
            "data.folder", f"{folder} holds no alphabet folders and no images_background or _evaluation"
        )
    name = folder.resolve().name
    implied = name.removeprefix("images_") if name in official else "background"
    if data.sets not in (("background",), (implied,)):
        raise ParamError(
            "data.sets",
            f"{list(data.sets)} does not apply to data.folder {folder}: it is one set (its alphabets "
            "are right inside it), read whole; leave data.sets at [background], or point data.folder "
            "at a folder that holds images_background/ and images_evaluation/",
        )
    return [(name, folder)]


def check_against_data(data: Data) -> None:
    """Refuse, in one line naming the param, what only the data can tell is wrong."""
    present = source_drawers(data)
    if not present:
        drawings = "drawings named <id>_<drawer> with an image suffix"
        raise ParamError("data.folder", f"{data.folder} holds no {drawings}")
    data.split.check_drawers(present)


def source_drawers(data: Data) -> set[int]:
    """The drawer numbers the source's drawings carry: known for the synthetic set and the
    official zips, read off the file names of a folder (or of the zips in it)."""
    if data.source == "synthetic":
        return set(range(1, data.synthetic.drawers + 1))
    if data.source == "omniglot":
        return set(OMNIGLOT_DRAWERS)
    drawers: set[int] = set()
    for name, path in folder_sets(data):
        if path.suffix == ".zip":  # an official zip, md5-checked by the index stage
            matches = (DRAWING_NAME.match(entry) for entry in _zip_names(path))
            drawers.update(int(match.group(2)) for match in matches if match)
        else:  # every rule of the index stage's scan, which lists names and opens no image
            drawers.update(drawing.drawer for drawing in scan_sets({name: path}).drawings)
    return drawers


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as zf:
            return [n.rsplit("/", 1)[-1] for n in zf.namelist()]
    except zipfile.BadZipFile:
        return []  # the index stage names the file in one line; nothing here to check against
