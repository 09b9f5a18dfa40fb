"""``artlab train``: from a collection to a complete run folder (DESIGN.md contract).

1. the task: labelled rows, classes, a seeded split;
2. the frozen part's outputs, computed once (eval view of every image, a few augmented views of the training images);
3. the fine-tuned classifier, trained on those (or on images, for finetune/scratch);
4. the kNN baseline on the frozen pretrained features, k chosen on validation accuracy;
5. metrics on the test split for both, predictions, embeddings, geometry, UMAP, the card, written atomically.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from . import __version__
from .backbones import BackboneSpec, get_backbone
from .config import TrainConfig
from .data import ImageDataset, Task, class_weights, in_order, make_task
from .distributed import SINGLE, World, join, leave, wrap
from .geometry import class_geometry, umap_coordinates
from .images import encode_jpeg, fit_within, load_image
from .io import atomic_save, atomic_savez, atomic_write_bytes, atomic_write_json
from .knn import KNNBaseline
from .metrics import classification_report
from .models import Classifier, Embedder, Head, apply_method, frozen_prefix, trained_state
from .progress import Progress
from .safety import OutputError, artlab_kind, check_output
from .runs import (CARD, EMBEDDINGS, GEOMETRY, HISTORY, KNN, MODEL, PAINTINGS, PREDICTIONS, THUMB_SIDE, THUMBS, UMAP,
                   thumb_name)
from .training import fit
from .transforms import eval_transform, train_transform

RESUME = "resume.pt"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


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


def _workdir(out: Path, cfg: TrainConfig, create: bool = True) -> Path:
    """A resumable staging folder beside ``out``: kept when its config matches, started afresh otherwise (only
    its path when ``create`` is false: the processes other than rank 0 under torchrun)."""
    work = out.parent / f".{out.name}.partial"
    if not create:
        return work
    config_file = work / "config.json"
    if work.exists():
        if not config_file.is_file() and not (work.is_dir() and next(work.iterdir(), None) is None):
            raise OutputError(f"{work} is in the way of the staging folder and artlab did not write it: move it")
        same = config_file.is_file() and json.loads(config_file.read_text()) == cfg.to_dict()
        if not same:
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_json(config_file, cfg.to_dict())
    return work


def _publish(work: Path, out: Path) -> None:
    """Move the finished staging folder onto ``out`` (replacing an older run only now that the new one is whole)."""
    for leftover in (RESUME, "config.json"):
        (work / leftover).unlink(missing_ok=True)
    if out.exists():
        old = out.parent / f".{out.name}.old"
        if old.exists() and artlab_kind(old) != "run":
            raise OutputError(f"{old} is in the way of replacing the run and artlab did not write it: move it")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(work, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(work, out)


class _Frozen:
    """The frozen part's outputs: ``all`` (eval view of every row of the task), ``views`` [V, n_train, ...]."""

    def __init__(self, fn, task: Task, spec: BackboneSpec, cfg: TrainConfig, device, progress: Progress):
        df = task.df
        ds = ImageDataset(task.root, df["path"], eval_transform(spec), min_side=spec.resize_size)
        self.all = compute(fn, in_order(ds, cfg.batch_size, cfg.workers), progress, "frozen features", len(ds), device)
        train = df[df["split"] == "train"]
        views = []
        for v in range(cfg.cache_views):  # seeded per painting: the same augmented views after a restart
            aug = ImageDataset(task.root, train["path"], train_transform(spec), min_side=spec.resize_size,
                               seed=cfg.seed * 100 + v)
            views.append(compute(fn, in_order(aug, cfg.batch_size, cfg.workers), progress, f"augmented view {v + 1}",
                                 len(aug), device))
        self.views = torch.stack(views)


def _shuffled(n: int, batch_size: int, world: World) -> list[torch.Tensor]:
    """This process's part of each shuffled global batch (the whole batch when alone). The permutation comes from
    torch's generator, seeded per epoch by ``fit``: the same in every process and after a resume. A last batch with
    fewer paintings than processes is dropped under torchrun (a process with nothing would stall the others)."""
    order = torch.randperm(n)
    batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    return [world.shard(b) for b in batches if len(b) >= world.size]


