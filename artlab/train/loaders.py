"""Training batches of images (finetune and scratch runs, or partial/transfer without the cache): one DataLoader for
the whole run, as torchvision's reference training has it, instead of one per epoch.

With worker processes the loader keeps them between epochs (``persistent_workers``: no start-up each epoch, which on
a GPU costs seconds of idle device per epoch), each keeps ``PREFETCH`` batches in flight, and on CUDA batches go into
pinned memory so that the copy to the device overlaps the step. The batch sampler draws each epoch's shuffled batches
and a seed for the epoch's augmentations from torch's generator, which ``artlab.train.loop.fit`` seeds per epoch: every
painting's augmentation then depends on (epoch, painting) only, not on which worker loads it or in what order, so a
resumed run replays its epochs and persistent workers (whose own generators are seeded once) change nothing.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

PREFETCH = 4  # batches in flight per worker (DataLoader's default is 2)


class EpochBatches(Sampler):
    """The batches of the current epoch as (augmentation seed, index) keys; ``next_epoch`` draws them.

    Drawing happens in ``next_epoch``, not in ``__iter__``: DataLoader calls ``iter`` on its sampler more than once
    when it starts worker processes, and a draw there would depend on how many workers there are."""

    def __init__(self, draw: Callable[[], list[list[int]]], n_batches: int, after_draw: Callable[[], None]):
        self.draw, self.n_batches, self.after_draw = draw, n_batches, after_draw
        self.keys: list[list[tuple[int, int]]] = []

    def next_epoch(self) -> None:
        batches = self.draw()
        seed = int(torch.randint(2**62, ()))
        self.after_draw()  # e.g. World.own_seed: what follows (dropout) draws per process
        self.keys = [[(seed, i) for i in b] for b in batches]

    def __iter__(self):
        return iter(self.keys)

    def __len__(self) -> int:
        return self.n_batches


class Seeded(Dataset):
    """``dataset.get(i, seed)`` under (seed, i) keys: the item's random transform seeded per epoch and painting."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        seed, i = key
        return self.dataset.get(i, seed)


def loader_options(device: torch.device, workers: int) -> dict:
    """DataLoader settings for a run: persistent workers and prefetching with workers, pinned memory on CUDA."""
    options = {"num_workers": workers, "pin_memory": device.type == "cuda"}
    if workers > 0:
        options.update(persistent_workers=True, prefetch_factor=PREFETCH)
    return options


def run_loader(dataset, draw: Callable[[], list[list[int]]], n_batches: int, device: torch.device, workers: int,
               after_draw: Callable[[], None] = lambda: None) -> Callable[[], Iterator]:
    """One DataLoader for every epoch of a run. Returns what ``artlab.train.loop.fit`` calls each epoch: the next
    epoch's shuffled batches, drawn from torch's generator (the loader's own seeds for its workers come from a
    generator of its own, so the number of workers does not change what the run draws)."""
    sampler = EpochBatches(draw, n_batches, after_draw)
    dl = DataLoader(Seeded(dataset), batch_sampler=sampler, generator=torch.Generator().manual_seed(0),
                    **loader_options(device, workers))

    def batches() -> Iterator:
        sampler.next_epoch()
        return iter(dl)
    return batches
