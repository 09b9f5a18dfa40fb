"""Nearest-neighbour search over a large reference set: brute force (NumPy, torch) against FAISS (exact and IVF).

100,000 reference embeddings of 1280 dimensions (EfficientNet's pooled features), float32, L2-normalised, so the
inner product is the cosine similarity the kNN baseline ranks by; 1,000 queries, k = 10. The embeddings are
synthetic but shaped like CNN features of a collection: two levels of overlapping clusters (schools, painters) in a
64-dimensional latent space projected to 1280 dimensions, isotropic noise, and a direction all rows share, tuned so
that their mean and nearest-neighbour cosine similarities match the demo paintings' real EfficientNet-Lite0
features. How much an approximate index gains depends on that structure (on structureless random vectors no index
beats brute force), so the IVF figures are indicative, the exact ones are not.

The IVF index's nprobe is the smallest that reaches recall@10 >= 0.95 on 200 separate tuning queries (how one
would set it for a deployment); recall is then measured on the 1,000 benchmark queries against exact search.

    python benchmarks/bench_knn.py [--n 100000] [--queries 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys

import common

common.steady_process()

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

D, K = 1280, 10
TARGET_RECALL = 0.9
CHUNK = 250  # queries per brute-force block: 250 x 100,000 similarities is 100 MB


def synthetic_embeddings(n: int, seed: int, schools: int = 50, painters: int = 40, spread: float = 0.8,
                         latent: int = 64, noise: float = 0.5, shared: float = 0.6, basis_seed: int = 0) -> np.ndarray:
    """``n`` L2-normalised rows shaped like CNN features of a collection.

    Two levels of overlapping clusters in a 64-d latent space ("schools", each with "painters" around it, at
    ``spread`` from their parent, points at unit spread around a painter), projected to 1280-d; isotropic noise;
    and a direction every row shares (``shared`` x the rest's energy: non-negative CNN features all point roughly
    the same way). The defaults reproduce the demo paintings' mean and nearest-neighbour cosine similarities.
    The structure (``basis_seed``) is the same for every ``seed``: references and queries come from one collection.
    """
    structure, rng = np.random.default_rng(basis_seed), np.random.default_rng(seed)
    basis = structure.standard_normal((latent, D), dtype=np.float32) / np.sqrt(latent)
    school = structure.standard_normal((schools, latent), dtype=np.float32) * spread
    painter = np.repeat(school, painters, axis=0) + structure.standard_normal(
        (schools * painters, latent), dtype=np.float32) * spread
    common_dir = structure.standard_normal(D, dtype=np.float32)
    common_dir /= np.linalg.norm(common_dir)
    energy = D * (2 * spread ** 2 + 1.0) + D * noise ** 2  # E|z @ basis|^2 + E|noise|^2 per row
    out = np.empty((n, D), dtype=np.float32)
    for start in range(0, n, 10_000):  # in blocks: never a second 512 MB temporary
        m = min(10_000, n - start)
        z = painter[rng.integers(len(painter), size=m)] + rng.standard_normal((m, latent), dtype=np.float32)
        block = z @ basis + noise * rng.standard_normal((m, D), dtype=np.float32)
        block += np.sqrt(shared * energy) * common_dir
        out[start:start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def similarity_profile(X: np.ndarray) -> tuple[float, float]:
    """(mean cosine between rows, mean cosine to the nearest other row) of a small sample."""
    S = X @ X.T
    np.fill_diagonal(S, np.nan)
    return float(np.nanmean(S)), float(np.nanmax(S, axis=1).mean())


def numpy_search(X: np.ndarray, Q: np.ndarray, k: int = K) -> np.ndarray:
    out = np.empty((len(Q), k), dtype=np.int64)
    for i in range(0, len(Q), CHUNK):
        sims = Q[i:i + CHUNK] @ X.T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        out[i:i + CHUNK] = np.take_along_axis(top, order, axis=1)
    return out


def torch_search(Xt: torch.Tensor, Q: np.ndarray, k: int = K) -> np.ndarray:
    with torch.inference_mode():
        Qt = torch.from_numpy(Q)
        return torch.cat([torch.topk(Qt[i:i + CHUNK] @ Xt.T, k, dim=1).indices
                          for i in range(0, len(Q), CHUNK)]).numpy()


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of the true k nearest neighbours that were found."""
    return float(np.mean([len(np.intersect1d(f, t)) / len(t) for f, t in zip(found, truth)]))


