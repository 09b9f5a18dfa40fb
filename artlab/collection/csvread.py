"""Reading the CSVs people export from spreadsheet programs: UTF-8 (with or without a BOM), UTF-16, cp1252/Latin-1,
separated by commas, semicolons or tabs.

The encoding is detected from a byte-order mark, then UTF-8 is tried strictly, then cp1252 (what Excel writes on
Western-European Windows), then Latin-1 (which decodes any byte). The delimiter is the one of ``,;\\t`` that splits
the header line most often (outside quotes). Either can be given instead (``--encoding``, ``--delimiter``); a file
that does not decode with the one given is refused with a line naming the file, the encoding and the byte.
"""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

import pandas as pd

from ..errors import CollectionError
from ..safety import CAPS, read_capped

DELIMITERS = (",", ";", "\t")
_NAMED = {"comma": ",", "semicolon": ";", "tab": "\t", "\\t": "\t"}


def decode(data: bytes, name: str, encoding: str | None = None) -> tuple[str, str]:
    """(text, encoding used) of a CSV's bytes."""
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise CollectionError(f"unknown --encoding {encoding!r} for {name} (try utf-8, utf-16, cp1252 or "
                                  "latin-1)") from None
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError as exc:
            raise CollectionError(f"{name} is not {encoding} text (byte {exc.start}: {data[exc.start:exc.start + 1]!r}"
                                  "); give its encoding with --encoding, e.g. utf-16 or cp1252") from None
    for bom, enc in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return _decode_known(data, name, enc)
    head = data[:4096]
    if head and head.count(0) > len(head) // 4:  # UTF-16 without a BOM: every other byte of ASCII text is NUL
        enc = "utf-16-le" if head[1:2] == b"\x00" else "utf-16-be"
        return _decode_known(data, name, enc)
    for enc in ("utf-8", "cp1252", "latin-1"):
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes every byte")


def _decode_known(data: bytes, name: str, enc: str) -> tuple[str, str]:
    try:
        return data.decode(enc), enc
    except UnicodeDecodeError as exc:
        raise CollectionError(f"{name} starts like {enc} text but byte {exc.start} is not: give its encoding with "
                              "--encoding") from None


def delimiter_of(text: str, name: str, delimiter: str | None = None) -> str:
    """The delimiter given (a character or comma/semicolon/tab), else the one that splits the header most."""
    if delimiter:
        d = _NAMED.get(delimiter.lower(), delimiter)
        if len(d) != 1 or d in "\"\r\n":
            raise CollectionError(f"--delimiter {delimiter!r} for {name} must be one character (or comma, semicolon, "
                                  "tab)")
        return d
    header = text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
    counts = {d: len(next(csv.reader([header], delimiter=d), [])) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] > 1 else ","


def read_table(path: str | Path, *, encoding: str | None = None, delimiter: str | None = None) -> pd.DataFrame:
    """A people's CSV as a frame of strings ('' for empty cells), header names stripped."""
    path = Path(path)
    if not path.is_file():
        raise CollectionError(f"no such CSV file: {path}")
    text, used = decode(read_capped(path, CAPS["csv"]), path.name, encoding)
    sep = delimiter_of(text, path.name, delimiter)
    try:
        df = pd.read_csv(io.StringIO(text.lstrip("\ufeff")), sep=sep, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise CollectionError(f"{path.name} is empty") from None
    except pd.errors.ParserError as exc:
        raise CollectionError(f"unreadable CSV {path.name} (read as {used}, delimiter {sep!r}): "
                              f"{str(exc).strip().splitlines()[-1]}; give --encoding / --delimiter") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df
