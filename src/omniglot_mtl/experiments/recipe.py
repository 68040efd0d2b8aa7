"""A recipe is a YAML file of params.yaml values, run as one DVC experiment.

    omniglot-mtl-recipe recipes/convnet.yaml -n convnet [more dvc exp run arguments]

prints and runs ``dvc exp run -S model.backbone=convnet -S data.image_size=32 ... -n convnet``,
one ``-S`` per value of the recipe and then the arguments given (so ``-S train.epochs=5`` or
``--queue`` after the recipe win over it). DVC writes every value into the experiment's
params.yaml: ``dvc exp show``, ``dvc params diff`` and the checkpoints show them, and
``params.yaml`` stays the one file a run reads. The recipe is checked first, merged into
``params.yaml``, by the same rules as the params check: a misspelt key or a bad value is one
line naming the recipe, and DVC is not started. ``--print`` prints the flags only.
"""

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from omniglot_mtl.core.errors import InputError
from omniglot_mtl.core.params import as_dict, from_dict, load_params, read_yaml
from omniglot_mtl.training.check import check_registered


def read_recipe(path: str | Path) -> dict:
    recipe = read_yaml(Path(path), "recipe not found")
    if not isinstance(recipe, dict) or not recipe:
        raise InputError(f"{path}: a recipe is a mapping of params.yaml keys, e.g. train: {{epochs: 40}}")
    return recipe


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """``{"train": {"lr": 0.003}}`` -> ``{"train.lr": 0.003}`` (lists are values, not levels)."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def merged(params: dict, recipe: dict) -> dict:
    out = dict(params)
    for key, value in recipe.items():
        out[key] = merged(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def set_flags(recipe_path: str | Path, params_path: str | Path = "params.yaml") -> list[str]:
    """The recipe as ``-S key=value`` arguments, after checking it against ``params_path``."""
    recipe = read_recipe(recipe_path)
    base = load_params(params_path)  # the params file's own errors first, as they are
    check_registered(base)
    base = as_dict(base)
    try:
        check_registered(from_dict(merged(base, recipe)))
    except InputError as err:  # name the recipe: the params file itself passed its own check
        raise InputError(f"{recipe_path}: {str(err).removeprefix('params.yaml: ')}") from None
    flags = []
    for key, value in flatten(recipe).items():
        # YAML's own spelling (0.05, true, [15, 16]): DVC parses -S values as YAML, and its run
        # cache compares the values, so 1 and 1.0 differ (docs/experiments.md).
        text = yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()
        flags += ["-S", f"{key}={text}"]  # one argument each: no shell splits them
    return flags


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="omniglot-mtl-recipe", description=__doc__.split("\n\n")[0])
    ap.add_argument("--print", action="store_true", help="print the -S flags; run nothing")
    ap.add_argument("recipe", help="a YAML file of params.yaml values, e.g. recipes/convnet.yaml")
    ap.add_argument(
        "dvc_args", nargs=argparse.REMAINDER, help="more `dvc exp run` arguments, e.g. -n convnet"
    )
    args = ap.parse_args(argv)
    try:
        flags = set_flags(args.recipe)
    except InputError as err:
        sys.exit(f"error: {err}")
    if args.print:
        print(shlex.join(flags))
        return
    command = ["dvc", "exp", "run", *flags, *args.dvc_args]
    print(f"$ {shlex.join(command)}", flush=True)
    sys.exit(subprocess.run(command).returncode)


if __name__ == "__main__":
    main()
