"""From a collection to a task: labelled rows, chosen classes, a split, and image datasets for torch."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from artlab.collection.contract import labelled
from artlab.collection.curation import effective
from artlab.collection.duplicates import PHASH_BITS, find_copies, leakage
from artlab.train.config import TrainConfig
from artlab.errors import CollectionError
from artlab.images import load_image
from artlab.train.prefetch import prefetch_batches
from artlab.train.splits import SPLITS, split_groups, stratified_split


@dataclasses.dataclass
class Task:
    root: Path
    label: str
    classes: list[str]
    df: pd.DataFrame  # labelled rows with columns y (class index) and split
    dropped_classes: dict[str, int]
    curation: dict = dataclasses.field(default_factory=dict)  # what of curation.csv was applied (Curated.record)
    leakage: dict = dataclasses.field(default_factory=dict)  # near-copy groups across splits (duplicates.leakage)

    def rows(self, split: str) -> pd.DataFrame:
        return self.df[self.df["split"] == split]

    def split_sizes(self) -> dict[str, int]:
        return {s: int((self.df["split"] == s).sum()) for s in SPLITS}


def make_task(cfg: TrainConfig) -> Task:
    """Read the collection as curated, keep the classes with enough images, and split them (seeded, stratified)."""
    root = Path(cfg.collection)
    curated = effective(root)
    df = labelled(curated.manifest, cfg.label).reset_index(drop=True)
    counts = df[cfg.label].value_counts()
    wanted = list(cfg.classes) if cfg.classes else sorted(counts.index)
    unknown = [c for c in wanted if c not in counts.index]
    if unknown:
        raise CollectionError(f"class(es) not in the collection: {', '.join(unknown)} "
                              f"(it has: {', '.join(sorted(counts.index))})")
    classes = sorted(c for c in wanted if counts[c] >= cfg.min_per_class)
    dropped = {c: int(counts[c]) for c in wanted if counts[c] < cfg.min_per_class}
    if len(classes) < 2:
        raise CollectionError(f"fewer than two '{cfg.label}' classes have at least {cfg.min_per_class} images "
                              f"(counts: {dict(counts)})")
    df = df[df[cfg.label].isin(classes)]
    if cfg.max_per_class:
        df = df.sample(frac=1.0, random_state=cfg.seed).groupby(cfg.label).head(cfg.max_per_class)
    df = df.sort_values("id").reset_index(drop=True)
    df["y"] = df[cfg.label].map({c: i for i, c in enumerate(classes)}).astype(int)
    t0 = time.perf_counter()
    pairs, copies = find_copies(root, df["id"], df["path"])
    hashing = time.perf_counter() - t0
    groups = split_groups(df, cfg.group_by_artist, copies if cfg.group_duplicates else {})
    df["split"] = stratified_split(df[cfg.label], cfg.split, cfg.seed, groups=groups)
    leaks = leakage(pd.Series(df["split"].to_numpy(), index=df["id"].astype(str)), copies,
                    f"sha256 + pHash within {PHASH_BITS} bits", hashing)
    return Task(root=root, label=cfg.label, classes=classes, df=df, dropped_classes=dropped,
                curation=curated.record(), leakage={**leaks, "grouped": cfg.group_duplicates})


class ImageDataset(Dataset):
    """Images of a collection through a transform; JPEGs decode at reduced scale when they are much larger.

    With ``seed``, item i's random transform draws from its own generator seeded with (seed, i): the same augmented
    view of a painting whatever order or thread loads it (the frozen-feature cache relies on that after a restart).
    """

    def __init__(self, root: Path, paths: list[str], transform, min_side: int | None = None,
                 labels: list[int] | None = None, seed: int | None = None):
        self.root, self.paths, self.transform, self.min_side = Path(root), list(paths), transform, min_side
        self.labels = None if labels is None else list(labels)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return self.get(i, self.seed)

    def get(self, i: int, seed: int | None):
        """Item i with its random transform seeded by (seed, i); from torch's global generator when None."""
        image = load_image(self.root / self.paths[i], min_side=self.min_side)
        if seed is None:
            x = self.transform(image)
        else:
            x = self.transform(image, generator=torch.Generator().manual_seed((seed * 1_000_003 + i) % 2**63))
        return x if self.labels is None else (x, self.labels[i])


def loader(dataset: Dataset, batch_size: int, workers: int = 0, shuffle: bool = False) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                      persistent_workers=False, pin_memory=False)


def in_order(dataset: Dataset, batch_size: int, workers: int = 0) -> Iterator:
    """The dataset's batches in order, for a deterministic transform (an eval transform, or a random one seeded per
    item: ``ImageDataset(seed=...)``).

    With ``workers`` > 0, DataLoader worker processes; otherwise background threads (artlab.train.prefetch) decode the next
    batches while the model computes this one: no process start-up, 1.05-1.15x the images per second of loading in
    the main thread when the forward pass keeps both cores of a 2-core machine busy; with a core to spare, decoding
    hides behind the forward pass (benchmarks/bench_embed_throughput.py: 0.95-0.99 of the forward pass alone).
    """
    if workers > 0:
        return iter(loader(dataset, batch_size, workers))
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # torchrun's processes on this machine share its CPUs
    return prefetch_batches(dataset, batch_size, threads=max(1, min(8, usable_cpus() // processes)))


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's total)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights, mean 1 (the loss then treats a rare culture like a common one)."""
    counts = np.bincount(y, minlength=n_classes).astype(float)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0.0)
    return torch.tensor(w / w[counts > 0].mean(), dtype=torch.float32)
