"""The two papers' figures as static images (matplotlib: no browser), from plain arrays, pictures and tables.

Each function returns a ``matplotlib.figure.Figure`` built without pyplot (no global state: safe in the app's
threads); ``to_bytes`` turns one into PNG (slides), SVG or PDF (print) bytes, and ``save`` writes PNG + SVG beside
each other atomically. The class graph and the chord diagram are the app's own plotly figures
(``artlab.report.charts``) drawn again here trace by trace (``from_plotly``), so the file shows what the page shows.
Used by ``artlab figures``, the app's downloads and the one-painting sheet (``artlab.report.sheet``).
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from artlab.io import atomic_write_bytes
from artlab.report import charts

FORMATS = ("png", "svg", "pdf")
DPI = 150
FONT = {"family": "serif", "size": 9}


def to_bytes(fig: Figure, fmt: str = "png") -> bytes:
    """The figure encoded as ``fmt`` (png, svg or pdf)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown figure format {fmt!r}; choose one of {', '.join(FORMATS)}")
    buf = io.BytesIO()
    plain_text(fig)
    fig.savefig(buf, format=fmt, dpi=DPI, bbox_inches="tight", metadata=_metadata(fmt))
    return buf.getvalue()


def plain_text(fig: Figure) -> None:
    """Every text drawn as it is: a title or class name from data with two '$' is not TeX math to matplotlib."""
    from matplotlib.text import Text
    for text in fig.findobj(Text):
        text.set_parse_math(False)


