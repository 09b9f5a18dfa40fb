"""``artlab embed``: every painting of a collection through the frozen pretrained backbone, streamed in chunks, with
an exact FAISS index over the result; for collections far larger than a training run (the Met has hundreds of
thousands of public-domain images).

Memory stays bounded: one chunk of features is held at a time (``chunk`` x the feature size), plus the index itself.
Each chunk is written atomically when it is complete, so an interrupted run keeps its finished chunks and the next
run continues from the first missing one. The index is built once from the chunks and reused by later runs (and by
``load_index``) as long as the chunks it was built from are the same.

The output folder:

    embed.json        backbone, weights (sha256), collection, number of paintings, chunk size, digest of the ids
    chunk-00000.npz   ids and float32 features of the paintings [0, chunk), then [chunk, 2 chunk), ...
    index.faiss       exact inner-product index over the L2-normalised features, in the chunks' order
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from artlab.collection.contract import read_manifest
from artlab.errors import ConfigError
from artlab.io import atomic_save, atomic_savez, atomic_write_json
from artlab.model.backbones import get_backbone
from artlab.model.classifier import Embedder
from artlab.model.knn import l2_normalise
from artlab.model.transforms import eval_transform
from artlab.progress import Progress
from artlab.train.config import EMBED_CHUNK as CHUNK
from artlab.train.data import ImageDataset, in_order
from artlab.train.frozen import fill

META, INDEX = "embed.json", "index.faiss"


@dataclasses.dataclass
class EmbedReport:
    n: int
    chunks: int
    resumed: int  # chunks found complete from an earlier run
    index: str  # "built" or "reused"
    seconds: float

    def lines(self) -> list[str]:
        return [f"{self.n} paintings in {self.chunks} chunk(s), {self.resumed} of them from an earlier run; "
                f"FAISS index {self.index}; {self.seconds:.1f} s"]


def chunk_name(k: int) -> str:
    return f"chunk-{k:05d}.npz"


def embed_collection(collection: str | Path, out: str | Path, backbone: str = "efficientnet_lite0",
                     weights_file: str | None = None, batch_size: int = 32, chunk: int = CHUNK, device: str = "cpu",
                     workers: int = 0, progress: Progress | None = None) -> EmbedReport:
    progress, t0 = progress or Progress(), time.perf_counter()
    if chunk < 1 or batch_size < 1:
        raise ConfigError("--chunk and --batch-size must be at least 1")
    collection, out = Path(collection).expanduser(), Path(out).expanduser()
    if out.exists() and not out.is_dir():  # a file, /dev/null
        raise ConfigError(f"--out {out} exists and is not a folder: choose a new folder for the embeddings")
    df = read_manifest(collection)
    spec = get_backbone(backbone)
    parts, provenance = spec.parts(pretrained=True, weights_file=weights_file)
    ids = df["id"].astype(str).to_numpy()
    meta = {"backbone": spec.name, "weights_sha256": provenance.get("sha256"), "collection": str(collection.resolve()),
            "n": len(df), "chunk": chunk, "ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest()}
    _claim(out, meta)
    embedder = Embedder(parts).to(device).eval()
    tf = eval_transform(spec)
    starts = range(0, len(df), chunk)
    resumed = 0
    for k, start in enumerate(starts):
        target = out / chunk_name(k)
        if target.is_file():
            resumed += 1
            continue
        rows = df.iloc[start:start + chunk]
        ds = ImageDataset(collection, rows["path"], tf, min_side=spec.resize_size)
        feats = fill(embedder, in_order(ds, batch_size, workers), len(ds), device, progress,
                     f"chunk {k + 1}/{len(starts)}")
        atomic_savez(target, ids=ids[start:start + chunk].astype(str), features=feats.numpy())
    index = _index(out, meta, len(starts), progress)
    return EmbedReport(n=len(df), chunks=len(starts), resumed=resumed, index=index,
                       seconds=time.perf_counter() - t0)


def _claim(out: Path, meta: dict) -> None:
    """Use ``out`` for these embeddings: a new or empty folder, or one this same command started (resumed)."""
    meta_file = out / META
    if meta_file.is_file():
        old = json.loads(meta_file.read_text())
        if {k: old.get(k) for k in meta} != meta:
            changed = ", ".join(k for k in meta if old.get(k) != meta[k])
            raise ConfigError(f"{out} holds embeddings made differently ({changed} differ): choose another --out, "
                              f"or delete that folder to start again")
        return
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty and holds no {META}: choose a new folder for the embeddings")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out} cannot be created ({exc.strerror})") from None
    atomic_write_json(meta_file, meta)


def _index(out: Path, meta: dict, n_chunks: int, progress: Progress) -> str:
    """Build index.faiss from the chunks unless the one there was built from these same chunks."""
    import faiss
    stamp = _chunks_stamp(out, n_chunks)
    meta_file = out / META
    recorded = json.loads(meta_file.read_text()).get("index")
    if (out / INDEX).is_file() and recorded == stamp:
        return "reused"
    progress.stage("FAISS index", meta["n"])
    index = None
    for k in range(n_chunks):
        with np.load(out / chunk_name(k)) as z:
            x = l2_normalise(z["features"].astype(np.float32))
        if index is None:
            index = faiss.IndexFlatIP(x.shape[1])
        index.add(np.ascontiguousarray(x))
        progress.advance(len(x))
    progress.done()
    atomic_save(out / INDEX, lambda tmp: faiss.write_index(index, str(tmp)))
    atomic_write_json(meta_file, {**json.loads(meta_file.read_text()), "index": stamp})
    return "built"


def _chunks_stamp(out: Path, n_chunks: int) -> list:
    """What the index depends on: each chunk's size and modification time (a rewritten chunk means a new index)."""
    return [[chunk_name(k), (out / chunk_name(k)).stat().st_size, (out / chunk_name(k)).stat().st_mtime_ns]
            for k in range(n_chunks)]


def load_index(out: str | Path):
    """(the FAISS index, the ids in its order) of a finished ``artlab embed`` folder."""
    import faiss
    out = Path(out)
    meta = json.loads((out / META).read_text()) if (out / META).is_file() else {}
    if "index" not in meta or not (out / INDEX).is_file():
        raise ConfigError(f"{out} holds no finished embeddings (run `artlab embed` to complete it)")
    n_chunks = len(meta["index"])
    ids = np.concatenate([np.load(out / chunk_name(k))["ids"] for k in range(n_chunks)])
    return faiss.read_index(str(out / INDEX)), ids


def features(out: str | Path) -> np.ndarray:
    """All the features in order (memory: the whole matrix; for search, use ``load_index``)."""
    out = Path(out)
    n_chunks = len(json.loads((out / META).read_text())["index"])
    return np.concatenate([np.load(out / chunk_name(k))["features"] for k in range(n_chunks)])

