"""Reading real image files safely: EXIF orientation, odd modes to RGB, a decompression-bomb limit, one-line errors.

Every image that enters artlab (collection builders, training, uploads in the app) goes through ``load_image``.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from artlab.errors import ImageError

ImageSource = Union[str, os.PathLike, bytes, BinaryIO]

#: Largest image we decode, in pixels. Met "original" scans reach ~50 MP; a 20000 x 20000 bomb is 400 MP.
MAX_PIXELS = 120_000_000

#: Longest side over shortest side. Models resize the short side to a few hundred pixels, so a 100-byte PNG of
#: 100000 x 1 pixels would become a 20 GB image. Long handscrolls are around 1:20 to 1:40.
MAX_ASPECT = 100

#: Memory one decode may take, in bytes (width x height x channels x bytes per channel, as decoded). JPEGs over it
#: decode at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling: no full-size copy is ever made); other formats are refused.
#: 120 MP of RGB fit; the served app passes a smaller budget per upload (artlab.app.memory).
DECODE_BUDGET = 768 << 20

#: What the app's uploader accepts (Pillow reads more, but these are what collections hold).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif")


def _name(source: ImageSource, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name
    return getattr(source, "name", None) or "upload"


def decoded_bytes(im: Image.Image, size: tuple[int, int] | None = None) -> int:
    """Bytes ``im`` takes once decoded at ``size`` (its own by default): pixels x channels x bytes per channel."""
    w, h = size or im.size
    depth = 2 if im.mode.startswith("I;16") else 4 if im.mode in ("I", "F") else 1
    return w * h * len(im.getbands()) * depth


def _draft_scale(im: Image.Image, budget: int) -> int:
    """The smallest JPEG reduction (1, 2, 4, 8) that decodes within ``budget`` bytes; 0 if none does."""
    w, h = im.size
    for scale in (1, 2, 4, 8):
        if decoded_bytes(im, (-(-w // scale), -(-h // scale))) <= budget:
            return scale
    return 0


def _within_budget(im: Image.Image, label: str, budget: int, min_side: int | None) -> None:
    """Draft-decode a JPEG (for ``min_side``, and small enough for ``budget``); refuse what cannot fit."""
    w, h = im.size
    if im.format == "JPEG":
        scale = _draft_scale(im, budget)
        if scale == 0:
            raise ImageError(f"image too large to decode within the memory budget: {label} is {w} x {h} pixels "
                             f"(limit {budget >> 20} MB)")
        target = (-(-w // scale), -(-h // scale))
        if min_side:
            target = (min(target[0], min_side), min(target[1], min_side))
        if scale > 1 or min_side:
            im.draft("RGB", target)
        return
    need = decoded_bytes(im)
    if need > budget:
        raise ImageError(f"image too large to decode within the memory budget: {label} is {w} x {h} {im.mode} "
                         f"pixels, {need >> 20} MB decoded (limit {budget >> 20} MB; a JPEG would be reduced)")


def load_image(source: ImageSource, *, name: str | None = None, min_side: int | None = None,
               max_pixels: int = MAX_PIXELS, budget: int = DECODE_BUDGET) -> Image.Image:
    """Open ``source`` (path, bytes or file object) as an upright 8-bit RGB image.

    ``min_side`` lets JPEGs decode at a reduced scale (draft mode) while keeping both sides at least that long:
    several times faster for large scans that will be resized to a few hundred pixels anyway. ``budget`` bounds the
    memory of the decode (see ``DECODE_BUDGET``). An embedded ICC profile (Adobe RGB, CMYK scans) is converted to
    sRGB, so colours stay true.
    Raises ImageError naming the file for anything that is not a readable image or is larger than ``max_pixels``.
    """
    label = _name(source, name)
    if isinstance(source, bytes):
        if not source:
            raise ImageError(f"not an image file: {label} is empty (0 bytes)")
        source = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(source)
            w, h = im.size
            if w * h > max_pixels:
                raise ImageError(f"image too large to open safely: {label} is {w} x {h} pixels "
                                 f"(limit {max_pixels // 1_000_000} megapixels)")
            if max(w, h) > MAX_ASPECT * max(min(w, h), 1):
                raise ImageError(f"image too elongated to use: {label} is {w} x {h} pixels "
                                 f"(limit 1:{MAX_ASPECT})")
            _within_budget(im, label, budget, min_side)
            im.seek(0)  # animated GIF/WebP: the first frame
            im.load()
            ImageOps.exif_transpose(im, in_place=True)  # upright; no copy when there is nothing to turn
            return to_srgb(im)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"no such file: {label}") from None
    except UnidentifiedImageError:
        raise ImageError(f"not an image file: {label}") from None
    except Image.DecompressionBombError:
        raise ImageError(f"image too large to open safely: {label}") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        raise ImageError(f"unreadable image: {label} ({exc})") from None


_SRGB = None


def _srgb():
    global _SRGB
    if _SRGB is None:
        _SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return _SRGB


def to_srgb(im: Image.Image) -> Image.Image:
    """``to_rgb``, with the colours of an embedded ICC profile (not sRGB already) converted to sRGB."""
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return to_rgb(im)
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in ImageCms.getProfileDescription(profile).lower().replace(" ", ""):
            return to_rgb(im)
        if im.mode == "RGBA":
            im = to_rgb(im)
        return to_rgb(ImageCms.profileToProfile(im, profile, _srgb(), outputMode="RGB"))
    except (ImageCms.PyCMSError, OSError, ValueError):  # a profile that does not fit the image: plain conversion
        return to_rgb(im)


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB; transparency is composited on white (paper), 16-bit and float are rescaled."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.array(im, dtype=np.float32)  # a writable copy, rescaled in place: a 100 MP scan stays under 1 GB
        lo, hi = float(arr.min()), float(arr.max())
        arr -= lo
        arr *= 255.0 / (hi - lo) if hi > lo else 0.0
        return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, im).convert("RGB")
    return im.convert("RGB")


def fit_within(im: Image.Image, max_side: int) -> Image.Image:
    """A copy no larger than ``max_side`` on its long side, aspect ratio kept (never upscaled)."""
    w, h = im.size
    scale = min(1.0, max_side / max(w, h))
    if scale == 1.0:
        return im.copy()
    return im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)


def encode_jpeg(im: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
