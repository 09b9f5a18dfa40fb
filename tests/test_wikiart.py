"""The WikiArt builder on generated parquet shards with the hub's real schema; the hub path against a local server."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from _progress import Counted
from artlab.collection.contract import read_manifest
from artlab.errors import ConfigError
from artlab.collection import wikiart
from artlab.collection.wikiart import sample as wikiart_sample
from artlab.collection.wikiart import build_wikiart

G = {name: i for i, name in enumerate(wikiart.GENRE_NAMES)}
COUNTS = {"portrait": 8, "landscape": 8, "still_life": 5, "sketch_and_study": 4, "cityscape": 3,
          "religious_painting": 2}
SHARD_SIZES = (12, 10, 8)
CORRUPT_ROW_GENRE, NULL_ROW_GENRE = "still_life", "cityscape"
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def colour(row: int) -> tuple[int, int, int]:
    return (row * 8) % 256, (row * 37) % 256, 100 + row % 100


def painting(row: int) -> bytes:
    """A flat colour that names its row, in varied sizes and formats (JPEG, PNG with alpha)."""
    size = (40 + (13 * row) % 260, 30 + (7 * row) % 200)
    buf = io.BytesIO()
    if row % 2:
        Image.new("RGBA", size, (*colour(row), 255)).save(buf, format="PNG")
    else:
        Image.new("RGB", size, colour(row)).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def dataset_rows() -> list[dict]:
    genres = [g for g, n in COUNTS.items() for _ in range(n)]
    np.random.default_rng(7).shuffle(genres)
    rows, corrupt_done, null_done = [], False, False
    for row, genre in enumerate(genres):
        blob = painting(row)
        if genre == CORRUPT_ROW_GENRE and not corrupt_done:
            blob, corrupt_done = b"\xff\xd8\xff\xe0 this is not really a jpeg", True
        elif genre == NULL_ROW_GENRE and not null_done:
            blob, null_done = None, True
        known = row % 2 == 0
        path = (f"vincent-van-gogh_study-{row}-{1850 + row}.jpg" if known
                else f"unknown-painter_study-{row}-{1850 + row}.jpg")
        rows.append({"image": {"bytes": blob, "path": path}, "artist": 22 if known else 0, "genre": G[genre],
                     "style": row % 27})
    return rows


def write_shards(folder: Path, rows: list[dict], names: list[str] | None = None, metadata: dict | None = None,
                 sizes: tuple[int, ...] = SHARD_SIZES, row_group_size: int = 4):
    folder.mkdir(parents=True, exist_ok=True)
    start = 0
    for i, size in enumerate(sizes):
        chunk = rows[start:start + size]
        table = pa.table({
            "image": pa.array([r["image"] for r in chunk], type=IMAGE_TYPE),
            "artist": pa.array([r["artist"] for r in chunk], pa.int64()),
            "genre": pa.array([r["genre"] for r in chunk], pa.int64()),
            "style": pa.array([r["style"] for r in chunk], pa.int64()),
        })
        if metadata:
            table = table.replace_schema_metadata({b"huggingface": json.dumps(metadata).encode()})
        name = (names or [f"train-{k:05d}-of-{len(sizes):05d}.parquet" for k in range(len(sizes))])[i]
        pq.write_table(table, folder / name, row_group_size=row_group_size)
        start += size
    return folder


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return dataset_rows()


@pytest.fixture(scope="module")
def shards(tmp_path_factory, rows) -> Path:
    return write_shards(tmp_path_factory.mktemp("wikiart") / "data", rows)


def build(out: Path, shards: Path, **kw):
    kw = {"per_class": 3, "max_side": 64, "source": str(shards), **kw}
    return build_wikiart(out, **kw)


def row_of(image_id: str) -> int:
    return int(image_id.removeprefix("wikiart-"))


def test_balanced_sample_with_mapped_names_capped_sizes_and_right_pixels(tmp_path, shards, rows):
    progress = Counted()
    report = build(tmp_path / "c", shards, progress=progress)
    df = read_manifest(tmp_path / "c")
    assert df["genre"].value_counts().to_dict() == {"portrait": 3, "landscape": 3, "still life": 3, "sketch": 3}
    assert report.kept == 12 and progress.calls[-1] == (12, 12)
    assert {c: v["initial"] for c, v in report.per_class.items()} == {
        "portrait": 8, "landscape": 8, "still life": 5, "sketch": 4}
    for rec in df.itertuples():
        row = row_of(rec.id)
        assert rows[row]["genre"] == G[{"still life": "still_life", "sketch": "sketch_and_study"}.get(rec.genre,
                                                                                                    rec.genre)]
        with Image.open(tmp_path / "c" / rec.path) as im:
            assert max(im.size) <= 64 and im.format == "JPEG"
            mean = np.asarray(im.convert("RGB"), dtype=float).reshape(-1, 3).mean(axis=0)
        assert np.abs(mean - colour(row)).max() < 12, f"{rec.id} does not hold row {row}'s image"
        assert rec.path == f"images/{wikiart.GENRE_NAMES[rows[row]['genre']]}/{rec.id}.jpg"
        assert rec.license == wikiart.LICENSE and rec.source == "wikiart"
        assert rec.style == wikiart.STYLE_NAMES[row % 27].replace("_", " ")
    assert any("seed 0" in n for n in report.notes)


def test_title_artist_and_date_come_from_label_or_file_name(tmp_path, shards):
    build(tmp_path / "c", shards, genres=("portrait", "landscape"), per_class=8)
    df = read_manifest(tmp_path / "c").set_index("id")
    for image_id, rec in df.iterrows():
        row = row_of(image_id)
        assert rec["title"] == f"Study {row}" and rec["date"] == str(1850 + row)
        assert rec["artist"] == ("Vincent van Gogh" if row % 2 == 0 else "Unknown Painter")


def test_file_name_parsing():
    assert wikiart.parse_file_name("vincent-van-gogh_the-starry-night-1889.jpg") == (
        "The starry night", "Vincent van Gogh", "1889")
    assert wikiart.parse_file_name("Impressionism/claude-monet_water-lilies-1916-1.jpg") == (
        "Water lilies", "Claude Monet", "1916")
    assert wikiart.parse_file_name("untitled.png") == ("Untitled", "", "")
    assert wikiart.parse_file_name("") == ("", "", "")
    assert wikiart.display_name(wikiart.ARTIST_NAMES[49]) == "Joaquín Sorolla"


def test_label_lists_match_the_dataset_card():
    assert len(wikiart.GENRE_NAMES) == 11 and wikiart.GENRE_NAMES[6] == "portrait"
    assert wikiart.GENRE_NAMES[8] == "sketch_and_study" and wikiart.GENRE_NAMES[9] == "still_life"
    assert len(wikiart.STYLE_NAMES) == 27 and len(wikiart.ARTIST_NAMES) == 129
    assert wikiart.ARTIST_NAMES[22] == "vincent-van-gogh" and wikiart.ARTIST_NAMES[-1] == "canaletto"


def test_same_seed_same_images_other_seed_other_images(tmp_path, shards):
    ids = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        build(tmp_path / name, shards, seed=seed)
        ids[name] = list(read_manifest(tmp_path / name)["id"])
    assert ids["a"] == ids["b"]
    assert set(ids["a"]) != set(ids["c"])


def test_the_sample_does_not_depend_on_how_the_split_is_sharded(tmp_path, shards, rows):
    one_file = write_shards(tmp_path / "one", rows, sizes=(len(rows),), row_group_size=7)
    build(tmp_path / "a", shards, seed=3)
    build(tmp_path / "b", one_file, seed=3)
    a, b = read_manifest(tmp_path / "a"), read_manifest(tmp_path / "b")
    assert a.equals(b)


def test_a_genre_sample_does_not_depend_on_the_other_genres(tmp_path, shards):
    build(tmp_path / "all", shards)
    build(tmp_path / "one", shards, genres=("portrait",))
    everything = read_manifest(tmp_path / "all")
    assert set(everything.loc[everything["genre"] == "portrait", "id"]) == set(read_manifest(tmp_path / "one")["id"])


def test_unreadable_images_are_replaced_so_classes_stay_balanced(tmp_path, shards, rows):
    corrupt = next(i for i, r in enumerate(rows) if r["genre"] == G["still_life"] and r["image"]["bytes"][:4] ==
                   b"\xff\xd8\xff\xe0" and len(r["image"]["bytes"]) < 100)
    # 4 of the 5 still lifes: whichever the seed picks, the corrupt one is either skipped or replaced.
    for seed in range(4):
        build(tmp_path / f"s{seed}", shards, genres=("still_life",), per_class=4, seed=seed)
        assert len(read_manifest(tmp_path / f"s{seed}")) == 4
    # All 5 asked for: only 4 exist, the report says so and names the bad row.
    report = build(tmp_path / "all", shards, genres=("still life",), per_class=5)
    assert report.kept == 4 and report.per_class["still life"] == {"initial": 5, "excluded": 1, "final": 4}
    assert any(f"wikiart-{corrupt}" in reason for reason in report.dropped)
    assert any("only 4 usable" in n for n in report.notes)
    report = build(tmp_path / "null", shards, genres=("cityscape",), per_class=3)
    assert report.kept == 2 and any("no image bytes" in reason for reason in report.dropped)


def test_rerun_reuses_written_images_and_decodes_nothing(tmp_path, shards, monkeypatch):
    out = tmp_path / "c"
    first = build(out, shards, genres=("still_life", "portrait"), per_class=5)
    stamps = {p: p.stat().st_mtime_ns for p in (out / "images").rglob("*.jpg")}
    manifest = (out / "manifest.csv").read_text()

    def no_decoding(*args, **kwargs):
        raise AssertionError("a rerun decoded a source image")

    monkeypatch.setattr(wikiart_sample, "load_image", no_decoding)
    second = build(out, shards, genres=("still_life", "portrait"), per_class=5)
    assert {p: p.stat().st_mtime_ns for p in (out / "images").rglob("*.jpg")} == stamps
    assert (out / "manifest.csv").read_text() == manifest
    assert second.kept == first.kept and second.dropped == first.dropped
    monkeypatch.undo()
    gone = next(iter(stamps))
    gone.unlink()
    build(out, shards, genres=("still_life", "portrait"), per_class=5)
    assert gone.is_file() and all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p != gone)


def test_unknown_genre_is_a_clear_error(tmp_path, shards):
    with pytest.raises(ConfigError, match=r"unknown WikiArt genre 'baroque'; choose from: abstract_painting"):
        build(tmp_path / "c", shards, genres=("portrait", "baroque"))
    with pytest.raises(ConfigError, match="per_class"):
        build(tmp_path / "c", shards, per_class=0)


def test_class_names_in_the_shards_own_metadata_win(tmp_path, rows):
    names = list(wikiart.GENRE_NAMES)
    names[G["portrait"]] = "portraiture"
    features = {"genre": {"names": names, "_type": "ClassLabel"}, "image": {"_type": "Image"}}
    folder = write_shards(tmp_path / "data", rows, metadata={"info": {"features": features}})
    report = build(tmp_path / "c", folder, genres=("portraiture",))
    assert report.kept == 3 and set(read_manifest(tmp_path / "c")["genre"]) == {"portraiture"}


def test_not_a_wikiart_source(tmp_path):
    pq.write_table(pa.table({"x": [1]}), tmp_path / "x.parquet")
    with pytest.raises(Exception, match="needs 'image' and 'genre' columns"):
        build(tmp_path / "c", tmp_path / "x.parquet")
    with pytest.raises(Exception, match="no such file or folder"):
        build(tmp_path / "c", tmp_path / "missing folder")


# The hub itself (repository files, plan, resume, errors) is tested in tests/test_hub.py against tests/standins/hub.py.
