"""Plotly figures for the app, built from plain arrays and lists (no Streamlit here; tests check the traces).

Every figure is deterministic for the same input (the layouts it draws were seeded upstream), so charts do not move
on rerun. Class colours come from ``class_colors`` so a class keeps its colour from one chart to the next.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import plotly.colors as pc
import plotly.graph_objects as go
from plotly.subplots import make_subplots

PALETTE = pc.qualitative.T10 + pc.qualitative.Pastel + pc.qualitative.Dark24
FONT = dict(family="Georgia, 'Times New Roman', serif", size=13)
MARGIN = dict(l=10, r=10, t=40, b=10)


def class_colors(classes: Sequence[str]) -> dict[str, str]:
    """A stable colour per class, in the order of ``classes``."""
    return {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(classes)}


def plain(text):
    """A string shown by plotly, as text: plotly reads a subset of HTML in labels and hovers (``<a href>`` would be a
    link, ``<span style>`` a style), so a class name, a title or an artist from data has its ``<`` and ``>`` written as
    entities (plotly shows them as the characters). The line breaks and bold the charts write themselves are kept."""
    if not isinstance(text, str):
        return text
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for tag in ("br", "b", "/b"):  # the only markup the charts and pages write themselves
        text = text.replace(f"&lt;{tag}&gt;", f"<{tag}>")
    return text


def _plain_texts(fig: go.Figure) -> None:
    """Every label a figure shows goes through ``plain``: the traces' texts, hovers, names and category values,
    the annotations and the title (data reach them: class names, painting titles, run names)."""
    def each(value):
        if isinstance(value, str):
            return plain(value)
        if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.dtype.kind in "OU"):
            return [each(v) for v in value]
        return value

    for trace in fig.data:
        for key in ("text", "hovertext", "name", "x", "y", "labels"):
            value = getattr(trace, key, None) if key in trace else None
            if value is not None:
                trace[key] = each(value)
    for note in fig.layout.annotations or ():
        note.text = plain(note.text)
    if fig.layout.title and fig.layout.title.text:
        fig.layout.title.text = plain(fig.layout.title.text)


def _layout(fig: go.Figure, title: str = "", height: int | None = None, **kw) -> go.Figure:
    _plain_texts(fig)
    fig.update_layout(title=dict(text=plain(title), x=0, xanchor="left"), font=FONT, margin=MARGIN,
                      plot_bgcolor="rgba(0,0,0,0)", paper_bgcolor="rgba(0,0,0,0)", **kw)
    if height:
        fig.update_layout(height=height)
    return fig


def _no_axes(fig: go.Figure) -> None:
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x", scaleratio=1)


# --- matrices -----------------------------------------------------------------------------------------------------

def confusion_figure(confusion: Sequence[Sequence[int]], classes: Sequence[str], title: str = "") -> go.Figure:
    """Rows = true class, columns = predicted. Colour = share of the row (so small classes stay visible), text = count
    (blank for an empty cell).

    An invisible marker sits on every cell (customdata [true, predicted]) so a click selects the cell.
    """
    cm = np.asarray(confusion, dtype=int)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    classes = list(classes)
    hover = [[f"{cm[i, j]} {classes[i]} painting{'s' if cm[i, j] != 1 else ''} called {classes[j]} "
              f"({share[i, j]:.0%} of {classes[i]})" for j in range(len(classes))] for i in range(len(classes))]
    text = np.where(cm > 0, cm.astype(str), "")  # empty cells stay blank: the mistakes stand out
    fig = go.Figure(go.Heatmap(z=share, x=classes, y=classes, text=text, texttemplate="%{text}",
                               hovertext=hover, hoverinfo="text", zmin=0, zmax=1, colorscale="Blues",
                               showscale=False, name="confusion"))
    xs, ys = np.meshgrid(range(len(classes)), range(len(classes)))
    fig.add_trace(go.Scatter(
        x=[classes[j] for j in xs.ravel()], y=[classes[i] for i in ys.ravel()], mode="markers",
        marker=dict(size=30, symbol="square", opacity=0), hovertext=[h for row in hover for h in row],
        hoverinfo="text", customdata=[[classes[i], classes[j]] for i, j in zip(ys.ravel(), xs.ravel())],
        name="cells", showlegend=False))
    fig.update_xaxes(title="predicted as", side="bottom", tickangle=-30)
    fig.update_yaxes(title="true class", autorange="reversed")
    side = 120 + 45 * len(classes)
    return _layout(fig, title, height=min(max(side, 320), 700), clickmode="event+select", dragmode=False)


def distance_figure(distance: Sequence[Sequence[float]], classes: Sequence[str], title: str = "") -> go.Figure:
    """The L2 distances between class centroids: darker = the two classes look more alike to the model."""
    d = np.asarray(distance, dtype=float)
    text = np.char.mod("%.2f", d).astype(object)
    np.fill_diagonal(text, "")
    fig = go.Figure(go.Heatmap(z=d, x=list(classes), y=list(classes), text=text,
                               texttemplate="%{text}", colorscale="Purples_r", name="distance",
                               hovertemplate="%{y} to %{x}: distance %{z:.2f}<extra></extra>",
                               colorbar=dict(title="distance")))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=-30)
    side = 120 + 45 * len(classes)
    return _layout(fig, title, height=min(max(side, 320), 700))


# --- the class graph ----------------------------------------------------------------------------------------------

def _scale(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    span = values.max() - values.min() if len(values) else 0.0
    if span <= 0:
        return np.full(len(values), (lo + hi) / 2)
    return lo + (values - values.min()) / span * (hi - lo)


def graph_figure(layout: Mapping[str, Sequence[float]], counts: Mapping[str, int],
                 similarity: Sequence[Sequence[float]], classes: Sequence[str], title: str = "") -> go.Figure:
    """The ForceAtlas2 graph of class centroids: a node per class (area grows with its number of paintings), an edge
    per pair of classes, as wide as their (symmetrised) similarity. One edge trace per pair, then one node trace."""
    classes = [c for c in classes if c in layout]
    sim = np.asarray(similarity, dtype=float)
    sym = (sim + sim.T) / 2
    pairs = [(a, b) for a in range(len(classes)) for b in range(a + 1, len(classes))]
    widths = _scale(np.array([sym[a, b] for a, b in pairs]), 0.5, 9.0) if pairs else []
    fig = go.Figure()
    for (a, b), w in zip(pairs, widths):
        (xa, ya), (xb, yb) = layout[classes[a]], layout[classes[b]]
        fig.add_trace(go.Scatter(x=[xa, xb], y=[ya, yb], mode="lines", line=dict(width=float(w), color="#9a8f80"),
                                 opacity=0.25 + 0.6 * (w - 0.5) / 8.5, hoverinfo="text", showlegend=False,
                                 text=f"{classes[a]} – {classes[b]}: similarity {sym[a, b]:.3f}",
                                 name=f"edge {classes[a]} – {classes[b]}",
                                 meta={"kind": "edge", "pair": [classes[a], classes[b]],
                                       "similarity": float(sym[a, b])}))
    n = np.array([counts.get(c, 0) for c in classes], dtype=float)
    sizes = 14 + 46 * np.sqrt(n / n.max()) if len(n) and n.max() > 0 else np.full(len(n), 20.0)
    colors = class_colors(classes)
    fig.add_trace(go.Scatter(
        x=[layout[c][0] for c in classes], y=[layout[c][1] for c in classes], mode="markers+text",
        text=classes, textposition="top center", marker=dict(size=sizes, color=[colors[c] for c in classes],
                                                              line=dict(width=1, color="white")),
        hovertext=[f"{c}: {int(k)} paintings" for c, k in zip(classes, n)], hoverinfo="text", showlegend=False,
        name="classes", meta={"kind": "nodes", "counts": n.astype(int).tolist()}))
    _no_axes(fig)
    return _layout(fig, title, height=520)


# --- chord diagram ------------------------------------------------------------------------------------------------

def _arc(r: float, t0: float, t1: float, n: int = 24) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(t0, t1, max(2, n))
    return r * np.cos(t), r * np.sin(t)


def _bezier(p0, p2, n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Quadratic Bézier from p0 to p2 through the centre (the ribbon's curve)."""
    t = np.linspace(0, 1, n)[:, None]
    pts = (1 - t) ** 2 * np.asarray(p0) + t ** 2 * np.asarray(p2)  # control point is the origin
    return pts[:, 0], pts[:, 1]


