"""The run-folder contract (docs/run-folder.md): its file names, the writer and the reader, in one module.

A run folder holds card.json (written last: its presence means the run is complete), model.pt, knn.npz,
history.csv, predictions.csv, embeddings.npz, geometry.json, paintings.csv with thumbs/ and, optionally, umap.npz.
It is written into a staging folder ``.<name>.partial`` beside its target (where an interrupted training keeps
resume.pt) and moved into place whole. The names are spelled in artlab.runfiles (no torch there, so that the CLI
can check an --out before it loads a model) and nowhere else.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from artlab.collection.contract import MANIFEST
from artlab.errors import ArtlabError, RunError
from artlab.images import encode_jpeg, fit_within, load_image
from artlab.io import atomic_save, atomic_savez, atomic_write_bytes, atomic_write_json
from artlab.model.backbones import BackboneSpec, backbone_names, get_backbone
from artlab.model.classifier import HEADS, METHODS, Classifier, Embedder, Head, frozen_prefix, trainable_prefixes
from artlab.model.knn import KNNBaseline
from artlab.report.protocol import deviations
from artlab.report.tables import METRIC_ROWS
from artlab.runfiles import (CARD, EMBEDDINGS, GEOMETRY, HISTORY, KNN, MODEL, PAINTINGS, PREDICTIONS, RESUME, RUN_FILES,
                             STAGED_CONFIG, THUMB_SIDE, THUMBS, UMAP)
from artlab.runcheck import check_array, check_embeddings, check_knn, require_keys, validate_card
from artlab.safety import CAPS, OutputError, PathEscape, artlab_kind, check_size, contained, read_capped

MODELS = ("finetuned", "knn")  # the two models of every run, in the order of the card's metrics and the columns


def thumb_name(painting_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(painting_id)) + ".jpg"


def is_run(folder: str | Path) -> bool:
    return (Path(folder) / CARD).is_file()


_TABLE_KEYS = frozenset(key for _, key in METRIC_ROWS)  # the Table 1 figures: numbers wherever a card has them


def card_stamp(folder: str | Path) -> int:
    """The modification time (ns) of a run's card, 0 when there is none: a cache key that changes on retraining."""
    try:
        return (Path(folder) / CARD).stat().st_mtime_ns
    except OSError:
        return 0


def missing_files(folder: str | Path, umap: bool = False) -> list[str]:
    """The run files ``folder`` lacks (umap.npz too when ``umap``)."""
    names = RUN_FILES + ((UMAP,) if umap else ())
    return [f for f in names if not (Path(folder) / f).is_file()]


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
        except RecursionError:
            raise RunError(f"unreadable model card {path / CARD}: it nests too deeply to read") from None
        except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            raise RunError(f"unreadable model card {path / CARD}: {str(exc).splitlines()[0][:160]}") from None
        except ArtlabError as exc:
            raise RunError(str(exc)) from None
        validate_card(card, path / CARD, {"backbone.name": backbone_names(), "method": METHODS, "head": HEADS},
                      _TABLE_KEYS)
        missing = missing_files(path)
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
        needed = ["id", "true", "pred_finetuned", "pred_knn", *(f"{m}:{c}" for m in MODELS for c in self.classes)]
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

    def umap(self) -> pd.DataFrame | None:
        """The map's ``x``, ``y`` indexed by painting id (each id once), or None when the run has no map."""
        p = self.path / UMAP
        if not p.is_file():
            return None
        z = self._npz(UMAP)
        require_keys(p, z, ("coords",))
        ids = z["ids"].astype(str) if "ids" in z else self.embeddings()["ids"].astype(str)
        coords = check_array(p, "coords", z["coords"], ndim=2, rows=len(ids), cols=2, finite=True)
        xy = pd.DataFrame(coords[:, :2], columns=["x", "y"], index=ids)
        return xy[~xy.index.duplicated()]

    @property
    def stamp(self) -> int:
        """When its card was written (ns; 0 if unreadable): a run retrained in place gets a new stamp."""
        return card_stamp(self.path)

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
        check_knn(self.path / KNN, self._npz(KNN), len(self.classes), self.spec.feature_dim)
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
        text = str(exc)
        found = re.search(r"(unsupported GLOBAL|Unsupported global)[^\n]*", text)
        if found is None:  # not a pickle that names code: bytes that are no weights file at all
            why = [line.strip() for line in text.split("WeightsUnpickler error:")[-1].splitlines() if line.strip()]
            raise RunError(f"{path} is damaged: it is not a readable weights file ({(why or ['?'])[0][:80]}); "
                           "retrain the run or copy it again") from None
        raise RunError(f"refusing {path.name}: it is not a plain weights file (it asks to run code: "
                       f"{found.group(0)[:120]})") from None
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



# --- the writer ---------------------------------------------------------------------------------------------------

