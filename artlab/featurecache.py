"""The frozen part's outputs written into one preallocated tensor, batch by batch.

Collecting batches in a list and concatenating them holds every output twice at the end (the list and the result):
at the GenRe study's size (8,000 eval views and 4 x 5,600 augmented views of DenseNet121's 512 x 7 x 7 transition3
output, 100 KB each in float32) that is 5.3 GB at the peak for a 3 GB cache. Filling a tensor in place holds them
once, and the augmented views, which only feed training, are kept in bfloat16: half the memory (1.93 GB in all at
that size); benchmarks/bench_frozen_levers.py measures what it does to an epoch's speed and to the logits.
bfloat16 rather than float16 for its float32 range: a randomly initialised EfficientNet-Lite0's stem outputs are
~1e-6, below float16's normal range, where it keeps few digits (found by tests/test_loaders.py); bfloat16 keeps 3
significant digits at any scale, finer than the augmentation's noise. The eval views stay float32: the kNN's features
and the saved model's predictions come from them and must equal those of a run without the cache.

The frozen part runs on channels_last (NHWC) tensors: 1.25x DenseNet121's stem and 1.37x EfficientNet-Lite0's on
this 2-core CPU (batch 32, interleaved medians, a loaded machine; bench_frozen_levers.py measures it), the same
features to float rounding. inference_mode was no faster than no_grad (0.9x) and its tensors cannot feed training.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from .progress import Progress

VIEW_DTYPE = torch.bfloat16


def fill(fn: Callable[[torch.Tensor], torch.Tensor], batches: Iterable, n: int, device, progress: Progress,
         name: str, dtype: torch.dtype = torch.float32, out: torch.Tensor | None = None,
         channels_last: bool = False) -> torch.Tensor:
    """``fn`` over ``n`` images in batches, written in order into ``out`` (allocated from the first batch's shape,
    ``dtype``, when None). Returns ``out``. ``channels_last``: feed ``fn`` NHWC tensors (its modules should be
    converted with ``channels_last_modules``)."""
    progress.stage(name, n)
    done = 0
    with torch.no_grad():
        for x in batches:
            x = x[0] if isinstance(x, (list, tuple)) else x
            x = x.to(device)
            y = fn(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
            if out is None:
                out = torch.empty((n, *y.shape[1:]), dtype=dtype)
            out[done:done + len(y)].copy_(y)
            done += len(y)
            progress.advance(len(y))
    progress.done()
    if done != n:
        raise RuntimeError(f"{name}: {done} outputs for {n} images")
    return out


def channels_last_modules(*modules: torch.nn.Module) -> None:
    for m in modules:
        m.to(memory_format=torch.channels_last)


def nbytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)
