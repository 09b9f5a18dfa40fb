"""The hostile probe's crafted images (issue #25), generated: each a small file that decodes to ~120 MP, in a mode
whose conversion to RGB used to cost far more than its decoded pixels. Shared by the decode and the server tests."""

from __future__ import annotations

import io

from PIL import Image

SIDE = 10950  # just under artlab.images.MAX_PIXELS (120 MP)


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def crafted_images() -> dict[str, bytes]:
    """{file name: bytes}: a palette PNG of 118 MP with transparency (14 KB), an RGBA PNG (250 KB, 7900^2), 16-bit
    PNG and TIFF with a bright corner (120 MP), a bilevel TIFF (8 KB) and the 500 KB 10950^2 RGBA PNG."""
    wide = Image.new("I;16", (SIDE, SIDE), 1000)
    wide.paste(30000, (0, 0, 64, 64))  # a bright corner: the 16-bit range is rescaled to 0-255
    files = {
        "palette.png": _save(Image.new("P", (10860, 10860), 0), "PNG", transparency=0, compress_level=9),
        "rgba.png": _save(Image.new("RGBA", (7900, 7900), (120, 80, 40, 128)), "PNG", compress_level=9),
        "wide.png": _save(wide, "PNG", compress_level=9),
        "wide.tif": _save(wide, "TIFF", compression="tiff_adobe_deflate"),
        "bilevel.tif": _save(Image.new("1", (SIDE, SIDE), 1), "TIFF", compression="group4"),
        "bomb.png": _save(Image.new("RGBA", (SIDE, SIDE), (120, 80, 40, 255)), "PNG", compress_level=9),
    }
    assert len(files["palette.png"]) < 120_000 and len(files["bilevel.tif"]) < 10_000
    assert max(len(v) for v in files.values()) < 1_000_000
    return files
