#!/usr/bin/env bash
# The GPU figures of docs/performance.md, on a machine with an NVIDIA GPU:
#
#   bash benchmarks/gpu_check.sh DATA_DIR
#
# DATA_DIR is one set in Omniglot layout (e.g. images_background). Prints, and appends to
# benchmarks/results/gpu.txt: the CUDA tests; in a scratch copy of this project, the pipeline
# from nothing with device: auto and a no-op rerun; two forced reruns of the training stages
# (the checkpoints' md5), and two more with cuda.deterministic: false; the 40-epoch convnet recipe
# (train.precision: auto must choose bf16); then our loop against the notebook's at batch 32.
set -u
data=$(realpath "$1")
repo=$(pwd)
results=$repo/benchmarks/results/gpu.txt
mkdir -p "$(dirname "$results")"
say() { echo "$*" | tee -a "$results"; }
timed() {  # timed LABEL COMMAND...: runs it, says its seconds, exit status and training speed
    local start=$SECONDS log
    log=$(mktemp)
    "${@:2}" >"$log" 2>&1
    say "$1: exit $?, $((SECONDS - start)) s $(grep -h 'training images/s' "$log" | tr '\n' ' ')"
}

nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$results"
python -c "import torch; print('torch', torch.__version__, 'cudnn', torch.backends.cudnn.version())" | tee -a "$results"
timed "tests/test_cuda.py" python -m pytest -q -p no:cacheprovider tests/test_cuda.py

work=$(mktemp -d)
cp -r dvc.yaml params.yaml pyproject.toml .dvcignore src stages recipes "$work"/
mkdir -p "$work/.dvc" && cp -r .dvc/config .dvc/plots "$work/.dvc/"
cd "$work" || exit 1
git init -q && git add -A && git -c user.name=gpu -c user.email=gpu@localhost commit -qm gpu_check
set_params() {  # set_params KEY=VALUE...: written into params.yaml, as dvc exp run -S does
    python - "$@" <<'EOF'
import sys
import yaml
params = yaml.safe_load(open("params.yaml"))
for pair in sys.argv[1:]:
    key, value = pair.split("=", 1)
    *path, last = key.split(".")
    section = params
    for name in path:
        section = section[name]
    section[last] = yaml.safe_load(value)
yaml.safe_dump(params, open("params.yaml", "w"), sort_keys=False)
EOF
}
set_params data.source=folder "data.folder=$data" device=auto
timed "dvc repro from nothing" dvc repro
timed "dvc repro, nothing changed" dvc repro
cat metrics/evaluate.json | tee -a "$results"
for deterministic in true false; do
    set_params "cuda.deterministic=$deterministic"
    for run in 1 2; do
        timed "cuda.deterministic: $deterministic, forced rerun $run" dvc repro -f -s train_multi_input train_multi_output
        md5sum models/*.pt | tee -a "$results"
    done
done
set_params cuda.deterministic=true
python - <<'EOF'  # the recipe's values, as omniglot-mtl-recipe would set them
import yaml
params, recipe = yaml.safe_load(open("params.yaml")), yaml.safe_load(open("recipes/convnet-long.yaml"))
def merge(into, values):
    for key, value in values.items():
        if isinstance(value, dict):
            merge(into[key], value)
        else:
            into[key] = value
merge(params, recipe)
yaml.safe_dump(params, open("params.yaml", "w"), sort_keys=False)
EOF
timed "the 40-epoch convnet recipe" dvc repro
cat metrics/evaluate.json | tee -a "$results"
python -c "import torch; print('recipe precision:', torch.load('models/multi_output.pt')['precision'])" | tee -a "$results"

cd "$repo" || exit 1
python benchmarks/train_speed.py "$data" --device cuda --epochs 2 --precisions fp32 bf16 --eager | tee -a "$results"
