"""One resumable HTTP download: a file arrives through ``<name>.part``, continued with a Range request after a dropped
connection, checked against the offset the server resumed at, and moved onto its name only when whole. The caller
brings its own GET and retry policy (the Met's rate-limited client). A full disk is one line (``writing``, also what
the hub's byte ranges are written through: the hub itself is spoken to by huggingface_hub, wikiart/hub.py)."""

from __future__ import annotations

import errno
import hashlib
import os
import re
from pathlib import Path
from typing import Callable

from artlab.errors import DownloadError

CHUNK = 1 << 16  # what a dropped connection can lose (urllib3 drops a partly read chunk)

#: Called with the size of each chunk written.
ByteProgress = Callable[[int], None]


class Transient(Exception):
    """A failure worth retrying: a dropped connection, a short body, a wrong offset."""


def part_file(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def resume_headers(part: Path, headers: dict | None = None) -> tuple[int, dict]:
    """(bytes already in ``part``, the request headers that continue it)."""
    have = part.stat().st_size if part.exists() else 0
    return have, dict(headers or {}, **({"Range": f"bytes={have}-"} if have else {}))


def append(response, part: Path, have: int, url: str, progress: ByteProgress | None = None) -> None:
    """Continue ``part`` (``have`` bytes long) with the answer to a request for the bytes from ``have``; raises
    Transient when the answer ends short or cannot continue the part (which is then removed, so the next try starts
    afresh)."""
    if response.status_code == 416:  # nothing left to send: the part is whole, or stale
        if have and content_range_total(response) == have:
            return
        part.unlink(missing_ok=True)
        raise Transient(f"the server refused to resume {url}; starting again")
    if response.status_code == 200:
        have = 0  # the server ignored the range: start again
    elif not response.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
        part.unlink(missing_ok=True)
        raise Transient(f"the server resumed {url} at the wrong offset; starting again")
    length = response.headers.get("Content-Length")
    total = have + int(length) if length and length.isdigit() else None
    try:
        with writing(part, "ab" if have else "wb") as f:
            for chunk in response.iter_content(CHUNK):
                f.write(chunk)
                have += len(chunk)
                if progress:
                    progress(len(chunk))
    except network_errors() as exc:
        raise Transient(f"connection lost after {have} bytes: {exc}") from None
    if total is not None and have != total:
        raise Transient(f"got {have} of {total} bytes")


def finish(part: Path, target: Path) -> Path:
    os.replace(part, target)
    return target


def content_range_total(response) -> int:
    m = re.search(r"/(\d+)$", response.headers.get("Content-Range", ""))
    return int(m.group(1)) if m else -1


def network_errors() -> tuple[type[Exception], ...]:
    import requests
    import urllib3
    return (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class writing:
    """open() whose ENOSPC becomes the disk-full line (the part file stays: the next run resumes it); the file is
    flushed to disk on a clean exit, and a close after a failure never replaces the first error with a second."""

    def __init__(self, path: Path, mode: str):
        self.path, self.f = path, open(path, mode)

    def __enter__(self):
        return self

    def write(self, data: bytes) -> None:
        try:
            self.f.write(data)
        except OSError as exc:
            raise _disk_error(exc, self.path) from None

    def seek(self, *args) -> int:
        return self.f.seek(*args)

    def tell(self) -> int:
        return self.f.tell()

    def truncate(self, *args) -> int:
        return self.f.truncate(*args)

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:
            try:
                self.f.close()
            except OSError:
                pass
            return False
        try:
            self.f.flush()
            os.fsync(self.f.fileno())
            self.f.close()
        except OSError as err:
            raise _disk_error(err, self.path) from None
        return False


def _disk_error(exc: OSError, path: Path) -> Exception:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DownloadError(f"disk full writing {path}: free space there (or use another --out) and run again; "
                             f"what was downloaded is kept and resumed")
    return exc
