"""The whole pipeline against the notebook's training loops alone, in one run.

    python benchmarks/pipeline_vs_notebook.py DATA_DIR [--epochs 10] [--json FILE]

DATA_DIR is one set in Omniglot layout, e.g. ../shared/omniglot/images_background.

1. The notebook: its two training loops as written (``omniglot_mtl.notebook``: PIL decode and
   resize of every sample in every epoch, DataLoader at batch 32, Adam 0.001), the multi-input
   model and then the multi-output model (``loss_alpha + loss_char``), each for ``--epochs`` on
   the same training split as the pipeline (drawers 1-14), in one fresh process, timed from the
   process start to its end (imports and the folder scan included, nothing scored).
2. Ours: `dvc repro` from nothing on a fresh clone with ``data.source: folder`` pointed at
   DATA_DIR (everything: params check, copy of the data into data/raw, index and decode, both
   trainings with a validation pass per epoch, evaluation), then a no-op `dvc repro`.

Prints both wall times, their ratio (issue 12's target: the pipeline at most half the notebook's
loops) and a JSON line.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch


def notebook_loops(data_dir: Path, epochs: int) -> None:
    from torch import nn, optim
    from train_speed import BATCH, LR, manifests, notebook_loader  # benchmarks/train_speed.py

    from omniglot_mtl.notebook import MultiInputNet, MultiOutputNet

    torch.manual_seed(0)
    index, n_alpha, n_char = manifests(data_dir)
    frame = index["train"]
    loader = notebook_loader(data_dir, frame, n_alpha, shuffle=True, batch_size=BATCH)
    criterion = nn.CrossEntropyLoss()
    net = MultiInputNet(n_alpha, n_char)
    optimizer = optim.Adam(net.parameters(), lr=LR)
    for _ in range(epochs):
        for img, alpha, labels in loader:
            optimizer.zero_grad()
            loss = criterion(net(img, alpha), labels)
            loss.backward()
            optimizer.step()
    alphabet_of = dict(zip(frame["character_idx"], frame["alphabet_idx"], strict=True))
    net = MultiOutputNet(n_alpha, n_char)
    optimizer = optim.Adam(net.parameters(), lr=LR)
    for _ in range(epochs):
        for img, _, labels in loader:
            alphabets = torch.tensor([alphabet_of[int(c)] for c in labels])
            optimizer.zero_grad()
            out_alpha, out_char = net(img)
            loss = criterion(out_alpha, alphabets) + criterion(out_char, labels)
            loss.backward()
            optimizer.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--notebook-leg", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.notebook_leg:
        notebook_loops(args.data_dir.resolve(), args.epochs)
        return
    from fresh_clone import clone_with_source

    from omniglot_mtl.environment import cpu_model

    start = time.perf_counter()
    cmd = [sys.executable, __file__, str(args.data_dir), "--epochs", str(args.epochs), "--notebook-leg"]
    subprocess.run(cmd, check=True)
    notebook_s = time.perf_counter() - start
    print(f"notebook loops, both models, {args.epochs} epochs: {notebook_s:.0f} s", flush=True)

    epochs = [f"train.epochs={args.epochs}"]
    repo, env, _ = clone_with_source(str(args.data_dir), "pipeline_vs_notebook_", epochs)
    times = []
    for _ in range(2):  # from nothing, then a no-op
        start = time.perf_counter()
        repro = [sys.executable, "-m", "dvc", "repro"]
        subprocess.run(repro, cwd=repo, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    subprocess.run(["rm", "-rf", str(repo.parent)], check=True)
    pipeline_s, noop_s = times
    print(f"dvc repro from nothing: {pipeline_s:.0f} s; no-op: {noop_s:.2f} s")
    print(f"pipeline / notebook loops: {pipeline_s / notebook_s:.2f} (target: at most 0.5)")
    result = {
        "machine": f"{cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "epochs": args.epochs,
        "notebook_s": round(notebook_s, 1),
        "pipeline_s": round(pipeline_s, 1),
        "noop_s": round(noop_s, 2),
        "ratio": round(pipeline_s / notebook_s, 3),
    }
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
