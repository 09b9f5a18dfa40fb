"""The folder builder: class sub-folders or a CSV, with unreadable files reported and skipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from _progress import Counted
from artlab.collection.contract import read_manifest
from artlab.errors import CollectionError, ConfigError
from artlab.collection.folder import build_folder


def picture(path: Path, size=(120, 80), seed=0, mode="RGB", fmt=None) -> Path:
    """A gradient with a few shapes: something a decoder has to work on, not a flat colour."""
    rng = np.random.default_rng(seed)
    w, h = size
    ramp = np.linspace(0, 255, w, dtype=np.float32)[None, :, None] * rng.uniform(0.3, 1.0, 3)
    arr = np.broadcast_to(ramp, (h, w, 3)).astype(np.uint8)
    im = Image.fromarray(arr)
    draw = ImageDraw.Draw(im)
    for _ in range(3):
        x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        draw.ellipse((x0, y0, x0 + w // 3, y0 + h // 3), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.convert(mode).save(path, format=fmt)
    return path


@pytest.fixture()
def src(tmp_path) -> Path:
    root = tmp_path / "my paintings"
    picture(root / "portrait" / "lady.jpg", seed=1)
    picture(root / "portrait" / "lady.png", seed=2, mode="RGBA")  # same stem: needs its own output name
    picture(root / "portrait" / "sketches" / "head study.jpg", size=(1500, 900), seed=3)
    picture(root / "landscape" / "hills.jpg", seed=4)
    picture(root / "landscape" / "sea.webp", seed=5)
    (root / "landscape" / "broken.jpg").write_text("this is a text file wearing a .jpg name")
    (root / "landscape" / "notes.txt").write_text("bought 1998")
    (root / "landscape" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    picture(root / "stray.jpg", seed=6)
    return root


def test_class_folders(tmp_path, src):
    progress = Counted()
    report = build_folder(src, tmp_path / "c", max_side=256, progress=progress)
    df = read_manifest(tmp_path / "c")
    assert df["genre"].value_counts().to_dict() == {"portrait": 3, "landscape": 2}
    assert sorted(df["path"]) == ["images/landscape/hills.jpg", "images/landscape/sea.jpg",
                                  "images/portrait/head_study.jpg", "images/portrait/lady-2.jpg",
                                  "images/portrait/lady.jpg"]
    assert df["id"].is_unique and set(df["source"]) == {"folder"} and set(df["license"]) == {""}
    assert set(df["title"]) == {"lady", "head study", "hills", "sea"}
    for rel in df["path"]:
        with Image.open(tmp_path / "c" / rel) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and max(im.size) <= 256
    assert report.kept == 5 and progress.calls[-1] == (7, 7)
    assert report.per_class["landscape"] == {"initial": 4, "excluded": 2, "final": 2}
    reasons = " | ".join(report.dropped)
    assert "not an image file: broken.jpg" in reasons and "not an image file type: notes.txt" in reasons
    assert ".DS_Store" not in reasons
    notes = " | ".join(report.notes)
    assert "licence unknown" in notes and "stray.jpg" in notes


def test_label_column_size_and_no_copy(tmp_path, src):
    build_folder(src, tmp_path / "full", label="culture", max_side=None)
    df = read_manifest(tmp_path / "full").set_index("title")
    assert "culture" in df.columns and "genre" not in df.columns
    with Image.open(tmp_path / "full" / df.loc["head study", "path"]) as im:
        assert im.size == (1500, 900)

    out = tmp_path / "refs"
    build_folder(src, out, copy=False)
    df = read_manifest(out)
    assert not (out / "images").exists()
    assert all((out / p).resolve().parent.parent in (src.resolve(), (src / "portrait").resolve()) for p in df["path"])
    assert {(out / p).resolve() for p in df["path"]} == {Path(o).resolve() for o in df["original"]}


def test_output_inside_the_source_is_refused(src):
    from artlab.safety import OutputError
    with pytest.raises(OutputError, match="is inside the source folder"):
        build_folder(src, src / "collection")
    assert not (src / "collection").exists()


def test_csv(tmp_path, src):
    listing = tmp_path / "lists" / "labels.csv"
    listing.parent.mkdir()
    picture(listing.parent / "beside.jpg", seed=7)
    pd.DataFrame([
        {"path": "beside.jpg", "label": "portrait", "title": "A neighbour", "artist": "Me", "date": "2024"},
        {"path": str(src / "landscape" / "hills.jpg"), "label": "landscape", "title": "", "artist": "", "date": ""},
        {"path": "portrait/lady.jpg", "label": "portrait", "title": "", "artist": "", "date": ""},  # found in src
        {"path": "beside.jpg", "label": "portrait", "title": "", "artist": "", "date": ""},  # listed twice
        {"path": "gone.jpg", "label": "landscape", "title": "", "artist": "", "date": ""},
        {"path": "landscape/broken.jpg", "label": "landscape", "title": "", "artist": "", "date": ""},
    ]).to_csv(listing, index=False)
    report = build_folder(src, tmp_path / "c", csv=listing)
    df = read_manifest(tmp_path / "c").set_index("title")
    assert df.loc["A neighbour", ["artist", "date", "genre"]].tolist() == ["Me", "2024", "portrait"]
    assert set(df.index) == {"A neighbour", "hills", "lady"}
    reasons = " | ".join(report.dropped)
    assert "listed twice" in reasons and "not found: gone.jpg" in reasons and "broken.jpg" in reasons

    report = build_folder(listing, tmp_path / "d")  # the CSV itself as the source
    assert report.kept == 2  # beside.jpg (next to the CSV) and the absolute path; not portrait/lady.jpg


def test_errors_are_one_clear_line(tmp_path, src):
    with pytest.raises(CollectionError, match="no such folder"):
        build_folder(tmp_path / "nowhere", tmp_path / "c")
    flat = tmp_path / "flat"
    picture(flat / "a.jpg")
    with pytest.raises(CollectionError, match="no class sub-folders"):
        build_folder(flat, tmp_path / "c")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("path,class\na.jpg,portrait\n")
    with pytest.raises(CollectionError, match=r"bad.csv lacks column\(s\): label"):
        build_folder(flat, tmp_path / "c", csv=bad_csv)
    (src / "still life").mkdir()
    (src / "still life" / "apples.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(CollectionError, match=r"class 'still life' has no readable images .*apples.jpg"):
        build_folder(src, tmp_path / "c")
    (src / "still life" / "apples.jpg").unlink()
    with pytest.raises(CollectionError, match="class 'still life' has no readable images .*empty"):
        build_folder(src, tmp_path / "c")
    with pytest.raises(ConfigError, match="cannot be a label column"):
        build_folder(src, tmp_path / "c", label="path")
    from artlab.safety import OutputError
    with pytest.raises(OutputError, match="the same folder as the source folder"):
        build_folder(src, src)


@pytest.mark.parametrize("stem, title", [
    ("The_Coronation_of_the_Virgin_435853", "The Coronation of the Virgin"),  # a museum's object id
    ("Self-Portrait-000123", "Self-Portrait"),
    ("View_of_Delft_1660", "View of Delft 1660"),  # a year, not an id
    ("Lot_7", "Lot 7"), ("Study 12", "Study 12"),  # short numbers are part of the title
    ("435853", "435853"),  # nothing but a number: kept, or there would be no title at all
    ("head  study", "head study"),
])
def test_titles_from_file_names_are_cleaned(stem, title):
    from artlab.collection.folder import title_from_name
    assert title_from_name(stem) == title


def test_the_report_counts_the_labels_and_titles_lose_their_ids(tmp_path):
    """report.json's label_counts holds the classes kept (it was empty for a folder build), and a title taken from
    a file name reads as one (underscores and a trailing object id gone); a CSV's own title is kept as written."""
    import json
    root = tmp_path / "mine"
    picture(root / "religious" / "The_Coronation_of_the_Virgin_435853.jpg", seed=1)
    picture(root / "religious" / "Saint_Jerome_1503.jpg", seed=2)
    picture(root / "portrait" / "Portrait_of_a_Woman_436105.jpg", seed=3)
    (root / "portrait" / "broken.jpg").write_text("not an image")
    report = build_folder(root, tmp_path / "c", max_side=128)
    saved = json.loads((tmp_path / "c" / "report.json").read_text())
    assert saved["label_counts"] == {"genre": {"religious": 2, "portrait": 1}} == report.label_counts
    assert sorted(read_manifest(tmp_path / "c")["title"]) == [
        "Portrait of a Woman", "Saint Jerome 1503", "The Coronation of the Virgin"]