def _cached_batches(frozen: _Frozen, rows: np.ndarray, y: torch.Tensor, batch_size: int, train: bool,
                    world: World = SINGLE):
    def batches():
        if train:
            n = frozen.views.shape[1]
            shards = _shuffled(n, batch_size, world)
            view = torch.randint(frozen.views.shape[0], (n,))  # each image draws one of its augmented views
            world.own_seed()
            for idx in shards:
                yield frozen.views[view[idx], idx], y[idx]
        else:
            for i in range(0, len(rows), batch_size):
                yield frozen.all[rows[i:i + batch_size]], y[i:i + batch_size]
    return batches


def _image_batches(task: Task, split: str, spec: BackboneSpec, cfg: TrainConfig, train: bool,
                   world: World = SINGLE):
    rows = task.rows(split)
    tf = train_transform(spec) if train else eval_transform(spec)
    ds = ImageDataset(task.root, rows["path"], tf, min_side=spec.resize_size, labels=rows["y"].tolist())
    if not train:
        return lambda: in_order(ds, cfg.batch_size, cfg.workers)

    def batches():
        shards = [b.tolist() for b in _shuffled(len(ds), cfg.batch_size, world)]
        world.own_seed()
        return iter(DataLoader(ds, batch_sampler=shards, num_workers=cfg.workers))
    return batches


def final_features(model: Classifier, embedder: Embedder, task: Task, spec: BackboneSpec, cfg: TrainConfig,
                   frozen: _Frozen | None, device, progress: Progress) -> tuple[torch.Tensor, torch.Tensor]:
    """Every labelled painting's pooled features through the trained classifier, and the frozen pretrained features
    the kNN uses. The part the two share (the frozen stem for partial, everything but the head for transfer) runs
    once: from the cache when there is one, else in one pass over the images."""
    shared = frozen_prefix(cfg.method)
    if frozen is not None and shared == "stem":
        return (batched(lambda s: model.pool(model.block(s)), frozen.all, device),
                batched(embedder.from_stem, frozen.all, device))
    if frozen is not None:
        return frozen.all, frozen.all

    def both(x):
        if shared == "stem":
            s = model.stem(x)
            return model.pool(model.block(s)), embedder.from_stem(s)
        if shared == "features":
            f = embedder(x)
            return f, f
        return model.features(x), embedder(x)

    ds = ImageDataset(task.root, task.df["path"], eval_transform(spec), min_side=spec.resize_size)
    return compute(both, in_order(ds, cfg.batch_size, cfg.workers), progress, "embeddings", len(ds), device)


def build_models(spec: BackboneSpec, cfg: TrainConfig, n_classes: int) -> tuple[Classifier, Embedder, dict]:
    pretrained = cfg.method != "scratch"
    parts, provenance = spec.parts(pretrained=pretrained, weights_file=cfg.weights_file)
    model = apply_method(Classifier(parts, Head(cfg.head, spec.feature_dim, n_classes)), cfg.method)
    eparts, eprov = spec.parts(pretrained=True, weights_file=cfg.weights_file)  # the kNN baseline's own copy
    if not pretrained:  # a scratch classifier; the baseline still sees ImageNet features: the card records both
        provenance = {"classifier": provenance, **eprov}
    return model, Embedder(eparts), provenance


