"""Classify drawings with a trained checkpoint.

    python -m omniglot_mtl.predict models/multi_output.pt drawing.png [more.png ...] [--top 5]
    python -m omniglot_mtl.predict models/multi_input.pt drawing.png --alphabet Latin

Images are prepared exactly as for training (grayscale, resized to the checkpoint's size).
The multi-input model needs the alphabet, by name. Prints the top predictions per image.
"""

import argparse
import sys
from pathlib import Path

import torch

from .checkpoints import load_checkpoint
from .errors import InputError
from .index import names_by_index
from .inference import predict
from .packed import PackedSplit, decode


def predict_files(
    checkpoint_path: Path, images: list[Path], alphabet: str | None = None, top: int = 5
) -> list[dict]:
    """For each image, ``{task: [(name, probability), ...]}`` with the ``top`` most likely names."""
    model, checkpoint = load_checkpoint(checkpoint_path)
    size = checkpoint["config"]["image_size"]
    decoded = torch.stack([torch.from_numpy(decode(p, size)) for p in images]).unsqueeze(1)
    labels = {}
    if "alphabet" in model.inputs:
        if alphabet not in checkpoint["alphabets"]:
            known = ", ".join(checkpoint["alphabets"])
            raise InputError(f"--alphabet: {checkpoint_path} is a multi-input model; name one of: {known}")
        labels["alphabet"] = torch.full((len(images),), checkpoint["alphabets"][alphabet])
    names = {
        "alphabet": names_by_index(checkpoint["alphabets"]),
        "character": names_by_index(checkpoint["characters"]),
    }
    # The same batched path as evaluate and the training loop's validation, on uint8 images
    # made exactly as the index stage packs them.
    logits = predict(model, PackedSplit(decoded, labels))
    results = []
    for i in range(len(images)):
        result = {}
        for task in model.tasks:
            probs = logits[task][i].softmax(0)
            p, idx = probs.topk(min(top, probs.numel()))
            result[task] = [
                (names[task][j], round(q, 4)) for j, q in zip(idx.tolist(), p.tolist(), strict=True)
            ]
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("images", type=Path, nargs="+")
    ap.add_argument("--alphabet", help="the alphabet of the images (multi-input models)")
    ap.add_argument("--top", type=int, default=5)
    args = ap.parse_args(argv)
    try:
        results = predict_files(args.checkpoint, args.images, args.alphabet, args.top)
    except InputError as err:
        sys.exit(f"error: {err}")
    for path, result in zip(args.images, results, strict=True):
        for task, ranked in result.items():
            shown = ", ".join(f"{name} {p:.1%}" for name, p in ranked)
            print(f"{path}: {task}: {shown}")


if __name__ == "__main__":
    main()
