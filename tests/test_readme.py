"""Every command README shows is run somewhere, and this file says where.

README's commands are read from its ```bash blocks and from backticked commands in its prose.
Each must have an entry below: the test that runs it (with a string that test's source must
contain, so that the entry cannot drift from what the test does), ``.ci/run``, or the reason
it is not run by the test suite (real data, a cluster, a network index). A command added to
README without an entry fails here; so does an entry whose command README no longer shows.
"""

import ast
import re

from conftest import ROOT

PROGRAMS = (
    "dvc",
    "python",
    "python3",
    "pip",
    "git",
    "make",
    "omniglot-mtl-predict",
    "torchrun",
    "srun",
    "ruff",
)

PIPE = "tests/test_pipeline.py::"
EVAL = "tests/test_evaluation.py::"
DIST = "tests/test_distributed.py::"
SWEEP = PIPE + "test_a_sweep_split_over_two_machines_comes_together_through_the_remotes"
TWO_NODES = DIST + "test_two_nodes_as_readme_starts_them_rank_0_writes"
REAL_DATA = "by hand: needs a real Omniglot set (benchmarks/, on ../shared here); figures in README"

# command as README writes it -> (where it runs, what that test's source contains)
RUN_BY = {
    # Quickstart and install: .ci/run does exactly this on a fresh clone.
    "python3 -m venv .venv && . .venv/bin/activate && "
    "pip install -c constraints.txt -e '.[dev]' && dvc repro": (
        ".ci/run",
        "pip install --quiet -c constraints.txt -e '.[dev]'",
    ),
    "python3 -m venv .venv && . .venv/bin/activate": (".ci/run", "python3 -m venv .venv"),
    "pip install torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cpu": (
        "not run: download.pytorch.org is not reachable from the test machines",
        None,
    ),
    "pip install -c constraints.txt -e '.[dev]' && dvc repro": (".ci/run", "-c constraints.txt -e '.[dev]'"),
    "ruff check . && pytest": (".ci/run", "ruff check . && pytest"),
    "make install": ("Makefile", "-c constraints.txt -e '.[dev]'"),
    "make repro": ("Makefile", "dvc repro"),
    "make test": ("Makefile", "ruff check . && .venv/bin/pytest"),
    "make lint": ("Makefile", "ruff format --check"),
    "make bench DATA=path/to/images_background": (REAL_DATA, None),
    "dvc repro": (PIPE + "pipeline", 'dvc(repo, "repro")'),
    "dvc status": (PIPE + "test_bad_params_fail_before_any_output_is_deleted", '"status"'),
    "dvc repro index": (PIPE + "test_folder_source_is_a_real_dependency", '"repro", "index"'),
    "dvc repro evaluate": (PIPE + "pipeline", 'dvc(repo, "repro")'),
    "python stages/fetch.py": (
        "tests/test_sources.py::test_failed_fetch_keeps_the_previous_output_whole",
        "fetch",
    ),
    'git commit -am "background set"': (PIPE + "pipeline", '"commit"'),
    # The convnet recipe and its variants: real data and 9-15 minutes each.
    "dvc exp run -n convnet -S model.backbone=convnet -S data.image_size=32 -S train.epochs=40 "
    "-S train.batch_size=128 -S train.lr=0.003 -S train.precision=bf16 -S train.optimizer=adamw "
    "-S train.weight_decay=0.05 -S train.schedule=cosine -S train.warmup_epochs=1 "
    "-S train.label_smoothing=0.1 -S train.augment.rotation=8 -S train.augment.shear=6 "
    "-S train.augment.scale=0.08 -S train.augment.shift=0.06": (
        "by hand: benchmarks/recipe_time.py runs this line as README writes it, on a real set",
        None,
    ),
    "dvc exp run -n convnet-fp32 -S train.precision=fp32": (REAL_DATA, None),
    "dvc exp run -n famo -S loss.method=famo": (REAL_DATA, None),
    'dvc exp apply convnet && git add -A && git commit -m "convnet recipe"': (REAL_DATA, None),
    "dvc exp run --queue -S loss.char_weight=0.25,1,4 -S loss.method=static,uncertainty,dwa": (
        REAL_DATA,
        None,
    ),
    "dvc exp show --md --drop '.*' --keep 'Experiment|loss.char_weight|loss.method|"
    "multi_output.alphabet.accuracy|multi_output.character.accuracy'": (
        PIPE + "test_readme_exp_show_views_fit_a_terminal",
        "README.md",
    ),
    "python benchmarks/pipeline_time.py ../shared/omniglot/images_background": (REAL_DATA, None),
    "python benchmarks/recipe_time.py ../shared/omniglot/images_background": (REAL_DATA, None),
    "python benchmarks/portable_cpu.py ../shared/omniglot/images_background": (REAL_DATA, None),
    "python benchmarks/seed_sweep.py ../shared/omniglot/images_background": (REAL_DATA, None),
    "python benchmarks/shared_cpu.py ../shared/omniglot/images_background --repeat 3": (REAL_DATA, None),
    "python benchmarks/error_analysis.py": (REAL_DATA, None),
    "python benchmarks/multi_output_trials.py ../shared/omniglot/images_background": (REAL_DATA, None),
    "python benchmarks/pipeline_time.py ../shared/omniglot/images_background --per-stage": (REAL_DATA, None),
    "python benchmarks/pipeline_time.py ../shared/omniglot/images_background --set train.processes=2": (
        REAL_DATA,
        None,
    ),
    "python benchmarks/pipeline_vs_notebook.py ../shared/omniglot/images_background": (REAL_DATA, None),
    "python benchmarks/train_speed.py ../shared/omniglot/images_background --epochs 10 --seed S": (
        REAL_DATA,
        None,
    ),
    "python benchmarks/train_speed.py DATA_DIR --device cuda": (
        "not run: needs a CUDA GPU and a real set",
        None,
    ),
    "dvc repro -s STAGE": (
        "by hand: what benchmarks/pipeline_time.py --per-stage runs, stage by stage",
        None,
    ),
    # Using a model.
    "omniglot-mtl-predict models/multi_output.pt some_drawing.png --top 3": (
        EVAL + "test_predict_cli_ranks_like_the_model",
        "top=3",
    ),
    "omniglot-mtl-predict models/multi_input.pt some_drawing.png --alphabet Latin": (
        EVAL + "test_predict_cli_ranks_like_the_model",
        '"--alphabet"',
    ),
    # Experiments.
    "dvc exp run": (PIPE + "test_experiment_workflow", '"exp", "run"'),
    "dvc exp run -S": (PIPE + "test_experiment_workflow", '"exp", "run", "-S"'),
    "dvc exp run -n char-weight-2 -S loss.char_weight=2": (
        PIPE + "test_experiment_workflow",
        '"-S", "loss.char_weight=2"',
    ),
    "dvc exp run -S loss.char_weight=2": (PIPE + "test_experiment_workflow", '"-S", "loss.char_weight=2"'),
    "dvc exp show": (PIPE + "test_experiment_workflow", "exp_rows"),
    "dvc exp show --keep": (PIPE + "test_readme_exp_show_views_fit_a_terminal", "--keep"),
    "dvc exp show --drop '.*' --keep 'Experiment|loss.char_weight|multi_output\\.\\w+\\.accuracy$'": (
        PIPE + "test_readme_exp_show_views_fit_a_terminal",
        "README.md",
    ),
    "dvc exp show --md --drop '.*' --keep 'Experiment|loss.char_weight|multi_input.character.accuracy|"
    "multi_output.alphabet.accuracy|multi_output.character.accuracy'": (
        PIPE + "test_readme_exp_show_views_fit_a_terminal",
        "README.md",
    ),
    "dvc metrics diff": (PIPE + "test_experiment_workflow", '"metrics", "diff"'),
    "dvc metrics diff main char-weight-2": (PIPE + "test_experiment_workflow", '"metrics", "diff"'),
    "dvc plots show": (PIPE + "test_the_plots_page_needs_no_network", '"plots", "show"'),
    "dvc plots diff": (PIPE + "test_the_plots_page_needs_no_network", '"plots", "diff"'),
    "dvc plots diff main char-weight-2": (PIPE + "test_the_plots_page_needs_no_network", '"plots", "diff"'),
    "dvc exp run --queue": (PIPE + "test_queued_sweep", '"exp", "run", "--queue"'),
    "dvc exp run --queue -S ...": (PIPE + "test_queued_sweep", '"exp", "run", "--queue", "-S"'),
    "dvc exp run --queue -S loss.char_weight=0.5,1,2": (
        PIPE + "test_queued_sweep",
        '"loss.char_weight=0.5,3"',
    ),
    "dvc exp run --queue -S seed=1,2": (
        "by hand: benchmarks/seed_sweep.py queues this sweep on a real set; seeds: "
        + PIPE
        + "test_training_seed_reruns_training_only",
        None,
    ),
    "dvc queue start": (PIPE + "test_queued_sweep", '"queue", "start"'),
    "dvc queue status": (PIPE + "test_queued_sweep", '"queue", "status"'),
    "dvc queue logs <name>": (PIPE + "test_queued_sweep", '"queue", "logs"'),
    "dvc queue remove --failed": (PIPE + "test_queued_sweep", '"queue", "remove", "--failed"'),
    "dvc queue start -j 2": (
        "not run: DVC's worker race (treeverse/dvc#10673) fails it now and then; the suite uses one worker",
        None,
    ),
    "dvc exp run --queue -S train.threads=1 -S loss.char_weight=0.5,2": (
        DIST + "test_threads_auto_is_this_machines_cpus_shared_by_its_processes",
        "threads",
    ),
    # Recovering from a failed experiment.
    "dvc exp run -S train.epochs=0": (
        PIPE + "test_bad_params_fail_before_any_output_is_deleted",
        '"exp", "run", "-S", "train.epochs=0"',
    ),
    "git status": (
        PIPE + "test_repro_runs_every_stage_and_writes_declared_outputs",
        '"status", "--porcelain"',
    ),
    "git checkout -- params.yaml": (PIPE + "reset_to_head", "git's index can list an edited params.yaml"),
    "git show HEAD:params.yaml > params.yaml": (PIPE + "reset_to_head", '"show", f"HEAD:{name}"'),
    "dvc checkout": (PIPE + "reset_to_head", '"checkout"'),
    "git add -A && git commit": (SWEEP, '"commit"'),
    "git commit": (SWEEP, '"commit"'),
    # More processes, more machines.
    "dvc exp run -S train.processes=2": (
        DIST + "test_train_processes_2_starts_the_launcher_and_writes_once",
        "processes",
    ),
    "python -m torch.distributed.run": (TWO_NODES, "torch.distributed.run"),
    "torchrun --nnodes 2 --nproc-per-node 4 --node-rank 0 --master-addr node0.example.org "
    "--master-port 29500 stages/train.py multi_output": (TWO_NODES, '"--node-rank"'),
    "torchrun --nnodes 2 --nproc-per-node 4 --node-rank 1 --master-addr node0.example.org "
    "--master-port 29500 stages/train.py multi_output": (TWO_NODES, '"--node-rank"'),
    'srun torchrun --nnodes "$SLURM_NNODES" --nproc-per-node 4 --node-rank "$SLURM_NODEID" --master-addr '
    '"$head" --master-port 29500 stages/train.py multi_output': ("not run: needs a SLURM cluster", None),
    "dvc commit train_multi_output": (
        "not run: records what an external torchrun wrote; dvc commit is DVC's own",
        None,
    ),
    "dvc exp save -n <name>": ("not run: as `dvc commit`, after an external torchrun", None),
    "git clone <repo> project && cd project": (
        SWEEP,
        '"clone"',
    ),
    "git pull && dvc pull": (SWEEP, '"pull"'),
    "dvc pull": (SWEEP, '"pull"'),
    "dvc push": (SWEEP, '"push"'),
    "dvc remote add -d storage <url>": (
        SWEEP,
        '"remote", "add", "-d", "storage"',
    ),
    "dvc exp run -n char-weight-0.5 -S loss.char_weight=0.5": (
        SWEEP,
        "char-weight-",
    ),
    "dvc exp push": (SWEEP, '"exp", "push"'),
    "dvc exp push origin char-weight-0.5": (
        SWEEP,
        '"exp", "push", "origin", "char-weight-0.5"',
    ),
    "dvc exp pull origin": (
        SWEEP,
        '"exp", "pull", "origin"',
    ),
    'dvc exp apply char-weight-0.5 && git commit -am "char_weight 0.5" && git push': (
        SWEEP,
        '"exp", "apply", "char-weight-0.5"',
    ),
    "dvc config exp.auto_push true": (
        SWEEP,
        '"exp.auto_push", "true"',
    ),
    "dvc config exp.git_remote origin": (
        SWEEP,
        '"exp.git_remote", "origin"',
    ),
    'dvc exp run --temp -n "char-weight-$w" -S "loss.char_weight=$w"': (
        SWEEP,
        '"--temp"',
    ),
}


