"""cpu.portable's promise, checked on the CPU at hand: it computes the operations of the default
training step to the bytes of the CPU that wrote the committed dvc.lock
(src/omniglot_mtl/training/fingerprint.json), and where it does not, the command says which."""

import json
import subprocess

from conftest import ENV, ROOT

EXPECTED = ROOT / "src" / "omniglot_mtl" / "training" / "fingerprint.json"


def fingerprint(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["omniglot-mtl-fingerprint", *args], capture_output=True, text=True, env=ENV)


def test_this_cpu_computes_the_committed_bytes(tmp_path):
    done = fingerprint()
    assert done.returncode == 0, done.stdout + done.stderr  # names the operations that differ
    assert done.stdout.splitlines()[-1] == "this CPU computes the committed bytes"
    # One line per committed operation, each the same.
    expected = json.loads(EXPECTED.read_text())
    rows = [line.split() for line in done.stdout.splitlines()[2:-1]]
    assert {name: value for name, value, _ in rows} == {
        k: v for k, v in expected.items() if k not in ("cpu", "torch")
    }
    assert {same for *_, same in rows} == {"same"}
    # Another CPU's values, one operation apart: that operation is named, and the exit says so.
    other = dict(expected, addmm="0" * 16)
    (tmp_path / "other.json").write_text(json.dumps(other))
    done = fingerprint("--expected", str(tmp_path / "other.json"))
    assert done.returncode == 1
    assert done.stderr.strip() == "this CPU computes 1 of 8 operations otherwise: addmm"
    assert [line.split()[-1] for line in done.stdout.splitlines() if line.startswith("addmm")] == ["differs"]
