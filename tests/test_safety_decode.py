"""The decode budget bounds the peak of the whole decode-and-convert, whatever the mode (issue #25).

The crafted files of the hostile probe, generated here: a palette PNG of 118 MP with transparency (14 KB), an RGBA PNG
(250 KB), 16-bit PNG and TIFF (120 MP), a bilevel TIFF (8 KB) and the 500 KB PNG of 10950 x 10950 RGBA pixels.
Before the fix, the conversions after the decode (palette -> RGBA -> composite -> RGB, 16-bit -> float, RGBA
compositing) took 0.6 to 1.9 GB past a 256 MB budget. Each file is loaded in a fresh process whose peak RSS
(``VmHWM``; ``ru_maxrss`` would count the forking test process) is compared with its RSS before the call: it stays within the budget plus ``ALLOWANCE`` (the
decoder's own buffers and the interpreter's small change).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.slow

APP_BUDGET_MB = 256  # artlab.app.memory.APP_DECODE_BUDGET
DEFAULT_BUDGET_MB = 768  # artlab.images.DECODE_BUDGET
ALLOWANCE_MB = 32
SIDE = 10950  # just under the 120 MP limit

MEASURE = """
import json, sys
import psutil
from artlab.errors import ImageError
from artlab.images import load_image
before = psutil.Process().memory_info().rss
try:
    im = load_image(sys.argv[1], budget=int(sys.argv[2]) << 20)
    out = {"size": im.size, "corner": im.getpixel((0, 0)), "middle": im.getpixel((im.width // 2, im.height // 2))}
except ImageError as exc:
    out = {"refused": str(exc)}
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))  # this process's own peak
out["peak_mb"] = (int(hwm.split()[1]) * 1024 - before) / 2 ** 20
print(json.dumps(out))
"""


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def crafted(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("crafted")
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
    del wide
    assert len(files["palette.png"]) < 120_000 and len(files["bilevel.tif"]) < 10_000
    assert max(len(v) for v in files.values()) < 1_000_000
    paths = {}
    for name, data in files.items():
        paths[name] = folder / name
        paths[name].write_bytes(data)
    return paths


def measure(path: Path, budget_mb: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path), str(budget_mb)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("name,budget_mb", [
    ("palette.png", APP_BUDGET_MB), ("rgba.png", APP_BUDGET_MB), ("wide.png", APP_BUDGET_MB),
    ("wide.tif", APP_BUDGET_MB), ("bilevel.tif", APP_BUDGET_MB), ("bomb.png", APP_BUDGET_MB),
    ("bomb.png", DEFAULT_BUDGET_MB), ("palette.png", DEFAULT_BUDGET_MB), ("wide.tif", DEFAULT_BUDGET_MB),
])
def test_decode_and_convert_stay_within_the_budget(crafted, name, budget_mb):
    got = measure(crafted[name], budget_mb)
    print(f"\n{name} under {budget_mb} MB: peak +{got['peak_mb']:.0f} MB, "
          + (f"refused ({got['refused']})" if "refused" in got else f"{got['size']}"))
    assert got["peak_mb"] <= budget_mb + ALLOWANCE_MB, got
    if "refused" in got:  # one line naming the file and the budget
        assert name in got["refused"] and f"limit {budget_mb} MB" in got["refused"] and "\n" not in got["refused"]
        assert name in ("rgba.png", "bomb.png") and budget_mb == APP_BUDGET_MB  # the others fit, reduced
        return
    w, h = got["size"]
    assert min(w, h) >= 1000  # reduced, not thumbnailed
    if name == "palette.png":  # the transparent palette entry is composited on white paper
        assert got["middle"] == [255, 255, 255]
    if name.startswith("wide"):  # 1000 of 1000..30000 is black, the bright corner white
        assert got["middle"] == [0, 0, 0] and got["corner"][0] > 200
    if name == "bilevel.tif":
        assert got["middle"] == [255, 255, 255]
    if name == "bomb.png":  # opaque: its own colour
        assert got["middle"] == [120, 80, 40]


def test_reduced_conversion_is_the_whole_image_reduced():
    """Strips are whole multiples of the factor: converting by strips gives exactly what converting the whole image
    and reducing it would."""
    from artlab.images import convert_in_strips, to_srgb
    im = Image.linear_gradient("L").resize((301, 203)).convert("P")
    im.info["transparency"] = 7
    for factor, rows in ((1, 5), (3, 6), (4, 8)):
        want = to_srgb(im)
        want = want.reduce(factor) if factor > 1 else want
        assert convert_in_strips(im, factor, rows).tobytes() == want.tobytes()
