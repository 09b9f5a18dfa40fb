"""Synthetic paintings for the scale benchmarks: JPEGs shaped like WikiArt's as collections store them.

WikiArt's images come in every size and shape; the builders shrink them to artlab.collection.contract.MAX_SIDE (1024
px) on the long side, so most stored files are 1024 px long and a minority, smaller originals, stay smaller.
Portraits are mostly tall, landscapes wide, still lifes and sketches either. Each picture has what makes a painting
cost its price to decode: broad colour fields, strokes at several scales and fine grain (a flat synthetic image
decodes several times faster than a painting of the same size; quality 90 like the builders). The class sets the
palette and the stroke direction, so a model can learn something, but the figures here are about time, not accuracy.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

GENRES = ("landscape", "portrait", "sketch_and_study", "still_life")
# (probability the picture is tall, wide) per genre; the rest are near square
SHAPES = {"landscape": (0.1, 0.8), "portrait": (0.8, 0.1), "sketch_and_study": (0.4, 0.4), "still_life": (0.4, 0.4)}
SMALLER_SHARE = 0.15  # stored smaller than 1024 px: originals below the builders' limit


def painting(genre: str, index: int, long_side: int = 1024) -> Image.Image:
    """One synthetic painting, the same for the same (genre, index)."""
    rng = np.random.default_rng([GENRES.index(genre), index])
    tall, wide = SHAPES[genre]
    u = rng.random()
    ratio = rng.uniform(1.15, 1.6) if u < tall + wide else rng.uniform(1.0, 1.15)  # long / short side
    side = long_side if rng.random() >= SMALLER_SHARE else int(rng.integers(long_side * 15 // 32, long_side))
    w, h = (round(side / ratio), side) if u < tall else (side, round(side / ratio))
    base = rng.normal(0.5, 0.2, (3, 3, 3)) + np.array([0.15, 0.0, -0.15]) * (GENRES.index(genre) - 1.5) / 1.5
    layers = [np.asarray(Image.fromarray(_u8(base)).resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)]
    for cells, amp in ((12, 40.0), (48, 25.0), (160, 14.0)):  # colour fields, strokes, brushwork
        n = rng.normal(0, 1, (cells, max(2, round(cells * w / h)), 3)) if GENRES.index(genre) % 2 else \
            rng.normal(0, 1, (max(2, round(cells * h / w)), cells, 3))
        small = Image.fromarray(_u8(0.5 + n / 6))
        layers.append((np.asarray(small.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32) - 127.5)
                      * amp / 64)
    grain = rng.normal(0, 5, (h, w, 1)).astype(np.float32)
    return Image.fromarray(np.clip(sum(layers) + grain, 0, 255).astype(np.uint8))


def _u8(a: np.ndarray) -> np.ndarray:
    return (np.clip(a, 0, 1) * 255).astype(np.uint8)


def _write(job: tuple[Path, str, int, int]) -> int:
    path, genre, index, long_side = job
    if not path.is_file():
        tmp = path.with_name(path.name + ".tmp")
        painting(genre, index, long_side).save(tmp, "JPEG", quality=90)
        os.replace(tmp, path)
    return path.stat().st_size


def write_paintings(folder: Path, per_class: int, processes: int = 2, long_side: int = 1024) -> int:
    """``per_class`` paintings of each genre in ``folder/<genre>/`` (kept when already there). Returns the bytes."""
    jobs = []
    for genre in GENRES:
        (folder / genre).mkdir(parents=True, exist_ok=True)
        jobs += [(folder / genre / f"{genre}-{i:05d}.jpg", genre, i, long_side) for i in range(per_class)]
    with ProcessPoolExecutor(processes) as pool:
        return sum(pool.map(_write, jobs, chunksize=16))
