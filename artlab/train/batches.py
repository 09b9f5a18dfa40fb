"""Training and validation batches, as the loop takes them (a function returning a fresh iterator per epoch): from
the frozen-feature cache (partial, transfer) or from the images (finetune, scratch); under torchrun each process
gets its shard of every global batch."""

from __future__ import annotations

import numpy as np
import torch

from artlab.model.backbones import BackboneSpec
from artlab.model.transforms import eval_transform, train_transform
from artlab.train.config import TrainConfig
from artlab.train.data import ImageDataset, Task, in_order
from artlab.train.distributed import SINGLE, World
from artlab.train.frozen import FrozenCache
from artlab.train.loaders import run_loader


def shuffled(n: int, batch_size: int, world: World) -> list[torch.Tensor]:
    """This process's part of each shuffled global batch (the whole batch when alone). The permutation comes from
    torch's generator, seeded per epoch by ``fit``: the same in every process and after a resume. A last batch with
    fewer paintings than processes is dropped under torchrun (a process with nothing would stall the others)."""
    order = torch.randperm(n)
    batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    return [world.shard(b) for b in batches if len(b) >= world.size]


def cached_batches(frozen: FrozenCache, rows: np.ndarray, y: torch.Tensor, batch_size: int, train: bool,
                    world: World = SINGLE):
    def batches():
        if train:
            n = frozen.views.shape[1]
            shards = shuffled(n, batch_size, world)
            view = torch.randint(frozen.views.shape[0], (n,))  # each image draws one of its augmented views
            world.own_seed()
            for idx in shards:
                yield frozen.views[view[idx], idx], y[idx]
        else:
            for i in range(0, len(rows), batch_size):
                yield frozen.all[rows[i:i + batch_size]], y[i:i + batch_size]
    return batches


def image_batches(task: Task, split: str, spec: BackboneSpec, cfg: TrainConfig, train: bool,
                  world: World = SINGLE, device: torch.device = torch.device("cpu")):
    """Batches of images; for training, one DataLoader for the whole run (artlab.train.loaders) on ``device``'s
    terms (pinned memory on CUDA)."""
    rows = task.rows(split)
    tf = train_transform(spec) if train else eval_transform(spec)
    ds = ImageDataset(task.root, rows["path"], tf, min_side=spec.resize_size, labels=rows["y"].tolist())
    if not train:
        return lambda: in_order(ds, cfg.batch_size, cfg.workers)

    def draw():
        return [b.tolist() for b in shuffled(len(ds), cfg.batch_size, world)]
    n_batches = len(range(0, len(ds), cfg.batch_size))
    return run_loader(ds, draw, n_batches, device, cfg.workers, after_draw=world.own_seed)
