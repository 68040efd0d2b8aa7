"""dvc.yaml tells the truth: a stage's code deps are exactly the package folders it imports.

The imports are computed from the source (:func:`imported`), at module level and inside
functions alike: a module a stage could run is a module whose edit must rerun it. Only imports
under ``if TYPE_CHECKING:`` are left out, since they never run.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
PACKAGE = ROOT / "src" / "omniglot_mtl"


def module_path(name: str) -> Path | None:
    """The file of package module ``name`` (omniglot_mtl.x.y), or None for a folder or a name
    that is not a module (``from omniglot_mtl.data import synthetic`` names a module, ``from
    omniglot_mtl.core.errors import InputError`` a class)."""
    path = ROOT / "src" / Path(*name.split("."))
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def imports_of(path: Path) -> set[str]:
    """The package modules ``path`` imports anywhere, ``if TYPE_CHECKING:`` blocks aside."""
    found = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("omniglot_mtl"):
            assert node.level == 0, f"{path}: a relative import; the package imports absolutely"
            for alias in node.names:
                found.add(
                    f"{node.module}.{alias.name}"
                    if module_path(f"{node.module}.{alias.name}")
                    else node.module
                )
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("omniglot_mtl"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {name for name in found if module_path(name)}


def imported(script: Path) -> set[Path]:
    """Every package module ``script`` can run: its imports, theirs, and so on."""
    seen: set[Path] = set()
    todo = [module_path(name) for name in imports_of(script)]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo += [module_path(name) for name in imports_of(path)]
    return seen


def declared_folders(stage: dict) -> set[Path]:
    return {ROOT / dep for dep in stage["deps"] if dep.startswith("src/")}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_are_the_folders_it_imports(name):
    stage = STAGES[name]
    script = stage["cmd"].split()[1]
    assert script in stage["deps"]
    folders = {path.parent for path in imported(ROOT / script)}
    assert all(folder.parent == PACKAGE for folder in folders), "every module lies in a folder of the package"
    assert declared_folders(stage) == folders


def test_the_check_sees_imports_inside_functions(tmp_path):
    """A module imported only inside a function, in a folder the stage does not declare, is
    found: what test_dag exists to catch."""
    script = tmp_path / "stage.py"
    script.write_text("def main():\n    from omniglot_mtl.evaluation.evaluate import write_evaluation\n")
    assert PACKAGE / "evaluation" / "evaluate.py" in imported(script)
    script.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from omniglot_mtl.weighting import methods\n"
    )
    assert imported(script) == set()


def test_the_dag_keeps_its_promises():
    """A new loss weighting method reruns only the multi-output model (and the params check);
    an edit of the evaluation code reruns only evaluate."""
    weighting, evaluation = PACKAGE / "weighting", PACKAGE / "evaluation"
    assert {n for n, s in STAGES.items() if weighting in declared_folders(s)} == {
        "check_params",
        "train_multi_output",
    }
    assert {n for n, s in STAGES.items() if evaluation in declared_folders(s)} == {"evaluate"}
    # Imported by every stage and declared by none: it must run nothing.
    assert [type(node) for node in ast.parse((PACKAGE / "__init__.py").read_text()).body] == [ast.Expr]


def test_every_stage_runs_after_the_params_check():
    assert STAGES["check_params"]["params"] == [{"params.yaml": None}]  # the whole file
    assert STAGES["check_params"]["outs"] == [{"data/params_ok": {"persist": True}}]
    for name, stage in STAGES.items():
        if name != "check_params":
            assert "data/params_ok" in stage["deps"], name


# A stage script, alone, in a fresh process: whether it imports torch.
NO_TORCH = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("stage", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(" ".join(m for m in sys.modules if m == "torch"))
"""


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
