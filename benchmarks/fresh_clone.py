"""What the whole-pipeline benchmarks share: a fresh clone of HEAD with its own data source."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def clone_with_source(source: str, prefix: str, overrides: list[str] = ()) -> tuple[Path, dict, str]:
    """Clone this repository's committed HEAD into a new temporary folder (so nothing is cached)
    and point it at ``source``: ``synthetic``, ``omniglot``, or a folder (``data.source: folder``
    with ``data.folder`` made absolute). Returns the clone, the environment to run it in (where
    ``python`` and ``dvc`` are this interpreter's) and the source as set. ``overrides`` are
    ``KEY=VALUE`` params (dotted keys, YAML values), as ``dvc exp run -S`` takes them."""
    repo = Path(tempfile.mkdtemp(prefix=prefix)) / "project"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        # The clone's own package, not the one this interpreter has installed (an editable
        # install points at this working tree, which may differ from HEAD).
        "PYTHONPATH": str(repo / "src"),
    }
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    if source in ("synthetic", "omniglot"):
        params["data"]["source"] = source
    else:
        source = str(Path(source).resolve())
        params["data"]["source"] = "folder"
        params["data"]["folder"] = source
    set_params(params, overrides)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return repo, env, source


def set_params(params: dict, overrides: list[str]) -> dict:
    """Set ``KEY=VALUE`` ``overrides`` (dotted keys, YAML values, as ``dvc exp run -S`` takes
    them) in the nested ``params``, in place; a key it does not have ends the script."""
    for override in overrides:
        key, _, value = override.partition("=")
        *parents, name = key.split(".")
        section = params
        for parent in parents:
            section = section.get(parent) if isinstance(section, dict) else None
        if not isinstance(section, dict) or name not in section:
            sys.exit(f"--set {override}: params.yaml has no {key}")
        section[name] = yaml.safe_load(value)
    return params
