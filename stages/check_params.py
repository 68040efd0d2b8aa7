"""Stage check_params: params.yaml (+ the names in data.folder) -> data/params_ok

The root of the DAG: it validates every section of params.yaml, and what only the data can tell
(the sets data.folder holds, the drawers its drawings carry: names only), before any other stage
runs, so a bad or misspelled param fails here, in one line, before DVC deletes another stage's
outputs to rerun it. It imports torch, for the registries of backbones and weighting methods
(about 2 s). Its output is the same bytes whatever the params, so the stages after it rerun
only on the params they declare themselves.
"""

from pathlib import Path

from omniglot_mtl.core.atomic import atomic_file
from omniglot_mtl.core.errors import run_stage
from omniglot_mtl.core.params import load_params
from omniglot_mtl.data.folder_source import check_against_data
from omniglot_mtl.training.check import check_registered

OK = "params.yaml passed stages/check_params.py\n"


def main() -> None:
    params = load_params()
    check_registered(params)  # the backbone, the weighting methods, the device
    check_against_data(params.data)  # the sets and drawers the source holds, by name only
    with atomic_file(Path("data/params_ok")) as tmp:
        tmp.write_text(OK, encoding="utf-8")


if __name__ == "__main__":
    run_stage(main)
