"""The app's plotly figures, checked through their traces (artlab.report.charts: plain arrays in, figures out)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from artlab.report import charts
from artlab.report.geometry import normalised_similarity, top_quartile

CLASSES = ["Chinese", "Dutch", "French", "Italian", "Japanese"]


@pytest.fixture
def geometry():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(len(CLASSES), 4))
    dist = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
    sim = normalised_similarity(dist)
    layout = {c: [float(x), float(y)] for c, (x, y) in zip(CLASSES, rng.normal(size=(len(CLASSES), 2)))}
    counts = {"Chinese": 10, "Dutch": 16, "French": 52, "Italian": 40, "Japanese": 3}
    return {"classes": CLASSES, "distance": dist.tolist(), "similarity": sim.tolist(),
            "top_quartile": top_quartile(sim, CLASSES), "layout": layout, "counts": counts}


def test_confusion_counts_shares_and_clickable_cells():
    cm = [[5, 1, 0], [2, 3, 0], [0, 0, 0]]
    fig = charts.confusion_figure(cm, ["a", "b", "c"], title="fine-tuned")
    heat, cells = fig.data
    assert list(heat.x) == ["a", "b", "c"] and list(heat.y) == ["a", "b", "c"]
    assert np.asarray(heat.text).tolist() == [["5", "1", ""], ["2", "3", ""], ["", "", ""]]
    np.testing.assert_allclose(np.asarray(heat.z)[0], [5 / 6, 1 / 6, 0])
    np.testing.assert_allclose(np.asarray(heat.z)[2], [0, 0, 0])  # an empty row is not a division by zero
    assert len(cells.x) == 9
    assert [list(c) for c in cells.customdata][1] == ["a", "b"]  # row a (true), column b (predicted)
    assert fig.layout.yaxis.autorange == "reversed"


def test_distance_heatmap(geometry):
    fig = charts.distance_figure(geometry["distance"], CLASSES)
    (heat,) = fig.data
    np.testing.assert_allclose(np.asarray(heat.z), geometry["distance"])
    assert np.allclose(np.diag(np.asarray(heat.z)), 0)


def test_graph_node_sizes_follow_counts_and_edge_widths_follow_similarity(geometry):
    fig = charts.graph_figure(geometry["layout"], geometry["counts"], geometry["similarity"], CLASSES)
    edges = [t for t in fig.data if t.meta and t.meta["kind"] == "edge"]
    (nodes,) = [t for t in fig.data if t.meta and t.meta["kind"] == "nodes"]
    n = len(CLASSES)
    assert len(edges) == n * (n - 1) // 2
    assert list(nodes.text) == CLASSES
    sizes = np.asarray(nodes.marker.size)
    counts = np.array([geometry["counts"][c] for c in CLASSES])
    assert list(np.argsort(sizes)) == list(np.argsort(counts))  # bigger class, bigger node
    assert sizes[CLASSES.index("French")] == sizes.max()
    sims = np.array([e.meta["similarity"] for e in edges])
    widths = np.array([e.line.width for e in edges])
    assert np.all(np.diff(widths[np.argsort(sims)]) >= -1e-9)  # wider edge, more similar pair
    for e in edges:  # each edge joins the two nodes' positions
        a, b = e.meta["pair"]
        assert [e.x[0], e.y[0]] == geometry["layout"][a] and [e.x[1], e.y[1]] == geometry["layout"][b]


def test_chord_ribbons_only_for_top_quartile_pairs(geometry):
    fig = charts.chord_figure(geometry["similarity"], CLASSES, geometry["top_quartile"])
    ribbons = [t for t in fig.data if t.meta["kind"] == "ribbon"]
    arcs = [t for t in fig.data if t.meta["kind"] == "arc"]
    assert [a.meta["class"] for a in arcs] == CLASSES
    expected = {frozenset((a, b)) for a, b, _ in geometry["top_quartile"]}
    got = [frozenset(r.meta["pair"]) for r in ribbons]
    assert len(got) == len(set(got)) == len(expected) and set(got) == expected
    all_pairs = {frozenset((a, b)) for a in CLASSES for b in CLASSES if a != b}
    assert len(expected) < len(all_pairs)  # the quartile cut really leaves pairs out
    sim = np.asarray(geometry["similarity"])
    for r in ribbons:
        a, b = r.meta["pair"]
        assert r.meta["sim"] == pytest.approx([sim[CLASSES.index(a), CLASSES.index(b)],
                                               sim[CLASSES.index(b), CLASSES.index(a)]])
        assert r.fill == "toself"
        radius = np.hypot(np.asarray(r.x), np.asarray(r.y))
        assert radius.max() <= 1.0 + 1e-9  # ribbons stay inside the circle of arcs


def test_chord_ribbon_ends_sit_on_their_own_arcs(geometry):
    """Each ribbon starts on A's arc and ends on B's: its end points on the circle fall within those classes' arcs."""
    fig = charts.chord_figure(geometry["similarity"], CLASSES, geometry["top_quartile"])
    arcs = {t.meta["class"]: t for t in fig.data if t.meta["kind"] == "arc"}

    def within(cls, xs, ys):
        arc = arcs[cls]
        start = np.arctan2(arc.y[0], arc.x[0])
        span = (start - np.arctan2(arc.y[-1], arc.x[-1])) % (2 * np.pi)
        clockwise = (start - np.arctan2(ys, xs)) % (2 * np.pi)
        return np.all((clockwise <= span + 1e-6) | (clockwise >= 2 * np.pi - 1e-6))

    for r in (t for t in fig.data if t.meta["kind"] == "ribbon"):
        a, b = r.meta["pair"]
        x, y = np.asarray(r.x), np.asarray(r.y)
        assert within(a, x[:8], y[:8]) and within(b, x[38:46], y[38:46])
        np.testing.assert_allclose(np.hypot(x[:8], y[:8]), 1.0)


