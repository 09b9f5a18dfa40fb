"""Downloads of what a page shows, made by the same functions as ``artlab figures`` (artlab.report.figures,
artlab.report.paper, artlab.report.sheet), and the paper beside the run (published numbers next to the run's, with the
deviations that explain the difference). Figures are drawn only when a button is pressed (a callable ``data``)."""

from __future__ import annotations

import re
from typing import Callable

import pandas as pd
import streamlit as st

from artlab.report import figures, paper
from artlab.report.csvsafe import md, to_csv_for_people

MIMES = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf"}


def _stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "figure"


def _deferred(make: Callable, fmt: str) -> Callable[[], bytes]:
    return lambda: figures.to_bytes(make(), fmt)


def figure_downloads(make: Callable, stem: str, key: str, formats: tuple[str, ...] = ("png", "svg")) -> None:
    """A button per format for the figure ``make()`` returns (a matplotlib Figure of artlab.report.figures)."""
    stem = _stem(stem)
    with st.container(horizontal=True):
        for fmt in formats:
            st.download_button(f"{fmt.upper()}", _deferred(make, fmt), f"{stem}.{fmt}", MIMES[fmt],
                               key=f"{key}_{fmt}", on_click="ignore", icon=":material/download:",
                               help=f"this figure as {fmt.upper()}, drawn as `artlab figures` draws it")


def table_downloads(table: pd.DataFrame, stem: str, key: str, caption: str = "") -> None:
    """CSV, Markdown and LaTeX of a table (the papers' tables beside the run's)."""
    stem = _stem(stem)
    with st.container(horizontal=True):
        st.download_button("CSV", to_csv_for_people(table).encode(), f"{stem}.csv", "text/csv", key=f"{key}_csv",
                           on_click="ignore", icon=":material/download:")
        st.download_button("Markdown", paper.markdown_table(table).encode(), f"{stem}.md", "text/markdown",
                           key=f"{key}_md", on_click="ignore", icon=":material/download:")
        st.download_button("LaTeX", paper.latex_table(table, caption).encode(), f"{stem}.tex", "application/x-tex",
                           key=f"{key}_tex", on_click="ignore", icon=":material/download:")


def _shown(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=["source"]).rename(columns={"paper": "published", "run": "this run"})


def paper_beside_run(card: dict, name: str) -> None:
    """Each published number of the run's study next to the run's, and the deviations that explain the difference."""
    table, notes = paper.beside_run(card)
    st.subheader("The paper beside this run")
    source = table["source"].iloc[0] if len(table) else ""
    st.caption(f"Published: {md(source)}. The difference is this run's number minus the paper's; the sentences "
               "below, computed from the run's card, say where it departs from the study.")
    st.dataframe(_shown(table), hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.3f")
                                for c in ("published", "this run", "difference")})
    table_downloads(table, f"{name}_paper_beside_run", "dl_beside_run", f"{source}: published beside {name}")
    with st.expander(f"Why the numbers differ: {len(notes)} departures from the study"):
        st.markdown("\n".join(f"- {md(n)}" for n in notes) or "None.")


def paper_beside_results(table: pd.DataFrame, name: str, key: str) -> None:
    """An experiment grid's published figures next to its runs' (nothing when no row is published)."""
    beside = paper.beside_results(table)
    if beside.empty:
        return
    st.markdown(f"The paper beside **{md(name)}**")
    st.dataframe(_shown(beside), hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.3f")
                                for c in ("published", "this run", "difference")})
    table_downloads(beside, f"{name}_published_vs_run", key, f"published beside {name}")


def sheet_downloads(run, name: str, data: bytes, painting_id: str | None = None, key: str = "sheet") -> None:
    """One painting's analysis on one sheet (PNG and PDF), made on the click as `artlab explain --sheet` makes it."""
    from artlab.app.runs import load_predictor
    predictor = load_predictor(str(run.path))

    def build(fmt: str) -> Callable[[], bytes]:
        def make() -> bytes:
            from artlab.explain.sheet import make_sheet, provenance_of
            from artlab.report.sheet import sheet_bytes
            image = predictor.load(data, name=name)
            return sheet_bytes(make_sheet(predictor, image, name, provenance_of(run, painting_id)), fmt)
        return make

    stem = _stem(f"{name.rsplit('.', 1)[0]}_{run.name}_sheet")
    with st.container(horizontal=True):
        for fmt in ("png", "pdf"):
            st.download_button(f"This painting on one sheet ({fmt.upper()})", build(fmt), f"{stem}.{fmt}",
                               MIMES[fmt], key=f"{key}_{fmt}", on_click="ignore", icon=":material/download:",
                               help="the painting, both models' answers, both heat maps, the neighbours, the model "
                                    "and the painting's provenance, for a catalogue entry or a slide")


def cam_pair_downloads(name: str, data: bytes, maps: dict, captions: tuple[str, str, str], stem: str,
                       key: str) -> None:
    """The painting beside both models' heat maps (GenRe Figs. 4-11), as `artlab figures` draws them."""
    def make():
        import numpy as np
        from artlab.explain.cams import overlay
        from artlab.images import load_image
        from artlab.app.memory import APP_DECODE_BUDGET, decode_slot
        with decode_slot():
            image = load_image(data, name=name, budget=APP_DECODE_BUDGET)
        shown = image.copy()
        shown.thumbnail((512, 512))
        panels = [(captions[0], np.asarray(shown.convert("RGB")))]
        for caption, model in zip(captions[1:], ("finetuned", "knn")):
            m = maps[model]
            panels.append((caption, np.asarray(overlay(image, m["cam"], crop=m["crop"], view=m.get("view", "centre"),
                                                       max_side=512))))
        return figures.panels_figure(panels)
    figure_downloads(make, stem, key)
