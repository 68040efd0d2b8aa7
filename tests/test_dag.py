"""dvc.yaml tells the truth: every package module a stage imports is one of its dependencies."""

import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

from omniglot_mtl.params import REGISTRIES

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]

# Load the stage script as a module (without running main) and list the package modules loaded.
PROBE = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("stage", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(" ".join(sorted(m for m in sys.modules if m.startswith("omniglot_mtl."))))
"""


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_are_exactly_the_modules_it_imports(name):
    stage = STAGES[name]
    script = stage["cmd"].split()[1]
    assert script in stage["deps"]
    loaded = subprocess.run(
        [sys.executable, "-c", PROBE, script], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    modules = {f"src/{m.replace('.', '/')}.py" for m in loaded}
    if "registries=False" not in (ROOT / script).read_text():  # params.registered reads their source
        modules |= {f"src/omniglot_mtl/{m}.py" for m in REGISTRIES}
    declared = {d for d in stage["deps"] if d.startswith("src/")}
    assert modules == declared


def test_every_stage_runs_after_the_params_check():
    assert STAGES["check_params"]["params"] == [{"params.yaml": None}]  # the whole file
    assert STAGES["check_params"]["outs"] == [{"data/params_ok": {"persist": True}}]
    for name, stage in STAGES.items():
        if name != "check_params":
            assert "data/params_ok" in stage["deps"], name


def test_the_params_check_imports_no_torch():
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE.replace('m.startswith("omniglot_mtl.")', 'm == "torch"'),
            "stages/check_params.py",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert loaded == []


def test_checkpoints_record_the_params_their_stage_declares():
    from omniglot_mtl.train import STAGE_PARAMS

    for kind, sections in STAGE_PARAMS.items():
        assert STAGES[f"train_{kind}"]["params"] == list(sections)


def test_the_data_has_its_own_seed():
    # `seed` is training's: a seed sweep must not regenerate the synthetic set.
    assert "seed" not in STAGES["fetch"]["params"] and "data.synthetic" in STAGES["fetch"]["params"]
    assert all("seed" in STAGES[f"train_{kind}"]["params"] for kind in ("multi_input", "multi_output"))
