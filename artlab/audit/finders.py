"""The audit's three finders, pure functions of arrays (docs/audit.md):

* ``embedding_pairs``: the same painting in another scan or crop, from pooled features (nearest neighbours through
  artlab.model.knn, which switches to FAISS at scale);
* ``not_a_painting``: the backbone's own ImageNet head (what the picture looks like, against what the collection
  typically looks like) and an outlier score on the features, combined by rank;
* ``label_scores``: confident learning's label-quality scores (Northcutt, Jiang and Chuang 2021, "Confident
  Learning: Estimating Uncertainty in Dataset Labels", JAIR 70: 1373-1411) on out-of-fold probabilities.

The identical files and near-identical pictures are artlab.collection.duplicates (cheap, also used at training).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from artlab.model.knn import KNNBaseline, l2_normalise

NEIGHBOURS = 5
QUERY_BLOCK = 1024  # paintings searched at once: a block x n similarity matrix, not n x n
#: Two paintings whose centred features (``centred``) have at least this cosine similarity are candidates for the
#: same painting in another scan or crop, checked in pixels next (artlab.audit.verify). Measured on the 174 demo
#: paintings with EfficientNet-Lite0's centre view: no two distinct paintings reach 0.56; copies cropped by 8-15% a
#: side reach 0.62-0.78 (benchmarks/bench_audit.py). Another backbone may need another value (``--copy-similarity``).
COPY_SIMILARITY = 0.5
#: The ImageNet classes that make up this share of the collection's mean ImageNet prediction are what its
#: paintings typically look like to ImageNet (for the demo: altar, vestment, book jacket, comic book, cloak, ...).
TYPICAL_MASS = 0.3


def centred(feats: np.ndarray) -> np.ndarray:
    """Features minus the collection's mean, L2-normalised: pooled ReLU features all point one way, and their raw
    cosines crowd near 1; centred, two different paintings sit near 0 and a copy stands out."""
    f = np.asarray(feats, dtype=np.float32)
    return l2_normalise(f - f.mean(0, keepdims=True))


def neighbours(unit: np.ndarray, k: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """(cosine similarities, indices) of each row's ``k`` nearest other rows (itself left out)."""
    k = min(k, len(unit) - 1)
    knn = KNNBaseline(k=k + 1, n_classes=1).fit(unit, np.zeros(len(unit), dtype=np.int64))
    found = [knn.kneighbors(unit[i:i + QUERY_BLOCK], k + 1) for i in range(0, len(unit), QUERY_BLOCK)]
    sims, idx = np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])
    keep = idx != np.arange(len(unit))[:, None]
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # drop self wherever ties put it
    return np.take_along_axis(sims, order, 1), np.take_along_axis(idx, order, 1)


def embedding_pairs(ids, feats: np.ndarray, threshold: float = COPY_SIMILARITY) -> tuple[pd.DataFrame, float]:
    """(a, b, how, sim: one row a pair of near neighbours whose centred cosine similarity reaches ``threshold``;
    the threshold)."""
    ids = np.asarray(ids).astype(str)
    if len(ids) < 3:
        return pd.DataFrame(columns=["a", "b", "how", "sim"]), threshold
    sims, idx = neighbours(centred(feats))
    rows = {}
    for i, j in zip(*np.nonzero(sims >= threshold)):
        a, b = sorted((i, int(idx[i, j])))
        rows[(a, b)] = float(sims[i, j])
    table = [(ids[a], ids[b], "same painting, another scan or crop", s) for (a, b), s in sorted(rows.items())]
    return pd.DataFrame(table, columns=["a", "b", "how", "sim"]), threshold


def rank_fraction(x: np.ndarray) -> np.ndarray:
    """Each value's rank as a fraction in (0, 1] (ties averaged): 1 is the largest."""
    return pd.Series(x).rank(method="average").to_numpy() / len(x)


def typical_classes(probs: np.ndarray, mass: float = TYPICAL_MASS) -> np.ndarray:
    """The ImageNet classes that, most probable first, make up ``mass`` of the collection's mean prediction."""
    typical = np.asarray(probs, dtype=np.float64).mean(0)
    order = np.argsort(-typical, kind="stable")
    return order[:int(np.searchsorted(np.cumsum(typical[order]), mass)) + 1]


def not_a_painting(probs: np.ndarray, feats: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    """Per painting: ``looks_like`` (its likeliest ImageNet class outside the collection's typical ones),
    ``unlike`` (one minus the ImageNet probability it gives the collection's typical classes), ``atypical`` (one
    minus the cosine similarity of its features to the collection's mean feature: the outlier score) and ``score``,
    the mean of their rank fractions (suspect by both, first).

    Measured on the demo collection with injected photographs and textures (benchmarks/bench_audit.py): the
    typical-class mass alone found 13 of 14 in the top 28, the outlier score alone all 14, together all 14 and 13 in
    the top 14. A local outlier score (distance to the nearest paintings) found none: non-paintings resemble each
    other and are each other's neighbours."""
    probs = np.asarray(probs, dtype=np.float64)
    typical = typical_classes(probs)
    unlike = 1.0 - probs[:, typical].sum(1)
    mean = l2_normalise(np.asarray(feats, dtype=np.float32).mean(0, keepdims=True))
    atypical = 1.0 - (l2_normalise(feats) @ mean.T)[:, 0]
    other = probs.copy()
    other[:, typical] = -1.0
    top = other.argmax(1)
    return pd.DataFrame({"looks_like": [class_names[t] for t in top], "confidence": probs[np.arange(len(top)), top],
                         "unlike": unlike, "atypical": atypical,
                         "score": (rank_fraction(unlike) + rank_fraction(atypical)) / 2})


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
    """Confident learning's self-confidence, p̂(ỹ = i; x) for the given label i (Northcutt et al. 2021; the
    confident joint's per-class thresholds are its class means): low for a suspect label."""
    return np.asarray(probs)[np.arange(len(labels)), labels]


def normalized_margin(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The margin p̂(ỹ = i; x) - max_{j != i} p̂(ỹ = j; x) of the given label i over the likeliest other class (the
    margin Northcutt et al. 2021 order their prune-by-noise-rate removals by), mapped from [-1, 1] to [0, 1]."""
    p = np.asarray(probs, dtype=np.float64)
    own = self_confidence(p, labels)
    others = p.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    return (own - others.max(1) + 1.0) / 2.0


def confident_joint_issues(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Confident learning's off-diagonal of the confident joint (Northcutt et al. 2021, section 3.1): with
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
