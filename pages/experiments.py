"""Training and experiments: the chosen model's training curves and choice of k, every trained model side by side,
and the results tables written by `artlab experiment`."""

import streamlit as st

from artlab import app
from artlab.report import charts, figures
from artlab.report import tables as tables_
from artlab.report.csvsafe import md, md_link, to_csv_for_people


def training(run) -> None:
    st.subheader(f"How {md(run.name)} learned")
    hist = app.history(str(run.path))
    if hist.empty:
        st.info("This model's training left no record of its epochs.")
        return
    st.plotly_chart(charts.history_figure(hist["epoch"], hist["train_loss"], hist["val_loss"],
                                          hist["train_accuracy"], hist["val_accuracy"],
                                          app.kept_epoch(run.card, hist)),
                    config={"displayModeBar": False}, key="history")
    info, kept = run.card.get("training", {}), app.kept_epoch(run.card, hist)
    app.figure_downloads(lambda: figures.history_figure(hist, kept, bool(info.get("stopped_early")), run.name),
                         f"{run.name}_training", "dl_history")
    st.caption(app.training_words(run.card, hist))
    knn = run.card.get("metrics", {}).get("knn", {})
    if app.several_ks(run.card):
        st.plotly_chart(charts.k_curve_figure(knn["k_curve"], knn.get("k"), title="Choosing k for the baseline"),
                        config={"displayModeBar": False}, key="k_curve")
    if app.k_words(run.card):
        st.caption(app.k_words(run.card))


def overview(root: str) -> None:
    st.subheader("Every trained model in this folder")
    table = app.runs_overview(root)
    if table.empty:
        st.info(f"No trained model in {md(root)}.")
        return
    shown, config = app.percent_table(table, ["fine-tuned accuracy", "kNN accuracy"])
    st.dataframe(shown, hide_index=True, width="stretch", column_config=config)


def grids(root: str) -> None:
    st.subheader("Experiment grids")
    tables = app.results_tables(root)
    if not tables:
        st.info("No experiment results here yet. `artlab experiment CONFIG` trains a grid of models and writes its "
                "results.csv, which will appear on this page.")
        return
    for name, table in tables:
        st.markdown(f"**{md(name)}**")
        st.dataframe(tables_.readable_results(table), hide_index=True, width="stretch")
        st.download_button("Download", to_csv_for_people(table).encode(), name.replace("/", "_"), "text/csv",
                           key=f"dl_{name}", icon=":material/download:")
        app.paper_beside_results(table, name, key=f"beside_{name}")


app.require_frame()
st.title("Training and experiments")
root = st.session_state.get("runs_root", str(app.default_runs_root()))
chosen = None
if st.session_state.get("run_path"):
    chosen = app.run_safely(app.open_run, st.session_state["run_path"], what="opening the model")
    if chosen is not None:
        app.run_safely(training, chosen, what="drawing the training curves")
app.run_safely(overview, root, what="listing the trained models")
if chosen is not None:
    app.run_safely(app.paper_beside_run, chosen.card, chosen.name, what="comparing the run with the paper")
app.run_safely(grids, root, what="reading the experiment results")
