"""The frozen-feature cache: for partial and transfer runs the frozen part's outputs are computed once (the eval view
of every painting, a few seeded augmented views of the training ones) and training runs on them; and the last pass
that gives every painting's features to the run folder, from the cache when there is one.

Every pass of a frozen network over a collection (the cache, the run's last pass, cross-validation's features,
`artlab embed`) writes its outputs into one preallocated tensor, batch by batch (``fill``). Collecting batches in a
list and concatenating them holds every output twice at the end (the list and the result): at the study's size (8,000
eval views and 4 x 5,600 augmented views of DenseNet121's 512 x 7 x 7 transition3 output, 100 KB each in float32)
that is 5.3 GB at the peak for a 3 GB cache. Filling a tensor in place holds them once, and the augmented views, which
only feed training, are kept in bfloat16: half the memory (1.93 GB in all at that size);
benchmarks/bench_frozen_levers.py measures what it does to an epoch's speed and to the logits. bfloat16 rather than
float16 for its float32 range: a randomly initialised EfficientNet-Lite0's stem outputs are ~1e-6, below float16's
normal range, where it keeps few digits (found by tests/test_loaders.py); bfloat16 keeps 3 significant digits at any
scale, finer than the augmentation's noise. The eval views stay float32: the kNN's features and the saved model's
predictions come from them and must equal those of a run without the cache.

The frozen part runs on channels_last (NHWC) tensors: 1.25x DenseNet121's stem and 1.37x EfficientNet-Lite0's on
this 2-core CPU (batch 32, interleaved medians, a loaded machine; bench_frozen_levers.py measures it), the same
features to float rounding. inference_mode was no faster than no_grad (0.9x) and its tensors cannot feed training.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from artlab.model.backbones import BackboneSpec
from artlab.model.classifier import Classifier, Embedder, frozen_prefix, shared_features
from artlab.model.transforms import eval_transform, train_transform
from artlab.model.views import DEFAULT_VIEWS, view_transform
from artlab.progress import Progress
from artlab.train.config import TrainConfig
from artlab.train.data import ImageDataset, Task, in_order


@torch.no_grad()
def batched(fn, x: torch.Tensor, device, batch_size: int = 256) -> torch.Tensor:
    return torch.cat([fn(x[i:i + batch_size].to(device).float()).float().cpu() for i in range(0, len(x), batch_size)])


VIEW_DTYPE = torch.bfloat16


def fill(fn: Callable[[torch.Tensor], torch.Tensor | tuple[torch.Tensor, ...]], batches: Iterable, n: int, device,
         progress: Progress, name: str, dtype: torch.dtype = torch.float32, out: torch.Tensor | None = None,
         channels_last: bool = False) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """``fn`` over ``n`` images in batches under no_grad, written in order into ``out`` (allocated on the CPU from the
    first batch's shape, ``dtype``, when None). Returns ``out``, or a tuple of tensors when ``fn`` returns a tuple
    (``out`` must then be None). ``channels_last``: feed ``fn`` NHWC tensors (its modules should be converted with
    ``channels_last_modules``)."""
    progress.stage(name, n)
    done, outs, tupled = 0, None, False
    with torch.no_grad():
        for x in batches:
            x = x[0] if isinstance(x, (list, tuple)) else x
            x = x.to(device)
            y = fn(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
            tupled = isinstance(y, tuple)
            if tupled and out is not None:
                raise ValueError(f"{name}: out= takes one output, the function gives {len(y)}")
            ys = y if tupled else (y,)
            if outs is None:
                outs = (out,) if out is not None else tuple(torch.empty((n, *t.shape[1:]), dtype=dtype) for t in ys)
            for o, t in zip(outs, ys):
                o[done:done + len(t)].copy_(t)
            done += len(ys[0])
            progress.advance(len(ys[0]))
    progress.done()
    if done != n:
        raise RuntimeError(f"{name}: {done} outputs for {n} images")
    if outs is None:  # no images: ``out`` as it was given
        return out
    return outs if tupled else outs[0]


def channels_last_modules(*modules: torch.nn.Module) -> None:
    for m in modules:
        m.to(memory_format=torch.channels_last)


def nbytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


class FrozenCache:
    """The frozen part's outputs: ``all`` (eval view of every row of the task, float32), ``views``
    [V, n_train, ...] (bfloat16, ``VIEW_DTYPE``).

    With test-time views (``cfg.views``, transfer only), ``all`` is the mean of the views' features and the
    training paintings train on each view as well as on the ``n_views`` augmented crops (artlab.train.selection
    measures the same recipe)."""

    def __init__(self, fn, task: Task, spec: BackboneSpec, cfg: TrainConfig, device, progress: Progress,
                 n_views: int):
        df = task.df
        train = df[df["split"] == "train"]
        test_views = []  # each test-time view's features of the training paintings, trained on like crops
        if tuple(cfg.views) == DEFAULT_VIEWS:
            ds = ImageDataset(task.root, df["path"], eval_transform(spec), min_side=spec.resize_size)
            self.all = fill(fn, in_order(ds, cfg.batch_size, cfg.workers), len(ds), device, progress,
                            "frozen features", channels_last=True)
        else:
            per_view = []
            for name in cfg.views:
                ds = ImageDataset(task.root, df["path"], view_transform(spec, name), min_side=spec.resize_size)
                per_view.append(fill(fn, in_order(ds, cfg.batch_size, cfg.workers), len(ds), device, progress,
                                     f"frozen features, {name}", channels_last=True))
            self.all = torch.stack(per_view).mean(0)
            is_train = torch.tensor((df["split"] == "train").to_numpy())
            test_views = [f[is_train] for f in per_view]
        first = len(test_views)
        self.views = torch.empty((first + n_views, len(train), *self.all.shape[1:]), dtype=VIEW_DTYPE)
        for v, features in enumerate(test_views):
            self.views[v] = features
        for v in range(n_views):  # seeded per painting: the same augmented views after a restart
            aug = ImageDataset(task.root, train["path"], train_transform(spec), min_side=spec.resize_size,
                               seed=cfg.seed * 100 + v)
            fill(fn, in_order(aug, cfg.batch_size, cfg.workers), len(aug), device, progress, f"augmented view {v + 1}",
                 out=self.views[first + v], channels_last=True)

    @property
    def nbytes(self) -> int:
        return nbytes(self.all, self.views)


def final_features(model: Classifier, embedder: Embedder, task: Task, spec: BackboneSpec, cfg: TrainConfig,
                   frozen: FrozenCache | None, device, progress: Progress) -> tuple[torch.Tensor, torch.Tensor]:
    """Every labelled painting's pooled features through the trained classifier, and the frozen pretrained features
    the kNN uses. The part the two share (the frozen stem for partial, everything but the head for transfer) runs
    once: from the cache when there is one, else in one pass over the images."""
    if frozen is not None and frozen_prefix(cfg.method) == "stem":
        return (batched(lambda s: model.pool(model.block(s)), frozen.all, device),
                batched(embedder.from_stem, frozen.all, device))
    if frozen is not None:
        return frozen.all, frozen.all

    def both(x):
        return shared_features(model, embedder, cfg.method, x)

    ds = ImageDataset(task.root, task.df["path"], eval_transform(spec), min_side=spec.resize_size)
    return fill(both, in_order(ds, cfg.batch_size, cfg.workers), len(ds), device, progress, "embeddings")
