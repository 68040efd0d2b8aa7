"""``omniglot-mtl-compare``: is the difference between experiments real?

    omniglot-mtl-compare [EXPERIMENT ...] [--md | --json]

Reads ``dvc exp show --json`` (the current commit and its experiments; or only the experiments,
commits or branches named) and each one's per-image results, ``metrics/evaluate/per_image/``
(a DVC output), as its commit's dvc.lock names them. Experiments are grouped by every param
except ``seed``, so nothing but the seed may differ within a group and nothing can differ
silently between groups. Then, per task:

- every group one run (say two experiments, one seed each): the accuracy change and an exact
  McNemar test on the images one model gets right and the other wrong;
- every group two or more seeds: each group's mean +- sd over seeds, and the difference of the
  means with a 95% interval (Welch), said in words: beyond the seed-to-seed spread, or within it.

Groups are compared with the first, the one holding the current commit where it is one of them.
Every experiment must have been tested on the same images (the same data and index maps).
"""

import argparse
import io
import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml
from tabulate import tabulate

from . import stats
from .errors import InputError, run_stage
from .recipe import flatten

# The evaluate stage's output (dvc.yaml); evaluate.py itself would import torch.
PER_IMAGE_DIR = "metrics/evaluate/per_image"


@dataclass
class Run:
    """One evaluated commit or experiment."""

    name: str
    rev: str
    params: dict  # flattened: "loss.char_weight" -> 2.0
    correct: dict[str, pd.Series] = field(default_factory=dict)  # task -> 0/1 per test image

    @property
    def seed(self) -> int:
        return int(self.params["seed"])

    def accuracy(self, task: str) -> float:
        return float(self.correct[task].mean())


def flat_params(params: dict) -> dict:
    """``{"loss": {"char_weight": 2}}`` -> ``{"loss.char_weight": 2.0}`` (recipe.flatten). Numbers
    become floats: ``-S loss.char_weight=1`` writes 1 where params.yaml says 1.0, the same setting."""
    return {
        key: float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        for key, value in flatten(params).items()
    }


def list_runs(project) -> list[tuple[str, str, dict]]:
    """``(name, rev, params)`` of the current commit and of each of its finished experiments, as
    ``dvc exp show`` lists them (``project``: an open ``dvc.repo.Repo``)."""
    runs = []
    for commit in project.experiments.show(hide_queued=True, hide_failed=True, hide_workspace=True):
        commit = commit.dumpd()
        # A running experiment's rev is its queue entry: the baseline's results, not its own.
        done = [
            e
            for e in commit.get("experiments") or []
            if (e.get("executor") or {}).get("state", "success") == "success"
        ]
        for entry in [commit] + [e["revs"][0] for e in done]:
            data = entry.get("data") or {}
            if not data:
                continue  # nothing evaluated to compare
            params = data.get("params", {}).get("params.yaml", {}).get("data", {})
            runs.append((entry.get("name") or entry["rev"][:7], entry["rev"], flat_params(params)))
    return runs


