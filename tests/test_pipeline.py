"""The real `dvc` CLI over the real pipeline, in a temporary git repository, on tiny data."""

import csv
import functools
import hashlib
import html.parser
import io
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import scipy.stats
import torch
import yaml
from conftest import ENV, GIT_ID, ROOT, copy_project, documented, documented_line, dvc, git, make_set, shell
from dvc.api import DVCFileSystem
from filelock import FileLock

from omniglot_mtl.core.environment import PORTABLE_CAPS, usable_cpus
from omniglot_mtl.experiments.recipe import merged
from omniglot_mtl.models.checkpoints import load_checkpoint

TINY = {
    "data": {
        "image_size": 16,
        "split": {"val_drawers": [5], "test_drawers": [6]},
        "synthetic": {"alphabets": 3, "characters": 4, "drawers": 6},
    },
    "train": {"epochs": 2, "batch_size": 16},
    "device": "cpu",
}


def set_params(repo: Path, changes: dict) -> None:
    params = merged(yaml.safe_load((repo / "params.yaml").read_text()), changes)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def ran(output: str) -> list[str]:
    """Stages that `dvc repro` / `dvc exp run` actually ran (not skipped, not restored from cache)."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def exp_rows(repo: Path) -> list[dict]:
    """Every commit and experiment row of `dvc exp show --json` (not the workspace), flattened."""
    rows = []
    for commit in json.loads(dvc(repo, "exp", "show", "--json").stdout)[1:]:
        for entry in [commit] + [e for exp in commit.get("experiments") or [] for e in exp["revs"]]:
            data = entry.get("data") or {}
            if data:
                rows.append(
                    {
                        "name": entry.get("name") or entry["rev"],
                        "rev": entry["rev"],
                        "status": data.get("status"),
                        "params": data["params"]["params.yaml"]["data"],
                        "metrics": data["metrics"].get("metrics/evaluate.json", {}).get("data"),
                    }
                )
    return rows


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory, worker_id) -> tuple[Path, str]:
    """The project, reproduced with tiny params and committed, once per test run: the first
    xdist worker to get here builds it under a lock, the other finds it (a build costs ~20 s).
    Nothing runs in it afterwards; tests get copies (``pipeline``, ``workspace``)."""
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent  # the folder every worker's own base folder is in
    repo, log = shared / "reproduced" / "project", shared / "reproduced" / "repro.log"
    with FileLock(shared / "reproduced.lock"):
        if not log.exists():
            shutil.rmtree(repo, ignore_errors=True)  # what a build that failed left
            copy_project(repo)
            set_params(repo, TINY)
            git(repo, "add", "-A")
            git(repo, "commit", "-qm", "project")  # as in a user's clone (DVCLive needs a commit)
            first = dvc(repo, *documented("dvc repro")[1:])
            shell(repo, documented_line("git add -A && git commit -m baseline"))
            log.write_text(first.stdout)
    return repo, log.read_text()


@pytest.fixture(scope="module")
def pipeline(reproduced, tmp_path_factory) -> tuple[Path, str]:
    """A copy of the reproduced project, shared by the tests of this module that only read it."""
    repo, log = reproduced
    copy = tmp_path_factory.mktemp("pipeline") / "project"
    shutil.copytree(repo, copy, symlinks=True)
    return copy, log


@pytest.fixture
def workspace(pipeline, tmp_path) -> Path:
    """A copy of the committed pipeline (its git history, DVC cache and run cache) for one test
    that changes it: tests neither see each other's experiments nor depend on their order."""
    repo, _ = pipeline
    copy = tmp_path / "project"
    shutil.copytree(repo, copy, symlinks=True)
    return copy


def test_repro_runs_every_stage_and_writes_declared_outputs(pipeline):
    repo, output = pipeline
    assert ran(output) == [
        "check_params",
        "download",
        "index",
        "train_multi_input",
        "train_multi_output",
        "evaluate",
    ]
    metrics = json.loads((repo / "metrics" / "evaluate.json").read_text())
    assert set(metrics) == {"multi_input", "multi_output", "test_images"}
    assert set(metrics["multi_input"]) == {"character"}
    assert set(metrics["multi_output"]) == {"alphabet", "character", "alphabet_both_heads", "consistency"}
    assert set(metrics["multi_output"]["character"]) == {"accuracy", "top5", "macro_accuracy"}
    assert metrics["test_images"] == 12  # 3 alphabets x 4 characters x drawer 6
    assert sorted(p.name for p in (repo / "models").glob("*.pt")) == ["multi_input.pt", "multi_output.pt"]
    confusion = (repo / "metrics" / "evaluate" / "alphabet_confusion.csv").read_text().splitlines()
    assert confusion[0] == "actual,predicted" and len(confusion) == 13
    assert git(repo, "status", "--porcelain") == ""  # every output is either git-tracked or git-ignored
    assert "nothing to commit, working tree clean" in git(repo, *documented("git status")[1:])


def test_noop_repro(pipeline):
    repo, _ = pipeline
    out = dvc(repo, "repro").stdout
    assert ran(out) == [] and "Data and pipelines are up to date." in out
    # The stage a torchrun's outputs are recorded before (docs/distributed.md): up to date too.
    assert ran(dvc(repo, *documented("dvc repro evaluate")[1:]).stdout) == []


