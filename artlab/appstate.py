"""App-side cached loaders: the one artlab module that imports Streamlit.

Loaders are keyed on the run folder *and* the modification time of its card.json, so a run retrained in place is read
afresh. ``st.cache_resource`` holds one Predictor per run, shared by every session (it carries its own lock for
explanations); ``st.cache_data`` holds the tables and arrays derived from a run. No widget is created inside a cached
function. ``run_safely`` is how pages call into artlab: a user-facing ArtlabError becomes ``st.error(message)``; an
unexpected exception is logged with its traceback and shown as one plain line.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from . import tables
from .errors import ArtlabError, ImageError, RunError
from .images import encode_jpeg, fit_within, load_image
from .runs import Run, find_runs

log = logging.getLogger("artlab.app")

RUNS_ENV = "ARTLAB_RUNS"
APP_ROOT = Path(__file__).resolve().parent.parent
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "tif", "tiff"]
#: Bytes one decode of an upload may take in the served app (eight visitors at once stay within a few GB; JPEGs
#: larger than this decode at a reduced scale, other formats are refused with a plain line).
APP_DECODE_BUDGET = 256 << 20
DEFAULTS = {"cam_method": "gradcam", "cam_alpha": 0.5, "open_cams": []}


# --- state and errors ---------------------------------------------------------------------------------------------

ROOTS_ENV, ANY_FOLDER_ENV, ANY_FOLDER_FLAG = "ARTLAB_ROOTS_FILE", "ARTLAB_ALLOW_ANY_FOLDER", "--allow-any-folder"
#: Bounds on what the app lists under a root: folders looked at, and results.csv files found (at most this deep).
MAX_LISTED, MAX_RESULTS, RESULTS_DEPTH = 500, 50, 3


def default_runs_root() -> Path:
    """``$ARTLAB_RUNS`` if set (its first folder), else ``checkpoints/`` beside app.py."""
    env = os.environ.get(RUNS_ENV)
    return Path(env.split(os.pathsep)[0]).expanduser() if env else APP_ROOT / "checkpoints"


def allowed_roots() -> list[Path]:
    """The folders the app may open runs from: checkpoints/, every folder of ``$ARTLAB_RUNS`` (os.pathsep-separated)
    and the ``roots = [...]`` of the TOML file named by ``$ARTLAB_ROOTS_FILE``."""
    roots = [APP_ROOT / "checkpoints"]
    roots += [Path(p).expanduser() for p in os.environ.get(RUNS_ENV, "").split(os.pathsep) if p]
    config = os.environ.get(ROOTS_ENV)
    if config:
        import tomllib
        try:
            listed = tomllib.loads(Path(config).read_text()).get("roots", [])
        except (OSError, ValueError) as exc:
            log.warning("unreadable %s %s: %s", ROOTS_ENV, config, exc)
            listed = []
        base = Path(config).parent
        roots += [(base / Path(p).expanduser()) for p in listed if isinstance(p, str)]
    return [r.resolve() for r in roots]


def any_folder_allowed() -> bool:
    """Started with ``streamlit run app.py -- --allow-any-folder`` (or ARTLAB_ALLOW_ANY_FOLDER=1): unsafe on a
    shared server, since every visitor may then open any folder the server can read."""
    import sys
    return ANY_FOLDER_FLAG in sys.argv[1:] or os.environ.get(ANY_FOLDER_ENV) == "1"


def check_root(folder: str) -> Path:
    """The typed folder, if the app may open it (inside one of ``allowed_roots``), else ArtlabError."""
    from .safety import inside
    path = Path(folder).expanduser()
    if any_folder_allowed() or any(inside(root, path) for root in allowed_roots()):
        return path
    raise ArtlabError(f"This app only opens trained models under {', '.join(str(r) for r in allowed_roots())}. "
                      f"Add the folder to {RUNS_ENV} (or to the roots file in {ROOTS_ENV}) when starting it.")


def init_state() -> None:
    """Session defaults, set once by app.py before any page runs."""
    st.session_state.setdefault("runs_root", str(default_runs_root()))
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)


def run_safely(fn: Callable[..., Any], *args, what: str = "doing that", **kwargs) -> Any:
    """``fn(*args, **kwargs)``, or None after showing what went wrong in plain words (never a traceback)."""
    try:
        return fn(*args, **kwargs)
    except ArtlabError as exc:
        st.error(str(exc))
    except Exception:  # noqa: BLE001 - the page must go on; the traceback goes to the server log
        log.exception("unexpected error while %s", what)
        st.error(f"Something went wrong while {what}. The details are in the server log.")
    return None


def require_frame() -> None:
    """Make sure app.py (the frame: sidebar, state defaults) runs around the page.

    Because the pages live in a folder named ``pages/``, Streamlit starts each process (and AppTest each run) in its
    legacy multipage mode, which runs a requested page file on its own, without app.py, until ``st.navigation`` has
    been called once. A page that finds itself in that mode switches it off and reruns, so app.py runs first.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without this internal: nothing to work around
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def current_run() -> Run:
    """The run chosen in the sidebar, or a plain message and the end of the page."""
    require_frame()
    path = st.session_state.get("run_path")
    if not path:
        st.info("Choose a trained model in the sidebar to begin.")
        st.stop()
    run = run_safely(open_run, path, what="opening the model")
    if run is None:
        st.stop()
    return run


