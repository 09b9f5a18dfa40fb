"""The frame every page runs in: session defaults, the run chosen in the sidebar, and ``run_safely``, how pages call
into artlab: a user-facing ArtlabError becomes ``st.error(message)``; an unexpected exception is logged with its
traceback and shown as one plain line. Also the one workaround for Streamlit's legacy ``pages/`` mode."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

import streamlit as st

from artlab.app.pages_mode import legacy_pages_off
from artlab.app.roots import APP_ROOT, RUNS_ENV
from artlab.errors import ArtlabError
from artlab.report.csvsafe import md
from artlab.runfolder import Run

log = logging.getLogger("artlab.app")

UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "tif", "tiff"]
DEFAULTS = {"cam_method": "gradcam", "cam_alpha": 0.5, "open_cams": []}


def default_runs_root() -> Path:
    """``$ARTLAB_RUNS`` if set (its first folder), else ``checkpoints/`` beside app.py."""
    env = os.environ.get(RUNS_ENV)
    return Path(env.split(os.pathsep)[0]).expanduser() if env else APP_ROOT / "checkpoints"


def init_state() -> None:
    """Session defaults, set once by app.py before any page runs."""
    st.session_state.setdefault("runs_root", str(default_runs_root()))
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)


def run_safely(fn: Callable[..., Any], *args, what: str = "doing that", **kwargs) -> Any:
    """``fn(*args, **kwargs)``, or None after showing what went wrong in plain words (never a traceback)."""
    try:
        return fn(*args, **kwargs)
    except ArtlabError as exc:  # messages name files, fields and values from data: shown as text
        st.error(md(str(exc)))
    except Exception:  # noqa: BLE001 - the page must go on; the traceback goes to the server log
        log.exception("unexpected error while %s", what)
        st.error(f"Something went wrong while {md(what)}. The details are in the server log.")
    return None


def require_frame() -> None:
    """Make sure app.py (the frame: sidebar, state defaults) runs around the page. A page that Streamlit ran in its
    legacy ``pages/`` mode, on its own (``streamlit run app.py`` on a fresh server, AppTest), turns the mode off and
    reruns, so app.py runs first (artlab.app.pages_mode)."""
    if legacy_pages_off():
        st.rerun()


def current_run() -> Run:
    """The run chosen in the sidebar, or a plain message and the end of the page."""
    require_frame()
    path = st.session_state.get("run_path")
    if not path:
        st.info("Choose a trained model in the sidebar to begin.")
        st.stop()
    from artlab.app.runs import open_run
    run = run_safely(open_run, path, what="opening the model")
    if run is None:
        st.stop()
    return run
