"""The run-folder contract (DESIGN.md): reading a trained run and rebuilding its two models from it.

A run folder holds card.json (written last: its presence means the run is complete), model.pt, knn.npz,
history.csv, predictions.csv, embeddings.npz, geometry.json and, optionally, umap.npz.
"""

from __future__ import annotations

import dataclasses
import json
import re
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .backbones import BackboneSpec, get_backbone
from .errors import RunError
from .knn import KNNBaseline
from .protocol import deviations
from .models import Classifier, Embedder, Head, frozen_prefix, trainable_prefixes

CARD, MODEL, KNN, HISTORY, PREDICTIONS, EMBEDDINGS, GEOMETRY, UMAP = (
    "card.json", "model.pt", "knn.npz", "history.csv", "predictions.csv", "embeddings.npz", "geometry.json",
    "umap.npz")
PAINTINGS, THUMBS, THUMB_SIDE = "paintings.csv", "thumbs", 192
RUN_FILES = (CARD, MODEL, KNN, HISTORY, PREDICTIONS, EMBEDDINGS, GEOMETRY)


def thumb_name(painting_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(painting_id)) + ".jpg"


def is_run(folder: str | Path) -> bool:
    return (Path(folder) / CARD).is_file()


def find_runs(root: str | Path) -> list[Path]:
    """Complete runs directly under ``root`` (or ``root`` itself), sorted by name."""
    root = Path(root)
    if is_run(root):
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and is_run(p))


@dataclasses.dataclass
class Run:
    """A run folder, read lazily. ``card`` is the model card; the models are rebuilt on demand."""

    path: Path
    card: dict

    @classmethod
    def open(cls, path: str | Path) -> "Run":
        path = Path(path)
        if not path.exists():
            raise RunError(f"no run folder at {path}")
        if not is_run(path):
            raise RunError(f"{path} is not a complete run (no {CARD}; train one with `artlab train`)")
        try:
            card = json.loads((path / CARD).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise RunError(f"unreadable model card {path / CARD}: {exc}") from None
        missing = [f for f in RUN_FILES if not (path / f).is_file()]
        if missing:
            raise RunError(f"run {path.name} is incomplete: missing {', '.join(missing)}")
        if "deviations" not in card:  # a card written before the key: the same sentences, computed on read
            card["deviations"] = deviations(card)
        return cls(path, card)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def classes(self) -> list[str]:
        return list(self.card["task"]["classes"])

    @property
    def label(self) -> str:
        return self.card["task"]["label"]

    @property
    def spec(self) -> BackboneSpec:
        return get_backbone(self.card["backbone"]["name"])

    @property
    def collection(self) -> Path:
        """The collection it was trained on: found beside the run first (so a cloned repo works), else as recorded."""
        task = self.card["task"]
        relative = task.get("collection_relative")
        if relative and (self.path / relative).is_dir():
            return (self.path / relative).resolve()
        return Path(task["collection"])

    def history(self) -> pd.DataFrame:
        return pd.read_csv(self.path / HISTORY)

    def predictions(self) -> pd.DataFrame:
        return pd.read_csv(self.path / PREDICTIONS, dtype={"id": str})

    def embeddings(self) -> dict[str, np.ndarray]:
        with np.load(self.path / EMBEDDINGS, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def geometry(self) -> dict:
        return json.loads((self.path / GEOMETRY).read_text())

    def umap(self) -> np.ndarray | None:
        p = self.path / UMAP
        if not p.is_file():
            return None
        with np.load(p, allow_pickle=False) as z:
            return z["coords"]

    def paintings(self) -> pd.DataFrame:
        """id, title, artist, date, url, label, split, thumb of every painting of the run (empty if absent)."""
        p = self.path / PAINTINGS
        return pd.read_csv(p, dtype=str, keep_default_na=False) if p.is_file() else pd.DataFrame(
            columns=["id", "title", "artist", "date", "label", "split", "thumb"])

    def thumbnail(self, painting_id: str) -> Path | None:
        p = self.path / THUMBS / thumb_name(painting_id)
        return p if p.is_file() else None

    def knn(self) -> KNNBaseline:
        return KNNBaseline.load(self.path / KNN)

    def classifier(self, weights_file: str | None = None) -> Classifier:
        return load_classifier(self, weights_file)

    def embedder(self, weights_file: str | None = None) -> Embedder:
        parts, _ = self.spec.parts(pretrained=True, weights_file=weights_file)
        return Embedder(parts)


def safe_load_state(path: Path) -> dict:
    """torch.load with weights_only=True: a checkpoint that smuggles code in a pickle is refused, not run."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise RunError(f"refusing {path.name}: it is not a plain weights file (it asks to run code: "
                       f"{str(exc).splitlines()[0][:120]})") from None
    except (OSError, RuntimeError, EOFError, zipfile.BadZipFile) as exc:
        raise RunError(f"unreadable weights file {path}: {exc}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RunError(f"{path.name} is not a state dict of tensors")
    return state


def load_classifier(run: Run, weights_file: str | None = None) -> Classifier:
    """Rebuild the fine-tuned classifier: the pretrained backbone (for partial/transfer) plus the stored trained part."""
    card = run.card
    method = card["method"]
    state = safe_load_state(run.path / MODEL)
    pretrained = frozen_prefix(method) is not None  # only the trained part is stored; the rest is pretrained
    parts, provenance = run.spec.parts(pretrained=pretrained, weights_file=weights_file)
    expected = card["backbone"].get("weights", {}).get("sha256")
    if pretrained and expected and provenance.get("sha256") and provenance["sha256"] != expected:
        raise RunError(f"run {run.name} was trained on pretrained weights {expected[:12]}..., but the weights found "
                       f"here are {provenance['sha256'][:12]}...")
    dropout = float(card.get("config", {}).get("dropout") or 0.0)  # no weights; kept so the model is what trained
    model = Classifier(parts, Head(card["head"], run.spec.feature_dim, len(run.classes), dropout=dropout))
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise RunError(f"run {run.name}: its weights do not fit a {run.spec.name} with {len(run.classes)} classes "
                       f"({str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else exc})") from None
    stored = tuple(p + "." for p in trainable_prefixes(method))
    bad_missing = [k for k in missing if k.startswith(stored)]
    if unexpected or bad_missing:
        raise RunError(f"run {run.name}: model.pt does not match a {run.spec.name} {method} model "
                       f"({len(bad_missing)} missing, {len(unexpected)} unexpected keys)")
    return model.eval()

