"""The kNN baseline: frozen pretrained features + k nearest neighbours, k chosen on validation accuracy.

Distance: cosine by default (dot product of L2-normalised embeddings). Pooled CNN features grow with image contrast
and detail, so their raw length says more about how busy a painting is than about its genre; cosine compares the
direction (which features fire, relatively), the usual choice for retrieval with CNN embeddings. ``metric="euclidean"``
ranks by Euclidean distance between the raw features instead: scikit-learn's ``KNeighborsClassifier`` default, and so
the likely choice of the genre study, which does not name its distance. Whichever ranks the neighbours, the
similarities handed to callers (the app, the kNN's explanations) are cosine, so they read the same for both.
Follows scikit-learn's estimator contract: ``__init__`` stores parameters, ``fit`` sets attributes ending in ``_``.
"""

from __future__ import annotations

import numpy as np

from artlab.errors import ConfigError, RunError
from artlab.io import atomic_savez

DEFAULT_KS = (1, 3, 5, 7, 9, 11, 15, 21)
METRICS = ("cosine", "euclidean")
#: How neighbours vote: one vote each (the study's baseline), weighted by 1 / cosine distance (scikit-learn's
#: "distance"), by 1 / the class's share of the references (a class of 5 counts as much as one of 50), or both.
VOTES = ("uniform", "distance", "balanced", "distance-balanced")

#: From this many reference paintings on, search goes through FAISS (exact, the same answers; 1.3x faster at 100,000
#: references in benchmarks/bench_knn.py) when it is installed. Below it, a NumPy product is as fast and simpler.
FAISS_MIN_REFERENCES = 20_000


