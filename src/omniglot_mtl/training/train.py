"""Stages ``train_multi_input`` and ``train_multi_output``: packed data -> checkpoint + curves.

The stage scripts pass the loss: :class:`~omniglot_mtl.training.loop.OneTask` for the
multi-input model, a method of :mod:`omniglot_mtl.weighting.methods` for the multi-output one,
so that only the multi-output stage depends on the weighting methods (dvc.yaml).
"""

import dataclasses
import os
import resource
import sys
from pathlib import Path

import torch
import yaml
from dvclive import Live
from scmrepo.exceptions import SCMError
from torch import nn

from omniglot_mtl.core.atomic import atomic_dir
from omniglot_mtl.core.devices import configure_cuda, resolve_device, resolve_precision
from omniglot_mtl.core.environment import determinants, keep_freed_memory
from omniglot_mtl.core.errors import InputError
from omniglot_mtl.core.packed import load_split, read_maps
from omniglot_mtl.core.params import Params, as_dict
from omniglot_mtl.core.tasks import ALPHABET
from omniglot_mtl.models.checkpoints import save_checkpoint
from omniglot_mtl.models.inference import SHIFTS, character_alphabet, choose_read_out, hits, predict
from omniglot_mtl.models.networks import ModelConfig, build_model
from omniglot_mtl.training.distributed import close_world, device_for, init_world, threads_per_process
from omniglot_mtl.training.loop import FitResult, fit, selection_score


def train_stage(params: Params, kind: str, loss: nn.Module, project: Path) -> None:
    """The training stage of the ``kind`` model, with the loss weighting ``loss``: its outputs
    at dvc.yaml's paths, then one summary line (from rank 0 under torchrun). ``project`` is the
    stage script's project, whose dvc.yaml declares the stage."""
    keep_freed_memory()  # this process only trains, then exits
    result = train_model(
        params,
        kind,
        loss,
        packed_dir=Path("data/packed"),
        index_dir=Path("data/index"),
        model_path=Path(f"models/{kind}.pt"),
        metrics_dir=Path(f"metrics/train_{kind}"),
        recorded=declared_params(project / "dvc.yaml", f"train_{kind}"),
    )
    if result.rank != 0:  # rank 0 speaks for all
        return
    val = ", ".join(f"{task} {acc:.3f}" for task, acc in result.best_val.items())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    peak_mb = peak / (2**20 if sys.platform == "darwin" else 2**10)
    over, each = (f" over {result.processes} processes", " per process") if result.processes > 1 else ("", "")
    print(
        f"{kind}: best epoch {result.best_epoch}, val accuracy {val}, "
        f"{result.images_per_s:.0f} training images/s{over}, peak memory {peak_mb:.0f} MB{each}"
    )
    note = busy_note()
    if note:
        print(note)


def busy_note(cpus: int | None = None) -> str | None:
    """A line saying so when other processes took this machine's CPUs while it trained: over the
    last minute its load average (our own threads, one per CPU, count about the CPUs) went past
    the CPUs by more than half a busy process. Two threads that share their cores with another
    process wait on each other at every operation: 3x slower or worse (docs/distributed.md,
    "Sharing a machine"). It only prints: the thread count, and so the bytes, stay as they are."""
    cpus = cpus or os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load <= cpus + 0.5:
        return None
    return (
        f"note: this machine was busy while training (load average {load:.1f} on {cpus} CPUs), which "
        "can make it several times slower; stop the other jobs, or set train.threads: 1 "
        "(docs/distributed.md#sharing-a-machine)"
    )


