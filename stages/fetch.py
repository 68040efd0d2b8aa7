"""Stage fetch: data.source -> data/raw/<set>/<Alphabet>/<character>/<id>_<drawer>.png"""

from pathlib import Path

from omniglot_mtl.errors import run_stage
from omniglot_mtl.fetch import fetch
from omniglot_mtl.params import load_params


def main() -> None:
    params = load_params(registries=False)  # checked by check_params
    scan = fetch(params.data, Path("data/raw"))
    source = params.data.folder if params.data.source == "folder" else params.data.source
    print(f"fetch: {len(scan.drawings)} drawings from {source}; {scan.skipped_summary()}")


if __name__ == "__main__":
    run_stage(main)