# --- runs ---------------------------------------------------------------------------------------------------------

def _stamp(run_path: str) -> int:
    try:
        return (Path(run_path) / "card.json").stat().st_mtime_ns
    except OSError:
        return 0


def list_runs(root: str) -> list[str]:
    """Complete runs directly under ``root`` (refreshed every 20 s, so a newly trained run appears); ArtlabError when
    ``root`` is not one the app may open."""
    return _list_runs(str(check_root(root)))


@st.cache_data(ttl=20, show_spinner=False)
def _list_runs(root: str) -> list[str]:
    return [str(p) for p in find_runs(Path(root), limit=MAX_LISTED)]


@st.cache_data(show_spinner=False, max_entries=32)
def _open(run_path: str, stamp: int) -> Run:
    return Run.open(run_path)


def open_run(run_path: str) -> Run:
    """The run folder's card, checked (RunError with a plain message if missing or incomplete)."""
    return _open(str(run_path), _stamp(str(run_path)))


@st.cache_resource(show_spinner="Loading the two models…", max_entries=4)
def _predictor(run_path: str, stamp: int):
    from .inference import Predictor
    predictor = Predictor(Run.open(run_path))
    predictor.budget = APP_DECODE_BUDGET
    return predictor


def load_predictor(run_path: str):
    """One Predictor per run, shared by all sessions (read-only; explanations take ``predictor.lock``)."""
    return _predictor(str(run_path), _stamp(str(run_path)))


def card(run_path: str) -> dict:
    return open_run(run_path).card


@st.cache_data(show_spinner=False, max_entries=16)
def _table(run_path: str, stamp: int, what: str):
    """One of the run's files, read through Run (predictions, paintings, embeddings, geometry, umap, history)."""
    return getattr(Run.open(run_path), what)()


def _read(run_path, what: str):
    return _table(str(run_path), _stamp(str(run_path)), what)


def predictions(run_path: str) -> pd.DataFrame:
    return _read(run_path, "predictions")


def paintings(run_path: str) -> pd.DataFrame:
    return _read(run_path, "paintings")


def embeddings(run_path: str) -> dict[str, np.ndarray]:
    return _read(run_path, "embeddings")


def geometry(run_path: str) -> dict:
    return _read(run_path, "geometry")


def umap(run_path: str) -> np.ndarray | None:
    return _read(run_path, "umap")


def history(run_path: str) -> pd.DataFrame:
    return _read(run_path, "history")


def results_tables(root: str) -> list[tuple[str, pd.DataFrame]]:
    """Every ``results.csv`` (from ``artlab experiment``) under ``root`` (at most ``RESULTS_DEPTH`` folders down,
    ``MAX_RESULTS`` of them, none larger than 8 MB, no symlink followed), as (relative path, table)."""
    return _results_tables(str(check_root(root)))