def train_run(cfg: TrainConfig, out: str | Path, progress: Progress | None = None,
              umap: bool = True, overwrite: bool = False) -> Path | None:
    """Train both models and write the run folder ``out``. Returns its path; None in the torchrun processes other
    than rank 0, which train alongside it and write nothing (artlab.distributed).

    ``out`` must be new, empty, or (with ``overwrite``) an earlier artlab run; never the collection, inside it or
    around it (artlab.safety)."""
    progress = progress or Progress()
    out, t_start = Path(out), time.perf_counter()
    task = make_task(cfg)  # reads only: a collection that is not one is the first thing to say
    check_output(out, "run", overwrite=overwrite, sources={"the collection": cfg.collection})
    spec = get_backbone(cfg.backbone)
    world, device = join(resolve_device(cfg.device))
    if not world.main:
        progress = Progress()  # rank 0 reports
    torch.manual_seed(cfg.seed)
    work = _workdir(out, cfg, create=world.main)
    world.barrier()
    model, embedder, provenance = build_models(spec, cfg, len(task.classes))
    model.to(device).eval(), embedder.to(device).eval()  # frozen parts are always in eval mode (BatchNorm)
    df = task.df
    idx = {s: np.flatnonzero(df["split"].to_numpy() == s) for s in ("train", "val", "test")}
    y_all = torch.tensor(df["y"].to_numpy())
    weight = class_weights(df["y"].to_numpy()[idx["train"]], len(task.classes)) if cfg.class_weights else None
    criterion = nn.CrossEntropyLoss(weight=weight.to(device) if weight is not None else None)

    frozen_part = frozen_prefix(cfg.method) if cfg.cache_views > 0 else None
    t0 = time.perf_counter()
    if frozen_part:
        fn = model.stem if frozen_part == "stem" else model.features
        frozen = _Frozen(fn, task, spec, cfg, device, progress)
        forward = model.from_stem if frozen_part == "stem" else model.head
        train_b = _cached_batches(frozen, idx["train"], y_all[idx["train"]], cfg.batch_size, train=True, world=world)
        val_b = _cached_batches(frozen, idx["val"], y_all[idx["val"]], cfg.batch_size, train=False)
    else:
        forward = model
        train_b = _image_batches(task, "train", spec, cfg, True, world)
        val_b = _image_batches(task, "val", spec, cfg, False)
    cache_seconds = time.perf_counter() - t0

    result = fit(model, forward, train_b, val_b, len(idx["train"]), cfg, device, criterion, progress,
                 resume_file=work / RESUME, world=world, train_forward=wrap(forward, model, world, device))
    if not world.main:  # the weights are the same in every process: rank 0 evaluates and writes the run
        leave(world)  # (waits until rank 0 has written it: leaving earlier can abort the process group)
        return None
    model.load_state_dict(result.best_state, strict=False)
    model.eval()

    feats, knn_feats = final_features(model, embedder, task, spec, cfg, frozen if frozen_part else None, device,
                                      progress)
    emb = batched(lambda f: model.head(f, pre_logits=True), feats, device)
    logits = batched(model.head.fc, emb, device)
    probs = torch.softmax(logits, dim=1).numpy()
    emb, knn_feats = emb.numpy(), knn_feats.numpy()
    y = df["y"].to_numpy()

    knn = KNNBaseline(ks=cfg.knn_ks, n_classes=len(task.classes))
    knn.fit(knn_feats[idx["train"]], y[idx["train"]], df["id"].to_numpy()[idx["train"]])
    k_curve = knn.select_k(knn_feats[idx["val"]], y[idx["val"]])
    knn_share, knn_scores, _, _ = knn.vote(knn_feats[idx["test"]])

    t = idx["test"]
    metrics = {"finetuned": classification_report(y[t], probs[t].argmax(1), probs[t], task.classes),
               "knn": classification_report(y[t], knn_scores.argmax(1), knn_scores, task.classes)}
    metrics["finetuned"]["val_accuracy"] = float(np.mean(probs[idx["val"]].argmax(1) == y[idx["val"]]))
    metrics["knn"].update(k=int(knn.k_), k_curve={str(k): v for k, v in k_curve.items()},
                          val_accuracy=k_curve[knn.k_], distance="cosine")

    _write_outputs(work, model, cfg, task, result, probs, knn_share, knn_scores, emb, knn_feats, knn, idx, umap)
    card = _card(cfg, task, spec, provenance, result, metrics, device, cache_seconds, time.perf_counter() - t_start,
                 processes=world.size)
    card["task"]["collection_relative"] = os.path.relpath(task.root.resolve(), out.resolve())
    atomic_write_json(work / CARD, card)  # last: a folder with card.json is complete
    _publish(work, out)
    leave(world)  # a failure above ends this process, and torchrun then stops the ones waiting
    return out