def _find(repo: Path, name: str, listed: list[tuple[str, str, dict]]) -> tuple[str, str, dict]:
    """``name`` among the listed runs (an experiment's name or rev), else as an experiment of
    another commit or any git revision (a branch, a tag, a commit), its params read from its
    commit."""
    for run in listed:
        if name in run[:2] or (len(name) >= 7 and run[1].startswith(name)):
            return run
    # An experiment of another commit: DVC keeps each as a git ref, refs/exps/../<name>.
    refs = (_git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps") or "").split("\n")
    exps = [line.split()[1] for line in refs if line.split(" ")[0].endswith(f"/{name}")]
    rev = exps[0] if exps else (_git(repo, "rev-parse", "--verify", "-q", f"{name}^{{commit}}") or "").strip()
    params = _git(repo, "show", f"{rev}:params.yaml") if rev else None
    if params is None:
        known = ", ".join(r[0] for r in listed) or "none"
        raise InputError(f"{name}: no such experiment or commit with a params.yaml (this commit's: {known})")
    return name, rev, flat_params(yaml.safe_load(params) or {})


def _git(repo: Path, *args: str) -> str | None:
    """git's output, or None where it fails."""
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    return None if done.returncode else done.stdout


def read_per_image(project, run: Run) -> dict[str, pd.DataFrame]:
    """The run's per-image results, ``{model: frame}``, a DVC output, as its commit's dvc.lock
    names them."""
    from dvc.exceptions import DvcException

    frames = {}
    with project.switch(run.rev):
        fs = project.dvcfs
        if not fs.isdir(PER_IMAGE_DIR):
            raise InputError(
                f"{run.name}: no {PER_IMAGE_DIR}/ in its commit {run.rev[:7]}: it was evaluated "
                "before per-image results existed; rerun it (dvc exp run) to compare it"
            )
        try:
            for path in sorted(fs.ls(PER_IMAGE_DIR, detail=False)):
                frames[Path(path).stem] = pd.read_csv(io.StringIO(fs.read_text(path)))
        except (DvcException, FileNotFoundError):
            raise InputError(
                f"{run.name}: {PER_IMAGE_DIR}/ is not in this machine's DVC cache; fetch it first "
                "(dvc exp pull <remote> for an experiment, dvc pull for a commit)"
            ) from None
    return frames


def open_project(path: Path):
    """The DVC project at ``path``, opened once for every read (DVC's import costs a second)."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        return Repo(str(path))
    except NotDvcRepoError:
        raise InputError(
            f"{path}: not a DVC project; run omniglot-mtl-compare in the project's folder"
        ) from None


def load(repo: Path, selected: list[str]) -> list[Run]:
    """The runs named in ``selected`` (all of the current commit's when empty), with their
    per-image answers, checked to share one test set."""
    with open_project(repo) as project:
        listed = list_runs(project)
        if selected:
            listed = [_find(repo, name, listed) for name in selected]
        runs: list[Run] = []
        for name, rev, params in listed:
            same = next((r for r in runs if r.params == params), None)
            if same:  # e.g. the commit and an experiment of its own params: one run, counted once
                same.name += f"={name}"
            else:
                runs.append(Run(name, rev, params))
        if len(runs) < 2:
            raise InputError(
                f"{len(runs)} evaluated run(s) to compare; name two or more, or run experiments first"
            )
        answers = {run.name: read_per_image(project, run) for run in runs}
    for run in runs:
        run.correct = same_images(answers, run.name)
    return runs


def same_images(answers: dict[str, dict[str, pd.DataFrame]], name: str) -> dict[str, pd.Series]:
    """Run ``name``'s answers per task (``"multi_output.character"`` -> 0/1 per image), after
    checking that it was tested on the images of the first run in ``answers``: the same models,
    each image's path and its true classes (other data or index maps would pair unrelated
    images)."""

    def test_set(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        return {
            m: f[[c for c in f.columns if not c.endswith(("_predicted", "_correct"))]]
            for m, f in frames.items()
        }

    first, frames = next(iter(answers)), answers[name]
    reference, own = test_set(answers[first]), test_set(frames)
    if own.keys() != reference.keys() or any(not f.equals(reference[m]) for m, f in own.items()):
        raise InputError(
            f"{first} and {name} were tested on different images (their test paths or true "
            "classes differ: other data or index maps); compare runs of one data set"
        )
    return {
        f"{m}.{c.removesuffix('_correct')}": f[c]
        for m, f in frames.items()
        for c in f.columns
        if c.endswith("_correct")
    }


def group_runs(runs: list[Run]) -> tuple[list[list[Run]], list[str]]:
    """Runs grouped by every param but ``seed`` (groups in the order first seen, runs by seed),
    and the params whose values differ between the groups (what the groups are labelled by)."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        key = json.dumps({k: v for k, v in run.params.items() if k != "seed"}, sort_keys=True)
        groups.setdefault(key, []).append(run)
    keys = sorted({k for run in runs for k in run.params} - {"seed"})
    differing = [k for k in keys if len({json.dumps(g[0].params.get(k)) for g in groups.values()}) > 1]
    return [sorted(g, key=lambda r: r.seed) for g in groups.values()], differing


def label(group: list[Run], differing: list[str]) -> str:
    shown = {k: group[0].params.get(k) for k in differing}
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())


def compare(runs: list[Run]) -> dict:
    """The comparison as plain data (what ``--json`` prints)."""
    groups, differing = group_runs(runs)
    described = [
        {"label": label(g, differing), "runs": [r.name for r in g], "seeds": [r.seed for r in g]}
        for g in groups
    ]
    sizes = {len(g) for g in groups}
    if len(groups) < 2:
        raise InputError(
            "every run compared has the same params but seed: nothing to compare between; "
            "run the other setting too (e.g. dvc exp run --queue -S loss.char_weight=2 -S seed=0,1,2)"
        )
    if sizes == {1}:
        return {"mode": "mcnemar", "differing": differing, "groups": described, "comparisons": _pairs(groups)}
    single = [d["label"] for d, g in zip(described, groups, strict=True) if len(g) == 1]
    if single:
        raise InputError(
            f"{'; '.join(single)}: one seed, so no spread to compare against; queue more seeds "
            "(dvc exp run --queue -S seed=1,2 with the same params) or name one run per setting"
        )
    labels = [d["label"] for d in described]
    return {
        "mode": "seeds",
        "differing": differing,
        "groups": described,
        "comparisons": _seed_groups(groups, labels),
    }


