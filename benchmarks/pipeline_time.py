"""The whole pipeline's wall time on a fresh clone: the default params, a recipe, or against the
notebook's training loops in the same run.

    python benchmarks/pipeline_time.py [DATA_SOURCE] [--set KEY=VALUE ...] [--recipe FILE]
                                       [--per-stage] [--vs-notebook] [--keep]

Clones this repository's committed HEAD into a temporary folder (so nothing is cached), sets a
data source (default: synthetic; a folder, e.g. ../shared/omniglot/images_background, becomes
``data.source: folder`` with ``data.folder`` made absolute) and any ``--set`` params (YAML
values), commits that, and times from nothing:

- by default ``dvc repro``; with ``--per-stage`` one ``dvc repro -s STAGE`` per stage of
  dvc.yaml, in order, each timed (DVC's start-up and hashing included in each figure);
- with ``--recipe FILE``, ``omniglot-mtl-recipe FILE -n recipe`` (recipes/convnet.yaml: the
  convnet recipe, as a user runs it); with ``--per-stage`` too, the recipe's values are written
  into params.yaml (``--set`` over them) and the stages timed one by one as above;

then a no-op ``dvc repro``. ``--vs-notebook`` first times the notebook's own two training loops
(``train_speed.py --leg notebook-loops``) for the same epochs on the same training split, and
prints the ratio. Prints the stages' summary lines (training images/s, peak memory), the test
accuracies, the machine, and a JSON line.
"""

import argparse
import json
import re
import subprocess
import sys
import time

import yaml
from common import ROOT, clone_with_source, machine, run, set_params, test_accuracies  # benchmarks/common.py

from omniglot_mtl.experiments.recipe import merged, read_recipe

STAGE_LINE = re.compile(r"(index|multi_input|multi_output|evaluate \w+):")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", nargs="?", default="synthetic")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a param, e.g. seed=1")
    ap.add_argument("--recipe", help="run this recipe as the experiment, e.g. recipes/convnet.yaml")
    ap.add_argument("--per-stage", action="store_true", help="time each stage on its own")
    ap.add_argument("--vs-notebook", action="store_true", help="time the notebook's loops first")
    ap.add_argument("--keep", action="store_true", help="keep the temporary clone and print its path")
    args = ap.parse_args()
    repo, env, source = clone_with_source(args.source, "pipeline_time_", args.set)
    if args.recipe and args.per_stage:  # the recipe's values in params.yaml, --set over them
        params = merged(yaml.safe_load((repo / "params.yaml").read_text()), read_recipe(repo / args.recipe))
        (repo / "params.yaml").write_text(yaml.safe_dump(set_params(params, args.set), sort_keys=False))
    run(repo, env, "git", "commit", "-qam", f"baseline: {source} {' '.join(args.set)}")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    result = {"source": source, "set": args.set, "recipe": args.recipe, "machine": machine()}

    if args.vs_notebook:
        if args.recipe or source in ("synthetic", "omniglot"):
            sys.exit("--vs-notebook: needs a folder source and the default networks (no --recipe)")
        epochs = params["train"]["epochs"]
        command = [sys.executable, str(ROOT / "benchmarks" / "train_speed.py"), source]
        start = time.perf_counter()
        subprocess.run([*command, "--epochs", str(epochs), "--leg", "notebook-loops"], check=True)
        result["notebook_s"] = round(time.perf_counter() - start, 1)
        print(f"the notebook's loops, both models, {epochs} epochs: {result['notebook_s']:.0f} s", flush=True)

    def timed(*command: str) -> tuple[float, str]:
        start = time.perf_counter()
        out = run(repo, env, *command)
        return time.perf_counter() - start, out

    if args.per_stage:
        seconds, log = 0.0, ""
        for stage in yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]:  # in order
            stage_s, out = timed("dvc", "repro", "-s", stage)
            seconds, log = seconds + stage_s, log + out
            result.setdefault("stages_s", {})[stage] = round(stage_s, 1)
        print(", ".join(f"{name} {s} s" for name, s in result["stages_s"].items()))
    elif args.recipe:
        seconds, log = timed("omniglot-mtl-recipe", args.recipe, "-n", "recipe")
    else:
        seconds, log = timed("dvc", "repro")
    noop_s, _ = timed("dvc", "repro")
    result |= {"pipeline_s": round(seconds, 1), "noop_s": round(noop_s, 2)}
    result["peak_mb"] = max(map(int, re.findall(r"peak memory (\d+) MB", log)), default=None)
    result["test_accuracy"] = test_accuracies(repo)

    print("\n".join(line for line in log.splitlines() if STAGE_LINE.match(line)))
    what = f"omniglot-mtl-recipe {args.recipe}" if args.recipe and not args.per_stage else "dvc repro"
    print(f"{what} from nothing: {seconds:.1f} s ({seconds / 60:.1f} min); no-op dvc repro: {noop_s:.2f} s")
    if "notebook_s" in result:
        result["ratio"] = round(seconds / result["notebook_s"], 3)
        print(f"pipeline / notebook loops: {result['ratio']:.2f}")
    print("test accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in result["test_accuracy"].items()))
    print(result["machine"])
    print(json.dumps(result))
    if args.keep:
        print(f"kept {repo}")
    else:
        subprocess.run(["rm", "-rf", str(repo.parent)], check=True)


if __name__ == "__main__":
    main()
