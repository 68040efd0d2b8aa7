"""The one training loop, for both models: what differs (inputs, heads, loss weighting) is
carried by the model (``inputs``, ``tasks``) and the loss weighting passed in: a
:class:`~omniglot_mtl.weighting.methods.LossWeighting` for the multi-output model, :class:`OneTask` for the
multi-input one (so that its stage does not depend on the weighting folder).

Batches are made by indexing one uint8 tensor that already lives on the device; there is no
DataLoader, no per-sample Python and no PNG decoding here.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from omniglot_mtl.core.errors import InputError
from omniglot_mtl.core.packed import PackedSplit
from omniglot_mtl.core.params import Train
from omniglot_mtl.models.inference import accuracy, autocast
from omniglot_mtl.training.augment import augment_generator, random_affine
from omniglot_mtl.training.distributed import ONE_PROCESS, World
from omniglot_mtl.training.muon import MuonAdamW

if TYPE_CHECKING:
    from omniglot_mtl.weighting.methods import LossWeighting


class OneTask(nn.Module):
    """The loss of a model with one task, as the loop asks a loss weighting for it: nothing to
    weigh, learn or sync."""

    needs_losses_after_step = False
    sync = None

    def __init__(self, task: str):
        super().__init__()
        self.tasks = (task,)
        self.register_buffer("weight", torch.ones(1))

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return losses[self.tasks[0]]

    def end_epoch(self, mean_losses: dict[str, float]) -> None:
        pass

    def records(self) -> dict[str, float]:
        return {}


@dataclass
class FitResult:
    best_state: dict[str, torch.Tensor]
    epochs: int  # trained: train.epochs, or more under train.min_steps
    best_epoch: int  # 1-based
    best_val: dict[str, float]  # validation accuracy per task at the best epoch
    images_per_s: float  # training throughput over all epochs (all processes), evaluation excluded
    rank: int = 0  # this process's, in a distributed run of ``processes``
    processes: int = 1


def make_optimizer(
    model: nn.Module, weighting: nn.Module, cfg: Train, device: torch.device, capturable: bool = False
):
    """Adam (the notebook's), or AdamW with decoupled weight decay on the weight matrices and
    convolution kernels only: decaying biases, batch-norm scales or the learned log-variances
    of the loss weighting would only pull them towards 0, which regularises nothing. ``muon``:
    the same AdamW, except that the convolution kernels take :mod:`omniglot_mtl.training.muon`'s steps, at
    ``cfg.muon_lr``.

    ``capturable``: for a step captured in a CUDA graph, the step count and the learning rate
    live in device tensors, so that each replay reads the schedule's current rate.
    """
    # The fused kernel does the update in one pass over the weights: on a CPU it is ~1.5x
    # faster per step for the seed network, whose step is dominated by memory traffic.
    fused = device.type in ("cpu", "cuda")
    lr = torch.tensor(cfg.lr, device=device) if capturable else cfg.lr
    params = [*model.parameters(), *weighting.parameters()]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, fused=fused, capturable=capturable)
    muon = cfg.optimizer == "muon"
    groups = [
        {
            "params": [p for p in params if p.ndim == 2 or p.ndim > 2 and not muon],
            "weight_decay": cfg.weight_decay,
        },
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    if muon:  # the kernels, (out, in, *kernel size), are Muon's
        kernels = {
            "params": [p for p in params if p.ndim > 2],
            "lr": cfg.muon_lr,
            "muon": True,
            "weight_decay": 0.0,
        }
        return MuonAdamW([kernels, *groups], lr=cfg.lr, fused=fused)
    return torch.optim.AdamW(groups, lr=lr, fused=fused, capturable=capturable)


class CapturedStep:
    """A training step recorded once as a CUDA graph, then replayed for every full batch.

    A small network's step on a GPU is a few hundred short kernels, each launched from Python,
    and the launches, not the GPU, bound its speed: one replay launches them all at once
    (docs/results.md, "On a GPU": 3.3x the step run as written on an H200). The step's
    tensors stay where the capture put them: the rows it reads are copied into ``self.rows``
    before each replay, and the losses it returns are overwritten by the next one. The first
    ``warmup`` steps run as written, on a side stream as CUDA's capture asks, so that the
    optimizer's state exists and cuDNN has chosen its algorithms before the capture.
    """

    warmup = 3

    def __init__(self, step: Callable[[torch.Tensor], torch.Tensor], optimizer, generator=None):
        self.step, self.optimizer, self.generator = step, optimizer, generator
        self.graph: torch.cuda.CUDAGraph | None = None
        self.steps = 0

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        self.steps += 1
        if self.steps <= self.warmup:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self.optimizer.zero_grad(set_to_none=True)
                losses = self.step(rows)
            torch.cuda.current_stream().wait_stream(side)
            return losses
        if self.graph is None:
            self.rows = rows.clone()
            self.graph = torch.cuda.CUDAGraph()
            if self.generator is not None:  # its draws advance with each replay
                self.graph.register_generator_state(self.generator)
            # Gradients made inside the capture live in its memory, and each replay rewrites them.
            self.optimizer.zero_grad(set_to_none=True)
            with torch.cuda.graph(self.graph):
                self.losses = self.step(self.rows)
        self.rows.copy_(rows)
        self.graph.replay()
        return self.losses


def epochs_for(cfg: Train, steps_per_epoch: int) -> int:
    """``cfg.epochs``, or more where that many epochs of ``steps_per_epoch`` would take fewer
    than ``cfg.min_steps`` optimizer steps."""
    return max(cfg.epochs, math.ceil(cfg.min_steps / steps_per_epoch))


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Cosine schedule: the learning rate's factor at optimizer step ``step`` (0-based).

    Rises linearly to 1 over ``warmup_steps`` (the first step already takes 1 / warmup_steps),
    then falls along a half cosine to 0 at ``total_steps``.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def selection_score(val_acc: dict[str, float], weighting: "LossWeighting | OneTask") -> float:
    """Validation accuracy averaged over tasks with the static loss weights: the tasks count as
    much as the user asked them to be trained, and a task weighted 0 (an untrained head) does
    not choose the best epoch."""
    weights = dict(zip(weighting.tasks, weighting.weight.tolist(), strict=True))
    return sum(weights[t] * acc for t, acc in val_acc.items()) / sum(weights[t] for t in val_acc)


def fit(
    model: nn.Module,
    weighting: "LossWeighting | OneTask",
    train: PackedSplit,
    val: PackedSplit,
    cfg: Train,
    seed: int,
    on_epoch: Callable[[int, dict[str, float]], None] = lambda epoch, record: None,
    world: World = ONE_PROCESS,
    capture: bool | None = None,
    char_to_alpha: torch.Tensor | None = None,
) -> FitResult:
    """Train ``model`` on ``train`` for :func:`epochs_for` epochs; keep the weights of the best
    epoch.

    "Best" is the highest :func:`selection_score` (earliest on ties).
    ``on_epoch(epoch, record)`` receives each epoch's training loss and validation accuracy per
    task and the loss weights in use.

    In a ``world`` of several processes (DistributedDataParallel), every process draws the same
    permutation and takes its share of each batch of ``cfg.batch_size`` rows, so the global batch
    and the number of steps are those of one process; loss sums and validation counts are summed
    over processes, so all of them log the same numbers and keep the same best epoch.

    ``char_to_alpha`` (:func:`~omniglot_mtl.models.inference.character_alphabet`): validation
    reads the multi-input model's characters within the given alphabet, as evaluate does, so that
    the epoch is chosen by the score the test reports. None: over all characters.

    ``capture`` (None: wherever it can) replays the step of every full batch from a CUDA graph
    (:class:`CapturedStep`): on one GPU, in one process, with a loss weighting that needs no
    second look at the batch (FAMO does), and an optimizer whose learning rate a replay reads
    (not ``muon``'s, a Python number the capture would freeze). Elsewhere each step runs as
    written.
    """
    if cfg.batch_size % world.size:
        raise InputError(
            f"params.yaml: train.batch_size: {cfg.batch_size} is not a multiple of the number of "
            f"processes ({world.size}); each process takes an equal share of a batch"
        )
    device = train.images.device
    can_capture = (
        device.type == "cuda"
        and world.size == 1
        and not weighting.needs_losses_after_step
        and cfg.optimizer != "muon"
    )
    if capture and not can_capture:
        raise ValueError(
            "capture: needs one process on a CUDA device, no loss weighting's after_step and no muon"
        )
    capture = can_capture if capture is None else capture
    net = world.wrap(model, device)
    weighting.sync = world.mean if world.size > 1 else None
    # Capturable on every GPU, so that a step computes the same bytes captured or not.
    optimizer = make_optimizer(model, weighting, cfg, device, capturable=device.type == "cuda")
    order = torch.Generator().manual_seed(seed)  # shuffling, independent of the init's stream
    n, bs = world.padded(len(train)), cfg.batch_size  # rows per epoch
    steps = (n + bs - 1) // bs
    epochs = epochs_for(cfg, steps)
    scheduler = None
    if cfg.schedule == "cosine":
        warmup = round(cfg.warmup_epochs * steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, epochs * steps, warmup)
        )
    distort = augment_generator(seed, device, world.rank) if cfg.augment.enabled else None

    def task_losses(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with autocast(device, cfg.precision):
            out = net(*(batch[k] for k in model.inputs))
        return {
            t: F.cross_entropy(out[t].float(), batch[t], label_smoothing=cfg.label_smoothing)
            for t in model.tasks
        }

    def step(idx: torch.Tensor) -> torch.Tensor:
        """One optimizer step on rows ``idx`` (gradients zeroed before); its task losses."""
        batch = train.batch(idx)
        if distort is not None:
            batch["image"] = random_affine(batch["image"], cfg.augment, distort)
        losses = task_losses(batch)
        weighting(losses).backward()
        world.average_gradients(weighting.parameters())
        optimizer.step()
        if weighting.needs_losses_after_step:
            # FAMO: how far this step moved each task, on the same batch. In train mode, as
            # in the authors' code (batch norm's running statistics see the batch twice).
            with torch.no_grad():
                weighting.after_step(task_losses(batch))
        return torch.stack([losses[t].detach() for t in model.tasks])

    captured = CapturedStep(step, optimizer, distort) if capture else None
    best_epoch, best_val, best_state = 0, {}, {}
    train_seconds = 0.0
    bar = tqdm(total=epochs * steps, unit="batch", disable=None if world.main else True, leave=False)
    for epoch in range(1, epochs + 1):
        bar.set_description(f"epoch {epoch}/{epochs}")
        model.train()
        # Loss sums stay on the device: reading them each step would sync the GPU every batch.
        loss_sums = torch.zeros(len(model.tasks), device=device)
        start = time.perf_counter()
        permutation = world.pad(torch.randperm(len(train), generator=order))
        for rows in permutation.to(device).split(bs):
            idx = world.share(rows)
            if captured is not None and len(idx) == bs:
                losses = captured(idx)
            else:
                optimizer.zero_grad(set_to_none=True)
                losses = step(idx)
            if scheduler is not None:
                scheduler.step()
            loss_sums += losses * idx.shape[0]
            bar.update()
        mean_loss = dict(zip(model.tasks, (world.sum(loss_sums) / n).tolist(), strict=True))
        if not all(map(math.isfinite, mean_loss.values())):  # no checkpoint of a diverged run
            raise InputError(
                f"training diverged: the mean training loss of epoch {epoch} is {mean_loss}; "
                "lower train.lr, or check the loss weights"
            )
        train_seconds += time.perf_counter() - start
        weighting.end_epoch(mean_loss)
        world.sync_buffers(model)
        val_acc = accuracy(model, val, cfg.precision, world, char_to_alpha)
        record = {f"train/loss/{t}": v for t, v in mean_loss.items()}
        record |= {f"val/accuracy/{t}": v for t, v in val_acc.items()}
        if len(model.tasks) > 1:  # a single task's weight is always 1: no curve for it
            record |= {f"weight/{t}": v for t, v in weighting.effective_weights().items()}
        record |= weighting.records()
        on_epoch(epoch, record)
        bar.set_postfix({f"val_{t}": f"{v:.3f}" for t, v in val_acc.items()})
        if bar.disable and world.main:  # no bar where the output is not a terminal: a line instead
            losses = ", ".join(f"{t} {v:.4f}" for t, v in mean_loss.items())
            accuracies = ", ".join(f"{t} {v:.3f}" for t, v in val_acc.items())
            print(f"epoch {epoch}/{epochs}: train loss {losses}; val accuracy {accuracies}", flush=True)
        if not best_val or selection_score(val_acc, weighting) > selection_score(best_val, weighting):
            best_epoch, best_val = epoch, val_acc
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    bar.close()
    return FitResult(
        best_state, epochs, best_epoch, best_val, n * epochs / train_seconds, world.rank, world.size
    )
