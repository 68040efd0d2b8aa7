"""Stage download: data.source omniglot -> data/downloads/images_<set>.zip (empty otherwise)"""

from pathlib import Path

from omniglot_mtl.download import download
from omniglot_mtl.errors import run_stage
from omniglot_mtl.params import load_params


def main() -> None:
    params = load_params(registries=False)  # checked by check_params
    zips = download(params.data, Path("data/downloads"))
    if zips:
        print("download: " + ", ".join(f"{p.name} ({p.stat().st_size / 2**20:.1f} MiB)" for p in zips))
    else:
        print(f"download: nothing to download for data.source: {params.data.source}")


if __name__ == "__main__":
    run_stage(main)
