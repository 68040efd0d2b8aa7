import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from omniglot_mtl.index import index_and_pack
from omniglot_mtl.params import Split
from omniglot_mtl.synthetic import generate

ROOT = Path(__file__).resolve().parents[1]


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
    "stages",
    "src",
    "data/external",
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
    (repo / ".gitignore").write_text("__pycache__/\n")
    (repo / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
    git(repo, "init", "-q")
    return repo


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A tiny synthetic set, indexed and packed: 3 alphabets x 4 characters, 24 x 24, drawers
    1-6 train, 7 validates, 8 tests."""
    root = tmp_path_factory.mktemp("data")
    generate(root / "raw" / "synthetic", seed=0, alphabets=3, characters=4, drawers=8)
    index_and_pack(root / "raw", Split((7,), (8,)), 24, root / "index", root / "packed")
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=ENV | GIT_ID
    ).stdout


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True, env=ENV | GIT_ID
    )
    if check and result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result
