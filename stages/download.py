"""Stage download: data.source omniglot -> data/downloads/images_<set>.zip (otherwise a note saying
there was nothing to download)"""

from pathlib import Path

from omniglot_mtl.core.errors import run_stage
from omniglot_mtl.core.params import load_params
from omniglot_mtl.data.download import download


def main() -> None:
    params = load_params()  # and the rest by check_params
    zips = download(params.data, Path("data/downloads"))
    if zips:
        print("download: " + ", ".join(f"{p.name} ({p.stat().st_size / 2**20:.1f} MiB)" for p in zips))
    else:
        print(f"download: nothing to download for data.source: {params.data.source}")


if __name__ == "__main__":
    run_stage(main)
