"""The Met Open Access builder for the cultural-origin study: paintings, culture classes, threshold, exclusions, images.

One entry point::

    build_met(out, objects_csv, *, api=DEFAULT_API, min_per_class=100, netherlandish=None, exclusions=None,
              max_side=MAX_SIDE, original=False, workers=8, rate=80.0, limit=None, progress=None,
              timeout=30.0, retries=4, backoff=1.0, extra_merges=False, cooldown=30.0, give_up_after=900.0)
              -> BuildReport

What it does, in order (each step is a small function, usable on its own: ``objects``, ``labels``, ``client``, ``images``):

1. ``fetch_table``: ``objects_csv`` is a local ``MetObjects.csv`` or a URL; a URL is downloaded once into
   ``<out>/source/`` (resumable with HTTP Range, moved into place only when complete).
2. ``read_paintings``: rows that are public domain ("Is Public Domain" == "True") and classified "Paintings".
3. ``label_cultures``: ``rules.culture_of`` on Culture, Artist Nationality, Country; the merges it makes (England
   and Scottish into British, Indian regions into Indian...) are reported as ``report.merged``.
   The project's extra merges beyond the study's classes (``rules.EXTRA_MERGES``: Native and Latin American into
   American, Spanish Colonial into Spanish, Italian regional schools, Mughal into Indian) only with
   ``extra_merges=True``; the report lists them and says whether they were made.
4. ``keep_classes``: only classes with MORE than ``min_per_class`` labelled paintings (the paper's order: the count
   comes first);
5. ``exclude``: then, from the classes kept, ``PAINTING_RULES`` (objects.py: objects catalogued as Paintings that are
   not: snuff boxes, books...) and a curator's exclusions CSV (column ``object_id``, optional ``reason``; lines
   starting with ``#`` are ignored); ``limit`` then caps each class (the first by Object ID) for a trial build.
6. ``download_images``: a thread pool; every request goes through one ``MetClient`` (a global rate limit, at most
   the Met's published 80 requests/second; retries with exponential back-off on timeouts, connection errors, 5xx and
   429, honouring Retry-After; 404 is final; Imperva's bot-protection page waited out with a cool-down, the rate
   halved, stopping the build after ``give_up_after`` seconds of it: see client.py). An image already on disk that
   decodes is not fetched again, so an interrupted build resumes where it stopped. Each image is checked with
   ``load_image``, shrunk to ``max_side`` and written atomically as ``images/<objectID>.jpg``; one that never
   decodes is dropped and reported.
7. ``manifest.csv`` and ``report.json`` (artlab.collection's contract, plus ``culture``, ``object_id``, ``url``,
   ``department``, ``object_name``, ``medium``, ``culture_rule``) and ``failures.csv`` (one row an image that
   could not be had, and why), all written atomically at the end.

``report.per_class`` is the study's Table 1 (``report.lines()`` prints the paper's figures beside it where artlab
has them, ``PAPER_TABLE1``): ``initial`` (public-domain Paintings labelled with the class),
``excluded`` (non-paintings and curator exclusions), ``final`` (images in the manifest), plus ``over_limit`` and
``unavailable`` (downloads that failed), so that initial - excluded - over_limit - unavailable = final.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pandas as pd

from artlab.collection.contract import MAX_SIDE, BuildReport
from artlab.collection.curation import write_manifest
from artlab.errors import ConfigError, DownloadError
from artlab.io import atomic_save
from artlab.progress import Progress
from artlab.safety import check_output, mark_output
from artlab.collection.met.client import (BLOCK_COOLDOWN, DEFAULT_API, GIVE_UP_AFTER, MAX_RETRY_AFTER, MET_RATE_LIMIT,
                                          RECOVER_AFTER, MetBlocked, MetClient, RateLimiter, Stopped, Unavailable,
                                          bot_block, retry_after)
from artlab.collection.met.images import (SET_ASIDE, decodes, download_images, fetch_image, image_url, save_image,
                                          set_aside)
from artlab.collection.met.labels import (PAPER_TABLE1, add_paper_counts, cap_per_class, drop_unlabelled, exclude,
                                          extra_merges_note, keep_classes, label_cultures, merges, read_exclusions,
                                          select_paintings)
from artlab.collection.met.objects import (CSV_COLUMNS, PAINTING_RULES, SOURCE, Rule, fetch_table,
                                           painting_verdict, read_paintings)

__all__ = ["build_met", "manifest_frame", "write_failures", "finish_report", "DEFAULT_API", "MAX_RETRY_AFTER",
           "MET_RATE_LIMIT", "MetBlocked", "bot_block", "MetClient", "RateLimiter", "Stopped", "Unavailable", "retry_after", "decodes",
           "download_images", "fetch_image", "image_url", "save_image", "SET_ASIDE", "set_aside", "PAPER_TABLE1", "add_paper_counts",
           "extra_merges_note", "cap_per_class", "drop_unlabelled", "exclude",
           "keep_classes", "label_cultures", "merges", "read_exclusions", "select_paintings", "CSV_COLUMNS",
           "PAINTING_RULES", "SOURCE", "Rule", "fetch_table", "painting_verdict", "read_paintings"]

OBJECT_PAGE = "https://www.metmuseum.org/art/collection/search/{}"
LICENSE = "CC0 (Met Open Access)"


# --- the collection ------------------------------------------------------------------------------------------------

def manifest_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Manifest rows (artlab.collection's contract) for the selected paintings."""
    return pd.DataFrame({
        "id": "met-" + df["object_id"], "path": "images/" + df["object_id"] + ".jpg", "title": df["title"],
        "artist": df["artist"], "date": df["date"], "source": SOURCE, "license": LICENSE, "culture": df["culture"],
        "object_id": df["object_id"], "url": df["object_id"].map(OBJECT_PAGE.format),
        "department": df["department"], "object_name": df["object_name"], "medium": df["medium"],
        "culture_rule": df["culture_rule"],
    })