def build_ivf(X: np.ndarray, nlist: int, seed: int = 0) -> faiss.IndexIVFFlat:
    quantizer = faiss.IndexFlatIP(D)
    index = faiss.IndexIVFFlat(quantizer, D, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter, index.cp.seed = 10, seed
    sample = X[np.random.default_rng(seed).choice(len(X), size=min(len(X), 40 * nlist), replace=False)]
    index.train(sample)
    index.add(X)
    return index


def tune_nprobe(index, X: np.ndarray, Q: np.ndarray, want: float = 0.95) -> tuple[int, float]:
    """The smallest power-of-two nprobe with recall@K >= ``want`` on these tuning queries."""
    truth = numpy_search(X, Q)
    nprobe = 1
    while True:
        index.nprobe = nprobe
        r = recall(index.search(Q, K)[1], truth)
        if r >= want or nprobe >= index.nlist:
            return nprobe, r
        nprobe *= 2


def index_bytes(index) -> int:
    """Bytes an index holds: stored vectors (+ ids and coarse centroids for IVF)."""
    if isinstance(index, faiss.IndexIVF):
        return index.ntotal * (index.code_size + 8) + index.nlist * D * 4
    return index.ntotal * index.code_size


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--nlist", type=int, default=512)
    args = p.parse_args()

    threads = common.torch_threads()
    faiss.omp_set_num_threads(threads)
    X = synthetic_embeddings(args.n, seed=1)
    Q = synthetic_embeddings(args.queries, seed=2)
    tuning = synthetic_embeddings(200, seed=3)
    common.header(f"kNN search: {args.n:,} x {D} float32 references (clustered synthetic, L2-normalised), "
                  f"{args.queries:,} queries, k={K}, {threads} threads; brute force vs FAISS exact and IVF")

    mean_cos, nearest = similarity_profile(X[:174])
    common.note(f"174 synthetic rows: mean cosine {mean_cos:.2f}, nearest other row {nearest:.2f} (the 174 demo "
                f"paintings' EfficientNet-Lite0 features: 0.37, 0.60)")
    Xt = torch.from_numpy(X)
    flat = faiss.IndexFlatIP(D)
    flat.add(X)
    ivf, build = common.timed(lambda: build_ivf(X, args.nlist))
    nprobe, tuned = tune_nprobe(ivf, X, tuning)
    ivf.nprobe = nprobe
    common.note(f"IVF{args.nlist},Flat trained and filled in {build:.1f}s; nprobe {nprobe} "
                f"(recall {tuned:.3f} on 200 tuning queries)")

    variants = {"numpy": lambda: numpy_search(X, Q), "torch": lambda: torch_search(Xt, Q),
                "faiss_flat": lambda: flat.search(Q, K)[1], "faiss_ivf": lambda: ivf.search(Q, K)[1]}
    for fn in (lambda: numpy_search(X, Q[:50]), lambda: torch_search(Xt, Q[:50]),
               lambda: flat.search(Q[:50], K), lambda: ivf.search(Q[:50], K)):
        fn()  # warm-up: thread pools, page faults in the reference matrix
    times = common.interleaved(variants, rounds=args.rounds, warmup=0)
    truth = numpy_search(X, Q)
    found = {"torch": torch_search(Xt, Q), "faiss_flat": flat.search(Q, K)[1], "faiss_ivf": ivf.search(Q, K)[1]}
    report(times, args.queries, truth, found, {"numpy / torch (shared array)": X.nbytes,
                                               "faiss IndexFlatIP": index_bytes(flat),
                                               f"faiss IVF{args.nlist},Flat": index_bytes(ivf)})
    return common.finish()


def report(times, n_queries, truth, found, memory) -> None:
    qps = {name: n_queries / common.median(t) for name, t in times.items()}
    common.note("seconds per 1,000 queries: " + ", ".join(f"{k} {common.spread(v)}" for k, v in times.items()))
    brute = max(qps["numpy"], qps["torch"])
    for name in ("numpy", "torch", "faiss_flat", "faiss_ivf"):
        common.result(f"queries/s, {name}", f"{qps[name]:,.0f}")
    common.result("faiss exact / best brute force", f"{qps['faiss_flat'] / brute:.2f}x", ">= 1x (report)")
    common.result("faiss IVF / faiss exact", f"{qps['faiss_ivf'] / qps['faiss_flat']:.1f}x")
    common.result("faiss IVF / best brute force", f"{qps['faiss_ivf'] / brute:.1f}x")
    common.result("recall@10, torch vs numpy (exact)", f"{recall(found['torch'], truth):.3f}")
    common.result("recall@10, faiss exact vs numpy (exact)", f"{recall(found['faiss_flat'], truth):.3f}")
    r = recall(found["faiss_ivf"], truth)
    common.result("recall@10, faiss IVF (approximate)", f"{r:.3f}", f">= {TARGET_RECALL}", r >= TARGET_RECALL)
    for name, nbytes in memory.items():
        common.result(f"memory, {name}", f"{nbytes / 2**20:,.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())
