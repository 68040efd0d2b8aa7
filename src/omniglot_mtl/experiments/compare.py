"""``omniglot-mtl-compare``: is the difference between experiments real?

    omniglot-mtl-compare [EXPERIMENT ...] [-A | -n N | --rev REV] [--md | --json] [--delta-m]

What it reads, how it groups runs (params and what made them, seed aside) and what it reports
(McNemar per image, Welch over seeds, Δm): docs/experiments.md, "Is the difference real?".
"""

import argparse
import dataclasses
import hashlib
import io
import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from omniglot_mtl.core.errors import InputError, run_stage
from omniglot_mtl.experiments import stats
from omniglot_mtl.experiments.recipe import flatten

# The evaluate stage's output (dvc.yaml); evaluate.py itself would import torch.
PER_IMAGE_DIR = "metrics/evaluate/per_image"


@dataclass
class Run:
    """One evaluated commit or experiment."""

    name: str
    rev: str
    params: dict  # flattened: "loss.char_weight" -> 2.0
    made_of: dict[str, str]  # code and source data: path -> hash, from dvc.lock (made_of())
    correct: dict[str, pd.Series] = field(default_factory=dict)  # task -> 0/1 per test image

    @property
    def seed(self) -> int:
        return int(self.params["seed"])

    @property
    def setting(self) -> dict:
        """Its params but ``seed``: what a group's runs share."""
        return {k: v for k, v in self.params.items() if k != "seed"}

    def accuracy(self, task: str) -> float:
        return float(self.correct[task].mean())


def flat_params(params: dict) -> dict:
    """``{"loss": {"char_weight": 2}}`` -> ``{"loss.char_weight": 2.0}`` (recipe.flatten). Numbers
    become floats: ``-S loss.char_weight=1`` writes 1 where params.yaml says 1.0, the same setting."""
    return {
        key: float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        for key, value in flatten(params).items()
    }


def list_runs(repo: Path, scope: list[str]) -> list[Run]:
    """Each evaluated commit and finished experiment ``dvc exp show --json`` lists with the flags
    ``scope``, with its params and what made it, as that listing gives them; a running or queued
    experiment is named on stderr and left out (its rev is its baseline's until it finishes)."""
    shown = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json", "--hide-queued", "--hide-failed", *scope],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    if shown.returncode:
        # DVC's own line, not the support banner after it. Seen: a queued experiment killed or
        # just finished leaves DVC looking for its run file under .dvc/tmp/exps.
        errors = [line for line in shown.stderr.splitlines() if line.startswith("ERROR: ")] or ["no output"]
        raise InputError(f"dvc exp show failed: {errors[-1].removeprefix('ERROR: ')} (see dvc queue status)")
    runs = []
    for commit in json.loads(shown.stdout):
        if commit["rev"] == "workspace":
            continue
        entries = [(commit, "success")]
        for exp in commit.get("experiments") or []:
            entries.append((exp["revs"][0], (exp.get("executor") or {}).get("state", "success")))
        for entry, state in entries:
            name = entry.get("name") or entry["rev"][:7]
            data = entry.get("data") or {}
            if state != "success":
                print(f"note: {name} is {state}: left out", file=sys.stderr)
            elif "params.yaml" in (data.get("params") or {}):  # else never evaluated
                runs.append(run_of(name, entry["rev"], data))
    return runs


def run_of(name: str, rev: str, data: dict) -> Run:
    """A run from its entry in ``dvc exp show --json``: its params, and the hash of every stage
    dependency that no stage makes (the code and the source data; what stages make from them,
    models and arrays, follows), as its dvc.lock records them."""
    params = flat_params(data["params"]["params.yaml"].get("data") or {})
    outs = data.get("outs") or {}
    deps = data.get("deps") or {}
    return Run(
        name, rev, params, {path: dep.get("hash") or "" for path, dep in deps.items() if path not in outs}
    )


