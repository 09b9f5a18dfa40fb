"""Batches of a dataset, loaded by background threads while the model computes the batch before.

Decoding a JPEG and resizing it (Pillow) and converting it to a tensor (torch) release the GIL, and so does the
model's forward pass, so a couple of threads overlap reading the next batch with computing this one, without the
start-up cost and memory of DataLoader worker processes.

Items are fetched in order and yielded in order. A random transform that draws from torch's global generator gets
its draws in whatever order the threads run; give each item its own generator (``ImageDataset(seed=...)``) to keep
augmented views reproducible.
"""

from __future__ import annotations

import collections
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterator

from torch.utils.data import Dataset, default_collate


def prefetch_batches(dataset: Dataset, batch_size: int, threads: int = 2, depth: int = 2) -> Iterator:
    """Yield ``dataset``'s items in order, collated into batches of ``batch_size`` (the last may be smaller),
    with up to ``depth`` batches loading in ``threads`` background threads.

    An item's exception is raised when its batch is reached. Stopping early (``break``, ``close()``) cancels the
    items not yet started and waits for those in progress.
    """
    if batch_size < 1 or threads < 1 or depth < 1:
        raise ValueError("batch_size, threads and depth must be at least 1")
    starts = iter(range(0, len(dataset), batch_size))
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="artlab-prefetch")
    pending: collections.deque[list[Future]] = collections.deque()

    def submit_next() -> None:
        start = next(starts, None)
        if start is not None:
            stop = min(start + batch_size, len(dataset))
            pending.append([pool.submit(dataset.__getitem__, i) for i in range(start, stop)])

    try:
        for _ in range(depth):
            submit_next()
        while pending:
            batch = pending.popleft()
            submit_next()  # keep ``depth`` batches in flight while this one is collated and used
            yield default_collate([f.result() for f in batch])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