def _write_outputs(work, model, cfg, task, result, probs, knn_share, knn_scores, emb, knn_feats, knn, idx, umap):
    df, classes, t = task.df, task.classes, idx["test"]
    atomic_save(work / MODEL, lambda tmp: torch.save(trained_state(model, cfg.method), tmp))
    knn.save(work / KNN)
    atomic_save(work / HISTORY, lambda tmp: pd.DataFrame(result.history).to_csv(tmp, index=False))
    pred = pd.DataFrame({"id": df["id"].to_numpy()[t], "true": df[task.label].to_numpy()[t],
                         "pred_finetuned": [classes[i] for i in probs[t].argmax(1)],
                         "pred_knn": [classes[i] for i in knn_scores.argmax(1)]})
    for i, c in enumerate(classes):
        pred[f"finetuned:{c}"] = probs[t, i].round(6)
    for i, c in enumerate(classes):
        pred[f"knn:{c}"] = knn_share[:, i].round(6)
    atomic_save(work / PREDICTIONS, lambda tmp: pred.to_csv(tmp, index=False))
    labels = df[task.label].to_numpy().astype(str)
    atomic_savez(work / EMBEDDINGS, embeddings=emb.astype(np.float32), ids=df["id"].to_numpy().astype(str),
                 labels=labels, split=df["split"].to_numpy().astype(str), y=df["y"].to_numpy(),
                 knn_embeddings=knn_feats.astype(np.float32), classes=np.array(classes))
    _write_paintings(work, task)
    atomic_write_json(work / GEOMETRY, class_geometry(emb, df["y"].to_numpy(), classes, seed=cfg.seed))
    if umap:
        atomic_savez(work / UMAP, coords=umap_coordinates(emb, seed=cfg.seed).astype(np.float32),
                     ids=df["id"].to_numpy().astype(str))


def _write_paintings(work: Path, task: Task) -> None:
    """A self-contained gallery: metadata and a small thumbnail of every painting, so the app needs no collection."""
    df = task.df
    cols = [c for c in ("id", "title", "artist", "date", "url", "license", "path") if c in df.columns]
    table = df[cols].assign(label=df[task.label], split=df["split"], thumb=[thumb_name(i) for i in df["id"]])
    atomic_save(work / PAINTINGS, lambda tmp: table.to_csv(tmp, index=False))
    for path, pid in zip(df["path"], df["id"]):
        im = fit_within(load_image(task.root / path, min_side=THUMB_SIDE), THUMB_SIDE)
        atomic_write_bytes(work / THUMBS / thumb_name(pid), encode_jpeg(im, quality=85))


def _card(cfg, task, spec, provenance, result, metrics, device, cache_seconds, total_seconds,
          processes: int = 1) -> dict:
    df = task.df
    per_class = {c: {s: int(((df[task.label] == c) & (df["split"] == s)).sum()) for s in ("train", "val", "test")}
                 for c in task.classes}
    report_file = task.root / "report.json"
    source = json.loads(report_file.read_text()).get("source") if report_file.is_file() else None
    return {
        "artlab_version": __version__, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "task": {"label": task.label, "classes": task.classes, "collection": str(task.root.resolve()),
                 "collection_source": source or str(df["source"].iloc[0]), "n_images": len(df),
                 "split_sizes": task.split_sizes(), "split_ratios": list(cfg.split),
                 "group_by_artist": cfg.group_by_artist, "per_class": per_class,
                 "dropped_classes": task.dropped_classes, "licenses": sorted(df["license"].unique().tolist())},
        "backbone": {"name": spec.name, "description": spec.description, "input_size": spec.input_size,
                     "resize_size": spec.resize_size, "mean": list(spec.mean), "std": list(spec.std),
                     "feature_dim": spec.feature_dim, "weights": provenance, "license": spec.license},
        "method": cfg.method, "head": cfg.head, "config": cfg.to_dict(),
        "training": {"epochs_run": len(result.history), "best_epoch": result.best_epoch,
                     "stopped_early": result.stopped_early, "train_seconds": round(result.seconds, 1),
                     "frozen_cache_seconds": round(cache_seconds, 1), "total_seconds": round(total_seconds, 1),
                     "device": str(device), "processes": processes, "torch": torch.__version__,
                     "python": platform.python_version()},
        "metrics": metrics,
    }
