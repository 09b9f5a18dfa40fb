"""The pictures of the curator's guide (docs/guide.md), taken in a real browser on the shipped demo runs.

The app is served as tests/test_browser.py serves it (`streamlit run`, Debian's Chromium through Playwright), on
copies of checkpoints/demo-genre and checkpoints/demo-culture that read a private copy of the demo collection (the
flag picture records a decision; the shipped runs and data/ stay untouched). Each picture is a part of a page, clipped
to what the guide explains, saved as a small JPEG in tests/artifacts/guide/. `make guide-pictures` runs this test and
copies them to docs/guide/, where the guide shows them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _shipped import shipped_runs
from artlab.testing.server import serve
from test_browser import CHROMIUM_ARGS, settle

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
PICTURES = ROOT / "tests" / "artifacts" / "guide"
CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 2400}  # tall: Streamlit scrolls its main area, not the page
MAX_BYTES = 250_000  # a guide picture stays small in the repository
#: The anchors of the Classify page's trust pictures: the prediction set's slider, the unfamiliar notice.
SET = re.compile(r"Its genre set:")
UNFAMILIAR = re.compile(r"unlike the paintings the models learned from")


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is absent: `apt-get install -y chromium` (or `make chromium`) to run this test")
    from conftest import private_collection, private_run
    runs = tmp_path_factory.mktemp("guide_runs")
    collection = private_collection(request.getfixturevalue("demo_collection"), runs.parent / "guide_collection")
    for run in shipped_runs():
        private_run(run, collection, runs / run.name)
    try:
        server = serve(runs, runs.parent / "streamlit.log")
    except RuntimeError as exc:
        pytest.fail(str(exc))
    request.addfinalizer(server.stop)
    return {"url": server.url, "log": server.log, "runs": runs, "collection": collection}


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser.new_page(viewport=VIEWPORT)
        finally:
            browser.close()


def shoot(page, name: str, anchor, height: int, above: int = 24) -> Path:
    """A JPEG of the main area from just above ``anchor`` (the first element showing that text) down ``height``
    pixels, at most to the bottom of the window."""
    found = page.get_by_text(anchor).first
    found.wait_for(timeout=120_000)
    found.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    box, main = found.bounding_box(), page.locator('[data-testid="stMain"]').bounding_box()
    top = max(0, box["y"] - above)
    clip = {"x": main["x"], "y": top, "width": main["width"], "height": min(height, VIEWPORT["height"] - top)}
    return save(page, name, clip)


def save(page, name: str, clip: dict) -> Path:
    PICTURES.mkdir(parents=True, exist_ok=True)
    path = PICTURES / f"{name}.jpg"
    page.screenshot(path=str(path), type="jpeg", quality=72, clip=clip)
    return path


def clean(page, where: str) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, where
    assert "Traceback" not in page.inner_text("body"), where


def choose_run(page, name: str) -> None:
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name=name, exact=True).click()
    settle(page)


def go(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title).click()
    page.get_by_role("heading", name=title).wait_for(timeout=60_000)
    settle(page)


def test_guide_pictures(server, page, tmp_path):
    taken: list[Path] = []
    page.goto(server["url"])
    page.get_by_role("heading", name="Classify a painting").wait_for(timeout=120_000)
    settle(page)
    choose_run(page, "demo-genre")

    # a test portrait (never trained on, so its neighbours are other paintings) that both models get right
    run = server["runs"] / "demo-genre"
    paintings = pd.read_csv(run / "paintings.csv", dtype=str, keep_default_na=False).set_index("id")
    answers = pd.read_csv(run / "predictions.csv", dtype=str, keep_default_na=False)
    right = answers[(answers["true"] == "portrait") & (answers["pred_finetuned"] == "portrait")
                    & (answers["pred_knn"] == "portrait")]
    test = paintings.loc[(right if len(right) else answers)["id"].iloc[0]]
    upload = tmp_path / "a-portrait.jpg"
    upload.write_bytes((server["collection"] / test["path"]).read_bytes())
    page.locator('input[type="file"]').set_input_files([str(upload)])
    page.get_by_text(re.compile("Both models|The models disagree|models (say|agree)")).first.wait_for(timeout=180_000)
    settle(page)
    clean(page, "classify")
    taken.append(shoot(page, "1-two-answers", re.compile("Both models|The models disagree|models (say|agree)"), 520))
    taken.append(shoot(page, "3-neighbours", re.compile("paintings the baseline found most similar"), 470))
    taken.append(shoot(page, "4-prediction-set", SET, 330, above=120))
    page.get_by_text("Show where each model looked").click()
    page.get_by_text("Warm colours", exact=False).first.wait_for(timeout=180_000)
    settle(page)
    clean(page, "heat maps")
    taken.append(shoot(page, "2-heat-map", "Show where each model looked", 760))

    # a generated checkerboard (licence-free, no painting at all): the unfamiliar notice
    from PIL import Image
    board = ((np.add.outer(np.arange(320) // 20, np.arange(320) // 20) % 2) * 255).astype(np.uint8)
    texture = tmp_path / "a-checkerboard.png"
    Image.fromarray(board).convert("RGB").save(texture)
    page.goto(server["url"])  # a new session: the checkerboard alone, not beside the portrait
    page.get_by_role("heading", name="Classify a painting").wait_for(timeout=120_000)
    settle(page)
    choose_run(page, "demo-genre")
    page.locator('input[type="file"]').set_input_files([str(texture)])
    page.get_by_text(UNFAMILIAR).first.wait_for(timeout=180_000)
    settle(page)
    clean(page, "unfamiliar")
    taken.append(shoot(page, "4-unfamiliar", UNFAMILIAR, 330, above=30))

    go(page, "Where the models go wrong")
    clean(page, "misclassifications")
    taken.append(shoot(page, "5-confusion-matrix", "What each model mistakes for what", 620))
    page.get_by_role("button", name=re.compile("Flag this painting")).first.click()
    popover = page.locator('[data-testid="stPopoverBody"]')
    popover.wait_for(timeout=30_000)
    page.wait_for_timeout(800)
    box = popover.bounding_box()
    taken.append(save(page, "7-flag", {"x": max(0, box["x"] - 16), "y": max(0, box["y"] - 16),
                                       "width": box["width"] + 32, "height": box["height"] + 32}))
    page.keyboard.press("Escape")

    choose_run(page, "demo-culture")
    go(page, "Culture map")
    clean(page, "culture map")
    taken.append(shoot(page, "6-culture-map", re.compile("^Culture map$"), 900))
    taken.append(shoot(page, "6-nearest-paintings", re.compile("paintings the model finds most like it"), 480))
    assert "Traceback" not in server["log"].read_text()

    names = {p.stem for p in taken}
    assert names >= {"1-two-answers", "2-heat-map", "3-neighbours", "4-prediction-set", "4-unfamiliar",
                     "5-confusion-matrix", "6-culture-map", "6-nearest-paintings", "7-flag"}
    for path in taken:
        assert 5_000 < path.stat().st_size <= MAX_BYTES, (path.name, path.stat().st_size)
