"""A pair of near neighbours checked in pixels: is one picture a region of the other, at some scale?

Embeddings say two pictures look alike; two noise textures, or two striped ones, look alike to a CNN too. A copy
(cropped, rescanned, resized) is in addition the same arrangement of light and dark: here the smaller picture, in
grey at low resolution and at a few scales, slides over the larger one, and the best normalised cross-correlation
(1: the same pixels up to brightness and contrast) is its score. Textures drawn from different random seeds stay
near 0; crops of one painting near 1 (benchmarks/bench_audit.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from artlab.images import load_image

SIDE = 64  # pixels on the long side of the larger picture
SCALES = (1.0, 0.9, 0.8, 0.7, 0.6)  # of the smaller picture's span of the larger one (a crop keeps 0.6..1 of it)
VERIFIED = 0.8  # the correlation from which a pair is the same picture (crops: 0.87-1; distinct paintings <= 0.7)


def _grey(path: Path, side: int) -> np.ndarray:
    im = load_image(path, min_side=side)
    im.thumbnail((side, side))
    return np.asarray(im.convert("L"), dtype=np.float32)


def _ncc(big: np.ndarray, small: np.ndarray) -> float:
    """The best normalised cross-correlation of ``small`` over every position inside ``big``."""
    h, w = small.shape
    if h > big.shape[0] or w > big.shape[1] or h < 4 or w < 4:
        return -1.0
    windows = np.lib.stride_tricks.sliding_window_view(big, (h, w))
    t = (small - small.mean()) / (small.std() + 1e-6)
    mean = windows.mean(axis=(2, 3))
    std = windows.std(axis=(2, 3)) + 1e-6
    corr = np.einsum("ijkl,kl->ij", windows, t) / (h * w)
    return float((corr / std).max()) if mean.size else -1.0


def region_match(a: Path, b: Path) -> float:
    """How well one of the two pictures matches a region of the other (best over both roles and ``SCALES``)."""
    from PIL import Image
    best = -1.0
    for big_path, small_path in ((a, b), (b, a)):
        big = _grey(big_path, SIDE)
        small_full = load_image(small_path, min_side=SIDE).convert("L")
        for s in SCALES:
            # the small picture resized so that its larger relative side spans ``s`` of the big one
            ratio = min(big.shape[1] * s / small_full.width, big.shape[0] * s / small_full.height)
            size = (max(4, round(small_full.width * ratio)), max(4, round(small_full.height * ratio)))
            small = np.asarray(small_full.resize(size, Image.BILINEAR), dtype=np.float32)
            best = max(best, _ncc(big, small))
    return best
