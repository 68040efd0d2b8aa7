"""dvc.yaml tells the truth: every package module a stage imports is one of its dependencies."""

import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

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
    declared = {d for d in stage["deps"] if d.startswith("src/")}
    assert modules == declared
