"""Classify: upload paintings (or pick one the models never trained on) and compare the two models' answers,
the neighbours behind the baseline's vote, and where each model looked."""

from pathlib import Path

import pandas as pd
import streamlit as st

from artlab import app
from artlab.report.csvsafe import md, to_csv_for_people

run = app.current_run()
RUN = str(run.path)
LABEL = run.label
SAMPLE_IDS: dict[str, str] = {}  # shown name -> painting id, for the samples that are paintings of the collection


def gather() -> list[tuple[str, str, bytes]]:
    """(shown name, file name, bytes) for every upload and the chosen sample painting."""
    files = st.file_uploader("Upload one or more paintings", type=app.UPLOAD_TYPES, accept_multiple_files=True,
                             key="uploads", help="JPEG, PNG, WebP or TIFF. Large scans are fine; they are shrunk "
                                                 "to the model's input size.")
    samples = app.run_safely(app.sample_choices, RUN, what="listing sample paintings") or {}
    choice = st.selectbox("…or try a painting the models never saw while training", [""] + list(samples),
                          key="sample", format_func=lambda s: s or "—")
    items = [(f.name, f.name, f.getvalue()) for f in files or []]
    if choice:
        name, file = samples[choice]
        SAMPLE_IDS[choice] = name[:-len(Path(file).suffix)] if Path(file).suffix else name
        data = app.run_safely(Path(file).read_bytes, what="reading the sample painting")
        if data:
            items.append((choice, name, data))
    return items


def top_bars(pred, k: int = 3) -> None:
    for cls, p in pred.top(k):
        st.progress(min(max(p, 0.0), 1.0), text=f"{md(cls)}: {p:.0%}")


def knn_votes(pred) -> None:
    k = len(pred.neighbours)
    votes = sorted(((c, s) for c, s in zip(pred.classes, pred.knn_shares) if s > 0), key=lambda t: -t[1])
    for cls, share in votes[:3]:
        st.progress(min(float(share), 1.0), text=f"{md(cls)}: {round(share * k)} of {k} neighbours")
    if not pred.knn_majority:
        st.caption(f"No class has more than half of the votes: the closer neighbours tip it to **{md(pred.knn)}**.")


def agreement(pred) -> None:
    kind, words = app.agreement_words(pred)
    if kind == "agree":
        st.success(words, icon=":material/check_circle:")
    else:
        st.warning(words, icon=":material/call_split:" if kind == "disagree" else ":material/help:")


def neighbours(pred) -> None:
    st.markdown(f"**The {len(pred.neighbours)} training paintings the baseline found most similar** "
                "(their votes make its answer)")
    if pred.neighbours and pred.neighbours[0].similarity >= 0.995:
        st.info("The closest one is this very painting (or a copy of it): it was among the paintings the models "
                "learned from, so the baseline is recognising it rather than judging it.", icon=":material/info:")
    per_row = 6
    for start in range(0, len(pred.neighbours), per_row):
        cols = st.columns(per_row)
        for col, n in zip(cols, pred.neighbours[start:start + per_row]):
            thumb = app.thumbnail(RUN, n.id)
            with col:
                app.show_image(thumb, max_height=180)
                st.caption(f"**{md(n.label)}** · {md(app.short(n.title, 70) or n.id)}"
                           + (f" — {md(n.artist)}" if n.artist else "")
                           + f" · similarity {n.similarity:.2f}")


def explanations(name: str, data: bytes, pred, key: str) -> None:
    if not st.toggle("Show where each model looked", key=f"cams_{key}",
                     help="Heat maps computed on demand (a second or two each)."):
        return
    methods = app.run_safely(app.cam_methods, what="listing explanation methods")
    if not methods:
        return
    if st.session_state.get("cam_method") not in methods:
        st.session_state["cam_method"] = methods[0]
    c1, c2 = st.columns(2)
    c1.selectbox("Method", methods, key="cam_method", format_func=app.method_name,
                 help="Grad-CAM is the method of the study; the others are variants that weigh the model's "
                      "internal picture of the painting differently. Score-CAM takes minutes, so it is "
                      "left to the command line: `artlab explain --method scorecam`.")
    c2.slider("Opacity of the heat map", 0.0, 1.0, step=0.05, key="cam_alpha")
    method, alpha = st.session_state["cam_method"], st.session_state["cam_alpha"]
    with st.spinner("Computing the heat maps…"):
        cams = app.run_safely(app.explanations, RUN, name, data, method, what="computing the heat maps")
    if not cams:
        return
    left, right = st.columns(2)
    for col, model, words in ((left, "finetuned", f"what made the fine-tuned model say **{md(pred.finetuned)}**"),
                              (right, "knn", f"what makes the painting resemble its **{md(pred.knn)}** neighbours "
                                             "(baseline)")):
        with col:
            view = cams[model].get("view", "centre")
            img = app.run_safely(app.overlay, name, data, cams[model]["cam"], alpha, cams[model]["crop"],
                                      view, what="drawing the heat map")
            app.show_image(img, max_height=560)
            if view == "whole":
                st.caption(f"Warm colours: {words}. The models see the whole painting (and its mirror image).")
            else:
                st.caption(f"Warm colours: {words}. The models look at the central square of the painting; the "
                           "dimmed margins were not seen." if cams[model]["crop"] < 1 else f"Warm colours: {words}.")
    stem = f"{run.name}_{Path(name).stem}"
    app.run_safely(app.cam_pair_downloads, name, data, cams,
                   ("the painting", f"fine-tuned: {pred.finetuned}", f"kNN baseline: {pred.knn}"), f"{stem}_cams",
                   f"dl_cams_{key}", what="offering the heat maps")
    if st.toggle("Also show the feature maps", key=f"fmap_{key}",
                 help="The sum of all the model's internal detectors at its last layer, without reference to any "
                      "class: where the network 'sees' most, whatever it makes of it."):
        maps = app.run_safely(app.feature_maps, RUN, name, data, what="computing the feature maps")
        if maps and app.frozen_backbone(run.card):  # the very same network in both models: one picture
            img = app.run_safely(app.overlay, name, data, maps["knn"]["cam"], alpha, maps["knn"]["crop"],
                                 maps["knn"].get("view", "centre"), what="drawing the feature map")
            left, _ = st.columns(2)
            with left:
                app.show_image(img, max_height=560, caption=app.feature_map_words(run.card))
        elif maps:
            left, right = st.columns(2)
            for col, model, words in ((left, "finetuned", "fine-tuned model"), (right, "knn", "baseline")):
                img = app.run_safely(app.overlay, name, data, maps[model]["cam"], alpha,
                                          maps[model]["crop"], maps[model].get("view", "centre"),
                                          what="drawing the feature map")
                with col:
                    app.show_image(img, max_height=560, caption=f"Feature map, {words}")
        if maps:
            app.run_safely(app.cam_pair_downloads, name, data, maps,
                           ("the painting", "feature map, fine-tuned model", "feature map, baseline"),
                           f"{stem}_feature_maps", f"dl_fmaps_{key}", what="offering the feature maps")


