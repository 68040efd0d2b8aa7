"""Data-parallel training with PyTorch's own distributed runtime and launcher (torchrun):
:func:`init_world` joins the launcher's process group (``gloo`` on CPUs, ``nccl`` on GPUs) and
returns the :class:`World` the training loop asks for its share of each batch and for sums; one
plain process is ``World()``, with the loop's floats unchanged. docs/distributed.md has the rest.
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from omniglot_mtl.core.environment import PORTABLE_THREADS, usable_cpus
from omniglot_mtl.core.errors import InputError

LAUNCHER_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """Whether this process writes the outputs (the checkpoint, DVCLive's files, metrics)."""
        return self.rank == 0

    def padded(self, rows: int) -> int:
        """``rows`` rounded up to a multiple of the world size: the rows of a padded epoch."""
        return rows + -rows % self.size

    def pad(self, order: torch.Tensor) -> torch.Tensor:
        """``order`` made a multiple of the world size by repeating its first entries, as
        ``DistributedSampler`` does, so that every process gets equally many rows per batch."""
        extra = self.padded(len(order)) - len(order)
        return torch.cat((order, order[:extra])) if extra else order

    def share(self, batch_rows: torch.Tensor) -> torch.Tensor:
        """This process's share of one global batch: rows rank, rank + size, ..."""
        return batch_rows[self.rank :: self.size] if self.size > 1 else batch_rows

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over all processes (in place)."""
        if self.size > 1:
            dist.all_reduce(tensor)
        return tensor

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """The mean of ``tensor`` over all processes (a new tensor; ``tensor`` itself in one)."""
        return self.sum(tensor.clone()) / self.size if self.size > 1 else tensor

    def average_gradients(self, params) -> None:
        """Average the gradients of ``params`` that DistributedDataParallel does not see (the
        loss weighting's learned log-variances)."""
        if self.size > 1:
            for p in params:
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= self.size

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` as DistributedDataParallel (gradients averaged over processes in the
        backward pass; parameters broadcast from rank 0 here, so every process starts equal)."""
        if self.size == 1:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self.size > 1:
            dist.barrier()

    def sync_buffers(self, model: nn.Module) -> None:
        """Give every process rank 0's buffers (batch norm's running statistics, which each
        process updates from its own share of the batch) before they are used or saved."""
        if self.size > 1:
            for buffer in model.buffers():
                dist.broadcast(buffer, 0)


ONE_PROCESS = World()


def launched() -> bool:
    """Whether this process was started by PyTorch's launcher (torchrun)."""
    return all(name in os.environ for name in LAUNCHER_ENV)


def device_for(device: torch.device) -> torch.device:
    """The device of this process: on CUDA, the GPU numbered by ``LOCAL_RANK``."""
    if device.type != "cuda" or not launched():
        return device
    if device.index is not None and int(os.environ["WORLD_SIZE"]) > 1:
        raise InputError(
            f"params.yaml: device: {device} names one GPU; under torchrun use cuda or auto "
            "(each process takes the GPU numbered by its LOCAL_RANK)"
        )
    local_processes, count = int(os.environ.get("LOCAL_WORLD_SIZE", "1")), torch.cuda.device_count()
    if local_processes > count:  # every process says so, so that local rank 0 reports it
        raise InputError(
            f"{local_processes} processes on this machine but {count} GPU(s): one GPU per "
            f"process; start at most {count} (torchrun --nproc-per-node)"
        )
    return torch.device("cuda", int(os.environ["LOCAL_RANK"]))


def init_world(device: torch.device) -> World:
    """Join the launcher's process group, or ``World()`` when there is no launcher."""
    if not launched() or int(os.environ["WORLD_SIZE"]) == 1:
        return ONE_PROCESS
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    return World(dist.get_rank(), dist.get_world_size())


def close_world(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def threads_per_process(setting: int | str, portable: bool = False) -> int:
    """Intra-op threads for each training process: ``train.threads``, or for ``auto`` the CPUs
    this process may run on, divided among the training processes the launcher started on this
    machine (``LOCAL_WORLD_SIZE``); under ``cpu.portable``, ``PORTABLE_THREADS`` in place of the
    CPUs, the same on every machine.

    ``auto`` is a fixed number for a given machine, never a guess from its current load: the
    thread count changes how reductions are split, and so the checkpoint's bytes (measured:
    1 and 2 threads give different weights after one epoch; docs/distributed.md, "Sharing a
    machine").
    """
    if setting != "auto":
        return int(setting)
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, (PORTABLE_THREADS if portable else usable_cpus()) // processes)