def test_chord_with_no_pairs_draws_only_arcs():
    fig = charts.chord_figure([[0.0]], ["solo"], [])
    assert [t.meta["kind"] for t in fig.data] == ["arc"]


def test_painting_map_one_trace_per_class_and_highlight():
    coords = np.arange(20, dtype=float).reshape(10, 2)
    labels = ["a"] * 6 + ["b"] * 3 + ["z"]
    fig = charts.painting_map_figure(coords, labels, [f"p{i}" for i in range(10)], ["a", "b"], highlight=[2, 7])
    by_name = {t.name: t for t in fig.data}
    assert len(by_name["a"].x) == 6 and len(by_name["b"].x) == 3 and len(by_name["z"].x) == 1
    assert list(by_name["b"].customdata) == [6, 7, 8]  # row indices, for selection
    assert list(by_name["chosen"].customdata) == [2, 7]
    assert sum(len(t.x) for t in fig.data if t.name != "chosen") == 10


def test_history_marks_the_kept_epoch():
    fig = charts.history_figure([1, 2, 3], [1.0, 0.5, 0.3], [0.9, 0.6, 0.7], [0.4, 0.8, 0.9], [0.5, 0.7, 0.6],
                                best_epoch=2)
    assert len(fig.data) == 4
    assert {t.name for t in fig.data} == {"training", "validation"}
    assert [s.x0 for s in fig.layout.shapes] == [2, 2]  # one marker line on each panel
    assert any("epoch 2" in a.text for a in fig.layout.annotations)


def test_k_curve_rings_the_chosen_k():
    fig = charts.k_curve_figure({"1": 0.5, "3": 0.7, "5": 0.6}, chosen=3)
    assert list(fig.data[0].x) == [1, 3, 5]
    assert list(fig.data[1].x) == [3] and list(fig.data[1].y) == [0.7]


def test_figures_from_a_real_run(culture_run):
    """The geometry.json a real run writes goes straight into the three class views."""
    geo = json.loads((culture_run / "geometry.json").read_text())
    classes = geo["classes"]
    graph = charts.graph_figure(geo["layout"], geo["counts"], geo["similarity"], classes)
    assert len([t for t in graph.data if t.meta["kind"] == "edge"]) == len(classes) * (len(classes) - 1) // 2
    chord = charts.chord_figure(geo["similarity"], classes, geo["top_quartile"])
    ribbons = {frozenset(t.meta["pair"]) for t in chord.data if t.meta["kind"] == "ribbon"}
    assert ribbons == {frozenset((a, b)) for a, b, _ in geo["top_quartile"]}
    assert charts.distance_figure(geo["distance"], classes).data[0].z is not None


def test_class_colours_are_stable():
    first = charts.class_colors(["a", "b", "c"])
    assert first == charts.class_colors(["a", "b", "c"]) and len(set(first.values())) == 3


def test_data_reaches_plotly_as_text_not_markup():
    """Plotly reads a subset of HTML in labels and hovers: a class name or a title from data must not become a link
    or a style (issue 25, defect 3); the charts' own line breaks and bold stay markup."""
    from artlab.report import charts
    crafted = '<a href="http://127.0.0.1:9/x">click</a>'
    fig = charts.confusion_figure([[1, 0], [0, 1]], [crafted, "portrait"], title="run <span style='x'>")
    heat = fig.data[0]
    assert list(heat.x)[0] == "&lt;a href=\"http://127.0.0.1:9/x\"&gt;click&lt;/a&gt;"
    assert all("<a" not in h for row in heat.hovertext for h in row)
    assert fig.data[1].customdata[0][0] == crafted  # a clicked cell still names the class itself
    assert "<span" not in fig.layout.title.text
    coords = np.zeros((2, 2))
    fig = charts.painting_map_figure(coords, ["portrait", "portrait"], ["<b>A &amp; B</b><br><img src=x>", "t"],
                                     ["portrait"])
    shown = " ".join(str(t) for tr in fig.data for t in (tr.hovertext or ()))
    assert "<b>A &amp;amp; B</b><br>&lt;img src=x&gt;" in shown