def detail(shown: str, name: str, data: bytes, pred, key: str) -> None:
    st.subheader(md(shown))
    agreement(pred)
    app.unfamiliar_warning(pred, LABEL)
    c_img, c_ft, c_knn = st.columns([1.2, 1, 1], gap="large")
    with c_img:
        app.show_image(app.preview(data, name), max_height=460)
    with c_ft:
        st.markdown(f"**Fine-tuned model**  \n:material/label: **{md(pred.finetuned)}**")
        top_bars(pred)
        st.caption(f"How sure it is of each {LABEL} (the three most likely; calibrated probabilities).")
        app.prediction_notes(pred, run.card)
    with c_knn:
        st.markdown(f"**kNN baseline**  \n:material/label: **{md(pred.knn)}**")
        knn_votes(pred)
        st.caption("It looks up the most similar paintings it was shown and takes their majority "
                   f"{LABEL} (shares of its votes, not probabilities).")
    if shown in SAMPLE_IDS:  # a painting of the collection: it can be flagged
        app.curation_message()
        app.run_safely(app.flag_controls, run, SAMPLE_IDS[shown], key="closer", what="showing the curation controls")
    neighbours(pred)
    app.run_safely(app.sheet_downloads, run, name, data, SAMPLE_IDS.get(shown), f"sheet_{key}",
                   what="offering the painting's sheet")
    explanations(name, data, pred, key)


def batch(results) -> None:
    st.subheader(f"{len(results)} files")
    per_row = 4
    for start in range(0, len(results), per_row):
        cols = st.columns(per_row)
        for col, (shown, name, data, pred) in zip(cols, results[start:start + per_row]):
            with col:
                if isinstance(pred, str):
                    st.error(md(pred))
                    continue
                app.show_image(app.preview(data, name), max_height=260)
                kind = app.agreement_words(pred)[0]
                mark = {"agree": "", "split": " · :orange[**the neighbours are split**]"}.get(
                    kind, " · :orange[**the models disagree**]")
                if pred.unfamiliar:
                    mark += " · :orange[**unlike the training paintings**]"
                st.caption(f"**{md(shown)}**  \nfine-tuned: **{md(pred.finetuned)}** ({pred.probs.max():.0%}) · "
                           f"baseline: **{md(pred.knn)}**{mark}")
    rows = [p.row() if not isinstance(p, str) else {"file": s, "error": p} for s, _, _, p in results]
    table = pd.DataFrame(rows)
    st.dataframe(table, hide_index=True, width="stretch")
    st.download_button("Download the results (CSV)", to_csv_for_people(table).encode(), "artlab-predictions.csv",
                       "text/csv", icon=":material/download:")


def classify(items) -> list:
    """(shown, file name, bytes, Prediction or the plain message saying why the file could not be read)."""
    results = []
    with st.spinner("Looking at the paintings…"):
        for shown, name, data in items:
            pred = app.run_safely(app.predict, RUN, name, data, what=f"classifying {name}")
            if pred is not None:
                results.append((shown, name, data, pred))
    return results


def page() -> None:
    items = gather()
    if not items:
        st.info("Upload a painting (or several) above, or choose one from the list, to see what the two models "
                "make of it.")
        return
    results = classify(items)
    good = [r for r in results if not isinstance(r[3], str)]
    if len(results) > 1:
        batch(results)
        if not good:
            return
        st.divider()
        if st.session_state.get("closer") not in range(len(good)):
            st.session_state["closer"] = 0
        pick = st.selectbox("Look closer at", range(len(good)), format_func=lambda i: good[i][0], key="closer")
        shown, name, data, pred = good[pick]
    elif results:
        shown, name, data, pred = results[0]
        if isinstance(pred, str):
            st.error(md(pred))
            return
    else:
        return
    app.run_safely(detail, shown, name, data, pred, app.digest(data), what="showing the painting")


st.title("Classify a painting")
st.caption(f"Model **{md(run.name)}**: two opinions on each painting's {LABEL}, a fine-tuned network and a simple "
           "look-up of similar paintings, with the reasons behind each.")
app.run_safely(page, what="classifying the paintings")
