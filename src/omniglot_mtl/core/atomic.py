"""Write outputs under a temporary name and rename them into place, so that a failed stage
never leaves a half-written output behind, and an OS error while writing names the output."""

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Reading the umask means setting it: once, at import, before any thread could create a file.
UMASK = os.umask(0o022)
os.umask(UMASK)


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``target``; on success it replaces ``target``."""
    target = Path(target)
    with _naming(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(tmp, 0o777 & ~UMASK)  # mkdtemp makes it 0700; outputs are ordinary folders
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        _name_file(err, target)
        raise


@contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it is renamed to ``target``."""
    target = Path(target)
    with _naming(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes it 0600; outputs are ordinary files
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        _name_file(err, target)
        raise


@contextmanager
def _naming(target: Path) -> Iterator[None]:
    """A folder that cannot be made or written (read-only, no permission) names the output
    that cannot be written, not the temporary name tried for it."""
    try:
        yield
    except OSError as err:
        err.filename = str(target)
        raise


def _name_file(err: BaseException, target: Path) -> None:
    """Make an OS error that names no file name ``target``: a write that fails (a full disk,
    ENOSPC; a size limit, EFBIG) says only why, and this is the output being written."""
    if isinstance(err, OSError) and err.errno is not None and err.filename is None:
        err.filename = str(target)


def write_json(target: Path, obj) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_file(target) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
