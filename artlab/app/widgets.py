"""Small display helpers shared by the pages: images no taller than the screen and no wider than their column, tables
of data shown as text, shares as percentages."""

from __future__ import annotations

import io

import pandas as pd
import streamlit as st
from PIL import Image

from artlab.report.csvsafe import md, md_frame


def show_image(image: bytes | str | None, max_height: int = 520, caption: str | None = None) -> None:
    """st.image no taller than ``max_height`` (a hanging scroll would otherwise fill the screen) and never wider than
    its column (Streamlit's ``width="content"`` caps it there): a taller picture is shrunk first. ``caption`` is
    Markdown (data in it already through ``md``)."""
    if image is None:
        return
    try:
        with Image.open(io.BytesIO(image) if isinstance(image, bytes) else image) as im:  # reads the header only
            w, h = im.size
            if h > max_height:
                im.draft("RGB", (max(1, w * max_height // h), max_height))
                small = im.convert("RGB")
                small.thumbnail((max(1, round(max_height * w / h)), max_height))
                buffer = io.BytesIO()
                small.save(buffer, format="JPEG", quality=88)
                image = buffer.getvalue()
    except (OSError, ValueError):
        return
    st.image(image, width="content", caption=caption)


def show_table(df: pd.DataFrame, percent_columns=()) -> None:
    """``st.table`` (which renders Markdown in its cells and headings) of ``df`` with every text cell, heading and
    index entry through ``md``; the shares (0-1) in ``percent_columns`` as whole percentages."""
    shown = md_frame(df)
    columns = [md(c) for c in percent_columns if c in df.columns]
    st.table(shown.style.format("{:.0%}", subset=columns) if columns else shown)


def percent_style(df: pd.DataFrame, columns):
    """A pandas Styler showing the shares (0-1) in ``columns`` as whole percentages, for st.table."""
    return df.style.format("{:.0%}", subset=[c for c in columns if c in df.columns])


def percent_table(df: pd.DataFrame, columns) -> tuple[pd.DataFrame, dict]:
    """Shares (0-1) shown as whole percentages: the frame to display and its st.dataframe column_config."""
    shown = df.copy()
    columns = [c for c in columns if c in shown.columns]
    shown[columns] = shown[columns].astype(float) * 100
    return shown, {c: st.column_config.NumberColumn(c, format="%.0f%%") for c in columns}
