"""ICC v2 profiles written byte by byte (Pillow's ImageCms can only create sRGB, LAB and XYZ): a real Adobe RGB
(1998) display profile (the published primaries adapted to D50, gamma 563/256, as in Adobe's own AdobeRGB1998.icc),
and CMYK printer profiles whose ink corners are chosen by the test."""

from __future__ import annotations

import struct


def _s15(x: float) -> bytes:
    return struct.pack(">i", round(x * 65536))


def _xyz(x, y, z) -> bytes:
    return b"XYZ " + b"\0" * 4 + _s15(x) + _s15(y) + _s15(z)


def _curve(gamma_u8f8: int) -> bytes:
    return b"curv" + b"\0" * 4 + struct.pack(">IH", 1, gamma_u8f8) + b"\0\0"


def _desc(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    return (b"desc" + b"\0" * 4 + struct.pack(">I", len(ascii_)) + ascii_ + struct.pack(">II", 0, 0)
            + struct.pack(">HB", 0, 0) + b"\0" * 67)


def _text(text: str) -> bytes:
    return b"text" + b"\0" * 4 + text.encode("ascii") + b"\0"


def _profile(kind: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    """An ICC v2 profile: the 128-byte header (``kind``: device class, colour space and PCS), the tag table, the tags."""
    offset = 128 + 4 + 12 * len(tags)
    table, body = struct.pack(">I", len(tags)), b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I", size) + b"none" + struct.pack(">I", 0x02100000) + kind
              + struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + b"APPL" + b"\0" * 4 + b"none" + b"\0" * 4
              + b"\0" * 8 + struct.pack(">I", 0) + _s15(0.9642) + _s15(1.0) + _s15(0.8249) + b"none"
              + b"\0" * 16 + b"\0" * 28)
    assert len(header) == 128
    return header + table + body


def adobe_rgb_profile() -> bytes:
    tags = [(b"desc", _desc("Adobe RGB (1998) test profile")), (b"cprt", _text("public domain test data")),
            (b"wtpt", _xyz(0.96420, 1.0, 0.82491)),
            (b"rXYZ", _xyz(0.60974, 0.31111, 0.01947)), (b"gXYZ", _xyz(0.20528, 0.62567, 0.06087)),
            (b"bXYZ", _xyz(0.14919, 0.06322, 0.74457)),
            (b"rTRC", _curve(563)), (b"gTRC", _curve(563)), (b"bTRC", _curve(563))]
    return _profile(b"mntrRGB XYZ ", tags)


def _lut8_cmyk_to_lab(corner_rgb) -> bytes:
    """An ICC v2 lut8Type (mft1) from CMYK to Lab: identity curves, a 2-point grid whose 16 corners hold the Lab of
    ``corner_rgb(c, m, y, k)`` (sRGB, each 0 or 1), computed by littleCMS itself."""
    from PIL import Image, ImageCms
    corners = [(c, m, y, k) for c in (0, 1) for m in (0, 1) for y in (0, 1) for k in (0, 1)]  # first input slowest
    rgb = Image.frombytes("RGB", (len(corners), 1),
                          bytes(round(255 * v) for corner in corners for v in corner_rgb(*corner)))
    lab = ImageCms.applyTransform(rgb, ImageCms.buildTransform(ImageCms.createProfile("sRGB"),
                                                               ImageCms.createProfile("LAB"), "RGB", "LAB"))
    raw = lab.tobytes()  # L 0-255, a and b as signed bytes; lut8 wants them offset by 128
    clut = bytes(v if i % 3 == 0 else v ^ 0x80 for i, v in enumerate(raw))
    identity = bytes(range(256))
    matrix = b"".join(_s15(1.0 if i % 4 == 0 else 0.0) for i in range(9))
    return b"mft1" + b"\0" * 4 + bytes([4, 3, 2, 0]) + matrix + identity * 4 + clut + identity * 3


def cmyk_profile(corner_rgb) -> bytes:
    """A CMYK output (printer) profile whose ink corners look like ``corner_rgb`` in sRGB (an A2B0 table, PCS Lab)."""
    tags = [(b"desc", _desc("artlab CMYK test profile")), (b"cprt", _text("public domain test data")),
            (b"wtpt", _xyz(0.96420, 1.0, 0.82491)), (b"A2B0", _lut8_cmyk_to_lab(corner_rgb))]
    return _profile(b"prtrCMYKLab ", tags)
