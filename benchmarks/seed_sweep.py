"""A setting swept over seeds, compared with ``omniglot-mtl-compare``: is its effect real?

    python benchmarks/seed_sweep.py DATA_SOURCE [--seeds 0 1 2] [--vary KEY=V1,V2 ...]
                                    [--recipe FILE] [-S KEY=VALUE ...]

Clones this repository's committed HEAD into a temporary folder, points it at DATA_SOURCE
(e.g. ../shared/omniglot/images_background), applies the recipe and ``-S`` params (to every
run), reproduces and commits the baseline (the first seed, the first value of each ``--vary``),
then queues the grid with one ``dvc exp run --queue -S seed=0,1,2 -S KEY=V1,V2 ...`` (the
baseline's own combination comes from DVC's run cache) and runs the queue. Prints
``omniglot-mtl-compare --md`` over every run, the wall time, the machine, and the comparison as
a JSON line. With no ``--vary``, one group, the seed-to-seed spread alone: its runs' accuracies
(``dvc exp show``) in place of the comparison.
"""

import argparse
import json
import subprocess
import sys
import time

import yaml
from common import clone_with_source, machine, run, set_params  # benchmarks/common.py

from omniglot_mtl.experiments.recipe import merged, read_recipe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="e.g. ../shared/omniglot/images_background")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2", help="a grid axis")
    ap.add_argument("--recipe", help="params for every run, e.g. recipes/convnet.yaml")
    ap.add_argument("-S", dest="set", action="append", default=[], help="a param for every run, KEY=VALUE")
    args = ap.parse_args()
    repo, env, source = clone_with_source(args.source, "seed_sweep_")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params = merged(params, read_recipe(args.recipe)) if args.recipe else params
    first = [axis.split(",")[0] for axis in args.vary]  # the baseline: each axis's first value
    set_params(params, [*args.set, f"seed={args.seeds[0]}", *first])
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(repo, env, "git", "commit", "-qam", f"seed sweep baseline on {source}")
    start = time.perf_counter()
    run(repo, env, "dvc", "repro")
    run(repo, env, "git", "add", "-A")
    run(repo, env, "git", "commit", "-qm", "baseline results", "--allow-empty")  # none if unchanged
    grid = ["-S", f"seed={','.join(map(str, args.seeds))}", *(x for axis in args.vary for x in ("-S", axis))]
    run(repo, env, "dvc", "exp", "run", "--queue", *grid)
    # Into a file, not a pipe: the worker holds a captured pipe open until it exits, and one whose
    # monitor thread died never exits (treeverse/dvc#10428; seen here under load). The loop waits.
    log = repo.parent / "queue_start.log"  # a file: nothing waits for its writers to close it
    with log.open("w") as out:
        started = subprocess.run(["dvc", "queue", "start"], cwd=repo, env=env, stdout=out, stderr=out)
    if started.returncode:
        sys.exit(f"dvc queue start failed:\n{log.read_text()}")
    while True:
        status = run(repo, env, "dvc", "queue", "status")
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    if "Failed" in status:
        sys.exit(f"some experiments failed:\n{status}")
    wall = time.perf_counter() - start
    print(
        f"source {source}; recipe {args.recipe or 'none'}; params {args.set or 'none'}; grid {' '.join(grid)}"
    )
    if args.vary:
        print(run(repo, env, "omniglot-mtl-compare", "--md"))
        compared = json.loads(run(repo, env, "omniglot-mtl-compare", "--json"))
    else:  # one group: compare has nothing to compare it with; its runs' accuracies instead
        keep = r"Experiment|^seed$|multi_(input|output)\.[a-z_]+\.accuracy$"
        print(run(repo, env, "dvc", "exp", "show", "--md", "--drop", ".*", "--keep", keep))
        compared = None
    print(f"{wall / 60:.1f} min; {machine()}")
    print(
        json.dumps(
            {
                "source": source,
                "recipe": args.recipe,
                "params": args.set,
                "grid": grid,
                "wall_s": round(wall),
                "machine": machine(),
                "compare": compared,
            }
        )
    )


if __name__ == "__main__":
    main()
