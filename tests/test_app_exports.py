"""The app offers each figure it shows as a download made by `artlab figures`' functions, a painting's sheet on
Classify, and the paper beside the run on the Experiments page (headless, on the shipped demo runs)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).parents[1]
APP = ROOT / "app.py"


@pytest.fixture(scope="module")
def shipped_root(demo_collection, tmp_path_factory):
    from conftest import private_run
    root = tmp_path_factory.mktemp("exports")
    for name in ("demo-genre", "demo-culture"):
        private_run(ROOT / "checkpoints" / name, demo_collection, root / name)
    (root / "grid").mkdir()
    pd.DataFrame([{"name": "densenet121-partial", "row": "published", "backbone": "densenet121", "top1": 0.81,
                   "paper_top1": 0.8933}]).to_csv(root / "grid" / "results.csv", index=False)
    return root


def _start(monkeypatch, root: Path, run: str) -> AppTest:
    monkeypatch.setenv("ARTLAB_RUNS", str(root))
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    at.selectbox(key="run_path").select(str(root / run)).run()
    return at


def _clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not [e.value for e in at.error], [e.value for e in at.error]


def _buttons(at: AppTest) -> list[str]:
    return [b.proto.label for b in at.get("download_button")]


def test_experiments_page_puts_the_paper_beside_the_run_and_offers_the_figures(shipped_root, monkeypatch):
    at = _start(monkeypatch, shipped_root, "demo-genre")
    at.switch_page("pages/experiments.py").run()
    _clean(at)
    assert "The paper beside this run" in [s.value for s in at.subheader]
    beside = next(d.value for d in at.dataframe if "published" in d.value.columns and "measure" in d.value.columns)
    assert beside.loc[0, "published"] == 0.8933 and beside.loc[0, "model"] == "fine-tuned"
    assert any("departures from the study" in e.proto.label for e in at.expander)
    labels = _buttons(at)
    assert {"PNG", "SVG", "CSV", "Markdown", "LaTeX"} <= set(labels)
    grids = [d.value for d in at.dataframe if "published" in d.value.columns and "row" in d.value.columns]
    assert any((g["row"] == "densenet121-partial").any() and (g["this run"] == 0.81).any() for g in grids)


def test_misclassifications_and_culture_map_offer_their_figures(shipped_root, monkeypatch):
    at = _start(monkeypatch, shipped_root, "demo-culture")
    at.switch_page("pages/misclassifications.py").run()
    _clean(at)
    assert _buttons(at).count("PNG") == 2, "both confusion matrices"
    at.selectbox(key="f_erred").select("all").run()
    next(b for b in at.button if b.key.startswith("why_")).click().run()
    _clean(at)
    assert _buttons(at).count("PNG") == 3, "the painting beside both heat maps (GenRe Figs. 4-11)"
    at.switch_page("pages/culture_map.py").run()
    _clean(at)
    assert _buttons(at).count("SVG") >= 2, "the class graph and the chord diagram"


def test_classify_offers_the_paintings_sheet(shipped_root, demo_collection, monkeypatch):
    at = _start(monkeypatch, shipped_root, "demo-genre")
    image = sorted((demo_collection / "images").glob("*.jpg"))[0]
    at.file_uploader(key="uploads").set_value([(image.name, image.read_bytes(), "image/jpeg")]).run()
    _clean(at)
    labels = _buttons(at)
    assert "This painting on one sheet (PNG)" in labels and "This painting on one sheet (PDF)" in labels
