"""Training speed on a shared machine: images/s with 0 and 1 other busy processes, by thread count.

    python benchmarks/shared_cpu.py DATA_DIR [--steps 300] [--repeat 1] [--json FILE]

DATA_DIR is one set in Omniglot layout (e.g. ../shared/omniglot/images_background); its
training split is decoded once at the default 64 x 64. Each leg trains the multi-output seed
network (the default pipeline's) at batch 32 in a fresh child process, with ``train.threads``
at ``auto`` (this machine's CPUs) or 1, and at ``auto`` with ``OMP_WAIT_POLICY=PASSIVE``,
while 0 or 1 other processes spin on the CPU, the
situation of ``dvc queue start -j 2`` or of two users on one box. Also reports whether the
thread count changes the trained weights (it does on this machine: see README).
"""

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from omniglot_mtl.distributed import threads_per_process
from omniglot_mtl.environment import cpu_model
from omniglot_mtl.index import index_and_pack, read_maps
from omniglot_mtl.models import ModelConfig, build_model
from omniglot_mtl.packed import PackedSplit, load_split
from omniglot_mtl.params import Split, Train
from omniglot_mtl.training import fit
from omniglot_mtl.weighting import LossWeighting

SPIN = "while True: pass"
# train.threads, and extra environment: OpenMP's passive wait policy changes how idle threads
# wait (not the numbers), the other remedy one could expect to help.
LEGS = (("auto", {}), ("1", {}), ("auto", {"OMP_WAIT_POLICY": "PASSIVE"}))


def leg(packed: Path, threads: str, steps: int) -> dict:
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
    buffer = io.BytesIO()
    torch.save(result.best_state, buffer)
    return {
        "threads": torch.get_num_threads(),
        "images_per_s": round(result.images_per_s),
        "weights_sha256": hashlib.sha256(buffer.getvalue()).hexdigest()[:16],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=1, help="run every leg this many times")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--leg", nargs=2, metavar=("PACKED", "THREADS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.leg:
        print(json.dumps(leg(Path(args.leg[0]), args.leg[1], args.steps)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        raw = data / "raw"  # the set alone, as the fetch stage leaves it
        raw.mkdir()
        (raw / args.data_dir.name).symlink_to(args.data_dir.resolve())
        index_and_pack(raw, Split(), 64, data / "index", data / "packed")
        results = []
        for busy in (0, 1):
            spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(busy)]
            try:
                time.sleep(0.5)
                for threads, extra in [leg for leg in LEGS for _ in range(args.repeat)]:
                    cmd = [sys.executable, __file__, str(args.data_dir), "--steps", str(args.steps)]
                    cmd += ["--leg", str(data / "packed"), threads]
                    env = os.environ | extra
                    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
                    setting = " ".join([threads, *(f"{k}={v}" for k, v in extra.items())])
                    row = {"busy_processes": busy, "setting": setting} | json.loads(out.stdout)
                    results.append(row)
                    print(row, flush=True)
            finally:
                for s in spinners:
                    s.kill()
    print(f"\n{cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}, seed network, batch 32")
    print("| other busy processes | train.threads | threads | images/s | weights (sha256) |")
    print("|---|---|---|---|---|")
    for r in results:
        cells = (r["busy_processes"], r["setting"], r["threads"], f"{r['images_per_s']:,}")
        cells += (r["weights_sha256"],)
        print("| " + " | ".join(map(str, cells)) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