@st.cache_data(ttl=20, show_spinner=False)
def _results_tables(root: str) -> list[tuple[str, pd.DataFrame]]:
    from .safety import bounded_files
    base = Path(root)
    out = []
    for p in bounded_files(base, "results.csv", depth=RESULTS_DEPTH, limit=MAX_RESULTS, max_seen=MAX_LISTED * 4):
        try:
            if p.stat().st_size > 8 << 20:
                raise ValueError("larger than 8 MB")
            out.append((str(p.relative_to(base)), pd.read_csv(p)))
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            log.warning("unreadable %s: %s", p, exc)
    return out


@st.cache_data(ttl=20, show_spinner=False)
def runs_overview(root: str) -> pd.DataFrame:
    """One row per run under ``root``: what it classifies, how it was trained, both models' test accuracy."""
    rows = []
    for path in list_runs(root):
        try:
            c = open_run(path).card
        except RunError as exc:  # listed as broken; the other runs still show
            rows.append({"run": Path(path).name, "status": f"broken: {exc}"})
            continue
        m = c.get("metrics", {})
        rows.append({"run": Path(path).name, "status": "ok", "classifies": c["task"]["label"], "classes": len(c["task"]["classes"]),
                     "paintings": c["task"].get("n_images"), "backbone": c["backbone"]["name"],
                     "training": c.get("method"), "head": c.get("head"),
                     "fine-tuned accuracy": m.get("finetuned", {}).get("accuracy"),
                     "kNN accuracy": m.get("knn", {}).get("accuracy"), "k": m.get("knn", {}).get("k")})
    return pd.DataFrame(rows)


def percent_style(df: pd.DataFrame, columns):
    """A pandas Styler showing the shares (0-1) in ``columns`` as whole percentages, for st.table."""
    return df.style.format("{:.0%}", subset=[c for c in columns if c in df.columns])


def percent_table(df: pd.DataFrame, columns) -> tuple[pd.DataFrame, dict]:
    """Shares (0-1) shown as whole percentages: the frame to display and its st.dataframe column_config."""
    shown = df.copy()
    columns = [c for c in columns if c in shown.columns]
    shown[columns] = shown[columns].astype(float) * 100
    return shown, {c: st.column_config.NumberColumn(c, format="%.0f%%") for c in columns}


@st.cache_data(show_spinner=False, max_entries=8)
def _gallery(run_path: str, stamp: int) -> pd.DataFrame:
    run = Run.open(run_path)
    return tables.gallery_frame(run.predictions(), run.paintings(), run.classes)


def test_gallery(run_path: str) -> pd.DataFrame:
    return _gallery(str(run_path), _stamp(str(run_path)))


# --- images -------------------------------------------------------------------------------------------------------

def thumbnail(run_path: str, painting_id: str) -> str | None:
    p = open_run(run_path).thumbnail(painting_id)
    return str(p) if p else None


def painting_file(run: Run, painting_id: str, rel_path: str = "") -> Path | None:
    """The original image if the run's collection is reachable from here, else the run's thumbnail."""
    original = run.painting_file(rel_path)
    if original is not None:
        return original
    thumb = thumbnail(str(run.path), painting_id)
    return Path(thumb) if thumb else None


def show_image(image: bytes | str | None, max_height: int = 520, caption: str | None = None) -> None:
    """st.image as wide as its column allows but no taller than ``max_height`` (a hanging scroll would otherwise
    fill the screen)."""
    if image is None:
        return
    try:
        with Image.open(io.BytesIO(image) if isinstance(image, bytes) else image) as im:  # reads the header only
            w, h = im.size
    except (OSError, ValueError):
        return
    st.image(image, width=max(60, round(max_height * w / max(h, 1))), caption=caption)


