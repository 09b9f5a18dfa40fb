"""One painting's analysis on one sheet, from a run's Predictor: both models' answers, their heat maps (the same CAM
pass as ``artlab explain`` and the app), the neighbours' thumbnails from the run folder, and the painting's
provenance when it is a painting of the run's collection. The drawing is ``artlab.report.sheet``."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
from PIL import Image

from artlab.explain.cams import explain_both, overlay
from artlab.report.sheet import SheetPrediction, sheet_figure

PROVENANCE_COLUMNS = ("title", "artist", "date", "url", "license")


def provenance_of(run, painting_id: str | None) -> dict[str, str]:
    """title, artist, date, url and licence of a painting of the run (paintings.csv), as far as known."""
    meta = run.paintings()
    if painting_id is None or not len(meta) or "id" not in meta.columns:
        return {}
    rows = meta[meta["id"].astype(str) == str(painting_id)]
    if rows.empty:
        return {}
    row = rows.iloc[0]
    return {c: str(row[c]) for c in PROVENANCE_COLUMNS if c in row.index and str(row[c]) not in ("", "nan")}


def painting_id_of(run, file: str | Path) -> str | None:
    """The id of the run's painting stored at ``file`` in its collection, or None (an outside file)."""
    root, meta = run.collection, run.paintings()
    if root is None or not len(meta) or "path" not in meta.columns:
        return None
    target = Path(file).resolve()
    for pid, rel in zip(meta["id"].astype(str), meta["path"].astype(str)):
        if (root / rel).resolve() == target:
            return pid
    return None


def _neighbours(run, pred) -> list[tuple[str, np.ndarray]]:
    out = []
    for n in pred.neighbours:
        thumb = run.thumbnail(n.id)
        if thumb is None:
            continue
        with Image.open(thumb) as im:
            picture = np.asarray(im.convert("RGB"))
        out.append((f"{n.label} · {(n.title or n.id)[:40]} · similarity {n.similarity:.2f}", picture))
    return out


def make_sheet(predictor, image: Image.Image, name: str, provenance: Mapping[str, str] | None = None,
               method: str = "gradcam", prediction: SheetPrediction | Mapping | None = None):
    """The sheet's Figure for one decoded painting. ``prediction`` replaces the predictor's own answer (a caller that
    adds a calibrated prediction set passes it here, as a SheetPrediction or a dict of its fields)."""
    result = explain_both(predictor, image, method=method, name=name)
    pred, ft, kn = result["prediction"], result["finetuned"], result["knn"]
    if prediction is None:
        prediction = SheetPrediction.from_prediction(pred, predictor.run.label)
    shown = image.copy()
    shown.thumbnail((900, 900))
    return sheet_figure(np.asarray(shown.convert("RGB")), prediction,
                        np.asarray(overlay(image, ft.cam, crop=ft.crop, view=ft.view, max_side=700)),
                        np.asarray(overlay(image, kn.cam, crop=kn.crop, view=kn.view, max_side=700)),
                        _neighbours(predictor.run, pred), predictor.run.name,
                        {"file": Path(name).name, **(provenance or {})})
