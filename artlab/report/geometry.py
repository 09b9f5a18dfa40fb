"""Class geometry from embeddings: centroids, L2 distances, normalised similarities, a ForceAtlas2 layout, UMAP.

sim(A, B) = d(A, B)^-1 / sum over C != A of d(A, C)^-1, the culture study's normalisation: row A says how close B is
to A relative to A's other neighbours, so it is not symmetric. Pure functions of arrays; ``geometry.json`` caches them.
"""

from __future__ import annotations

import numpy as np


def centroids(embeddings: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Mean embedding per class (NaN row for a class with no member)."""
    out = np.full((n_classes, embeddings.shape[1]), np.nan)
    for c in range(n_classes):
        members = embeddings[labels == c]
        if len(members):
            out[c] = members.mean(axis=0)
    return out


def distance_matrix(points: np.ndarray) -> np.ndarray:
    diff = points[:, None, :] - points[None, :, :]
    return np.sqrt((diff ** 2).sum(-1))


def normalised_similarity(distance: np.ndarray) -> np.ndarray:
    """Row-normalised inverse distances, zero diagonal."""
    inv = np.zeros_like(distance, dtype=float)
    off = ~np.eye(len(distance), dtype=bool)
    inv[off] = 1.0 / np.maximum(distance[off], 1e-12)
    return inv / np.maximum(inv.sum(axis=1, keepdims=True), 1e-12)


def top_quartile(similarity: np.ndarray, classes: list[str]) -> list[list]:
    """Ordered pairs [A, B, sim] at or above the 75th percentile of the off-diagonal similarities, strongest first."""
    off = ~np.eye(len(similarity), dtype=bool)
    if not off.any():
        return []
    # Equal similarities (symmetric layouts) differ in the last bit after row normalisation; without a tolerance
    # "at or above" would keep some of a tied group and drop the rest.
    cut = np.percentile(similarity[off], 75) - 1e-9
    pairs = [[classes[a], classes[b], float(similarity[a, b])] for a, b in zip(*np.nonzero(off))
             if similarity[a, b] >= cut]
    return sorted(pairs, key=lambda p: -p[2])


def forceatlas2_layout(similarity: np.ndarray, classes: list[str], seed: int = 0,
                       max_iter: int = 200) -> dict[str, list[float]]:
    """Seeded ForceAtlas2 positions of the class centroids, edges weighted by symmetrised similarity (networkx, BSD)."""
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(classes)
    sym = (similarity + similarity.T) / 2
    for a in range(len(classes)):
        for b in range(a + 1, len(classes)):
            g.add_edge(classes[a], classes[b], weight=float(sym[a, b]))
    pos = nx.forceatlas2_layout(g, weight="weight", seed=seed, max_iter=max_iter)
    return {c: [float(v) for v in pos[c]] for c in classes}


def umap_coordinates(embeddings: np.ndarray, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """2-D UMAP of every painting (seeded, so the map does not move between reruns)."""
    import umap

    n = len(embeddings)
    if n < 4:
        return np.zeros((n, 2))
    reducer = umap.UMAP(n_components=2, n_neighbors=max(2, min(n_neighbors, n - 1)), random_state=seed,
                        metric="cosine", init="random" if n < 10 else "spectral", n_jobs=1)
    return reducer.fit_transform(np.asarray(embeddings, dtype=np.float32))


def class_geometry(embeddings: np.ndarray, labels: np.ndarray, classes: list[str], seed: int = 0) -> dict:
    """Everything ``geometry.json`` holds (docs/run-folder.md)."""
    cents = centroids(embeddings, labels, len(classes))
    present = ~np.isnan(cents).any(axis=1)
    names = [c for c, p in zip(classes, present) if p]
    dist = distance_matrix(cents[present])
    sim = normalised_similarity(dist)
    return {"classes": names, "distance": dist.tolist(), "similarity": sim.tolist(),
            "top_quartile": top_quartile(sim, names), "layout": forceatlas2_layout(sim, names, seed=seed),
            "counts": {c: int((labels == i).sum()) for i, c in enumerate(classes) if present[i]}}


# --- paintings ------------------------------------------------------------------------------------------------

def nearest(embeddings: np.ndarray, index: int, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The k paintings nearest to painting ``index`` (cosine similarity), itself excluded."""
    x = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    sims = x @ x[index]
    sims[index] = -np.inf
    order = np.argsort(-sims, kind="stable")[:k]
    return order, sims[order]


def path_between(embeddings: np.ndarray, start: int, goal: int, k: int = 6) -> list[int]:
    """'Degrees of separation': the shortest chain of paintings from ``start`` to ``goal`` where each step goes to
    one of the k nearest neighbours of the painting before it, or counts that painting among its own k nearest (the
    k-nearest-neighbour graph, undirected: a painting few others count among their nearest stays reachable; cosine
    distance as edge length). Empty if the graph does not connect them. ``step_kinds`` says which kind each step
    is."""
    import networkx as nx

    x = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    g = nx.Graph()
    g.add_nodes_from(range(len(x)))
    for i, row in enumerate(np.argsort(-sims, axis=1)[:, :k]):
        for j in row:
            g.add_edge(i, int(j), weight=float(1.0 - sims[i, j]))
    try:
        return nx.shortest_path(g, start, goal, weight="weight")
    except nx.NetworkXNoPath:
        return []


def step_kinds(embeddings: np.ndarray, path: list[int], k: int) -> list[str]:
    """For each step of ``path`` (``path_between``'s): "near" when the painting is among the k nearest of the one
    before, else "near of" (it counts the one before among its own k nearest)."""
    out = []
    for a, b in zip(path, path[1:]):
        order, _ = nearest(embeddings, a, k)
        out.append("near" if b in order.tolist() else "near of")
    return out
