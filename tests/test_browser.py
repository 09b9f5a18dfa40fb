"""The app in a real browser: `streamlit run app.py` on a free local port, driven by Debian's Chromium (Playwright).

A deep link first (a fresh server must still draw the frame around a page), then Classify with an uploaded painting
and its heat maps, then every other page. On each: no Streamlit exception box, no "Traceback" anywhere, and a
screenshot in tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from artlab.testing.server import serve

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
BUSY = '[data-testid="stStatusWidget"]'


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is absent: `apt-get install -y chromium` (or `make chromium`) to run this test")
    from conftest import private_collection, private_run
    genre, culture = request.getfixturevalue("genre_run"), request.getfixturevalue("culture_run")
    runs = tmp_path_factory.mktemp("browser_runs")
    (runs / "genre").symlink_to(genre, target_is_directory=True)
    # the run the sidebar starts with reads a collection of its own: the test flags one of its paintings
    collection = private_collection(request.getfixturevalue("demo_collection"), runs.parent / "browser_collection")
    private_run(culture, collection, runs / "culture")
    try:
        server = serve(runs, runs.parent / "streamlit.log")
    except RuntimeError as exc:
        pytest.fail(str(exc))
    request.addfinalizer(server.stop)
    url, log = server.url, server.log
    first = sorted(runs.iterdir())[0]  # the run the sidebar starts with
    classes = json.loads((first / "card.json").read_text())["task"]["classes"]
    return {"url": url, "log": log, "classes": classes, "collection": collection}


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser.new_page(viewport={"width": 1440, "height": 2400})
        finally:
            browser.close()


def settle(page, timeout: float = 180_000) -> None:
    """Wait until Streamlit has finished the current run (its 'running' indicator gone) and drawn it (tables and
    charts load their code lazily; pictures come over HTTP)."""
    page.wait_for_timeout(600)
    page.locator(BUSY).wait_for(state="detached", timeout=timeout)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1500)


def check(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert page.locator('[data-testid="stException"]').count() == 0, name
    body = page.inner_text("body")
    assert "Traceback" not in body, name
    assert "Something went wrong" not in body, name


NAV = '[data-testid="stSidebarNav"]'
LEGACY_NAV = ("app", "classify", "culture map", "experiments", "misclassifications")  # pages/ as Streamlit lists it


def check_navigation(page, name: str) -> None:
    """The app's own menu, never Streamlit's legacy one for the pages/ folder, and no "Page not found" dialog."""
    nav = page.locator(NAV)
    nav.wait_for(timeout=120_000)
    entries = [line.strip() for line in nav.inner_text().splitlines() if line.strip()]
    assert "Classify a painting" in entries and "Culture map" in entries, (name, entries)
    assert not set(entries) & set(LEGACY_NAV), (name, entries)
    assert "Page not found" not in page.inner_text("body"), name


def test_app_in_a_real_browser(server, page, demo_images):
    # A deep link as the very first request: from its first paint the page comes inside the frame (the app's menu,
    # the sidebar, the chosen model), as every later one.
    page.goto(f"{server['url']}/culture_map")
    check_navigation(page, "0-first-load")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "0-first-load.png"), full_page=True)
    page.get_by_role("heading", name="Culture map").wait_for(timeout=120_000)
    settle(page)
    page.get_by_text("About this model").first.wait_for()
    check_navigation(page, "1-culture-map")
    check(page, "1-culture-map")

    # /classify, the page's file name, opens the Classify page (served at the root) rather than "Page not found".
    page.goto(f"{server['url']}/classify")
    page.get_by_role("heading", name="Classify a painting").wait_for(timeout=60_000)
    settle(page)
    check_navigation(page, "classify-address")

    page.goto(server["url"])
    page.get_by_role("heading", name="Classify a painting").wait_for(timeout=60_000)
    settle(page)
    page.locator('input[type="file"]').set_input_files([str(demo_images[0])])
    page.get_by_text(re.compile("Both models say|The models disagree")).wait_for(timeout=180_000)
    settle(page)
    assert page.locator('[data-testid="stImage"] img').count() >= 2  # the painting and its neighbours
    check(page, "2-classify")

    page.get_by_text("Show where each model looked").click()
    page.get_by_text("Warm colours", exact=False).first.wait_for(timeout=180_000)
    settle(page)
    check(page, "3-classify-heat-maps")

    for title, name in (("Where the models go wrong", "4-misclassifications"),
                        ("Training and experiments", "6-experiments")):
        page.locator('[data-testid="stSidebarNav"]').get_by_text(title).click()
        page.get_by_role("heading", name=title).wait_for(timeout=60_000)
        settle(page)
        check(page, name)
        if name == "4-misclassifications":
            flag_first_painting(page, server["collection"])
            check(page, "4-misclassifications-flagged")
            click_first_cell(page, server["classes"])
            check(page, "5-misclassifications-cell")
    assert "Traceback" not in server["log"].read_text()


def flag_first_painting(page, collection: Path) -> None:
    """The first gallery card's flag button: leave it out (the first reason, not a painting, with a note); its badge
    shows, and curation.csv has the row."""
    from artlab.collection.curation import read_decisions
    page.get_by_role("button", name=re.compile("Flag this painting")).first.click()
    popover = page.locator('[data-testid="stPopoverBody"]')
    popover.get_by_text("Why leave it out?").wait_for()
    popover.get_by_label("Note (optional)").fill("a photograph of the frame")
    popover.get_by_role("button", name=re.compile("Save the decision")).click()
    settle(page)
    page.get_by_text("excluded (not a painting)").first.wait_for(timeout=30_000)
    rows = read_decisions(collection)
    assert rows[["action", "value", "note"]].values.tolist() == [["exclude", "not a painting",
                                                                  "a photograph of the frame"]]
    assert page.get_by_text(f"Painting {rows['id'][0]}: excluded (not a painting)").count() == 1


def click_first_cell(page, classes: list[str]) -> None:
    """A click on the baseline's confusion matrix, top-left cell, sets the gallery's filters to that cell."""
    assert page.get_by_text("the fine-tuned model's most confident answers first").count() == 1
    matrix = page.locator(".nsewdrag").nth(1)  # the second matrix's plotting area
    matrix.scroll_into_view_if_needed()  # the page may have scrolled down to the gallery (flagging a painting)
    settle(page)
    box = matrix.bounding_box()
    n = len(classes)
    x, y = box["x"] + box["width"] * 0.5 / n, box["y"] + box["height"] * 0.5 / n
    page.mouse.move(x, y)
    page.mouse.click(x, y)
    settle(page)
    # the gallery now follows the baseline's answers for that cell (the default is the fine-tuned model's)
    page.get_by_text(re.compile(r"kNN baseline's most confident answers first|No test painting matches")).wait_for()
