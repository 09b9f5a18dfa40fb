"""artlab: the router and the frame shared by every page (run picker and model card in the sidebar).

Start with `make app` (`python -m artlab.app.serve`: `streamlit run app.py` with Streamlit's legacy pages/ mode off
from the first request), or `streamlit run app.py`. The runs listed come from checkpoints/ beside this file, or from the
folder in $ARTLAB_RUNS, or from any folder typed in the sidebar.
"""

import torch

torch.classes.__path__ = []  # Streamlit's file watcher trips over torch.classes' lazy __path__ otherwise

from pathlib import Path  # noqa: E402

import streamlit as st  # noqa: E402

from artlab import app  # noqa: E402
from artlab.report.csvsafe import md  # noqa: E402

st.set_page_config(page_title="artlab: paintings through a machine's eyes", page_icon="🎨",
                   layout="wide")
app.init_state()

def pick_run() -> None:
    st.sidebar.text_input("Folder of trained models", key="runs_root",
                          help="Each trained model is a folder written by `artlab train` (default: checkpoints/).")
    try:
        runs = app.list_runs(st.session_state["runs_root"])
    except Exception:
        st.session_state["run_path"] = None
        raise
    if not runs:
        st.session_state["run_path"] = None
        st.sidebar.info(f"No trained model in {md(st.session_state['runs_root'])}. Train one with `artlab train`, "
                        "or type another folder above.")
        return
    if st.session_state.get("run_path") not in runs:
        st.session_state["run_path"] = runs[0]
    st.sidebar.selectbox("Model", runs, key="run_path", format_func=lambda p: Path(p).name)


def model_card(card: dict) -> None:
    """A short summary open (what it does, how often it is right, a word on a small test); how it was built, what it
    learned from, the weights' provenance and the departures from its study one click away."""
    for paragraph in app.card_summary(card):
        st.markdown(paragraph)
    note = app.small_collection_note(card)
    if note:
        st.caption(f":material/info: {note}")
    for leak in filter(None, [app.leakage_warning(card)]):  # copies across the splits: said open, it matters
        st.warning(leak, icon=":material/content_copy:")
    with st.expander("More about this model"):
        for paragraph in app.card_paragraphs(card)[1:]:
            st.markdown(paragraph)
        caption = app.weights_caption(card)
        if caption:
            st.caption(caption)
        warning = app.small_collection_warning(card)
        if warning:
            st.warning(warning, icon=":material/info:")
        deviations = app.deviations_markdown(card)
        if deviations:
            st.markdown(deviations)


def sidebar() -> None:
    with st.sidebar:
        app.run_safely(pick_run, what="listing the trained models")
        path = st.session_state.get("run_path")
        if path:
            card = app.run_safely(app.card, path, what="reading the model card")
            if card:
                st.markdown("##### About this model")
                app.run_safely(model_card, card, what="describing the model")
                run = app.run_safely(app.open_run, path, what="opening the model")
                if run is not None:
                    app.run_safely(app.stale_notice, run, what="checking the collection's curation")


# The default page is served at the root; its own address is only reserved, so /classify can be an alias.
CLASSIFY = st.Page("pages/classify.py", title="Classify a painting", icon=":material/image_search:", default=True,
                   url_path="classify-a-painting")


def classify_address() -> None:
    """/classify (the page's file name, and the address Streamlit's pages/ folder gave it) opens the Classify page,
    which as the default page lives at the root."""
    st.switch_page(CLASSIFY)


pages = st.navigation([
    CLASSIFY,
    st.Page("pages/misclassifications.py", title="Where the models go wrong", icon=":material/rule:"),
    st.Page("pages/culture_map.py", title="Culture map", icon=":material/hub:"),
    st.Page("pages/experiments.py", title="Training and experiments", icon=":material/monitoring:"),
    st.Page("pages/review.py", title="Review the collection", icon=":material/fact_check:"),
    st.Page(classify_address, title="Classify a painting", url_path="classify", visibility="hidden"),
])
sidebar()
pages.run()
