"""The audit's three finders, pure functions of arrays (docs/audit.md):

* ``embedding_pairs``: the same painting in another scan or crop, from pooled features (nearest neighbours through
  artlab.model.knn, which switches to FAISS at scale);
* ``not_a_painting``: the backbone's own ImageNet head (what the picture looks like) and an outlier score on the
  features, combined by rank;
* ``label_scores``: confident learning's label-quality scores (Northcutt, Jiang and Chuang 2021, "Confident
  Learning: Estimating Uncertainty in Dataset Labels", JAIR 70: 1373-1411) on out-of-fold probabilities.

The identical files and near-identical pictures are artlab.collection.duplicates (cheap, also used at training).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from artlab.model.knn import KNNBaseline, l2_normalise

NEIGHBOURS = 5
#: An embedding pair is a near-copy when its similarity stands this many robust standard deviations (1.4826 x the
#: median absolute deviation) above the collection's typical nearest-neighbour similarity.
OUTLYING_SIMILARITY = 4.0


def centred(feats: np.ndarray) -> np.ndarray:
    """Features minus the collection's mean, L2-normalised: pooled ReLU features all point one way, and their raw
    cosines crowd near 1; centred, two different paintings sit near 0 and a copy stands out."""
    f = np.asarray(feats, dtype=np.float32)
    return l2_normalise(f - f.mean(0, keepdims=True))


def neighbours(unit: np.ndarray, k: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """(cosine similarities, indices) of each row's ``k`` nearest other rows (itself left out)."""
    k = min(k, len(unit) - 1)
    knn = KNNBaseline(k=k + 1, n_classes=1).fit(unit, np.zeros(len(unit), dtype=np.int64))
    sims, idx = knn.kneighbors(unit, k + 1)
    keep = idx != np.arange(len(unit))[:, None]
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # drop self wherever ties put it
    return np.take_along_axis(sims, order, 1), np.take_along_axis(idx, order, 1)


def similarity_threshold(nearest: np.ndarray, spread: float = OUTLYING_SIMILARITY) -> float:
    """The similarity above which a pair is a copy: the median nearest-neighbour similarity plus ``spread`` robust
    standard deviations of it (the collection's own scale, whatever the backbone)."""
    med = float(np.median(nearest))
    mad = float(np.median(np.abs(nearest - med))) * 1.4826
    return med + spread * max(mad, 1e-3)


def embedding_pairs(ids, feats: np.ndarray, threshold: float | None = None) -> tuple[pd.DataFrame, float]:
    """(a, b, how, sim: one row a pair whose centred cosine similarity reaches ``threshold``; the threshold used)."""
    ids = np.asarray(ids).astype(str)
    if len(ids) < 3:
        return pd.DataFrame(columns=["a", "b", "how", "sim"]), 1.0
    unit = centred(feats)
    sims, idx = neighbours(unit)
    threshold = similarity_threshold(sims[:, 0]) if threshold is None else threshold
    rows = {}
    for i, j in zip(*np.nonzero(sims >= threshold)):
        a, b = sorted((i, int(idx[i, j])))
        rows[(a, b)] = float(sims[i, j])
    table = [(ids[a], ids[b], "same painting, another scan or crop", s) for (a, b), s in sorted(rows.items())]
    return pd.DataFrame(table, columns=["a", "b", "how", "sim"]), threshold


def rank_fraction(x: np.ndarray) -> np.ndarray:
    """Each value's rank as a fraction in (0, 1] (ties averaged): 1 is the largest."""
    return pd.Series(x).rank(method="average").to_numpy() / len(x)


def not_a_painting(probs: np.ndarray, feats: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    """Per painting: ``looks_like`` (the ImageNet class it is most like), ``surprise``, ``outlier`` and ``score``.

    ``surprise`` is the cross-entropy of its ImageNet prediction under the collection's mean prediction: what the
    collection typically looks like to ImageNet (paintings: book jacket, comic book, frame) costs little, a
    confident vase, necklace or dog costs much. ``outlier`` is one minus the mean similarity to its nearest
    neighbours (centred features). ``score`` is the mean of their rank fractions: suspect by both, first."""
    probs = np.asarray(probs, dtype=np.float64)
    typical = probs.mean(0)
    surprise = (probs * -np.log(typical + 1e-12)).sum(1)
    sims, _ = neighbours(centred(feats)) if len(probs) > 2 else (np.ones((len(probs), 1)), None)
    outlier = 1.0 - sims.mean(1)
    top = probs.argmax(1)
    return pd.DataFrame({"looks_like": [class_names[t] for t in top], "confidence": probs.max(1),
                         "surprise": surprise, "outlier": outlier,
                         "score": (rank_fraction(surprise) + rank_fraction(outlier)) / 2})


def out_of_fold(feats: np.ndarray, y: np.ndarray, folds: np.ndarray, n_classes: int, seed: int = 0) -> np.ndarray:
    """Each painting's class probabilities from a logistic regression (scikit-learn) fitted on the other folds'
    centred, L2-normalised features: no painting is judged by a model that saw its label."""
    from sklearn.linear_model import LogisticRegression
    x = centred(feats)
    out = np.zeros((len(y), n_classes))
    for f in np.unique(folds):
        test, train = folds == f, folds != f
        model = LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(x[train], y[train])
        out[np.ix_(test, model.classes_)] = model.predict_proba(x[test])
    return out


def self_confidence(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Confident learning's self-confidence, p̂(ỹ = i; x) for the given label i (Northcutt et al. 2021, section
    3.1's per-class thresholds are its class means): low for a suspect label."""
    return np.asarray(probs)[np.arange(len(labels)), labels]


def normalized_margin(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The margin p̂(ỹ = i; x) - max_{j != i} p̂(ỹ = j; x) of the given label i over the likeliest other class (the
    ordering of Northcutt et al. 2021's "prune by noise rate", section 3.2), mapped from [-1, 1] to [0, 1]."""
    p = np.asarray(probs, dtype=np.float64)
    own = self_confidence(p, labels)
    others = p.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    return (own - others.max(1) + 1.0) / 2.0


def confident_joint_issues(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Confident learning's off-diagonal of the confident joint (Northcutt et al. 2021, section 3.1, eq. 1): with
    t_j the mean self-confidence of the paintings labelled j, a painting labelled i counts as truly j when
    p̂(ỹ = j; x) >= t_j (the likeliest such j); it is an issue when that j is not i. True where so."""
    p = np.asarray(probs, dtype=np.float64)
    n_classes = p.shape[1]
    t = np.array([p[labels == j, j].mean() if np.any(labels == j) else np.inf for j in range(n_classes)])
    above = np.where(p >= t[None, :], p, -np.inf)
    has = np.isfinite(above).any(1)
    return has & (above.argmax(1) != labels)


def label_scores(probs: np.ndarray, labels: np.ndarray, classes: list[str], score: str = "normalized_margin"
                 ) -> pd.DataFrame:
    """Per painting: ``given``, ``suggested`` (the likeliest other class), ``self_confidence``, ``margin``
    (normalised), ``issue`` (the confident joint's) and ``score`` (higher: more suspect; one minus the chosen
    label-quality score)."""
    p = np.asarray(probs, dtype=np.float64)
    others = p.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    quality = {"normalized_margin": normalized_margin, "self_confidence": self_confidence}[score](p, labels)
    return pd.DataFrame({"given": [classes[i] for i in labels], "suggested": [classes[j] for j in others.argmax(1)],
                         "self_confidence": self_confidence(p, labels), "margin": normalized_margin(p, labels),
                         "issue": confident_joint_issues(p, labels), "score": 1.0 - quality})
