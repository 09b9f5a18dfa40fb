"""Partial fine-tuning with the frozen part's outputs cached, against recomputing them every epoch.

Method ``partial`` (stem frozen, last block + head trained), the demo collection's genre task, for two backbones:
EfficientNet-Lite0 (the embedded default, ImageNet weights: speed-up and validation accuracy) and DenseNet121 (the
genre study's backbone, judged; random weights when its ImageNet weights are not on the machine: then the speed-up
only, which does not depend on the weights). Lite0's trained last block is about half of its compute, which caps
what caching the rest can save; DenseNet121's denseblock4 is a much smaller share.

Both variants are the runner's own code paths (artlab.train.batches, artlab.train.loop.run_epoch)
and train the same model from the same initial weights with the same optimiser; their epochs are interleaved (the
order alternates every epoch) so that load on a shared machine hits both alike. The cached variant pays for its
cache: the time to compute it (every painting's eval view, as the runner does, plus ``--views`` augmented views of
each training painting) is counted in its total, and so is, for both, what the runner does after training (every
painting's features through both models: from the cache, or one more pass over the images).

    python benchmarks/bench_training_cache.py [COLLECTION] [--backbones efficientnet_lite0,densenet121]
                                             [--epochs 20] [--views 4]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import common

common.steady_process()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from artlab.model.backbones import get_backbone  # noqa: E402
from artlab.train.config import CPU_CACHE_VIEWS, TrainConfig  # noqa: E402
from artlab.train.data import make_task  # noqa: E402
from artlab.model.classifier import Classifier, Head, apply_method, train_mode  # noqa: E402
from artlab.progress import Progress  # noqa: E402
from artlab.model.classifier import Embedder  # noqa: E402
from artlab.train.batches import cached_batches, image_batches  # noqa: E402
from artlab.train.frozen import FrozenCache, final_features  # noqa: E402
from artlab.train.loop import make_optimizer, run_epoch  # noqa: E402

TARGET_SPEEDUP = 3.0
STUDY_BACKBONE = "densenet121"  # the genre study's partial fine-tuning, which the cache is for: its speed-up is judged


class Variant:
    """One way of training: a model, its optimiser, its batches, and what it measured."""

    def __init__(self, name: str, cfg: TrainConfig, spec, n_classes: int, pretrained: bool):
        self.name, self.cfg = name, cfg
        torch.manual_seed(cfg.seed)  # both variants start from the same weights
        parts, _ = spec.parts(pretrained=pretrained)
        self.model = apply_method(Classifier(parts, Head(cfg.head, spec.feature_dim, n_classes)), cfg.method).eval()
        self.opt = make_optimizer([p for p in self.model.parameters() if p.requires_grad], cfg)
        self.cache_seconds, self.final_seconds, self.epoch_seconds, self.val = 0.0, 0.0, [], []
        self.frozen = None

    def epoch(self, epoch: int, criterion: nn.Module) -> None:
        def work():
            torch.manual_seed(self.cfg.seed * 1000 + epoch)
            train_mode(self.model, self.cfg.method)
            run_epoch(self.forward, self.train_batches, criterion, torch.device("cpu"), self.opt)
            self.model.eval()
            self.val.append(run_epoch(self.forward, self.val_batches, criterion, torch.device("cpu")))
        self.epoch_seconds.append(common.seconds(work))

    def finish(self, embedder: Embedder, task, spec) -> None:
        """What the runner does after training: every painting's features through both models (from the cache when
        there is one, a pass over the images when not)."""
        self.final_seconds = common.seconds(lambda: final_features(
            self.model, embedder, task, spec, self.cfg, self.frozen, torch.device("cpu"), Progress()))

    def images_per_second(self, n_train: int) -> float:
        return len(self.epoch_seconds) * n_train / (self.cache_seconds + sum(self.epoch_seconds) + self.final_seconds)

    def best_val(self) -> tuple[int, float]:
        """(epoch, validation accuracy) of the lowest validation loss: the weights a run would keep."""
        losses = [loss for loss, _ in self.val]
        best = int(np.argmin(losses))
        return best + 1, self.val[best][1]


def setup(args, backbone: str, pretrained: bool) -> tuple[TrainConfig, list[Variant], object]:
    collection = Path(args.collection) if args.collection else common.demo_collection()
    cfg = TrainConfig(collection=str(collection), label="genre", backbone=backbone, method="partial",
                      epochs=args.epochs, patience=args.epochs, cache_views=args.views, device="cpu", seed=0)
    task = make_task(cfg)
    spec = get_backbone(cfg.backbone)
    cached, uncached = (Variant(n, cfg, spec, len(task.classes), pretrained) for n in ("cached", "uncached"))

    df = task.df
    idx = {s: np.flatnonzero(df["split"].to_numpy() == s) for s in ("train", "val")}
    y = torch.tensor(df["y"].to_numpy())
    uncached.forward = uncached.model
    uncached.train_batches = image_batches(task, "train", spec, cfg, True)
    uncached.val_batches = image_batches(task, "val", spec, cfg, False)
    _warm_up(cached.model, uncached.val_batches)

    def build_cache():
        cached.frozen = FrozenCache(cached.model.stem, task, spec, cfg, torch.device("cpu"), Progress(),
                                    cfg.views_on("cpu"))
    cached.cache_seconds = common.seconds(build_cache)
    cached.forward = cached.model.from_stem
    cached.train_batches = cached_batches(cached.frozen, idx["train"], y[idx["train"]], cfg.batch_size, True)
    cached.val_batches = cached_batches(cached.frozen, idx["val"], y[idx["val"]], cfg.batch_size, False)
    return cfg, [cached, uncached], task


@torch.no_grad()
def _warm_up(model: Classifier, batches) -> None:
    """One untimed pass so that thread pools and oneDNN kernels are ready before either variant is timed."""
    for x, _ in batches():
        model(x)
        break


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("collection", nargs="?", default=None, help="a collection folder (default: the demo, built now)")
    p.add_argument("--backbones", default="efficientnet_lite0,densenet121")
    p.add_argument("--epochs", type=int, default=20, help="the study's maximum (no early stopping here)")
    p.add_argument("--views", type=int, default=CPU_CACHE_VIEWS,
                   help="augmented views cached per training image (default: artlab train's on a CPU)")
    args = p.parse_args()

    for backbone in args.backbones.split(","):
        pretrained = common.weights_at_hand(get_backbone(backbone))
        cfg, variants, task = setup(args, backbone, pretrained)
        cached, uncached = variants
        n_train, n_val = task.split_sizes()["train"], task.split_sizes()["val"]
        weights = "ImageNet weights" if pretrained else "random weights, timing only"
        common.header(f"training cache: {backbone} ({weights}) partial, genre, {n_train} train / {n_val} val "
                      f"paintings, {cfg.epochs} epochs, {cfg.cache_views} cached views, batch {cfg.batch_size}, "
                      f"{common.torch_threads()} threads; cached (cache time counted) vs recomputed every epoch")
        criterion = nn.CrossEntropyLoss()
        for epoch in range(1, cfg.epochs + 1):
            for v in (variants if epoch % 2 else variants[::-1]):
                v.epoch(epoch, criterion)
        embedder = Embedder(get_backbone(backbone).parts(pretrained=pretrained)[0]).eval()
        for v in variants:
            v.finish(embedder, task, get_backbone(backbone))
        report(backbone, cached, uncached, n_train, n_val, judged=backbone == STUDY_BACKBONE, accuracy=pretrained)
    return common.finish()


def report(backbone: str, cached: Variant, uncached: Variant, n_train: int, n_val: int, judged: bool,
           accuracy: bool) -> None:
    med_c, med_u = common.median(cached.epoch_seconds), common.median(uncached.epoch_seconds)
    common.note(f"cache (eval view of all {len(cached.frozen.all)} paintings + views of the training ones) built in "
                f"{cached.cache_seconds:.1f}s; epoch (train + val) cached "
                f"{common.spread(cached.epoch_seconds)}, uncached {common.spread(uncached.epoch_seconds)}; "
                f"every painting's features after training: cached {cached.final_seconds:.1f}s, uncached "
                f"{uncached.final_seconds:.1f}s")
    ips_c, ips_u = cached.images_per_second(n_train), uncached.images_per_second(n_train)
    speedup = ips_c / ips_u
    common.result(f"{backbone}: train images/s, cached (incl. cache time)", f"{ips_c:.1f}")
    common.result(f"{backbone}: train images/s, recomputed every epoch", f"{ips_u:.1f}")
    if judged:
        common.result(f"{backbone}: speed-up, cached vs recomputed", f"{speedup:.2f}x", f">= {TARGET_SPEEDUP:.0f}x",
                      speedup >= TARGET_SPEEDUP)
    else:
        common.result(f"{backbone}: speed-up, cached vs recomputed", f"{speedup:.2f}x")
    common.result(f"{backbone}: speed-up per epoch, cache time excluded", f"{med_u / med_c:.2f}x")
    gain = med_u - med_c
    common.result(f"{backbone}: break-even epochs (cache / per-epoch gain)",
                  f"{cached.cache_seconds / gain:.1f}" if gain > 0 else "never")
    if not accuracy:
        return
    (ep_c, acc_c), (ep_u, acc_u) = cached.best_val(), uncached.best_val()
    # Two accuracies on n_val paintings each differ by chance alone with a standard error of about
    # sqrt(2 p (1 - p) / n_val); within two of those the variants are indistinguishable here.
    p = (acc_c + acc_u) / 2
    noise = 2 * math.sqrt(2 * max(p * (1 - p), 1 / n_val) / n_val)
    common.result(f"{backbone}: val accuracy cached (best epoch {ep_c})", f"{acc_c:.3f}")
    common.result(f"{backbone}: val accuracy recomputed (best epoch {ep_u})", f"{acc_u:.3f}")
    common.result(f"{backbone}: val accuracy difference (n={n_val})", f"{acc_c - acc_u:+.3f}",
                  f"|d| <= {noise:.2f} (2 SE)", abs(acc_c - acc_u) <= noise)
    last = f"{cached.val[-1][1]:.3f} / {uncached.val[-1][1]:.3f}"
    common.result(f"{backbone}: val accuracy, last epoch, cached / recomputed", last)


if __name__ == "__main__":
    sys.exit(main())
