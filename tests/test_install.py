"""constraints.txt pins what produced the committed results, and this environment is that one."""

import re
from importlib.metadata import requires, version

from conftest import ROOT


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, pinned = line.split("==")
            found[canonical(name)] = pinned
    return found


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_dependency_is_pinned_and_installed_at_its_pin():
    # The installed package's requirements, its dev extra's included (pyproject.toml's lists).
    names = [canonical(re.match(r"[A-Za-z0-9_.-]+", r).group()) for r in requires("omniglot-mtl")]
    pinned = pins()
    assert "torch" in names and "dvc" in names
    for name in names:
        assert name in pinned, f"{name} is not pinned in constraints.txt"
        # torch's version carries its build (2.14.1+cu130); the pin matches any build.
        assert version(name).split("+")[0] == pinned[name], name
