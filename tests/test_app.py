"""The Streamlit app, headless (streamlit.testing.v1.AppTest), on the real small genre and culture runs.

Every page renders without an exception for both runs; an upload of a real painting shows both models, a bad file a
plain message; Misclassifications filters find paintings or say plainly that none match; a missing, empty or corrupt
runs folder gives a plain message. The app's derived tables are checked as plain functions too.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"
PAGES = ["pages/classify.py", "pages/misclassifications.py", "pages/culture_map.py", "pages/experiments.py"]
TIMEOUT = 180  # the first prediction builds the network and loads its weights


@pytest.fixture(scope="module")
def runs_dir(genre_run, culture_run, tmp_path_factory):
    """A runs folder like checkpoints/: the two fixture runs (symlinked) and an experiment results table."""
    root = tmp_path_factory.mktemp("app_runs")
    (root / "genre").symlink_to(genre_run, target_is_directory=True)
    (root / "culture").symlink_to(culture_run, target_is_directory=True)
    (root / "grid").mkdir()
    pd.DataFrame({"run": ["genre", "culture"], "accuracy": [0.5, 0.4]}).to_csv(root / "grid" / "results.csv",
                                                                            index=False)
    return root


def start(monkeypatch, runs_root: Path, run: str | None = None) -> AppTest:
    monkeypatch.setenv("ARTLAB_RUNS", str(runs_root))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    if run:
        at.selectbox(key="run_path").select(str(runs_root / run)).run()
    assert_clean(at)
    return at


def texts(at: AppTest) -> str:
    parts = []
    for kind in ("markdown", "caption", "info", "error", "warning", "success", "title", "subheader"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert "Traceback" not in texts(at)
    assert not [e.value for e in at.error if "Something went wrong" in str(e.value)]


def go(at: AppTest, page: str) -> AppTest:
    at.switch_page(page).run()
    assert_clean(at)
    return at


# --- every page ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("run", ["genre", "culture"])
def test_every_page_renders(runs_dir, monkeypatch, run):
    at = start(monkeypatch, runs_dir, run)
    for page in PAGES:
        go(at, page)
        assert at.title, page
        assert not at.error, (page, [e.value for e in at.error])
    assert at.session_state["run_path"] == str(runs_dir / run)  # the sidebar's choice survives the page changes


def test_sidebar_model_card_in_plain_words(runs_dir, genre_run, monkeypatch):
    at = start(monkeypatch, runs_dir, "genre")
    card = json.loads((genre_run / "card.json").read_text())
    side = "\n".join(str(e.value) for e in at.sidebar.markdown)
    for c in card["task"]["classes"]:
        assert c in side
    assert "How often it is right" in side and "fine-tuned model" in side and "baseline" in side
    from artlab.report.csvsafe import md
    assert md(card["task"]["collection_source"]) in side
    assert any("Small collection" in w.value for w in at.sidebar.warning)  # 18 test paintings: say so (details)
    assert any("test paintings: a rough guide" in c.value for c in at.sidebar.caption)  # and in the summary
    assert not re.search(r"\blogits?\b", side)
    # which split tested it, in words, and every departure from the genre study, as the card lists them
    assert "On paintings picked at random" in side and not card["task"]["group_by_artist"]
    assert "Where it departs from the study it reproduces" in side
    for d in card["deviations"]:
        assert f"- {md(d)}" in side


def test_model_card_words_for_the_split_and_the_departures():
    """The shipped demo runs test on unseen artists, and the card says so in words; every departure is one item."""
    from artlab.app.words import deviations_markdown, split_words
    card = json.loads((ROOT / "checkpoints" / "demo-genre" / "card.json").read_text())
    assert card["task"]["group_by_artist"]
    assert split_words(card["task"]).startswith("On paintings by artists it never saw in training")
    assert split_words({**card["task"], "group_by_artist": False}).startswith("On paintings picked at random")
    from artlab.report.csvsafe import md
    lines = deviations_markdown(card).splitlines()
    assert lines[0] == "**Where it departs from the study it reproduces:**"
    assert lines[1:] == [f"- {md(d)}" for d in card["deviations"]] and len(lines) > 1
    # said from the configuration (a sentence corrected since the card was written reads true); a card the
    # protocol cannot read keeps its own list
    assert deviations_markdown({**card, "deviations": []}) == deviations_markdown(card)
    assert deviations_markdown({**card, "config": "unreadable", "deviations": []}) == ""


# --- Classify -------------------------------------------------------------------------------------------------

def upload(at: AppTest, *files) -> AppTest:
    at.file_uploader(key="uploads").set_value(list(files)).run()
    assert_clean(at)
    return at


def test_upload_a_painting(runs_dir, demo_images, monkeypatch):
    at = start(monkeypatch, runs_dir, "genre")
    img = demo_images[0]
    upload(at, (img.name, img.read_bytes(), "image/jpeg"))
    verdict = [s.value for s in at.success] + [w.value for w in at.main.warning]
    assert any("Both models say" in v or "The models disagree" in v or "are split" in v for v in verdict)
    body = texts(at)
    assert "Fine-tuned model" in body and "kNN baseline" in body and "most similar" in body
    k = json.loads((runs_dir / "genre" / "card.json").read_text())["metrics"]["knn"]["k"]
    assert len(at.image) >= 1 + k  # the painting and its k neighbours, as pictures
    assert not at.error


def test_a_bad_file_gets_a_plain_message(runs_dir, monkeypatch):
    at = start(monkeypatch, runs_dir, "genre")
    upload(at, ("letter.jpg", b"Dear curator, this is not a picture.", "image/jpeg"))
    from artlab.report.csvsafe import md
    assert [e.value for e in at.error] == [md("not an image file: letter.jpg")]


def test_a_batch_with_a_bad_file(runs_dir, demo_images, monkeypatch):
    at = start(monkeypatch, runs_dir, "culture")
    good = [(p.name, p.read_bytes(), "image/jpeg") for p in demo_images[:2]]
    upload(at, good[0], ("empty.png", b"", "image/png"), good[1])
    from artlab.report.csvsafe import md
    assert any(md("empty.png") in e.value for e in at.error)  # the bad file is named, the others still work
    table = at.dataframe[0].value
    assert len(table) == 3 and list(table["file"]) == [good[0][0], "empty.png", good[1][0]]
    assert table["finetuned"].notna().sum() == 2
    assert at.get("download_button")
    at.selectbox(key="closer").select_index(1).run()
    assert_clean(at)
    from artlab.report.csvsafe import md
    assert any(s.value == md(good[1][0]) for s in at.subheader)


def test_heat_maps_on_demand(runs_dir, demo_images, monkeypatch):
    at = start(monkeypatch, runs_dir, "genre")
    img = demo_images[1]
    upload(at, (img.name, img.read_bytes(), "image/jpeg"))
    before = len(at.image)
    at.toggle(key=next(t.key for t in at.toggle if t.key.startswith("cams_"))).set_value(True).run()
    assert_clean(at)
    assert len(at.image) == before + 2  # both models' overlays
    assert "Warm colours" in texts(at)
    from artlab.app import method_name
    offered = at.selectbox(key="cam_method").options  # as shown
    assert method_name("eigencam") in offered and method_name("scorecam") not in offered  # minutes on a CPU
    at.selectbox(key="cam_method").select("eigencam").run()
    at.slider(key="cam_alpha").set_value(0.8).run()
    assert_clean(at)
    at.toggle(key=next(t.key for t in at.toggle if t.key.startswith("fmap_"))).set_value(True).run()
    assert_clean(at)
    assert len(at.image) == before + 4 and not at.error
    offered = " ".join(str(b.proto.label) for b in at.get("download_button"))
    assert "dl_cams_" in " ".join(str(b.proto.id) for b in at.get("download_button"))  # the heat maps ...
    assert "dl_fmaps_" in " ".join(str(b.proto.id) for b in at.get("download_button"))  # ... and feature maps
    assert "PNG" in offered.upper() and "SVG" in offered.upper()


def test_a_sample_painting(runs_dir, monkeypatch):
    at = start(monkeypatch, runs_dir, "genre")
    sample = at.selectbox(key="sample")
    assert len(sample.options) > 1
    sample.select_index(1).run()
    assert_clean(at)
    assert any("Both models say" in s.value for s in at.success) or any(
        "disagree" in w.value or "are split" in w.value for w in at.main.warning)


# --- Misclassifications ---------------------------------------------------------------------------------------

def test_misclassification_filters(runs_dir, genre_run, monkeypatch):
    at = go(start(monkeypatch, runs_dir, "genre"), "pages/misclassifications.py")
    assert len(at.table) == 2  # Table 1 and the per-class table
    n_test = len(pd.read_csv(genre_run / "predictions.csv"))
    at.selectbox(key="f_erred").select("all").run()
    assert_clean(at)
    assert any(m.value.startswith(f"{n_test} paintings") for m in at.markdown)
    assert len([b for b in at.button if b.key.startswith("why_")]) == min(n_test, 12)

    cls = json.loads((genre_run / "card.json").read_text())["task"]["classes"][0]
    at.selectbox(key="f_true").select(cls).run()
    at.selectbox(key="f_pred").select(cls).run()
    at.selectbox(key="f_erred").select("finetuned").run()  # right class, yet the fine-tuned model wrong: none
    assert_clean(at)
    assert [i.value for i in at.info] == ["No test painting matches these choices. Try another cell, or widen the "
                                          "filters."]
    assert not [b for b in at.button if b.key.startswith("why_")]
    at.selectbox(key="run_path").select(str(runs_dir / "culture")).run()  # other classes: the filters start afresh
    assert_clean(at)
    assert at.selectbox(key="f_true").value == "" and at.title[0].value == "Where the models go wrong"


def test_misclassification_heat_maps(runs_dir, monkeypatch):
    at = go(start(monkeypatch, runs_dir, "culture"), "pages/misclassifications.py")
    at.selectbox(key="f_erred").select("all").run()
    before = len(at.image)
    next(b for b in at.button if b.key.startswith("why_")).click().run()
    assert_clean(at)
    assert len(at.image) == before + 2 and not at.error
    assert at.selectbox(key="cam_method").value == "gradcam"


# --- Culture map and Experiments ------------------------------------------------------------------------------

def test_culture_map_painting_neighbours_and_path(runs_dir, monkeypatch):
    at = go(start(monkeypatch, runs_dir, "culture"), "pages/culture_map.py")
    assert len(at.get("plotly_chart")) >= 4  # graph, chord, distances, map of paintings
    at.selectbox(key="map_pick").select_index(5).run()
    at.slider(key="map_k").set_value(4).run()
    assert_clean(at)
    assert any("4 paintings the model finds most like it" in m.value for m in at.markdown)
    at.toggle(key="show_path").set_value(True).run()
    at.selectbox(key="map_goal").select_index(40).run()
    assert_clean(at)
    assert any("Degrees of separation" in m.value for m in at.markdown) or any(
        "not connected" in i.value for i in at.info)
    if any("Degrees of separation" in m.value for m in at.markdown):  # each step says how it is near
        assert any("step 1: " in c.value and "most " in c.value for c in at.caption)
    assert any("straight-line distance" in c.value for c in at.caption)  # the Distances tab's numbers in words
    assert any("trust the list over the picture" in c.value for c in at.caption)  # which description each view uses


def test_experiments_page_shows_curves_and_results(runs_dir, monkeypatch):
    at = go(start(monkeypatch, runs_dir, "genre"), "pages/experiments.py")
    assert len(at.get("plotly_chart")) >= 1
    overview = at.dataframe[0].value
    assert set(overview["run"]) == {"genre", "culture"}
    assert any(m.value == r"**grid/results\.csv**" for m in at.markdown)  # a data string, escaped (shown as is)
    grid = next(d.value for d in at.dataframe if "accuracy" in d.value.columns)  # the grid's results table
    assert "row" not in grid.columns  # no empty "row" column
    said = " ".join(c.value for c in at.caption)
    assert "epochs (" in said and "The weights kept are those of epoch" in said  # the fixture keeps its best epoch
    assert "did best on the validation paintings" in said  # it tried several k


def test_experiments_page_words_for_a_run_that_keeps_its_last_epoch(tmp_path, genre_run, monkeypatch):
    """A run with restore_best false whose validation loss was lowest at its first epoch, and one k tried: the page
    says it kept the last epoch and where the loss was lowest, and draws no one-point k curve."""
    run = tmp_path / "runs" / "last"
    shutil.copytree(genre_run, run)
    card = json.loads((run / "card.json").read_text())
    history = pd.read_csv(run / "history.csv")
    history["val_loss"] = [0.5 + 0.1 * i for i in range(len(history))]  # lowest at epoch 1
    history.to_csv(run / "history.csv", index=False)
    card["config"]["restore_best"] = False
    card["training"]["best_epoch"] = len(history)
    k = card["metrics"]["knn"]["k"]
    card["metrics"]["knn"]["k_curve"] = {str(k): card["metrics"]["knn"]["k_curve"][str(k)]}
    (run / "card.json").write_text(json.dumps(card))
    at = go(start(monkeypatch, run.parent, "last"), "pages/experiments.py")
    said = " ".join(c.value for c in at.caption)
    assert f"keeps the weights of its last epoch, {len(history)}" in said and "lowest at epoch 1" in said
    assert "where the loss on the validation paintings was lowest" not in said
    assert "did best" not in said and "only value tried" in said
    assert len(at.get("plotly_chart")) == 1  # the training curves; no k curve of one point


# --- missing and broken runs ----------------------------------------------------------------------------------

def test_empty_runs_folder(tmp_path, monkeypatch):
    at = start(monkeypatch, tmp_path)
    assert any("No trained model" in i.value for i in at.sidebar.info)
    for page in PAGES:
        go(at, page)


def test_missing_folder_typed_in_the_sidebar(runs_dir, monkeypatch):
    at = start(monkeypatch, runs_dir, "genre")
    missing = runs_dir / "no-such-folder"
    at.text_input(key="runs_root").set_value(str(missing)).run()
    assert_clean(at)
    assert any(f"No trained model in {missing}" in i.value.replace("\\", "") for i in at.sidebar.info)
    assert any("Choose a trained model" in i.value for i in at.main.info)


def test_folder_outside_the_roots_is_not_opened(runs_dir, monkeypatch):
    monkeypatch.delenv("ARTLAB_ALLOW_ANY_FOLDER", raising=False)
    at = start(monkeypatch, runs_dir, "genre")
    at.text_input(key="runs_root").set_value("/").run()
    assert_clean(at)
    assert any("only opens trained models under" in e.value for e in at.sidebar.error)
    assert any("Choose a trained model" in i.value for i in at.main.info)
    at.switch_page("pages/experiments.py").run()
    assert not at.exception and not at.dataframe


@pytest.mark.parametrize("damage, message", [
    ("corrupt", "unreadable model card"),
    ("incomplete", "is incomplete: missing"),
])
def test_a_broken_run_gives_a_plain_message(tmp_path, genre_run, monkeypatch, damage, message):
    run = tmp_path / "broken"
    run.mkdir()
    if damage == "corrupt":
        (run / "card.json").write_text('{"task": ')
    else:
        shutil.copy(genre_run / "card.json", run / "card.json")
    at = start(monkeypatch, tmp_path)
    from artlab.report.csvsafe import md
    assert any(md(message) in e.value for e in at.error)  # the message quotes a folder: shown as text
    for page in PAGES:
        go(at, page)


# --- derived tables -------------------------------------------------------------------------------------------

def test_filter_gallery_semantics():
    from artlab.report.tables import filter_gallery
    df = pd.DataFrame({"id": list("abcd"), "true": ["x", "x", "y", "y"], "pred_finetuned": ["x", "y", "x", "y"],
                       "pred_knn": ["y", "y", "y", "x"], "finetuned_conf": [0.9, 0.8, 0.7, 0.6],
                       "knn_conf": [0.1, 0.9, 0.5, 0.4]})
    df["finetuned_wrong"] = df["pred_finetuned"] != df["true"]
    df["knn_wrong"] = df["pred_knn"] != df["true"]
    ids = lambda **kw: list(filter_gallery(df, **kw)["id"])  # noqa: E731
    assert ids(erred="any") == ["a", "b", "c", "d"]
    assert ids(erred="both") == ["b"]
    assert ids(erred="finetuned") == ["c"]
    assert ids(erred="knn") == ["a", "d"]
    assert ids(true="x", predicted="y", erred="all") == ["b"]
    assert ids(predicted="y", predicted_by="knn", erred="all") == ["b", "c", "a"]  # by the kNN's vote share
    assert ids(true="x", predicted="x", erred="finetuned") == []


def test_gallery_and_metrics_tables_from_a_real_run(genre_run):
    from artlab.report.tables import gallery_frame, metrics_frame
    from artlab.runfolder import Run
    run = Run.open(genre_run)
    g = gallery_frame(run.predictions(), run.paintings(), run.classes)
    assert len(g) == run.card["metrics"]["finetuned"]["n"] and g["title"].str.len().gt(0).all()
    assert g["finetuned_conf"].between(0, 1).all() and g["knn_conf"].between(0, 1).all()
    assert g["finetuned_wrong"].mean() == pytest.approx(1 - run.card["metrics"]["finetuned"]["accuracy"])
    table = metrics_frame(run.card)
    assert table.loc["accuracy"].tolist() == [run.card["metrics"]["finetuned"]["accuracy"],
                                              run.card["metrics"]["knn"]["accuracy"]]


# --- curation: flag a painting --------------------------------------------------------------------------------------

@pytest.fixture
def curated_runs(genre_run, demo_collection, tmp_path):
    """A runs folder holding a copy of the genre run that reads a collection of its own (decisions land there)."""
    from conftest import private_collection, private_run
    collection = private_collection(demo_collection, tmp_path / "collection")
    private_run(genre_run, collection, tmp_path / "runs" / "genre")
    return tmp_path / "runs", collection


def test_flag_a_painting_from_the_gallery(curated_runs, monkeypatch):
    from artlab.collection import curation
    from artlab.report.csvsafe import md
    runs, collection = curated_runs
    at = go(start(monkeypatch, runs, "genre"), "pages/misclassifications.py")
    pid = next(r.key for r in at.radio if r.key.startswith("flag_what_")).removeprefix("flag_what_")  # the first card
    at.radio(key=f"flag_what_{pid}").set_value("exclude")
    at.selectbox(key=f"flag_reason_{pid}").set_value("duplicate")
    at.text_area(key=f"flag_note_{pid}").input("=the same as another")
    at.button(key=f"flag_save_{pid}").click().run()
    assert_clean(at)
    rows = curation.read_decisions(collection)
    assert rows[["id", "action", "column", "value", "note"]].values.tolist() == [
        [pid, "exclude", "", "duplicate", "'=the same as another"]]
    assert any("red-badge" in m.value and "excluded \\(duplicate\\)" in m.value for m in at.markdown)
    assert any(md(f"{pid}): excluded (duplicate)") in s.value for s in at.success)  # “its title” (its id)
    assert any("1 correction since this model was trained" in w.value for w in at.sidebar.warning)
    assert any("artlab train --collection" in c.value and str(runs / "genre") in c.value for c in at.sidebar.code)

    at.selectbox(key="f_flag").set_value("flagged").run()  # the filter: only the flagged painting
    assert_clean(at)
    assert any(m.value.startswith("1 painting,") for m in at.markdown)
    assert at.button(key=f"undo_{pid}") is not None
    csv = at.get("download_button")
    assert csv, "the decisions table's download"
    at.button(key=f"undo_{pid}").click().run()
    assert_clean(at)
    assert list(curation.read_decisions(collection)["action"]) == ["exclude", "undo"]
    assert not any("red-badge" in m.value for m in at.markdown)


def test_relabel_a_sample_painting_on_classify(curated_runs, monkeypatch):
    from artlab.collection import curation
    runs, collection = curated_runs
    at = start(monkeypatch, runs, "genre")
    at.selectbox(key="sample").select_index(1).run()
    assert_clean(at)
    at.radio(key="flag_what_closer").set_value("set").run()  # the field of the chosen action appears
    assert not [s for s in at.selectbox if s.key == "flag_reason_closer"]  # and not the other's
    current = at.selectbox(key="flag_value_closer")
    other = next(o for o in current.options if o != "portrait")
    current.set_value(other)
    at.button(key="flag_save_closer").click().run()
    assert_clean(at)
    row = curation.read_decisions(collection).iloc[-1]
    assert (row["action"], row["column"], row["value"]) == ("set", "genre", other)
    assert any("blue-badge" in m.value and f"genre set to {other}" in m.value for m in at.markdown)


def test_flagging_unavailable_without_the_collection(curated_runs, monkeypatch):
    runs, collection = curated_runs
    shutil.rmtree(collection)
    at = go(start(monkeypatch, runs, "genre"), "pages/misclassifications.py")
    from artlab.report.csvsafe import md
    assert any(md(f"Flagging paintings is unavailable for this model: the collection folder {collection} is not "
                     "on this machine") in i.value for i in at.info)
    assert not [b for b in at.button if str(b.key).startswith("flag_save_")]


def test_the_model_card_in_words_for_a_shipped_run_and_a_small_hostile_one():
    """The "About this model" paragraphs come from the card alone: the shipped culture run reads as a curator would
    want it (classes, recipe, sizes, figures), and a card's strings reach the Markdown escaped."""
    from artlab.app.words import card_paragraphs, small_collection_warning, weights_caption
    card = json.loads((ROOT / "checkpoints" / "demo-culture" / "card.json").read_text())
    said = card_paragraphs(card)
    assert [p.split("**")[1] for p in said] == ["What it does.", "How it was built.", "What it learned from.",
                                                "How it was tested.", "How often it is right"]
    assert f"one of {len(card['task']['classes'])} culture classes" in said[0]
    sizes = card["task"]["split_sizes"]
    assert (f"{sizes['train']} to learn from, {sizes['val']} to decide when to stop, {sizes['test']} kept aside"
            in said[2])
    assert f"fine-tuned model {100 * card['metrics']['finetuned']['accuracy']:.0f}%" in said[4]
    assert weights_caption(card).startswith("Pretrained weights: ")
    n_test = card["metrics"]["finetuned"]["n"]
    assert (f"only {n_test} test paintings" in small_collection_warning(card)) == (n_test < 100)
    hostile = {**card, "method": "{label}<script>",
               "task": {**card["task"], "classes": ["*bold*", "[x](javascript:1)"]}}
    said = card_paragraphs(hostile)
    assert "*bold*" not in said[0] and "[x](javascript" not in said[0] and "{label}" not in said[1]
    big = {**card, "metrics": {**card["metrics"], "finetuned": {**card["metrics"]["finetuned"], "n": 1200}},
           "task": {**card["task"], "per_class": {c: {"train": 500} for c in card["task"]["classes"]}}}
    assert small_collection_warning(big) == ""