def clear_majority(shares: np.ndarray) -> np.ndarray:
    """Per row of vote shares: whether one class holds more than half of the neighbours' votes. Below that the
    neighbours are split (a tie, or a plurality of a few), and the answer is decided by which neighbours are closer
    rather than by how many agree: the baseline's answer is then a lean, not a verdict."""
    shares = np.atleast_2d(np.asarray(shares, dtype=float))
    return shares.max(axis=1) > 0.5 + 1e-9


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class KNNBaseline:
    def __init__(self, k: int = 5, ks: tuple[int, ...] = DEFAULT_KS, n_classes: int | None = None,
                 metric: str = "cosine", vote: str = "uniform"):
        self.k, self.ks, self.n_classes, self.metric, self.vote_weights = k, tuple(ks), n_classes, metric, vote

    def fit(self, X: np.ndarray, y: np.ndarray, ids: np.ndarray | None = None) -> "KNNBaseline":
        X = np.asarray(X)
        if X.ndim != 2 or len(X) != len(y) or len(X) == 0:
            raise ConfigError(f"kNN needs a non-empty 2-D feature array with one label a row, got {X.shape}")
        if self.metric not in METRICS:
            raise ConfigError(f"unknown kNN metric {self.metric!r}; choose one of: {', '.join(METRICS)}")
        self.X_ = l2_normalise(X) if self.metric == "cosine" else np.asarray(X, dtype=np.float32)
        self.y_ = np.asarray(y, dtype=np.int64)
        self.ids_ = np.asarray(ids if ids is not None else np.arange(len(X)).astype(str))
        self.n_classes_ = int(self.n_classes or self.y_.max() + 1)
        self.k_ = min(self.k, len(self.X_))
        if self.vote_weights not in VOTES:
            raise ConfigError(f"unknown kNN vote {self.vote_weights!r}; choose one of: {', '.join(VOTES)}")
        counts = np.bincount(self.y_, minlength=self.n_classes_).astype(np.float64)
        self.class_weight_ = (np.where(counts > 0, counts.sum() / np.maximum(counts, 1), 0.0)
                              if "balanced" in self.vote_weights else np.ones(self.n_classes_))
        return self

    def select_k(self, X_val: np.ndarray, y_val: np.ndarray) -> dict[int, float]:
        """Set ``k_`` to the grid value with the best validation accuracy (smallest k on ties); return the curve."""
        sims, idx = self._rank(X_val, max(self.ks))
        curve = {}
        for k in self.ks:
            if k > len(self.X_):
                continue
            pred = self._vote(sims[:, :k], idx[:, :k]).argmax(axis=1)
            curve[k] = float(np.mean(pred == np.asarray(y_val))) if len(y_val) else 0.0
        self.k_ = max(curve, key=lambda k: (curve[k], -k))
        return curve

    def kneighbors(self, X: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(cosine similarities, indices into the reference set), nearest first."""
        return self._search(X, k or self.k_)

    def vote(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Everything the baseline says, from one search: (vote shares, tie-broken scores, similarities, indices)."""
        closeness, idx = self._rank(X, self.k_)
        sims = closeness if self.metric == "cosine" else self._cosine(X, idx)
        return self._shares(closeness, idx), self._vote(closeness, idx), sims, idx

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Vote shares per class (rows sum to 1)."""
        return self._shares(*self._rank(X, self.k_))

    def scores(self, X: np.ndarray) -> np.ndarray:
        """Vote shares with ties broken by summed closeness (what ``predict`` and top-3 rank by)."""
        return self._vote(*self._rank(X, self.k_))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.scores(X).argmax(axis=1)

    def _tally(self, idx: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Per row, the sum of ``weights`` over the neighbours of each class."""
        out = np.zeros((len(idx), self.n_classes_))
        np.add.at(out, (np.arange(len(idx))[:, None], self.y_[idx]), weights)
        return out

    def _shares(self, closeness: np.ndarray, idx: np.ndarray) -> np.ndarray:
        weights = self.class_weight_[self.y_[idx]]
        if self.vote_weights.startswith("distance"):  # 1 / the distance in the metric that ranked the neighbours
            distance = 1.0 - closeness if self.metric == "cosine" else -closeness
            weights = weights / np.maximum(distance, 1e-6)
        tally = self._tally(idx, weights)
        return tally / np.maximum(tally.sum(axis=1, keepdims=True), 1e-12)

    def _vote(self, closeness: np.ndarray, idx: np.ndarray) -> np.ndarray:
        # a tie goes to the class whose neighbours are closer (in the metric that ranked them; bounded, so a tie-break
        # never outweighs one vote)
        bounded = closeness if self.metric == "cosine" else 1.0 / (1.0 + np.maximum(-closeness, 0.0))
        return self._shares(closeness, idx) + 1e-6 * self._tally(idx, bounded)

    @property
    def unit_(self) -> np.ndarray:
        """The references L2-normalised (what cosine similarities are taken against)."""
        if getattr(self, "_unit", None) is None:
            self._unit = self.X_ if self.metric == "cosine" else l2_normalise(self.X_)
        return self._unit

    def _cosine(self, X: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Cosine similarities of each query to its neighbours ``idx``."""
        return np.einsum("nd,nkd->nk", l2_normalise(X), self.unit_[idx])

    def _search(self, X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(cosine similarities, indices), nearest first in the baseline's metric."""
        closeness, idx = self._rank(X, k)
        return (closeness, idx) if self.metric == "cosine" else (self._cosine(X, idx), idx)

    def _rank(self, X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(closeness, indices), nearest first: cosine similarity, or minus the Euclidean distance."""
        if not hasattr(self, "X_"):
            raise RunError("the kNN baseline is not fitted")
        k = min(k, len(self.X_))
        queries = l2_normalise(X) if self.metric == "cosine" else np.asarray(X, dtype=np.float32)
        index = self._faiss_index() if len(self.X_) >= FAISS_MIN_REFERENCES else None
        if index is not None:
            close, idx = index.search(np.ascontiguousarray(queries), k)
            return (close if self.metric == "cosine" else -np.sqrt(np.maximum(close, 0.0))), idx.astype(np.int64)
        if self.metric == "cosine":
            close = queries @ self.X_.T
        else:  # |q - x|^2 = |q|^2 - 2 q.x + |x|^2, without a [queries, references, d] array
            sq = (queries ** 2).sum(1)[:, None] - 2 * queries @ self.X_.T + (self.X_ ** 2).sum(1)[None, :]
            close = -np.sqrt(np.maximum(sq, 0.0))
        idx = np.argsort(-close, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(close, idx, axis=1), idx

    def _faiss_index(self):
        """An exact inner-product FAISS index over the references, built once (None if faiss is not installed)."""
        if getattr(self, "_index", None) is None:
            try:
                import faiss
            except ImportError:
                return None
            index = (faiss.IndexFlatIP if self.metric == "cosine" else faiss.IndexFlatL2)(self.X_.shape[1])
            index.add(np.ascontiguousarray(self.X_, dtype=np.float32))
            self._index = index
        return self._index

    # --- the run folder's knn.npz ---------------------------------------------------------------------------
    def save(self, path) -> None:
        atomic_savez(path, embeddings=self.X_, labels=self.y_, ids=self.ids_.astype(str), k=np.int64(self.k_),
                     n_classes=np.int64(self.n_classes_), metric=np.array(self.metric),
                     vote=np.array(self.vote_weights), class_weight=self.class_weight_)

    @classmethod
    def load(cls, path) -> "KNNBaseline":
        try:
            z = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise RunError(f"unreadable kNN reference file {path}: {exc}") from None
        metric = str(z["metric"]) if "metric" in z.files else "cosine"  # runs before the option were cosine
        vote = str(z["vote"]) if "vote" in z.files else "uniform"  # runs written before votes were weighted
        knn = cls(k=int(z["k"]), n_classes=int(z["n_classes"]), metric=metric, vote=vote)
        knn.X_, knn.y_, knn.ids_ = z["embeddings"].astype(np.float32), z["labels"], z["ids"]
        knn.n_classes_, knn.k_ = int(z["n_classes"]), int(z["k"])
        knn.class_weight_ = z["class_weight"] if "class_weight" in z.files else np.ones(knn.n_classes_)
        return knn