def readme_commands(text: str) -> list[str]:
    """The commands of README's ```bash blocks (comments dropped, continued lines joined) and
    the backticked commands of its prose, each once, in order."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            if line.lstrip().startswith("#"):
                continue
            line = re.sub(r"\s+", " ", re.sub(r"\s+#.*$", "", line)).strip()
            if line.split(" ", 1)[0] in PROGRAMS:
                commands.append(line)
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    spans = [re.sub(r"\s+", " ", c) for c in re.findall(r"`([^`]+)`", prose)]  # may wrap a line
    commands += [c for c in spans if " " in c and c.split(" ", 1)[0] in PROGRAMS]
    return list(dict.fromkeys(commands))


def source_of(where: str) -> str:
    """The text a place consists of: a file, or one function of a test module."""
    path, _, name = where.partition("::")
    text = (ROOT / path).read_text()
    if not name:
        return text
    tree = ast.parse(text)
    found = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name]
    assert found, f"{where}: no such function"
    return ast.get_source_segment(text, found[0])


def test_every_readme_command_says_where_it_runs():
    commands = readme_commands((ROOT / "README.md").read_text())
    assert len(commands) > 50  # the extraction found README's commands at all
    assert [c for c in commands if c not in RUN_BY] == [], "README commands with no entry in RUN_BY"
    assert [c for c in RUN_BY if c not in commands] == [], "RUN_BY entries README no longer shows"


def test_each_entry_points_at_code_that_runs_the_command():
    wrong = []
    for command, (where, needle) in RUN_BY.items():
        if needle is None:  # not run by the suite: the entry says why, in words
            if not where.startswith(("by hand: ", "not run: ")):
                wrong.append(f"{command!r}: {where!r} is neither a place nor a reason")
        elif needle not in source_of(where):
            wrong.append(f"{command!r}: {where} does not contain {needle!r}")
    assert wrong == []


def test_benchmarks_readme_names_exist():
    for command in readme_commands((ROOT / "README.md").read_text()):
        for script in re.findall(r"\b(?:benchmarks|stages)/\w+\.py", command):
            assert (ROOT / script).is_file(), command
