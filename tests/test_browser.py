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
    page.get_by_text(re.compile("Both models say|The models disagree|are split")).wait_for(timeout=180_000)
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
    # only the chosen action's field: relabelling shows the class, not the reason, and back
    popover.get_by_text("Give it another label").click()
    popover.get_by_text(re.compile("if another")).wait_for()
    settle(page)
    assert popover.get_by_text("Why leave it out?").filter(visible=True).count() == 0
    popover.get_by_text("Leave it out of training").click()
    popover.get_by_text("Why leave it out?").wait_for()
    settle(page)
    assert popover.get_by_text(re.compile("if another")).filter(visible=True).count() == 0
    popover.get_by_label("Note (optional)").fill("a photograph of the frame")
    popover.screenshot(path=str(ARTIFACTS / "4-flag-form.png"))
    popover.get_by_role("button", name=re.compile("Save the decision")).click()
    settle(page)
    page.get_by_text("excluded (not a painting)").first.wait_for(timeout=30_000)
    rows = read_decisions(collection)
    assert rows[["action", "value", "note"]].values.tolist() == [["exclude", "not a painting",
                                                                  "a photograph of the frame"]]
    assert page.get_by_text(f"({rows['id'][0]}): excluded (not a painting)").count() == 1  # named by its title


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


# --- the page fits: cards with heat maps open, the sidebar's first view ----------------------------------------------

SCREEN = {"width": 1440, "height": 900}


def test_cards_with_heat_maps_fit_and_the_sidebar_fits_one_screen(server, page):
    """On Misclassifications, two cards' heat maps open: no picture is wider than its card. On a 1440 x 900 screen
    the sidebar's first view (menu, folder, model, the short "About this model") needs no scrolling."""
    browser = page.context.browser
    page = browser.new_page(viewport=SCREEN)
    try:
        page.goto(f"{server['url']}/misclassifications")
        page.get_by_role("heading", name="Where the models go wrong").wait_for(timeout=120_000)
        settle(page)
        more = page.get_by_text("More about this model")
        more.wait_for()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "7-sidebar-first-view.png"))
        # the model's card, from the menu to "More about this model", within one screen (a notice of corrections
        # made since the model was trained may follow it)
        bottom = more.bounding_box()["y"] + more.bounding_box()["height"]
        assert bottom <= SCREEN["height"], f"the sidebar's first view ends at {bottom:.0f} px"
        for i in range(2):
            page.get_by_role("button", name=re.compile("Where did they look")).first.click()
            page.get_by_role("button", name=re.compile("Hide the heat maps")).nth(i).wait_for(timeout=180_000)
            settle(page)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "7-misclassifications-heat-maps.png"), full_page=True)
        cards, overflow = page.evaluate("""() => {
            // a card: the innermost block that holds a painting's "true:" line (a bordered st.container)
            const blocks = [...document.querySelectorAll('[data-testid="stVerticalBlock"]')]
                .filter(b => b.innerText.includes('true:'));
            const cards = blocks.filter(b => !blocks.some(o => o !== b && b.contains(o)));
            const out = [];
            let images = 0;
            for (const card of cards) {
                const box = card.getBoundingClientRect();
                for (const img of card.querySelectorAll('[data-testid="stImage"] img')) {
                    images += 1;
                    const r = img.getBoundingClientRect();
                    if (r.left < box.left - 1 || r.right > box.right + 1) out.push([r.width, box.width]);
                }
            }
            return [[cards.length, images], out];
        }""")
        assert cards[0] >= 2 and cards[1] >= cards[0] + 4, cards  # the heat maps of two cards among the pictures
        assert overflow == [], f"pictures wider than their card: {overflow}"
    finally:
        page.close()


# --- no data string reaches the page as markdown (issue 25, defect 3) -----------------------------------------------

