"""The model card a run carries (card.json): the task, the backbone and its weights, the recipe, the training and
both models' test metrics."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

import torch

from artlab import __version__
from artlab.collection.contract import read_report
from artlab.model.backbones import BackboneSpec
from artlab.report.protocol import deviations
from artlab.train.config import TrainConfig
from artlab.train.data import Task
from artlab.train.loop import FitResult
from artlab.train.splits import SPLITS


def model_card(cfg: TrainConfig, task: Task, spec: BackboneSpec, provenance: dict, result: FitResult, metrics: dict,
               device, cache_seconds: float, total_seconds: float, out: Path, processes: int = 1,
               cache_views: int = 0, stages: dict | None = None) -> dict:
    """card.json: what was trained on what, how, and how both models scored (docs/run-folder.md), and where the
    run departs from its study (``deviations``, artlab.report.protocol). ``cache_views``: the augmented views the
    run cached per training painting (0: a fresh augmentation every epoch). ``stages``: the other stages' times, the
    cache's size and the GPU settings (artlab.train.accel), in ``training``."""
    df = task.df
    per_class = {c: {s: int(((df[task.label] == c) & (df["split"] == s)).sum()) for s in SPLITS}
                 for c in task.classes}
    source = (read_report(task.root) or {}).get("source")
    card = {
        "artlab_version": __version__, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "task": {"label": task.label, "classes": task.classes, "collection": str(task.root.resolve()),
                 "collection_relative": os.path.relpath(task.root.resolve(), Path(out).resolve()),
                 "collection_source": source or str(df["source"].iloc[0]), "n_images": len(df),
                 "split_sizes": task.split_sizes(), "split_ratios": list(cfg.split),
                 "group_by_artist": cfg.group_by_artist,
                 "split_kind": "artist-disjoint" if cfg.group_by_artist else "random", "per_class": per_class,
                 "dropped_classes": task.dropped_classes, "licenses": sorted(df["license"].unique().tolist()),
                 "curation": task.curation, "leakage": task.leakage},
        "backbone": {"name": spec.name, "description": spec.description, "input_size": spec.input_size,
                     "resize_size": spec.resize_size, "mean": list(spec.mean), "std": list(spec.std),
                     "feature_dim": spec.feature_dim, "weights": provenance, "license": spec.license,
                     "views": list(cfg.views)},
        "method": cfg.method, "head": cfg.head, "config": cfg.to_dict(), "selected_by": cfg.selected_by,
        "training": {"epochs_run": len(result.history), "best_epoch": result.best_epoch,
                     "stopped_early": result.stopped_early, "train_seconds": round(result.seconds, 1),
                     "frozen_cache_seconds": round(cache_seconds, 1), **(stages or {}),
                     "total_seconds": round(total_seconds, 1),
                     "device": str(device), "processes": processes, "cache_views": cache_views,
                     "torch": torch.__version__, "python": platform.python_version()},
        "metrics": metrics,
    }
    card["deviations"] = deviations(card)
    return card
