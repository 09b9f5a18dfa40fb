"""The Met Open Access builder for the cultural-origin study: paintings, culture classes, threshold, exclusions, images.

One entry point::

    build_met(out, objects_csv, *, api=DEFAULT_API, min_per_class=100, netherlandish=None, exclusions=None,
              max_side=MAX_SIDE, original=False, workers=8, rate=80.0, limit=None, progress=None,
              timeout=30.0, retries=4, backoff=1.0) -> BuildReport

What it does, in order (each step is a small function below, usable on its own):

1. ``fetch_table``: ``objects_csv`` is a local ``MetObjects.csv`` or a URL; a URL is downloaded once into
   ``<out>/source/`` (resumable with HTTP Range, moved into place only when complete).
2. ``read_paintings``: rows that are public domain ("Is Public Domain" == "True") and classified "Paintings".
3. ``label_cultures``: ``rules.culture_of`` on Culture, Artist Nationality, Country; the merges it makes (England
   and Scottish into British, Indian regions into Indian...) are reported as ``report.merged``.
4. ``exclude``: ``PAINTING_RULES`` below (objects catalogued as Paintings that are not: snuff boxes, books...) and a
   curator's exclusions CSV (column ``object_id``, optional ``reason``; lines starting with ``#`` are ignored).
5. ``keep_classes``: only classes with MORE than ``min_per_class`` paintings left after step 4; ``limit`` then caps
   each class (the first by Object ID) for a trial build.
6. ``download_images``: a thread pool; every request goes through one ``MetClient`` (a global rate limit, at most
   the Met's published 80 requests/second; retries with exponential back-off on timeouts, connection errors, 5xx and
   429, honouring Retry-After; 404 is final). An image already on disk that decodes is not fetched again, so an
   interrupted build resumes where it stopped. Each image is checked with ``load_image``, shrunk to ``max_side`` and
   written atomically as ``images/<objectID>.jpg``; one that never decodes is dropped and reported.
7. ``manifest.csv`` and ``report.json`` (artlab.collection's contract, plus ``culture``, ``object_id``, ``url``,
   ``department``, ``object_name``, ``medium``, ``culture_rule``) and ``failures.csv`` (one row an image that
   could not be had, and why), all written atomically at the end.

``report.per_class`` is the study's Table 1: ``initial`` (public-domain Paintings labelled with the class),
``excluded`` (non-paintings and curator exclusions), ``final`` (images in the manifest), plus ``over_limit`` and
``unavailable`` (downloads that failed), so that initial - excluded - over_limit - unavailable = final.
"""

from __future__ import annotations

import collections
import concurrent.futures
import csv
import dataclasses
import os
import random
import re
import threading
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Callable, NamedTuple
from urllib.parse import urlparse

import pandas as pd
import requests

from ..collection import MAX_SIDE, BuildReport, write_manifest
from ..errors import CollectionError, ConfigError, DownloadError, ImageError
from ..images import encode_jpeg, fit_within, load_image
from ..io import atomic_save, atomic_write_bytes
from ..safety import check_output, mark_output
from .rules import CULTURE_FIELDS, culture_of

DEFAULT_API = "https://collectionapi.metmuseum.org"
#: The Met Collection API's published limit. ``rate`` may be set lower, never higher.
MET_RATE_LIMIT = 80.0
OBJECT_PAGE = "https://www.metmuseum.org/art/collection/search/{}"
SOURCE = "met"
LICENSE = "CC0 (Met Open Access)"
USER_AGENT = "artlab (Met Open Access collection builder)"
#: Longest Retry-After we obey; a server asking for more is treated as a failure after this wait.
MAX_RETRY_AFTER = 120.0

#: MetObjects.csv column -> the name used here (the culture fields take the names ``rules.culture_of`` reads).
CSV_COLUMNS = {
    "Object ID": "object_id", "Is Public Domain": "public_domain", "Classification": "classification",
    "Object Name": "object_name", "Medium": "medium", "Culture": "culture",
    "Artist Nationality": "artistNationality", "Country": "country", "Title": "title",
    "Artist Display Name": "artist", "Object Date": "date", "Department": "department",
}

