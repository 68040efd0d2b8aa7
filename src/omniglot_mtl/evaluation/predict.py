"""Classify drawings with a trained checkpoint.

    omniglot-mtl-predict models/multi_output.pt drawing.png [more.png folder/ "*.png" ...] [--top 5] [--json]
    omniglot-mtl-predict models/multi_input.pt drawing.png --alphabet Latin

Images (any kind the index reads: docs/data.md) are prepared exactly as for training (the one
decoder, resized to the checkpoint's size) and scored by the same batched inference as the
evaluate stage. The multi-input model needs the alphabet, by name, and answers within it; the
multi-output model predicts it. Prints the top predictions per image (or
a JSON list with --json); an image that cannot be read is reported on stderr, one line, and the
others are still classified; the exit status is 1 if any image failed.
"""

import argparse
import difflib
import glob
import json
import re
import sys
from pathlib import Path

import torch

from omniglot_mtl.core.errors import InputError
from omniglot_mtl.core.packed import PackedSplit, names_by_index
from omniglot_mtl.core.tasks import ALPHABET, CHARACTER, MAPS, TASKS
from omniglot_mtl.data.decode import decode
from omniglot_mtl.data.layout import IMAGE_SUFFIXES
from omniglot_mtl.models.checkpoints import load_checkpoint
from omniglot_mtl.models.inference import BOTH_HEADS, character_alphabet, predict, read_out


def predict_files(
    checkpoint_path: Path, images: list[Path], alphabet: str | None = None, top: int = 5
) -> list[dict]:
    """Per image, ``{"image": path, "predictions": {task: [(name, probability), ...]}}`` with the
    ``top`` most likely names, or ``{"image": path, "error": message}`` if it cannot be read. A
    multi-output model's tasks are followed by ``alphabet_both_heads``: the alphabet read from
    both heads as its checkpoint says (inference.READ_OUTS).

    A bad checkpoint, ``top`` or ``alphabet`` concerns every image: it raises :class:`InputError`.
    """
    if top < 1:
        raise InputError(f"--top: must be >= 1, got {top}")
    model, checkpoint = load_checkpoint(checkpoint_path)
    if ALPHABET in model.inputs:
        alphabet = match_alphabet(alphabet, list(checkpoint[MAPS[ALPHABET]]), checkpoint_path)
    elif alphabet is not None:
        raise InputError(
            f"--alphabet: {checkpoint_path} is a multi-output model, which predicts the alphabet; "
            "leave --alphabet out"
        )
    size = checkpoint["config"]["image_size"]
    results: list[dict] = []
    decoded = []
    for path in images:
        try:
            decoded.append(torch.from_numpy(decode(path, size)))
            results.append({"image": str(path)})
        except InputError as err:
            results.append({"image": str(path), "error": str(err)})
    if not decoded:
        return results
    batch = torch.stack(decoded).unsqueeze(1)
    labels = {}
    if ALPHABET in model.inputs:
        labels[ALPHABET] = torch.full((len(decoded),), checkpoint[MAPS[ALPHABET]][alphabet])
    names = {task: names_by_index(checkpoint[MAPS[task]]) for task in TASKS}
    # The same batched path and views as evaluate, on uint8 images made exactly as the index
    # stage packs them.
    logits = predict(model, PackedSplit(batch, labels), views=checkpoint["views"])
    char_to_alpha = character_alphabet(checkpoint[MAPS[ALPHABET]], checkpoint[MAPS[CHARACTER]])
    # Read out as evaluate scores it.
    read_as = checkpoint.get("alphabet_read_out")
    logits = read_out(model, logits, char_to_alpha, read_as, labels.get(ALPHABET))
    probabilities = {task: logits[task].softmax(1) for task in model.tasks}
    if BOTH_HEADS in logits:  # already log-probabilities
        probabilities[BOTH_HEADS] = logits[BOTH_HEADS].exp()
        names[BOTH_HEADS] = names[ALPHABET]
    shown = {task: probs.shape[1] for task, probs in probabilities.items()}  # at most, per task
    if ALPHABET in model.inputs:  # no character outside the given alphabet
        shown[CHARACTER] = int((char_to_alpha == labels[ALPHABET][0]).sum())
    readable = [result for result in results if "error" not in result]  # in the order of `decoded`
    for i, result in enumerate(readable):
        result["predictions"] = {}
        for task, probs in probabilities.items():
            p, idx = probs[i].topk(min(top, shown[task]))
            result["predictions"][task] = [
                (names[task][j], round(q, 4)) for j, q in zip(idx.tolist(), p.tolist(), strict=True)
            ]
    return results


