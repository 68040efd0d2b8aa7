"""What the benchmarks share: a fresh clone of HEAD with its own data source, commands run in
it, its test accuracies, and a line that names the machine a figure comes from."""

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml

from omniglot_mtl.core.environment import cpu_model, usable_cpus

ROOT = Path(__file__).resolve().parents[1]
TASKS = {  # the test accuracies docs/ quotes, as metrics/evaluate.json holds them
    "multi_input.character": ("multi_input", "character"),
    "multi_output.alphabet": ("multi_output", "alphabet"),
    "multi_output.character": ("multi_output", "character"),
}


def machine() -> str:
    """The CPU, how many of its CPUs this process may use, whether it computes bf16 natively
    (bf16 autocast is emulated, and about 12x slower, where it does not), and torch."""
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    capability = torch.backends.cpu.get_cpu_capability()
    bf16 = "native bf16" if native else "bf16 emulated"
    return f"{cpu_model()}, {usable_cpus()} CPUs, {capability}, {bf16}, torch {torch.__version__}"


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


def run(repo: Path, env: dict, *command: str) -> str:
    """``command``'s stdout; a failure ends the script with the end of its output."""
    out = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out.stdout


def test_accuracies(repo: Path) -> dict[str, float]:
    metrics = json.loads((repo / "metrics" / "evaluate.json").read_text())
    return {name: metrics[model][task]["accuracy"] for name, (model, task) in TASKS.items()}


def set_index(data_dir: Path, split) -> tuple[dict, dict[str, int], dict[str, int]]:
    """The index stage's ``({split: manifest}, alphabets, characters)`` for the set folder
    ``data_dir`` under ``split`` (a params.Split), made in this process. The set is named after
    its folder, so every manifest path begins with ``data_dir.name``: ``data_dir.parent / path``
    is the file."""
    from omniglot_mtl.data.index import build_index
    from omniglot_mtl.data.layout import scan_sets

    return build_index(scan_sets({data_dir.name: data_dir}), split)


def decoded_split(data_dir: Path, frame, size: int):
    """The rows of one manifest (``frame``) of the set folder ``data_dir`` (its paths begin with
    the set's name) as a PackedSplit: every PNG decoded once, at ``size``, as the index stage
    packs them, with both label columns."""
    from omniglot_mtl.core.packed import PackedSplit
    from omniglot_mtl.data.decode import decode_all

    images = torch.from_numpy(decode_all([data_dir.parent / p for p in frame["path"]], size)).unsqueeze(1)
    labels = {k: torch.tensor(frame[f"{k}_idx"].to_numpy()) for k in ("alphabet", "character")}
    return PackedSplit(images, labels)


def study_params(overrides: list[str], recipe: Path | None = None):
    """Params for a training study run in this process: the schema's defaults (params.yaml's),
    ``recipe`` (e.g. recipes/convnet.yaml) merged over them, then ``overrides`` (KEY=VALUE),
    checked, with ``train.precision`` resolved for this CPU as the training stage resolves it."""
    from omniglot_mtl.core.devices import resolve_precision
    from omniglot_mtl.core.params import Params, as_dict, from_dict
    from omniglot_mtl.experiments.recipe import merged, read_recipe
    from omniglot_mtl.training.check import check_registered

    values = as_dict(Params())
    if recipe:
        values = merged(values, read_recipe(recipe))
    params = from_dict(set_params(values, overrides))
    check_registered(params)
    precision = resolve_precision(params.train.precision, torch.device("cpu"))
    return dataclasses.replace(params, train=dataclasses.replace(params.train, precision=precision))


def decoded_splits(data_dir: Path, params) -> tuple[dict, dict[str, int], dict[str, int]]:
    """``({split: PackedSplit}, alphabets, characters)`` of the set folder ``data_dir`` under
    ``params.data``: the index stage's manifests and arrays, made in this process."""
    index, alphabets, characters = set_index(data_dir, params.data.split)
    splits = {name: decoded_split(data_dir, frame, params.data.image_size) for name, frame in index.items()}
    return splits, alphabets, characters
