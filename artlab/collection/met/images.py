"""The Met's images: fetched through the client, checked to decode, shrunk and written atomically; a build that
stops resumes with the images already on disk."""

from __future__ import annotations

import collections
import concurrent.futures
import os
from pathlib import Path

import pandas as pd

from artlab.collection.contract import MAX_SIDE
from artlab.errors import ImageError
from artlab.images import encode_jpeg, fit_within, load_image
from artlab.io import atomic_write_bytes

from artlab.collection.met.client import MetClient, Unavailable
from artlab.progress import Progress


# --- images ------------------------------------------------------------------------------------------------------

def image_url(record: dict, original: bool = False) -> str:
    """The record's web-size image (``primaryImageSmall``), or the full-size scan with ``original``.

    Some public-domain records have an empty ``primaryImage`` but other views in ``additionalImages`` (full-size
    scans): the first of those stands in; a record with neither is dropped with its reason.
    """
    first, second = ("primaryImage", "primaryImageSmall") if original else ("primaryImageSmall", "primaryImage")
    extra = [u for u in record.get("additionalImages") or [] if isinstance(u, str) and u]
    return record.get(first) or record.get(second) or (extra[0] if extra else "")


SET_ASIDE = "set_aside"


def decodes(path: Path) -> bool:
    """True if ``path`` is an image that decodes completely. One that does not (or is too large or elongated to use)
    is moved aside, never deleted: to ``<collection>/set_aside/`` with a ``.why.txt`` saying why; it is fetched
    again."""
    if not path.is_file():
        return False
    try:
        load_image(path, min_side=64)
        return True
    except ImageError as exc:
        set_aside(path, str(exc))
        return False


def set_aside(path: Path, reason: str) -> Path:
    """Move ``path`` (in ``<collection>/images/``) to ``<collection>/set_aside/`` beside a note of ``reason``. The
    same bytes set aside again (a rebuild meeting the same damaged file) take the place of their copy instead of
    piling up as NAME-2, NAME-3, ..."""
    folder = path.parent.parent / SET_ASIDE
    folder.mkdir(parents=True, exist_ok=True)
    target, n = folder / path.name, 2
    data = path.read_bytes()
    while target.exists() and target.read_bytes() != data:
        target, n = folder / f"{path.stem}-{n}{path.suffix}", n + 1
    os.replace(path, target)
    atomic_write_bytes(target.with_name(target.name + ".why.txt"), (reason + "\n").encode("utf-8"))
    return target


def save_image(data: bytes, target: Path, max_side: int | None, name: str) -> None:
    """Check that ``data`` decodes, shrink it to ``max_side`` and write it atomically as JPEG (raises ImageError)."""
    im = load_image(data, name=name)
    if max_side is None and data[:3] == b"\xff\xd8\xff":
        atomic_write_bytes(target, data)  # already a JPEG and no resizing asked: keep the Met's bytes
        return
    atomic_write_bytes(target, encode_jpeg(fit_within(im, max_side) if max_side else im))


def fetch_image(client: MetClient, object_id: str, target: Path, *, max_side: int | None = MAX_SIDE,
                original: bool = False) -> str:
    """Make ``target`` a good image of the object: 'present' if it already was, else 'downloaded'.

    Raises Unavailable (no record, no image, failed after retries, never decodes), Stopped, or MetBlocked (the
    Met's bot protection refused everything for too long).
    """
    if decodes(target):
        return "present"
    api_url = client.object_url(object_id)
    url = image_url(client.get_json(api_url), original)
    if not url:
        raise Unavailable("no primaryImage nor additionalImages in the Met record (rights restricted?)", api_url)
    for attempt in range(client.retries + 1):
        data = client.get(url).content
        try:
            save_image(data, target, max_side, f"{object_id}.jpg")
            return "downloaded"
        except ImageError:
            if attempt < client.retries:
                client.wait(attempt)
    raise Unavailable("image does not decode (truncated or corrupt)", url)


def download_images(df: pd.DataFrame, folder: Path, client: MetClient, *, workers: int = 8,
                    max_side: int | None = MAX_SIDE, original: bool = False,
                    progress: Progress | None = None) -> tuple[dict[str, Unavailable], collections.Counter]:
    """Fetch every row's image into ``folder/images`` in parallel: ({object_id: failure}, outcome counts)."""
    images = Path(folder) / "images"
    images.mkdir(parents=True, exist_ok=True)
    for debris in images.glob(".*.part"):  # left by a process that was killed outright
        debris.unlink(missing_ok=True)
    ids = list(df["object_id"])
    failures: dict[str, Unavailable] = {}
    outcomes: collections.Counter = collections.Counter()
    progress = progress or Progress()
    progress.stage("Met images", len(ids))
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="met-download")
    try:
        futures = {pool.submit(fetch_image, client, oid, images / f"{oid}.jpg", max_side=max_side,
                               original=original): oid for oid in ids}
        for future in concurrent.futures.as_completed(futures):
            try:
                outcomes[future.result()] += 1
            except Unavailable as exc:
                failures[futures[future]] = exc
            progress.advance(1)
        progress.done()
    except BaseException:
        client.stop.set()  # workers stop at their next request or back-off; files in flight finish or vanish
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return failures, outcomes
