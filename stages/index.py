"""Stage index: data/raw -> data/index/{train,val,test}.csv, alphabets.json, characters.json"""

from pathlib import Path

from omniglot_mtl.errors import run_stage
from omniglot_mtl.index import write_index
from omniglot_mtl.params import load_params


def main() -> None:
    params = load_params()
    manifests, scan = write_index(Path("data/raw"), params.data.split, Path("data/index"))
    train = manifests["train"]
    sizes = ", ".join(f"{name} {len(frame)}" for name, frame in manifests.items())
    print(
        f"index: {train['alphabet'].nunique()} alphabets, {train['character'].nunique()} characters; "
        f"rows: {sizes}; {scan.skipped_summary()}"
    )


if __name__ == "__main__":
    run_stage(main)