def test_metrics_and_plots_are_found_without_arguments(pipeline):
    repo, _ = pipeline
    # Declared in dvc.yaml (stage-level `metrics:`, `plots:` and top-level `plots:`): found with
    # no arguments, and the stages keep DVC's run cache (tested in test_experiment_workflow).
    shown = json.loads(dvc(repo, "metrics", "show", "--json").stdout)
    files = shown[""]["data"] if "" in shown else next(iter(shown.values()))["data"]
    assert {
        "metrics/evaluate.json",
        "metrics/train_multi_input/metrics.json",
        "metrics/train_multi_output/metrics.json",
    } <= set(files)
    plots = json.loads(dvc(repo, "plots", "show", "--json").stdout)["data"]
    ids = set(plots)
    bars = plots["metrics/evaluate/character_accuracy_per_alphabet.csv"][0]["content"]
    assert bars["encoding"]["yOffset"]["field"] == "model"  # our grouped-bar template
    assert sorted({(v["alphabet"], v["model"]) for v in bars["data"]["values"]}) == [
        (a, m)
        for a in ("Synthetic_01", "Synthetic_02", "Synthetic_03")
        for m in ("multi_input", "multi_output")
    ]
    confusion = plots["metrics/evaluate/alphabet_confusion.csv"][0]["content"]
    assert len(confusion["data"]["values"]) == 12
    # The training curves: one chart per DVCLive file (dvc.yaml's top-level plots over the
    # training stages' folders), y the task, x the epoch counted from 1.
    quantities = {
        "train_multi_input": ["train/loss", "val/accuracy"],
        "train_multi_output": ["train/loss", "val/accuracy", "weight"],
    }
    curves = {
        f"metrics/{stage}/plots/metrics/{quantity}/{task}.tsv": task
        for stage, names in quantities.items()
        for quantity in names
        for task in (("character",) if stage == "train_multi_input" else ("alphabet", "character"))
    }
    assert len(curves) == 8
    assert ids == set(curves) | {
        "metrics/evaluate/character_accuracy_per_alphabet.csv",
        "metrics/evaluate/alphabet_confusion.csv",
    }
    for path, task in curves.items():
        chart = plots[path][0]["content"]
        assert chart["encoding"]["x"]["field"] == "step"
        assert chart["layer"][0]["encoding"]["y"]["field"] == task
        assert sorted(int(v["step"]) for v in chart["data"]["values"]) == [1, 2]  # TINY trains 2 epochs


def test_the_plots_page_needs_no_network(workspace, tmp_path):
    """DVC's own page loads Vega from a CDN; ours (.dvc/plots/page.html, via plots.html_template)
    has the three scripts inlined."""
    repo = workspace
    dvc(repo, *documented("dvc plots show")[1:])  # as README says it: dvc_plots/index.html
    assert (repo / "dvc_plots" / "index.html").is_file()
    assert git(repo, "status", "--porcelain") == ""  # dvc_plots/ is git-ignored
    dvc(repo, "plots", "show", "-o", str(tmp_path / "page"))
    text = (tmp_path / "page" / "index.html").read_text()

    class Loads(html.parser.HTMLParser):  # what the page's elements load (script text is data)
        found: list[str] = []

        def handle_starttag(self, tag, attrs):
            self.found += [f"{tag} {k}={v}" for k, v in attrs if k in ("src", "href", "data")]

    page = Loads()
    page.feed(text)
    assert page.found == []
    assert "cdn.jsdelivr" not in text
    for name in ("vega 5.20.2", "vega-lite 5.2.0", "vega-embed 6.18.2"):
        assert f"<script>/* {name} */" in text
    plots = json.loads(dvc(repo, "plots", "show", "--json").stdout)["data"]
    assert text.count("vegaEmbed(") == len(plots) > 0  # every plot is drawn by the inlined code
    # `dvc plots diff` draws the same charts for two revisions, on the same offline page.
    diffed = json.loads(dvc(repo, "plots", "diff", "HEAD", "--json").stdout)["data"]
    assert set(diffed) == set(plots)
    assert {tuple(p["revisions"]) for charts in diffed.values() for p in charts} == {("workspace", "HEAD")}
    dvc(repo, "plots", "diff", "HEAD", "-o", str(tmp_path / "diff"))
    text = (tmp_path / "diff" / "index.html").read_text()
    assert "cdn.jsdelivr" not in text and text.count("vegaEmbed(") == len(plots)
    # docs/experiments.md's plain form: the workspace against HEAD.
    assert "dvc_plots" in dvc(repo, *documented("dvc plots diff")[1:]).stdout


