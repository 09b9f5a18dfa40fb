"""Search the paintings by title, artist and date: one filter shared by the gallery (Misclassifications) and the map
(Culture map). Pure pandas, tested without a session.

A query is words and years. Every word must be found in the title or the artist's name (case and accents ignored:
"durer" finds "Dürer"). A year ("1650"), a range ("1600-1700", "1600–1700") or a century ("17th", "17th century")
keeps the paintings whose date mentions a year in it; a date the manifest gives only as a century ("17th century")
counts as every year of that century.
"""

from __future__ import annotations

import re
import unicodedata

import pandas as pd

DATE_HELP = ("Words find titles and artists (\"portrait\", \"durer\"); a year, a range or a century finds dates "
             "(\"1650\", \"1600-1700\", \"17th century\").")
_RANGE = re.compile(r"^(\d{3,4})\s*[-–—/]\s*(\d{2,4})$")
_CENTURY = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)$")
_YEAR_IN_TEXT = re.compile(r"(?<!\d)(\d{3,4})(?!\d)")
_CENTURY_IN_TEXT = re.compile(r"(?<!\d)(\d{1,2})(?:st|nd|rd|th)[\s-]*century", re.IGNORECASE)


def fold(text) -> str:
    """Lower case without accents, for matching."""
    text = unicodedata.normalize("NFKD", str(text or ""))
    return "".join(c for c in text if not unicodedata.combining(c)).casefold()


def years_of(date) -> tuple[int, int] | None:
    """The span of years a manifest's date mentions: "ca. 1650" -> (1650, 1650), "1640-45" -> (1640, 1645),
    "17th century" -> (1600, 1699); None when it names no year."""
    text = str(date or "")
    years = [int(y) for y in _YEAR_IN_TEXT.findall(text)]
    m = re.search(r"(?<!\d)(\d{3,4})\s*[-–—/]\s*(\d{1,2})(?!\d)", text)  # "1640-45": the century's digits implied
    if m and len(m.group(2)) < len(m.group(1)):
        years.append(int(m.group(1)[: len(m.group(1)) - len(m.group(2))] + m.group(2)))
    for c in _CENTURY_IN_TEXT.findall(text):
        years += [(int(c) - 1) * 100, (int(c) - 1) * 100 + 99]
    return (min(years), max(years)) if years else None


def _query(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """(words, year spans) of a query; "17th century" is one span."""
    text = re.sub(r"(\d{1,2}(?:st|nd|rd|th))\s+century", r"\1", fold(text))
    words, spans = [], []
    for token in text.split():
        if (m := _RANGE.match(token)):
            lo, hi = m.group(1), m.group(2)
            hi = lo[: len(lo) - len(hi)] + hi if len(hi) < len(lo) else hi
            spans.append(tuple(sorted((int(lo), int(hi)))))
        elif re.fullmatch(r"\d{3,4}", token):
            spans.append((int(token), int(token)))
        elif (m := _CENTURY.match(token)):
            spans.append(((int(m.group(1)) - 1) * 100, (int(m.group(1)) - 1) * 100 + 99))
        else:
            words.append(token)
    return words, spans


def match_paintings(df: pd.DataFrame, query: str) -> pd.Series:
    """A boolean mask over ``df``'s rows (columns ``title``, ``artist``, ``date``; a missing one counts as empty):
    the paintings that match every word and every year of ``query``. An empty query matches every painting."""
    words, spans = _query(query or "")
    keep = pd.Series(True, index=df.index)
    if not words and not spans:
        return keep
    column = lambda name: df[name] if name in df.columns else pd.Series("", index=df.index)  # noqa: E731
    text = (column("title").map(fold) + " \n " + column("artist").map(fold))
    for word in words:
        keep &= text.str.contains(word, regex=False)
    if spans:
        dated = column("date").map(years_of)
        for lo, hi in spans:
            keep &= dated.map(lambda span, lo=lo, hi=hi: span is not None and span[0] <= hi and lo <= span[1])
    return keep