def _metadata(fmt: str) -> dict:
    # no creation date in the files, so the same run gives the same bytes
    return {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(fmt, {})


def save(fig: Figure, folder: str | Path, stem: str, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` (or ``formats``) into ``folder``, each atomically; the paths written."""
    out = []
    for fmt in formats:
        path = Path(folder) / f"{stem}.{fmt}"
        atomic_write_bytes(path, to_bytes(fig, fmt))
        out.append(path)
    return out


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    fig.set_facecolor("white")
    return fig


def _style(ax, title: str = "") -> None:
    ax.set_title(title, fontdict={**FONT, "size": 10}, loc="left")
    ax.tick_params(labelsize=8)


# --- GenRe Fig. 1: training curves ----------------------------------------------------------------------------------

def history_figure(history, kept_epoch: int | None = None, stopped_early: bool = False, title: str = "") -> Figure:
    """Loss and accuracy per epoch on the training and validation paintings (``history``: history.csv's columns
    epoch, train_loss, val_loss, train_accuracy, val_accuracy), the epoch of the lowest validation loss and the epoch
    whose weights were kept marked (the same epoch when the best weights were restored)."""
    epoch = np.asarray(history["epoch"], dtype=int)
    fig = _figure(8.0, 3.2)
    axes = fig.subplots(1, 2)
    lowest = int(epoch[int(np.nanargmin(np.asarray(history["val_loss"], dtype=float)))]) if len(epoch) else None
    for ax, what in zip(axes, ("loss", "accuracy")):
        ax.plot(epoch, history[f"train_{what}"], color="#4C78A8", label="training")
        ax.plot(epoch, history[f"val_{what}"], color="#F58518", label="validation")
        if lowest is not None:
            ax.axvline(lowest, color="#54A24B", linestyle="--", linewidth=1, label=f"lowest validation loss ({lowest})")
        if kept_epoch is not None and kept_epoch != lowest:
            ax.axvline(kept_epoch, color="#B279A2", linestyle=":", linewidth=1.2, label=f"weights kept ({kept_epoch})")
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_xlim(max(0.5, epoch.min() - 0.5) if len(epoch) else 0, epoch.max() + 0.5 if len(epoch) else 1)
        _style(ax, what)
    if stopped_early and len(epoch):
        axes[0].annotate(f"stopped early at {int(epoch.max())}", (epoch.max(), axes[0].get_ylim()[1]),
                         fontsize=7, ha="right", va="top")
    axes[1].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10, x=0.01, ha="left")
    return fig


# --- GenRe Figs. 2-3: confusion matrices ----------------------------------------------------------------------------

def confusion_figure(confusion: Sequence[Sequence[int]], classes: Sequence[str], title: str = "") -> Figure:
    """Counts of test paintings, true class (rows) against predicted class (columns)."""
    cm = np.asarray(confusion, dtype=int)
    n = len(classes)
    fig = _figure(1.2 + 0.55 * n, 1.0 + 0.5 * n)
    ax = fig.subplots()
    ax.imshow(cm, cmap="Blues", vmin=0, vmax=max(int(cm.max()), 1))
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
                color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_ylabel("true", fontsize=8)
    _style(ax, title)
    return fig


# --- GenRe Figs. 4-11: CAMs side by side ----------------------------------------------------------------------------

def panels_figure(panels: Sequence[tuple[str, np.ndarray]], title: str = "", width: float = 3.0) -> Figure:
    """Pictures side by side, each with its caption (a painting, its CAMs, its feature map)."""
    fig = _figure(width * len(panels), width * 1.15)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (caption, picture) in zip(axes, panels):
        ax.imshow(np.asarray(picture))
        ax.set_axis_off()
        ax.set_title(caption, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9, x=0.01, ha="left")
    return fig


def grid_figure(rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]]]], title: str = "",
                cell: float = 1.6) -> Figure:
    """A grid of pictures: one row per (label, [(caption, picture), ...]) (the culture study's Figs. 1, 4 and 5)."""
    ncols = max((len(pictures) for _, pictures in rows), default=1)
    fig = _figure(cell * ncols + 1.2, cell * 1.15 * max(len(rows), 1))
    axes = np.array(fig.subplots(max(len(rows), 1), ncols, squeeze=False))
    for r, (label, pictures) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_axis_off()
            if c < len(pictures):
                caption, picture = pictures[c]
                ax.imshow(np.asarray(picture), cmap="jet" if np.ndim(picture) == 2 else None)
                ax.set_title(caption, fontsize=6)
        axes[r, 0].text(-0.08, 0.5, label, transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9, x=0.01, ha="left")
    return fig


# --- culture Figs. 6-7: the app's plotly figures, drawn with matplotlib ---------------------------------------------

def _colour(value, opacity: float = 1.0):
    """A plotly colour ('#4C78A8', 'rgb(1, 2, 3)', 'rgba(...)') as a matplotlib RGBA tuple."""
    if value is None:
        return (0.3, 0.3, 0.3, opacity)
    text = str(value)
    m = re.fullmatch(r"rgba?\(([^)]*)\)", text.replace(" ", ""))
    if m:
        parts = [float(p) for p in m.group(1).split(",")]
        return (parts[0] / 255, parts[1] / 255, parts[2] / 255, (parts[3] if len(parts) > 3 else 1.0) * opacity)
    from matplotlib.colors import to_rgba
    return to_rgba(text, opacity)


def _plain(value, default=None):
    return default if value is None else value


def from_plotly(plotly_fig, size: float = 6.0, title: str = "") -> Figure:
    """Scatter traces (lines, filled shapes, markers with text) and text annotations of a plotly figure, drawn again
    in matplotlib with equal axes: the ForceAtlas2 graph and the chord diagram of ``artlab.report.charts``."""
    fig = _figure(size, size)
    ax = fig.subplots()
    for trace in plotly_fig.data:
        x, y = np.asarray(trace.x, dtype=float), np.asarray(trace.y, dtype=float)
        opacity = float(_plain(trace.opacity, 1.0))
        mode = trace.mode or "lines"
        line = trace.line
        if trace.fill == "toself":
            ax.fill(x, y, color=_colour(trace.fillcolor or line.color, opacity), linewidth=0)
        elif "lines" in mode:
            ax.plot(x, y, color=_colour(line.color, opacity), linewidth=float(_plain(line.width, 1.0)) * 0.75,
                    solid_capstyle="round")
        if "markers" in mode:
            sizes = np.atleast_1d(np.asarray(_plain(trace.marker.size, 8), dtype=float)) * 0.75
            colours = trace.marker.color
            colours = [_colour(c) for c in colours] if isinstance(colours, (list, tuple)) else _colour(colours)
            ax.scatter(x, y, s=sizes ** 2, c=colours, edgecolors="white", linewidths=0.8, zorder=3)
        if "text" in mode and trace.text is not None:
            texts = [trace.text] * len(x) if isinstance(trace.text, str) else list(trace.text)
            for xi, yi, t in zip(x, y, texts):
                ax.annotate(str(t), (xi, yi), xytext=(0, 9), textcoords="offset points", ha="center", fontsize=8,
                            zorder=4)
    for note in plotly_fig.layout.annotations or ():
        ax.text(note.x, note.y, str(note.text), ha="center", va="center", fontsize=8,
                color=_colour(note.font.color if note.font else None))
    xr, yr = plotly_fig.layout.xaxis.range, plotly_fig.layout.yaxis.range
    if xr and yr:
        ax.set_xlim(*xr)
        ax.set_ylim(*yr)
    ax.set_aspect("equal", adjustable="box" if xr and yr else "datalim")
    ax.set_axis_off()
    _style(ax, title)
    return fig


def force_figure(geometry: Mapping, title: str = "") -> Figure:
    """The culture study's Fig. 6: the class centroids laid out by ForceAtlas2 (``geometry.json``)."""
    classes = list(geometry["classes"])
    plotly_fig = charts.graph_figure(geometry["layout"], geometry.get("counts", {}), geometry["similarity"], classes)
    return from_plotly(plotly_fig, title=title)


def chord_figure(geometry: Mapping, title: str = "") -> Figure:
    """The culture study's Fig. 7: the chord diagram of the top quartile of normalised similarities."""
    classes = list(geometry["classes"])
    plotly_fig = charts.chord_figure(geometry["similarity"], classes, geometry["top_quartile"])
    return from_plotly(plotly_fig, title=title)
