import numpy as np
import pytest

from artlab.errors import ConfigError
from artlab.model.knn import KNNBaseline


def _blobs(n=30, d=16, seed=0):
    centres = np.random.default_rng(42).normal(size=(3, d)) * 4
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n)
    return centres[y] + rng.normal(size=(3 * n, d)), y


def test_fit_select_predict_and_neighbours(tmp_path):
    X, y = _blobs()
    Xv, yv = _blobs(seed=1)
    knn = KNNBaseline(ks=(1, 3, 5)).fit(X, y, ids=np.array([f"p{i}" for i in range(len(X))]))
    curve = knn.select_k(Xv, yv)
    assert set(curve) == {1, 3, 5} and knn.k_ in curve
    assert (knn.predict(Xv) == yv).mean() > 0.9
    shares = knn.predict_proba(Xv)
    assert np.allclose(shares.sum(1), 1.0)
    sims, idx = knn.kneighbors(X[:1], k=3)
    assert idx[0, 0] == 0 and np.isclose(sims[0, 0], 1.0) and (np.diff(sims[0]) <= 1e-6).all()
    knn.save(tmp_path / "knn.npz")
    again = KNNBaseline.load(tmp_path / "knn.npz")
    assert again.k_ == knn.k_ and np.array_equal(again.predict(Xv), knn.predict(Xv))


def test_tie_goes_to_closer_class():
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    knn = KNNBaseline(k=2, n_classes=2).fit(X, np.array([0, 1]))
    assert knn.predict(np.array([[0.9, 0.1]]))[0] == 0
    assert knn.predict(np.array([[0.1, 0.9]]))[0] == 1


def test_select_k_prefers_small_k_on_ties():
    X, y = _blobs(n=10)
    knn = KNNBaseline(ks=(1, 3, 5)).fit(X, y)
    knn.select_k(X, y)  # every k is perfect on its own training points: the smallest wins
    assert knn.k_ == 1


def test_bad_input():
    with pytest.raises(ConfigError):
        KNNBaseline().fit(np.zeros((0, 3)), np.zeros(0))


def test_large_reference_sets_search_through_faiss_with_the_same_answers(monkeypatch):
    pytest.importorskip("faiss")
    import artlab.model.knn as knn_module
    X, y = _blobs(n=200, d=32)
    Xq, _ = _blobs(n=20, d=32, seed=5)
    brute = KNNBaseline(k=7).fit(X, y)
    expected = brute.kneighbors(Xq)
    monkeypatch.setattr(knn_module, "FAISS_MIN_REFERENCES", 10)
    fast = KNNBaseline(k=7).fit(X, y)
    sims, idx = fast.kneighbors(Xq)
    assert fast._index is not None, "the FAISS path was not taken"
    assert np.allclose(sims, expected[0], atol=1e-5)
    assert (idx == expected[1]).mean() > 0.99  # only exact ties may swap places
    assert np.array_equal(fast.predict(Xq), brute.predict(Xq))