Progress = Callable[[int, int], None]


# --- what counts as a painting -------------------------------------------------------------------------------------

class Rule(NamedTuple):
    field: str  # "object_name" or "medium"
    pattern: str  # a regular expression, searched case-insensitively
    keep: bool
    why: str


#: Objects classified "Paintings" that are or are not paintings. The first rule whose pattern is found in its field
#: decides; a row that no rule matches is kept (the Met catalogued it as a painting; only positive evidence removes it).
PAINTING_RULES: tuple[Rule, ...] = (
    # An object name that starts with "Painting" wins over any object word after it: "Painting, birth tray" is a
    # desco da parto (a painted panel), "Painting, box lid" is the painted lid.
    Rule("object_name", r"^\s*paintings?\b", True, "named a painting"),
    # East Asian mounted formats are paintings, not objects.
    Rule("object_name", r"\b(hanging scroll|hand ?scroll|scroll)s?\b", True, "scroll painting"),
    # One leaf or folio of an album or manuscript is a painting on paper (Indian, Persian, Chinese, Japanese); the
    # bound book is not (below). "Album leaf" is a painting format.
    Rule("object_name", r"\b(album leaf|leaf|leaves|folio|page)\b", True, "single leaf or folio"),
    # An album in Asian Art is a set of painted leaves catalogued as one painting: kept.
    Rule("object_name", r"^\s*albums?\b", True, "album of painted leaves"),
    # Fans catalogued as Paintings are fan paintings (usually mounted as album leaves), screens and sliding doors
    # (byobu, fusuma) are painted panels: kept. European folding fans are classified "Fans", not Paintings.
    Rule("object_name", r"\b(fan|screen|fusuma|byobu|door panels?)s?\b", True, "painted fan, screen or door panel"),
    # Snuff boxes and other boxes (often with a painted miniature on the lid) are containers, not paintings.
    Rule("object_name", r"\bsnuff ?box(es)?\b", False, "snuff box"),
    Rule("object_name", r"\b(box|casket|case)(es)?\b", False, "box or case"),
    # Vessels; a painted plate or vase is decorated ware. (Trays are NOT here: a birth tray is a painting.)
    Rule("object_name", r"\b(jar|vase|bowl|plate|dish|cup|bottle|ewer|pot)s?\b", False, "vessel"),
    # Bound books and whole manuscripts (single folios were kept above).
    Rule("object_name", r"\b(book|codex|manuscript|volume)s?\b", False, "book or manuscript"),
    # Three-dimensional figures.
    Rule("object_name", r"\b(sculpture|statue|statuette|figure|figurine|bust)s?\b", False, "sculpture or figure"),
    # Jewellery, including lockets and pendants that hold a portrait miniature: the object is the jewel.
    Rule("object_name", r"\b(jewel|jewelry|jewellery|pendant|brooch|ring|earring|necklace|bracelet|locket|"
                        r"medallion)s?\b", False, "jewellery"),
    # The same words in the medium, where catalogues sometimes put them.
    Rule("medium", r"\bsnuff ?box(es)?\b", False, "snuff box"),
    Rule("medium", r"\b(sculpture|statuette)s?\b", False, "sculpture or figure"),
    # A binding means a book.
    Rule("medium", r"\b(binding|bound volume|bookbinding)\b", False, "book or manuscript"),
    # A medium that starts with a hard material and never says "on" (no support, as in "oil on copper") describes an
    # object, e.g. "Gold, enamel, diamonds". Wood is not listed: "Wood, gesso, tempera" can be a panel painting.
    Rule("medium", r"^\s*(gold|silver|silver-gilt|bronze|brass|copper|iron|steel|marble|alabaster|stone|ivory|"
                   r"jade|porcelain|earthenware|stoneware|terracotta|faience|glass)\b(?!.*\bon\b)",
         False, "object of metal, stone, ivory, ceramic or glass"),
)