def chord_pairs(top_quartile: Sequence[Sequence], similarity: Sequence[Sequence[float]],
                classes: Sequence[str]) -> list[tuple[str, str, float, float]]:
    """Unordered pairs with at least one direction in the top quartile: (A, B, sim(A,B), sim(B,A))."""
    idx = {c: i for i, c in enumerate(classes)}
    sim = np.asarray(similarity, dtype=float)
    seen, out = set(), []
    for a, b, _ in top_quartile:
        key = tuple(sorted((a, b), key=idx.get))
        if key in seen or a not in idx or b not in idx:
            continue
        seen.add(key)
        i, j = idx[key[0]], idx[key[1]]
        out.append((key[0], key[1], float(sim[i, j]), float(sim[j, i])))
    return out


def chord_figure(similarity: Sequence[Sequence[float]], classes: Sequence[str], top_quartile: Sequence[Sequence],
                 title: str = "") -> go.Figure:
    """A chord diagram of the strongest normalised similarities (plotly has no chord trace, so it is drawn here).

    Each class owns an arc of the circle; each unordered pair in the top quartile is a ribbon between the two arcs,
    its end on A as wide as sim(A, B) and its end on B as wide as sim(B, A). Traces: one ribbon per pair
    (meta kind "ribbon"), then one arc per class (meta kind "arc").
    """
    classes = list(classes)
    pairs = chord_pairs(top_quartile, similarity, classes)
    n, gap = len(classes), 0.04
    span = 2 * math.pi / max(n, 1) - gap
    start = {c: math.pi / 2 - i * 2 * math.pi / max(n, 1) for i, c in enumerate(classes)}  # clockwise from top
    load = {c: 0.0 for c in classes}
    for a, b, sab, sba in pairs:
        load[a] += sab
        load[b] += sba
    scale = span / max(max(load.values(), default=0.0), 1e-12)
    cursor = dict(start)
    colors = class_colors(classes)
    fig = go.Figure()
    r = 1.0
    for a, b, sab, sba in pairs:
        a0, a1 = cursor[a], cursor[a] - sab * scale
        b0, b1 = cursor[b], cursor[b] - sba * scale
        cursor[a], cursor[b] = a1, b1
        xs, ys = [], []
        for part in (_arc(r, a0, a1, 8), _bezier((r * math.cos(a1), r * math.sin(a1)),
                                                   (r * math.cos(b0), r * math.sin(b0))),
                     _arc(r, b0, b1, 8), _bezier((r * math.cos(b1), r * math.sin(b1)),
                                                 (r * math.cos(a0), r * math.sin(a0)))):
            xs += part[0].tolist()
            ys += part[1].tolist()
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", fill="toself", fillcolor=colors[a], opacity=0.45,
                                 line=dict(width=0.5, color=colors[a]), hoveron="fills", hoverinfo="text",
                                 text=f"{a} → {b}: {sab:.3f}<br>{b} → {a}: {sba:.3f}", showlegend=False,
                                 name=f"{a} – {b}", meta={"kind": "ribbon", "pair": [a, b], "sim": [sab, sba]}))
    for c in classes:
        x, y = _arc(1.06, start[c], start[c] - span, 30)
        mid = start[c] - span / 2
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=dict(width=10, color=colors[c]), hoverinfo="text",
                                 text=c, showlegend=False, name=c, meta={"kind": "arc", "class": c}))
        fig.add_annotation(x=1.22 * math.cos(mid), y=1.22 * math.sin(mid), text=c, showarrow=False,
                           font=dict(size=13, color=colors[c]))
    _no_axes(fig)
    fig.update_xaxes(range=[-1.45, 1.45])
    fig.update_yaxes(range=[-1.35, 1.35])
    return _layout(fig, title, height=560)