def test_experiment_workflow(workspace):
    repo = workspace
    # A loss weight reruns the multi-output branch only (after the params check, which reruns
    # on any change of params.yaml and is over in a fraction of a second).
    baseline = json.loads((repo / "metrics" / "evaluate.json").read_text())
    out = dvc(repo, *documented("dvc exp run -n char-weight-2 -S loss.char_weight=2")[1:]).stdout
    assert ran(out) == ["check_params", "train_multi_output", "evaluate"]
    rows = exp_rows(repo)
    weights = sorted(r["params"]["loss"]["char_weight"] for r in rows)
    assert weights == [1.0, 2.0]
    # The committed row shows the committed file; both rows share the untouched multi-input model.
    assert next(r for r in rows if r["params"]["loss"]["char_weight"] == 1.0)["metrics"] == baseline
    assert {json.dumps(r["metrics"]["multi_input"]) for r in rows} == {json.dumps(baseline["multi_input"])}
    exp_name = next(r["name"] for r in rows if r["params"]["loss"]["char_weight"] == 2.0)
    assert exp_name == "char-weight-2"
    # Each checkpoint records exactly the params sections its stage declares, as params.yaml
    # holds them: had the multi-input checkpoint recorded ``loss`` too, the one left in place
    # here would say char_weight 1.0 beside a params.yaml that says 2 (and so would one DVC
    # restores from its run cache).
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["loss"]["char_weight"] == 2  # not what made the multi-input checkpoint
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    for kind in ("multi_input", "multi_output"):
        sections = sorted(stages[f"train_{kind}"]["params"])
        assert ("loss" in sections) == (kind == "multi_output")
        recorded = torch.load(repo / "models" / f"{kind}.pt", weights_only=True)["params"]
        assert sorted(recorded) == sections
        for name in sections:
            expected = params[name]
            if isinstance(expected, dict):  # the checkpoint holds every key, defaults included
                assert {k: recorded[name][k] for k in expected} == expected, (kind, name)
            else:
                assert recorded[name] == expected, (kind, name)
    shown = dvc(repo, *documented("dvc exp show")[1:], env={"COLUMNS": "1000"}).stdout
    assert "char-weight-2" in shown and "main" in shown
    # README's comparison, as written: one row per changed metric, both revisions named.
    diffed = dvc(repo, *documented("dvc metrics diff main char-weight-2")[1:]).stdout
    assert re.search(r"weight\.character\s+1\.0\s+2\.0\s+1\.0", diffed), diffed
    assert "multi_output.character.accuracy" in diffed and "multi_input" not in diffed
    # With no revisions: HEAD against the workspace, which holds the last experiment's results.
    plain = dvc(repo, *documented("dvc metrics diff")[1:]).stdout  # rows in no fixed order
    assert sorted(row.split() for row in plain.splitlines()[1:]) == sorted(
        row.split() for row in diffed.splitlines()[1:]
    )
    # The same two revisions' curves on one page.
    dvc(repo, *documented("dvc plots diff main char-weight-2")[1:])
    page = (repo / "dvc_plots" / "index.html").read_text()
    assert page.count("vegaEmbed(") == 10 and "char-weight-2" in page  # 8 curves, 2 test charts

    diff = json.loads(dvc(repo, "metrics", "diff", "HEAD", exp_name, "--all", "--json").stdout)
    evaluate = diff["metrics/evaluate.json"]
    for task in (
        "multi_output.alphabet.accuracy",
        "multi_output.character.accuracy",
        "multi_input.character.accuracy",
    ):
        assert set(evaluate[task]) == {"old", "new", "diff"}
    # The multi-input model was not retrained: its test metrics are the same.
    assert evaluate["multi_input.character.accuracy"]["diff"] == 0
    assert diff["metrics/train_multi_output/metrics.json"]["weight.character"] == {
        "old": 1.0,
        "new": 2.0,
        "diff": 1.0,
    }

    # Back to the baseline's weight, then the same experiment again: both come from DVC's run
    # cache, nothing is trained.
    for command in ("dvc exp run -S loss.char_weight=1.0", documented("dvc exp run -S loss.char_weight=2")):
        again = dvc(repo, *(command.split() if isinstance(command, str) else command)[1:]).stdout
        assert ran(again) == ["check_params"]
        assert "Stage 'train_multi_output' is cached - skipping run, checking out outputs" in again
    # An experiment of the workspace as it is: nothing changed, so nothing is trained.
    assert ran(dvc(repo, *documented("dvc exp run")[1:]).stdout) == []
    changed = dvc(repo, *documented("dvc params diff")[1:]).stdout
    assert re.search(r"loss\.char_weight\s+1\.0\s+2", changed), changed
    # README's way back to the last commit, before its next experiments start from the workspace.
    shell(repo, documented_line("git checkout -- params.yaml dvc.lock metrics && dvc checkout"))
    assert git(repo, "status", "--porcelain") == ""
    assert yaml.safe_load((repo / "params.yaml").read_text())["loss"]["char_weight"] == 1.0
    assert json.loads((repo / "metrics" / "evaluate.json").read_text()) == baseline
    assert "Data and pipelines are up to date." in dvc(repo, "status").stdout

    # Is the difference real? Two runs, one seed each: the change and an exact McNemar test per
    # task, recomputed here from the per-image files; then the one-line refusals.
    RUN = {"cwd": repo, "env": ENV, "capture_output": True, "text": True, "check": True}  # noqa: N806
    compared = documented("omniglot-mtl-compare main char-weight-2")
    result = json.loads(subprocess.run([*compared, "--json"], **RUN).stdout)
    assert result["mode"] == "mcnemar" and len(result["comparisons"]) == 4  # both heads' alphabet too
    for row in result["comparisons"]:
        model, task = row["task"].split(".")
        a = per_image_accuracy(repo, "main", model, task)
        b = per_image_accuracy(repo, exp_rev(repo, "char-weight-2"), model, task)
        only_a = sum(x and not y for x, y in zip(a, b, strict=True))
        only_b = sum(y and not x for x, y in zip(a, b, strict=True))
        n = only_a + only_b
        p = min(1.0, 2 * sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2**n) if n else 1.0
        assert (row["only_a"], row["only_b"], row["images"]) == (only_a, only_b, 12)
        assert row["p_value"] == pytest.approx(p)
        assert row["accuracy_b"] - row["accuracy_a"] == pytest.approx((only_b - only_a) / 12)
    table = subprocess.run(compared, **RUN).stdout
    assert "McNemar p" in table and "loss.char_weight=2" in table

    def refused(*args: str) -> str:
        done = shell(repo, " ".join(["omniglot-mtl-compare", *args]), check=False)
        assert done.returncode == 1 and done.stdout == "", done
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        return done.stderr.strip()

    assert refused("nope", "main").startswith("error: nope: no such experiment or commit")
    assert refused("main").startswith("error: 1 evaluated run(s) to compare")
    # Two commits with the same params and other code are two runs, and the table says what
    # differs: the code (a .py dependency's hash in their dvc.lock files).
    reset_to_head(repo)
    with (repo / "src" / "omniglot_mtl" / "evaluation" / "evaluate.py").open("a") as f:
        f.write("\n# a change of code\n")
    assert ran(dvc(repo, "repro", env={"PYTHONPATH": str(repo / "src")}).stdout) == ["evaluate"]
    git(repo, "commit", "-qam", "a change of code")
    result = json.loads(shell(repo, "omniglot-mtl-compare HEAD~1 HEAD --json").stdout)
    assert result["differing"] == ["code"] and [g["runs"] for g in result["groups"]] == [["HEAD~1"], ["HEAD"]]
    assert [g["label"].split("=")[0] for g in result["groups"]] == ["code", "code"]
    assert result["groups"][0]["label"] != result["groups"][1]["label"]
    # A commit evaluated before per-image results existed: neither dvc.yaml nor dvc.lock has them.
    reset_to_head(repo)
    for name in ("dvc.yaml", "dvc.lock"):
        spec = yaml.safe_load((repo / name).read_text())
        outs = spec["stages"]["evaluate"]["outs"]
        spec["stages"]["evaluate"]["outs"] = [o for o in outs if "per_image" not in json.dumps(o)]
        (repo / name).write_text(yaml.safe_dump(spec, sort_keys=False))
    git(repo, "commit", "-qam", "evaluated before per-image results")
    assert refused("HEAD", "char-weight-2") == (
        f"error: HEAD: no metrics/evaluate/per_image/ in its commit "
        f"{git(repo, 'rev-parse', '--short=7', 'HEAD').strip()}: it was evaluated before per-image "
        "results existed; rerun it (dvc exp run) to compare it"
    )


