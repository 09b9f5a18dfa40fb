"""Generated huggan/wikiart shards, written as `datasets` writes them, whose pictures show their genre.

Columns ``image`` (struct {bytes, path}), ``artist``, ``genre``, ``style`` as class-label integers, the names in the
schema's ``huggingface`` metadata (``{"info": {"features": {...}}}``, each ClassLabel as ``{"names": [...],
"_type": "ClassLabel"}`` and the image as ``{"_type": "Image"}``: datasets' Features.to_dict), several row groups a
shard. Genres are imbalanced as in WikiArt: many portraits, landscapes and unlabelled rows, few still lifes and
sketches. Each picture is filled with its genre's colour (GENRE_COLOURS), so a test can tell a picture's genre by eye.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from artlab.collection.wikiart import ARTIST_NAMES, GENRE_NAMES, STYLE_NAMES

#: Rows per genre in the generated dataset (order of GENRE_NAMES); 300 rows in all.
GENRE_ROWS = {"abstract_painting": 15, "cityscape": 15, "genre_painting": 35, "illustration": 7, "landscape": 55,
              "nude_painting": 8, "portrait": 60, "religious_painting": 25, "sketch_and_study": 21, "still_life": 22,
              "Unknown Genre": 37}
GENRE_COLOURS = {name: tuple(int(v) for v in np.random.default_rng(i).integers(30, 226, 3))
                 for i, name in enumerate(GENRE_NAMES)}
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def features_metadata() -> bytes:
    def label(names):
        return {"names": list(names), "_type": "ClassLabel"}
    features = {"image": {"_type": "Image"}, "artist": label(ARTIST_NAMES), "genre": label(GENRE_NAMES),
                "style": label(STYLE_NAMES)}
    return json.dumps({"info": {"features": features}}).encode()


def picture(genre: str, row: int) -> bytes:
    im = Image.new("RGB", (48 + row % 7, 40), GENRE_COLOURS[genre])
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def dataset_rows(seed: int = 0) -> list[dict]:
    genres = [g for g, n in GENRE_ROWS.items() for _ in range(n)]
    order = np.random.default_rng(seed).permutation(len(genres))
    rows = []
    for row, k in enumerate(order):
        genre = genres[k]
        artist = row % len(ARTIST_NAMES)
        path = f"{ARTIST_NAMES[artist]}_{genre.replace('_', '-')}-study-{row}-{1850 + row % 100}.jpg"
        rows.append({"image": {"bytes": picture(genre, row), "path": path}, "artist": artist,
                     "genre": GENRE_NAMES.index(genre), "style": row % len(STYLE_NAMES)})
    return rows


def shard_bytes(rows: list[dict], n_shards: int = 5, row_group_size: int = 5) -> dict[str, bytes]:
    """{"data/train-0000k-of-0000n.parquet": bytes}, split as evenly as `datasets` splits."""
    files = {}
    for k, chunk in enumerate(np.array_split(np.arange(len(rows)), n_shards)):
        part = [rows[i] for i in chunk]
        table = pa.table({
            "image": pa.array([r["image"] for r in part], type=IMAGE_TYPE),
            "artist": pa.array([r["artist"] for r in part], pa.int64()),
            "genre": pa.array([r["genre"] for r in part], pa.int64()),
            "style": pa.array([r["style"] for r in part], pa.int64()),
        }).replace_schema_metadata({b"huggingface": features_metadata()})
        buf = io.BytesIO()
        pq.write_table(table, buf, row_group_size=row_group_size)
        files[f"data/train-{k:05d}-of-{n_shards:05d}.parquet"] = buf.getvalue()
    return files
