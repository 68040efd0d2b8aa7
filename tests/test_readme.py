"""Every command README.md and docs/ show is run somewhere, and this file says where.

A command counts as run by a test only where a test passes its literal text to
``conftest.documented`` (or ``documented_line`` for a shell line), which returns exactly that
command to run (with placeholder
words such as a data path filled in): the text on the page is what runs. The others need an
entry below: ``.ci/run`` or the Makefile when they hold the command as written, or a reason in
words ("by hand: ..." for the real data set, "not run: ..." for a cluster, a GPU, an
unreachable index). A command added to a page with neither fails here, and so does an entry
for a command no page shows.
"""

import ast

from conftest import DOC_PAGES, ROOT, doc_commands

PIPE = "tests/test_pipeline.py::"
REAL_DATA = "by hand: needs a real Omniglot set (benchmarks/, on ../shared here); figures in docs/"

# Commands no test runs through documented(): where they run, or why they are not run.
QUICKSTART = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install -c constraints.txt -e '.[dev]' && dvc repro"
)
RUN_BY = {
    # .ci/run holds these lines as written; the Makefile's targets are the same commands.
    QUICKSTART: (".ci/run", QUICKSTART),
    "ruff check . && pytest": (".ci/run", "ruff check . && pytest"),
    "make install": (
        "Makefile",
        "install:\n\tpython3 -m venv .venv && .venv/bin/pip install -c constraints.txt",
    ),
    "make repro": ("Makefile", "repro:\n\t.venv/bin/dvc repro"),
    "make test": ("Makefile", "test:\n\t.venv/bin/ruff check . && .venv/bin/pytest"),
    "make lint": ("Makefile", "lint:\n\t.venv/bin/ruff check . && .venv/bin/ruff format --check ."),
    # Parts of the quickstart line, in docs/install.md's CPU-only install.
    "python3 -m venv .venv && . .venv/bin/activate": (
        "by hand: the first half of the quickstart line that .ci/run runs whole",
        None,
    ),
    "pip install -c constraints.txt -e '.[dev]' && dvc repro": (
        "by hand: the second half of the quickstart line that .ci/run runs whole",
        None,
    ),
    "pip install torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cpu": (
        "not run: download.pytorch.org is not reachable from the test machines",
        None,
    ),
    # The recipe on a real set: minutes each (a one-epoch run of it is tested).
    "omniglot-mtl-recipe recipes/convnet.yaml -n convnet": (
        "by hand: benchmarks/pipeline_time.py --recipe runs it on a fresh clone of a real set (5 minutes)",
        None,
    ),
    "omniglot-mtl-recipe recipes/convnet-long.yaml -n convnet-fp32 -S train.precision=fp32": (
        REAL_DATA,
        None,
    ),
    "omniglot-mtl-recipe recipes/convnet.yaml --queue -S seed=0,1,2": (REAL_DATA, None),
    "omniglot-mtl-recipe recipes/convnet-long.yaml --queue -S seed=0,1": (REAL_DATA, None),
    "dvc exp run -n famo -S loss.method=famo": (REAL_DATA, None),
    # The allocator's timing in results.md: a training stage run by itself, at two commits.
    "python stages/train_multi_output.py": (REAL_DATA, None),
    'dvc exp apply convnet && git add -A && git commit -m "convnet recipe"': (REAL_DATA, None),
    "dvc exp run --queue -S loss.char_weight=0.25,1,4 -S loss.method=static,uncertainty,dwa": (
        REAL_DATA,
        None,
    ),
    "dvc exp run --queue -S seed=1,2": (
        "by hand: benchmarks/seed_sweep.py queues this sweep on a real set; a seed run: "
        + PIPE
        + "test_training_seed_reruns_training_only",
        None,
    ),
    # The benchmarks, on a real set.
    "python benchmarks/pipeline_time.py ../shared/omniglot/images_background": (REAL_DATA, None),
    "python benchmarks/pipeline_time.py ../shared/omniglot/images_background --recipe FILE": (
        REAL_DATA,
        None,
    ),
    "python benchmarks/pipeline_time.py ../shared/omniglot/images_background "
    "--recipe recipes/convnet-long.yaml": (
        REAL_DATA,
        None,
    ),
    "python benchmarks/pipeline_time.py ../shared/omniglot/images_background --recipe recipes/convnet.yaml": (
        REAL_DATA,
        None,
    ),
    "python benchmarks/speedrun.py ../shared/omniglot/images_background --set train.epochs=16": (
        REAL_DATA,
        None,
    ),
    "python benchmarks/speedrun.py ../shared/omniglot/images_background "
    "--recipe recipes/convnet-long.yaml --seeds 2 --test": (REAL_DATA, None),
    "python benchmarks/speedrun.py ../shared/omniglot/images_background --set train.optimizer=adamw "
    "--set train.muon_lr=0 --set model.alphabet_hidden=0 --set train.epochs=16 --seeds 0 1 2 --test": (
        REAL_DATA,
        None,
    ),
    "python benchmarks/speedrun.py ../shared/omniglot/images_background --seeds 0 1 2 --test": (
        REAL_DATA,
        None,
    ),
    "python benchmarks/seed_sweep.py ../shared/omniglot/images_background --vary loss.char_weight=1,2": (
        REAL_DATA,
        None,
    ),
    "python benchmarks/seed_sweep.py ../shared/omniglot/images_background --recipe recipes/convnet-long.yaml "
    "--vary loss.method=static,famo": (REAL_DATA, None),
    "python benchmarks/seed_sweep.py ../shared/omniglot/images_background -S cpu.portable=false "
    "--vary train.precision=fp32,bf16": (REAL_DATA, None),
    "make bench DATA=path/to/images_background": (REAL_DATA, None),
    "python benchmarks/cut_set.py ../shared/omniglot/images_background /tmp/cut20 --alphabets 20": (
        REAL_DATA,
        None,
    ),
    "python benchmarks/seed_sweep.py /tmp/cut20 --recipe recipes/convnet.yaml "
    "--vary train.min_steps=0,1688": (REAL_DATA, None),
    "python benchmarks/seed_sweep.py /tmp/cut20 --recipe recipes/convnet-long.yaml": (REAL_DATA, None),
    "python benchmarks/cut_set.py ../shared/omniglot/images_background /tmp/half --drop-drawers 8 9 10 11 12 "
    "13 14": (REAL_DATA, None),
    "python benchmarks/seed_sweep.py ../shared/omniglot/images_background --recipe recipes/convnet.yaml": (
        REAL_DATA,
        None,
    ),
    "python benchmarks/seed_sweep.py ../shared/omniglot/images_background "
    "--recipe recipes/convnet-long.yaml": (REAL_DATA, None),
    "python benchmarks/pipeline_time.py ../shared/omniglot/images_background --per-stage": (REAL_DATA, None),
    "python benchmarks/view_gain.py /tmp/seed_sweep_XXXX/project": (REAL_DATA, None),  # a sweep's clone
    "python benchmarks/pipeline_time.py ../shared/omniglot/images_background --recipe recipes/convnet.yaml "
    "--per-stage": (REAL_DATA, None),
    "ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/pipeline_time.py "
    "../shared/omniglot/images_background --recipe recipes/convnet-long.yaml": (
        "by hand: the 40-epoch recipe on a real set as on a CPU without bf16 (14 min); "
        "figures in docs/results.md",
        None,
    ),
    "python benchmarks/pipeline_time.py ../shared/omniglot/images_background --vs-notebook": (
        REAL_DATA,
        None,
    ),
    "python benchmarks/train_speed.py ../shared/omniglot/images_background --epochs 10 --seed S": (
        REAL_DATA,
        None,
    ),
    "python benchmarks/train_speed.py DATA_DIR --device cuda --eager": (
        "not run: needs a CUDA GPU and a real set",
        None,
    ),
    "bash benchmarks/gpu_check.sh DATA_DIR": (
        "by hand: on a machine with a CUDA GPU (docs/performance.md)",
        None,
    ),
    "dvc repro -s STAGE": (
        "by hand: what benchmarks/pipeline_time.py --per-stage runs, stage by stage",
        None,
    ),
    "HYPOTHESIS_PROFILE=long pytest tests/test_fuzz.py -n 0": (
        "by hand: the long fuzz run, minutes; the suite runs the same tests with 60 examples each",
        None,
    ),
    # The Δm sweep: nine trainings through the queue; tests/test_compare.py pins Δm by hand.
    "dvc exp run --queue -S seed=0,1,2": ("by hand: the Δm sweep's multi-task runs", None),
    "dvc exp run --queue -S loss.alpha_weight=0 -S seed=0,1,2": ("by hand: the Δm sweep's baselines", None),
    "dvc exp run --queue -S loss.char_weight=0 -S seed=0,1,2": ("by hand: the Δm sweep's baselines", None),
    # More processes, more machines, beyond what one test machine has.
    "dvc queue start -j 2": (
        "not run: DVC's worker race (treeverse/dvc#10673) fails it now and then; the suite uses one worker",
        None,
    ),
    "python -m torch.distributed.run": (
        "not run: torchrun's module, named in prose; the torchrun lines run",
        None,
    ),
    'srun torchrun --nnodes "$SLURM_NNODES" --nproc-per-node 4 --node-rank "$SLURM_NODEID" --master-addr '
    '"$head" --master-port 29500 stages/train_multi_output.py': ("not run: needs a SLURM cluster", None),
    "dvc commit train_multi_output": (
        "not run: records what an external torchrun wrote; dvc commit is DVC's own",
        None,
    ),
    "dvc exp save -n <name>": ("not run: as `dvc commit`, after an external torchrun", None),
}