def staging(out: str | Path, config: dict | None = None) -> Path:
    """The resumable staging folder beside ``out``: kept when it was started with the same ``config``, started
    afresh otherwise. ``config`` None gives only its path (the torchrun processes other than rank 0)."""
    out = Path(out)
    work = out.parent / f".{out.name}.partial"
    if config is None:
        return work
    config_file = work / STAGED_CONFIG
    if work.exists():
        if not config_file.is_file() and not (work.is_dir() and next(work.iterdir(), None) is None):
            raise OutputError(f"{work} is in the way of the staging folder and artlab did not write it: move it")
        try:
            same = config_file.is_file() and json.loads(config_file.read_text()) == config
        except (OSError, ValueError, RecursionError):  # a damaged staged config: start afresh
            same = False
        if not same:
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_json(config_file, config)
    return work


def publish(work: Path, out: str | Path) -> None:
    """Move the finished staging folder onto ``out`` (replacing an older run only now that the new one is whole)."""
    out = Path(out)
    for leftover in (RESUME, STAGED_CONFIG):
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


@dataclasses.dataclass
class RunContents:
    """Everything a run folder holds, as plain arrays and tables. Rows of ``labels``, ``split``, ``embeddings``,
    ``knn_embeddings``, ``paintings`` and ``images`` are the task's paintings, in one order; ``test`` indexes them."""

    card: dict
    model_state: dict[str, torch.Tensor]
    knn: KNNBaseline
    history: list[dict]
    classes: list[str]
    ids: np.ndarray
    y: np.ndarray  # class indices
    split: np.ndarray
    embeddings: np.ndarray  # the fine-tuned model's penultimate features
    knn_embeddings: np.ndarray  # the frozen pretrained features the kNN uses
    test: np.ndarray  # row indices of the test split
    probs: np.ndarray  # the fine-tuned model's softmax, every row
    knn_share: np.ndarray  # the kNN vote shares, test rows
    knn_pred: np.ndarray  # the kNN's predicted class, test rows
    geometry: dict
    paintings: pd.DataFrame  # id, title, artist, date, url, license, path (as far as known), one row a painting
    images: Sequence[Path]  # each painting's file, for its thumbnail
    umap: np.ndarray | None = None  # [n, 2] map coordinates
    backbone_embeddings: np.ndarray | None = None  # the trained backbone's pooled features, when geometry uses them


def write_run(work: Path, out: str | Path, contents: RunContents,
              before_card: Callable[[dict], None] | None = None) -> Path:
    """Write every file into the staging folder ``work``, the card last, and move it onto ``out``. ``before_card``
    is called with the card just before it is written, so the card can record what writing the rest took."""
    c, labels = contents, np.asarray(contents.classes)[contents.y]
    atomic_save(work / MODEL, lambda tmp: torch.save(c.model_state, tmp))
    c.knn.save(work / KNN)
    atomic_save(work / HISTORY, lambda tmp: pd.DataFrame(c.history).to_csv(tmp, index=False))
    pred = predictions_table(c.ids[c.test], labels[c.test], c.classes, c.probs[c.test], c.knn_share, c.knn_pred)
    atomic_save(work / PREDICTIONS, lambda tmp: pred.to_csv(tmp, index=False))
    atomic_savez(work / EMBEDDINGS, embeddings=c.embeddings.astype(np.float32), ids=c.ids.astype(str),
                 labels=labels.astype(str), split=c.split.astype(str), y=c.y,
                 knn_embeddings=c.knn_embeddings.astype(np.float32), classes=np.array(c.classes),
                 **({} if c.backbone_embeddings is None
                    else {"backbone_embeddings": c.backbone_embeddings.astype(np.float32)}))
    _write_paintings(work, c.paintings.assign(label=labels, split=c.split), c.images)
    atomic_write_json(work / GEOMETRY, c.geometry)
    if c.umap is not None:
        atomic_savez(work / UMAP, coords=c.umap.astype(np.float32), ids=c.ids.astype(str))
    if before_card is not None:
        before_card(c.card)
    atomic_write_json(work / CARD, c.card)  # last: a folder with card.json is complete
    publish(work, out)
    return Path(out)


def predictions_table(ids, true, classes: list[str], probs: np.ndarray, knn_share: np.ndarray,
                      knn_pred: np.ndarray) -> pd.DataFrame:
    """predictions.csv: id, true, both predictions, then ``finetuned:<class>`` and ``knn:<class>`` for every class."""
    pred = pd.DataFrame({"id": ids, "true": true, "pred_finetuned": [classes[i] for i in probs.argmax(1)],
                         "pred_knn": [classes[i] for i in knn_pred]})
    for i, c in enumerate(classes):
        pred[f"finetuned:{c}"] = probs[:, i].round(6)
    for i, c in enumerate(classes):
        pred[f"knn:{c}"] = knn_share[:, i].round(6)
    return pred


def _write_paintings(work: Path, table: pd.DataFrame, images: Sequence[Path]) -> None:
    """A self-contained gallery: metadata and a small thumbnail of every painting, so the app needs no collection."""
    table = table.assign(thumb=[thumb_name(i) for i in table["id"]])
    atomic_save(work / PAINTINGS, lambda tmp: table.to_csv(tmp, index=False))
    for path, thumb in zip(images, table["thumb"]):
        im = fit_within(load_image(path, min_side=THUMB_SIDE), THUMB_SIDE)
        atomic_write_bytes(work / THUMBS / thumb, encode_jpeg(im, quality=85))
