"""The run-folder contract (DESIGN.md): reading a trained run and rebuilding its two models from it.

A run folder holds card.json (written last: its presence means the run is complete), model.pt, knn.npz,
history.csv, predictions.csv, embeddings.npz, geometry.json and, optionally, umap.npz.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .backbones import BackboneSpec, get_backbone
from .collection import MANIFEST
from .errors import ArtlabError, RunError
from .knn import KNNBaseline
from .models import Classifier, Embedder, Head, frozen_prefix, trainable_prefixes
from .runcheck import check_array, check_embeddings, check_knn, require_keys, validate_card
from .safety import CAPS, PathEscape, check_size, contained, read_capped

CARD, MODEL, KNN, HISTORY, PREDICTIONS, EMBEDDINGS, GEOMETRY, UMAP = (
    "card.json", "model.pt", "knn.npz", "history.csv", "predictions.csv", "embeddings.npz", "geometry.json",
    "umap.npz")
PAINTINGS, THUMBS, THUMB_SIDE = "paintings.csv", "thumbs", 192
RUN_FILES = (CARD, MODEL, KNN, HISTORY, PREDICTIONS, EMBEDDINGS, GEOMETRY)


def thumb_name(painting_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(painting_id)) + ".jpg"


def is_run(folder: str | Path) -> bool:
    return (Path(folder) / CARD).is_file()


def find_runs(root: str | Path, limit: int | None = None) -> list[Path]:
    """Complete runs directly under ``root`` (or ``root`` itself), sorted by name; at most ``limit`` entries of
    ``root`` are looked at (a huge folder typed by mistake is not walked whole)."""
    root = Path(root)
    if is_run(root):
        return [root]
    if not root.is_dir():
        return []
    entries = itertools.islice(root.iterdir(), limit)
    return sorted(p for p in entries if p.is_dir() and not p.name.startswith(".") and is_run(p))


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
            card = json.loads(read_capped(path / CARD, CAPS["json"]))
        except (OSError, ValueError) as exc:
            raise RunError(f"unreadable model card {path / CARD}: {str(exc).splitlines()[0]}") from None
        except ArtlabError as exc:
            raise RunError(str(exc)) from None
        validate_card(card, path / CARD)
        missing = [f for f in RUN_FILES if not (path / f).is_file()]
        if missing:
            raise RunError(f"run {path.name} is incomplete: missing {', '.join(missing)}")
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
    def collection(self) -> Path | None:
        """The collection it was trained on: found beside the run first (so a cloned repo works), else as recorded;
        None when neither is a collection folder (one with a manifest): a run cannot point the app at any folder."""
        task = self.card["task"]
        for candidate in (self.path / task["collection_relative"] if task.get("collection_relative") else None,
                          Path(task["collection"]) if task.get("collection") else None):
            if candidate is not None and (candidate / MANIFEST).is_file():
                return candidate.resolve()
        return None

    def painting_file(self, rel_path: str) -> Path | None:
        """A painting of the collection by the path paintings.csv gives, kept inside the collection (no absolute
        path, no '..', no symlink out of it); None when not reachable or not allowed."""
        root = self.collection
        if root is None or not rel_path:
            return None
        try:
            p = contained(root, rel_path, what=f"a painting path in {PAINTINGS}")
        except PathEscape:
            return None
        return p if p.is_file() else None

    def _csv(self, name: str, **kwargs) -> pd.DataFrame:
        p = self.path / name
        try:
            check_size(p, CAPS["csv"])
            return pd.read_csv(p, **kwargs)
        except ArtlabError as exc:
            raise RunError(str(exc)) from None
        except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise RunError(f"{p}: unreadable ({str(exc).strip().splitlines()[0]})") from None

    def _npz(self, name: str) -> dict[str, np.ndarray]:
        p = self.path / name
        try:
            check_size(p, CAPS["npz"])
            with np.load(p, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except ArtlabError as exc:
            raise RunError(str(exc)) from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise RunError(f"{p}: unreadable ({str(exc).strip().splitlines()[0][:160]})") from None

    def history(self) -> pd.DataFrame:
        return self._csv(HISTORY)

    def predictions(self) -> pd.DataFrame:
        df = self._csv(PREDICTIONS, dtype={"id": str})
        needed = ["id", "true", "pred_finetuned", "pred_knn", *(f"{m}:{c}" for m in ("finetuned", "knn")
                                                                for c in self.classes)]
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise RunError(f"{self.path / PREDICTIONS}: missing column(s) {', '.join(missing)}")
        return df

    def embeddings(self) -> dict[str, np.ndarray]:
        z = self._npz(EMBEDDINGS)
        check_embeddings(self.path / EMBEDDINGS, z, self.classes)
        return z

    def geometry(self) -> dict:
        try:
            return json.loads(read_capped(self.path / GEOMETRY, CAPS["json"]))
        except ArtlabError as exc:
            raise RunError(str(exc)) from None
        except (OSError, ValueError) as exc:
            raise RunError(f"{self.path / GEOMETRY}: unreadable ({str(exc).splitlines()[0]})") from None

    def umap(self) -> np.ndarray | None:
        p = self.path / UMAP
        if not p.is_file():
            return None
        z = self._npz(UMAP)
        require_keys(p, z, ("coords",))
        return check_array(p, "coords", z["coords"], ndim=2, cols=2, finite=True)

    def umap_ids(self) -> np.ndarray | None:
        """The painting ids of umap.npz's rows (None when absent)."""
        if not (self.path / UMAP).is_file():
            return None
        return self._npz(UMAP).get("ids")

    def paintings(self) -> pd.DataFrame:
        """id, title, artist, date, url, label, split, thumb of every painting of the run (empty if absent)."""
        p = self.path / PAINTINGS
        return self._csv(PAINTINGS, dtype=str, keep_default_na=False) if p.is_file() else pd.DataFrame(
            columns=["id", "title", "artist", "date", "label", "split", "thumb"])

    def thumbnail(self, painting_id: str) -> Path | None:
        """The run's own thumbnail of a painting (a symlink out of the run folder is not followed)."""
        try:
            p = contained(self.path, f"{THUMBS}/{thumb_name(painting_id)}", what="a thumbnail")
        except PathEscape:
            return None
        return p if p.is_file() else None

    def knn(self) -> KNNBaseline:
        check_knn(self.path / KNN, self._npz(KNN), len(self.classes))
        return KNNBaseline.load(self.path / KNN)

    def classifier(self, weights_file: str | None = None) -> Classifier:
        return load_classifier(self, weights_file)

    def embedder(self, weights_file: str | None = None) -> Embedder:
        parts, _ = self.spec.parts(pretrained=True, weights_file=weights_file)
        return Embedder(parts)


def safe_load_state(path: Path) -> dict:
    """torch.load with weights_only=True: a checkpoint that smuggles code in a pickle is refused, not run."""
    try:
        check_size(path, CAPS["weights"])
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise RunError(f"refusing {path.name}: it is not a plain weights file (it asks to run code: "
                       f"{str(exc).splitlines()[0][:120]})") from None
    except ArtlabError as exc:
        raise RunError(str(exc)) from None
    except (OSError, RuntimeError, EOFError, zipfile.BadZipFile) as exc:
        raise RunError(f"unreadable weights file {path}: {str(exc).strip().splitlines()[0][:160]}") from None
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
    model = Classifier(parts, Head(card["head"], run.spec.feature_dim, len(run.classes)))
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

