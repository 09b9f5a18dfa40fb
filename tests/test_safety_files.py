"""Real-world files: labels CSVs as spreadsheet programs export them; scans with an ICC profile; the decode budget."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from PIL import Image

from _icc import adobe_rgb_profile, cmyk_profile
from artlab.cli import main
from artlab.collection.contract import read_manifest
from artlab.collection.csvread import read_table
from artlab.errors import CollectionError, ImageError
from artlab.images import load_image
from artlab.collection.folder import build_folder

ROWS = [("café-au-lait.jpg", "still life", "Nature morte, café"), ("señora.jpg", "portrait", "Señora in Grün")]


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "src").mkdir()
    for name, _, _ in ROWS:
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "src" / name)
    return tmp_path / "src"


def labels(folder, encoding: str, sep: str, bom: bool = False):
    buf = io.StringIO()
    csv.writer(buf, delimiter=sep).writerows([("path", "label", "title"), *ROWS])  # as spreadsheets quote
    text = buf.getvalue()
    data = text.encode(encoding)
    if bom:
        data = b"\xef\xbb\xbf" + data
    path = folder / f"labels-{encoding}-{ord(sep)}.csv"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("encoding, sep, bom", [
    ("utf-8", ",", False), ("utf-8", ";", True), ("utf-16", ",", False), ("utf-16", "\t", False),
    ("utf-16-le", ";", False), ("cp1252", ";", False), ("latin-1", ",", False)])
def test_labels_csv_in_every_export_encoding(images, tmp_path, encoding, sep, bom):
    table = labels(images, encoding, sep, bom)
    before = table.read_bytes()
    build_folder(images, tmp_path / "out", csv=table)
    df = read_manifest(tmp_path / "out").sort_values("title")
    assert sorted(df["title"]) == sorted(t for _, _, t in ROWS)
    assert sorted(df["genre"]) == ["portrait", "still life"]
    assert table.read_bytes() == before


def test_encoding_and_delimiter_options_and_their_errors(images, tmp_path, capsys):
    table = labels(images, "cp1252", ";")
    df = read_table(table, encoding="cp1252", delimiter="semicolon")
    assert list(df.columns) == ["path", "label", "title"] and df["title"].iloc[1] == "Señora in Grün"
    with pytest.raises(CollectionError, match=r"is not utf-8 text \(byte \d+"):
        read_table(table, encoding="utf-8")
    with pytest.raises(CollectionError, match="unknown --encoding 'klingon'"):
        read_table(table, encoding="klingon")
    assert main(["data", "folder", str(images), "--csv", str(table), "--out", str(tmp_path / "c"),
                 "--delimiter", ";;"]) == 2
    assert "--delimiter ';;'" in capsys.readouterr().err
    assert main(["data", "folder", str(images), "--csv", str(table), "--out", str(tmp_path / "c"),
                 "--encoding", "cp1252", "--delimiter", ";"]) == 0


def png_with_profile(rgb, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), rgb).save(buf, format=fmt, icc_profile=adobe_rgb_profile(), quality=100)
    return buf.getvalue()


def test_adobe_rgb_scan_is_converted_to_srgb():
    from PIL import ImageCms
    data = png_with_profile((200, 100, 50))
    got = load_image(data, name="scan.png").getpixel((5, 5))
    src = ImageCms.ImageCmsProfile(io.BytesIO(adobe_rgb_profile()))
    want = ImageCms.profileToProfile(Image.new("RGB", (1, 1), (200, 100, 50)), src,
                                     ImageCms.createProfile("sRGB")).getpixel((0, 0))
    assert got == want and abs(got[0] - 200) >= 20  # Adobe RGB's red is redder than sRGB's
    assert load_image(png_with_profile((200, 100, 50), "JPEG"), name="scan.jpg").getpixel((5, 5))[0] >= 220


def test_a_cmyk_scan_is_converted_through_its_own_profile():
    """A CMYK JPEG (print scans, museum TIFF exports) with an embedded printer profile takes the profile's colours,
    not the naive 255 - ink formula: under a profile whose cyan ink looks yellow, a cyan pixel comes out yellow."""
    swapped = cmyk_profile(lambda c, m, y, k: ((1 - y) * (1 - k), (1 - m) * (1 - k), (1 - c) * (1 - k)))
    plain = cmyk_profile(lambda c, m, y, k: ((1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k)))

    def scan(ink, profile) -> bytes:
        buf = io.BytesIO()
        Image.new("CMYK", (16, 16), ink).save(buf, format="JPEG", icc_profile=profile, quality=100)
        return buf.getvalue()

    near = lambda got, want: max(abs(a - b) for a, b in zip(got, want)) <= 8  # noqa: E731 (JPEG and LUT rounding)
    assert near(load_image(scan((255, 0, 0, 0), swapped), name="c.jpg").getpixel((3, 3)), (255, 255, 0))
    assert near(load_image(scan((255, 0, 0, 0), plain), name="c.jpg").getpixel((3, 3)), (0, 255, 255))
    assert near(load_image(scan((0, 0, 0, 0), swapped), name="c.jpg").getpixel((3, 3)), (255, 255, 255))
    assert near(load_image(scan((0, 0, 0, 255), swapped), name="c.jpg").getpixel((3, 3)), (0, 0, 0))


def test_cmyk_and_broken_profiles_still_load():
    buf = io.BytesIO()
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(buf, format="JPEG")
    r, g, b = load_image(buf.getvalue(), name="cmyk.jpg").getpixel((3, 3))
    assert r > 200 and g < 60 and b < 60
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 20, 30)).save(buf, format="PNG", icc_profile=b"not a profile at all")
    assert load_image(buf.getvalue(), name="odd.png").getpixel((1, 1)) == (10, 20, 30)


def test_decode_budget_reduces_jpegs_and_refuses_the_rest():
    buf = io.BytesIO()
    Image.new("RGB", (4000, 3000), (90, 30, 10)).save(buf, format="JPEG")
    im = load_image(buf.getvalue(), name="big.jpg", budget=12 << 20)  # 48 MB at full size (Pillow: 4 bytes a pixel)
    assert im.size == (2000, 1500) and im.getpixel((10, 10))[0] in range(85, 96)
    assert load_image(buf.getvalue(), name="big.jpg", budget=3 << 20).size == (1000, 750)
    with pytest.raises(ImageError, match="within the memory budget: big.jpg"):
        load_image(buf.getvalue(), name="big.jpg", budget=100 << 10)
    buf = io.BytesIO()
    Image.new("RGBA", (3000, 3000)).save(buf, format="PNG")
    with pytest.raises(ImageError, match=r"big.png is 3000 x 3000 RGBA pixels, 34 MB decoded \(limit 16 MB"):
        load_image(buf.getvalue(), name="big.png", budget=16 << 20)
    # 34 MB decoded fit 40 MB, but not with a 34 MB (or half-size 9 MB) RGB copy beside: converted by strips into a
    # third-size image
    half = load_image(buf.getvalue(), name="big.png", budget=40 << 20)
    assert half.size == (1000, 1000) and half.getpixel((5, 5)) == (255, 255, 255)
    assert load_image(buf.getvalue(), name="big.png", budget=80 << 20).size == (3000, 3000)
