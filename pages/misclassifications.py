"""Where the models go wrong: both models' test metrics (the study's Table 1), both confusion matrices, and a gallery
of the test paintings behind any cell, most confident mistakes first, with heat maps on demand."""

import streamlit as st

from artlab import app
from artlab.report import charts, figures
from artlab.report import tables
from artlab.report.csvsafe import md, md_link

run = app.current_run()
RUN, CLASSES, LABEL = str(run.path), run.classes, run.label
MODELS = {"finetuned": "fine-tuned model", "knn": "kNN baseline"}
PER_PAGE = 12
K = (run.card.get("metrics") or {}).get("knn", {}).get("k") or 1

for key, value in {"f_true": "", "f_pred": "", "f_by": "finetuned", "f_erred": "any", "f_flag": "all",
                   "f_search": ""}.items():
    st.session_state.setdefault(key, value)


def pick_cell(model: str):
    """A click on a confusion-matrix cell sets the filters (a callback, so it runs before the widgets exist)."""
    def callback() -> None:
        state = st.session_state.get(f"cm_{model}")
        points = state.selection.points if state else []
        if not points:
            return
        p = points[0]
        true, pred = p.get("customdata") or (p.get("y"), p.get("x"))
        if true in CLASSES and pred in CLASSES:
            st.session_state.update(f_true=true, f_pred=pred, f_by=model, f_erred="all" if true == pred else "any",
                                    gallery_page=1)
    return callback


def metrics() -> None:
    st.caption(f"Model **{md(run.name)}**: the fine-tuned network and the kNN baseline on the "
               f"{len(app.predictions(RUN))} test paintings, which neither saw during training.")
    st.subheader("How often each model is right on the test paintings")
    c1, c2 = st.columns([1, 1.8], gap="medium")
    with c1:
        table = tables.metrics_frame(run.card)
        app.show_table(table, table.columns)
    with c2:
        per_class = tables.per_class_frame(run.card)
        app.show_table(per_class, [c for c in per_class.columns if c != "paintings"])
    st.caption("Recall: of the paintings of a class, the share the model recognised. Precision: of the paintings "
               "the model put in a class, the share that belong there. Macro averages treat every class alike; "
               "weighted ones follow how many test paintings each class has.")


def confusion() -> None:
    st.subheader("What each model mistakes for what")
    st.caption("Rows: the true class; columns: the model's answer. Numbers count test paintings; the colour shows "
               "the share of the row. Click a cell to see its paintings below.")
    cols = st.columns(2, gap="large")
    for col, model in zip(cols, MODELS):
        cm = run.card["metrics"][model]["confusion"]
        with col:
            st.plotly_chart(charts.confusion_figure(cm, CLASSES, title=MODELS[model]), key=f"cm_{model}",
                            on_select=pick_cell(model), selection_mode="points",
                            config={"displayModeBar": False})
            app.figure_downloads(lambda cm=cm, m=model: figures.confusion_figure(cm, CLASSES, MODELS[m]),
                                 f"{run.name}_confusion_{model}", f"dl_cm_{model}")


def filters() -> None:
    c1, c2, c3, c4, c5 = st.columns(5)
    names = lambda c: c or "any"  # noqa: E731
    c1.selectbox("True class", [""] + CLASSES, key="f_true", format_func=names)
    c2.selectbox("Predicted as", [""] + CLASSES, key="f_pred", format_func=names)
    c3.selectbox("…by", list(MODELS), key="f_by", format_func=MODELS.get)
    c4.selectbox("Show", list(tables.ERRED), key="f_erred", format_func=tables.ERRED.get)
    c5.selectbox("Curation", list(app.FLAGGED), key="f_flag", format_func=app.FLAGGED.get,
                 help="Paintings a curator has left out or relabelled (the next training sees it)")
    st.text_input("Search by title, artist or date", key="f_search", placeholder="e.g. portrait, durer, 1600-1700",
                  help=app.DATE_HELP)


def toggle_cams(pid: str) -> None:
    opened = list(st.session_state.get("open_cams", []))
    st.session_state["open_cams"] = [p for p in opened if p != pid] if pid in opened else opened + [pid]


