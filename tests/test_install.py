"""constraints.txt pins what produced the committed results, and the code runs on the Python
that pyproject.toml promises.

Installing without ``-c constraints.txt`` is allowed (docs/install.md says so: newer versions, results
that may differ in the last digits), so nothing here asks the running environment to be the
pinned one; the pins themselves must be complete and admissible.
"""

import re
import subprocess
import sys
from importlib.metadata import requires

from conftest import ROOT
from packaging.requirements import Requirement


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, pinned = line.split("==")
            found[canonical(name)] = pinned
    return found


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_dependency_is_pinned_at_a_version_pyproject_admits():
    # The installed package's requirements, its dev extra's included (pyproject.toml's lists).
    reqs = [Requirement(r) for r in requires("omniglot-mtl")]
    pinned = pins()
    assert {"torch", "dvc"} <= {canonical(r.name) for r in reqs}
    for req in reqs:
        name = canonical(req.name)
        assert name in pinned, f"{name} is not pinned in constraints.txt"
        assert req.specifier.contains(pinned[name], prereleases=True), f"{name}=={pinned[name]} vs {req}"


def test_the_code_needs_no_newer_python_than_pyproject_promises():
    """vermin reads every module and names the oldest Python that has each feature it uses
    (e.g. contextlib.chdir is 3.11): none may be newer than requires-python."""
    # tomllib is 3.11+: the one line is read with a pattern
    oldest = re.search(r'^requires-python = ">=(\d+\.\d+)"$', (ROOT / "pyproject.toml").read_text(), re.M)[1]
    folders = [str(ROOT / f) for f in ("src", "stages", "tests", "benchmarks", "tools")]
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, vermin; sys.exit(vermin.main())",
            "-q",
            "--no-tips",
            "--eval-annotations",
            "--violations",
        ]
        + ["--backport", "dataclasses", f"-t={oldest}-", *folders],
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0, found.stdout + found.stderr
    assert f"Python {oldest} or newer" in (ROOT / "README.md").read_text()
