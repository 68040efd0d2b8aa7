"""Seed-to-seed spread of every test metric: the noise a loss-weight effect must beat.

    python benchmarks/seed_sweep.py DATA_SOURCE [--seeds 0 1 2] [--precisions fp32 bf16] [-S KEY=VALUE ...]

Clones this repository's committed HEAD into a temporary folder, points it at DATA_SOURCE
(e.g. ../shared/omniglot/images_background), reproduces and commits the baseline (seed 0, the
first precision), then queues one experiment per other (seed, precision) with
`dvc exp run --queue -S seed=... -S train.precision=...` and runs the queue. Only the training
stages and evaluate rerun: `seed` is training's, the data has its own. `-S` params (e.g.
`-S model.backbone=convnet`) apply to the baseline and so to every run. Prints each run's test
accuracies and, per precision, the mean, sample standard deviation and range of each metric.
"""

import argparse
import json
import statistics
import sys
import time

from common import TASKS as METRICS  # benchmarks/common.py
from common import clone_with_source, machine, run


def rows(repo, env) -> list[dict]:
    found = []
    for commit in json.loads(run(repo, env, "dvc", "exp", "show", "--json"))[1:]:
        for entry in [commit] + [e for exp in commit.get("experiments") or [] for e in exp["revs"]]:
            data = entry.get("data") or {}
            if not data:
                continue
            params = data["params"]["params.yaml"]["data"]
            metrics = data["metrics"]["metrics/evaluate.json"]["data"]
            found.append(
                {
                    "seed": params["seed"],
                    "precision": params["train"]["precision"],
                    **{name: metrics[m][t]["accuracy"] for name, (m, t) in METRICS.items()},
                }
            )
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="e.g. ../shared/omniglot/images_background")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("-S", dest="set", action="append", default=[], help="a param for every run, KEY=VALUE")
    args = ap.parse_args()
    first = [f"seed={args.seeds[0]}", f"train.precision={args.precisions[0]}", *args.set]
    repo, env, source = clone_with_source(args.source, "seed_sweep_", first)
    run(repo, env, "git", "commit", "-qam", f"seed sweep baseline on {source}")
    start = time.perf_counter()
    run(repo, env, "dvc", "repro")
    run(repo, env, "git", "add", "-A")
    run(repo, env, "git", "commit", "-qm", "baseline results", "--allow-empty")  # none if unchanged
    for i, precision in enumerate(args.precisions):
        seeds = args.seeds[1:] if i == 0 else args.seeds
        if seeds:
            values = ",".join(map(str, seeds))
            run(
                repo,
                env,
                "dvc",
                "exp",
                "run",
                "--queue",
                "-S",
                f"seed={values}",
                "-S",
                f"train.precision={precision}",
            )
    run(repo, env, "dvc", "queue", "start")
    while True:
        status = run(repo, env, "dvc", "queue", "status")
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    if "Failed" in status:
        sys.exit(f"some experiments failed:\n{status}")
    wall = time.perf_counter() - start
    found = sorted(rows(repo, env), key=lambda r: (args.precisions.index(r["precision"]), r["seed"]))
    print(f"source {source}; extra params {args.set or 'none'}; {len(found)} runs in {wall / 60:.1f} min")
    print(machine())
    print("| precision | seed | " + " | ".join(METRICS) + " |")
    print("|---|---|" + "---|" * len(METRICS))
    for r in found:
        print(f"| {r['precision']} | {r['seed']} | " + " | ".join(f"{r[m]:.4f}" for m in METRICS) + " |")
    print()
    print("| precision | runs | " + " | ".join(f"{m}: mean ± sd (min-max)" for m in METRICS) + " |")
    print("|---|---|" + "---|" * len(METRICS))
    for precision in args.precisions:
        group = [r for r in found if r["precision"] == precision]
        cells = []
        for m in METRICS:
            values = [100 * r[m] for r in group]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.2f} ± {sd:.2f} ({min(values):.2f}-{max(values):.2f})")
        print(f"| {precision} | {len(group)} | " + " | ".join(cells) + " |")
    print(
        json.dumps(
            {"source": source, "params": args.set, "runs": found, "wall_s": round(wall), "machine": machine()}
        )
    )


if __name__ == "__main__":
    main()
