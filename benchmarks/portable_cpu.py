"""Does capping the CPU's instruction set change the results, and what does it cost?

    python benchmarks/portable_cpu.py DATA_SOURCE [--kind multi_output]

oneDNN (convolutions, pooling), MKL (matrix products) and PyTorch's own kernels choose their
code by the instruction sets they find, and with it the order of their floating-point sums: that
is why the same params give figures that differ in the 3rd-4th digit on another CPU family. Each
can be capped by an environment variable (ONEDNN_MAX_CPU_ISA, MKL_CBWR, ATEN_CPU_CAPABILITY).

Clones HEAD, points it at DATA_SOURCE, runs fetch and index once, then runs the training stage
(default params) under each setting below, one after another, and prints per setting the
checkpoint's sha256, the best validation accuracy and the training images/s.
"""

import argparse
import hashlib
import json
import re
import subprocess
import sys

import torch
from fresh_clone import clone_with_source  # benchmarks/fresh_clone.py (the script's own folder)

SETTINGS = {
    "default": {},
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
    "avx2, again": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
    "sse4.1 / compatible": {
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "MKL_CBWR": "COMPATIBLE",
        "ATEN_CPU_CAPABILITY": "default",
    },
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="e.g. ../shared/omniglot/images_background")
    ap.add_argument("--kind", default="multi_output", choices=["multi_input", "multi_output"])
    args = ap.parse_args()
    repo, env, source = clone_with_source(args.source, "portable_cpu_")
    subprocess.run(["git", "commit", "-qam", f"data: {source}"], cwd=repo, check=True, env=env)
    subprocess.run(["dvc", "repro", "index"], cwd=repo, check=True, env=env, capture_output=True)
    results = {}
    for name, extra in SETTINGS.items():
        out = subprocess.run(
            [sys.executable, "stages/train.py", args.kind],
            cwd=repo,
            env=env | extra,
            capture_output=True,
            text=True,
        )
        if out.returncode:
            sys.exit(f"{name}: training failed:\n{out.stderr[-2000:]}")
        line = out.stdout.strip().splitlines()[-1]
        sha = hashlib.sha256((repo / "models" / f"{args.kind}.pt").read_bytes()).hexdigest()
        # The stored weights alone (the checkpoint also records the environment, which differs).
        state = torch.load(repo / "models" / f"{args.kind}.pt", weights_only=True)["state_dict"]
        weights = hashlib.sha256(b"".join(v.numpy().tobytes() for v in state.values())).hexdigest()
        results[name] = {
            "env": extra,
            "checkpoint_sha256": sha[:16],
            "weights_sha256": weights[:16],
            "val": re.search(r"val accuracy (.*?), \d+ training", line).group(1),
            "images_per_s": int(re.search(r"(\d+) training images/s", line).group(1)),
        }
        r = results[name]
        print(f"{name:22} weights {weights[:16]}  val {r['val']}  {r['images_per_s']} images/s")
    print(json.dumps({"source": source, "kind": args.kind, "results": results}))


if __name__ == "__main__":
    main()
