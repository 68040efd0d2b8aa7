"""Stage ``evaluate``: both checkpoints on the test split, per model and per task.

Writes ``metrics/evaluate.json``::

    {"multi_input":  {"character": {"accuracy", "top5", "macro_accuracy"}},
     "multi_output": {"alphabet":  {"accuracy", "top5", "macro_accuracy"},
                      "character": {"accuracy", "top5", "macro_accuracy"},
                      "alphabet_both_heads": {"accuracy", "top5", "macro_accuracy",
                                              "read_out": the one training chose on validation},
                      "consistency": share of images whose predicted character is in the
                                     predicted alphabet},
     "test_images": N}

plot data under ``metrics/evaluate/``: character accuracy per alphabet for both models, and
one (actual, predicted) alphabet row per test image for DVC's confusion template; and under
``metrics/evaluate/per_image/<model>.csv`` one row per test image (its row in the test split,
its path, and per task the true class, the predicted class and whether they agree), which
``omniglot-mtl-compare`` pairs image by image across experiments.
"""

from pathlib import Path

import pandas as pd
import torch

from omniglot_mtl.core.atomic import atomic_dir, write_json
from omniglot_mtl.core.errors import InputError
from omniglot_mtl.core.packed import load_split, names_by_index, read_maps
from omniglot_mtl.core.tasks import ALPHABET, CHARACTER, MAPS
from omniglot_mtl.models.checkpoints import load_checkpoint
from omniglot_mtl.models.inference import BOTH_HEADS, character_alphabet, predict, read_out

PER_IMAGE = "per_image"  # the folder of per-image results under the plots folder


def task_metrics(logits: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Top-1 and top-5 accuracy over images (micro), and top-1 accuracy averaged over the
    classes that have test images (macro: each class's recall, then their mean).

    Counted here rather than with torchmetrics, whose import (it pulls in torchvision, dynamo
    and scipy.signal) took 4.9 s of the stage's 9.4 s. Its macro average would also count a
    class that is predicted but has no test image, at 0: with drawings missing from a split (see
    data/index/missing_drawings.csv) that would punish a model for the data's gap.
    """
    n = logits.shape[1]

    def share(hit: torch.Tensor) -> float:
        return round(hit.sum().item() / len(target), 6)

    top1 = logits.argmax(1) == target  # the first of tied logits, as everywhere else
    top5 = (logits.topk(min(5, n), dim=1).indices == target[:, None]).any(1)
    support = torch.bincount(target, minlength=n)
    hits = torch.bincount(target[top1], minlength=n)
    present = support > 0
    macro = (hits[present].double() / support[present]).mean().item()
    return {"accuracy": share(top1), "top5": share(top5), "macro_accuracy": round(macro, 6)}


def per_image(
    paths: pd.Series, labels: dict[str, torch.Tensor], predicted: dict[str, torch.Tensor]
) -> pd.DataFrame:
    """One row per test image: ``image`` (its row in the test split), ``path``, and per task
    ``<task>`` (the true class index), ``<task>_predicted`` and ``<task>_correct`` (0 or 1)."""
    frame = pd.DataFrame({"image": range(len(paths)), "path": paths.to_numpy()})
    for task, answer in predicted.items():
        true, answer = labels[task].cpu().numpy(), answer.cpu().numpy()
        frame[task] = true
        frame[f"{task}_predicted"] = answer
        frame[f"{task}_correct"] = (true == answer).astype(int)
    return frame


def evaluate(
    model_paths: dict[str, Path], packed_dir: Path, index_dir: Path, device: torch.device
) -> tuple[dict, pd.DataFrame, pd.DataFrame, dict[str, pd.DataFrame]]:
    """Return ``(metrics, per_alphabet, alphabet_confusion, {model: per_image})`` for the
    checkpoints in ``model_paths``."""
    alphabets, characters = read_maps(index_dir)
    alphabet_names = names_by_index(alphabets)
    test = load_split(packed_dir, "test").to(device)
    true_alpha, true_char = test.labels[ALPHABET], test.labels[CHARACTER]
    labels = test.labels | {BOTH_HEADS: true_alpha}
    char_to_alpha = character_alphabet(alphabets, characters).to(device)
    metrics: dict = {}
    per_alphabet = []
    predicted = {}
    confusion = None
    for kind, path in model_paths.items():
        model, checkpoint = load_checkpoint(path, device)
        if checkpoint[MAPS[ALPHABET]] != alphabets or checkpoint[MAPS[CHARACTER]] != characters:
            raise InputError(f"{path}: trained on other index maps than {index_dir}; retrain it (dvc repro)")
        read_as = checkpoint.get("alphabet_read_out")
        logits = predict(model, test, views=checkpoint["views"])
        logits = read_out(model, logits, char_to_alpha, read_as, true_alpha)
        metrics[kind] = {t: task_metrics(logits[t], labels[t]) for t in logits}
        predicted[kind] = {t: logits[t].argmax(1) for t in logits}
        correct = (logits[CHARACTER].argmax(1) == true_char).float()
        hits = torch.zeros(len(alphabets), device=device).index_add_(0, true_alpha, correct)
        counts = torch.bincount(true_alpha, minlength=len(alphabets)).clamp(min=1)
        per_alphabet.append(
            pd.DataFrame(
                {
                    ALPHABET: alphabet_names,
                    "model": kind,
                    "accuracy": (hits / counts).cpu().numpy().round(6),
                }
            )
        )
        if BOTH_HEADS in logits:
            metrics[kind][BOTH_HEADS]["read_out"] = read_as
            pred_alpha = logits[ALPHABET].argmax(1)
            agree = char_to_alpha[logits[CHARACTER].argmax(1)] == pred_alpha
            metrics[kind]["consistency"] = round(agree.float().mean().item(), 6)
            confusion = pd.DataFrame(
                {
                    "actual": [alphabet_names[i] for i in true_alpha.tolist()],
                    "predicted": [alphabet_names[i] for i in pred_alpha.tolist()],
                }
            )
    metrics["test_images"] = len(test)
    paths = pd.read_csv(Path(index_dir) / "test.csv", usecols=["path"])["path"]  # the packed split's rows
    images = {kind: per_image(paths, labels, answers) for kind, answers in predicted.items()}
    return metrics, pd.concat(per_alphabet, ignore_index=True), confusion, images


def write_evaluation(
    model_paths: dict[str, Path],
    packed_dir: Path,
    index_dir: Path,
    device: torch.device,
    metrics_path: Path,
    plots_dir: Path,
) -> dict:
    metrics, per_alphabet, confusion, images = evaluate(model_paths, packed_dir, index_dir, device)
    with atomic_dir(plots_dir) as tmp:
        per_alphabet.to_csv(tmp / "character_accuracy_per_alphabet.csv", index=False)
        confusion.to_csv(tmp / "alphabet_confusion.csv", index=False)
        (tmp / PER_IMAGE).mkdir()
        for kind, frame in images.items():
            frame.to_csv(tmp / PER_IMAGE / f"{kind}.csv", index=False)
        write_json(metrics_path, metrics)
    return metrics
