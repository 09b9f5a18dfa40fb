"""Culture map: how the fine-tuned model arranges the classes (distances, ForceAtlas2 graph, chord diagram of the
strongest similarities) and every painting (a UMAP map, nearest paintings, degrees of separation)."""

import streamlit as st

from artlab import app
from artlab.report import charts, figures
from artlab.report.csvsafe import md, md_link, to_csv_for_people

run = app.current_run()
RUN, LABEL = str(run.path), run.label
MAX_DEFAULT_MAP = 3000  # above this, the map waits for the toggle
LAYER_WORDS = {  # geometry.json's "layer" (older runs have none: theirs came from the head)
    "backbone": "The class centres below are taken from the backbone's own description of each painting (its pooled "
                "features: the culture study's latent representation; for a model whose backbone was kept frozen, "
                "what ImageNet training sees, the same the simple baseline compares).",
    "head": "The class centres below are taken from the last layer before the answer (the trained head's), not "
            "from the backbone the culture study used."}


def intro() -> None:
    st.title("Culture map" if LABEL == "culture" else f"Map of the {LABEL} classes")
    st.caption(f"Model **{md(run.name)}**. The fine-tuned model describes each painting by a long list of numbers, "
               "its *embedding*: a summary of what it sees. Paintings that look alike to the model get similar "
               f"lists. The average list of a {LABEL} is its centre; these views show how close the centres are.")


def classes_views() -> None:
    geo = app.geometry(RUN)
    classes = geo["classes"]
    if len(classes) < 2:
        st.info(f"This model has fewer than two {LABEL} classes with paintings: nothing to compare.")
        return
    st.caption(LAYER_WORDS.get(geo.get("layer", "head"), ""))
    graph, chord, dist = st.tabs(["Graph", "Strongest ties", "Distances"])
    with graph:
        st.plotly_chart(charts.graph_figure(geo["layout"], geo.get("counts", {}), geo["similarity"], classes),
                        config={"displayModeBar": False}, key="graph")
        app.figure_downloads(lambda: figures.force_figure(geo), "class_graph_forceatlas2", "dl_graph")
        st.caption("Each circle is a class, as large as its number of paintings; the thicker a line, the more alike "
                   "the two classes look to the model. Positions come from ForceAtlas2, which pulls similar classes "
                   "together (seeded, so the picture does not change).")
    with chord:
        st.plotly_chart(charts.chord_figure(geo["similarity"], classes, geo.get("top_quartile", [])),
                        config={"displayModeBar": False}, key="chord")
        app.figure_downloads(lambda: figures.chord_figure(geo), "chord_top_quartile", "dl_chord")
        st.caption("Only the strongest quarter of the similarities is drawn. A ribbon's width at each end shows how "
                   "close the other class is, relative to all the classes around it; it need not be the same at "
                   "both ends.")
    with dist:
        st.plotly_chart(charts.distance_figure(geo["distance"], classes), config={"displayModeBar": False},
                        key="distance")
        st.caption("Distance between the centres of two classes: small numbers mean the model sees them as alike. "
                   + app.distance_words(geo))


def on_map_select() -> None:
    state = st.session_state.get("map_sel")
    points = state.selection.points if state else []
    if points and points[0].get("customdata") is not None:
        value = points[0]["customdata"]
        st.session_state["map_pick"] = int(value[0] if isinstance(value, (list, tuple)) else value)


def painting_picker(table) -> int:
    def name(i: int) -> str:
        r = table.iloc[i]
        return f"{r.title or r.id} — {r.artist or 'unknown artist'} ({r.label})"
    query = st.text_input("Search by title, artist or date", key="map_search", help=app.DATE_HELP,
                          placeholder="e.g. landscape, hokusai, 1800-1850")
    found = [int(i) for i in table.index[app.match_paintings(table, query).to_numpy()]]
    if query:
        st.caption(f"{len(found)} of {len(table)} paintings match; they are ringed on the map." if found else
                   "No painting matches: every painting is listed.")
    choices = found or list(range(len(table)))
    if st.session_state.get("map_pick") not in range(len(table)) or (
            query != st.session_state.get("map_searched", "") and found):  # a new search picks its first match
        st.session_state["map_pick"] = choices[0]
    st.session_state["map_searched"] = query
    options = choices if st.session_state["map_pick"] in choices else [st.session_state["map_pick"]] + choices
    return st.selectbox("Choose a painting (or click one on the map)", options, key="map_pick", format_func=name)


