"""huggan/wikiart as the hub's repository stores it: ``data/train-000NN-of-00072.parquet``, read by parts.

The dataset viewer's ``/parquet`` listing is never used: for a dataset this size it holds only a partial conversion
(``partial-train/``, about 14% of the rows). Instead the shards are listed with the repository API at a pinned commit
(through huggingface_hub: hub.py). A shard already whole in the Hugging Face cache is read there and nothing of it is
fetched. Any other is read in three steps, each kept under ``<out>/.cache/<repo>/<commit sha>/`` so a rerun fetches
nothing twice:

1. its footer (the parquet metadata: schema with the class-label names, row groups and their byte ranges),
2. its label columns (``genre``, ``artist``, ``style``, ``image.path``: a few hundred KB of a 520 MB shard),
3. after the sample is drawn, only the row groups that hold a sampled row; when every row group is needed, the whole
   shard instead, with ``hf_hub_download`` into the Hugging Face cache (sha256-checked against the hub's LFS oid).
"""

from __future__ import annotations

import bisect
import io
import itertools
import re
import struct
import tempfile
from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence, Union

import pyarrow as pa
import pyarrow.parquet as pq

from artlab.collection.http import ByteProgress
from artlab.collection.wikiart.hub import Hub, RemoteFile, offline
from artlab.collection.wikiart.hub import cache_dir as hub_cache_dir
from artlab.errors import DownloadError
from artlab.io import atomic_save, atomic_write_bytes

SHARD_FOLDER = "data"
_SHARD_NAME = re.compile(r"train-(\d+)-of-(\d+)\.parquet")
_FOOTER_TAIL = 8  # a parquet file ends with the footer's length (4 bytes, little-endian) and b"PAR1"


class HubShard:
    """One parquet shard at a pinned commit: whole in the Hugging Face cache, or read by ranges and kept piece by piece
    in ``folder``."""

    def __init__(self, hub: Hub, remote: RemoteFile, folder: Path, commit: str):
        self.hub, self.remote, self.folder, self.commit = hub, remote, folder, commit
        self.name = PurePosixPath(remote.path).name
        self._metadata: pq.FileMetaData | None = None
        self._whole: Path | None = None

    def __repr__(self) -> str:
        return f"HubShard({self.remote.path})"

    @property
    def whole(self) -> Path | None:
        """The whole shard in the Hugging Face cache, if it is there (or where earlier builds of artlab kept it,
        sha256-checked, beside the parts)."""
        if self._whole is None:
            earlier = self.folder / self.name
            self._whole = self.hub.cached(self.remote) or (earlier if earlier.is_file() else None)
        return self._whole

    # --- the footer ---

    @property
    def footer_file(self) -> Path:
        return self.folder / f"{self.name}.footer"

    def footer_start(self) -> int:
        return self.remote.size - self.footer_file.stat().st_size

    @property
    def metadata(self) -> pq.FileMetaData:
        if self._metadata is None:
            if self.whole is not None:
                self._metadata = pq.read_metadata(self.whole)
            else:
                if not self.footer_file.is_file():
                    self._fetch_footer()
                self._metadata = pq.read_metadata(pa.BufferReader(self._footer_bytes()))
        return self._metadata

    def _footer_bytes(self) -> bytes:
        """The cached footer, behind a b"PAR1" so pyarrow reads it as a whole (empty) parquet file."""
        return b"PAR1" + self.footer_file.read_bytes()

    def _fetch_footer(self) -> None:
        size = self.remote.size
        tail = self.hub.read_range(self.remote, size - _FOOTER_TAIL, size)
        if tail[4:] != b"PAR1":
            raise DownloadError(f"{self.remote.path} on the hub is not a parquet file (it does not end in PAR1)")
        length = struct.unpack("<I", tail[:4])[0] + _FOOTER_TAIL
        atomic_write_bytes(self.footer_file, self.hub.read_range(self.remote, size - length, size))

    @property
    def schema(self) -> pa.Schema:
        return self.metadata.schema.to_arrow_schema()

    # --- the label columns ---

    def read_labels(self, columns: list[str]) -> pa.Table:
        """The label columns of every row (cached): the image bytes are never read here."""
        if self.whole is not None:
            return pq.read_table(self.whole, columns=columns)
        cached = self.folder / f"{self.name}.labels.parquet"
        if not cached.is_file():
            with tempfile.TemporaryDirectory(dir=self.folder) as tmp:
                segments = {self.footer_start(): self.footer_file}
                for group in range(self.metadata.num_row_groups):  # one range a row group: the columns adjoin
                    start, stop = self.group_span(group, columns)
                    segments[start] = Path(tmp) / f"{group}"
                    segments[start].write_bytes(self.hub.read_range(self.remote, start, stop))
                pf = pq.ParquetFile(SegmentFile(self.remote.size, segments), metadata=self.metadata,
                                    pre_buffer=False)  # pre-buffering merges ranges across small gaps
                table = pf.read(columns=columns)
            atomic_save(cached, lambda tmp: pq.write_table(table, tmp))
        return pq.read_table(cached)

    # --- the row groups ---

    def group_span(self, group: int, columns: list[str] | None = None) -> tuple[int, int]:
        """[start, stop) of a row group's column chunks (of ``columns`` only: dotted leaf paths) in the file."""
        rg = self.metadata.row_group(group)
        starts, stops = [], []
        for c in range(rg.num_columns):
            col = rg.column(c)
            if columns is not None and col.path_in_schema not in columns:
                continue
            start = col.dictionary_page_offset if col.has_dictionary_page else col.data_page_offset
            starts.append(start)
            stops.append(start + col.total_compressed_size)
        return min(starts), max(stops)

    def whole_needed(self, groups: Iterable[int]) -> bool:
        """Every row group is needed: the whole shard is fetched (into the Hugging Face cache) instead of its parts."""
        return len(set(groups)) == self.metadata.num_row_groups

    def spans_for(self, groups: Iterable[int]) -> list[tuple[Path, int, int]]:
        """(cache file, start, stop) of the row groups to fetch by range (none when the whole shard is fetched)."""
        groups = sorted(set(groups))
        if self.whole_needed(groups):
            return []
        return [(self.folder / f"{self.name}.rg{g:04d}", *self.group_span(g)) for g in groups]

    def needed_bytes(self, groups: Iterable[int]) -> int:
        groups = list(groups)
        if self.whole_needed(groups):
            return self.remote.size
        return sum(stop - start for _, start, stop in self.spans_for(groups))

    def missing_bytes(self, groups: Iterable[int]) -> int:
        groups = list(groups)
        if self.whole is not None:
            return 0
        if self.whole_needed(groups):
            return self.remote.size
        return sum(stop - start for path, start, stop in self.spans_for(groups) if not path.is_file())

    def ensure(self, groups: Iterable[int], progress: ByteProgress | None = None) -> None:
        """Fetch the row groups not yet here, or the whole shard when all of them are needed."""
        groups = list(groups)
        if self.whole is not None:
            return
        if self.whole_needed(groups):
            self._whole = self.hub.download(self.remote, progress)
            return
        for path, start, stop in self.spans_for(groups):
            self.hub.fetch_range(self.remote, path, start, stop, progress)

    def parquet_file(self) -> pq.ParquetFile:
        """The shard as far as it is here: the whole file, or its footer and the fetched row groups."""
        if self.whole is not None:
            return pq.ParquetFile(self.whole)
        segments = {self.footer_start(): self.footer_file}
        for group in range(self.metadata.num_row_groups):
            path = self.folder / f"{self.name}.rg{group:04d}"
            if path.is_file():
                segments[self.group_span(group)[0]] = path
        return pq.ParquetFile(SegmentFile(self.remote.size, segments), metadata=self.metadata, pre_buffer=False)


