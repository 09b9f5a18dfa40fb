"""Training on several processes with ``torchrun`` (DistributedDataParallel): the same runner, the same run folder.

    torchrun --standalone --nproc_per_node=4 -m artlab.cli train --collection data/wikiart --backbone densenet121 ...

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; ``join`` reads them, joins the process group (NCCL on GPUs, gloo on
CPUs) and gives each process its GPU. What changes with more than one process, and nothing else does:

- every global batch of ``--batch-size`` paintings is split across the processes (``World.shard``); each process
  backpropagates its share of the global batch's mean loss (class weights included) and DDP sums them, so the
  hyperparameters mean what they mean on one machine. Where no BatchNorm layer is trained (transfer) and dropout is
  off, the updates equal one process's up to float rounding (tests/test_distributed.py). Trained BatchNorm layers
  see only their process's shard, as usual with DDP;
- after every epoch rank 0's buffers (BatchNorm statistics) are copied to all, every process validates on the whole
  validation split and they take the mean, so early stopping and the schedulers decide alike;
- random draws (augmentation, dropout) are each process's own; the shuffling is shared;
- only rank 0 writes: the resume file after every epoch, and the run folder at the end (the others wait for it).
  A restart reads the resume file in every process: on several machines, ``--out`` must be on a shared disk.

Every process computes the frozen-feature cache for itself and holds it in memory (a one-off pass, kept simple; with
DenseNet121 partial runs on a large collection lower ``--cache-views`` or use 0).
"""

from __future__ import annotations

import dataclasses
import datetime
import os

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


@dataclasses.dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The process that writes files and reports progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        """This process's part of one global batch of indices."""
        return idx[self.rank::self.size]

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sums over all processes."""
        if not self.distributed:
            return values
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def share_buffers(self, module: nn.Module) -> None:
        """Rank 0's buffers everywhere. Trained BatchNorm layers update their running statistics from each process's
        own shard, so after an epoch the processes would validate (and stop) on slightly different models."""
        if self.distributed:
            for buffer in module.buffers():
                dist.broadcast(buffer, 0)

    def own_seed(self) -> None:
        """From here on, this process's random draws (augmentation, dropout) are its own: seeded from (the current
        seed, rank), apart from every other process's and epoch's stream. Nothing changes for a single process."""
        if self.distributed:
            torch.manual_seed(int(np.random.SeedSequence([torch.initial_seed(), self.rank]).generate_state(1)[0]))


SINGLE = World()


def join(device: torch.device) -> tuple[World, torch.device]:
    """Join torchrun's process group when launched by it (WORLD_SIZE > 1); otherwise one process on ``device``."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SINGLE, device
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():  # rank 0 evaluates and writes the run while the others wait: a generous timeout
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=datetime.timedelta(hours=6))
    return world, device


def leave(world: World) -> None:
    """Wait for every process (rank 0 arrives when the run is written), then leave the group."""
    if world.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class _Forward(nn.Module):
    """A module whose forward is ``fn``: DDP synchronises gradients of what runs through a module's forward."""

    def __init__(self, owner: nn.Module, fn):
        super().__init__()
        self.owner, self.fn = owner, fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def wrap(forward, owner: nn.Module, world: World, device: torch.device):
    """The training forward, through DistributedDataParallel when there is more than one process. ``owner`` is the
    module whose trainable parameters ``forward`` uses."""
    if not world.distributed:
        return forward
    module = forward if isinstance(forward, nn.Module) else _Forward(owner, forward)
    return nn.parallel.DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
