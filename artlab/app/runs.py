"""The runs the app can show and what it reads from them, each behind the one cache decorator (artlab.app.cache)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from artlab.app.cache import per_run
from artlab.app.memory import APP_DECODE_BUDGET
from artlab.app.roots import MAX_LISTED, MAX_RESULTS, RESULTS_DEPTH, check_root
from artlab.errors import RunError
from artlab.report import tables
from artlab.runfolder import Run, find_runs
from artlab.safety import bounded_files

log = logging.getLogger("artlab.app")


def list_runs(root: str) -> list[str]:
    """Complete runs directly under ``root`` (refreshed every 20 s, so a newly trained run appears); ArtlabError when
    ``root`` is not one the app may open."""
    return _list_runs(str(check_root(root)))


@st.cache_data(ttl=20, show_spinner=False)
def _list_runs(root: str) -> list[str]:
    return [str(p) for p in find_runs(Path(root), limit=MAX_LISTED)]


@per_run(max_entries=32)
def open_run(run_path: str) -> Run:
    """The run folder's card, checked (RunError with a plain message if missing or incomplete)."""
    return Run.open(run_path)


@per_run(max_entries=4, resource=True, show_spinner="Loading the two models…")
def load_predictor(run_path: str):
    """One Predictor per run, shared by all sessions (read-only; explanations take ``predictor.lock``)."""
    from artlab.explain.predictor import Predictor
    predictor = Predictor(Run.open(run_path))
    predictor.budget = APP_DECODE_BUDGET
    return predictor


def card(run_path: str) -> dict:
    return open_run(run_path).card


@per_run(max_entries=16)
def _read(run_path: str, what: str):
    """One of the run's files, read through Run (predictions, paintings, embeddings, geometry, history)."""
    return getattr(Run.open(run_path), what)()


def predictions(run_path: str) -> pd.DataFrame:
    return _read(run_path, "predictions")


def paintings(run_path: str) -> pd.DataFrame:
    return _read(run_path, "paintings")


def embeddings(run_path: str) -> dict[str, np.ndarray]:
    return _read(run_path, "embeddings")


def geometry(run_path: str) -> dict:
    return _read(run_path, "geometry")


def history(run_path: str) -> pd.DataFrame:
    return _read(run_path, "history")


def results_tables(root: str) -> list[tuple[str, pd.DataFrame]]:
    """Every ``results.csv`` (from ``artlab experiment``) under ``root`` (at most ``RESULTS_DEPTH`` folders down,
    ``MAX_RESULTS`` of them, none larger than 8 MB, no symlink followed), as (relative path, table)."""
    return _results_tables(str(check_root(root)))


@st.cache_data(ttl=20, show_spinner=False)
def _results_tables(root: str) -> list[tuple[str, pd.DataFrame]]:
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
        rows.append({"run": Path(path).name, "status": "ok", "classifies": c["task"]["label"],
                     "classes": len(c["task"]["classes"]),
                     "paintings": c["task"].get("n_images"), "backbone": c["backbone"]["name"],
                     "training": c.get("method"), "head": c.get("head"),
                     "fine-tuned accuracy": m.get("finetuned", {}).get("accuracy"),
                     "kNN accuracy": m.get("knn", {}).get("accuracy"), "k": m.get("knn", {}).get("k")})
    return pd.DataFrame(rows)


@per_run(max_entries=8)
def test_gallery(run_path: str) -> pd.DataFrame:
    run = Run.open(run_path)
    return tables.gallery_frame(run.predictions(), run.paintings(), run.classes)