@functools.cache
def per_image_file(repo: Path, rev: str, model: str) -> str:
    return DVCFileSystem(str(repo), rev=rev).read_text(f"metrics/evaluate/per_image/{model}.csv")


def per_image_accuracy(repo: Path, rev: str, model: str, task: str) -> list[int]:
    """The 0/1 answers of one experiment's model on each test image, as its commit names them."""
    rows = list(csv.DictReader(io.StringIO(per_image_file(repo, rev, model))))
    assert [int(r["image"]) for r in rows] == list(range(len(rows)))
    assert all(int(r[f"{task}_correct"]) == (r[task] == r[f"{task}_predicted"]) for r in rows)
    return [int(r[f"{task}_correct"]) for r in rows]


def test_a_queued_sweep_over_weights_and_seeds_is_compared_group_against_group(workspace):
    """README's sweep, two weights by two seeds here, through DVC's queue; then
    omniglot-mtl-compare groups the runs by every param but seed and compares the groups. Its
    figures are recomputed here from the per-image files in each experiment's commit."""
    repo = workspace
    sweep = documented(
        "dvc exp run --queue -S loss.char_weight=1,2 -S seed=0,1,2", {"seed=0,1,2": "seed=0,1"}
    )
    dvc(repo, *sweep[1:])
    # One worker: with `-j 2` one experiment failed in about 1 of 12 runs of this test here, as
    # DVC's open worker race (treeverse/dvc#10673) describes. Its output goes to a file, not a
    # pipe: the worker it starts holds a captured pipe open until it exits (55 s here), and one
    # whose monitor thread died of a JSONDecodeError never exits (treeverse/dvc#10428, seen here
    # under load). The loop below waits instead, up to its deadline.
    log = repo.parent / "queue_start.log"  # a file: nothing waits for its writers to close it
    with log.open("w") as out:
        started = subprocess.run(
            [sys.executable, "-m", "dvc", *documented("dvc queue start")[1:]],
            cwd=repo,
            env=ENV | GIT_ID,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    assert started.returncode == 0, log.read_text()
    deadline = time.time() + 240
    while time.time() < deadline:
        status = dvc(repo, *documented("dvc queue status")[1:]).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(4)  # each `dvc queue status` takes about a second of the CPU the worker needs
    failed = [line.split()[1] for line in status.splitlines() if " Failed" in line]
    logs = "\n".join(
        dvc(repo, *documented("dvc queue logs <name>", {"<name>": name})[1:], check=False).stdout
        for name in failed
    )
    assert not failed, f"{status}\n{logs}"
    assert status.count("Success") == 4, status
    done = [line.split()[1] for line in status.splitlines() if " Success" in line]
    logs = [dvc(repo, *documented("dvc queue logs <name>", {"<name>": name})[1:]).stdout for name in done]
    # Three trained; the one of the commit's own params found every stage unchanged. ``seed`` is
    # training's: seed 1 trained the multi-input model once (its second run restored it from
    # DVC's run cache) and left the data alone.
    assert sum("Running stage 'train_multi_output'" in log for log in logs) == 3
    assert sum("Running stage 'train_multi_input'" in log for log in logs) == 1
    assert sum("Stage 'train_multi_input' is cached" in log for log in logs) == 1
    assert not any("Running stage 'index'" in log for log in logs)
    dvc(repo, *documented("dvc queue remove --failed")[1:])  # the clean-up after a failure; none here
    rows = exp_rows(repo)
    settings = [(float(r["params"]["loss"]["char_weight"]), r["params"]["seed"]) for r in rows]
    assert sorted(settings) == [
        (1, 0),
        (1, 0),
        (1, 1),
        (2, 0),
        (2, 1),  # the commit, then the four experiments
    ]
    for row in rows:  # every run evaluated both models on the same 12 test images
        assert row["metrics"]["test_images"] == 12

    out = shell(repo, documented_line("omniglot-mtl-compare --json")).stdout
    result = json.loads(out)
    assert result["mode"] == "seeds" and result["differing"] == ["loss.char_weight"]
    assert [(g["label"], sorted(g["seeds"])) for g in result["groups"]] == [
        ("loss.char_weight=1", [0, 1]),
        ("loss.char_weight=2", [0, 1]),
    ]
    # The commit and the experiment of its own params are one run, named twice.
    assert any("=" in name for name in result["groups"][0]["runs"])
    revs = {}
    for setting, row in zip(settings, rows, strict=True):
        revs.setdefault(setting, row["rev"])  # the commit before the experiment of its own params
    by_task = {r["task"]: r for r in result["comparisons"]}
    tasks = ["multi_input.character", "multi_output.alphabet", "multi_output.alphabet_both_heads"]
    assert sorted(by_task) == [*tasks, "multi_output.character"]
    for name, row in by_task.items():
        model, task = name.split(".")
        a = [statistics.mean(per_image_accuracy(repo, revs[1.0, seed], model, task)) for seed in (0, 1)]
        b = [statistics.mean(per_image_accuracy(repo, revs[2.0, seed], model, task)) for seed in (0, 1)]
        assert row["mean_a"] == pytest.approx(statistics.mean(a)) and row["sd_a"] == pytest.approx(
            statistics.stdev(a)
        )
        assert row["mean_b"] == pytest.approx(statistics.mean(b)) and row["sd_b"] == pytest.approx(
            statistics.stdev(b)
        )
        if statistics.stdev(a) or statistics.stdev(b):
            welch = scipy.stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
            assert (row["low"], row["high"]) == (pytest.approx(welch.low), pytest.approx(welch.high))
        assert row["exceeds_spread"] == (row["low"] > 0 or row["high"] < 0)
    # A loss weight does not touch the multi-input model: the same answers in both groups.
    assert by_task["multi_input.character"]["difference"] == 0

    # The same figures as tables: one line per task, its difference in points and the verdict.
    table = shell(repo, documented_line("omniglot-mtl-compare")).stdout.splitlines()
    markdown = shell(repo, documented_line("omniglot-mtl-compare --md")).stdout.splitlines()

    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in line.strip("|").split("|")]

    assert table[1].split()[:3] == ["A", "loss.char_weight=1", "0"]
    assert cells(markdown[3])[:3] == ["B", "loss.char_weight=2", "0 1"]
    for name, row in by_task.items():
        verdict = "beyond the seed spread" if row["exceeds_spread"] else "within the seed spread"
        interval = f"{100 * row['low']:+.2f} to {100 * row['high']:+.2f}"
        line = next(line for line in table if f" {name} " in line)
        assert f"{100 * row['difference']:+.2f}" in line and interval in line and line.endswith(verdict)
        row_cells = cells(next(line for line in markdown if name in cells(line)))
        assert row_cells[-2:] == [interval, verdict]
    # No single-task baselines among these runs: Δm asked for is one line, not a table.
    refused = shell(repo, documented_line("omniglot-mtl-compare --delta-m"), check=False)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith("error: --delta-m: no multi-task group has both single-task baselines")
    assert len(refused.stderr.splitlines()) == 1


