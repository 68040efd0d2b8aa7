"""What the test-time views give each run of a seed sweep: every task, with and without them.

    python benchmarks/view_gain.py SWEEP_CLONE

SWEEP_CLONE is the project folder that ``benchmarks/seed_sweep.py`` leaves (its ``project``).
For each of its experiments, both checkpoints (from DVC's cache) score the validation and the
test split as evaluate reads them out, once from the drawings alone and once from their views
(``omniglot_mtl.models.inference.SHIFTS``), whatever the checkpoint chose; the alphabet from
both heads with the read-out the checkpoint names (chosen on the views where it chose them).
Prints each run's accuracies both ways, which way training chose, and the mean change per task.
"""

import argparse
import subprocess
from pathlib import Path

import yaml

from omniglot_mtl.core.packed import PackedSplit, load_split, read_maps
from omniglot_mtl.core.tasks import ALPHABET
from omniglot_mtl.models.checkpoints import load_checkpoint
from omniglot_mtl.models.inference import BOTH_HEADS, SHIFTS, character_alphabet, predict, read_out


def accuracies(model, checkpoint, split: PackedSplit, char_to_alpha, views: int) -> dict[str, float]:
    """Top-1 accuracy in % per task, read out as evaluate reads it, from ``views`` views."""
    alphabet = split.labels[ALPHABET]
    logits = predict(model, split, views=views)
    logits = read_out(model, logits, char_to_alpha, checkpoint.get("alphabet_read_out"), alphabet)
    truth = split.labels | {BOTH_HEADS: alphabet}
    return {t: (logits[t].argmax(1) == truth[t]).float().mean().item() * 100 for t in logits}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("project", type=Path, help="a seed sweep's clone, e.g. /tmp/seed_sweep_XXXX/project")
    args = ap.parse_args()
    project = args.project.resolve()

    def show(ref: str, path: str) -> dict:
        shown = subprocess.run(
            ["git", "show", f"{ref}:{path}"], cwd=project, capture_output=True, text=True, check=True
        )
        return yaml.safe_load(shown.stdout)

    listed = ["git", "for-each-ref", "--format=%(objectname)", "refs/exps"]
    refs = subprocess.run(listed, cwd=project, capture_output=True, text=True, check=True).stdout.split()
    alphabets, characters = read_maps(project / "data" / "index")
    char_to_alpha = character_alphabet(alphabets, characters)
    splits = {name: load_split(project / "data" / "packed", name) for name in ("val", "test")}
    changes: dict[str, list[float]] = {}
    for ref in refs:
        stages, seed = show(ref, "dvc.lock")["stages"], show(ref, "params.yaml")["seed"]
        for kind in ("multi_input", "multi_output"):
            md5 = next(o["md5"] for o in stages[f"train_{kind}"]["outs"] if o["path"].endswith(".pt"))
            model, checkpoint = load_checkpoint(project / ".dvc/cache/files/md5" / md5[:2] / md5[2:])
            chosen = checkpoint["views"]
            for name, split in splits.items():
                alone, viewed = (
                    accuracies(model, checkpoint, split, char_to_alpha, n) for n in (1, len(SHIFTS))
                )
                for task in alone:
                    key = f"{name} {kind}.{task}"
                    changes.setdefault(key, []).append(viewed[task] - alone[task])
                    print(
                        f"seed {seed} {key}: {alone[task]:.2f} -> {viewed[task]:.2f} (chosen: {chosen} views)"
                    )
    print(f"mean change with {len(SHIFTS)} views, in points (each run's):")
    for key, values in changes.items():
        print(f"  {key}: {sum(values) / len(values):+.2f} ({', '.join(f'{v:+.2f}' for v in values)})")


if __name__ == "__main__":
    main()