def run_by_tests() -> dict[str, list[str]]:
    """{command: [test files]} for every literal ``documented("...")`` or
    ``documented_line("...")`` call under tests/."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            name = getattr(node.func, "id", None) if isinstance(node, ast.Call) else None
            if name in ("documented", "documented_line") and path.name != "conftest.py":
                text = node.args[0]
                assert isinstance(text, ast.Constant), f"{path.name}:{node.lineno}: {name}() takes a literal"
                found.setdefault(text.value, []).append(path.name)
    return found


def source_of(where: str) -> str:
    return (ROOT / where).read_text()


def test_every_documented_command_says_where_it_runs():
    commands = doc_commands()
    assert len(commands) > 50 and len(DOC_PAGES) > 5  # the extraction found the pages' commands
    tested = run_by_tests()
    missing = [c for c in commands if c not in tested and c not in RUN_BY]
    assert missing == [], "commands no test runs through documented() and with no entry in RUN_BY"
    assert [c for c in RUN_BY if c not in commands] == [], "RUN_BY entries no page shows any longer"
    assert [c for c in RUN_BY if c in tested] == [], "RUN_BY entries for commands a test runs"
    assert [c for c in tested if c not in commands] == [], "documented() commands no page shows"


def test_each_entry_is_a_file_that_holds_the_command_or_a_reason():
    wrong = []
    for command, (where, needle) in RUN_BY.items():
        if where in (".ci/run", "Makefile"):
            if needle not in source_of(where):
                wrong.append(f"{command!r}: {where} does not hold {needle!r}")
        elif needle is not None or not where.startswith(("by hand: ", "not run: ")):
            wrong.append(f"{command!r}: {where!r} is neither .ci/run, the Makefile nor a reason")
    assert wrong == []


def test_ci_runs_the_quickstart_and_test_lines_as_written():
    ci = source_of(".ci/run")
    for command, (where, needle) in RUN_BY.items():
        if where == ".ci/run":
            assert needle == command and command in ci.splitlines(), command


def test_benchmark_and_stage_scripts_named_in_the_docs_exist():
    import re

    for command in doc_commands():
        for script in re.findall(r"\b(?:benchmarks|stages)/\w+\.py", command):
            assert (ROOT / script).is_file(), command
