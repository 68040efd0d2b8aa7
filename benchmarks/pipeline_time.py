"""Whole-pipeline wall time: `dvc repro` from nothing, then a no-op `dvc repro`.

    python benchmarks/pipeline_time.py [DATA_SOURCE] [--set KEY=VALUE ...] [--per-stage] [--keep]

Clones this repository's committed HEAD into a temporary folder (so nothing is cached), sets
a data source (default: synthetic; a folder, e.g. ../shared/omniglot/images_background, is set as
`data.source: folder` with `data.folder` made absolute) and any params given with --set (e.g.
``--set train.processes=2``; values are YAML), and times both commands. With --per-stage, the
first `dvc repro` is one `dvc repro -s STAGE` per stage of dvc.yaml, in its order, each timed,
to show where the time goes (DVC's start-up and hashing included in each stage's figure).
Prints each stage's own summary line (the training stages report their images/s and peak
memory) and a JSON line.
"""

import argparse
import json
import subprocess
import sys
import time

import yaml
from fresh_clone import clone_with_source  # benchmarks/fresh_clone.py (the script's own folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", nargs="?", default="synthetic")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a param, e.g. seed=1")
    ap.add_argument("--per-stage", action="store_true", help="time each stage on its own")
    ap.add_argument("--keep", action="store_true", help="keep the temporary clone and print its path")
    args = ap.parse_args()
    repo, env, source = clone_with_source(args.source, "pipeline_time_", args.set)

    def repro(*stage: str) -> tuple[float, str]:
        start = time.perf_counter()
        cmd = [sys.executable, "-m", "dvc", "repro", *(("-s", *stage) if stage else ())]
        out = subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True, text=True)
        return time.perf_counter() - start, out.stdout

    if args.per_stage:
        full_s, log, stage_s = 0.0, "", {}
        for stage in yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]:  # in order
            seconds, out = repro(stage)
            full_s, log, stage_s[stage] = full_s + seconds, log + out, round(seconds, 1)
        print(" ".join(f"{name} {seconds} s," for name, seconds in stage_s.items()).rstrip(","))
    else:
        full_s, log = repro()
    noop_s, noop_log = repro()
    stage_lines = [line for line in log.splitlines() if line.split(" ")[0].rstrip(":") in STAGE_WORDS]
    print("\n".join(stage_lines))
    print(f"dvc repro from nothing: {full_s:.1f} s; no-op dvc repro: {noop_s:.2f} s")
    print(noop_log.strip().splitlines()[-1])
    times = {"repro_s": round(full_s, 1), "noop_s": round(noop_s, 2)}
    print(json.dumps({"source": source, "set": args.set} | times))
    if args.keep:
        print(f"kept {repo}")
    else:
        subprocess.run(["rm", "-rf", str(repo.parent)], check=True)


STAGE_WORDS = {"fetch", "index", "multi_input", "multi_output", "evaluate"}

if __name__ == "__main__":
    main()
