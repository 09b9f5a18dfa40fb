import io

import numpy as np
import pytest
from PIL import Image

from artlab.errors import ImageError
from artlab.images import fit_within, load_image, to_rgb


def _png(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", **kw)
    return buf.getvalue()


def test_real_painting_loads_as_rgb(demo_images):
    im = load_image(demo_images[0])
    assert im.mode == "RGB" and min(im.size) > 100


def test_draft_mode_keeps_requested_side(tmp_path, demo_images):
    big = load_image(demo_images[0]).resize((2400, 1800))
    path = tmp_path / "big.jpg"
    big.save(path, quality=90)
    small = load_image(path, min_side=256)
    assert min(small.size) >= 256 and max(small.size) < 2400


@pytest.mark.parametrize("data,msg", [(b"", "empty"), (b"hello, not an image", "not an image file")])
def test_non_images_raise_one_line(data, msg):
    with pytest.raises(ImageError, match=msg) as err:
        load_image(data, name="x.jpg")
    assert "x.jpg" in str(err.value) and "\n" not in str(err.value)


def test_missing_file():
    with pytest.raises(ImageError, match="no such file"):
        load_image("/nonexistent/painting.jpg")


def test_bomb_refused_before_decoding():
    bomb = _png(Image.new("1", (20000, 20000)))  # a few KB on disk, 400 megapixels decoded
    with pytest.raises(ImageError, match="too large"):
        load_image(bomb, name="bomb.png")


def test_transparency_composited_on_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    out = load_image(_png(rgba))
    assert out.getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_is_rescaled():
    arr = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    im = Image.fromarray(arr)
    assert im.mode == "I;16"
    out = to_rgb(im)
    px = np.asarray(out)
    assert out.mode == "RGB" and px.min() == 0 and px.max() == 255


def test_fit_within_keeps_aspect():
    out = fit_within(Image.new("RGB", (1000, 500)), 200)
    assert out.size == (200, 100)
    assert fit_within(Image.new("RGB", (50, 20)), 200).size == (50, 20)  # never upscales
