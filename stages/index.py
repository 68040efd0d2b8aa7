"""Stage index: the source (data.source: synthetic | omniglot | folder) -> data/index/{train,val,
test}.csv, alphabets.json, characters.json, missing_drawings.csv and data/packed/{train,val,test}.npz
(every image decoded once, uint8)"""

import tempfile
from pathlib import Path

from omniglot_mtl.core.errors import run_stage
from omniglot_mtl.core.params import load_params
from omniglot_mtl.data.index import index_and_pack
from omniglot_mtl.data.sources import source_sets


def main() -> None:
    params = load_params()  # and the rest by check_params
    data, size = params.data, params.data.image_size
    with tempfile.TemporaryDirectory(prefix="omniglot-source-") as scratch:
        sets = source_sets(data, Path(scratch))
        manifests, scan, missing = index_and_pack(
            sets, data.split, size, Path("data/index"), Path("data/packed")
        )
    train = manifests["train"]
    source = data.folder if data.source == "folder" else data.source
    sizes = ", ".join(f"{name} {len(frame)}" for name, frame in manifests.items())
    print(
        f"index: {len(scan.drawings)} drawings from {source}: {train['alphabet'].nunique()} alphabets, "
        f"{train['character'].nunique()} characters; rows: {sizes}; images {size}x{size}; "
        f"{scan.skipped_summary()}"
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