def test_search_the_gallery_and_the_map(runs_dir, genre_run, monkeypatch):
    """The same search on Misclassifications (the gallery) and the Culture map (the painting picker)."""
    meta = pd.read_csv(genre_run / "paintings.csv", dtype=str, keep_default_na=False)
    test = meta[meta["split"] == "test"]
    artist = next(a for a in test["artist"] if a.strip())
    word = artist.split()[-1]
    at = go(start(monkeypatch, runs_dir, "genre"), "pages/misclassifications.py")
    at.selectbox(key="f_erred").select("all").run()
    at.text_input(key="f_search").input(word).run()
    assert_clean(at)
    from artlab.app.search import match_paintings
    expected = int(match_paintings(test, word).sum())
    assert any(m.value.startswith(f"{expected} painting") for m in at.markdown)
    at.text_input(key="f_search").input("no such painting zzzz").run()
    assert any(i.value.startswith("No test painting matches") for i in at.info)
    go(at, "pages/culture_map.py")
    at.text_input(key="map_search").input(word).run()
    assert_clean(at)
    found = int(match_paintings(meta, word).sum())  # the map holds every labelled painting of the run
    assert any(c.value.startswith(f"{found} of ") for c in at.caption)
    assert len(at.selectbox(key="map_pick").options) == found  # a new search picks its first match
    assert at.selectbox(key="map_pick").value in set(match_paintings(meta, word).to_numpy().nonzero()[0])
