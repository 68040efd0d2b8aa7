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
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from . import stats
from .errors import InputError, run_stage
from .evaluate import PER_IMAGE

PER_IMAGE_DIR = f"metrics/evaluate/{PER_IMAGE}"
MODELS = {"multi_input": ("character",), "multi_output": ("alphabet", "character")}
TASKS = [f"{model}.{task}" for model, tasks in MODELS.items() for task in tasks]


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


def flatten(params: dict, prefix: str = "") -> dict:
    """``{"loss": {"char_weight": 2}}`` -> ``{"loss.char_weight": 2.0}``. Numbers become floats:
    ``-S loss.char_weight=1`` writes 1 where params.yaml says 1.0, the same setting."""
    flat = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = float(value)
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def list_runs(repo: Path) -> list[tuple[str, str, dict]]:
    """``(name, rev, params)`` of the current commit and of each of its finished experiments."""
    done = subprocess.run(["dvc", "exp", "show", "--json"], cwd=repo, capture_output=True, text=True)
    if done.returncode:
        raise InputError(f"dvc exp show: {(done.stderr.strip().splitlines() or ['failed'])[-1]}")
    runs = []
    for commit in json.loads(done.stdout)[1:]:  # [0] is the workspace
        entries = [(commit, None)] + [
            (e["revs"][0], e.get("executor")) for e in commit.get("experiments") or []
        ]
        for entry, executor in entries:
            data = entry.get("data") or {}
            if (executor or {}).get("state") in ("queued", "running", "failed") or not data:
                continue  # nothing evaluated to compare
            params = data.get("params", {}).get("params.yaml", {}).get("data", {})
            runs.append((entry.get("name") or entry["rev"][:7], entry["rev"], flatten(params)))
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
    return name, rev, flatten(yaml.safe_load(params) or {})


def _git(repo: Path, *args: str) -> str | None:
    """git's output, or None where it fails."""
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    return None if done.returncode else done.stdout


def read_per_image(repo: Path, run: Run) -> dict[str, pd.DataFrame]:
    """The run's per-image results, a DVC output, as its commit's dvc.lock names them."""
    from dvc.api import DVCFileSystem  # DVC's import costs a second; --help should not pay it
    from dvc.exceptions import DvcException

    fs = DVCFileSystem(str(repo), rev=run.rev)
    frames = {}
    for model in MODELS:
        path = f"{PER_IMAGE_DIR}/{model}.csv"
        if not fs.exists(path):
            raise InputError(
                f"{run.name}: no {path} in its commit {run.rev[:7]}: it was evaluated before "
                "per-image results existed; rerun it (dvc exp run) to compare it"
            )
        try:
            frames[model] = pd.read_csv(io.StringIO(fs.read_text(path)))
        except (DvcException, FileNotFoundError):
            raise InputError(
                f"{run.name}: {path} is not in this machine's DVC cache; fetch it first "
                "(dvc exp pull <remote> for an experiment, dvc pull for a commit)"
            ) from None
    return frames


def load(repo: Path, selected: list[str]) -> list[Run]:
    """The runs named in ``selected`` (all of the current commit's when empty), with their
    per-image answers, checked to share one test set."""
    listed = list_runs(repo)
    if selected:
        listed = [_find(repo, name, listed) for name in selected]
    runs: list[Run] = []
    for name, rev, params in listed:
        same = next((r for r in runs if r.params == params), None)
        if same:  # e.g. the commit and an experiment of its own params: one run, counted once
            same.name += f"={name}"
        else:
            runs.append(Run(name, rev, params))
    reference = None
    for run in runs:
        frames = read_per_image(repo, run)
        test_set = {
            m: f.drop(columns=[c for c in f.columns if c.endswith(("_predicted", "_correct"))])
            for m, f in frames.items()
        }
        if reference is None:
            reference = (run, test_set)
        elif any(not test_set[m].equals(reference[1][m]) for m in MODELS):
            raise InputError(
                f"{reference[0].name} and {run.name} were tested on different images (their test "
                "paths or true classes differ: other data or index maps); compare runs of one data set"
            )
        run.correct = {f"{m}.{t}": frames[m][f"{t}_correct"] for m, tasks in MODELS.items() for t in tasks}
    if len(runs) < 2:
        raise InputError(
            f"{len(runs)} evaluated run(s) to compare; name two or more, or run experiments first"
        )
    return runs


def group_runs(runs: list[Run]) -> tuple[list[list[Run]], list[str]]:
    """Runs grouped by every param but ``seed`` (in the order first seen), and the params whose
    values differ between the groups (what the groups are labelled by)."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        key = json.dumps({k: v for k, v in run.params.items() if k != "seed"}, sort_keys=True)
        groups.setdefault(key, []).append(run)
    keys = sorted({k for run in runs for k in run.params} - {"seed"})
    differing = [k for k in keys if len({json.dumps(g[0].params.get(k)) for g in groups.values()}) > 1]
    return list(groups.values()), differing


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
    return {"mode": "seeds", "differing": differing, "groups": described, "comparisons": _seed_groups(groups)}


def _pairs(groups: list[list[Run]]) -> list[dict]:
    (a,), rest = groups[0], groups[1:]
    out = []
    for (b,) in rest:
        for task in TASKS:
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


def _seed_groups(groups: list[list[Run]]) -> list[dict]:
    out = []
    for task in TASKS:
        measured = [stats.Group(tuple(r.accuracy(task) for r in g)) for g in groups]
        base = measured[0]
        for i, other in enumerate(measured[1:], start=1):
            diff = stats.difference(base, other)
            out.append(
                {
                    "a": 0,
                    "b": i,
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
        if row["p_value"] < 0.05:
            return "these two models differ on these images (p < 0.05)"
        return "no evidence that these two models differ (p >= 0.05)"
    if row["exceeds_spread"]:
        return "beyond the seed-to-seed spread (the interval excludes 0)"
    return "within the seed-to-seed spread (the interval includes 0)"


def tables(result: dict) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """The groups' table and the comparison table: (header, group rows, comparison rows)."""
    groups = [
        [f"{chr(65 + i)}", g["label"], " ".join(map(str, g["seeds"])), ", ".join(g["runs"])]
        for i, g in enumerate(result["groups"])
    ]
    rows = []
    for r in result["comparisons"]:
        if result["mode"] == "mcnemar":
            rows.append(
                [
                    f"{r['a']} -> {r['b']}",
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
            a, b = chr(65 + r["a"]), chr(65 + r["b"])
            rows.append(
                [
                    f"{a} -> {b}",
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


def render_text(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(c) for c in col) for col in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in [header, *rows]
    ]
    return "\n".join(lines)


def render_md(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join("| " + " | ".join(line) + " |" for line in [header, ["---"] * len(header), *rows])


def report(result: dict, markdown: bool) -> str:
    groups, rows = tables(result)
    render = render_md if markdown else render_text
    if result["mode"] == "mcnemar":
        images = result["comparisons"][0]["images"]
        note = (
            f"Each row: A is the first run, B the other; A only / B only count the {images} test images "
            "one model gets right and the other wrong; exact McNemar test. It says whether two trained "
            "models differ, not whether their settings do: reseeding alone changes a model too."
        )
    else:
        note = (
            "Accuracies in % over seeds (sd: sample standard deviation); the difference B - A in points "
            "with a 95% Welch interval."
        )
    return "\n\n".join([render(GROUP_HEADER, groups), render(HEADERS[result["mode"]], rows), note])


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
