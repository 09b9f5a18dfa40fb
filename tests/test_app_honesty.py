"""The app says how sure the models are: a prediction set in words on Classify, a notice for an image unlike the
paintings the models learned from, and the reliability diagram on Misclassifications (AppTest, headless)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from test_app import go, runs_dir, start, texts, upload  # noqa: F401 (runs_dir is a fixture)


def checkerboard() -> bytes:
    """A generated non-painting (no licence to check): a black-and-white checkerboard photographed by no one."""
    a = ((np.add.outer(np.arange(320) // 20, np.arange(320) // 20) % 2) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


def test_classify_says_the_set_and_flags_a_non_painting(runs_dir, demo_images, monkeypatch):  # noqa: F811
    at = start(monkeypatch, runs_dir, "genre")
    img = demo_images[0]
    upload(at, (img.name, img.read_bytes(), "image/jpeg"))
    body = texts(at)
    assert "paintings like the ones it was tested on, the true genre is in such a set" in body
    assert "for 9 in 10 paintings" in body
    at.select_slider(key="set_coverage").set_value(0.95).run()  # the curator chooses the coverage
    assert "for 19 in 20 paintings" in texts(at)
    assert not any("unlike the paintings" in str(w.value) for w in at.main.warning)  # a painting it knows
    upload(at, ("checkerboard.png", checkerboard(), "image/png"))
    assert any("unlike the paintings the models learned from" in str(w.value) for w in at.main.warning)
    assert "shares of its votes, not probabilities" in texts(at)
    upload(at, (img.name, img.read_bytes(), "image/jpeg"), ("checkerboard.png", checkerboard(), "image/png"))
    marks = [str(c.value) for c in at.main.caption if "unlike the training paintings" in str(c.value)]
    assert len(marks) == 1 and "checkerboard" in marks[0]  # the batch marks the one unfamiliar picture


def test_misclassifications_draws_the_reliability_diagram(runs_dir, monkeypatch):  # noqa: F811
    at = go(start(monkeypatch, runs_dir, "genre"), "pages/misclassifications.py")
    charts = at.get("plotly_chart")
    assert len(charts) == 3  # two confusion matrices and the reliability diagram
    assert any("reliability" in str(c.proto) or "stated confidence" in str(c.proto) for c in charts)
    body = texts(at)
    assert "Can its confidence be taken at its word?" in body
    assert "before calibration" in body and "Prediction sets aim to contain the true genre" in body
