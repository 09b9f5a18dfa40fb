"""``artlab audit``: the three finders over a collection as curated, and what they mean for a run.

``audit_collection`` returns an ``Audit``: the findings table (one row a finding: kind, id, related, score, rank),
the full per-painting rankings the finders computed (for the benchmark and the report), the near-copy groups, and,
given a run, the groups that straddle its splits and its test accuracy with those paintings left out.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from artlab.audit import finders
from artlab.audit.features import collection_features, imagenet_classes
from artlab.audit.verify import VERIFIED, region_match
from artlab.collection.contract import labelled, read_manifest
from artlab.collection.curation import effective
from artlab.collection.duplicates import UnionFind, copy_pairs, group_members, hash_files
from artlab.errors import CollectionError
from artlab.progress import Progress
from artlab.train.selection import artist_folds

KINDS = ("near-copy", "not-a-painting", "label")
COLUMNS = ("kind", "id", "related", "score", "rank")
DEFAULT_TOP = 50  # rows of the not-a-painting and label rankings written to findings.csv


@dataclasses.dataclass
class Audit:
    collection: Path
    label: str | None
    findings: pd.DataFrame  # COLUMNS, plus a ``detail`` column for the report
    pairs: pd.DataFrame  # every near-copy pair: a, b, how, score
    groups: dict[str, str]  # {id: group} of the paintings in a pair
    odd: pd.DataFrame  # every painting's not-a-painting ranking (id, looks_like, confidence, unlike, atypical, score)
    labels: pd.DataFrame | None  # every labelled painting's label scores (id, given, suggested, ..., score)
    seconds: dict[str, float]
    run: dict | None = None  # straddling groups and test accuracies of a run (``run_leakage``)
    threshold: float = 1.0  # the embedding similarity above which a pair was called a copy
    nearest: dict[str, str] = dataclasses.field(default_factory=dict)  # label finding -> nearest of its suggestion

    def of(self, kind: str) -> pd.DataFrame:
        return self.findings[self.findings["kind"] == kind]


def _ranked(kind: str, table: pd.DataFrame, related: str, detail, top: int | None) -> pd.DataFrame:
    table = table.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    if top is not None:
        table = table.head(top)
    return pd.DataFrame({"kind": kind, "id": table["id"], "related": table[related].astype(str),
                         "score": table["score"].round(4), "rank": np.arange(1, len(table) + 1),
                         "detail": [detail(r) for r in table.itertuples()]})


def audit_collection(collection: str | Path, label: str | None = None, backbone: str = "efficientnet_lite0",
                     cache: str | Path | None = None, run=None, n_folds: int = 5, seed: int = 0,
                     top: int | None = DEFAULT_TOP, min_per_class: int = 5,
                     copy_similarity: float = finders.COPY_SIMILARITY,
                     progress: Progress | None = None) -> Audit:
    """Audit the collection as curated (excluded paintings are not looked at again). ``label``: the column whose
    labels are checked (None: no label finder). ``cache``: where the frozen features are kept (default: a
    temporary folder: they are computed again next time)."""
    root, progress = Path(collection), progress or Progress()
    curated = effective(root).manifest
    if curated.empty:
        raise CollectionError(f"{root}: no painting to audit")
    if label is not None and label not in curated.columns:
        raise CollectionError(f"{root / 'manifest.csv'}: no column {label!r} to check")
    seconds, t0 = {}, time.perf_counter()
    ids = curated["id"].astype(str).to_numpy()
    pairs = copy_pairs(hash_files(root, ids, curated["path"]))
    pairs["score"] = np.where(pairs["how"] == "identical file", 1.0, 1.0 - pairs["bits"] / 64.0)
    seconds["hashes"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    every = read_manifest(root)  # features for the whole manifest: the cache outlives curation decisions
    with tempfile.TemporaryDirectory() as scratch:
        feats_all, probs_all = collection_features(root, every["id"].astype(str).tolist(), every["path"].tolist(),
                                                   backbone, Path(cache or scratch), progress)
    rows = pd.Index(every["id"].astype(str)).get_indexer(ids)
    feats, probs = feats_all[rows], probs_all[rows]
    seconds["features"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    emb, threshold = finders.embedding_pairs(ids, feats, copy_similarity)
    known = set(zip(pairs["a"], pairs["b"]))
    emb = emb[np.array([(a, b) not in known for a, b in zip(emb["a"], emb["b"])], dtype=bool)]
    path = dict(zip(ids, curated["path"]))
    emb["score"] = [min(region_match(root / path[a], root / path[b]), 0.999) for a, b in zip(emb["a"], emb["b"])]
    emb = emb[emb["score"] >= VERIFIED]
    pairs = pd.concat([pairs[["a", "b", "how", "score"]], emb[["a", "b", "how", "score"]]], ignore_index=True)
    pairs = _drop_first(pairs, root, path)
    uf = UnionFind(sorted(set(pairs["a"]) | set(pairs["b"])))
    for a, b in zip(pairs["a"], pairs["b"]):
        uf.union(a, b)
    groups = uf.groups()
    odd = finders.not_a_painting(probs, feats, imagenet_classes())
    odd.insert(0, "id", ids)
    seconds["near-copies and not-a-painting"] = time.perf_counter() - t0

    t0, lab = time.perf_counter(), None
    if label is not None:
        lab = _label_finder(curated, label, feats, n_folds, seed, min_per_class)
    seconds["label"] = time.perf_counter() - t0

    parts = [_ranked("near-copy", pairs.rename(columns={"a": "id"}), "b",
                     lambda r: f"{r.how}; group {groups[r.id]}", None),
             _ranked("not-a-painting", odd, "looks_like",
                     lambda r: f"looks like: {r.looks_like} ({r.confidence:.0%}); atypical {r.atypical:.2f}", top)]
    if lab is not None:
        suspects = lab[(lab["suggested"] != lab["given"]) & ((lab["margin"] < 0.5) | lab["issue"])]
        parts.append(_ranked("label", suspects, "suggested",
                             lambda r: f"labelled {r.given}, the models say {r.suggested} (self-confidence "
                                       f"{r.self_confidence:.2f})", top))
    findings = pd.concat(parts, ignore_index=True)
    audit = Audit(root, label, findings, pairs, groups, odd, lab, seconds, threshold=threshold,
                  nearest=_nearest_of_suggestion(findings, lab, ids, feats))
    if run is not None:
        audit.run = run_leakage(run, groups)
    return audit


def _pixels(file: Path) -> int:
    from PIL import Image
    try:
        with Image.open(file) as im:  # the header only
            return im.width * im.height
    except Exception:  # noqa: BLE001 - an unreadable file is the one to leave out
        return -1


def _drop_first(pairs: pd.DataFrame, root: Path, path: dict[str, str]) -> pd.DataFrame:
    """Each pair ordered so that ``a`` (the finding's ``id``, the one its decision leaves out) is the smaller
    picture, ``b`` (kept) the larger scan; equal sizes: the larger id goes."""
    size = {pid: _pixels(root / path[pid]) for pid in set(pairs["a"]) | set(pairs["b"])}
    def drop(pid):  # the one to leave out ranks higher: fewer pixels, then the larger id
        return -size[pid], pid

    swap = np.array([drop(a) < drop(b) for a, b in zip(pairs["a"], pairs["b"])], dtype=bool)
    out = pairs.copy()
    out.loc[swap, ["a", "b"]] = out.loc[swap, ["b", "a"]].to_numpy()
    return out


def _label_finder(curated: pd.DataFrame, label: str, feats: np.ndarray, n_folds: int, seed: int,
                  min_per_class: int) -> pd.DataFrame | None:
    """Out-of-fold probabilities (artist-grouped folds, artlab.train.selection) -> confident learning's scores,
    for the paintings of the classes with at least ``min_per_class`` (and ``n_folds``) paintings."""
    rows = labelled(curated, label)
    counts = rows[label].value_counts()
    classes = sorted(c for c, n in counts.items() if n >= max(min_per_class, n_folds))
    rows = rows[rows[label].isin(classes)]
    if len(classes) < 2:
        return None
    y = rows[label].map({c: i for i, c in enumerate(classes)}).to_numpy()
    position = curated.index.get_indexer(rows.index)
    folds = artist_folds(y, rows["artist"], n_folds, seed)
    probs = finders.out_of_fold(feats[position], y, folds, len(classes), seed)
    table = finders.label_scores(probs, y, classes)
    table.insert(0, "id", rows["id"].astype(str).to_numpy())
    return table


def _nearest_of_suggestion(findings: pd.DataFrame, lab: pd.DataFrame | None, ids: np.ndarray,
                           feats: np.ndarray) -> dict[str, str]:
    """For each label finding, the most similar painting carrying the suggested label (shown beside it)."""
    if lab is None:
        return {}
    unit, row = finders.centred(feats), {pid: i for i, pid in enumerate(ids)}
    given = dict(zip(lab["id"], lab["given"]))
    out = {}
    for r in findings[findings["kind"] == "label"].itertuples():
        candidates = [row[p] for p, g in given.items() if g == r.related and p != r.id]
        if candidates:
            sims = unit[candidates] @ unit[row[r.id]]
            out[r.id] = str(ids[candidates[int(np.argmax(sims))]])
    return out


def run_leakage(run, groups: dict[str, str]) -> dict:
    """For a run (artlab.runfolder.Run): the near-copy groups with paintings in more than one of its splits, and
    both models' test accuracy on all test paintings and on those without a copy in another split."""
    paintings = run.paintings()
    split = pd.Series(paintings["split"].to_numpy(), index=paintings["id"].astype(str))
    across = {g: sorted(m) for g, m in group_members(split, groups)[1].items()}
    leaked = {p for m in across.values() for p in m if split[p] == "test"}
    pred = run.predictions()
    clean = ~pred["id"].astype(str).isin(leaked)
    acc = {}
    for model in ("finetuned", "knn"):
        hit = pred["true"] == pred[f"pred_{model}"]
        acc[model] = {"all": float(hit.mean()) if len(hit) else float("nan"),
                      "without_copies": float(hit[clean].mean()) if clean.any() else float("nan")}
    return {"run": str(run.path), "groups_across_splits": len(across),
            "paintings_affected": sum(len(m) for m in across.values()), "test_paintings_left_out": len(leaked),
            "test_paintings": int(len(pred)), "accuracy": acc, "groups": list(across.values())}