_COMPILED = tuple((rule, re.compile(rule.pattern, re.IGNORECASE)) for rule in PAINTING_RULES)


def painting_verdict(object_name: str, medium: str) -> tuple[bool, str]:
    """(is a painting, why) by ``PAINTING_RULES``; no rule matching means kept."""
    fields = {"object_name": object_name or "", "medium": medium or ""}
    for rule, pattern in _COMPILED:
        if pattern.search(fields[rule.field]):
            return rule.keep, rule.why
    return True, "no rule matched"


# --- the objects table -------------------------------------------------------------------------------------------

def fetch_table(source: str, folder: Path, client: "MetClient") -> Path:
    """The objects table as a local file: a path is used as it is; a URL is downloaded once into ``folder``."""
    if not _is_url(source):
        path = Path(source).expanduser()
        if not path.is_file():
            raise CollectionError(f"no such file: {path} (the Met objects table, MetObjects.csv)")
        return path
    target = Path(folder) / (Path(urlparse(source).path).name or "MetObjects.csv")
    if not target.is_file():
        download_resumable(client, source, target)
    return target


def _is_url(source: str) -> bool:
    return urlparse(str(source)).scheme in ("http", "https")


def download_resumable(client: "MetClient", url: str, target: Path) -> None:
    """Download ``url`` to ``target`` through ``<target>.part``, resuming a previous partial download with Range."""
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    error: Exception | None = None
    for attempt in range(client.retries + 1):
        try:
            if _append_to(client, url, part):
                os.replace(part, target)
                return
            error = DownloadError("the connection closed before the end of the file")
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            error = exc
        except Unavailable as exc:
            if exc.status != 416:  # 416: our partial file is not a prefix the server knows; start again
                raise DownloadError(f"could not download {url}: {exc.reason}") from None
            part.unlink(missing_ok=True)
            error = exc
        if attempt < client.retries:
            client.wait(attempt)
    raise DownloadError(f"could not download {url} after {client.retries + 1} tries ({error})")


