"""Stage index: data/raw -> data/index/{train,val,test}.csv, alphabets.json, characters.json,
missing_drawings.csv and data/packed/{train,val,test}.npz (every image decoded once, uint8)"""

from pathlib import Path

from omniglot_mtl.errors import run_stage
from omniglot_mtl.index import index_and_pack
from omniglot_mtl.params import load_params


def main() -> None:
    params = load_params(registries=False)  # checked by check_params
    size = params.data.image_size
    manifests, scan, missing = index_and_pack(
        Path("data/raw"), params.data.split, size, Path("data/index"), Path("data/packed")
    )
    train = manifests["train"]
    sizes = ", ".join(f"{name} {len(frame)}" for name, frame in manifests.items())
    print(
        f"index: {train['alphabet'].nunique()} alphabets, {train['character'].nunique()} characters; "
        f"rows: {sizes}; images {size}x{size}; {scan.skipped_summary()}"
    )
    if len(missing):
        shown = "; ".join(
            f"{r.character} {r.split} drawer(s) {r.missing_drawers}" for r in missing.head(5).itertuples()
        )
        more = f"; and {len(missing) - 5} more" if len(missing) > 5 else ""
        print(
            f"index: warning: {missing['character'].nunique()} character(s) lack drawings of a split "
            f"(all in data/index/missing_drawings.csv): {shown}{more}"
        )


if __name__ == "__main__":
    run_stage(main)