def list_shards(repo: str, cache: Path, *, endpoint: str | None = None, revision: str = "main",
                hub: Hub | None = None) -> tuple[str, list[HubShard]]:
    """(commit sha, the train shards in order) of ``repo`` at ``revision``, from the repository's own tree."""
    hub = hub or Hub(endpoint)
    sha = hub.revision(repo, revision)
    files = [f for f in hub.tree(repo, sha, SHARD_FOLDER) if _SHARD_NAME.fullmatch(PurePosixPath(f.path).name)]
    if not files:
        raise DownloadError(f"{repo} at {sha[:12]} has no {SHARD_FOLDER}/train-*-of-*.parquet files "
                            f"({hub.endpoint}); is it the WikiArt dataset?")
    files.sort(key=lambda f: int(_SHARD_NAME.fullmatch(PurePosixPath(f.path).name).group(1)))
    numbers = [_SHARD_NAME.fullmatch(PurePosixPath(f.path).name).groups() for f in files]
    total = int(numbers[0][1])
    if [int(k) for k, _ in numbers] != list(range(total)) or {int(n) for _, n in numbers} != {total}:
        where = f"the Hugging Face cache ({hub_cache_dir()}, HF_HUB_OFFLINE is set)" if offline() else hub.endpoint
        raise DownloadError(f"{repo} at {sha[:12]}: {len(files)} of the {total} shards {SHARD_FOLDER}/train-*-of-"
                            f"{total:05d}.parquet are in {where}; a sample needs them all (row numbers run across "
                            f"shards)")
    folder = cache / repo.replace("/", "__") / sha
    return sha, [HubShard(hub, f, folder, sha) for f in files]


def row_groups_of(metadata: pq.FileMetaData, rows: Iterable[int]) -> list[int]:
    """The row groups that hold these (shard-local) rows."""
    stops = list(itertools.accumulate(metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)))
    return sorted({bisect.bisect_right(stops, row) for row in rows})


#: A shard: a local parquet file, or one on the hub read by parts.
Shard = Union[Path, HubShard]


def hub_shards(shards: Sequence[Shard]) -> bool:
    return bool(shards) and isinstance(shards[0], HubShard)


class SegmentFile(io.RawIOBase):
    """A file of ``size`` bytes of which only some segments are on disk: {start: path}. Reading a gap is a bug."""

    def __init__(self, size: int, segments: dict[int, Path]):
        self.size, self.pos = size, 0
        self.segments = sorted((start, path, path.stat().st_size) for start, path in segments.items())

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: offset, 1: self.pos + offset, 2: self.size + offset}[whence]
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer) -> int:
        want, done = min(len(buffer), self.size - self.pos), 0
        while done < want:
            segment = self._segment_at(self.pos, short_ok=done > 0)
            if segment is None:  # a read past a column chunk's end (pyarrow pads some reads): what is there
                break
            start, path, length = segment
            with open(path, "rb") as f:
                f.seek(self.pos - start)
                data = f.read(min(want - done, start + length - self.pos))
            buffer[done:done + len(data)] = data
            done += len(data)
            self.pos += len(data)
        return done

    def _segment_at(self, pos: int, short_ok: bool) -> tuple[int, Path, int] | None:
        for segment in self.segments:
            if segment[0] <= pos < segment[0] + segment[2]:
                return segment
        if short_ok:
            return None
        raise OSError(f"byte {pos} of the file was not downloaded")
