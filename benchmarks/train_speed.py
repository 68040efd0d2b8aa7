"""Training speed: the notebook's loop against ours, same data, same network, same epochs.

    python benchmarks/train_speed.py DATA_DIR [--epochs 2] [--precisions fp32 bf16] [--json FILE]

(`make bench DATA=...` runs it.)

DATA_DIR is one set in Omniglot layout, e.g. ../shared/omniglot/images_background. Both loops
train the multi-input network at batch 32 with Adam (lr 0.001) on the same training split
(drawers 1-14) and are then scored on the same test split (drawers 18-20), so the accuracies
are held-out ones and comparable. Each leg runs in a fresh child process, one after the other,
so that its peak memory is its own and no leg warms the next one's caches.

- notebook: the seed notebook's loop, with its code kept in ``tests/notebook.py``: a
  Dataset that opens, converts and resizes each PNG with PIL on every access, a DataLoader
  (num_workers=0, shuffle) whose collate function builds the one-hot alphabets in Python.
- ours: :func:`omniglot_mtl.training.loop.fit`, fed from the images decoded once into a uint8
  tensor (decode time reported on its own, as the `index` stage pays it once per data set).

Prints a table and a JSON line: images/s over the training epochs, training wall time, peak
resident memory, held-out accuracy, and speed-up over the notebook loop.
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import common  # benchmarks/common.py
import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader
from torchvision import transforms

from omniglot_mtl.core.params import Split, Train

sys.path.append(str(common.ROOT / "tests"))  # the notebook's code, the tests' reference too
from notebook import MultiInputNet, MultiOutputNet, OmniglotDataset, custom_collate_fn  # noqa: E402

BATCH, LR = 32, 0.001


def manifests(data_dir: Path):
    index, alphabets, characters = common.set_index(data_dir, Split())
    return index, len(alphabets), len(characters)


# --- the notebook's loop (its Dataset, collate function and network: omniglot_mtl.notebook) ----


def notebook_loader(data_dir: Path, frame, n_alpha: int, **loader_args) -> DataLoader:
    """The notebook's DataLoader over the rows of one manifest (``frame``): its Dataset (PIL
    decode and resize of every sample on every access) and its one-hot collate function."""
    samples = [
        (str(data_dir.parent / p), a, c)  # p begins with the set's name
        for p, a, c in zip(frame["path"], frame["alphabet_idx"], frame["character_idx"], strict=True)
    ]
    transform = transforms.Compose([transforms.Resize((64, 64)), transforms.ToTensor()])
    collate = lambda b: custom_collate_fn(b, n_alpha)  # noqa: E731  (as in the notebook)
    return DataLoader(OmniglotDataset(transform, samples), collate_fn=collate, **loader_args)


def notebook_leg(args: argparse.Namespace) -> dict:
    data_dir, epochs, device = args.data_dir, args.epochs, torch.device(args.device)
    torch.manual_seed(args.seed)  # as ../shared/baseline/seed_loop.py does
    index, n_alpha, n_char = manifests(data_dir)
    loader = notebook_loader(data_dir, index["train"], n_alpha, shuffle=True, batch_size=BATCH)
    net = MultiInputNet(n_alpha, n_char).to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(net.parameters(), lr=LR)
    seconds = 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        for img, alpha, labels in loader:
            img, alpha, labels = img.to(device), alpha.to(device), labels.to(device)
            optimizer.zero_grad()
            outputs = net(img, alpha)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - start
    correct = total = 0
    net.eval()
    with torch.no_grad():
        for img, alpha, labels in notebook_loader(data_dir, index["test"], n_alpha, batch_size=256):
            correct += (net(img.to(device), alpha.to(device)).argmax(1).cpu() == labels).sum().item()
            total += len(labels)
    return {
        "train_images": len(index["train"]) * epochs,
        "train_s": seconds,
        "test_accuracy": correct / total,
    }


def notebook_loops(args: argparse.Namespace) -> dict:
    """The notebook's two training loops as written, one after the other, for ``--epochs`` each:
    the multi-input model, then the multi-output one (``loss_alpha + loss_char``). What
    ``pipeline_time.py --vs-notebook`` times against the whole pipeline; nothing is scored."""
    torch.manual_seed(0)
    index, n_alpha, n_char = manifests(args.data_dir)
    frame = index["train"]
    loader = notebook_loader(args.data_dir, frame, n_alpha, shuffle=True, batch_size=BATCH)
    criterion = nn.CrossEntropyLoss()
    net = MultiInputNet(n_alpha, n_char)
    optimizer = optim.Adam(net.parameters(), lr=LR)
    for _ in range(args.epochs):
        for img, alpha, labels in loader:
            optimizer.zero_grad()
            loss = criterion(net(img, alpha), labels)
            loss.backward()
            optimizer.step()
    alphabet_of = dict(zip(frame["character_idx"], frame["alphabet_idx"], strict=True))
    net = MultiOutputNet(n_alpha, n_char)
    optimizer = optim.Adam(net.parameters(), lr=LR)
    for _ in range(args.epochs):
        for img, _, labels in loader:
            alphabets = torch.tensor([alphabet_of[int(c)] for c in labels])
            optimizer.zero_grad()
            out_alpha, out_char = net(img)
            loss = criterion(out_alpha, alphabets) + criterion(out_char, labels)
            loss.backward()
            optimizer.step()
    return {"train_images": 2 * len(frame) * args.epochs}


# --- ours ----------------------------------------------------------------------------------------


def ours_leg(args: argparse.Namespace) -> dict:
    from omniglot_mtl.core.packed import PackedSplit
    from omniglot_mtl.models.inference import accuracy
    from omniglot_mtl.models.networks import ModelConfig, build_model
    from omniglot_mtl.training.loop import fit
    from omniglot_mtl.weighting.methods import LossWeighting

    data_dir, epochs, precision, device = (
        args.data_dir,
        args.epochs,
        args.precision,
        torch.device(args.device),
    )
    index, n_alpha, n_char = manifests(data_dir)
    start = time.perf_counter()
    splits = {name: common.decoded_split(data_dir, index[name], 64).to(device) for name in ("train", "test")}
    decode_s = time.perf_counter() - start
    torch.manual_seed(args.seed)
    model = build_model(ModelConfig("multi_input", n_alpha, n_char)).to(device)
    cfg = Train(epochs=epochs, batch_size=args.batch_size, lr=args.lr, precision=precision)
    # fit() scores a validation split after each epoch, outside the timed part; give it a small one.
    val = PackedSplit(splits["test"].images[:256], {k: v[:256] for k, v in splits["test"].labels.items()})
    weighting = LossWeighting({"character": 1.0}).to(device)
    capture = False if args.leg == "ours-eager" else None  # None: a CUDA graph where it can
    result = fit(model, weighting, splits["train"], val, cfg, seed=args.seed, capture=capture)
    n = len(splits["train"]) * epochs
    test = accuracy(model, splits["test"], precision)["character"]  # the last epoch's model
    return {
        "train_images": n,
        "train_s": n / result.images_per_s,
        "test_accuracy": test,
        "decode_s": decode_s,
    }


def run_leg(args, leg: str, precision: str) -> dict:
    cmd = [sys.executable, __file__, str(args.data_dir), "--epochs", str(args.epochs)]
    cmd += ["--seed", str(args.seed), "--device", args.device, "--leg", leg, "--precision", precision]
    cmd += ["--batch-size", str(args.batch_size), "--lr", str(args.lr)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--seed", type=int, default=0, help="seeds the init and the shuffling of both loops")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (both loops)")
    ap.add_argument(
        "--batch-size", type=int, default=BATCH, help="our loop's batch (the notebook's stays 32)"
    )
    ap.add_argument("--lr", type=float, default=LR, help="our loop's learning rate (scale it with the batch)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument(
        "--eager", action="store_true", help="also time our loop with no CUDA graph (each step as written)"
    )
    legs = ["notebook", "ours", "ours-eager", "notebook-loops"]
    ap.add_argument("--leg", choices=legs, help=argparse.SUPPRESS)
    ap.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.leg:  # child process: one leg, one JSON line
        run = {
            "notebook": notebook_leg,
            "ours": ours_leg,
            "ours-eager": ours_leg,
            "notebook-loops": notebook_loops,
        }
        result = run[args.leg](args)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return

    machine = f"{common.machine()}, {torch.get_num_threads()} threads"
    if args.device.startswith("cuda"):
        machine += f", {torch.cuda.get_device_name(torch.device(args.device))}"
    rows = [("notebook loop", "fp32", run_leg(args, "notebook", "fp32"))]
    rows += [("ours", p, run_leg(args, "ours", p)) for p in args.precisions]
    if args.eager:
        rows += [("ours, eager", p, run_leg(args, "ours-eager", p)) for p in args.precisions]
    base = rows[0][2]["train_images"] / rows[0][2]["train_s"]
    batches = f"batch {BATCH}" + (
        f" (ours {args.batch_size}, lr {args.lr})" if args.batch_size != BATCH else ""
    )
    print(f"{args.data_dir} | {args.epochs} epochs, {batches} | {machine}")
    header = ("loop", "precision", "images/s", "train s", "peak MB", "test acc", "speed-up")
    print("{:<14} {:<9} {:>9} {:>8} {:>8} {:>8} {:>8}".format(*header))
    results = []
    for name, precision, r in rows:
        ips = r["train_images"] / r["train_s"]
        print(
            f"{name:<14} {precision:<9} {ips:>9.0f} {r['train_s']:>8.1f} {r['peak_rss_mb']:>8.0f} "
            f"{r['test_accuracy']:>8.3f} {ips / base:>7.2f}x"
        )
        results.append(
            {
                "loop": name,
                "precision": precision,
                "images_per_s": round(ips, 1),
                "speedup": round(ips / base, 3),
            }
            | r
        )
    if "decode_s" in rows[-1][2]:
        print(f"ours: decoding every image once (index stage) took {rows[-1][2]['decode_s']:.1f} s")
    summary = {"data_dir": str(args.data_dir), "epochs": args.epochs, "seed": args.seed, "machine": machine}
    summary |= {"device": args.device, "batch_size": args.batch_size, "lr": args.lr}
    summary["results"] = results
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
