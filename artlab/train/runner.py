"""``artlab train``: from a collection to a complete run folder (docs/design.md), in six named steps:

1. ``_prepare``: the task (labelled rows, classes, a seeded split), both models, the loss, the staging folder;
2. ``_batches``: the frozen part's outputs computed once (partial, transfer) or the images, as batches;
3. ``fit``: the fine-tuned classifier, with early stopping on validation loss (resumable);
4. ``_features``: every painting through the trained classifier and the frozen pretrained backbone;
5. ``_evaluate``: the kNN baseline (k chosen on validation accuracy) and both models' test metrics;
6. ``write_run``: predictions, embeddings, geometry, UMAP, thumbnails and the card, written atomically.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from artlab.model.backbones import BackboneSpec, get_backbone
from artlab.model.classifier import Classifier, Embedder, Head, apply_method, frozen_prefix, trained_state
from artlab.model.knn import KNNBaseline
from artlab.model.views import DEFAULT_VIEWS
from artlab.progress import Progress
from artlab.report.calibration import softmax
from artlab.report.geometry import class_geometry, umap_coordinates
from artlab.report.metrics import classification_report
from artlab.runfolder import RESUME, RunContents, staging, write_run
from artlab.train.accel import Accel, for_device
from artlab.safety import check_output
from artlab.train.batches import cached_batches, image_batches
from artlab.train.calibrate import card_entries
from artlab.train.card import model_card
from artlab.train.config import TrainConfig
from artlab.train.data import Task, class_weights, make_task
from artlab.train.distributed import World, join, leave, wrap
from artlab.train.frozen import FrozenCache, batched, channels_last_modules, final_features
from artlab.train.loop import FitResult, fit
from artlab.train.splits import SPLITS


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_models(spec: BackboneSpec, cfg: TrainConfig, n_classes: int) -> tuple[Classifier, Embedder, dict]:
    pretrained = cfg.method != "scratch"
    parts, provenance = spec.parts(pretrained=pretrained, weights_file=cfg.weights_file)
    model = apply_method(Classifier(parts, Head(cfg.head, spec.feature_dim, n_classes, dropout=cfg.dropout)),
                         cfg.method)
    eparts, eprov = spec.parts(pretrained=True, weights_file=cfg.weights_file)  # the kNN baseline's own copy
    if not pretrained:  # a scratch classifier; the baseline still sees ImageNet features: the card records both
        provenance = {"classifier": provenance, **eprov}
    return model, Embedder(eparts), provenance


@dataclasses.dataclass
class _Setup:
    """What the steps share: the task and its split, both models, where they run and where the run is staged."""

    cfg: TrainConfig
    task: Task
    spec: BackboneSpec
    world: World
    device: torch.device
    work: Path
    model: Classifier
    embedder: Embedder
    provenance: dict
    criterion: nn.Module
    idx: dict[str, np.ndarray]  # row indices of each split
    y: np.ndarray  # class indices, every row
    accel: Accel  # bfloat16 autocast and channels_last on CUDA, nothing on a CPU


@dataclasses.dataclass
class _Training:
    forward: object  # what the loop calls on a batch: the whole model, or its part after the cached one
    train: object
    val: object
    frozen: FrozenCache | None
    cache_seconds: float
    views: int  # augmented views cached per training painting (0: a fresh augmentation every epoch)


def train_run(cfg: TrainConfig, out: str | Path, progress: Progress | None = None,
              umap: bool = True, overwrite: bool = False) -> Path | None:
    """Train both models and write the run folder ``out``. Returns its path; None in the torchrun processes other
    than rank 0, which train alongside it and write nothing (artlab.train.distributed).

    ``out`` must be new, empty, or (with ``overwrite``) an earlier artlab run; never the collection, inside it or
    around it (artlab.safety)."""
    progress = progress or Progress()
    out, t_start = Path(out), time.perf_counter()
    s = _prepare(cfg, out, overwrite)
    if not s.world.main:
        progress = Progress()  # rank 0 reports
    batches = _batches(s, progress)
    result = fit(s.model, batches.forward, batches.train, batches.val, len(s.idx["train"]), cfg, s.device,
                 s.criterion, progress, resume_file=s.work / RESUME, world=s.world,
                 train_forward=wrap(batches.forward, s.model, s.world, s.device), accel=s.accel)
    if not s.world.main:  # the weights are the same in every process: rank 0 evaluates and writes the run
        leave(s.world)  # (waits until rank 0 has written it: leaving earlier can abort the process group)
        return None
    s.model.load_state_dict(result.best_state, strict=False)
    s.model.eval()
    t_evaluate = time.perf_counter()
    feats, emb, knn_feats, logits = _features(s, batches.frozen, progress)
    knn, knn_share, knn_scores, metrics = _evaluate(s, knn_feats, softmax(logits))
    probs, honest = card_entries(cfg, s.y, s.idx, s.task.df["artist"], logits, knn_feats, int(knn.k_),
                                 batches.frozen)
    t_write = time.perf_counter()
    stages = {"evaluation_seconds": round(t_write - t_evaluate, 1),  # final features, kNN, metrics
              "frozen_cache_bytes": batches.frozen.nbytes if batches.frozen is not None else 0, **s.accel.card()}
    card = model_card(cfg, s.task, s.spec, s.provenance, result, metrics, s.device, batches.cache_seconds,
                      time.perf_counter() - t_start, out, processes=s.world.size, cache_views=batches.views,
                      stages=stages)
    card.update(honest)  # calibration, conformal, unfamiliar (artlab.train.calibrate)
    geometry_feats = feats if cfg.embedding_layer == "backbone" else emb

    def timed(card: dict) -> None:  # writing (geometry, UMAP, thumbnails, files) is known only once it is done
        now = time.perf_counter()
        card["training"].update(writing_seconds=round(now - t_write, 1), total_seconds=round(now - t_start, 1))

    write_run(s.work, out, _contents(s, result, card, emb, knn_feats, probs, knn, knn_share, knn_scores, umap,
                                     geometry_feats), before_card=timed)
    leave(s.world)  # a failure above ends this process, and torchrun then stops the ones waiting
    return out


def _prepare(cfg: TrainConfig, out: Path, overwrite: bool) -> _Setup:
    task = make_task(cfg)  # reads only: a collection that is not one is the first thing to say
    check_output(out, "run", overwrite=overwrite, sources={"the collection": cfg.collection})
    spec = get_backbone(cfg.backbone)
    world, device = join(resolve_device(cfg.device))
    torch.manual_seed(cfg.seed)
    work = staging(out, _staged_config(cfg, task) if world.main else None)
    world.barrier()
    model, embedder, provenance = build_models(spec, cfg, len(task.classes))
    model.to(device).eval(), embedder.to(device).eval()  # frozen parts are always in eval mode (BatchNorm)
    accel = for_device(device)
    if accel.channels_last:
        model.to(memory_format=torch.channels_last)
    y = task.df["y"].to_numpy()
    idx = {s: np.flatnonzero(task.df["split"].to_numpy() == s) for s in SPLITS}
    weight = class_weights(y[idx["train"]], len(task.classes)) if cfg.class_weights else None
    criterion = nn.CrossEntropyLoss(weight=weight.to(device) if weight is not None else None)
    return _Setup(cfg, task, spec, world, device, work, model, embedder, provenance, criterion, idx, y, accel)


def _staged_config(cfg: TrainConfig, task: Task) -> dict:
    """What an interrupted run must match to be resumed: its config and the collection's curation.csv (by sha256),
    so a curated collection is retrained, not resumed."""
    sha = task.curation.get("sha256")
    return {**cfg.to_dict(), "curation_sha256": sha} if sha else cfg.to_dict()


def _batches(s: _Setup, progress: Progress) -> _Training:
    """From the frozen-feature cache when the method freezes a part and the cache is on (or test-time views need
    it), else from the images."""
    cfg, model = s.cfg, s.model
    n_views = cfg.views_on(s.device.type)  # unset: a fresh augmentation every epoch on CUDA, cached views on a CPU
    frozen_part = frozen_prefix(cfg.method) if n_views > 0 or tuple(cfg.views) != DEFAULT_VIEWS else None
    t0 = time.perf_counter()
    if not frozen_part:
        return _Training(model, image_batches(s.task, "train", s.spec, cfg, True, s.world, s.device),
                         image_batches(s.task, "val", s.spec, cfg, False), None, 0.0, 0)
    fn = model.stem if frozen_part == "stem" else model.features
    channels_last_modules(*((model.stem,) if frozen_part == "stem" else (model.stem, model.block)))
    frozen = FrozenCache(fn, s.task, s.spec, cfg, s.device, progress, n_views)
    forward = model.from_stem if frozen_part == "stem" else model.head
    y_all = torch.tensor(s.y)
    train_b = cached_batches(frozen, s.idx["train"], y_all[s.idx["train"]], cfg.batch_size, train=True,
                             world=s.world)
    val_b = cached_batches(frozen, s.idx["val"], y_all[s.idx["val"]], cfg.batch_size, train=False)
    return _Training(forward, train_b, val_b, frozen, time.perf_counter() - t0, n_views)


def _features(s: _Setup, frozen: FrozenCache | None, progress: Progress):
    """Every painting's pooled backbone features, penultimate features and logits through the trained classifier,
    and the frozen pretrained features the kNN uses."""
    model = s.model
    feats, knn_feats = final_features(model, s.embedder, s.task, s.spec, s.cfg, frozen, s.device, progress)
    emb = batched(lambda f: model.head(f, pre_logits=True), feats, s.device)
    logits = batched(model.head.fc, emb, s.device).double().numpy()
    return feats.numpy(), emb.numpy(), knn_feats.numpy(), logits


def _evaluate(s: _Setup, knn_feats: np.ndarray, probs: np.ndarray):
    """The kNN baseline on the training split (k chosen on validation), and both models' metrics on the test split."""
    idx, y, classes = s.idx, s.y, s.task.classes
    knn = KNNBaseline(ks=s.cfg.knn_ks, n_classes=len(classes), metric=s.cfg.knn_metric, vote=s.cfg.knn_vote)
    knn.fit(knn_feats[idx["train"]], y[idx["train"]], s.task.df["id"].to_numpy()[idx["train"]])
    k_curve = knn.select_k(knn_feats[idx["val"]], y[idx["val"]])
    knn_share, knn_scores, _, _ = knn.vote(knn_feats[idx["test"]])
    t = idx["test"]
    metrics = {"finetuned": classification_report(y[t], probs[t].argmax(1), probs[t], classes),
               "knn": classification_report(y[t], knn_scores.argmax(1), knn_scores, classes)}
    metrics["finetuned"]["val_accuracy"] = float(np.mean(probs[idx["val"]].argmax(1) == y[idx["val"]]))
    metrics["knn"].update(k=int(knn.k_), k_curve={str(k): v for k, v in k_curve.items()},
                          val_accuracy=k_curve[knn.k_], distance=s.cfg.knn_metric, vote=s.cfg.knn_vote)
    return knn, knn_share, knn_scores, metrics