def write_failures(folder: Path, df: pd.DataFrame, failures: dict[str, Unavailable]) -> None:
    """``failures.csv``: one row an image that could not be had (empty but present when none failed)."""
    culture = dict(zip(df["object_id"], df["culture"]))
    rows = [{"object_id": oid, "culture": culture.get(oid, ""), "reason": f.reason, "url": f.url}
            for oid, f in sorted(failures.items(), key=lambda kv: int(kv[0]))]
    frame = pd.DataFrame(rows, columns=["object_id", "culture", "reason", "url"])
    atomic_save(Path(folder) / "failures.csv", lambda tmp: frame.to_csv(tmp, index=False))


def finish_report(report: BuildReport, df: pd.DataFrame, failures: dict[str, Unavailable],
                  outcomes: collections.Counter) -> None:
    """Count failures per reason and per class, and fill in ``final``."""
    for failure in failures.values():
        report.drop(f"image unavailable: {failure.reason}")
    failed = df["object_id"].isin(failures)
    for culture, counts in report.per_class.items():
        in_class = df["culture"] == culture
        counts["unavailable"] = int((in_class & failed).sum())
        counts["final"] = int((in_class & ~failed).sum())
    report.kept = int((~failed).sum())
    report.label_counts["culture"] = {c: int(n) for c, n in df.loc[~failed, "culture"].value_counts().items()}
    report.notes.append(f"images: {outcomes['downloaded']} downloaded, {outcomes['present']} already present")
    report.notes.append("culture labels by artlab/collection/rules.py; the culture_rule column says which field decided")


def build_met(out: str | Path, objects_csv: str | Path, *, api: str = DEFAULT_API, min_per_class: int = 100,
              netherlandish: str | None = None, exclusions: str | Path | None = None, max_side: int | None = MAX_SIDE,
              original: bool = False, workers: int = 8, rate: float = MET_RATE_LIMIT, limit: int | None = None,
              progress: Progress | None = None, timeout: float = 30.0, retries: int = 4,
              backoff: float = 1.0, extra_merges: bool = False, cooldown: float = BLOCK_COOLDOWN,
              give_up_after: float = GIVE_UP_AFTER) -> BuildReport:
    """Build the Met culture collection into ``out`` (see the module docstring); rerun it to resume."""
    netherlandish = netherlandish.lower() if netherlandish else None
    _check_options(netherlandish, min_per_class, max_side, workers, limit)
    local = Path(str(objects_csv)).expanduser() if "://" not in str(objects_csv) else None
    out = check_output(out, "collection", resume=True,
                       sources={"MetObjects.csv": local, "the exclusions file": exclusions})
    mark_output(out, "collection")
    client = MetClient(api=api, rate=rate, timeout=timeout, retries=retries, backoff=backoff, cooldown=cooldown,
                       give_up_after=give_up_after)
    try:
        table = fetch_table(str(objects_csv), out / "source", client)
        df, report = select_paintings(table, min_per_class=min_per_class, netherlandish=netherlandish,
                                      exclusions=Path(exclusions) if exclusions else None, limit=limit,
                                      extra_merges=extra_merges)
        failures, outcomes = download_images(df, out, client, workers=workers, max_side=max_side,
                                             original=original, progress=progress)
    finally:
        client.close()
    finish_report(report, df, failures, outcomes)
    if client.blocks:
        report.notes.append(f"the Met's bot protection (HTTP 403) blocked the downloads {client.blocks} time(s): "
                            f"each time every download paused and the rate halved (it climbs back after "
                            f"{RECOVER_AFTER} answers in a row); {client.limiter.rate:g} requests/s at the end")
    if netherlandish:
        report.notes.append(f"Netherlandish paintings counted as {netherlandish.capitalize()} (by choice)")
    write_failures(out, df, failures)
    if report.kept == 0:
        first = next(iter(failures.values()))
        raise DownloadError(f"no image could be downloaded from the Met (first failure: {first})")
    write_manifest(out, manifest_frame(df[~df["object_id"].isin(failures)]), report)
    return report


def _check_options(netherlandish: str | None, min_per_class: int, max_side: int | None, workers: int,
                   limit: int | None) -> None:
    if netherlandish not in (None, "dutch", "flemish"):
        raise ConfigError(f"netherlandish must be 'dutch', 'flemish' or unset, not {netherlandish!r}")
    if min_per_class < 0 or workers < 1 or (max_side is not None and max_side < 1) or (limit is not None and limit < 1):
        raise ConfigError("min_per_class must be 0 or more; workers, max_side and limit 1 or more")
