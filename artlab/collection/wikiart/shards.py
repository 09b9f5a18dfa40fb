"""Reading the parquet shards: the cheap label columns of every row first, then the image bytes of chosen rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from artlab.errors import CollectionError
from artlab.collection.wikiart.names import ARTIST_NAMES, GENRE_NAMES, STYLE_NAMES


# --- reading the shards -----------------------------------------------------------------------------------------

def read_index(shards: Sequence[Path]) -> tuple[pd.DataFrame, dict[str, Sequence[str]]]:
    """One row per dataset row: global ``row``, ``shard``, ``local`` row, ``genre``, ``artist``, ``style``, ``file``.

    Reads only the label columns and the image's file name, never the image bytes.
    """
    frames, offset, names = [], 0, None
    for i, shard in enumerate(shards):
        pf = _open_parquet(shard)
        names = names or _label_names(pf.schema_arrow)
        columns = _check_schema(pf.schema_arrow, shard)
        table = pf.read(columns=columns)
        n = table.num_rows
        frame = pd.DataFrame({"row": np.arange(offset, offset + n), "shard": i, "local": np.arange(n)})
        for col in ("genre", "artist", "style"):
            frame[col] = _ints(table, col) if col in table.column_names else -1
        frame["file"] = _image_field(table, "path").to_pylist() if "image" in table.column_names else None
        frames.append(frame)
        offset += n
    return pd.concat(frames, ignore_index=True), names or _default_names()


def _open_parquet(shard: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(shard)
    except (pa.ArrowInvalid, OSError) as exc:
        raise CollectionError(f"not a readable parquet shard: {shard} ({exc})") from None


def _check_schema(schema: pa.Schema, shard: Path) -> list[str]:
    if "genre" not in schema.names or "image" not in schema.names:
        raise CollectionError(f"{shard.name} is not a WikiArt shard: it needs 'image' and 'genre' columns "
                              f"(it has: {', '.join(schema.names)})")
    image = schema.field("image").type
    if not pa.types.is_struct(image) or image.get_field_index("bytes") < 0:
        raise CollectionError(f"{shard.name}: column 'image' is not a {{bytes, path}} struct")
    has_path = image.get_field_index("path") >= 0
    return [c for c in ("genre", "artist", "style") if c in schema.names] + (["image.path"] if has_path else [])


def _image_field(table: pa.Table, field: str) -> pa.ChunkedArray:
    """One child of the ``image`` struct (reading "image.<field>" keeps the struct around it)."""
    return pc.struct_field(table.column("image"), field)


def _ints(table: pa.Table, col: str) -> np.ndarray:
    return table.column(col).fill_null(-1).to_numpy().astype(np.int64)


def _default_names() -> dict[str, Sequence[str]]:
    return {"genre": GENRE_NAMES, "artist": ARTIST_NAMES, "style": STYLE_NAMES}


def _label_names(schema: pa.Schema) -> dict[str, Sequence[str]]:
    """Class names from the shard's own `datasets` metadata when it has them, else the card's lists above."""
    names = _default_names()
    try:
        features = json.loads((schema.metadata or {})[b"huggingface"])["info"]["features"]
    except (KeyError, TypeError, ValueError):
        return names
    for col in names:
        feature = features.get(col) or {}
        if feature.get("_type") == "ClassLabel" and feature.get("names"):
            names[col] = tuple(feature["names"])
    return names


def read_image_bytes(shard: Path, local_rows: Sequence[int]) -> Iterator[tuple[int, bytes | None]]:
    """(local row, image bytes) for the given rows of one shard, reading only the row groups that hold them."""
    pf = pq.ParquetFile(shard)
    wanted = np.sort(np.asarray(local_rows, dtype=np.int64))
    start = 0
    for group in range(pf.metadata.num_row_groups):
        stop = start + pf.metadata.row_group(group).num_rows
        here = wanted[(wanted >= start) & (wanted < stop)]
        if len(here):
            column = _image_field(pf.read_row_group(group, columns=["image.bytes"]), "bytes")
            yield from zip(here.tolist(), column.take(pa.array(here - start)).to_pylist())
        start = stop
