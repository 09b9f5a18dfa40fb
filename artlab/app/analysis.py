"""What the models say about a painting, cached (CAMs only on demand), and the geometry of a run's paintings:
nearest paintings, a chain between two, the map table."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import streamlit as st

from artlab.app.cache import per_run
from artlab.app.memory import APP_DECODE_BUDGET, decode_slot, release_memory
from artlab.app.runs import embeddings, load_predictor
from artlab.errors import ArtlabError, ImageError
from artlab.images import encode_jpeg, load_image
from artlab.report.geometry import nearest
from artlab.report.geometry import path_between as chain
from artlab.runfolder import MODELS, Run


def digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:16]


@per_run(max_entries=512)
def predict(run_path: str, name: str, data: bytes):
    """A Prediction of both models, or the plain message (str) saying why this file could not be read."""
    predictor = load_predictor(run_path)
    with decode_slot():
        result = predictor.predict_files([data], [name])[0]
    return str(result) if isinstance(result, ImageError) else result


@per_run(max_entries=128)
def explanations(run_path: str, name: str, data: bytes, method: str) -> dict:
    """CAMs of both models for this image: {"finetuned": {"cam", "crop", "label", ...}, "knn": {...}}."""
    from artlab.explain import cams as explain  # torch and grad-cam load on first use
    predictor = load_predictor(run_path)
    with decode_slot():
        image = predictor.load(data, name=name)  # decoded exactly as for the prediction
    # The kNN side takes the same CAM method on its similarity-to-neighbours target (gradcam there is "similarity").
    result = explain.explain_both(predictor, image, method=method, knn_method=method, name=name)
    del image
    out = {model: _plain(result[model], result["prediction"].classes) for model in MODELS}
    del result
    release_memory()
    return out


def _plain(explanation, classes: list[str]) -> dict:
    """What the page needs from an Explanation, as plain (picklable, cacheable) values."""
    target = getattr(explanation, "target", None)
    return {"cam": np.asarray(explanation.cam, dtype=np.float32), "crop": float(getattr(explanation, "crop", 1.0)),
            "view": str(getattr(explanation, "view", "centre")),
            "label": classes[target] if isinstance(target, (int, np.integer)) and 0 <= target < len(classes) else "",
            "similarity": getattr(explanation, "similarity", None)}


@per_run(max_entries=64)
def feature_maps(run_path: str, name: str, data: bytes) -> dict[str, dict]:
    """The channel-sum feature map of each model ({"cam": [0, 1] array, "crop": ...})."""
    from artlab.explain import cams as explain  # torch and grad-cam load on first use
    predictor = load_predictor(run_path)
    with decode_slot():
        image = predictor.load(data, name=name)
    crop = explain.crop_fraction(predictor.spec)
    return {model: {"cam": explain.feature_map(predictor, image, model=model).astype(np.float32), "crop": crop,
                    "view": predictor.cam_view}
            for model in MODELS}


@st.cache_data(show_spinner=False, max_entries=256)
def overlay(name: str, data: bytes, cam: np.ndarray, alpha: float, crop: float = 1.0, view: str = "centre") -> bytes:
    """The heat map laid over what the model saw (the centre square, margins dimmed; or the whole painting), as JPEG
    bytes."""
    from artlab.explain import cams as explain  # torch and grad-cam load on first use
    with decode_slot():
        image = load_image(data, name=name, budget=APP_DECODE_BUDGET)
    out = encode_jpeg(explain.overlay(image, cam, alpha=alpha, max_side=640, crop=crop, view=view), quality=88)
    del image
    release_memory()
    return out


METHOD_NAMES = {"gradcam": "Grad-CAM (the study's)", "gradcam++": "Grad-CAM++", "hirescam": "HiResCAM",
                "scorecam": "Score-CAM (slow)", "eigencam": "Eigen-CAM (no gradients)", "layercam": "LayerCAM"}
#: Score-CAM runs the network once per channel of the explained layer (1,280 for EfficientNet): about four minutes
#: for both models on a 2-core CPU, where the app's Predictor runs. The CLI offers it (`artlab explain`).
TOO_SLOW_FOR_THE_APP = ("scorecam",)


def method_name(method: str) -> str:
    return METHOD_NAMES.get(method, method)


def cam_methods() -> list[str]:
    """The CAM methods offered in the app: those that answer in seconds on a CPU."""
    from artlab.explain import cams as explain  # torch and grad-cam load on first use
    return [m for m in explain.METHODS if m not in TOO_SLOW_FOR_THE_APP]


@per_run(max_entries=64)
def _nearest(run_path: str, index: int, k: int) -> tuple[list[int], list[float]]:
    order, sims = nearest(embeddings(run_path)["embeddings"], index, k)
    return order.tolist(), sims.tolist()


def nearest_paintings(run_path: str, index: int, k: int = 8) -> tuple[list[int], list[float]]:
    """Rows of embeddings.npz nearest to row ``index`` (cosine), with their similarities."""
    return _nearest(run_path, int(index), int(k))


MAX_PATH_PAINTINGS = 6000  # the degrees-of-separation graph compares every pair of paintings


@per_run(max_entries=32)
def _path(run_path: str, start: int, goal: int, k: int) -> list[int]:
    emb = embeddings(run_path)["embeddings"]
    if len(emb) > MAX_PATH_PAINTINGS:
        raise ArtlabError(f"this run holds {len(emb)} paintings: too many to chain here "
                          f"(the limit is {MAX_PATH_PAINTINGS}).")
    return chain(emb, start, goal, k=k)


def path_between(run_path: str, start: int, goal: int, k: int = 6) -> list[int]:
    return _path(run_path, int(start), int(goal), int(k))


def path_steps(run_path: str, path: list[int], k: int = 6) -> list[str]:
    """Per step of a path: "near" (among the k nearest of the painting before) or "near of" (the painting before is
    among its own k nearest): ``report.geometry.step_kinds``."""
    from artlab.report.geometry import step_kinds
    return step_kinds(embeddings(run_path)["embeddings"], list(path), int(k))


@per_run(max_entries=8)
def map_table(run_path: str) -> pd.DataFrame:
    """One row per painting of embeddings.npz: id, label, split, title, artist, date, url, path, and UMAP x/y (NaN if
    absent)."""
    run = Run.open(run_path)
    emb = run.embeddings()
    df = pd.DataFrame({"id": emb["ids"].astype(str), "label": emb["labels"].astype(str),
                       "split": emb["split"].astype(str) if "split" in emb else ""})
    meta = run.paintings()
    if len(meta):
        df = df.merge(meta[[c for c in ("id", "title", "artist", "date", "url", "path") if c in meta.columns]],
                      on="id", how="left")
    for c in ("title", "artist", "date", "url", "path"):
        df[c] = df[c].fillna("") if c in df.columns else ""
    df["x"], df["y"] = np.nan, np.nan
    xy = run.umap()
    if xy is not None:
        df[["x", "y"]] = xy.reindex(df["id"]).to_numpy()
    return df
