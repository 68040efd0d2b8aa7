"""Two CPU studies that fixed a default: which instruction sets and which thread counts give
which bytes, at what speed.

    python benchmarks/cpu_study.py isa DATA_SOURCE [--kind multi_output]
    python benchmarks/cpu_study.py sharing DATA_DIR [--steps 300] [--repeat 1] [--json FILE]

isa: oneDNN (convolutions, pooling), MKL (matrix products) and PyTorch's own kernels choose their
code by the instruction sets they find, and with it the order of their floating-point sums: that
is why the same params give figures that differ in the 3rd-4th digit on another CPU family. Each
can be capped by an environment variable (ONEDNN_MAX_CPU_ISA, MKL_CBWR, ATEN_CPU_CAPABILITY).
Clones HEAD, points it at DATA_SOURCE, runs the data stages once, then runs the training stage
(default params, ``cpu.portable`` off but in the leg that tests it) under each setting of
ISA_SETTINGS, one after another, and prints per setting the weights' sha256, the best
validation accuracy and the training images/s.

sharing: each leg trains the multi-output seed network (the default pipeline's) for ``--steps``
at batch 32 in a fresh child process, with ``train.threads`` at ``auto`` (this machine's CPUs)
or 1, and at ``auto`` with ``OMP_WAIT_POLICY=PASSIVE``, while 0 or 1 other processes spin on
the CPU (the situation of ``dvc queue start -j 2`` or of two users on one box). Also reports
whether the thread count changes the trained weights.
"""

import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from common import clone_with_source, machine  # benchmarks/common.py

from omniglot_mtl.core.packed import PackedSplit, load_split, read_maps
from omniglot_mtl.core.params import Split, Train
from omniglot_mtl.data.index import index_and_pack
from omniglot_mtl.models.networks import ModelConfig, build_model
from omniglot_mtl.training.distributed import threads_per_process
from omniglot_mtl.training.loop import fit
from omniglot_mtl.weighting.methods import LossWeighting

