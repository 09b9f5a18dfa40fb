"""Output that is only data: CSV cells a spreadsheet would run as formulas, and strings shown as markdown.

OWASP's rule for CSV injection (https://owasp.org/www-community/attacks/CSV_Injection): a cell that begins with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with a single quote, so the spreadsheet shows it as
text. Only text cells are touched: numbers (a negative confidence, say) stay numbers.
"""

from __future__ import annotations

import re

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

#: Characters with a meaning in Streamlit's markdown (links, images, emphasis, code, HTML, entities, tables, LaTeX,
#: colour and icon directives, and at a line's start headings and lists: '#', '-', '+', '1.'). Newlines become spaces,
#: but a string may still start a line of its own (a badge, a message), so all of them are escaped: CommonMark shows
#: any backslash-escaped ASCII punctuation as itself.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$=&])")
#: GitHub-flavoured markdown turns text that looks like an address into a link *after* escapes are read
#: (``http://…``, ``www.…``, ``name@host.org``): an invisible WORD JOINER (U+2060) between ``:`` and ``//``, after
#: ``www`` and before ``@`` breaks each such pattern, shows nothing, and leaves all other text as it was.
_JOINER = "\u2060"
_AUTOLINK = re.compile(r"(?<=\\:)(?=//)|(?i:(?<=www))(?=\\\.)|(?=@)")


def neutralise(value):
    """A text cell that a spreadsheet would evaluate, made plain text; any other value unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells and column names are neutralised."""
    out = df.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(neutralise)
    out.columns = [neutralise(str(c)) for c in out.columns]
    return out


def to_csv_for_people(df: pd.DataFrame, target=None, **kwargs):
    """``df.to_csv`` with every text cell neutralised (returns the text when ``target`` is None)."""
    return safe_frame(df).to_csv(target, index=False, **kwargs)


def md(text) -> str:
    """``text`` from a collection, a file name, a card or a message built from them, escaped so that Streamlit shows
    it as it is (no links, images, emphasis, colours, icons, lists or HTML, and no address made a link). The one
    escaping path for data shown as markdown; ``md_frame`` applies it to a table."""
    escaped = _MARKDOWN.sub(r"\\\1", str(text)).replace("\r", " ").replace("\n", " ")
    return _AUTOLINK.sub(_JOINER, escaped)


def md_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` for ``st.table`` (which renders markdown in every cell and heading): text cells, column names
    and the index through ``md``; numbers unchanged."""
    out = df.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(lambda v: md(v) if isinstance(v, str) else v)
    out.columns = [md(c) for c in out.columns]
    out.index = [md(i) if isinstance(i, str) else i for i in out.index]
    return out


def md_link(text: str, url) -> str:
    """A markdown link to ``url`` only when it is a plain http(s) address; otherwise nothing."""
    url = str(url or "")
    if not re.fullmatch(r"https?://[^\s()<>\[\]\"'`\\]+", url):
        return ""
    return f"[{md(text)}]({url})"