def declared_params(dvc_yaml: Path, stage: str) -> tuple[str, ...]:
    """The params sections ``stage`` declares in ``dvc_yaml``, and so all that its checkpoint
    may record: a section it does not declare could differ in a checkpoint restored from DVC's
    run cache. (dvc.yaml is the stage's own definition: a change to its params reruns it.)"""
    return tuple(yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"][stage]["params"])


def train_model(
    params: Params,
    kind: str,
    loss: nn.Module,
    packed_dir: Path,
    index_dir: Path,
    model_path: Path,
    metrics_dir: Path,
    recorded: tuple[str, ...] | None = None,
) -> FitResult:
    """Train the ``kind`` model ("multi_input" or "multi_output") with the loss weighting
    ``loss`` and write its outputs.

    Writes ``model_path`` (weights of the best validation epoch) and, under ``metrics_dir``,
    DVCLive's per-epoch curves (``plots/metrics/...``) and ``metrics.json``. Under torchrun,
    every process trains its share and rank 0 alone writes. The checkpoint records the params
    sections ``recorded`` (the training stage passes those it declares in dvc.yaml; None: all).
    """
    device = device_for(resolve_device(params.device))
    configure_cuda(device, params.cuda.deterministic)
    threads = threads_per_process(params.train.threads, portable=params.cpu.portable)
    torch.set_num_threads(threads)
    world = init_world(device)
    try:
        paths = (packed_dir, index_dir, model_path, metrics_dir)
        result = _train(params, kind, loss, *paths, device, world, threads, recorded)
        # No process tears the group down while another may still use it: rank 0 hosts its
        # store, and a gloo thread still at work when its process exits aborts that process
        # (seen once in a 2-process run: "terminate called without an active exception").
        world.barrier()
        return result
    finally:
        close_world(world)


def _train(
    params, kind, loss, packed_dir, index_dir, model_path, metrics_dir, device, world, threads, recorded
) -> FitResult:
    torch.manual_seed(params.seed)
    # auto becomes what this machine computes natively; the checkpoint records what was used.
    cfg = dataclasses.replace(params.train, precision=resolve_precision(params.train.precision, device))
    alphabets, characters = read_maps(index_dir)
    train = load_split(packed_dir, "train").to(device)
    val = load_split(packed_dir, "val").to(device)
    config = ModelConfig.from_params(
        kind, params.model, len(alphabets), len(characters), train.images.shape[-1]
    )
    model = build_model(config).to(device)
    weighting = loss.to(device)
    char_to_alpha = character_alphabet(alphabets, characters).to(device)

    if not world.main:  # the other processes train and write nothing
        return fit(model, weighting, train, val, cfg, params.seed, world=world, char_to_alpha=char_to_alpha)

    with atomic_dir(metrics_dir) as tmp, _live(tmp) as live:

        def log(epoch: int, record: dict[str, float]) -> None:
            live.step = epoch  # the curves' x: epochs counted from 1, not DVCLive's 0
            for name, value in record.items():
                live.log_metric(name, value)
            live.next_step()

        result = fit(model, weighting, train, val, cfg, params.seed, log, world, char_to_alpha=char_to_alpha)
        live.summary["epochs"] = result.epochs
        live.summary["best_epoch"] = result.best_epoch
        live.summary["best_val_accuracy"] = result.best_val
        # How evaluate and predict will read the model, chosen here on the validation drawings:
        # the test-time views where they score more of them than the drawing alone, and the
        # multi-output model's alphabet from both heads.
        model.load_state_dict(result.best_state)
        viewed = predict(model, val, cfg.precision, views=len(SHIFTS))
        right = hits(model, viewed, val.labels, char_to_alpha)
        with_views = {t: right[t].float().mean().item() for t in right}
        views = choose_views(with_views, result.best_val, weighting)
        extra = {"views": views, "views_val_accuracy": with_views}
        if kind == "multi_output":
            logits = viewed if views > 1 else predict(model, val, cfg.precision)
            read_out, read_out_accuracy = choose_read_out(logits, val.labels[ALPHABET], char_to_alpha)
            extra |= {"alphabet_read_out": read_out, "alphabet_read_out_val_accuracy": read_out_accuracy}
        save_checkpoint(
            model_path,
            config,
            {k: v.cpu() for k, v in result.best_state.items()},
            alphabets,
            characters,
            {name: value for name, value in as_dict(params).items() if recorded is None or name in recorded},
            {
                "epochs": result.epochs,
                "best_epoch": result.best_epoch,
                "precision": cfg.precision,
                "val_accuracy": result.best_val,
                "environment": determinants(device, threads)
                | ({"processes": world.size} if world.size > 1 else {}),
            }
            | extra,
        )
    return result


def choose_views(with_views: dict[str, float], alone: dict[str, float], weighting: nn.Module) -> int:
    """How many views evaluate and predict read: all of :data:`SHIFTS` where the validation
    accuracies ``with_views`` outscore the drawing's ``alone`` as the best epoch was chosen
    (``selection_score``; the multi-input model's characters within the given alphabet), else
    1, the drawing alone, also on a tie."""
    better = selection_score(with_views, weighting) > selection_score(alone, weighting)
    return len(SHIFTS) if better else 1


def _live(folder: Path) -> Live:
    """DVCLive writing into ``folder``; the metrics and plots are declared in dvc.yaml."""
    try:
        return Live(str(folder), dvcyaml=False, save_dvc_exp=False)
    except SCMError as err:  # DVCLive 3.x fails in a git repository with no commit yet
        raise InputError(f"git: {err}; commit once (git add -A && git commit) before training") from None
