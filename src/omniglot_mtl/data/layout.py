"""Omniglot's folder layout: ``<set>/<Alphabet>/<characterNN>/<id>_<drawer>.png``.

One scanner serves every source and the params check alike, so a folder read in place, an
extracted zip and the synthetic set are checked by the same rules, and what the index stage
would refuse the params check refuses first. A drawing is an image file (:data:`IMAGE_SUFFIXES`,
any case: ``0709_01.PNG`` is one) named ``<id>_<drawer>``; entries that are not drawings (OS
metadata, READMEs, a folder named like a drawing, a symlink to a folder) are skipped, counted
and named; an image whose name breaks the pattern or a character folder with no drawings is an
error. Symlinks to files are read as the files they point to; symlinks to folders are not
followed.
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from omniglot_mtl.core.errors import InputError

# The formats a drawing app, a scanner or a camera writes, as the decoder reads them (data/decode.py).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp")
DRAWING_NAME = re.compile(
    r"^(\d+)_(\d+)\.(?:" + "|".join(s[1:] for s in IMAGE_SUFFIXES) + r")$", re.IGNORECASE
)


@dataclass(frozen=True)
class Drawing:
    set: str
    alphabet: str
    character: str  # "<Alphabet>/<characterNN>", unique across alphabets
    drawer: int
    path: str  # "<set>/<Alphabet>/<character>/<file>", with forward slashes: the manifests' name
    file: str  # where it lies on disk (a source folder or a scratch one); not in the manifests


@dataclass
class Scan:
    drawings: list[Drawing]
    skipped: list[str]  # the paths on disk of files and folders that are not drawings
    # Why a skipped entry is not a drawing, where its name does not say so: a folder named like a
    # drawing, a symlink to a folder, a broken symlink.
    why: dict[str, str] = field(default_factory=dict)
    not_utf8: list[str] = field(default_factory=list)  # entries whose names DVC cannot hash

    def skip(self, path: str, why: str | None = None) -> None:
        self.skipped.append(path)
        if why:
            self.why[path] = why

    def skipped_summary(self) -> str:
        if not self.skipped:
            return "no files skipped"
        # The entries that look like drawings or links first: those a user would want to know of.
        ordered = sorted(self.skipped, key=lambda p: p not in self.why)
        shown = [f"{p} ({self.why[p]})" if p in self.why else p for p in ordered[:3]]
        more = ", ..." if len(self.skipped) > 3 else ""
        return f"skipped {len(self.skipped)} entries that are not drawings: {', '.join(shown)}{more}"


def not_utf8(name: str) -> bool:
    """Whether a file name holds bytes that are not UTF-8 (Linux allows any byte but / and NUL,
    and Python keeps them as surrogates). DVC cannot hash such a name: it stops before any stage
    runs, naming no file (docs/data.md), so the scans below name them instead."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def refuse_not_utf8(paths: list[str]) -> None:
    """One line naming every path in ``paths`` (its bytes escaped, e.g. ``A/bad\\xff.png``)."""
    if paths:
        shown = ", ".join(os.fsencode(p).decode("utf-8", "backslashreplace") for p in paths[:5])
        more = ", ..." if len(paths) > 5 else ""
        raise InputError(
            f"{len(paths)} name(s) not valid UTF-8, which DVC cannot hash: {shown}{more}; rename them"
        )


def _is_metadata(path: Path) -> bool:
    """OS and editor litter (.DS_Store, ._* AppleDouble, Thumbs.db, README...), not drawings."""
    return path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES


def _not_followed(entry: Path) -> str | None:
    """Why a symlink is not read: one to a folder is not followed (DVC does not descend into it
    when it hashes ``data.folder`` either, so a loop cannot hang anything) and a broken one has
    nothing to read. A symlink to a file is read as that file, as DVC hashes it."""
    if not entry.is_symlink():
        return None
    if not entry.exists():
        return "a broken symlink"
    return "a symlink to a folder, not followed" if entry.is_dir() else None


def _visible_dirs(folder: Path, scan: Scan) -> list[Path]:
    dirs = []
    for entry in sorted(folder.iterdir()):
        if not_utf8(entry.name):
            scan.not_utf8.append(str(entry))
            continue
        why = _not_followed(entry)
        if why:
            scan.skip(str(entry), why)
        elif entry.is_dir() and not entry.name.startswith("."):
            dirs.append(entry)
        else:
            scan.skip(str(entry))
    return dirs


def scan_sets(sets: dict[str, Path]) -> Scan:
    """Scan ``{set name: set folder}``, each folder ``<Alphabet>/<character>/<drawing>``.

    A drawing's ``path`` is ``<set>/<Alphabet>/<character>/<file>`` whatever the folder is called
    on disk (the manifests' paths, the same for a folder, an extracted zip or a scratch copy);
    its ``file`` and the skipped entries are named where they lie.
    """
    scan = Scan([], [])
    for name, folder in sets.items():
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"{folder}: set folder not found")
        _scan_alphabets(folder, name, scan)
    refuse_not_utf8(scan.not_utf8)
    return scan


def _scan_alphabets(set_dir: Path, set_name: str, scan: Scan) -> None:
    alphabets = _visible_dirs(set_dir, scan)
    if not alphabets:
        raise InputError(f"{set_dir}: no alphabet folders in it")
    for alphabet_dir in alphabets:
        characters = _visible_dirs(alphabet_dir, scan)
        if not characters:
            raise InputError(f"{alphabet_dir}: alphabet folder has no character folders")
        for char_dir in characters:
            found = 0
            for f in sorted(char_dir.iterdir()):
                if not_utf8(f.name):
                    scan.not_utf8.append(str(f))
                    continue
                why = _not_followed(f)
                if why is None and f.is_dir():
                    why = "a folder named like a drawing" if DRAWING_NAME.match(f.name) else "a folder"
                if why or _is_metadata(f):
                    scan.skip(str(f), why)
                    continue
                m = DRAWING_NAME.match(f.name)
                if not m:
                    raise InputError(f"{f}: file name is not <id>_<drawer> and an image suffix (0709_01.png)")
                drawer = int(m.group(2))
                if drawer < 1:
                    raise InputError(f"{f}: drawer numbers start at 01")
                scan.drawings.append(
                    Drawing(
                        set=set_name,
                        alphabet=alphabet_dir.name,
                        character=f"{alphabet_dir.name}/{char_dir.name}",
                        drawer=drawer,
                        path=f"{set_name}/{f.relative_to(set_dir).as_posix()}",
                        file=str(f),
                    )
                )
                found += 1
            if not found:
                raise InputError(f"{char_dir}: character folder holds no drawings")
