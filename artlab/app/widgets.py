"""Small display helpers shared by the pages: images no taller than the screen, shares as percentages."""

from __future__ import annotations

import io

import pandas as pd
import streamlit as st
from PIL import Image


def show_image(image: bytes | str | None, max_height: int = 520, caption: str | None = None) -> None:
    """st.image as wide as its column allows but no taller than ``max_height`` (a hanging scroll would otherwise
    fill the screen)."""
    if image is None:
        return
    try:
        with Image.open(io.BytesIO(image) if isinstance(image, bytes) else image) as im:  # reads the header only
            w, h = im.size
    except (OSError, ValueError):
        return
    st.image(image, width=max(60, round(max_height * w / max(h, 1))), caption=caption)


def percent_style(df: pd.DataFrame, columns):
    """A pandas Styler showing the shares (0-1) in ``columns`` as whole percentages, for st.table."""
    return df.style.format("{:.0%}", subset=[c for c in columns if c in df.columns])


def percent_table(df: pd.DataFrame, columns) -> tuple[pd.DataFrame, dict]:
    """Shares (0-1) shown as whole percentages: the frame to display and its st.dataframe column_config."""
    shown = df.copy()
    columns = [c for c in columns if c in shown.columns]
    shown[columns] = shown[columns].astype(float) * 100
    return shown, {c: st.column_config.NumberColumn(c, format="%.0f%%") for c in columns}