@st.cache_data(show_spinner=False, max_entries=1024)
def painting_preview(run_path: str, painting_id: str, rel_path: str = "", side: int = 480) -> bytes | str | None:
    """What to show of a painting of the run: the original shrunk to ``side`` when the collection is reachable
    (JPEG bytes), else the run's thumbnail (its path), else None."""
    run = open_run(run_path)
    original = run.painting_file(rel_path)
    if original is not None:
        try:
            return encode_jpeg(fit_within(load_image(original, min_side=side), side), quality=88)
        except ImageError:
            pass
    return thumbnail(run_path, painting_id)


@st.cache_data(show_spinner=False, max_entries=512)
def preview(data: bytes, name: str, side: int = 640) -> bytes | None:
    """A JPEG no larger than ``side`` for the browser (TIFFs and huge scans don't display as they are)."""
    try:
        return encode_jpeg(fit_within(load_image(data, name=name, min_side=side, budget=APP_DECODE_BUDGET), side),
                           quality=88)
    except ImageError:
        return None
    finally:
        release_memory()


def sample_choices(run_path: str) -> dict[str, tuple[str, str]]:
    """Paintings to try: the run's test paintings (never seen in training), else the demo collection.
    {label shown: (file name, path)}."""
    run = open_run(run_path)
    meta = paintings(run_path)
    out = {}
    if len(meta):
        test = meta[meta["split"] == "test"] if "split" in meta.columns else meta
        for row in (test if len(test) else meta).itertuples():
            f = painting_file(run, row.id, getattr(row, "path", ""))
            if f is not None:
                out[f"{short(row.title) or row.id} — {row.artist or 'unknown artist'} ({row.label})"] = (
                    f"{row.id}{f.suffix}", str(f))
    if not out:
        out = _demo_samples()
    return out


def _demo_samples() -> dict[str, tuple[str, str]]:
    try:
        from .sources.demo import demo_data_dir, met_records
        data = demo_data_dir()
        return {f"{short(r.get('title', ''))} — {r.get('artistDisplayName') or 'unknown artist'}":
                (f"{r['objectID']}.jpg", str(data / f"{r['objectID']}.jpg"))
                for r in met_records(data)[:40] if (data / f"{r['objectID']}.jpg").is_file()}
    except (ArtlabError, OSError, KeyError, ValueError):
        return {}


def short(text: str, n: int = 60) -> str:
    """A title cut to ``n`` characters for captions (the full one is in the hover and the museum page)."""
    text = str(text or "")
    return text if len(text) <= n else text[: n - 1] + "…"


# --- models on images (cached; CAMs only on demand) -----------------------------------------------------------

def release_memory() -> None:
    """Hand the pages freed after a decode back to the system (glibc keeps them otherwise: a 500 KB PNG of 120 MP
    held 2.3 GB of the server for good)."""
    import ctypes
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:16]


@st.cache_data(show_spinner=False, max_entries=512)
def _predict(run_path: str, stamp: int, name: str, data: bytes):
    result = load_predictor(run_path).predict_files([data], [name])[0]
    release_memory()
    return str(result) if isinstance(result, ImageError) else result


def predict(run_path: str, name: str, data: bytes):
    """A Prediction of both models, or the plain message (str) saying why this file could not be read."""
    return _predict(str(run_path), _stamp(str(run_path)), name, data)


@st.cache_data(show_spinner=False, max_entries=128)
def _explain(run_path: str, stamp: int, name: str, data: bytes, method: str) -> dict:
    from . import explain
    predictor = load_predictor(run_path)
    image = predictor.load(data, name=name)  # decoded exactly as for the prediction
    # The kNN side takes the same CAM method on its similarity-to-neighbours target (gradcam there is "similarity").
    result = explain.explain_both(predictor, image, method=method, knn_method=method, name=name)
    del image
    out = {model: _plain(result[model], result["prediction"].classes) for model in ("finetuned", "knn")}
    del result
    release_memory()
    return out


def _plain(explanation, classes: list[str]) -> dict:
    """What the page needs from an Explanation, as plain (picklable, cacheable) values."""
    target = getattr(explanation, "target", None)
    return {"cam": np.asarray(explanation.cam, dtype=np.float32), "crop": float(getattr(explanation, "crop", 1.0)),
            "label": classes[target] if isinstance(target, (int, np.integer)) and 0 <= target < len(classes) else "",
            "similarity": getattr(explanation, "similarity", None)}


