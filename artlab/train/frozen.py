"""The frozen-feature cache: for partial and transfer runs the frozen part's outputs are computed once (the eval view
of every painting, a few seeded augmented views of the training ones) and training runs on them; and the last pass
that gives every painting's features to the run folder, from the cache when there is one."""

from __future__ import annotations

import torch

from artlab.model.backbones import BackboneSpec
from artlab.model.classifier import Classifier, Embedder, frozen_prefix, shared_features
from artlab.model.transforms import eval_transform, train_transform
from artlab.model.views import DEFAULT_VIEWS, view_transform
from artlab.progress import Progress
from artlab.train.config import TrainConfig
from artlab.train.data import ImageDataset, Task, in_order


@torch.no_grad()
def compute(fn, batches, progress: Progress, name: str, total: int, device):
    """Run ``fn`` over image batches under no_grad; outputs concatenated on the CPU (a tuple of them when ``fn``
    returns a tuple)."""
    progress.stage(name, total)
    outs = []
    for x in batches:
        x = x[0] if isinstance(x, (list, tuple)) else x
        y = fn(x.to(device))
        outs.append(tuple(t.float().cpu() for t in y) if isinstance(y, tuple) else y.float().cpu())
        progress.advance(len(x))
    progress.done()
    if outs and isinstance(outs[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*outs))
    return torch.cat(outs)


@torch.no_grad()
def batched(fn, x: torch.Tensor, device, batch_size: int = 256) -> torch.Tensor:
    return torch.cat([fn(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)])


class FrozenCache:
    """The frozen part's outputs: ``all`` (eval view of every row of the task), ``views`` [V, n_train, ...].

    With test-time views (``cfg.views``, transfer only), ``all`` is the mean of the views' features and the
    training paintings train on each view as well as on ``cfg.cache_views`` augmented crops (artlab.train.selection
    measures the same recipe)."""

    def __init__(self, fn, task: Task, spec: BackboneSpec, cfg: TrainConfig, device, progress: Progress):
        df = task.df
        train = df[df["split"] == "train"]
        views = []
        if tuple(cfg.views) == DEFAULT_VIEWS:
            ds = ImageDataset(task.root, df["path"], eval_transform(spec), min_side=spec.resize_size)
            self.all = compute(fn, in_order(ds, cfg.batch_size, cfg.workers), progress, "frozen features", len(ds),
                               device)
        else:
            per_view = []
            for name in cfg.views:
                ds = ImageDataset(task.root, df["path"], view_transform(spec, name), min_side=spec.resize_size)
                per_view.append(compute(fn, in_order(ds, cfg.batch_size, cfg.workers), progress,
                                        f"frozen features, {name}", len(ds), device))
            self.all = torch.stack(per_view).mean(0)
            is_train = torch.tensor((df["split"] == "train").to_numpy())
            views += [f[is_train] for f in per_view]
        for v in range(cfg.cache_views):  # seeded per painting: the same augmented views after a restart
            aug = ImageDataset(task.root, train["path"], train_transform(spec), min_side=spec.resize_size,
                               seed=cfg.seed * 100 + v)
            views.append(compute(fn, in_order(aug, cfg.batch_size, cfg.workers), progress, f"augmented view {v + 1}",
                                 len(aug), device))
        self.views = torch.stack(views)


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
    return compute(both, in_order(ds, cfg.batch_size, cfg.workers), progress, "embeddings", len(ds), device)