def exp_rev(repo: Path, name: str) -> str:
    (rev,) = [r["rev"] for r in exp_rows(repo) if r["name"] == name]
    return rev


def reset_to_head(repo: Path) -> None:
    """The workspace as committed. Files are rewritten from git rather than checked out: after a
    failed `dvc exp run`, git's index can list an edited params.yaml as unchanged."""
    shell(repo, documented_line("git show HEAD:params.yaml > params.yaml"))
    for name in ("dvc.lock", *git(repo, "ls-files", "metrics").split()):
        (repo / name).write_text(git(repo, "show", f"HEAD:{name}"))
    dvc(repo, "checkout", "--force")


def output_hashes(repo: Path) -> dict[str, str]:
    """sha256 of every model, metric and plot file, and of the params check's output."""
    metrics = [p for p in (repo / "metrics").rglob("*.*") if p.name != ".gitignore"]
    files = [*(repo / "models").glob("*.pt"), *metrics, repo / "data" / "params_ok"]
    return {p.relative_to(repo).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_bad_params_fail_before_any_output_is_deleted(workspace):
    repo = workspace
    before = output_hashes(repo)
    assert len(before) == 18
    committed = yaml.safe_load((repo / "params.yaml").read_text())
    cases = [
        (
            ["repro"],
            committed | {"train": committed["train"] | {"epochs": 0}},
            "train.epochs: must be >= 1, got 0",
        ),
        # Params only the data can refute (TINY's synthetic set has drawers 1..6).
        (
            ["repro"],
            committed | {"data": committed["data"] | {"split": {"val_drawers": [5], "test_drawers": [9]}}},
            "data.split.test_drawers: no drawings by drawer(s) [9] (the data has drawers 1..6)",
        ),
        (
            ["repro"],
            committed
            | {"data": committed["data"] | {"split": {"val_drawers": [1, 2, 3], "test_drawers": [4, 5, 6]}}},
            "data.split: val and test take every drawer; none is left to train",
        ),
        (documented("dvc exp run -S train.epochs=0")[1:], None, "train.epochs: must be >= 1, got 0"),
        (
            ["exp", "run", "-S", "+loss.char_wieght=2"],
            None,
            "loss.char_wieght: unknown key; did you mean char_weight?",
        ),
        (
            ["exp", "run", "-S", "model.backbone=convnett"],
            None,
            "model.backbone: must be one of ['seed', ",
        ),
        # A weighting method's own hyperparameter, checked by the method.
        (
            documented("dvc exp run -S loss.dwa.temperature=0")[1:],
            None,
            "loss.dwa.temperature: must be between 0.001 and 1000, got 0",
        ),
    ]
    for command, params, message in cases:
        if params is not None:
            (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        result = dvc(repo, *command, check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0, command
        assert ran(result.stdout) == ["check_params"], (command, output)
        errors = [line for line in output.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and errors[0].startswith(f"error: params.yaml: {message}"), output
        assert output_hashes(repo) == before, command
        reset_to_head(repo)
    # A misspelled key that DVC itself refuses to set never reaches a stage.
    result = dvc(repo, "exp", "run", "-S", "loss.char_wieght=2", check=False)
    assert result.returncode != 0 and "char_wieght" in result.stderr
    assert output_hashes(repo) == before
    reset_to_head(repo)
    assert "Data and pipelines are up to date." in dvc(repo, *documented("dvc status")[1:]).stdout
    dvc(repo, *documented("dvc checkout")[1:])  # nothing to restore: every output is in place
    assert output_hashes(repo) == before


def test_cpu_portable_caps_the_stages_torch_and_fixes_threads(workspace):
    """cpu.portable (the default) reaches the training stages' torch: AVX2 kernels and 2 threads,
    recorded in the checkpoint, and nothing of the machine besides. With portable off, the stage
    runs this machine's own kernels on all its CPUs."""
    repo = workspace
    path = repo / "models" / "multi_output.pt"
    env = torch.load(path, weights_only=True)["environment"]
    assert {k: env.get(k) for k in PORTABLE_CAPS} == PORTABLE_CAPS
    assert env["cpu_capability"] == "AVX2" and env["threads"] == 2 and "cpu" not in env

    set_params(repo, {"cpu": {"portable": False}})
    assert ran(dvc(repo, "repro", "train_multi_input").stdout) == ["check_params", "train_multi_input"]
    env = torch.load(repo / "models" / "multi_input.pt", weights_only=True)["environment"]
    assert not set(PORTABLE_CAPS) & set(env)
    uncapped = {k: v for k, v in ENV.items() if k not in PORTABLE_CAPS}
    probe = [sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"]
    own = subprocess.run(probe, env=uncapped, capture_output=True, text=True, check=True).stdout.strip()
    assert env["cpu_capability"] == own and env["threads"] == usable_cpus()


def test_capping_after_torch_is_imported_is_refused():
    """A cap set after torch's import may reach one library and not another: refused."""
    code = (
        "import torch\n"
        "from omniglot_mtl.core.environment import apply_cpu_portable\n"
        "apply_cpu_portable(True)\n"
    )
    uncapped = {k: v for k, v in ENV.items() if k not in PORTABLE_CAPS}
    done = subprocess.run([sys.executable, "-c", code], env=uncapped, capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "RuntimeError: cpu.portable: torch was imported before the instruction sets were capped"
    )


def test_a_recipe_runs_as_one_experiment_and_params_yaml_holds_its_values(workspace):
    repo = workspace
    recipe = yaml.safe_load((repo / "recipes" / "convnet.yaml").read_text())
    one_epoch = documented_line(
        "omniglot-mtl-recipe recipes/convnet.yaml -n convnet-1-epoch -S train.epochs=1 -S train.min_steps=0"
    )
    run = shell(repo, one_epoch)
    shown = run.stdout.splitlines()[0]  # the DVC command it runs, first
    assert shown.startswith(
        "$ dvc exp run -S model.backbone=convnet -S model.alphabet_hidden=1024 -S data.image_size=32 "
        "-S train.epochs=8 -S train.min_steps=1688 "
    )
    assert shown.endswith(" -S cpu.portable=false -n convnet-1-epoch -S train.epochs=1 -S train.min_steps=0")
    # Every value of the recipe is in the experiment's params.yaml; the -S given after it wins.
    (row,) = [r for r in exp_rows(repo) if r["name"] == "convnet-1-epoch"]
    expected = recipe | {"train": recipe["train"] | {"epochs": 1, "min_steps": 0}}
    for section, values in expected.items():
        for key, value in values.items():
            got = row["params"][section][key]
            assert (got == value) if not isinstance(value, dict) else got == got | value, (section, key)
    dvc(repo, *documented("dvc exp apply <name>", {"<name>": "convnet-1-epoch"})[1:])
    checkpoint = torch.load(repo / "models" / "multi_output.pt", weights_only=True)
    assert checkpoint["params"]["model"] == {"backbone": "convnet", "alphabet_hidden": 1024}
    assert checkpoint["config"]["alphabet_hidden"] == 1024
    assert checkpoint["params"]["train"]["lr"] == 0.003 and checkpoint["params"]["train"]["epochs"] == 1
    assert checkpoint["epochs"] == 1  # the floor off: one epoch trained
    assert checkpoint["params"]["train"]["optimizer"] == "muon"
    assert checkpoint["params"]["train"]["muon_lr"] == 0.025
    # Arguments after the recipe reach DVC: a queue of the recipe over two more seeds.
    shell(repo, documented_line("omniglot-mtl-recipe recipes/convnet.yaml --queue -S seed=1,2"))
    assert dvc(repo, "queue", "status").stdout.count("Queued") == 2
    dvc(repo, "queue", "remove", "--queued")


def test_a_bad_recipe_is_one_line_and_runs_nothing(workspace):
    repo = workspace
    (repo / "recipes" / "typo.yaml").write_text("train:\n  epoch: 3\n")
    before = exp_rows(repo)
    run = subprocess.run(
        ["omniglot-mtl-recipe", "recipes/typo.yaml", "-n", "typo"],
        cwd=repo,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr == (
        "error: recipes/typo.yaml: train.epoch: unknown key; did you mean epochs? (known: augment, "
        "batch_size, epochs, label_smoothing, lr, min_steps, muon_lr, optimizer, precision, schedule, "
        "threads, warmup_epochs, weight_decay)\n"
    )
    assert exp_rows(repo) == before
    printed = subprocess.run(
        ["omniglot-mtl-recipe", "--print", "recipes/convnet.yaml"],
        cwd=repo,
        env=ENV,
        capture_output=True,
        text=True,
    ).stdout
    assert (
        printed.startswith("-S model.backbone=convnet -S model.alphabet_hidden=1024 ")
        and printed.count("-S") == 19
    )


def test_sharing_advice_queues_one_run_per_value(workspace):
    """docs/distributed.md, "Sharing a machine": one thread per training run, runs queued."""
    repo = workspace
    dvc(repo, *documented("dvc exp run --queue -S train.threads=1 -S loss.char_weight=0.5,2")[1:])
    assert dvc(repo, "queue", "status").stdout.count("Queued") == 2
    dvc(repo, "queue", "remove", "--queued")


def test_docs_extending_examples_are_one_file_each_and_train_through_dvc(workspace):
    """docs/extending.md's two classes, pasted as a reader would into the one file each names (in
    this copy of the project, which the stages then import), trained with its two commands."""
    repo = workspace
    page = (ROOT / "docs" / "extending.md").read_text()
    backbone, method = re.findall(r"^```python\n(.*?)^```", page, flags=re.S | re.M)
    own_code = {"PYTHONPATH": str(repo / "src")}
    with (repo / "src" / "omniglot_mtl" / "weighting" / "methods.py").open("a") as f:
        f.write("\n\n" + method)
    out = dvc(repo, *documented("dvc exp run -S loss.method=max")[1:], env=own_code).stdout
    # A new method changes the weighting folder, which the multi-input model does not depend on.
    assert ran(out) == ["check_params", "train_multi_output", "evaluate"]
    weights = json.loads((repo / "metrics" / "train_multi_output" / "metrics.json").read_text())["weight"]
    assert sorted(weights.values()) == [0.0, 1.0]  # one task at a time: the worst
    with (repo / "src" / "omniglot_mtl" / "models" / "backbones.py").open("a") as f:
        f.write("\n\n" + backbone)
    out = dvc(repo, *documented("dvc exp run -S model.backbone=mlp")[1:], env=own_code).stdout
    assert ran(out) == ["check_params", "train_multi_input", "train_multi_output", "evaluate"]
    checkpoint = torch.load(repo / "models" / "multi_input.pt", weights_only=True)
    assert (
        checkpoint["config"]["backbone"] == "mlp" and "image_layer.net.1.weight" in checkpoint["state_dict"]
    )


def test_folder_source_is_a_real_dependency(project):
    src = project.parent / "my_omniglot" / "images_background"
    make_set(src, {"A": 2, "B": 2}, drawers=6)
    set_params(project, TINY | {"data": TINY["data"] | {"source": "folder", "folder": str(src)}})
    done = dvc(project, *documented("dvc repro index")[1:])
    out = done.stdout
    assert ran(out) == ["check_params", "download", "index"]
    assert [p.name for p in (project / "data" / "downloads").iterdir()] == ["NOTHING_DOWNLOADED"]
    assert "is empty" not in done.stderr + out  # DVC warns of an empty output
    assert f"index: 24 drawings from {src}: 2 alphabets, 4 characters; rows: train 16, val 4, test 4; " in out
    assert ran(dvc(project, "repro", "index").stdout) == []
    # Adding a drawing to the source reruns everything downstream of it.
    make_set(src, {"C": 1}, drawers=6, first_id=90)
    out = dvc(project, "repro", "index").stdout
    assert ran(out) == ["check_params", "index"]  # the check reads the folder's names too
    assert "3 alphabets, 5 characters; rows: train 20, val 5, test 5; images 16x16" in out
    # Litter in the source changes its hash, so index reruns, and names it; its outputs do not
    # change, so nothing after it would.
    (src / ".DS_Store").write_text("x")
    out = dvc(project, "repro", "index").stdout
    assert ran(out) == ["check_params", "index"] and f"not drawings: {src}/.DS_Store" in out
    # A symlink loop in the source hangs nothing: not DVC's hashing, not the check, not index.
    (src / "A" / "character01" / "loop").symlink_to("..", target_is_directory=True)
    out = subprocess.run(
        [sys.executable, "-m", "dvc", "repro", "index", "--force"],
        cwd=project,
        env=ENV | GIT_ID,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert f"{src}/A/character01/loop (a symlink to a folder, not followed)" in out, out
    # A name that is not UTF-8 (Linux allows any byte): DVC stops hashing data.folder with one
    # line naming no file and touches no output; the params check, run outside DVC as
    # docs/data.md says, names the entry.
    (src / "A" / "character01" / "loop").unlink()
    Path(os.fsdecode(os.fsencode(src / "B") + b"/stray\xff.txt")).write_text("x")
    index = {p: p.read_bytes() for p in (project / "data").rglob("*") if p.is_file()}
    done = dvc(project, "repro", "index", check=False)
    assert done.returncode != 0 and "surrogates not allowed" in done.stderr, done
    assert {p: p.read_bytes() for p in (project / "data").rglob("*") if p.is_file()} == index
    named = subprocess.run(
        documented("python stages/check_params.py"), cwd=project, env=ENV, capture_output=True, text=True
    )
    assert named.returncode == 1 and named.stderr == (
        f"error: 1 name(s) not valid UTF-8, which DVC cannot hash: {src}/B/stray\\xff.txt; rename them\n"
    )


def test_bad_param_fails_the_stage_in_one_line(project):
    set_params(
        project, TINY | {"data": TINY["data"] | {"split": {"val_drawers": [5, 6], "test_drawers": [6]}}}
    )
    result = dvc(project, "repro", "index", check=False)
    assert result.returncode != 0
    assert (
        "error: params.yaml: data.split: drawer(s) [6] listed in both val_drawers and test_drawers"
        in result.stderr + result.stdout
    )
    assert not (project / "data" / "index").exists()


def test_a_sweep_split_over_two_machines_comes_together_through_the_remotes(pipeline, tmp_path):
    """Two clones ("machines") each run one experiment and push it to a shared bare git repo and
    a DVC remote folder; a third clone pulls both, compares them, applies one, gets its model."""
    repo, _ = pipeline
    storage = tmp_path / "dvc-storage"
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(origin))
    setup = tmp_path / "setup"
    git(tmp_path, "clone", "-q", str(origin), str(setup))
    dvc(setup, *documented("dvc remote add -d storage <url>", {"<url>": str(storage)})[1:])
    git(setup, "commit", "-qam", "DVC remote")
    git(setup, "push", "-q", "origin", "HEAD")
    shutil.copytree(repo / ".dvc" / "cache", setup / ".dvc" / "cache")  # the machine that ran it
    dvc(setup, *documented("dvc push")[1:])  # the baseline's outputs

    weights = {"a": "0.5", "b": "2"}
    for name in weights:
        clone = documented_line(
            "git clone <repo> project && cd project", {"<repo>": str(origin), "project": name}
        )
        shell(tmp_path, clone)
        dvc(tmp_path / name, *documented("dvc pull")[1:])  # the baseline: only what changes reruns
    # Machine b pushes by itself (exp.auto_push), as a SLURM array task would with --temp.
    dvc(tmp_path / "b", *documented("dvc config --local exp.auto_push true")[1:])
    dvc(tmp_path / "b", *documented("dvc config --local exp.git_remote origin")[1:])
    commands = {
        "a": documented("dvc exp run -n char-weight-0.5 -S loss.char_weight=0.5"),
        "b": [
            "bash",
            "-c",
            "w=2; " + documented_line('dvc exp run --temp -n "char-weight-$w" -S "loss.char_weight=$w"'),
        ],
    }
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", *command] if command[0] == "dvc" else command,
            cwd=tmp_path / name,
            env=ENV | GIT_ID,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, command in commands.items()
    ]  # both machines at once
    for run in runs:
        output = run.communicate()[0]
        assert run.returncode == 0, output
        assert ran(output) == ["check_params", "train_multi_output", "evaluate"], output
    dvc(tmp_path / "a", *documented("dvc exp push origin char-weight-0.5")[1:])
    model_a = (tmp_path / "a" / "models" / "multi_output.pt").read_bytes()  # a ran in its workspace
    metrics_a = json.loads((tmp_path / "a" / "metrics" / "evaluate.json").read_text())

    c = tmp_path / "c"
    git(tmp_path, "clone", "-q", str(origin), str(c))
    dvc(c, *documented("dvc exp pull origin")[1:])  # every experiment of this commit, with its outputs
    rows = {r["name"]: r for r in exp_rows(c) if r["name"].startswith("char-weight-")}
    assert {n: r["params"]["loss"]["char_weight"] for n, r in rows.items()} == {
        "char-weight-0.5": 0.5,
        "char-weight-2": 2.0,
    }
    assert rows["char-weight-0.5"]["metrics"] == metrics_a
    assert rows["char-weight-2"]["metrics"]["test_images"] == 12
    shell(c, documented_line('dvc exp apply char-weight-0.5 && git commit -am "char_weight 0.5" && git push'))
    assert (c / "models" / "multi_output.pt").read_bytes() == model_a
    # Anyone else: the chosen experiment is now a commit, and its model comes with dvc pull.
    d = tmp_path / "d"
    git(tmp_path, "clone", "-q", str(origin), str(d))
    shell(d, documented_line("git pull && dvc pull"))
    assert (d / "models" / "multi_output.pt").read_bytes() == model_a
    assert json.loads((d / "metrics" / "evaluate.json").read_text()) == metrics_a
    assert "up to date" in dvc(d, "status").stdout

    # Another project takes the models as DVC artifacts: versions are git tags. The baseline's
    # model becomes v1.0.0, the chosen experiment's v1.1.0 (the latest).
    baseline = documented_line(
        'git tag -a multi_output@v1.0.0 -m "<message>" && git push origin multi_output@v1.0.0',
        {'"<message>"': "baseline"},
    )
    shell(c, f"git checkout -q HEAD~1 && {baseline} && git checkout -q -")
    newer = documented_line(
        'git tag -a multi_output@v1.0.0 -m "<message>" && git push origin multi_output@v1.0.0',
        {'"<message>"': "char_weight 0.5"},
    )
    shell(c, newer.replace("v1.0.0", "v1.1.0"))
    other = tmp_path / "other-project"
    other.mkdir()
    dvc(other, *documented("dvc artifacts get <repo> multi_output", {"<repo>": str(origin)})[1:])
    assert (other / "multi_output.pt").read_bytes() == model_a
    older = documented(
        "dvc artifacts get <repo> multi_output --rev v1.0.0 -o baseline.pt", {"<repo>": str(origin)}
    )
    dvc(other, *older[1:])
    assert (other / "baseline.pt").read_bytes() == (repo / "models" / "multi_output.pt").read_bytes()
    model, checkpoint = load_checkpoint(other / "baseline.pt")
    assert checkpoint["params"]["loss"]["char_weight"] == 1.0


def test_readme_exp_show_views_fit_a_terminal(pipeline):
    """Every `dvc exp show ... --keep ...` line of README, as written, at 120 columns: the kept
    columns in full, nothing cut to an ellipsis, no dependency hashes; a terminal table (not
    --md) within the 120 columns."""
    repo, _ = pipeline
    views = [
        documented(
            r"dvc exp show --drop '.*' --keep 'Experiment|loss.char_weight|"
            r"multi_output\.(alphabet|character)\.accuracy$'"
        ),
        documented(
            "dvc exp show --md --drop '.*' --keep 'Experiment|loss.char_weight|"
            "multi_input.character.accuracy|multi_output.alphabet.accuracy|multi_output.character.accuracy'"
        ),
        documented(
            "dvc exp show --md --drop '.*' --keep 'Experiment|loss.char_weight|loss.method|"
            "multi_output.alphabet.accuracy|multi_output.character.accuracy'"
        ),
    ]
    branch = git(repo, "branch", "--show-current").strip()
    for view in views:
        args = view[1:] + ["--no-pager"]
        shown = subprocess.run(
            [sys.executable, "-m", "dvc", *args],
            cwd=repo,
            env=ENV | GIT_ID | {"COLUMNS": "120"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        lines = shown.splitlines()
        if "--md" not in args:  # a Markdown table is for pasting, not for the terminal
            assert max(map(len, lines)) <= 120, view
        assert "…" not in shown and "src/omniglot_mtl" not in shown, view
        assert "multi_output.character.accuracy" in shown and "macro_accuracy" not in shown, view
        assert any(line.lstrip("| ").startswith(branch) for line in lines), view  # the baseline row
