"""Class geometry against hand computations: centroids, distances, normalised similarity, top quartile, layouts,
neighbours and paths between paintings, UMAP; and a real run's geometry.json against its embeddings.npz."""

import json

import numpy as np

from artlab.report.geometry import (centroids, class_geometry, distance_matrix, forceatlas2_layout, nearest,
                             normalised_similarity, path_between, step_kinds, top_quartile,
                             umap_coordinates)

# Three classes whose centroids make a 3-4-5 right triangle: A = (0, 0), B = (3, 0), C = (0, 4).
EMB = np.array([[-1.0, 0.0], [1.0, 0.0],       # A: mean (0, 0)
                [3.0, 1.0], [3.0, -1.0],       # B: mean (3, 0)
                [0.0, 4.0], [1.0, 5.0], [-1.0, 3.0]])  # C: mean (0, 4)
LABELS = np.array([0, 0, 1, 1, 2, 2, 2])
CLASSES = ["A", "B", "C"]
# sim(A,B) = (1/3) / (1/3 + 1/4) = 4/7, sim(A,C) = 3/7; sim(B,A) = (1/3) / (1/3 + 1/5) = 5/8, sim(B,C) = 3/8;
# sim(C,A) = (1/4) / (1/4 + 1/5) = 5/9, sim(C,B) = 4/9.
HAND_SIM = np.array([[0, 4 / 7, 3 / 7], [5 / 8, 0, 3 / 8], [5 / 9, 4 / 9, 0]])


def test_centroids_and_distances_by_hand():
    cents = centroids(EMB, LABELS, 3)
    assert np.allclose(cents, [[0, 0], [3, 0], [0, 4]])
    assert np.allclose(distance_matrix(cents), [[0, 3, 4], [3, 0, 5], [4, 5, 0]])
    empty = centroids(EMB, LABELS, 4)
    assert np.isnan(empty[3]).all(), "a class without members has no centroid"


def test_similarity_by_hand():
    sim = normalised_similarity(distance_matrix(centroids(EMB, LABELS, 3)))
    assert np.allclose(sim, HAND_SIM)
    assert np.allclose(sim.sum(axis=1), 1.0) and np.all(np.diag(sim) == 0)
    assert not np.allclose(sim, sim.T), "row-normalised similarity is not symmetric in general"


def test_top_quartile_by_hand():
    # Off-diagonal sims, sorted: 3/8 < 3/7 < 4/9 < 5/9 < 4/7 < 5/8. With six values the 75th percentile (linear
    # interpolation) lies between the 4th and 5th, so the top quartile is the two largest, strongest first.
    pairs = top_quartile(HAND_SIM, CLASSES)
    assert [p[:2] for p in pairs] == [["B", "A"], ["A", "B"]]
    assert np.allclose([p[2] for p in pairs], [5 / 8, 4 / 7])


def test_top_quartile_keeps_every_tied_pair():
    # A square: 8 ordered pairs of neighbours share one similarity, 4 diagonal pairs another. The 75th percentile is
    # the neighbours' value, and "at or above" must keep all 8 even when row normalisation leaves them an ulp apart.
    for side in (1.0, 3.0, 0.2):
        square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]]) * side
        sim = normalised_similarity(distance_matrix(square))
        pairs = top_quartile(sim, list("ABCD"))
        assert len(pairs) == 8, side
        assert {frozenset(p[:2]) for p in pairs} == {frozenset(x) for x in ("AB", "BC", "CD", "DA")}


def test_forceatlas2_layout_is_seeded():
    first = forceatlas2_layout(HAND_SIM, CLASSES, seed=3)
    assert first == forceatlas2_layout(HAND_SIM, CLASSES, seed=3)
    assert set(first) == set(CLASSES)
    assert np.isfinite(np.array(list(first.values()))).all()


def test_class_geometry_holds_the_contract():
    geo = class_geometry(EMB, LABELS, CLASSES + ["Empty"], seed=0)
    assert geo["classes"] == CLASSES, "a class without paintings is left out"
    assert np.allclose(geo["similarity"], HAND_SIM)
    assert geo["counts"] == {"A": 2, "B": 2, "C": 3}
    assert json.loads(json.dumps(geo)) == geo, "plain JSON types only"


def _arc(degrees):
    angles = np.radians(degrees)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1) * np.linspace(1, 2, len(angles))[:, None]


def test_nearest_on_a_chain():
    chain = _arc(np.arange(0, 100, 10))  # ten paintings along a quarter circle: cosine order is arc order
    order, sims = nearest(chain, 0, k=3)
    assert order.tolist() == [1, 2, 3]
    assert np.allclose(sims, np.cos(np.radians([10, 20, 30])))
    order, _ = nearest(chain, 5, k=2)
    assert sorted(order.tolist()) == [4, 6]


def test_path_between_follows_the_chain():
    chain = _arc(np.arange(0, 100, 10))
    assert path_between(chain, 0, 9, k=2) == list(range(10))
    assert path_between(chain, 9, 0, k=2) == list(range(9, -1, -1))