def painting(table, i: int, caption: str = "", side: int = 320, link: bool = False) -> None:
    r = table.iloc[i]
    app.show_image(app.painting_preview(RUN, r.id, r.path, side), max_height=side * 3 // 4)
    st.caption(f"**{md(app.short(r.title, 80) or r.id)}**  \n{md(r.artist or 'unknown artist')}"
               + (f", {md(r.date)}" if r.date else "")
               + f"  \n{md(LABEL)}: **{md(r.label)}**" + (f"  \n{caption}" if caption else "")
               + (f"  \n{md_link('At the museum', r.url)}" if link and md_link("x", r.url) else ""))


def strip(table, rows, captions, per_row: int = 6) -> None:
    for start in range(0, len(rows), per_row):
        for col, i, cap in zip(st.columns(per_row), rows[start:start + per_row], captions[start:start + per_row]):
            with col:
                painting(table, i, cap)


def paintings_views() -> None:
    st.subheader("Every painting")
    table = app.map_table(RUN)
    if table.empty:
        st.info("This model has no paintings to map.")
        return
    st.caption(app.paintings_words(app.geometry(RUN).get("layer", "head")))
    chosen = painting_picker(table)
    k = st.slider("How many nearest paintings", 3, 12, 6, key="map_k")
    near, sims = app.nearest_paintings(RUN, chosen, min(k, len(table) - 1))
    path = degrees(table, chosen, min(k, len(table) - 1))
    query = st.session_state.get("map_search", "")
    found = [int(i) for i in table.index[app.match_paintings(table, query).to_numpy()]] if query else []
    has_map = table["x"].notna().all()
    left, right = st.columns([2, 1], gap="large")
    with left:
        if not has_map:
            st.info("This model was trained without a map of its paintings (`artlab train --no-umap`).")
        elif st.toggle("Show the map of all paintings", value=len(table) <= MAX_DEFAULT_MAP, key="show_map"):
            hover = [f"<b>{r.title or r.id}</b><br>{r.artist}{', ' + r.date if r.date else ''}<br>{r.label}"
                     for r in table.itertuples()]  # plotly text: charts.plain escapes what comes from data
            ringed = path or ([chosen] + [i for i in found if i != chosen][:300] if found else [chosen] + near)
            fig = charts.painting_map_figure(table[["x", "y"]].to_numpy(), table["label"], hover,
                                             run.classes, highlight=ringed, connect=bool(path))
            st.plotly_chart(fig, key="map_sel", on_select=on_map_select, selection_mode="points",
                            config={"scrollZoom": True, "displaylogo": False})
            st.caption("UMAP map: paintings the model sees as alike lie close together. Colours are the "
                       f"{LABEL} classes; the chosen painting and "
                       + ("the chain" if path else "the paintings that match the search" if found
                          else "its nearest ones") + " are ringed.")
    with right:
        painting(table, chosen, side=640, link=True)
    st.markdown(f"**The {len(near)} paintings the model finds most like it**")
    strip(table, near, [f"similarity {s:.2f}" for s in sims])
    if path:
        n = min(k, len(table) - 1)
        st.markdown(f"**Degrees of separation: {len(path) - 1} steps**, each to one of the {n} paintings most like "
                    f"the one before, or to one that counts the one before among its own {n} most alike")
        kinds = app.run_safely(app.path_steps, RUN, path, n, what="describing the chain") or []
        words = {"near": f"among the {n} most like the one before",
                 "near of": f"counts the one before among its {n} most alike"}
        strip(table, path, ["start"] + [f"step {i}: {words.get(kind, '')}" for i, kind in enumerate(kinds, 1)])


def degrees(table, start: int, k: int) -> list[int]:
    if not st.toggle("Degrees of separation: chain it to another painting", key="show_path",
                     help="The shortest chain of paintings, each one among the nearest of the one before or "
                          "counting it among its own nearest (as many nearest as the slider says)."):
        return []
    goal = st.selectbox("…to", range(len(table)), index=min(len(table) - 1, 1), key="map_goal",
                        format_func=lambda i: f"{table.iloc[i].title or table.iloc[i].id} "
                                              f"— {table.iloc[i].artist or 'unknown artist'}")
    if goal == start:
        st.info("Choose a second painting to chain the first one to.")
        return []
    path = app.run_safely(app.path_between, RUN, start, goal, k, what="chaining the paintings") or []
    if not path:
        st.info(f"These two paintings are not connected through chains of near neighbours (each step to one of the "
                f"{k} most alike, one way or the other). More nearest paintings (the slider) make longer reaches.")
    return path


intro()
app.run_safely(classes_views, what="drawing the class views")
st.divider()
app.run_safely(paintings_views, what="mapping the paintings")
