"""What ``data.source: folder`` reads from ``data.folder``, decided from names only (no image is
opened), so that the params check can refuse a folder that lacks a set before any stage runs."""

from pathlib import Path

from .params import OMNIGLOT_SETS, Data, ParamError


def folder_sets(data: Data) -> list[tuple[str, Path]]:
    """What ``data.source: folder`` reads: ``(set name, set folder or official zip)`` pairs.

    ``data.folder`` is either a folder of sets, holding ``images_background`` and/or
    ``images_evaluation`` as folders or as the official zips (``data.sets`` chooses; a folder
    wins over a zip of the same set), or one set, its alphabets right inside it, read whole: there
    ``data.sets`` has nothing to choose and anything but its default is refused. Looks at names
    only, so the params check can call it before any stage runs.
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
