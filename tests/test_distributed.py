"""Training under PyTorch's launcher (DistributedDataParallel, gloo on the CPU), on tiny data."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT, documented
from torch import nn

from omniglot_mtl.core.errors import InputError, ParamError
from omniglot_mtl.core.params import from_dict
from omniglot_mtl.training.distributed import World, threads_per_process
from omniglot_mtl.training.loop import fit
from omniglot_mtl.weighting.methods import LossWeighting

STAGE_PATHS = (
    Path("data/packed"),
    Path("data/index"),
    Path("models/multi_output.pt"),
    Path("metrics/train_multi_output"),
)

LAUNCH = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]


def test_world_shares_batches_like_distributed_sampler():
    order = torch.arange(7)
    padded = World(1, 2).pad(order)  # 7 rows, 2 processes: the first row again, as 8th
    assert padded.tolist() == [0, 1, 2, 3, 4, 5, 6, 0]
    batch = padded[:4]
    assert World(0, 2).share(batch).tolist() == [0, 2] and World(1, 2).share(batch).tolist() == [1, 3]
    assert World().pad(order) is order and World().share(batch) is batch


def test_every_process_ends_with_the_same_model_and_weighting_state(data, tmp_path):
    worker = ROOT / "tests" / "distributed_worker.py"
    done = subprocess.run([*LAUNCH, str(worker), str(data), str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("static", "normalize", "uncertainty", "dwa", "famo", "convnet"):
        rank0, rank1 = (torch.load(tmp_path / f"{name}_{r}.pt", weights_only=True) for r in (0, 1))
        assert (rank0["world"], rank1["world"]) == ((0, 2), (1, 2))
        for part in ("best", "last", "weighting"):
            assert rank0[part].keys() == rank1[part].keys()
            for key, value in rank0[part].items():
                assert torch.equal(value, rank1[part][key]), f"{name}: {part} {key} differs between ranks"
        assert rank0["records"] == rank1["records"]  # loss sums and validation accuracy all-reduced
        losses = [r["train/loss/character"] for r in rank0["records"]]
        assert losses[-1] < losses[0], f"{name}: {losses}"
    weights = torch.load(tmp_path / "uncertainty_0.pt", weights_only=True)["weighting"]
    assert not torch.equal(weights["log_var"], torch.zeros(2))  # learned, and the same on both
    famo = torch.load(tmp_path / "famo_0.pt", weights_only=True)["weighting"]
    assert not torch.equal(famo["famo_logits"], torch.zeros(2))


def stage_dir(data: Path, root: Path, **train) -> Path:
    """A folder the training stage can run in: packed data and a params.yaml."""
    root.mkdir()
    (root / "data").mkdir()
    for name in ("packed", "index"):
        (root / "data" / name).symlink_to(data / name)
    params = {"device": "cpu", "train": {"epochs": 3, "batch_size": 8, "lr": 0.003, **train}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def test_two_nodes_as_readme_starts_them_rank_0_writes(data, tmp_path):
    """docs/distributed.md's two-node torchrun lines, both "nodes" on this machine, one process each."""
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    nodes = [stage_dir(data, tmp_path / f"node{rank}") for rank in (0, 1)]
    # docs/distributed.md's two lines, on this machine: one process per node, a free port.
    fill = {"node0.example.org": "127.0.0.1", "4": "1", "29500": str(port)}
    fill["stages/train_multi_output.py"] = str(ROOT / "stages" / "train_multi_output.py")
    commands = [
        documented(
            "torchrun --nnodes 2 --nproc-per-node 4 --node-rank 0 --master-addr node0.example.org "
            "--master-port 29500 stages/train_multi_output.py",
            fill,
        ),
        documented(
            "torchrun --nnodes 2 --nproc-per-node 4 --node-rank 1 --master-addr node0.example.org "
            "--master-port 29500 stages/train_multi_output.py",
            fill,
        ),
    ]
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", *command[1:]],  # torchrun is this module
            cwd=node,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for command, node in zip(commands, nodes, strict=True)
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert "images/s over 2 processes" in outputs[0] and "multi_output: best epoch" not in outputs[1]
    assert (nodes[0] / "models" / "multi_output.pt").exists()
    assert not (nodes[1] / "models").exists() and not (nodes[1] / "metrics").exists()


def test_bad_distributed_setups_fail_with_one_line(data, tmp_path):
    odd = from_dict({"train": {"batch_size": 9}})
    with pytest.raises(
        InputError, match=r"^params.yaml: train.batch_size: 9 is not a multiple of the number of pro"
    ):
        fit(nn.Linear(1, 1), LossWeighting({"character": 1.0}), None, None, odd.train, 0, world=World(0, 2))
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")  # the line below is about a machine without one
    # Under the launcher, both processes meet the same bad device: one line, from local rank 0
    # (the launcher then reports the failed processes in its own words).
    gpu = stage_dir(data, tmp_path / "gpu")
    params = yaml.safe_load((gpu / "params.yaml").read_text()) | {"device": "cuda"}
    (gpu / "params.yaml").write_text(yaml.safe_dump(params))
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    done = subprocess.run(
        [*launcher, str(ROOT / "stages" / "train_multi_output.py")],
        cwd=gpu,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    line = "error: params.yaml: device: 'cuda' is not available here; available: auto, cpu"
    assert done.stderr.splitlines().count(line) == 1, done.stderr
    assert not (gpu / "models").exists()


def test_threads_auto_is_this_machines_cpus_shared_by_its_processes(monkeypatch):
    cpus = len(os.sched_getaffinity(0))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert threads_per_process("auto") == cpus and threads_per_process(3) == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # set by the launcher in each process
    assert threads_per_process("auto") == max(1, cpus // 2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(cpus + 1))
    assert threads_per_process("auto") == 1
    # cpu.portable: 2 in all on every machine, shared the same way; a number is a number.
    assert threads_per_process("auto", portable=True) == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert threads_per_process("auto", portable=True) == 2
    assert threads_per_process(3, portable=True) == 3
    for bad, message in (
        (0, "train.threads: must be auto or a number from 1 to 1024, got 0"),
        (2**40, "train.threads: must be auto or a number from 1 to 1024, got 1099511627776"),
        ("fast", "train.threads: must be auto or a number from 1 to 1024, got 'fast'"),
        (1.5, "train.threads: must be auto or a number from 1 to 1024, got 1.5"),
    ):
        with pytest.raises(ParamError, match=f"^params.yaml: {message}$"):
            from_dict({"train": {"threads": bad}})