class Beacons:
    """A local HTTP server that records every request: a crafted field that a browser renders as an image or a link
    it follows would reach it."""

    def __init__(self):
        import http.server
        import threading
        self.requests: list[str] = []
        seen = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the stdlib's name
                seen.append(self.path)
                self.send_response(404)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def crafted(self, n: str) -> str:
        """Markdown image, raw HTML image and a colour directive, all pointing here."""
        return (f"![x](http://127.0.0.1:{self.port}/beacon-{n}.png) <img src=\"http://127.0.0.1:{self.port}/"
                f"html-{n}.png\"> :red[{n}] www.example.com example.com")

    def stop(self):
        self.httpd.shutdown()


def no_crafted_images(page, name: str) -> None:
    """No picture on the page comes from a crafted field (one whose address would miss the beacon server: a folder
    name's '\\' may be read as a path on the app's own server)."""
    sources = page.evaluate("() => [...document.querySelectorAll('img')].map(i => i.src)")
    assert not [s for s in sources if "beacon-" in s or "html-" in s], (name, sources)


def craft_run(run: Path, out: Path, beacons: Beacons, checksum: bool = False) -> tuple[Path, str, str]:
    """A copy of ``run`` whose data strings are crafted: the card's collection source and deviations, one class name
    (in every file that names it), the test paintings' titles and artists, and with ``checksum`` the weights'
    sha256 (which the app then quotes in an error box: the weights no longer match). Returns (run, the crafted
    class, a crafted title)."""
    import shutil
    import numpy as np
    import pandas as pd
    shutil.copytree(run, out, symlinks=False)
    card = json.loads((out / "card.json").read_text())
    old = card["task"]["classes"][0]
    new = f"{old} {beacons.crafted('class')}"

    def rename(value):
        if isinstance(value, dict):
            return {(new if k == old else k): rename(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rename(v) for v in value]
        return new if value == old else value
    card = rename(card)
    card["task"]["collection_source"] = beacons.crafted("source")
    card["deviations"] = [beacons.crafted("deviation")]
    weights = card["backbone"].get("weights") or {}
    if checksum and isinstance(weights, dict):
        weights["sha256"] = beacons.crafted("sha")
        card["backbone"]["weights"] = weights
    (out / "card.json").write_text(json.dumps(card))
    geo = out / "geometry.json"
    geometry = rename(json.loads(geo.read_text()))
    geometry["top_quartile"] = [[new if x == old else x for x in row] for row in geometry.get("top_quartile", [])]
    geo.write_text(json.dumps(geometry))
    pred = pd.read_csv(out / "predictions.csv", dtype=str, keep_default_na=False)
    pred = pred.replace({old: new}).rename(columns={f"finetuned:{old}": f"finetuned:{new}", f"knn:{old}": f"knn:{new}"})
    pred.to_csv(out / "predictions.csv", index=False)
    meta = pd.read_csv(out / "paintings.csv", dtype=str, keep_default_na=False)
    meta = meta.replace({old: new})
    title = beacons.crafted("title")
    meta.loc[meta["split"] == "test", "title"] = title
    meta.loc[meta["split"] == "test", "artist"] = beacons.crafted("artist")
    meta.to_csv(out / "paintings.csv", index=False)
    emb = dict(np.load(out / "embeddings.npz", allow_pickle=False))
    for key in ("labels", "classes"):
        if key in emb:
            emb[key] = np.array([new if str(v) == old else str(v) for v in emb[key]])
    np.savez(out / "embeddings.npz", **emb)
    return out, new, title


def test_no_crafted_field_reaches_the_page_as_markdown(genre_run, demo_images, tmp_path_factory, page):
    """Every data string the hostile probe crafted (issue 25): the card's source, deviations and checksum, a class
    name, the test paintings' titles and artists, an upload's file name (a picture and a non-picture) and the run
    folder's name, each a markdown image, an HTML image and a colour directive aimed at a local server. Every page
    is loaded in a real browser; not one request reaches the server, no crafted address is a link."""
    browser = page.context.browser
    beacons = Beacons()
    runs = tmp_path_factory.mktemp("beacon_runs")
    # a folder name cannot hold '/': a browser reads '\' in an http address as '/'
    folder = f"run ![x](http:\\\\127.0.0.1:{beacons.port}\\beacon-folder.png) :red[folder]"
    craft_run(genre_run, runs / folder, beacons)
    craft_run(genre_run, runs / f"sha {folder}", beacons, checksum=True)
    server = serve(runs, runs.parent / "beacon-streamlit.log")
    try:
        page = browser.new_page(viewport={"width": 1440, "height": 2400})
        try:
            page.goto(server.url)
            page.get_by_role("heading", name="Classify a painting").wait_for(timeout=120_000)
            settle(page)
            # a sample painting (its crafted title and artist in the subheader), then two uploads beside it
            sample = page.locator('[data-testid="stSelectbox"]').filter(has_text="never saw while training")
            sample.click()
            page.get_by_role("option").nth(1).click()
            page.get_by_text(re.compile("Both models say|The models disagree|are split")).first.wait_for(
                timeout=180_000)
            settle(page)
            check(page, "8-beacons-sample")
            no_crafted_images(page, "sample")
            assert "beacon-title" in page.inner_text("body")
            picture = demo_images[0].read_bytes()
            name = f"![x](http:\\\\127.0.0.1:{beacons.port}\\beacon-upload.png) :red[upload]"
            page.locator('input[type="file"]').set_input_files([
                {"name": f"{name}.jpg", "mimeType": "image/jpeg", "buffer": picture},
                {"name": f"{name} bad.jpg", "mimeType": "image/jpeg", "buffer": b"not a picture"}])
            page.get_by_text(re.compile("Look closer at")).first.wait_for(timeout=180_000)
            settle(page)
            page.get_by_text("Show where each model looked").click()
            page.get_by_text("Warm colours", exact=False).first.wait_for(timeout=180_000)
            settle(page)
            check(page, "8-beacons-classify")
            no_crafted_images(page, "classify")
            assert "beacon-upload" in page.inner_text("body")
            for title in ("Where the models go wrong", "Culture map", "Training and experiments"):
                page.locator(NAV).get_by_text(title).click()
                page.get_by_role("heading", name=re.compile(title if title != "Culture map" else "Map of the"))\
                    .first.wait_for(timeout=60_000)
                settle(page)
                check(page, f"8-beacons-{title.split()[0].lower()}")
                no_crafted_images(page, title)
                hosts = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.host)")
                assert not [h for h in hosts if "example.com" in h or h.endswith(f":{beacons.port}")], hosts
            page.get_by_text("More about this model").click()
            settle(page)
            check(page, "8-beacons-card")
            no_crafted_images(page, "card")
            body = page.inner_text("body")
            assert "beacon-folder" in body and "beacon-class" in body and "beacon-source" in body
            # the run whose checksum is crafted: its card in the sidebar, and the error box that quotes it
            page.locator(NAV).get_by_text("Classify a painting").click()
            page.get_by_role("heading", name="Classify a painting").wait_for(timeout=60_000)
            settle(page)
            page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').click()
            page.get_by_role("option").nth(1).click()
            settle(page)
            sample = page.locator('[data-testid="stSelectbox"]').filter(has_text="never saw while training")
            sample.click()
            page.get_by_role("option").nth(1).click()
            page.locator('[data-testid="stAlertContentError"]').first.wait_for(timeout=180_000)
            settle(page)
            assert "weights ![x](http" in page.inner_text("body").replace("\u2060", "")  # quoted in part, as text
            page.screenshot(path=str(ARTIFACTS / "8-beacons-checksum.png"), full_page=True)
            no_crafted_images(page, "checksum")
            assert page.locator('[data-testid="stException"]').count() == 0
        finally:
            page.close()
    finally:
        server.stop()
        beacons.stop()
        # checked even when the page failed another check: a fetched beacon is the finding that matters most
        assert beacons.requests == [], f"the browser fetched {beacons.requests}"