# --- paintings map ------------------------------------------------------------------------------------------------

def painting_map_figure(coords: np.ndarray, labels: Sequence[str], hover: Sequence[str], classes: Sequence[str],
                        highlight: Sequence[int] = (), connect: bool = False, title: str = "") -> go.Figure:
    """UMAP coordinates of every painting, one trace per class; customdata is the painting's row index.

    ``highlight`` rows (a chosen painting and its neighbours, or a path) are ringed on top; ``connect`` joins them
    in order with a dotted line (for a path).
    """
    coords = np.asarray(coords, dtype=float)
    labels = np.asarray(labels, dtype=str)
    hover = np.asarray(hover, dtype=object)
    colors = class_colors(classes)
    trace = go.Scattergl if len(coords) > 3000 else go.Scatter
    fig = go.Figure()
    for c in [c for c in classes if (labels == c).any()] + sorted(set(labels) - set(classes)):
        rows = np.flatnonzero(labels == c)
        fig.add_trace(trace(x=coords[rows, 0], y=coords[rows, 1], mode="markers", name=c,
                            marker=dict(size=8, color=colors.get(c, "#999999"), opacity=0.8,
                                        line=dict(width=0.5, color="white")),
                            customdata=rows, hovertext=hover[rows], hoverinfo="text"))
    if len(highlight):
        rows = np.asarray(highlight, dtype=int)
        first = np.arange(len(rows)) == 0  # the chosen painting (a path's start): a bigger, red ring
        fig.add_trace(go.Scatter(x=coords[rows, 0], y=coords[rows, 1], mode="lines+markers" if connect else "markers",
                                 name="chosen",
                                 line=dict(width=1, color="#333333", dash="dot"),
                                 marker=dict(size=np.where(first, 20, 13).tolist(), color="rgba(0,0,0,0)",
                                             line=dict(width=np.where(first, 3, 1.5).tolist(),
                                                       color=np.where(first, "#c0392b", "#111111").tolist())),
                                 customdata=rows, hovertext=hover[rows], hoverinfo="text", showlegend=False))
    _no_axes(fig)
    return _layout(fig, title, height=600, legend=dict(itemsizing="constant"), dragmode="pan")


