"""Model selection for a small collection: repeated, artist-grouped cross-validation on cached frozen features.

On the 174 demo paintings one validation split of 18 decides by one or two paintings. Here every painting of the
collection is predicted once per repeat, by a model trained on folds that hold none of its artist's paintings
(named artists stay in one fold; unidentified ones are single paintings and fall anywhere), and a candidate is
judged on the mean and spread over repeats of its accuracy, its macro recall and each class's recall.

Every candidate is a frozen backbone (``transfer``) + a classifier on its pooled features, so the backbone runs once
per painting and view: ``extract`` caches the features (one file per backbone and view, written atomically,
reused on the next call), and the folds train only heads, in seconds. The candidates:

* heads ``linear`` / ``mlp3`` (model.classifier.Head), trained as artlab.train.runner trains a cached transfer run
  (Adam, batches of 32, each epoch every painting draws one of its training views), with weight decay and/or the
  class-balanced loss;
* the kNN baseline (model.knn.KNNBaseline) with k and its vote (uniform, distance-weighted, class-balanced);
* a nearest-class-centroid classifier on L2-normalised features (the culture study's geometry: one mean a class, so
  a class of 5 weighs as much as one of 50);

each on a set of test-time views (model.views.VIEWS) whose features are averaged. Nothing outside the collection is
read. The command line is ``python -m artlab.cli.select`` (``make demo-select``).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from artlab.collection.contract import read_manifest
from artlab.errors import ConfigError
from artlab.io import atomic_savez, atomic_write_json, atomic_write_text
from artlab.model.backbones import get_backbone
from artlab.model.classifier import Embedder, Head
from artlab.model.knn import KNNBaseline, l2_normalise
from artlab.model.transforms import train_transform
from artlab.model.views import view_transform
from artlab.progress import Progress
from artlab.report.calibration import cross_fitted as honesty
from artlab.train.config import TrainConfig
from artlab.train.data import ImageDataset, class_weights, in_order, make_task
from artlab.train.frozen import fill
from artlab.train.splits import UNKNOWN_ARTISTS

CROPS = 4  # the runner's default augmented views (TrainConfig.cache_views): "crop0".."crop3"
VIEW_SETS = {  # test-time views -> the views a head trains on (centre sets also on the runner's random crops)
    "centre": (("centre",), ("crop0", "crop1", "crop2", "crop3")),
    "centre+flip": (("centre", "centre-flip"), ("centre", "centre-flip", "crop0", "crop1", "crop2", "crop3")),
    "whole+flip": (("whole", "whole-flip"), ("whole", "whole-flip")),
    "all": (("centre", "centre-flip", "whole", "whole-flip"),
            ("centre", "centre-flip", "whole", "whole-flip", "crop0", "crop1", "crop2", "crop3")),
}


@dataclasses.dataclass(frozen=True)
class Candidate:
    backbone: str
    views: str  # a key of VIEW_SETS
    model: str  # "linear", "mlp3", "knn" or "centroid"
    weight_decay: float = 0.0
    balanced: bool = False  # heads: class-weighted loss
    epochs: int = 0
    k: int = 0
    vote: str = "uniform"

    @property
    def seen_views(self) -> tuple[str, ...]:
        """The views whose features it needs: the test views, and for a head its training views too."""
        test_views, train_views = VIEW_SETS[self.views]
        return test_views + train_views if self.model in ("linear", "mlp3") else test_views

    @property
    def name(self) -> str:
        if self.model in ("linear", "mlp3"):
            what = f"{self.model} wd={self.weight_decay:g}{' balanced' if self.balanced else ''} {self.epochs} ep"
        elif self.model == "knn":
            what = f"knn k={self.k} {self.vote}"
        else:
            what = "centroid"
        return f"{self.backbone.replace('efficientnet_', '')} {self.views} {what}"


HEAD_VIEW_SETS = ("centre", "whole+flip")


def default_candidates(backbones=("efficientnet_lite0", "efficientnet_lite2"), head_backbones=None) -> list[Candidate]:
    """Per backbone and view set: the linear head plain and with the class-balanced loss, the mlp3 head
    class-balanced with and without weight decay (on one repeat of the genre folds, weight decay 1e-2 changed no
    linear head's prediction, and the plain mlp3 ranked below the balanced one; the culture study's plain mlp3 is
    ``TODAY``'s culture recipe); the kNN at k = 3, 5, 9 with uniform and balanced votes, and distance-weighted at
    k = 9 (at k = 3 and 5 it measured the same as uniform: 1 / cosine distance varies little between near
    neighbours); the nearest centroid. Heads are the cost (1-4 s a fit on a busy 2-core machine, 15 fits a
    candidate): the class-balanced heads run on the centre and whole-painting view sets only (on the genre folds
    with Lite0, centre+flip and all four views ranked with or below the centre for both heads)."""
    out = []
    for backbone, views in itertools.product(backbones, VIEW_SETS):
        if views in HEAD_VIEW_SETS and (head_backbones is None or backbone in head_backbones):
            out += [Candidate(backbone, views, model, 0.0, True, epochs) for model, epochs in (("linear", 30),
                                                                                               ("mlp3", 60))]
        for k, vote in itertools.product((3, 5, 9), ("uniform", "balanced")):
            out.append(Candidate(backbone, views, "knn", k=k, vote=vote))
        out += [Candidate(backbone, views, "knn", k=9, vote=v) for v in ("distance", "distance-balanced")]
        out.append(Candidate(backbone, views, "centroid"))
    if backbones:  # weight decay, on the first backbone's centre view
        out += [Candidate(backbones[0], "centre", m, 1e-2, True, e) for m, e in (("linear", 30), ("mlp3", 60))]
        # fewer epochs: the heads' validation loss is lowest after a few epochs, and later ones train in
        # overconfidence (the out-of-fold log loss and ECE measure it)
        out += [Candidate(backbones[0], "centre", m, 0.0, True, e) for m, e in (("linear", 10), ("linear", 15),
                                                                                ("mlp3", 10), ("mlp3", 20),
                                                                                ("mlp3", 30))]
    return out


# --- folds --------------------------------------------------------------------------------------------------------

def artist_groups(artists: pd.Series) -> np.ndarray:
    """One group label a painting: its artist, or the painting alone when the artist is unknown."""
    keys = artists.fillna("").astype(str).str.strip()
    unknown = keys.str.lower().isin(UNKNOWN_ARTISTS).to_numpy()
    return np.where(unknown, [f"__solo{i}" for i in range(len(keys))], keys.to_numpy())


def artist_folds(y: np.ndarray, artists: pd.Series, n_folds: int, seed: int) -> np.ndarray:
    """A fold index a painting, stratified by class, no named artist in two folds (scikit-learn's
    StratifiedGroupKFold, shuffled by ``seed``)."""
    from sklearn.model_selection import StratifiedGroupKFold
    folds, groups = np.full(len(y), -1), artist_groups(artists)
    if len(set(groups)) < n_folds:
        raise ConfigError(f"{n_folds} artist-grouped folds need at least {n_folds} artists; these paintings have "
                          f"{len(set(groups))} (use fewer folds)")
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for f, (_, test) in enumerate(splitter.split(np.zeros(len(y)), y, groups)):
        folds[test] = f
    return folds


# --- features -----------------------------------------------------------------------------------------------------

def extract(collection: Path, ids: list[str], paths: list[str], backbone: str, views: list[str], cache: Path,
            seed: int = 0, batch_size: int = 32, progress: Progress | None = None) -> dict[str, np.ndarray]:
    """{view: (n, feature_dim)} pooled frozen features of the paintings, from ``cache`` when already there."""
    progress, spec = progress or Progress(), get_backbone(backbone)
    cache.mkdir(parents=True, exist_ok=True)
    out, embedder = {}, None
    for view in views:
        file = cache / f"{backbone}-{view}.npz"
        if file.is_file():
            with np.load(file, allow_pickle=False) as z:
                if z["ids"].tolist() == list(ids) and int(z["seed"]) == seed:
                    out[view] = z["features"]
                    continue
        if embedder is None:
            parts, _ = spec.parts(pretrained=True)
            embedder = Embedder(parts).eval()
        if view.startswith("crop"):  # the runner's augmentation, seeded per painting
            ds = ImageDataset(collection, paths, train_transform(spec), min_side=spec.resize_size,
                              seed=seed * 100 + int(view[4:]))
        else:
            ds = ImageDataset(collection, paths, view_transform(spec, view), min_side=spec.resize_size)
        feats = fill(embedder, in_order(ds, batch_size), len(ds), "cpu", progress, f"{backbone} {view}").numpy()
        atomic_savez(file, features=feats.astype(np.float32), ids=np.array(ids), seed=np.int64(seed))
        out[view] = feats.astype(np.float32)
    return out


def features_of(collection: Path, ids: pd.Series, backbone: str, cache: Path, seed: int = 0,
                progress: Progress | None = None, views: list[str] | None = None) -> dict[str, np.ndarray]:
    """The features of the paintings ``ids`` in ``views`` (default: every view of VIEW_SETS), extracted (once) for
    the whole collection: one cache serves both tasks."""
    every = read_manifest(collection)
    views = sorted(views or {v for s in VIEW_SETS.values() for part in s for v in part})
    feats = extract(collection, every["id"].tolist(), every["path"].tolist(), backbone, views, cache, seed, 32,
                    progress)
    rows = pd.Index(every["id"]).get_indexer(ids)
    return {v: f[rows] for v, f in feats.items()}


# --- classifiers on features --------------------------------------------------------------------------------------

def train_head(train_views: np.ndarray, y: np.ndarray, n_classes: int, c: Candidate, seed: int) -> Head:
    """A head trained as the runner trains a cached transfer run: ``train_views`` is [V, n, d]; each epoch every
    painting draws one of its V views, shuffled batches of 32, Adam at 1e-3, no early stopping."""
    torch.manual_seed(seed)
    head = Head(c.model, train_views.shape[2], n_classes)
    opt = torch.optim.Adam(head.parameters(), lr=1e-3, weight_decay=c.weight_decay)
    weight = class_weights(y, n_classes) if c.balanced else None
    criterion = nn.CrossEntropyLoss(weight=weight)
    xs, ys = torch.from_numpy(train_views), torch.from_numpy(y)
    n = len(y)
    head.train()
    for _ in range(c.epochs):
        order, view = torch.randperm(n), torch.randint(len(xs), (n,))
        for i in range(0, n, 32):
            idx = order[i:i + 32]
            loss = criterion(head(xs[view[idx], idx]), ys[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return head.eval()


class NearestCentroid:
    """Cosine similarity to each class's mean L2-normalised feature; ``predict_proba`` is a softmax over them."""

    def fit(self, X: np.ndarray, y: np.ndarray, n_classes: int) -> "NearestCentroid":
        Xn = l2_normalise(X)
        self.centroids_ = l2_normalise(np.stack([Xn[y == c].mean(0) if np.any(y == c) else np.zeros(X.shape[1])
                                                 for c in range(n_classes)]))
        return self

    def scores(self, X: np.ndarray) -> np.ndarray:
        return l2_normalise(X) @ self.centroids_.T


def fold_scores(c: Candidate, feats: dict[str, np.ndarray], y: np.ndarray, train: np.ndarray, test: np.ndarray,
                n_classes: int, seed: int) -> np.ndarray:
    """Class scores of the ``test`` paintings from ``c`` fitted on the ``train`` paintings (rows of ``feats``)."""
    test_views, train_views = VIEW_SETS[c.views]
    mean = np.mean([feats[v] for v in test_views], axis=0)  # what a run predicts from (TrainConfig.views)
    if c.model == "knn":
        knn = KNNBaseline(k=c.k, n_classes=n_classes, vote=c.vote).fit(mean[train], y[train])
        return knn.scores(mean[test])
    if c.model == "centroid":
        return NearestCentroid().fit(mean[train], y[train], n_classes).scores(mean[test])
    stacked = np.stack([feats[v][train] for v in train_views])
    head = train_head(stacked, y[train], n_classes, c, seed)
    with torch.no_grad():
        return torch.softmax(head(torch.from_numpy(mean[test])), dim=1).numpy()


def recalls(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    return np.array([np.mean(pred[y == c] == c) if np.any(y == c) else np.nan for c in range(n_classes)])


def cross_validate(c: Candidate, feats: dict[str, np.ndarray], y: np.ndarray, folds: np.ndarray,
                   n_classes: int) -> dict:
    """Per repeat (a row of ``folds``): out-of-fold predictions of every painting -> accuracy, macro recall and
    per-class recall; for heads also how honest their probabilities are (``honesty``); returned as arrays over
    repeats."""
    acc, macro, per_class, honest = [], [], [], []
    for r, assignment in enumerate(folds):
        scores = np.zeros((len(y), n_classes))
        for f in np.unique(assignment):
            test, train = np.flatnonzero(assignment == f), np.flatnonzero(assignment != f)
            scores[test] = fold_scores(c, feats, y, train, test, n_classes, seed=r * 100 + int(f))
        pred = scores.argmax(1)
        rec = recalls(y, pred, n_classes)
        acc.append(float(np.mean(pred == y))), macro.append(float(np.nanmean(rec))), per_class.append(rec)
        if c.model in ("linear", "mlp3"):  # the kNN's vote shares and the centroid's cosines are not probabilities
            honest.append(honesty(scores, y, assignment))
    out = {"accuracy": np.array(acc), "macro_recall": np.array(macro), "per_class": np.array(per_class)}
    if honest:
        out.update({k: np.array([h[k] for h in honest]) for k in honest[0]})
    return out


@dataclasses.dataclass
class Selection:
    label: str
    classes: list[str]
    counts: dict[str, int]
    n_folds: int
    repeats: int
    table: pd.DataFrame  # one row a candidate, best first

    @property
    def winner(self) -> dict:
        return self.table.iloc[0].to_dict()


def select(collection: str | Path, label: str, candidates: list[Candidate], cache: str | Path, n_folds: int = 5,
           repeats: int = 3, seed: int = 0, min_per_class: int = 5, progress: Progress | None = None) -> Selection:
    """Cross-validate every candidate on the collection's ``label`` task; the table ranks them by mean macro recall
    (per-class recall, not class size, decides) and, among those within a painting's worth of the best, by how
    honest their probabilities are (``rank``)."""
    progress = progress or Progress()
    task = make_task(TrainConfig(collection=str(collection), label=label, min_per_class=min_per_class, seed=seed,
                                 method="transfer"))
    df, classes = task.df, task.classes
    y = df["y"].to_numpy()
    folds = np.stack([artist_folds(y, df["artist"], n_folds, seed * 1000 + r) for r in range(repeats)])
    rows, feats_by_backbone = [], {}
    for c in candidates:
        if c.backbone not in feats_by_backbone:
            views = sorted({v for d in candidates if d.backbone == c.backbone for v in d.seen_views})
            feats_by_backbone[c.backbone] = features_of(task.root, df["id"], c.backbone, Path(cache), seed, progress,
                                                        views)
        done = Path(cache) / "rows" / f"{label}-{n_folds}x{repeats}-seed{seed}-{c.name.replace(' ', '_')}.json"
        if done.is_file():  # an interrupted selection resumes: finished candidates are not fitted again
            saved = json.loads(done.read_text())
            if "ece" in saved or c.model not in ("linear", "mlp3"):  # heads saved before the honesty figures: again
                rows.append(saved)
                continue
        res = cross_validate(c, feats_by_backbone[c.backbone], y, folds, len(classes))
        row = {"candidate": c.name, **dataclasses.asdict(c),
               "accuracy": res["accuracy"].mean(), "accuracy_sd": res["accuracy"].std(ddof=1) if repeats > 1 else 0.0,
               "macro_recall": res["macro_recall"].mean(),
               "macro_recall_sd": res["macro_recall"].std(ddof=1) if repeats > 1 else 0.0,
               "min_recall": float(np.nanmin(res["per_class"].mean(0)))}
        row.update({f"recall:{cls}": float(v) for cls, v in zip(classes, res["per_class"].mean(0))})
        for key in HONESTY:  # heads only: NaN for the kNN and the centroid
            row[key] = float(res[key].mean()) if key in res else float("nan")
            row[f"{key}_sd"] = float(res[key].std(ddof=1)) if key in res and repeats > 1 else float("nan")
        row = {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in row.items()}
        done.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(done, row)
        rows.append(row)
        progress.message(f"{label}: {c.name}: accuracy {row['accuracy']:.3f} +- {row['accuracy_sd']:.3f}, "
                         f"macro recall {row['macro_recall']:.3f} +- {row['macro_recall_sd']:.3f}")
    counts = {c: int((y == i).sum()) for i, c in enumerate(classes)}
    table = rank(pd.DataFrame(rows), recall_tolerance(counts, repeats))
    return Selection(label, classes, counts, n_folds, repeats, table.reset_index(drop=True))


HONESTY = ("ece_raw", "ece", "log_loss_raw", "log_loss", "temperature")


def rank(table: pd.DataFrame, tolerance: float = 0.0) -> pd.DataFrame:
    """Best first: the candidates within ``tolerance`` of the best mean macro recall, the head whose out-of-fold
    probabilities are most honest first (ECE after calibration, then log loss; a candidate without probabilities
    after the heads); then the others by macro recall, then accuracy. ``tolerance`` (``recall_tolerance``) is what
    one painting of the smallest class moves macro recall by in one repeat: a smaller difference is no evidence."""
    t = table.copy()
    for key in HONESTY:
        if key not in t:  # rows saved before the honesty figures (a resumed selection)
            t[key] = np.nan
    t["_near"] = t["macro_recall"] >= t["macro_recall"].max() - tolerance - 1e-12
    t["_ece"] = t["ece"].where(t["_near"])
    t["_ll"] = t["log_loss"].where(t["_near"])
    t = t.sort_values(["_near", "_ece", "_ll", "macro_recall", "accuracy"],
                      ascending=[False, True, True, False, False], kind="stable", na_position="last")
    return t.drop(columns=["_near", "_ece", "_ll"])


def recall_tolerance(counts: dict[str, int], repeats: int) -> float:
    """1 / (smallest class x classes x repeats): one painting of the smallest class, in one repeat, in macro
    recall (genre: 1 / (5 x 4 x 3) = 0.017)."""
    return 1.0 / (max(1, min(counts.values())) * len(counts) * max(1, repeats))


def shippable(table: pd.DataFrame) -> dict[str, dict]:
    """What a run can ship from a ranked table: its best head, and the best kNN on the same backbone and views (a
    run's two models share its frozen features). The centroid is measured, not shipped (a run has no slot for it)."""
    heads = table[table["model"].isin(["linear", "mlp3"])]
    head = heads.iloc[0].to_dict()
    same = (table["backbone"] == head["backbone"]) & (table["views"] == head["views"])
    knns = table[(table["model"] == "knn") & same]
    return {"head": head, "knn": knns.iloc[0].to_dict() if len(knns) else None}


# --- the results file ---------------------------------------------------------------------------------------------

def markdown(sel: Selection, baseline: str | None = None) -> str:
    """The ranked table (mean +- standard deviation over repeats), per-class recalls included."""
    lines = [f"### {sel.label}: {len(sel.classes)} classes "
             f"({', '.join(f'{c} {n}' for c, n in sel.counts.items())}), {sel.n_folds} artist-grouped folds x "
             f"{sel.repeats} repeats", "",
             "| rank | candidate | accuracy | macro recall | " + " | ".join(f"recall {c}" for c in sel.classes)
             + " | ECE raw -> calibrated | log loss raw -> calibrated | T |",
             "|---|---|---|---|" + "---|" * len(sel.classes) + "---|---|---|"]
    for i, r in sel.table.iterrows():
        mark = " (today's recipe)" if baseline and r["candidate"] == baseline else ""
        lines.append(f"| {i + 1} | {r['candidate']}{mark} | {r['accuracy']:.3f} +- {r['accuracy_sd']:.3f} | "
                     f"{r['macro_recall']:.3f} +- {r['macro_recall_sd']:.3f} | "
                     + " | ".join(f"{r[f'recall:{c}']:.2f}" for c in sel.classes) + " | " + _honest_cells(r) + " |")
    return "\n".join(lines) + "\n"


def _honest_cells(r) -> str:
    if pd.isna(r.get("ece", np.nan)):
        return "- | - | -"
    return (f"{r['ece_raw']:.3f} -> {r['ece']:.3f} +- {r['ece_sd']:.3f} | "
            f"{r['log_loss_raw']:.3f} -> {r['log_loss']:.3f} +- {r['log_loss_sd']:.3f} | {r['temperature']:.2f}")


def write_results(out: Path, sel: Selection, baseline: str | None = None) -> Path:
    """cv-LABEL.csv (every candidate's figures), cv-LABEL.md (the ranked table), cv-LABEL-winner.json; and
    cv-results.md, the tables of every label selected so far in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"cv-{sel.label}.csv", sel.table.to_csv(index=False))
    atomic_write_text(out / f"cv-{sel.label}.md", markdown(sel, baseline))
    atomic_write_json(out / f"cv-{sel.label}-winner.json", {"best": sel.winner, **shippable(sel.table)})
    tables = [f.read_text() for f in sorted(out.glob("cv-*.md")) if f.name != "cv-results.md"]
    atomic_write_text(out / "cv-results.md", "# Cross-validated model selection on the demo collection "
                      "(`make demo-select`)\n\n" + "\n".join(tables))
    return out / "cv-results.md"


#: Today's shipped recipes (configs/demo.toml before this selection), named as candidates, for the margins.
TODAY = {"genre": Candidate("efficientnet_lite0", "centre", "linear", epochs=30),
         "culture": Candidate("efficientnet_lite0", "centre", "mlp3", epochs=60)}
