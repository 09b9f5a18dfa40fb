"""One resumable HTTP download for every builder: a file arrives through ``<name>.part``, continued with a Range
request after a dropped connection, checked against the offset the server resumed at, and moved onto its name only
when whole. The callers bring their own GET (the hub's plain session, the Met's rate-limited client) and retry
policy; ``retrying`` is the plain one (exponential waits)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Callable, TypeVar

from artlab.errors import DownloadError

#: Retries of a download, and the first wait between them (doubled each time; tests set it to 0).
RETRIES = 4
RETRY_WAIT_S = 1.0
CHUNK = 1 << 16  # what a dropped connection can lose (urllib3 drops a partly read chunk)

T = TypeVar("T")
DownloadProgressFn = Callable[[str, int, int], None]


class Transient(Exception):
    """A failure worth retrying: a dropped connection, a timeout, a 5xx answer, a short body, a wrong offset."""


def retrying(what: str, step: Callable[[], T]) -> T:
    last: Exception | None = None
    for attempt in range(RETRIES + 1):
        if attempt:
            time.sleep(RETRY_WAIT_S * 2 ** (attempt - 1))
        try:
            return step()
        except Transient as exc:
            last = exc
    raise DownloadError(f"could not {what} after {RETRIES + 1} tries ({last}); run again to resume")


def part_file(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def resume_headers(part: Path, headers: dict | None = None) -> tuple[int, dict]:
    """(bytes already in ``part``, the request headers that continue it)."""
    have = part.stat().st_size if part.exists() else 0
    return have, dict(headers or {}, **({"Range": f"bytes={have}-"} if have else {}))


def append(response, part: Path, have: int, url: str, progress: DownloadProgressFn | None = None) -> None:
    """Continue ``part`` (``have`` bytes long) with the answer to ``resume_headers``' request; raises Transient when
    the answer ends short or cannot continue the part (which is then removed, so the next try starts afresh)."""
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
        with open(part, "ab" if have else "wb") as f:
            for chunk in response.iter_content(CHUNK):
                f.write(chunk)
                have += len(chunk)
                if progress:
                    progress(part.name[:-5], have, total or 0)
            f.flush()
            os.fsync(f.fileno())
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
    return (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
