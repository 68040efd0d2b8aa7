import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from omniglot_mtl.core.params import Split
from omniglot_mtl.data.index import index_and_pack
from omniglot_mtl.data.synthetic import generate

ROOT = Path(__file__).resolve().parents[1]

# Two xdist workers share the machine's cores, and each trains with cpu.portable's two threads, in
# its own process or in the stages it starts: OpenMP's threads, spinning while they wait for work,
# take the cores the other worker needs. Waiting passively changes no result; the suite took
# 249 s instead of 300 s, back to back (2-core Intel Xeon). Set before anything imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def write_png(path: Path, seed: int, size: int = 105) -> None:
    """A random 1-bit drawing, distinct per seed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).random((size, size)) > 0.2
    Image.fromarray(pixels).convert("1").save(path)


def make_set(root: Path, alphabets: dict[str, int], drawers: int = 4, first_id: int = 1) -> int:
    """An Omniglot-layout set folder: ``{alphabet: n_characters}``; returns the drawing count."""
    char_id = first_id
    count = 0
    for alphabet, n_chars in alphabets.items():
        for c in range(1, n_chars + 1):
            for d in range(1, drawers + 1):
                write_png(
                    root / alphabet / f"character{c:02d}" / f"{char_id:04d}_{d:02d}.png",
                    seed=char_id * 100 + d,
                )
                count += 1
            char_id += 1
    return count


def run_stage(script: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "stages" / script), *args], cwd=cwd, capture_output=True, text=True
    )


PROJECT_FILES = [
    "dvc.yaml",
    "params.yaml",
    "recipes",
    "stages",
    "src",
    "data/external",
    "models/.gitignore",  # as a clone has it: DVC's ignore rules for the checkpoints
    ".dvc/config",
    ".dvc/plots",
]
# Stages run `python`: make it this interpreter, whose environment has the package installed.
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
GIT_ID = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
}


def copy_project(repo: Path) -> Path:
    """A copy of the project's pipeline in a fresh git repo (nothing committed yet)."""
    repo.mkdir(parents=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, repo / name)
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")  # the project's own (dvc_plots/, ...)
    (repo / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
    git(repo, "init", "-q", "-b", "main")  # the branch the docs' commands name
    return repo


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A tiny synthetic set, indexed and packed: 3 alphabets x 4 characters, 24 x 24, drawers
    1-6 train, 7 validates, 8 tests."""
    root = tmp_path_factory.mktemp("data")
    generate(root / "raw" / "synthetic", seed=0, alphabets=3, characters=4, drawers=8)
    index_and_pack(
        {"synthetic": root / "raw" / "synthetic"}, Split((7,), (8,)), 24, root / "index", root / "packed"
    )
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=ENV | GIT_ID
    ).stdout


def dvc(repo: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env=ENV | GIT_ID | (env or {}),
    )
    if check and result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


# -- Commands the documentation shows ------------------------------------------------------------
DOC_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PROGRAMS = ("dvc", "python", "python3", "pip", "git", "make", "omniglot-mtl-predict", "omniglot-mtl-recipe")
PROGRAMS += ("omniglot-mtl-compare", "omniglot-mtl-fingerprint")
PROGRAMS += ("torchrun", "srun", "ruff", "pytest", "bash")


def program(command: str) -> str:
    """The program a command line starts, after any leading VAR=value assignments."""
    words = command.split(" ")
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        words = words[1:]
    return words[0] if words else ""


def page_commands(text: str) -> list[str]:
    """The commands of a page's ```bash blocks (comments dropped, continued lines joined) and
    the backticked commands of its prose, each once, in order."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            if line.lstrip().startswith("#"):
                continue
            line = re.sub(r"\s+", " ", re.sub(r"\s+#.*$", "", line)).strip()
            if program(line) in PROGRAMS:
                commands.append(line)
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    spans = [re.sub(r"\s+", " ", c) for c in re.findall(r"`([^`]+)`", prose)]  # may wrap a line
    commands += [c for c in spans if " " in c and program(c) in PROGRAMS]
    return list(dict.fromkeys(commands))


def doc_commands() -> dict[str, list[str]]:
    """{command: [pages that show it]} over README.md and docs/*.md."""
    found: dict[str, list[str]] = {}
    for page in DOC_PAGES:
        for command in page_commands(page.read_text(encoding="utf-8")):
            found.setdefault(command, []).append(page.relative_to(ROOT).as_posix())
    return found


def documented(command: str, fill: dict[str, str] | None = None) -> list[str]:
    """The argv of ``command`` exactly as README.md or a page of docs/ shows it, its
    placeholder words replaced by ``fill`` (e.g. ``{"some_drawing.png": str(path)}``).

    Tests run documented commands through this (or :func:`documented_line`), and
    tests/test_readme.py counts a command as run by a test only where a test passes its literal
    text to one of them: the text is what runs.
    """
    assert command in doc_commands(), f"no page shows {command!r}"
    return [(fill or {}).get(word, word) for word in shlex.split(command)]


def documented_line(command: str, fill: dict[str, str] | None = None) -> str:
    """A command line (``&&``, ``>``, variables) exactly as a page shows it, for :func:`shell`;
    placeholder words replaced by ``fill``, shell-quoted. Counted as :func:`documented` is."""
    assert command in doc_commands(), f"no page shows {command!r}"
    return " ".join(shlex.quote(fill[w]) if w in (fill or {}) else w for w in command.split(" "))


def shell(repo: Path, line: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``line`` in bash in ``repo``; ``python``, ``dvc`` and our commands are this venv's."""
    result = subprocess.run(["bash", "-c", line], cwd=repo, capture_output=True, text=True, env=ENV | GIT_ID)
    if check and result.returncode != 0:
        raise AssertionError(f"{line} failed:\n{result.stdout}\n{result.stderr}")
    return result