def find(repo: Path, name: str, listed: list[Run]) -> Run:
    """``name`` among the listed runs, else among every commit's (``dvc exp show -A``): an
    experiment's or a branch's name, or the commit that a git revision (``HEAD~1``, a hash) names."""
    rev = subprocess.run(
        ["git", "rev-parse", "--verify", "-q", f"{name}^{{commit}}"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()

    def named(runs: list[Run]) -> Run | None:
        return next((run for run in runs if name == run.name or rev == run.rev), None)

    match = named(listed) or named(list_runs(repo, ["-A"]))  # the second listing only if needed
    if match:
        return dataclasses.replace(match, name=name)
    known = ", ".join(r.name for r in listed) or "none"
    raise InputError(f"{name}: no such experiment or commit with a params.yaml (this commit's: {known})")


def read_per_image(repo: Path, run: Run) -> dict[str, pd.DataFrame]:
    """The run's per-image results, ``{model: frame}``, a DVC output, as its commit names it."""
    from dvc.api import DVCFileSystem
    from dvc.exceptions import DvcException
    from dvc_data.index import DataIndexDirError

    fs = DVCFileSystem(str(repo), rev=run.rev)
    try:
        if not fs.isdir(PER_IMAGE_DIR):
            raise InputError(
                f"{run.name}: no {PER_IMAGE_DIR}/ in its commit {run.rev[:7]}: it was evaluated "
                "before per-image results existed; rerun it (dvc exp run) to compare it"
            )
        return {
            Path(path).stem: pd.read_csv(io.StringIO(fs.read_text(path)))
            for path in sorted(fs.ls(PER_IMAGE_DIR, detail=False))
        }
    except (DvcException, DataIndexDirError, FileNotFoundError):
        raise InputError(
            f"{run.name}: {PER_IMAGE_DIR}/ is not in this machine's DVC cache; fetch it first "
            "(dvc exp pull <remote> for an experiment, dvc pull for a commit)"
        ) from None


def load(repo: Path, selected: list[str], scope: list[str] | None = None) -> list[Run]:
    """The runs named in ``selected`` (all that ``dvc exp show`` lists with ``scope`` when
    empty), with their per-image answers, checked to share one test set. Two names of one run
    (a commit and an experiment that reproduced it) are one run, counted once."""
    if not (repo / ".dvc").is_dir():
        raise InputError(f"{repo}: not a DVC project; run omniglot-mtl-compare in the project's folder")
    listed = list_runs(repo, scope or [])
    if selected:
        listed = [find(repo, name, listed) for name in selected]
    runs: list[Run] = []
    for run in listed:
        same = next((r for r in runs if (r.params, r.made_of) == (run.params, run.made_of)), None)
        if same:
            same.name += f"={run.name}"
        else:
            runs.append(run)
    answers = {}
    for run in list(runs):
        try:
            answers[run.name] = read_per_image(repo, run)
        except InputError as err:
            if selected:  # named: the user asked for this one
                raise
            print(f"note: {err}; left out", file=sys.stderr)
            runs.remove(run)
    if len(runs) < 2:
        raise InputError(
            f"{len(runs)} evaluated run(s) to compare; name two or more, or run experiments first"
        )
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
    """Runs grouped by every param but ``seed`` and by what made them (groups in the order first
    seen, runs by seed), and what differs between the groups: the params by name, then "code"
    and "data" where the hashes of stage dependencies do (a ``.py`` file or a package folder is
    code)."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        key = json.dumps([run.setting, run.made_of], sort_keys=True)
        groups.setdefault(key, []).append(run)
    firsts = [g[0] for g in groups.values()]
    keys = sorted({k for run in runs for k in run.params} - {"seed"})
    differing = [k for k in keys if len({json.dumps(r.params.get(k)) for r in firsts}) > 1]
    for kind in ("code", "data"):
        if len({json.dumps(_part(r, kind), sort_keys=True) for r in firsts}) > 1:
            differing.append(kind)
    return [sorted(g, key=lambda r: r.seed) for g in groups.values()], differing


def _part(run: Run, kind: str) -> dict[str, str]:
    """The dependency hashes of ``run`` that are code (``.py`` files, the package's folders) or
    data (the rest)."""
    return {path: h for path, h in run.made_of.items() if is_code(path) == (kind == "code")}


def is_code(path: str) -> bool:
    return path.endswith(".py") or path.startswith("src/")


def label(group: list[Run], differing: list[str]) -> str:
    """What sets the group apart: its differing params, and its code or data, named by a short
    digest of their hashes (the groups table lists the runs, and so the commits, behind it)."""
    run, parts = group[0], []
    for key in differing:
        if key in ("code", "data"):
            digest = hashlib.md5(json.dumps(_part(run, key), sort_keys=True).encode()).hexdigest()
            parts.append(f"{key}={digest[:7]}")
        else:
            value = run.params.get(key)
            parts.append(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts)


# The weight that, set to 0, trains the multi-output model on the other task alone.
ZEROED_FOR = {"alphabet": "loss.char_weight", "character": "loss.alpha_weight"}


def delta_m(groups: list[list[Run]], labels: list[str]) -> list[dict]:
    """Each multi-task group's Δm (Maninis et al. 2019; LibMTL's ``count_improvement``): the
    mean over tasks of the relative change of the multi-output model's accuracy against the same
    setting trained on that task alone, i.e. the group with the same params and code but the
    other task's weight 0. Computed per seed, each seed against the baselines of that seed, then
    averaged over the seeds with a 95% t interval. Groups without both baselines are left out."""
    out = []
    for group, name in zip(groups, labels, strict=True):
        first = group[0]  # a baseline itself has no baselines: both weights 0 is refused
        baselines = {}
        for task, zeroed in ZEROED_FOR.items():
            want = first.setting | {zeroed: 0.0}
            baselines[task] = next(
                (g for g in groups if g[0].setting == want and g[0].made_of == first.made_of),
                None,
            )
        if None in baselines.values():
            continue
        seeds = [r.seed for r in group]
        if any(sorted(r.seed for r in g) != sorted(seeds) for g in baselines.values()):
            raise InputError(
                f"{name}: Δm pairs each seed with its single-task baselines of the same seed; "
                f"run the baselines over seeds {seeds} too"
            )
        per_seed = {task: [] for task in ZEROED_FOR}
        for run in group:
            for task, baseline_group in baselines.items():
                column = f"multi_output.{task}"
                base = next(r for r in baseline_group if r.seed == run.seed).accuracy(column)
                if base == 0:
                    raise InputError(
                        f"{name}: its {task}-only baseline of seed {run.seed} scored 0, so a relative "
                        "change (Δm) is undefined; train longer or on more data"
                    )
                per_seed[task].append((run.accuracy(column) - base) / base)
        overall = [sum(changes) / len(changes) for changes in zip(*per_seed.values(), strict=True)]
        mean, low, high = stats.mean_interval(overall)
        out.append(
            {
                "group": name,
                "seeds": sorted(seeds),
                "per_task": {task: sum(v) / len(v) for task, v in per_seed.items()},
                "delta_m": mean,
                "low": low,
                "high": high,
                "exceeds_spread": len(overall) > 1 and bool(low > 0 or high < 0),
            }
        )
    return out


def compare(runs: list[Run], named: bool = False) -> dict:
    """The comparison as plain data (what ``--json`` prints). Among several seeds per setting, a
    setting with one seed is left out with a note, unless the user ``named`` the runs."""
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
    labels = [d["label"] for d in described]
    if sizes == {1}:  # one run per setting: its models, image by image
        mode, comparisons = "mcnemar", _pairs(groups)
    else:
        single = [d["label"] for d, g in zip(described, groups, strict=True) if len(g) == 1]
        if single and not named and len(groups) - len(single) >= 2:  # a leftover run: compare the rest
            for name in single:
                print(f"note: {name}: one seed, so no spread to compare against; left out", file=sys.stderr)
            return compare([r for g in groups if len(g) > 1 for r in g], named)
        if single:
            raise InputError(
                f"{'; '.join(single)}: one seed, so no spread to compare against; queue more seeds "
                "(dvc exp run --queue -S seed=1,2 with the same params) or name one run per setting"
            )
        mode, comparisons = "seeds", _seed_groups(groups, labels)
    return {
        "mode": mode,
        "differing": differing,
        "groups": described,
        "comparisons": comparisons,
        "delta_m": delta_m(groups, labels),
    }


def _pairs(groups: list[list[Run]]) -> list[dict]:
    (a,), rest = groups[0], groups[1:]
    out = []
    for (b,) in rest:
        for task in a.correct:
            test = stats.mcnemar(a.correct[task], b.correct[task])
            row = {"a": a.name, "b": b.name, "task": task, **dataclasses.asdict(test)}
            out.append(row | {"change": test.change, "images": len(a.correct[task])})
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
                    **dataclasses.asdict(diff),
                    "exceeds_spread": diff.exceeds_spread,
                }
            )
    return out


def verdict(row) -> str:
    if "p_value" in row:
        return "the models differ" if row["p_value"] < 0.05 else "no evidence of a difference"
    return "beyond the seed spread" if row["exceeds_spread"] else "within the seed spread"


def percent(column: pd.Series) -> pd.Series:
    return column.map(lambda x: f"{100 * x:.2f}")


def points(column: pd.Series) -> pd.Series:
    return column.map(lambda x: f"{100 * x:+.2f}")


NOTES = {
    "mcnemar": "A only / B only: of the {images} test images, those one model gets right and the other "
    "wrong; p: exact McNemar test, the models differ where p < 0.05. That says whether two trained "
    "models differ, not whether their settings do: reseeding alone changes a model.",
    "seeds": "Accuracy in % over seeds, mean ± sample standard deviation; the difference B - A in points "
    "with its 95% Welch interval: beyond the seed-to-seed spread where the interval excludes 0.",
    "delta_m": "Δm: the multi-output model's accuracy per task relative to the same setting trained on "
    "that task alone (the other task's weight 0), averaged over the two tasks, in %; per seed, then "
    "over seeds with a 95% t interval. Above 0, training the tasks together helps.",
}


def report(result: dict, markdown: bool) -> str:
    """The comparison as tables: the groups (named A, B, ...), the comparisons, and Δm."""
    groups = pd.DataFrame(result["groups"])
    groups.insert(0, "group", [chr(65 + i) for i in range(len(groups))])
    letter = dict(zip(groups["label"], groups["group"], strict=True))
    letter |= {name: g for g, runs in zip(groups["group"], groups["runs"], strict=True) for name in runs}
    shown = pd.DataFrame(
        {
            "group": groups["group"],
            "params": groups["label"],
            "seeds": groups["seeds"].map(lambda seeds: " ".join(map(str, seeds))),
            "runs": groups["runs"].map(", ".join),
        }
    )
    rows = pd.DataFrame(result["comparisons"])
    pair = rows["a"].map(letter) + " -> " + rows["b"].map(letter)
    if result["mode"] == "mcnemar":
        table = pd.DataFrame(
            {
                "runs": pair,
                "task": rows["task"],
                "accuracy A %": percent(rows["accuracy_a"]),
                "accuracy B %": percent(rows["accuracy_b"]),
                "change": points(rows["change"]),
                "A only": rows["only_a"].astype(str),
                "B only": rows["only_b"].astype(str),
                "McNemar p": rows["p_value"].map(lambda p: f"{p:.3g}"),
            }
        )
        note = NOTES["mcnemar"].format(images=rows["images"].iloc[0])
    else:
        table = pd.DataFrame(
            {
                "groups": pair,
                "task": rows["task"],
                "A mean ± sd %": percent(rows["mean_a"]) + " ± " + percent(rows["sd_a"]),
                "B mean ± sd %": percent(rows["mean_b"]) + " ± " + percent(rows["sd_b"]),
                "difference": points(rows["difference"]),
                "95% interval": points(rows["low"]) + " to " + points(rows["high"]),
            }
        )
        note = NOTES["seeds"]
    table[""] = rows.apply(verdict, axis=1)
    parts = [shown, table, note]
    if result["delta_m"]:
        deltas = pd.DataFrame(result["delta_m"])
        spread = deltas["seeds"].map(len) > 1
        parts += [
            pd.DataFrame(
                {
                    "group": deltas["group"].map(letter),
                    "seeds": deltas["seeds"].map(lambda seeds: " ".join(map(str, seeds))),
                    **{f"{t} Δ %": points(deltas["per_task"].map(lambda d, t=t: d[t])) for t in ZEROED_FOR},
                    "Δm %": points(deltas["delta_m"]),
                    "95% interval": (points(deltas["low"]) + " to " + points(deltas["high"])).where(
                        spread, "one seed: no interval"
                    ),
                    "": deltas.apply(verdict, axis=1).where(spread, ""),
                }
            ),
            NOTES["delta_m"],
        ]
    fmt = "github" if markdown else "plain"
    return "\n\n".join(
        textwrap.fill(part, 100)
        if isinstance(part, str)
        else tabulate(part, headers="keys", tablefmt=fmt, showindex=False, disable_numparse=True)
        for part in parts
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="omniglot-mtl-compare", description=__doc__.split("\n\n")[0].split(": ", 1)[1]
    )
    ap.add_argument(
        "experiments", nargs="*", help="experiments, commits or branches (default: all of this commit)"
    )
    scope = ap.add_mutually_exclusive_group()
    scope.add_argument("-A", "--all-commits", action="store_true", help="every commit's experiments")
    scope.add_argument("-n", "--num", type=int, metavar="N", help="the experiments of the last N commits")
    scope.add_argument("--rev", metavar="REV", help="the experiments of REV (a commit or branch)")
    out = ap.add_mutually_exclusive_group()
    out.add_argument("--md", action="store_true", help="Markdown tables, for a pull request")
    out.add_argument("--json", action="store_true", help="the figures as JSON")
    ap.add_argument(
        "--delta-m",
        action="store_true",
        help="require Δm against single-task baselines (loss.alpha_weight=0 and loss.char_weight=0 runs)",
    )
    args = ap.parse_args(argv)
    flags = ["-A"] if args.all_commits else ["-n", str(args.num)] if args.num else []
    flags += ["--rev", args.rev] if args.rev else []

    def run() -> None:
        result = compare(load(Path.cwd(), args.experiments, flags), named=bool(args.experiments))
        if args.delta_m and not result["delta_m"]:
            raise InputError(
                "--delta-m: no multi-task group has both single-task baselines among these runs; run "
                "the same setting with -S loss.alpha_weight=0 and with -S loss.char_weight=0 (same seeds)"
            )
        print(json.dumps(result, indent=2) if args.json else report(result, args.md))

    run_stage(run)


if __name__ == "__main__":
    sys.exit(main())