# Each leg: cpu.portable, and the environment the stage runs in (the legs with portable off
# set the caps by hand; "cpu.portable" is the param's own cap, which should match "avx2").
ISA_SETTINGS = {
    "default": (False, {}),
    "avx2": (False, {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}),
    "avx2, again": (False, {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}),
    "cpu.portable": (True, {}),
    "sse4.1 / compatible": (
        False,
        {"ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "default"},
    ),
}
SPIN = "while True: pass"
# train.threads, and extra environment: OpenMP's passive wait policy changes how idle threads
# wait (not the numbers), the other remedy one could expect to help.
SHARING_LEGS = (("auto", {}), ("1", {}), ("auto", {"OMP_WAIT_POLICY": "PASSIVE"}))


def weights_sha256(state_dict: dict) -> str:
    """The weights alone, first 16 hex digits (a checkpoint also records its environment)."""
    return hashlib.sha256(b"".join(v.numpy().tobytes() for v in state_dict.values())).hexdigest()[:16]


def isa(args: argparse.Namespace) -> None:
    repo, env, source = clone_with_source(args.source, "cpu_study_isa_")
    subprocess.run(["git", "commit", "-qam", f"data: {source}"], cwd=repo, check=True, env=env)
    subprocess.run(["dvc", "repro", "index"], cwd=repo, check=True, env=env, capture_output=True)
    results = {}
    for name, (portable, extra) in ISA_SETTINGS.items():
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["cpu"]["portable"] = portable
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        out = subprocess.run(
            [sys.executable, f"stages/train_{args.kind}.py"],
            cwd=repo,
            env=env | extra,
            capture_output=True,
            text=True,
        )
        if out.returncode:
            sys.exit(f"{name}: training failed:\n{out.stderr[-2000:]}")
        line = out.stdout.strip().splitlines()[-1]
        state = torch.load(repo / "models" / f"{args.kind}.pt", weights_only=True)["state_dict"]
        results[name] = {
            "portable": portable,
            "env": extra,
            "weights_sha256": weights_sha256(state),
            "val": re.search(r"val accuracy (.*?), \d+ training", line).group(1),
            "images_per_s": int(re.search(r"(\d+) training images/s", line).group(1)),
        }
        r = results[name]
        print(f"{name:22} weights {r['weights_sha256']}  val {r['val']}  {r['images_per_s']} images/s")
    print(machine())
    print(json.dumps({"source": source, "kind": args.kind, "machine": machine(), "results": results}))


def sharing_leg(packed: Path, threads: str, steps: int) -> dict:
    torch.set_num_threads(threads_per_process(threads if threads == "auto" else int(threads)))
    alphabets, characters = read_maps(packed.parent / "index")
    train = load_split(packed, "train")
    if steps * 32 > len(train):
        sys.exit(f"--steps {steps}: the training split has {len(train)} images, {len(train) // 32} steps")
    rows = torch.arange(steps * 32)
    train = PackedSplit(train.images[rows], {k: v[rows] for k, v in train.labels.items()})
    val = PackedSplit(train.images[:32], {k: v[:32] for k, v in train.labels.items()})
    torch.manual_seed(0)
    config = ModelConfig("multi_output", len(alphabets), len(characters), train.images.shape[-1], "seed")
    model = build_model(config)
    result = fit(model, LossWeighting({"alphabet": 1.0, "character": 1.0}), train, val, Train(epochs=1), 0)
    buffer = io.BytesIO()  # hashed as torch.save writes the state: the figures docs/ quotes
    torch.save(result.best_state, buffer)
    return {
        "threads": torch.get_num_threads(),
        "images_per_s": round(result.images_per_s),
        "weights_sha256": hashlib.sha256(buffer.getvalue()).hexdigest()[:16],
    }


def sharing(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        index_and_pack({args.data_dir.name: args.data_dir}, Split(), 64, data / "index", data / "packed")
        results = []
        for busy in (0, 1):
            spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(busy)]
            try:
                time.sleep(0.5)
                for threads, extra in [leg for leg in SHARING_LEGS for _ in range(args.repeat)]:
                    cmd = [
                        sys.executable,
                        __file__,
                        "sharing",
                        str(args.data_dir),
                        "--steps",
                        str(args.steps),
                    ]
                    cmd += ["--leg", str(data / "packed"), threads]
                    out = subprocess.run(
                        cmd, check=True, capture_output=True, text=True, env=os.environ | extra
                    )
                    setting = " ".join([threads, *(f"{k}={v}" for k, v in extra.items())])
                    row = {"busy_processes": busy, "setting": setting} | json.loads(out.stdout)
                    results.append(row)
                    print(row, flush=True)
            finally:
                for s in spinners:
                    s.kill()
    print(f"\n{machine()}; seed network, batch 32")
    print("| other busy processes | train.threads | threads | images/s | weights (sha256) |")
    print("|---|---|---|---|---|")
    for r in results:
        cells = (
            r["busy_processes"],
            r["setting"],
            r["threads"],
            f"{r['images_per_s']:,}",
            r["weights_sha256"],
        )
        print("| " + " | ".join(map(str, cells)) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    studies = ap.add_subparsers(dest="study", required=True)
    p = studies.add_parser("isa", help="instruction-set caps: bytes and speed")
    p.add_argument("source", help="e.g. ../shared/omniglot/images_background")
    p.add_argument("--kind", default="multi_output", choices=["multi_input", "multi_output"])
    p = studies.add_parser("sharing", help="thread counts next to a busy process: speed and bytes")
    p.add_argument("data_dir", type=Path)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--repeat", type=int, default=1, help="run every leg this many times")
    p.add_argument("--json", type=Path)
    p.add_argument("--leg", nargs=2, metavar=("PACKED", "THREADS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.study == "sharing" and args.leg:
        print(json.dumps(sharing_leg(Path(args.leg[0]), args.leg[1], args.steps)))
    else:
        {"isa": isa, "sharing": sharing}[args.study](args)


if __name__ == "__main__":
    main()