def _append_to(client: "MetClient", url: str, part: Path) -> bool:
    """One request continuing ``part``; True when the file is complete (as far as the server says how long it is)."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}  # byte ranges must refer to the bytes we store
    if have:
        headers["Range"] = f"bytes={have}-"
    with client.get(url, headers=headers, stream=True) as resp:
        resumed = resp.status_code == 206
        expected = _expected_size(resp, have if resumed else 0)
        with open(part, "ab" if resumed else "wb") as f:
            for chunk in resp.iter_content(1 << 20):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
    return expected is None or part.stat().st_size == expected


def _expected_size(resp: requests.Response, offset: int) -> int | None:
    length = resp.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def read_paintings(path: Path, report: BuildReport) -> pd.DataFrame:
    """Public-domain rows classified "Paintings" from MetObjects.csv, with the columns of ``CSV_COLUMNS`` renamed."""
    try:
        chunks = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", chunksize=100_000,
                             usecols=lambda c: c.strip() in CSV_COLUMNS)
        frames = [_paintings_in(chunk, path, report) for chunk in chunks]
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CollectionError(f"unreadable Met objects table {path}: {str(exc).splitlines()[0]}") from None
    if not frames:
        raise CollectionError(f"the Met objects table {path} has no rows")
    df = pd.concat(frames, ignore_index=True).drop_duplicates("object_id")
    if df.empty:
        raise CollectionError(f"no public-domain paintings (Classification 'Paintings') in {path}")
    for column in ("culture", "artistNationality", "country"):  # several artists: "Dutch|Flemish"; the first decides
        df[column] = df[column].str.replace("|", ", ", regex=False)
    df["artist"] = df["artist"].str.replace("|", "; ", regex=False)
    return df.reset_index(drop=True)


def _paintings_in(chunk: pd.DataFrame, path: Path, report: BuildReport) -> pd.DataFrame:
    chunk = chunk.rename(columns=lambda c: CSV_COLUMNS.get(c.strip(), c))
    missing = [name for name, col in CSV_COLUMNS.items() if col not in chunk.columns]
    if missing:
        raise CollectionError(f"{path} is not a Met objects table: no column(s) {', '.join(missing)}")
    chunk = chunk.apply(lambda col: col.str.strip())
    paintings = chunk[chunk["classification"].str.startswith("Paintings")]
    public = paintings["public_domain"].str.lower() == "true"
    valid_id = paintings["object_id"].str.fullmatch(r"\d+")  # ids become file names: digits only
    _drop(report, "painting not in the public domain", int((~public).sum()))
    _drop(report, "no valid Object ID", int((public & ~valid_id).sum()))
    return paintings[public & valid_id]


# --- culture labels ----------------------------------------------------------------------------------------------

def label_cultures(df: pd.DataFrame, netherlandish: str | None = None) -> pd.DataFrame:
    """Add ``culture`` (class or ''), ``culture_rule`` (why) and ``culture_raw`` (the value that decided)."""
    records = df[list(CULTURE_FIELDS)].to_dict("records")
    labels = [culture_of(r, netherlandish) for r in records]
    out = df.copy()
    out["culture"] = [c for c, _ in labels]
    out["culture_rule"] = [why for _, why in labels]
    out["culture_raw"] = [_deciding_value(r, netherlandish) if c else "" for r, (c, _) in zip(records, labels)]
    return out


def _deciding_value(record: dict, netherlandish: str | None) -> str:
    # culture_of stops at the first field with a matching token, so the first field that labels on its own decided.
    for field in CULTURE_FIELDS:
        if culture_of({field: record.get(field, "")}, netherlandish)[0]:
            return record[field]
    return ""


def drop_unlabelled(df: pd.DataFrame, report: BuildReport) -> pd.DataFrame:
    """Rows with a culture class; the others are counted by reason, and the commonest unmatched values noted."""
    unlabelled = df[df["culture"] == ""]
    if unlabelled.empty:
        return df
    for why, n in unlabelled["culture_rule"].map(_why_unlabelled).value_counts().items():
        report.drop(f"no culture class: {why}", int(n))
    values = unlabelled[list(CULTURE_FIELDS)].apply(lambda r: next((v for v in r if v), ""), axis=1)
    common = collections.Counter(v for v in values if v).most_common(10)
    if common:
        report.notes.append("commonest culture values no rule maps: " + ", ".join(f"{v} ({n})" for v, n in common))
    return df[df["culture"] != ""]


def _why_unlabelled(why: str) -> str:
    if why.startswith("Netherlandish"):
        return "Netherlandish, neither Dutch nor Flemish (choose with netherlandish=)"
    return "no culture recorded" if why == "no culture recorded" else "no rule in rules.py matches its culture"


def merges(df: pd.DataFrame) -> dict[str, list[str]]:
    """Class -> the distinct raw values merged into it (commonest first), for classes fed by more than one."""
    out = {}
    for culture, raw in df.groupby("culture")["culture_raw"]:
        values = [v for v, _ in collections.Counter(raw).most_common()]
        if len(values) > 1:
            out[culture] = values
    return out


# --- exclusions and the threshold ----------------------------------------------------------------------------------

def read_exclusions(path: Path) -> dict[str, str]:
    """Object ID -> reason, from a curator's CSV (column ``object_id``, optional ``reason``; ``#`` lines ignored)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r and r[0].strip() and not r[0].lstrip().startswith("#")]
    except FileNotFoundError:
        raise CollectionError(f"no such exclusions file: {path}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CollectionError(f"unreadable exclusions file {path}: {exc}") from None
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if "object_id" not in header:
        raise CollectionError(f"exclusions file {path} needs a header with an object_id column (and optional reason)")
    at, why = header.index("object_id"), header.index("reason") if "reason" in header else None
    out = {}
    for row in rows[1:]:
        reason = row[why].strip() if why is not None and why < len(row) else ""
        out[row[at].strip()] = reason
    return out


def exclude(df: pd.DataFrame, exclusions: dict[str, str], report: BuildReport) -> pd.Series:
    """A boolean Series: True for rows removed as non-paintings (``PAINTING_RULES``) or by the curator's list."""
    removed = pd.Series(False, index=df.index)
    for i, row in df.iterrows():
        if row["object_id"] in exclusions:
            reason = exclusions[row["object_id"]]
            report.drop(f"excluded by curator: {reason}" if reason else "excluded by curator")
            removed[i] = True
            continue
        keep, why = painting_verdict(row["object_name"], row["medium"])
        if not keep:
            report.drop(f"not a painting: {why}")
            removed[i] = True
    unknown = set(exclusions) - set(df["object_id"])
    if unknown:
        report.notes.append(f"{len(unknown)} object id(s) in the exclusions file are not among the labelled paintings")
    return removed


def keep_classes(df: pd.DataFrame, min_per_class: int, report: BuildReport) -> pd.DataFrame:
    """Rows of the classes with more than ``min_per_class`` rows; the others are reported, one reason per class."""
    counts = df["culture"].value_counts()
    kept = counts[counts > min_per_class]
    for culture, n in counts[counts <= min_per_class].items():
        report.drop(f"class {culture}: {n} paintings, not more than {min_per_class}", int(n))
    if kept.empty:
        biggest = f" (largest: {counts.index[0]} with {counts.iloc[0]})" if len(counts) else ""
        raise CollectionError(f"no culture class has more than {min_per_class} paintings{biggest}; "
                              f"lower min_per_class")
    return df[df["culture"].isin(kept.index)]


def cap_per_class(df: pd.DataFrame, limit: int | None, report: BuildReport) -> pd.DataFrame:
    """At most ``limit`` rows a class (the lowest Object IDs), for a trial build."""
    if limit is None:
        return df
    ordered = df.assign(_n=df["object_id"].astype(int)).sort_values("_n").drop(columns="_n")
    capped = ordered.groupby("culture", sort=False).head(limit)
    _drop(report, f"over the per-class limit ({limit})", len(df) - len(capped))
    return capped


def select_paintings(table: Path, *, min_per_class: int = 100, netherlandish: str | None = None,
                     exclusions: Path | None = None, limit: int | None = None,
                     report: BuildReport | None = None) -> tuple[pd.DataFrame, BuildReport]:
    """Steps 2-5 without any download: the paintings to fetch, and the report so far (per_class, merged, dropped)."""
    report = report or BuildReport(source=SOURCE)
    labelled = drop_unlabelled(label_cultures(read_paintings(table, report), netherlandish), report)
    removed = exclude(labelled, read_exclusions(exclusions) if exclusions else {}, report)
    selected = keep_classes(labelled[~removed], min_per_class, report)
    capped = cap_per_class(selected, limit, report)
    for culture in sorted(selected["culture"].unique()):
        in_class = labelled["culture"] == culture
        report.per_class[culture] = {
            "initial": int(in_class.sum()), "excluded": int((in_class & removed).sum()),
            "over_limit": int((selected["culture"] == culture).sum() - (capped["culture"] == culture).sum())}
    report.merged = merges(selected)
    return capped.reset_index(drop=True), report


# --- HTTP: rate limit and retries ----------------------------------------------------------------------------------

class Unavailable(DownloadError):
    """One object or image that could not be had; ``reason`` is short, for the report's counts."""

    def __init__(self, reason: str, url: str, status: int | None = None):
        super().__init__(f"{reason}: {url}")
        self.reason, self.url, self.status = reason, url, status


class Stopped(Exception):
    """Raised in worker threads once the build is interrupted."""


class RateLimiter:
    """A token bucket holding one token, refilled ``rate`` times a second, shared by all threads.

    Holding a single token means no bursts: requests leave evenly spaced, so no one-second window ever holds more
    than ``rate`` of them (the way the Met counts). ``pause`` empties the bucket for a while (after a 429).
    """

    def __init__(self, rate: float, stop: threading.Event):
        self.interval = 1.0 / rate
        self._next = 0.0  # monotonic time at which the next token is available
        self._lock = threading.Lock()
        self._stop = stop

    def acquire(self) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        stopped = self._stop.wait(slot - now) if slot > now else self._stop.is_set()
        if stopped:
            raise Stopped

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._next = max(self._next, time.monotonic() + seconds)


@dataclasses.dataclass
class MetClient:
    """HTTP GETs with a global rate limit, time-outs and retries; one ``requests.Session`` per thread."""

    api: str = DEFAULT_API
    rate: float = MET_RATE_LIMIT
    timeout: float = 30.0
    retries: int = 4
    backoff: float = 1.0
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        if not 0 < self.rate <= MET_RATE_LIMIT:
            raise ConfigError(f"rate must be above 0 and at most the Met's limit of {MET_RATE_LIMIT:g} requests/second "
                              f"(got {self.rate:g})")
        if self.retries < 0 or self.timeout <= 0:
            raise ConfigError("retries must be 0 or more and timeout above 0 seconds")
        self.limiter = RateLimiter(self.rate, self.stop)
        self._local = threading.local()
        self._sessions: list[requests.Session] = []

    def object_url(self, object_id: str) -> str:
        return f"{self.api.rstrip('/')}/public/collection/v1/objects/{object_id}"

    def get(self, url: str, *, headers: dict | None = None, stream: bool = False) -> requests.Response:
        """A successful response, after retries; raises Unavailable (404 and other refusals at once) or Stopped."""
        for attempt in range(self.retries + 1):
            self.limiter.acquire()
            resp, error, wait = self._attempt(url, headers, stream)
            if resp is not None:
                return resp
            if attempt < self.retries:
                self.wait(attempt, wait)
        raise Unavailable(f"failed after {self.retries + 1} tries ({error})", url)

    def _attempt(self, url: str, headers: dict | None, stream: bool):
        """(response, None, None) on success, or (None, what went wrong, seconds the server asked us to wait)."""
        try:
            resp = self._session().get(url, headers=headers, stream=stream, timeout=self.timeout)
        except requests.Timeout:
            return None, "timeout", None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
            return None, "connection error", None
        except requests.RequestException as exc:  # a malformed URL and the like: retrying cannot help
            raise Unavailable(f"bad request ({type(exc).__name__})", url) from None
        if resp.status_code < 400:
            return resp, None, None
        resp.close()
        if resp.status_code == 404:
            raise Unavailable("no record/image (404)", url, 404)
        if resp.status_code != 429 and resp.status_code < 500:
            raise Unavailable(f"refused (HTTP {resp.status_code})", url, resp.status_code)
        wait = retry_after(resp)
        if resp.status_code == 429:
            self.limiter.pause(wait if wait is not None else self._delay(0))
        return None, f"HTTP {resp.status_code}", wait

    def get_json(self, url: str) -> dict:
        resp = self.get(url)
        try:
            data = resp.json()
        except ValueError:
            raise Unavailable("the API answered something that is not JSON", url) from None
        if not isinstance(data, dict):
            raise Unavailable("the API answered an unexpected JSON value", url)
        return data

    def wait(self, attempt: int, seconds: float | None = None) -> None:
        """Sleep before retry number ``attempt + 1``: what the server asked, else exponential back-off with jitter."""
        if self.stop.wait(self._delay(attempt) if seconds is None else seconds):
            raise Stopped

    def _delay(self, attempt: int) -> float:
        return min(60.0, self.backoff * 2 ** attempt) * random.uniform(0.5, 1.0)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            self._sessions.append(session)
        return session

    def close(self) -> None:
        for session in self._sessions:
            session.close()


def retry_after(resp: requests.Response) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), capped at ``MAX_RETRY_AFTER``; None if absent."""
    value = (resp.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


# --- images ------------------------------------------------------------------------------------------------------

def image_url(record: dict, original: bool = False) -> str:
    """The record's web-size image (``primaryImageSmall``), or the full-size scan with ``original``."""
    first, second = ("primaryImage", "primaryImageSmall") if original else ("primaryImageSmall", "primaryImage")
    return record.get(first) or record.get(second) or ""


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
    """Move ``path`` (in ``<collection>/images/``) to ``<collection>/set_aside/`` beside a note of ``reason``."""
    folder = path.parent.parent / SET_ASIDE
    folder.mkdir(parents=True, exist_ok=True)
    target, n = folder / path.name, 2
    while target.exists():
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

    Raises Unavailable (no record, no image, failed after retries, never decodes) or Stopped.
    """
    if decodes(target):
        return "present"
    api_url = client.object_url(object_id)
    url = image_url(client.get_json(api_url), original)
    if not url:
        raise Unavailable("no image in the Met record (rights restricted?)", api_url)
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
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="met-download")
    try:
        futures = {pool.submit(fetch_image, client, oid, images / f"{oid}.jpg", max_side=max_side,
                               original=original): oid for oid in ids}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            try:
                outcomes[future.result()] += 1
            except Unavailable as exc:
                failures[futures[future]] = exc
            if progress:
                progress(done, len(ids))
    except BaseException:
        client.stop.set()  # workers stop at their next request or back-off; files in flight finish or vanish
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return failures, outcomes


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
    report.notes.append("culture labels by artlab/sources/rules.py; the culture_rule column says which field decided")


def build_met(out: str | Path, objects_csv: str | Path, *, api: str = DEFAULT_API, min_per_class: int = 100,
              netherlandish: str | None = None, exclusions: str | Path | None = None, max_side: int | None = MAX_SIDE,
              original: bool = False, workers: int = 8, rate: float = MET_RATE_LIMIT, limit: int | None = None,
              progress: Progress | None = None, timeout: float = 30.0, retries: int = 4,
              backoff: float = 1.0) -> BuildReport:
    """Build the Met culture collection into ``out`` (see the module docstring); rerun it to resume."""
    netherlandish = netherlandish.lower() if netherlandish else None
    _check_options(netherlandish, min_per_class, max_side, workers, limit)
    local = Path(str(objects_csv)).expanduser() if "://" not in str(objects_csv) else None
    out = check_output(out, "collection", resume=True,
                       sources={"MetObjects.csv": local, "the exclusions file": exclusions})
    mark_output(out, "collection")
    client = MetClient(api=api, rate=rate, timeout=timeout, retries=retries, backoff=backoff)
    try:
        table = fetch_table(str(objects_csv), out / "source", client)
        df, report = select_paintings(table, min_per_class=min_per_class, netherlandish=netherlandish,
                                      exclusions=Path(exclusions) if exclusions else None, limit=limit)
        failures, outcomes = download_images(df, out, client, workers=workers, max_side=max_side,
                                             original=original, progress=progress)
    finally:
        client.close()
    finish_report(report, df, failures, outcomes)
    if netherlandish:
        report.notes.append(f"Netherlandish paintings counted as {netherlandish.capitalize()} (by choice)")
    write_failures(out, df, failures)
    if report.kept == 0:
        first = next(iter(failures.values()))
        raise DownloadError(f"no image could be downloaded from the Met (first failure: {first})")
    write_manifest(out, manifest_frame(df[~df["object_id"].isin(failures)]), report)
    return report


def _drop(report: BuildReport, reason: str, n: int) -> None:
    if n:  # a Counter entry of 0 would print as "dropped 0: ..."
        report.drop(reason, n)


def _check_options(netherlandish: str | None, min_per_class: int, max_side: int | None, workers: int,
                   limit: int | None) -> None:
    if netherlandish not in (None, "dutch", "flemish"):
        raise ConfigError(f"netherlandish must be 'dutch', 'flemish' or unset, not {netherlandish!r}")
    if min_per_class < 0 or workers < 1 or (max_side is not None and max_side < 1) or (limit is not None and limit < 1):
        raise ConfigError("min_per_class must be 0 or more; workers, max_side and limit 1 or more")