def explanations(run_path: str, name: str, data: bytes, method: str) -> dict:
    """CAMs of both models for this image: {"finetuned": {"cam", "crop", "label", ...}, "knn": {...}}."""
    return _explain(str(run_path), _stamp(str(run_path)), name, data, method)


@st.cache_data(show_spinner=False, max_entries=64)
def _feature_maps(run_path: str, stamp: int, name: str, data: bytes) -> dict[str, dict]:
    from . import explain
    predictor = load_predictor(run_path)
    image = predictor.load(data, name=name)
    crop = explain.crop_fraction(predictor.spec)
    return {model: {"cam": explain.feature_map(predictor, image, model=model).astype(np.float32), "crop": crop}
            for model in ("finetuned", "knn")}


def feature_maps(run_path: str, name: str, data: bytes) -> dict[str, dict]:
    """The channel-sum feature map of each model ({"cam": [0, 1] array, "crop": ...})."""
    return _feature_maps(str(run_path), _stamp(str(run_path)), name, data)


@st.cache_data(show_spinner=False, max_entries=256)
def overlay(name: str, data: bytes, cam: np.ndarray, alpha: float, crop: float = 1.0) -> bytes:
    """The heat map laid over the painting (the square the model saw; margins dimmed), as JPEG bytes."""
    from . import explain
    image = load_image(data, name=name, budget=APP_DECODE_BUDGET)
    out = encode_jpeg(explain.overlay(image, cam, alpha=alpha, max_side=640, crop=crop), quality=88)
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
    from . import explain
    return [m for m in explain.METHODS if m not in TOO_SLOW_FOR_THE_APP]


# --- paintings geometry ------------------------------------------------------------------------------------------

@st.cache_data(show_spinner=False, max_entries=64)
def _nearest(run_path: str, stamp: int, index: int, k: int) -> tuple[list[int], list[float]]:
    from .geometry import nearest
    order, sims = nearest(embeddings(run_path)["embeddings"], index, k)
    return order.tolist(), sims.tolist()


def nearest_paintings(run_path: str, index: int, k: int = 8) -> tuple[list[int], list[float]]:
    """Rows of embeddings.npz nearest to row ``index`` (cosine), with their similarities."""
    return _nearest(str(run_path), _stamp(str(run_path)), int(index), int(k))


MAX_PATH_PAINTINGS = 6000  # the degrees-of-separation graph compares every pair of paintings


@st.cache_data(show_spinner=False, max_entries=32)
def _path(run_path: str, stamp: int, start: int, goal: int, k: int) -> list[int]:
    from .geometry import path_between
    emb = embeddings(run_path)["embeddings"]
    if len(emb) > MAX_PATH_PAINTINGS:
        raise ArtlabError(f"this run holds {len(emb)} paintings: too many to chain here "
                          f"(the limit is {MAX_PATH_PAINTINGS}).")
    return path_between(emb, start, goal, k=k)


def path_between(run_path: str, start: int, goal: int, k: int = 6) -> list[int]:
    return _path(str(run_path), _stamp(str(run_path)), int(start), int(goal), int(k))


@st.cache_data(show_spinner=False, max_entries=8)
def _map_table(run_path: str, stamp: int) -> pd.DataFrame:
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
    coords = run.umap()  # checked: two finite columns
    if coords is not None:
        ids = run.umap_ids()
        ids = ids.astype(str) if ids is not None and len(ids) == len(coords) else df["id"].to_numpy()[:len(coords)]
        xy = pd.DataFrame(coords, columns=["x", "y"], index=ids)
        xy = xy[~xy.index.duplicated()]
        df[["x", "y"]] = xy.reindex(df["id"]).to_numpy()
    return df


def map_table(run_path: str) -> pd.DataFrame:
    return _map_table(str(run_path), _stamp(str(run_path)))
