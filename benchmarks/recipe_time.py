"""The convnet recipe (recipes/convnet.yaml), timed as a user runs it on a fresh clone.

    python benchmarks/recipe_time.py DATA_SOURCE [--keep]

Clones this repository's committed HEAD into a temporary folder (nothing cached), points
`data.folder` at DATA_SOURCE (e.g. ../shared/omniglot/images_background, made absolute) and
commits that as the baseline, then runs `omniglot-mtl-recipe recipes/convnet.yaml -n convnet`
(the `dvc exp run -S ...` line it prints) from nothing: fetch, index, both training stages and
evaluate.
Prints each stage's summary line (training images/s and peak memory), the wall time, the test
accuracies of `metrics/evaluate.json`, and a JSON line.
"""

import argparse
import json
import re
import subprocess
import sys
import time

import torch
from fresh_clone import clone_with_source  # benchmarks/fresh_clone.py (the script's own folder)

from omniglot_mtl.environment import cpu_model, usable_cpus


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="the baseline's data folder, e.g. ../shared/omniglot/images_background")
    ap.add_argument("--keep", action="store_true", help="keep the temporary clone and print its path")
    args = ap.parse_args()
    command = "omniglot-mtl-recipe recipes/convnet.yaml -n convnet"
    repo, env, source = clone_with_source(args.source, "recipe_time_")
    subprocess.run(["git", "commit", "-qam", f"data source: {source}"], cwd=repo, check=True, env=env)

    start = time.perf_counter()
    out = subprocess.run(command.split(), cwd=repo, env=env, capture_output=True, text=True)
    wall_s = time.perf_counter() - start
    if out.returncode:
        sys.exit(f"{command}\nfailed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    stage_lines = [
        line for line in out.stdout.splitlines() if re.match(r"(fetch|index|multi_\w+|evaluate):", line)
    ]
    metrics = json.loads((repo / "metrics" / "evaluate.json").read_text())
    peaks = [int(m) for m in re.findall(r"peak memory (\d+) MB", out.stdout)]
    accuracy = {
        "multi_input.character": metrics["multi_input"]["character"]["accuracy"],
        "multi_output.alphabet": metrics["multi_output"]["alphabet"]["accuracy"],
        "multi_output.character": metrics["multi_output"]["character"]["accuracy"],
    }
    print(command)
    print("\n".join(stage_lines))
    print(f"wall time {wall_s:.0f} s ({wall_s / 60:.1f} min); training stages peak at {max(peaks)} MB")
    print("test accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in accuracy.items()))
    machine = f"{cpu_model()}, {usable_cpus()} CPUs, torch {torch.__version__}"
    print(
        json.dumps(
            {"source": source, "wall_s": round(wall_s), "peak_mb": max(peaks), "machine": machine}
            | {"metrics": metrics}
        )
    )
    if args.keep:
        print(f"kept {repo}")
    else:
        subprocess.run(["rm", "-rf", str(repo.parent)], check=True)


if __name__ == "__main__":
    main()
