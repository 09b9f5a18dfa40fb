"""Reading real image files safely: EXIF orientation, odd modes to RGB, a decompression-bomb limit, one-line errors.

Every image that enters artlab (collection builders, training, uploads in the app) goes through ``load_image``.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO, Callable, Union

import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

from artlab.errors import ImageError

ImageSource = Union[str, os.PathLike, bytes, BinaryIO]

#: Largest image we decode, in pixels. Met "original" scans reach ~50 MP; a 20000 x 20000 bomb is 400 MP.
MAX_PIXELS = 120_000_000

#: Longest side over shortest side. Models resize the short side to a few hundred pixels, so a 100-byte PNG of
#: 100000 x 1 pixels would become a 20 GB image. Long handscrolls are around 1:20 to 1:40.
MAX_ASPECT = 100

#: Memory one decode may take, in bytes: the peak of the whole decode-and-convert (the decoded pixels, the 8-bit RGB
#: image made of them and the strip being converted), counted as Pillow stores pixels (4 bytes for RGB). JPEGs over it
#: decode at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling: no full-size copy is ever made); other formats whose
#: decoded pixels fit but whose RGB image would not are converted strip by strip into an image reduced by a whole
#: factor (``REDUCTIONS``); what cannot fit even so is refused in one line. 120 MP of RGB fit; the served app passes a
#: smaller budget per upload (artlab.app.memory).
DECODE_BUDGET = 768 << 20

#: Bytes one strip's conversion may take (its crop, RGBA, the white paper it is composited on, the result), and the
#: most such a conversion takes a pixel (palette with transparency: 1 + 4 + 4 + 4 + 4 bytes, rounded up).
STRIP_WORK = 8 << 20
WORK_PER_PIXEL = 20

#: The whole factors a non-JPEG image may be reduced by (``Image.reduce``, box averages) to convert within budget.
REDUCTIONS = (1, 2, 3, 4, 6, 8)

#: What the uploader accepts (Pillow reads more, but these are what collections hold).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif")

_ORIENTATION = 0x0112
_TURNS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
          5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
          8: Image.Transpose.ROTATE_90}  # EXIF orientation -> the turn that makes the image upright (ImageOps' table)


def _name(source: ImageSource, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name
    return getattr(source, "name", None) or "upload"


def pixel_bytes(mode: str) -> int:
    """Bytes Pillow stores a pixel of ``mode`` in: 1 for 1/L/P, 2 for 16-bit, else 4 (it packs 2-4 bands in 4)."""
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def decoded_bytes(im: Image.Image, size: tuple[int, int] | None = None) -> int:
    """Bytes ``im`` takes once decoded at ``size`` (its own by default), as Pillow stores it."""
    w, h = size or im.size
    return w * h * pixel_bytes(im.mode)


def _converts(im: Image.Image) -> bool:
    """Whether making ``im`` 8-bit sRGB makes a new image (another mode, or a colour profile to apply)."""
    return im.mode != "RGB" or bool(im.info.get("icc_profile"))


def _plan(im: Image.Image, size: tuple[int, int], factor: int, turned: bool, budget: int) -> int | None:
    """The rows a strip may hold when decoding ``im`` at ``size``, reducing it by ``factor`` and converting it to RGB
    keeps the peak within ``budget`` (0: no conversion at all), None when it cannot."""
    decoded = decoded_bytes(im, size)
    if factor == 1 and not _converts(im):  # returned as decoded; an EXIF turn copies it once
        return 0 if decoded * (2 if turned else 1) <= budget else None
    room = budget - decoded - 4 * -(-size[0] // factor) * -(-size[1] // factor) * (2 if turned else 1)
    rows = min(room, STRIP_WORK) // (WORK_PER_PIXEL * max(size[0], 1)) // factor * factor
    return rows if rows >= factor else None


def _too_large(label: str, im: Image.Image, budget: int, jpeg: bool) -> ImageError:
    w, h = im.size
    if jpeg:
        return ImageError(f"image too large to decode within the memory budget: {label} is {w} x {h} pixels "
                          f"(limit {budget >> 20} MB)")
    return ImageError(f"image too large to decode within the memory budget: {label} is {w} x {h} {im.mode} pixels, "
                      f"{decoded_bytes(im) >> 20} MB decoded (limit {budget >> 20} MB; a JPEG would be reduced)")


def _within_budget(im: Image.Image, label: str, budget: int, min_side: int | None,
                   turned: bool) -> tuple[int, int]:
    """Prepare the decode so that its peak stays within ``budget``: a JPEG is draft-decoded (for ``min_side`` too);
    another format gets the factor it will be reduced by while converting. (factor, rows a strip); refuse what
    cannot fit."""
    w, h = im.size
    if im.format == "JPEG":
        for scale in (1, 2, 4, 8):
            target = (-(-w // scale), -(-h // scale))
            rows = _plan(im, target, 1, turned, budget)
            if rows is not None:
                break
        else:
            raise _too_large(label, im, budget, jpeg=True)
        if min_side:
            target = (min(target[0], min_side), min(target[1], min_side))
        if scale > 1 or min_side:
            im.draft("RGB", target)
        return 1, rows
    for factor in REDUCTIONS:
        rows = _plan(im, (w, h), factor, turned, budget)
        if rows is not None:
            return factor, rows
    raise _too_large(label, im, budget, jpeg=False)


def load_image(source: ImageSource, *, name: str | None = None, min_side: int | None = None,
               max_pixels: int = MAX_PIXELS, budget: int = DECODE_BUDGET) -> Image.Image:
    """Open ``source`` (path, bytes or file object) as an upright 8-bit RGB image.

    ``min_side`` lets JPEGs decode at a reduced scale (draft mode) while keeping both sides at least that long:
    several times faster for large scans that will be resized to a few hundred pixels anyway. ``budget`` bounds the
    peak memory of the decode and the conversion (see ``DECODE_BUDGET``): an image whose RGB version would not fit
    comes back reduced. An embedded ICC profile (Adobe RGB, CMYK scans) is converted to sRGB, so colours stay true.
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
            turn = _TURNS.get(_orientation(im))
            factor, rows = _within_budget(im, label, budget, min_side, turn is not None)
            im.seek(0)  # animated GIF/WebP: the first frame
            im.load()
            if turn is None and im.format == "PNG":  # an eXIf chunk after the pixels (rare): seen only now
                turn = _TURNS.get(_orientation(im))
            if factor == 1 and im.mode == "RGB" and _profile_transform(im) is None:  # sRGB already: as decoded
                return im.transpose(turn) if turn is not None else im
            out = convert_in_strips(im, factor, rows or None)
            return out.transpose(turn) if turn is not None else out
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


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation, read without decoding: Pillow's PNG reader decodes the whole image to look for an eXIf
    chunk after the pixels, so before decoding a PNG's counts only when it comes before them (an upright 1 otherwise;
    load_image looks again once decoded)."""
    if im.format == "PNG" and "exif" not in im.info and getattr(im, "_im", None) is None:
        return 1
    try:
        return int(im.getexif().get(_ORIENTATION, 1))
    except (TypeError, ValueError, OSError, SyntaxError):
        return 1


def convert_in_strips(im: Image.Image, factor: int = 1, rows: int | None = None) -> Image.Image:
    """``to_srgb(im)`` reduced by ``factor``, made ``rows`` rows at a time: beside ``im`` only the result and one
    strip's conversion (at most ``STRIP_WORK`` bytes by default) are ever in memory. Strips are whole multiples of
    ``factor`` rows, so the result is the very image converting and reducing the whole would give."""
    w, h = im.size
    convert = srgb_converter(im)
    out = Image.new("RGB", (-(-w // factor), -(-h // factor)))
    rows = rows or max(factor, STRIP_WORK // (WORK_PER_PIXEL * max(w, 1)) // factor * factor)
    for top in range(0, h, rows):
        strip = convert(im.crop((0, top, w, min(h, top + rows))))
        out.paste(strip.reduce(factor) if factor > 1 else strip, (0, top // factor))
    return out


_SRGB = None


def _srgb():
    global _SRGB
    if _SRGB is None:
        _SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return _SRGB


def _profile_transform(im: Image.Image):
    """The transform of ``im``'s embedded ICC profile to sRGB; None when it has none, it is sRGB already, or it does
    not fit the image (then the plain conversion is right)."""
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in ImageCms.getProfileDescription(profile).lower().replace(" ", ""):
            return None
        mode = "RGB" if im.mode == "RGBA" else im.mode
        transform = ImageCms.buildTransform(profile, _srgb(), mode, "RGB")
        ImageCms.applyTransform(Image.new(mode, (1, 1)), transform)  # a profile that does not fit fails here
        return transform
    except (ImageCms.PyCMSError, OSError, ValueError):
        return None


def srgb_converter(im: Image.Image) -> Callable[[Image.Image], Image.Image]:
    """A function making any part of ``im`` 8-bit sRGB as ``to_srgb(im)`` would make the whole: the colour transform
    is built once, 16-bit and float parts are rescaled by the whole image's range."""
    extrema = im.getextrema() if im.mode in _WIDE else None
    transform = _profile_transform(im)
    if transform is None:
        return lambda part: to_rgb(part, extrema)
    return lambda part: ImageCms.applyTransform(to_rgb(part) if part.mode == "RGBA" else part, transform)


def to_srgb(im: Image.Image) -> Image.Image:
    """``to_rgb``, with the colours of an embedded ICC profile (not sRGB already) converted to sRGB."""
    return srgb_converter(im)(im)


_WIDE = ("I;16", "I;16B", "I;16L", "I", "F")


def to_rgb(im: Image.Image, extrema: tuple[float, float] | None = None) -> Image.Image:
    """Any Pillow mode to RGB; transparency is composited on white (paper), 16-bit and float are rescaled (by
    ``extrema``, the whole image's (min, max), when ``im`` is a part of it)."""
    if im.mode == "RGB":
        return im
    if im.mode in _WIDE:
        arr = np.array(im, dtype=np.float32)  # a writable copy, rescaled in place
        lo, hi = extrema if extrema is not None else (float(arr.min()), float(arr.max()))
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
