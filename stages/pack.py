"""Stage pack: data/index + data/raw -> data/packed/{train,val,test}.npz (decoded uint8 images)"""

from pathlib import Path

from omniglot_mtl.errors import run_stage
from omniglot_mtl.packed import write_packed
from omniglot_mtl.params import load_params


def main() -> None:
    params = load_params()
    size = params.data.image_size
    counts = write_packed(Path("data/index"), Path("data/raw"), size, Path("data/packed"))
    print(f"pack: {counts} images at {size}x{size}")


if __name__ == "__main__":
    run_stage(main)
