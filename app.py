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

METHOD_WORDS = {
    "partial": "only its last block and a new final layer were retrained on paintings; the rest kept what it "
               "learned from everyday photographs (ImageNet)",
    "finetune": "every layer was retrained on paintings, starting from what it learned on everyday photographs "
                "(ImageNet)",
    "transfer": "the network kept what it learned from everyday photographs (ImageNet) unchanged; only a new final "
                "part that turns what it sees into a {label} was trained",
    "scratch": "it was trained on paintings alone, from a random start (no ImageNet)",
}
HEAD_WORDS = {"linear": "a single layer", "mlp3": "three layers"}


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


def pct(x) -> str:
    return f"{100 * float(x):.0f}%"


def model_card(card: dict) -> None:
    task, backbone, m = card["task"], card["backbone"], card.get("metrics", {})
    classes, label = task["classes"], task["label"]
    sizes = task.get("split_sizes", {})
    weights = backbone.get("weights") or {}
    st.markdown(f"**What it does.** It sorts a painting into one of {len(classes)} {label} classes: "
                f"{', '.join(map(md, classes))}.")
    method = METHOD_WORDS.get(card.get("method"), card.get("method", "")).format(label=label)
    st.markdown(f"**How it was built.** It starts from {md(backbone.get('description') or backbone['name'])}; "
                f"{method}. The final part has {HEAD_WORDS.get(card.get('head'), card.get('head'))}.")
    source = weights.get("source") or (weights.get("classifier") or {}).get("source")
    if source:
        st.caption(f"Pretrained weights: {md(source)}" + (f", {md(weights['file'])}" if weights.get("file") else "")
                   + (f" (sha256 {weights['sha256'][:12]}…)" if weights.get("sha256") else "")
                   + (f". Licence: {md(backbone['license'])}." if backbone.get("license") else "."))
    st.markdown(f"**What it learned from.** {task.get('n_images', '?')} paintings from "
                f"{md(task.get('collection_source', 'an unnamed collection'))}: {sizes.get('train', '?')} to learn from, "
                f"{sizes.get('val', '?')} to decide when to stop, {sizes.get('test', '?')} kept aside to test it. "
                f"Licences: {'; '.join(map(md, task.get('licenses', []))) or 'not recorded'}.")
    st.markdown(f"**How it was tested.** {app.split_words(task)}")
    if m:
        ft, kn = m["finetuned"], m["knn"]
        st.markdown(f"**How often it is right** on the {ft.get('n', sizes.get('test', '?'))} test paintings: "
                    f"fine-tuned model {pct(ft['accuracy'])}, simple baseline {pct(kn['accuracy'])} "
                    f"(the baseline gives the majority {label} among the {kn.get('k', '?')} most similar training "
                    "paintings).")
    caveat(task, m)
    if card.get("deviations"):
        st.markdown(app.deviations_markdown(card))


def caveat(task: dict, metrics: dict) -> None:
    n_test = (metrics.get("finetuned") or {}).get("n") or task.get("split_sizes", {}).get("test", 0)
    per_class = task.get("per_class", {})
    thin = [c for c, s in per_class.items() if s.get("train", 0) < 20]
    if n_test and n_test < 100 or thin:
        words = f"only {n_test} test paintings, so one painting moves the accuracy by {100 / max(n_test, 1):.0f} " \
                "points" if n_test and n_test < 100 else "a small collection"
        extra = f"; few examples to learn from for {', '.join(map(md, thin))}" if thin else ""
        st.warning(f"Small collection: {words}{extra}. Read the numbers as a rough guide, not a verdict.",
                   icon=":material/info:")


def sidebar() -> None:
    with st.sidebar:
        app.run_safely(pick_run, what="listing the trained models")
        path = st.session_state.get("run_path")
        if path:
            card = app.run_safely(app.card, path, what="reading the model card")
            if card:
                with st.expander("About this model", expanded=True):
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
    st.Page(classify_address, title="Classify a painting", url_path="classify", visibility="hidden"),
])
sidebar()
pages.run()