# --- training ----------------------------------------------------------------------------------------------------

def history_figure(epoch: Sequence[int], train_loss: Sequence[float], val_loss: Sequence[float],
                   train_accuracy: Sequence[float], val_accuracy: Sequence[float],
                   best_epoch: int | None = None, title: str = "") -> go.Figure:
    """Loss (left) and accuracy (right) per epoch for the training and validation paintings; the epoch whose
    weights were kept (the lowest validation loss, or the last epoch for a run that keeps it) is marked with a dashed
    line on both."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss (lower is better)", "accuracy"))
    style = {"training": dict(color="#4C78A8"), "validation": dict(color="#E45756", dash="dash")}
    for col, (train, val) in enumerate(((train_loss, val_loss), (train_accuracy, val_accuracy)), start=1):
        for name, ys in (("training", train), ("validation", val)):
            fig.add_trace(go.Scatter(x=list(epoch), y=list(ys), mode="lines+markers", name=name,
                                     line=style[name], legendgroup=name, showlegend=col == 1), row=1, col=col)
    if best_epoch is not None:
        for col in (1, 2):
            fig.add_vline(x=best_epoch, line=dict(color="#555555", dash="dot"), row=1, col=col)
        fig.add_annotation(x=best_epoch, y=0.02, yref="y domain", text=f" kept: epoch {best_epoch}",
                           showarrow=False, xanchor="left", yanchor="bottom", font=dict(color="#555555"),
                           row=1, col=1)
    epochs = [int(e) for e in epoch]
    last = max(epochs) if epochs else 1
    # from epoch 1 to the last, half an epoch of margin so the end markers show whole (autorange ran -1..37 for 30)
    fig.update_xaxes(title="epoch", range=[0.5, last + 0.5], tick0=1, dtick=1 if last <= 30 else None)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    return _layout(fig, title, height=380, legend=dict(orientation="h", y=-0.25))


def k_curve_figure(k_curve: Mapping[str, float], chosen: int | None = None, title: str = "") -> go.Figure:
    """The kNN baseline's validation accuracy for each k it tried; the chosen k is ringed."""
    ks = sorted(int(k) for k in k_curve)
    acc = [float(k_curve[str(k)]) for k in ks]
    fig = go.Figure(go.Scatter(x=ks, y=acc, mode="lines+markers", name="validation accuracy",
                               line=dict(color="#4C78A8")))
    if chosen is not None and str(chosen) in k_curve:
        fig.add_trace(go.Scatter(x=[chosen], y=[float(k_curve[str(chosen)])], mode="markers", name=f"chosen k={chosen}",
                                 marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(width=2, color="#E45756"))))
    fig.update_xaxes(title="k (number of neighbours that vote)")
    fig.update_yaxes(title="validation accuracy", range=[0, 1.02])
    return _layout(fig, title, height=320, showlegend=False)


def reliability_figure(rows: Sequence[Mapping], title: str = "") -> go.Figure:
    """A reliability diagram: per confidence bin, the mean stated confidence (x) against how often the top answer was
    right (y), one series per ``kind`` (before / after calibration), marker size by paintings; the diagonal is a
    perfectly calibrated model."""
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="#999", dash="dot"),
                               name="stated = right", hoverinfo="skip"))
    for kind, colour in (("before calibration", "#e15759"), ("after calibration", "#4e79a7")):
        pts = [r for r in rows if r["kind"] == kind]
        fig.add_trace(go.Scatter(
            x=[r["confidence"] for r in pts], y=[r["accuracy"] for r in pts], mode="lines+markers", name=kind,
            marker=dict(color=colour, size=[6 + 2 * math.sqrt(r["n"]) for r in pts]), line=dict(color=colour),
            customdata=[r["n"] for r in pts],
            hovertemplate="stated %{x:.0%}, right %{y:.0%} (%{customdata} paintings)<extra>" + kind + "</extra>"))
    fig.update_xaxes(title="stated confidence", range=[0, 1.02], tickformat=".0%")
    fig.update_yaxes(title="how often right", range=[0, 1.02], tickformat=".0%")
    return _layout(fig, title, height=360, legend=dict(orientation="h", y=-0.25))
