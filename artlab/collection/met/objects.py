"""MetObjects.csv: fetched once (resumable), read in chunks down to the public-domain Paintings, and the rules for
what catalogued as a painting is not one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

import pandas as pd

from artlab.collection.contract import BuildReport
from artlab.errors import CollectionError, DownloadError

from artlab.collection import http
from artlab.collection.met.client import MetClient, Unavailable

#: MetObjects.csv column -> the name used here (the culture fields take the names ``rules.culture_of`` reads).
CSV_COLUMNS = {
    "Object ID": "object_id", "Is Public Domain": "public_domain", "Classification": "classification",
    "Object Name": "object_name", "Medium": "medium", "Culture": "culture",
    "Artist Nationality": "artistNationality", "Country": "country", "Title": "title",
    "Artist Display Name": "artist", "Object Date": "date", "Department": "department",
}


SOURCE = "met"


def drop(report: BuildReport, reason: str, n: int) -> None:
    if n:  # a Counter entry of 0 would print as "dropped 0: ..."
        report.drop(reason, n)


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

def fetch_table(source: str, folder: Path, client: MetClient) -> Path:
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


def download_resumable(client: MetClient, url: str, target: Path) -> None:
    """Download ``url`` to ``target`` through ``<target>.part``, resuming a previous partial download with Range
    (artlab.collection.http), each try through the client's rate limit."""
    part = http.part_file(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    error: Exception | None = None
    for attempt in range(client.retries + 1):
        try:
            have, headers = http.resume_headers(part, {"Accept-Encoding": "identity"})  # ranges of the stored bytes
            with client.get(url, headers=headers, stream=True) as resp:
                http.append(resp, part, have, url)
            http.finish(part, target)
            return
        except http.Transient as exc:
            error = exc
        except Unavailable as exc:
            if exc.status != 416:  # 416: our partial file is not a prefix the server knows; start again
                raise DownloadError(f"could not download {url}: {exc.reason}") from None
            part.unlink(missing_ok=True)
            error = exc
        if attempt < client.retries:
            client.wait(attempt)
    raise DownloadError(f"could not download {url} after {client.retries + 1} tries ({error})")


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
    drop(report, "painting not in the public domain", int((~public).sum()))
    drop(report, "no valid Object ID", int((public & ~valid_id).sum()))
    return paintings[public & valid_id]