def match_alphabet(given: str | None, known: list[str], checkpoint_path: Path) -> str:
    """The alphabet of ``known`` that ``given`` names, as people type it: any case, spaces for
    underscores (``japanese (hiragana)`` is ``Japanese_(hiragana)``). Otherwise one line, with a
    "did you mean" where one is close and a few of the names, not all of them."""

    def plain(name: str) -> str:
        return re.sub(r"[\s_-]+", "_", name.strip()).casefold()

    by_plain = {plain(name): name for name in known}
    if given is not None and plain(given) in by_plain:
        return by_plain[plain(given)]
    close = difflib.get_close_matches(plain(given or ""), list(by_plain), n=1, cutoff=0.6)
    hint = f"did you mean {by_plain[close[0]]!r}? " if close else ""
    some = ", ".join(known[:5]) + (f", ... ({len(known)} in all)" if len(known) > 5 else "")
    problem = (
        f"{checkpoint_path} is a multi-input model, which needs the alphabet"
        if given is None
        else f"{given!r} is not an alphabet of {checkpoint_path}"
    )
    raise InputError(f"--alphabet: {problem}; {hint}name one of: {some}")


def expand(inputs: list[Path]) -> list[Path]:
    """Files as given; a folder becomes the images under it (sorted; the suffixes of
    ``layout.IMAGE_SUFFIXES``, in any case); a glob pattern that the shell left alone (quoted, or
    on Windows) becomes its matches. A pattern matching nothing stays as
    it is, to be reported as missing."""
    paths: list[Path] = []
    for item in inputs:
        if item.is_dir():
            paths += sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif any(c in str(item) for c in "*?[") and not item.exists():
            matches = sorted(Path(m) for m in glob.glob(str(item), recursive=True))
            paths += matches or [item]
        else:
            paths.append(item)
    return paths


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("images", type=Path, nargs="+", help="image files, folders of them, or glob patterns")
    ap.add_argument("--alphabet", help="the alphabet of the images (multi-input models)")
    ap.add_argument("--top", type=int, default=5, help="how many names to show per task (default 5)")
    ap.add_argument("--json", action="store_true", help="print a JSON list, one entry per image")
    args = ap.parse_args(argv)
    images = expand(args.images)
    if not images:
        sys.exit(f"error: no image files in {', '.join(map(str, args.images))}")
    try:
        results = predict_files(args.checkpoint, images, args.alphabet, args.top)
    except InputError as err:
        sys.exit(f"error: {err}")
    for result in results:
        if "error" in result:
            print(f"error: {result['error']}", file=sys.stderr)
    if args.json:
        entries = []
        for result in results:
            entry = {"image": result["image"]}
            if "error" in result:
                entry["error"] = result["error"]
            for task, ranked in result.get("predictions", {}).items():
                entry[task] = [{"name": n, "probability": p} for n, p in ranked]
            entries.append(entry)
        print(json.dumps(entries, indent=2, ensure_ascii=False))
    else:
        for result in results:
            for task, ranked in result.get("predictions", {}).items():
                shown = ", ".join(f"{name} {p:.1%}" for name, p in ranked)
                print(f"{result['image']}: {task}: {shown}")
    if any("error" in r for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
