"""Where the parquet shards come from (a local file or folder, or the hub's repository read by parts: remote.py), and
reading them: the cheap label columns of every row first, then the image bytes of chosen rows."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from artlab.collection.wikiart.names import ARTIST_NAMES, CACHE, GENRE_NAMES, STYLE_NAMES
from artlab.collection.wikiart.remote import HubShard, Shard, list_shards, row_groups_of
from artlab.errors import CollectionError


# --- where the shards come from ---------------------------------------------------------------------------------

_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")


def resolve_shards(source: str | os.PathLike, cache: Path, *, endpoint: str | None = None) -> list[Shard]:
    """The shards of ``source``: a local file, a folder (searched recursively), or a hub id (read by parts)."""
    path = Path(source).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        shards = sorted((p for p in path.rglob("*.parquet") if CACHE not in p.parts), key=_natural_key)
        if not shards:
            raise CollectionError(f"no parquet shards (*.parquet) in {path}")
        return shards
    if _REPO_ID.fullmatch(str(source)):
        return list(list_shards(str(source), cache, endpoint=endpoint)[1])
    raise CollectionError(f"no such file or folder, and not a hub dataset id (owner/name): {source}")


def _natural_key(path: Path) -> list:
    """'2.parquet' before '10.parquet': shard order is the dataset's row order."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.as_posix())]


# --- reading the shards -----------------------------------------------------------------------------------------

def read_index(shards: Sequence[Shard]) -> tuple[pd.DataFrame, dict[str, Sequence[str]]]:
    """One row per dataset row: global ``row``, ``shard``, ``local`` row, ``genre``, ``artist``, ``style``, ``file``.

    Reads only the label columns and the image's file name, never the image bytes.
    """
    frames, offset, names = [], 0, None
    for i, shard in enumerate(shards):
        hub = isinstance(shard, HubShard)
        pf = None if hub else _open_parquet(shard)
        schema = shard.schema if hub else pf.schema_arrow
        names = names or _label_names(schema)
        columns = _check_schema(schema, shard)
        table = shard.read_labels(columns) if hub else pf.read(columns=columns)
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


def _check_schema(schema: pa.Schema, shard: Shard) -> list[str]:
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


def read_image_bytes(shard: Shard, local_rows: Sequence[int]) -> Iterator[tuple[int, bytes | None]]:
    """(local row, image bytes) for the given rows of one shard, reading only the row groups that hold them."""
    wanted = np.sort(np.asarray(local_rows, dtype=np.int64))
    if isinstance(shard, HubShard):
        shard.ensure(row_groups_of(shard.metadata, wanted.tolist()))  # replacements outside the plan: rare
    pf = shard.parquet_file() if isinstance(shard, HubShard) else pq.ParquetFile(shard)
    start = 0
    for group in range(pf.metadata.num_row_groups):
        stop = start + pf.metadata.row_group(group).num_rows
        here = wanted[(wanted >= start) & (wanted < stop)]
        if len(here):
            column = _image_field(pf.read_row_group(group, columns=["image.bytes"]), "bytes")
            yield from zip(here.tolist(), column.take(pa.array(here - start)).to_pylist())
        start = stop
