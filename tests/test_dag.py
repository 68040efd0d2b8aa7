"""dvc.yaml tells the truth: every package module a stage imports is one of its dependencies."""

import json
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
# Modules imported inside a function, which the probe below does not run: the registries, which
# the params check imports to validate their names (Params.validate_registered), and the loss
# weighting methods, which only the multi-output model's training imports (train.py), so that a
# new method does not retrain the multi-input model.
IMPORTED_INSIDE = {
    "check_params": {"src/omniglot_mtl/backbones.py", "src/omniglot_mtl/weighting.py"},
    "train_multi_output": {"src/omniglot_mtl/weighting.py"},
}

# Load each stage script as a module (without running main), import what its functions import
# (the training stage imports torch's modules only after cpu.portable is applied), and list the
# package modules loaded. One process imports the third-party libraries once, then forks a child
# per stage, so that each child starts from no package module at all without paying for torch's
# import again.
PROBE = """
import ast, importlib, importlib.util, json, os, sys
import dvclive, numpy, pandas, PIL.Image, torch, tqdm, yaml
found = {}
for script in sys.argv[1:]:
    read, write = os.pipe()
    if os.fork() == 0:
        os.close(read)
        spec = importlib.util.spec_from_file_location("stage", script)
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
        for node in ast.walk(ast.parse(open(script).read())):
            if isinstance(node, ast.ImportFrom) and node.module.startswith("omniglot_mtl"):
                for alias in node.names:  # a module (from omniglot_mtl import distributed) or a name
                    try:
                        importlib.import_module(f"{node.module}.{alias.name}")
                    except ModuleNotFoundError:
                        importlib.import_module(node.module)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    importlib.import_module(alias.name)
        os.write(write, " ".join(sorted(m for m in sys.modules if m.startswith("omniglot_mtl."))).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        found[script] = pipe.read().split()
    assert os.wait()[1] == 0, script
print(json.dumps(found))
"""
# A stage script, alone, in a fresh process: whether it imports torch.
NO_TORCH = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("stage", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(" ".join(m for m in sys.modules if m == "torch"))
"""


@pytest.fixture(scope="module")
def loaded() -> dict[str, list[str]]:
    scripts = sorted({stage["cmd"].split()[1] for stage in STAGES.values()})
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *scripts], cwd=ROOT, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_are_exactly_the_modules_it_imports(name, loaded):
    stage = STAGES[name]
    script = stage["cmd"].split()[1]
    assert script in stage["deps"]
    modules = {f"src/{m.replace('.', '/')}.py" for m in loaded[script]} | IMPORTED_INSIDE.get(name, set())
    declared = {d for d in stage["deps"] if d.startswith("src/")}
    assert modules == declared


def test_every_stage_runs_after_the_params_check():
    assert STAGES["check_params"]["params"] == [{"params.yaml": None}]  # the whole file
    assert STAGES["check_params"]["outs"] == [{"data/params_ok": {"persist": True}}]
    for name, stage in STAGES.items():
        if name != "check_params":
            assert "data/params_ok" in stage["deps"], name


@pytest.mark.parametrize("script", ["stages/download.py", "stages/index.py"])
def test_the_data_stages_import_no_torch(script):
    out = subprocess.run(
        [sys.executable, "-c", NO_TORCH, script], cwd=ROOT, check=True, capture_output=True, text=True
    )
    assert out.stdout.split() == []


def test_the_data_has_its_own_seed():
    # `seed` is training's: a seed sweep must not regenerate the synthetic set.
    assert "seed" not in STAGES["index"]["params"] and "data.synthetic" in STAGES["index"]["params"]
    assert all("seed" in STAGES[f"train_{kind}"]["params"] for kind in ("multi_input", "multi_output"))