def test_path_between_disconnected_is_empty():
    two_islands = _arc([0, 1, 90, 91])  # with k=1 the kNN graph is {0-1} and {2-3}
    assert path_between(two_islands, 0, 3, k=1) == []


def test_umap_shape_and_seed():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (20, 8)), rng.normal(5, 1, (20, 8))]).astype(np.float32)
    a = umap_coordinates(x, seed=7)
    assert a.shape == (40, 2) and np.isfinite(a).all()
    assert np.array_equal(a, umap_coordinates(x, seed=7))
    assert umap_coordinates(x[:3]).shape == (3, 2), "too few paintings for UMAP: zeros, not an error"


def test_run_geometry_matches_its_embeddings(culture_run):
    """geometry.json of a real run is the hand computation from its embeddings.npz: by default (the culture study's
    latent representation) the backbone's pooled features, which for a transfer run are the frozen ones the kNN
    uses."""
    geo = json.loads((culture_run / "geometry.json").read_text())
    card = json.loads((culture_run / "card.json").read_text())
    assert card["config"]["embedding_layer"] == geo["layer"] == "backbone" and card["method"] == "transfer"
    with np.load(culture_run / "embeddings.npz", allow_pickle=False) as z:
        emb, labels = z["knn_embeddings"].astype(np.float64), z["labels"]
    classes = geo["classes"]
    assert classes == [c for c in card["task"]["classes"] if c in set(labels)]
    cents = np.stack([emb[labels == c].mean(axis=0) for c in classes])
    dist = np.sqrt(((cents[:, None] - cents[None]) ** 2).sum(-1))
    inv = np.where(np.eye(len(classes), dtype=bool), 0.0, 1.0 / np.where(dist > 0, dist, np.inf))
    sim = inv / inv.sum(axis=1, keepdims=True)
    assert np.allclose(geo["distance"], dist, rtol=1e-4, atol=1e-5)
    assert np.allclose(geo["similarity"], sim, rtol=1e-4, atol=1e-6)
    off = ~np.eye(len(classes), dtype=bool)
    cut = np.percentile(sim[off], 75)
    expected = {(classes[a], classes[b]) for a, b in zip(*np.nonzero(off)) if sim[a, b] >= cut - 1e-6}
    assert {(a, b) for a, b, _ in geo["top_quartile"]} == expected
    assert set(geo["layout"]) == set(classes)
    layout = forceatlas2_layout(np.array(geo["similarity"]), classes, seed=card["config"]["seed"])
    assert np.allclose([geo["layout"][c] for c in classes], [layout[c] for c in classes])


def test_fine_tuned_run_stores_the_features_its_geometry_comes_from(demo_collection, tmp_path):
    """A run whose backbone was trained keeps the pooled features its centroids come from (``backbone_embeddings``):
    geometry.json's distances are the L2 distances between the class centroids of those stored features."""
    from artlab.runfolder import Run
    from artlab.train.config import TrainConfig
    from artlab.train.runner import train_run
    cfg = TrainConfig(collection=str(demo_collection), label="genre", backbone="efficientnet_lite0",
                      method="finetune", epochs=1, patience=1, max_per_class=6, batch_size=8)
    run = train_run(cfg, tmp_path / "ft", umap=False)
    geo = json.loads((run / "geometry.json").read_text())
    assert geo["layer"] == "backbone"
    with np.load(run / "embeddings.npz", allow_pickle=False) as z:
        feats, labels, knn = z["backbone_embeddings"].astype(np.float64), z["labels"], z["knn_embeddings"]
        head = z["embeddings"]
    assert feats.shape == knn.shape and feats.shape[0] == head.shape[0]
    assert not np.allclose(feats, knn), "the trained backbone's features, not the frozen pretrained ones"
    classes = geo["classes"]
    cents = np.stack([feats[labels == c].mean(axis=0) for c in classes])
    dist = np.sqrt(((cents[:, None] - cents[None]) ** 2).sum(-1))
    assert np.allclose(geo["distance"], dist, rtol=1e-4, atol=1e-5)
    assert Run.open(run).embeddings()["backbone_embeddings"].shape == feats.shape, "the reader accepts the key"


def test_each_step_of_a_path_is_near_one_way_or_the_other():
    """At 0°, 1°, 2° and 30° with k=1 (nearest: 0->1, 1->0, 2->1, 30->2), a chain from 0° to 30° takes steps that
    are not the nearest of the painting they leave; ``step_kinds`` says so ("near of": it counts the one before
    among its own nearest), as the app shows it. The way back is nearest at every step."""
    points = _arc([0, 1, 2, 30])
    path = path_between(points, 0, 3, k=1)
    assert path == [0, 1, 2, 3]
    assert step_kinds(points, path, k=1) == ["near", "near of", "near of"]
    assert step_kinds(points, path[::-1], k=1) == ["near", "near", "near"]