def cams(row) -> None:
    file = app.painting_file(run, row.id, row.path)
    if file is None:
        st.caption("No image of this painting is available here.")
        return
    data = file.read_bytes()
    maps = app.explanations(RUN, file.name, data, st.session_state.get("cam_method", "gradcam"))
    a, b = st.columns(2)
    for col, model in ((a, "finetuned"), (b, "knn")):
        with col:
            app.show_image(app.overlay(file.name, data, maps[model]["cam"],
                                                 st.session_state.get("cam_alpha", 0.5), maps[model]["crop"],
                                                 maps[model].get("view", "centre")),
                                max_height=300, caption=MODELS[model])
    app.cam_pair_downloads(file.name, data, maps, (f"true: {row.true}", f"fine-tuned: {row.pred_finetuned}",
                                                   f"kNN baseline: {row.pred_knn}"), f"{run.name}_{row.id}_cams",
                           f"dl_cams_{row.id}")


def card(row) -> None:
    app.show_image(app.painting_preview(RUN, row.id, row.path), max_height=300)
    ok = lambda wrong: ":red[✗]" if wrong else ":green[✓]"  # noqa: E731
    st.markdown(f"**{md(app.short(row.title, 80) or row.id)}**  \n{md(row.artist or 'unknown artist')}"
                + (f", {md(row.date)}" if row.date else "") + (f" · {md_link('museum page', row.url)}" if row.url else ""))
    st.caption(f"true: **{md(row.true)}**  \n"
               f"{ok(row.finetuned_wrong)} fine-tuned: **{md(row.pred_finetuned)}** ({row.finetuned_conf:.0%} sure)  \n"
               f"{ok(row.knn_wrong)} baseline: **{md(row.pred_knn)}** ({round(row.knn_conf * K)} of {K} votes)")
    app.run_safely(app.flag_controls, run, row.id, key=row.id, what="showing the curation controls")
    opened = row.id in st.session_state.get("open_cams", [])
    st.button("Hide the heat maps" if opened else "Where did they look?", key=f"why_{row.id}",
              on_click=toggle_cams, args=(row.id,), icon=":material/visibility:", width="stretch")
    if opened:
        with st.spinner("Computing the heat maps…"):
            app.run_safely(cams, row, what="computing the heat maps")


def gallery() -> None:
    st.subheader("The paintings")
    app.curation_message()
    app.unavailable_notice(run)
    filters()
    df = tables.filter_gallery(app.test_gallery(RUN), st.session_state["f_true"] or None,
                                 st.session_state["f_pred"] or None, st.session_state["f_by"],
                                 st.session_state["f_erred"])
    df = app.filter_flagged(df, run, st.session_state["f_flag"])
    df = df[app.match_paintings(df, st.session_state.get("f_search", ""))]
    if df.empty:
        st.info("No test painting matches these choices. Try another cell, or widen the filters.")
        return
    pages = (len(df) + PER_PAGE - 1) // PER_PAGE
    if not 1 <= st.session_state.get("gallery_page", 1) <= pages:
        st.session_state["gallery_page"] = 1
    top = st.columns([3, 1, 1])
    top[0].markdown(f"{len(df)} painting{'s' if len(df) != 1 else ''}, the {MODELS[st.session_state['f_by']]}'s "
                    "most confident answers first.")
    if st.session_state.get("open_cams"):
        cam_settings(top[2])
    page = top[1].number_input("Page", 1, pages, key="gallery_page") if pages > 1 else 1
    rows = list(df.iloc[(page - 1) * PER_PAGE: page * PER_PAGE].itertuples())
    for start in range(0, len(rows), 4):
        for col, row in zip(st.columns(4, gap="medium"), rows[start:start + 4]):
            with col.container(border=True):
                card(row)


def cam_settings(where) -> None:
    """Only once a heat map is open: listing the methods imports the CAM library."""
    with where.popover("Heat map settings", icon=":material/tune:"):
        methods = app.run_safely(app.cam_methods, what="listing explanation methods") or ["gradcam"]
        if st.session_state.get("cam_method") not in methods:
            st.session_state["cam_method"] = methods[0]
        st.selectbox("Method", methods, key="cam_method", format_func=app.method_name)
        st.slider("Opacity", 0.0, 1.0, step=0.05, key="cam_alpha")


st.title("Where the models go wrong")
app.run_safely(metrics, what="showing the metrics")
app.run_safely(confusion, what="drawing the confusion matrices")
app.run_safely(app.reliability_section, run, what="drawing the reliability diagram")
st.divider()
app.run_safely(gallery, what="showing the paintings")
app.run_safely(app.decisions_table, run, what="showing the curation decisions")
