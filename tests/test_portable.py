"""cpu.portable's promise, checked on the CPU at hand: it computes the operations of the default
training step to the bytes of the CPU that wrote the committed dvc.lock
(src/omniglot_mtl/training/fingerprint.json), and where it does not, the command says which."""

import json
import subprocess

from conftest import ENV, ROOT, documented

EXPECTED = ROOT / "src" / "omniglot_mtl" / "training" / "fingerprint.json"


def fingerprint(*args: str) -> subprocess.CompletedProcess:
    command = [*documented("omniglot-mtl-fingerprint"), *args]  # as docs/reproducibility.md shows it
    return subprocess.run(command, capture_output=True, text=True, env=ENV)


def test_this_cpu_computes_the_committed_bytes_and_a_difference_is_named(tmp_path):
    """One run against the committed values with one operation's value changed: that operation
    alone is named, and every value this CPU computes is the committed one."""
    expected = json.loads(EXPECTED.read_text())
    values = {k: v for k, v in expected.items() if k not in ("cpu", "torch")}
    (tmp_path / "other.json").write_text(json.dumps(expected | {"addmm": "0" * 16}))
    done = fingerprint("--expected", str(tmp_path / "other.json"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip() == f"this CPU computes 1 of {len(values)} operations otherwise: addmm"
    rows = [line.split() for line in done.stdout.splitlines()[2:]]
    assert {name: value for name, value, _ in rows} == values  # names the operation if not
    assert {name: verdict for name, _, verdict in rows if verdict != "same"} == {"addmm": "differs"}
