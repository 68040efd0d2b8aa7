"""What the whole-pipeline benchmarks share: a fresh clone of HEAD with its own data source."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def clone_with_source(source: str, prefix: str) -> tuple[Path, dict, str]:
    """Clone this repository's committed HEAD into a new temporary folder (so nothing is cached)
    and set its ``data.source`` (a folder made absolute). Returns the clone, the environment to
    run it in (where ``python`` and ``dvc`` are this interpreter's) and the source as set."""
    if source not in ("synthetic", "omniglot"):
        source = str(Path(source).resolve())
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    repo = Path(tempfile.mkdtemp(prefix=prefix)) / "project"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"]["source"] = source
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return repo, env, source