def _contents(s: _Setup, result: FitResult, card: dict, emb, knn_feats, probs, knn, knn_share, knn_scores,
              umap: bool, geometry_feats: np.ndarray) -> RunContents:
    """The run folder's contents; the geometry from the features ``cfg.embedding_layer`` chose (geometry.json says
    which)."""
    df = s.task.df
    geometry = class_geometry(geometry_feats, s.y, s.task.classes, seed=s.cfg.seed)
    cols = [c for c in ("id", "title", "artist", "date", "url", "license", "path") if c in df.columns]
    return RunContents(
        card=card, model_state=trained_state(s.model, s.cfg.method), knn=knn, history=result.history,
        classes=s.task.classes, ids=df["id"].to_numpy(), y=s.y, split=df["split"].to_numpy(), embeddings=emb,
        knn_embeddings=knn_feats, test=s.idx["test"], probs=probs, knn_share=knn_share,
        knn_pred=knn_scores.argmax(1), geometry={**geometry, "layer": s.cfg.embedding_layer},
        paintings=df[cols].reset_index(drop=True), images=[s.task.root / p for p in df["path"]],
        umap=umap_coordinates(emb, seed=s.cfg.seed) if umap else None,
        # the trained backbone's features the centroids come from, so geometry.json can be recomputed (for a
        # transfer run they are the frozen ones, already there as knn_embeddings)
        backbone_embeddings=geometry_feats if s.cfg.embedding_layer == "backbone" and s.cfg.method != "transfer"
        else None)
