"""Runs checked on open: a broken card or array is one plain line naming the file and field; the others still work."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from artlab.cli import main
from artlab.errors import RunError
from artlab.runfolder import Run


@pytest.fixture
def run_copy(genre_run, tmp_path):
    dst = tmp_path / "runs" / "copy"
    shutil.copytree(genre_run, dst)
    return dst


def edit_card(run, change):
    card = json.loads((run / "card.json").read_text())
    change(card)
    (run / "card.json").write_text(json.dumps(card))


@pytest.mark.parametrize("change, words", [
    (lambda c: c.pop("task"), "field 'task' is missing"),
    (lambda c: c["task"].update(classes="portrait"), "field 'task.classes' must be a list"),
    (lambda c: c["task"].update(classes=["a"]), "at least two class names"),
    (lambda c: c["backbone"].update(name=7), "field 'backbone.name' must be a string"),
    (lambda c: c["metrics"]["finetuned"].update(accuracy="high"), "'metrics.finetuned.accuracy' must be a number"),
    (lambda c: c.update(method="magic"), "field 'method' is 'magic'"),
    (lambda c: c["task"].update(label="**x** ![i](http://evil/x.png)"), "field 'task.label'"),
])
def test_bad_cards_are_one_line_naming_file_and_field(run_copy, capsys, change, words):
    before = (run_copy / "model.pt").read_bytes()
    edit_card(run_copy, change)
    with pytest.raises(RunError, match="card.json: "):
        Run.open(run_copy)
    assert main(["evaluate", str(run_copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and "card.json" in err
    assert (run_copy / "model.pt").read_bytes() == before


def test_card_that_is_not_an_object_or_not_json(run_copy, capsys):
    (run_copy / "card.json").write_text("[1, 2]")
    assert main(["evaluate", str(run_copy)]) == 2
    assert "must be a JSON object" in capsys.readouterr().err
    (run_copy / "card.json").write_text("{\"task\": ")
    assert main(["predict", str(run_copy), "x.jpg"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unreadable model card" in err


@pytest.mark.parametrize("bad", ["nan", "inf", "rows"])
def test_nan_and_shape_in_embeddings_are_refused(run_copy, bad):
    with np.load(run_copy / "embeddings.npz") as z:
        arrays = {k: z[k] for k in z.files}
    if bad == "rows":
        arrays["ids"] = arrays["ids"][:-1]
    else:
        arrays["embeddings"][3, 5] = np.nan if bad == "nan" else np.inf
    np.savez(run_copy / "embeddings.npz", **arrays)
    with pytest.raises(RunError, match="embeddings.npz: array '(embeddings|ids)'"):
        Run.open(run_copy).embeddings()


def test_nan_in_knn_refused_and_pickled_arrays_one_line(run_copy, capsys):
    with np.load(run_copy / "knn.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["embeddings"][0, 0] = np.nan
    np.savez(run_copy / "knn.npz", **arrays)
    with pytest.raises(RunError, match="knn.npz: array 'embeddings' holds NaN"):
        Run.open(run_copy).knn()
    arrays["embeddings"] = np.array([{"a": 1}], dtype=object)
    np.savez(run_copy / "knn.npz", **arrays)
    assert main(["predict", str(run_copy), "x.jpg"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "knn.npz" in err


def test_a_broken_run_is_listed_as_broken_and_the_others_still_work(genre_run, run_copy, monkeypatch):
    from artlab import app
    shutil.copytree(genre_run, run_copy.parent / "good")
    edit_card(run_copy, lambda c: c.pop("task"))
    monkeypatch.setenv("ARTLAB_RUNS", str(run_copy.parent))
    table = app.runs_overview(str(run_copy.parent)).set_index("run")
    assert table.loc["good", "status"] == "ok" and table.loc["good", "fine-tuned accuracy"] > 0
    assert table.loc["copy", "status"].startswith("broken: ") and "'task' is missing" in table.loc["copy", "status"]


def test_pages_show_one_line_for_a_broken_card(genre_run, run_copy, monkeypatch):
    from streamlit.testing.v1 import AppTest
    edit_card(run_copy, lambda c: c["task"].pop("classes"))
    monkeypatch.setenv("ARTLAB_RUNS", str(run_copy.parent))
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    for page in ("classify", "misclassifications", "culture_map", "experiments"):
        at = AppTest.from_file(str(root / "app.py"), default_timeout=120)
        at.session_state["runs_root"] = str(run_copy.parent)
        at.run()
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, [e.message for e in at.exception])
        from artlab.report.csvsafe import md
        assert any(md("field 'task.classes' is missing") in e.value for e in at.error), page  # shown as text
