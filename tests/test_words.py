"""Sentences the app says about a run, each tested on a run where the old sentence was untrue (issue 26): a run that
keeps its last epoch while its validation loss was lowest elsewhere, a tie among the kNN's neighbours, a single k, a
frozen backbone; and the escaping every data string goes through (issue 25). Pure functions, no Streamlit session."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from artlab.app import words
from artlab.app.search import match_paintings, years_of
from artlab.report.csvsafe import md, md_frame

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "checkpoints"


def _history(val_loss):
    n = len(val_loss)
    return pd.DataFrame({"epoch": range(1, n + 1), "train_loss": np.linspace(1, 0.1, n), "val_loss": val_loss,
                         "train_accuracy": 0.5, "val_accuracy": 0.5})


def _card(restore_best=True, best_epoch=None, method="partial", k_curve=None, k=5, stopped_early=False):
    return {"method": method, "config": {"restore_best": restore_best, "patience": 5},
            "training": {"best_epoch": best_epoch, "stopped_early": stopped_early},
            "metrics": {"knn": {"k": k, "k_curve": k_curve if k_curve is not None else {str(k): 0.7}}}}


# --- the kept epoch --------------------------------------------------------------------------------------------

def test_a_run_that_keeps_its_last_epoch_says_so_and_where_the_loss_was_lowest():
    loss = [1.0, 0.8, 0.5, 0.6, 0.7, 0.8]  # lowest at epoch 3, the last (6) kept
    said = words.training_words(_card(restore_best=False, best_epoch=6), _history(loss))
    assert "where the loss on the validation paintings was lowest" not in said
    assert "keeps the weights of its last epoch, 6" in said
    assert "lowest at epoch 3 (0.50)" in said and "0.80, 1.6 times as high" in said
    assert words.kept_epoch(_card(restore_best=False, best_epoch=6), _history(loss)) == 6


def test_a_run_that_keeps_its_best_epoch_says_where_the_loss_was_lowest():
    loss = [1.0, 0.8, 0.5, 0.6]
    said = words.training_words(_card(best_epoch=3, stopped_early=True), _history(loss))
    assert "The weights kept are those of epoch 3, where the loss on the validation paintings was lowest" in said
    assert "stopped early" in said and "times as high" not in said


@pytest.mark.parametrize("run", ["demo-genre", "demo-culture"])
def test_the_shipped_demo_runs_in_words(run):
    """Both keep their last epoch (restore_best false) while their validation loss was lowest early on."""
    card = json.loads((DEMO / run / "card.json").read_text())
    history = pd.read_csv(DEMO / run / "history.csv")
    assert card["config"]["restore_best"] is False
    lowest = int(history.loc[history["val_loss"].idxmin(), "epoch"])
    assert lowest != len(history)
    said = words.training_words(card, history)
    assert f"last epoch, {len(history)}" in said and f"lowest at epoch {lowest}" in said
    assert "was lowest." not in said.split("The validation loss")[0]
    assert not any("best-validation" in d for d in words.deviations(card))


# --- the kNN's k -------------------------------------------------------------------------------------------------

def test_a_single_k_is_not_said_to_have_done_best():
    card = _card(k=5, k_curve={"5": 0.7})
    assert not words.several_ks(card)
    said = words.k_words(card)
    assert "did best" not in said and "only value tried" in said
    assert not any("chosen on validation accuracy" in d for d in words.deviations(
        {"config": {"label": "genre", "knn_ks": [5]}, "task": {}}))


def test_several_ks_say_which_did_best():
    card = _card(k=3, k_curve={"1": 0.6, "3": 0.8, "5": 0.8})
    assert words.several_ks(card)
    said = words.k_words(card)
    assert "Of the values tried (1, 3, 5), k = 3 did best" in said and "smallest k" in said


# --- a frozen backbone ---------------------------------------------------------------------------------------------

def test_feature_maps_of_a_frozen_backbone_are_said_to_be_one_picture():
    assert words.frozen_backbone(_card(method="transfer"))
    assert "the same picture" in words.feature_map_words(_card(method="transfer"))
    assert not words.frozen_backbone(_card(method="partial")) and words.feature_map_words(_card()) == ""


# --- a tie among the neighbours ------------------------------------------------------------------------------------

def _prediction(probs, shares, scores, k):
    from artlab.explain.predictor import Neighbour, Prediction
    classes = ["landscape", "portrait", "religious"]
    return Prediction("p.jpg", classes, np.array(probs), np.array(shares), np.array(scores),
                      [Neighbour(str(i), classes[0], 0.9) for i in range(k)])


def test_a_three_way_tie_is_not_agreement():
    third = 1 / 3
    pred = _prediction([0.1, 0.2, 0.7], [third] * 3, [third, third, third + 1e-6], 3)  # distance picks religious
    assert pred.knn == pred.finetuned == "religious"
    assert not pred.knn_majority and not pred.agree and pred.row()["agree"] is False
    kind, said = words.agreement_words(pred)
    assert kind == "split" and "Both models say" not in said and "split (1 of 3 landscape" in said


def test_a_clear_majority_agrees_and_a_plurality_does_not():
    pred = _prediction([0.1, 0.2, 0.7], [1 / 3, 0, 2 / 3], [1 / 3, 0, 2 / 3], 3)
    assert pred.agree and words.agreement_words(pred) == ("agree", "Both models say **religious**.")
    plurality = _prediction([0.1, 0.2, 0.7], [0.2, 0.4, 0.4], [0.2, 0.4, 0.4 + 1e-6], 5)  # 2 of 5, 2 of 5, 1 of 5
    assert not plurality.agree and words.agreement_words(plurality)[0] == "split"
    other = _prediction([0.7, 0.2, 0.1], [0, 1 / 3, 2 / 3], [0, 1 / 3, 2 / 3], 3)
    assert words.agreement_words(other)[0] == "disagree"


# --- the culture map ---------------------------------------------------------------------------------------------

def test_the_distances_and_the_views_in_words():
    geo = {"classes": ["A", "B", "C*"], "distance": [[0, 4.1, 10.8], [4.1, 0, 6], [10.8, 6, 0]]}
    said = words.distance_words(geo)
    assert "from 4.1, between A and B" in said and "to 10.8, between A and C\\*" in said
    assert "backbone" in words.paintings_words("backbone") and "backbone" not in words.paintings_words("head")


# --- one escaping path ---------------------------------------------------------------------------------------------

BEACONS = ["![x](http://127.0.0.1:9/beacon-1.png)", '<img src="http://127.0.0.1:9/b.png">', ":red[alarm]",
           "http://example.com/a", "www.example.com", "curator@example.org", "&#91;x&#93;(http://a.b)", "# head"]


@pytest.mark.parametrize("text", BEACONS)
def test_md_leaves_no_markdown_and_no_address(text):
    shown = md(text)
    for pattern in (r"\]\(", "<img", r":red\[", "# "):  # markdown, HTML and directives: each escaped
        assert not re.search(r"(?<!\\)" + pattern, shown), pattern
    plain = shown.replace("\\", "")  # what markdown makes of the escapes
    for pattern in ("://", "www.", "r@"):  # what GitHub-flavoured markdown would still turn into a link
        assert pattern not in plain
    assert plain.replace("\u2060", "") == text  # and nothing else changed


def test_md_frame_escapes_cells_headings_and_index():
    df = pd.DataFrame({"![h](http://a.b/c.png)": ["**x**"], "n": [0.5]}, index=[":red[cls]"])
    out = md_frame(df)
    assert list(out.columns) == [md("![h](http://a.b/c.png)"), "n"] and out.index[0] == md(":red[cls]")
    assert out.iloc[0, 0] == md("**x**") and out.iloc[0, 1] == 0.5


def test_deviations_and_checksum_are_escaped():
    card = {"backbone": {"name": "x", "weights": {"source": "s", "sha256": "![x](http://a"}}, "deviations": ["*a*"],
            "config": "unreadable"}
    assert "![x](" not in words.weights_caption(card)
    assert "- \\*a\\*" in words.deviations_markdown(card)  # a card the protocol cannot read keeps its own list


# --- search ------------------------------------------------------------------------------------------------------

def test_search_by_title_artist_and_date():
    df = pd.DataFrame({"title": ["The Coronation", "Portrait of a Man", "Landscape", ""],
                       "artist": ["Albrecht Dürer", "Rembrandt", "", "Anon"],
                       "date": ["ca. 1650", "1640-45", "17th century", ""]})
    hits = lambda q: df.index[match_paintings(df, q)].tolist()  # noqa: E731
    assert hits("") == [0, 1, 2, 3]
    assert hits("durer") == [0] and hits("REMBRANDT man") == [1] and hits("portrait durer") == []
    assert hits("1642") == [1, 2] and hits("1600-1700") == [0, 1, 2] and hits("17th century") == [0, 1, 2]
    assert hits("1500") == [] and hits("coronation 1650") == [0]
    assert years_of("1640-45") == (1640, 1645) and years_of("") is None
    assert match_paintings(pd.DataFrame({"title": ["a"]}), "a 1650").tolist() == [False]  # no date column


# --- the training page's tables and chart -----------------------------------------------------------------------

def test_results_table_for_people():
    from artlab.report.tables import readable_results
    table = readable_results(pd.read_csv(DEMO / "results.csv"))
    assert "row" not in table.columns and "in the study's table" not in table.columns  # empty for every row
    assert {"fine-tuned, test accuracy", "kNN, test accuracy", "run"} <= set(table.columns)
    assert not {"val", "top1", "knn_top1"} & set(table.columns)
    assert "None" not in table.astype(str).to_string()


def test_epoch_axis_runs_from_one_to_the_last():
    from artlab.report.charts import history_figure
    h = _history(np.linspace(1, 0.5, 30))
    fig = history_figure(h["epoch"], h["train_loss"], h["val_loss"], h["train_accuracy"], h["val_accuracy"], 30)
    assert list(fig.layout.xaxis.range) == [0.5, 30.5] and fig.layout.xaxis.tick0 == 1
