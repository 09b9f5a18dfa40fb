"""How far the app's numbers can be trusted, on the pages: a painting's prediction set and unfamiliar notice
(Classify), the reliability diagram and the sets' coverage (Misclassifications). The sentences are
artlab.report.honesty's; data-derived names go through ``md``."""

from __future__ import annotations

import streamlit as st

from artlab.app.runs import predictions
from artlab.report import charts
from artlab.report.csvsafe import md
from artlab.report.honesty import (NOT_CALIBRATED, coverage_sentence, in_ten, reliability_rows,
                                   reliability_sentence, set_sentence, unfamiliar_notice)


def prediction_notes(pred, card: dict) -> None:
    """Under the fine-tuned model's bars: its prediction set in words (or that the run is not calibrated)."""
    names = pred.set_at()
    if names is None:
        st.caption(f"Probabilities {NOT_CALIBRATED}.")
        return
    conformal, label = card["conformal"], card["task"]["label"]
    target = float(conformal["target_coverage"])
    choices = sorted({0.8, 0.9, 0.95, target})
    if st.session_state.get("set_coverage") not in choices:
        st.session_state["set_coverage"] = target
    coverage = st.select_slider("How often should the set hold the true answer?", choices, key="set_coverage",
                                format_func=in_ten)
    sentence = set_sentence([md(n) for n in pred.set_at(coverage)], coverage, label, len(pred.classes),
                            bool(conformal.get("small")), int(conformal["calibration_n"]))
    st.markdown(f":material/checklist: **Its {label} set:** {sentence}")


def unfamiliar_warning(pred, label: str) -> None:
    """A plain notice when the painting is far from everything the models learned from."""
    if pred.unfamiliar:
        st.warning(unfamiliar_notice(label), icon=":material/help:")


def reliability_section(run) -> None:
    """The reliability diagram before and after calibration, and the sets' coverage and size on the test split."""
    card = run.card
    st.subheader("Can its confidence be taken at its word?")
    if not card.get("calibration"):
        st.info(f"This run is {NOT_CALIBRATED}. Retrain it to see how well its confidence matches how often it is "
                "right.", icon=":material/info:")
        return
    t = float(card["calibration"]["parameters"]["temperature"])
    rows = reliability_rows(predictions(str(run.path)), run.classes, t)
    st.plotly_chart(charts.reliability_figure(rows, title="Stated confidence against how often it was right"),
                    key="reliability", config={"displayModeBar": False})
    st.caption(reliability_sentence(card))
    if card.get("conformal"):
        st.markdown(coverage_sentence(card))