def _pairs(groups: list[list[Run]]) -> list[dict]:
    (a,), rest = groups[0], groups[1:]
    out = []
    for (b,) in rest:
        for task in a.correct:
            test = stats.mcnemar(a.correct[task], b.correct[task])
            out.append(
                {
                    "a": a.name,
                    "b": b.name,
                    "task": task,
                    "accuracy_a": test.accuracy_a,
                    "accuracy_b": test.accuracy_b,
                    "change": test.change,
                    "only_a": test.only_a,
                    "only_b": test.only_b,
                    "p_value": test.p_value,
                    "images": len(a.correct[task]),
                }
            )
    return out


def _seed_groups(groups: list[list[Run]], labels: list[str]) -> list[dict]:
    out = []
    for task in groups[0][0].correct:
        measured = [stats.Group(tuple(r.accuracy(task) for r in g)) for g in groups]
        base = measured[0]
        for i, other in enumerate(measured[1:], start=1):
            diff = stats.difference(base, other)
            out.append(
                {
                    "a": labels[0],
                    "b": labels[i],
                    "task": task,
                    "mean_a": base.mean,
                    "sd_a": base.sd,
                    "mean_b": other.mean,
                    "sd_b": other.sd,
                    "difference": diff.difference,
                    "low": diff.low,
                    "high": diff.high,
                    "exceeds_spread": diff.exceeds_spread,
                }
            )
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _signed(x: float) -> str:
    return f"{100 * x:+.2f}"


def verdict(row: dict) -> str:
    if "p_value" in row:
        return "the models differ" if row["p_value"] < 0.05 else "no evidence of a difference"
    return "beyond the seed spread" if row["exceeds_spread"] else "within the seed spread"


def tables(result: dict) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """The rows of the groups' table and of the comparison table (groups named A, B, ...)."""
    groups = [
        [f"{chr(65 + i)}", g["label"], " ".join(map(str, g["seeds"])), ", ".join(g["runs"])]
        for i, g in enumerate(result["groups"])
    ]
    letter = {name: chr(65 + i) for i, g in enumerate(result["groups"]) for name in [g["label"], *g["runs"]]}
    rows = []
    for r in result["comparisons"]:
        if result["mode"] == "mcnemar":
            rows.append(
                [
                    f"{letter[r['a']]} -> {letter[r['b']]}",
                    r["task"],
                    _pct(r["accuracy_a"]),
                    _pct(r["accuracy_b"]),
                    _signed(r["change"]),
                    str(r["only_a"]),
                    str(r["only_b"]),
                    f"{r['p_value']:.3g}",
                    verdict(r),
                ]
            )
        else:
            rows.append(
                [
                    f"{letter[r['a']]} -> {letter[r['b']]}",
                    r["task"],
                    f"{_pct(r['mean_a'])} ± {_pct(r['sd_a'])}",
                    f"{_pct(r['mean_b'])} ± {_pct(r['sd_b'])}",
                    _signed(r["difference"]),
                    f"{_signed(r['low'])} to {_signed(r['high'])}",
                    verdict(r),
                ]
            )
    return groups, rows


GROUP_HEADER = ["group", "params", "seeds", "runs"]
HEADERS = {
    "mcnemar": [
        "runs",
        "task",
        "accuracy A %",
        "accuracy B %",
        "change",
        "A only",
        "B only",
        "McNemar p",
        "",
    ],
    "seeds": ["groups", "task", "A mean ± sd %", "B mean ± sd %", "difference", "95% interval", ""],
}


def report(result: dict, markdown: bool) -> str:
    groups, rows = tables(result)

    def render(header: list[str], rows: list[list[str]]) -> str:
        return tabulate(rows, header, tablefmt="github" if markdown else "plain", disable_numparse=True)

    if result["mode"] == "mcnemar":
        images = result["comparisons"][0]["images"]
        note = (
            f"A only / B only: of the {images} test images, those one model gets right and the other "
            "wrong; p: exact McNemar test, the models differ where p < 0.05. That says whether two "
            "trained models differ, not whether their settings do: reseeding alone changes a model."
        )
    else:
        note = (
            "Accuracy in % over seeds, mean ± sample standard deviation; the difference B - A in points "
            "with its 95% Welch interval: beyond the seed-to-seed spread where the interval excludes 0."
        )
    return "\n\n".join(
        [render(GROUP_HEADER, groups), render(HEADERS[result["mode"]], rows), textwrap.fill(note, 100)]
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="omniglot-mtl-compare", description=__doc__.split("\n\n")[0].split(": ", 1)[1]
    )
    ap.add_argument(
        "experiments", nargs="*", help="experiments, commits or branches (default: all of this commit)"
    )
    out = ap.add_mutually_exclusive_group()
    out.add_argument("--md", action="store_true", help="Markdown tables, for a pull request")
    out.add_argument("--json", action="store_true", help="the figures as JSON")
    args = ap.parse_args(argv)

    def run() -> None:
        result = compare(load(Path.cwd(), args.experiments))
        print(json.dumps(result, indent=2) if args.json else report(result, args.md))

    run_stage(run)


if __name__ == "__main__":
    sys.exit(main())
