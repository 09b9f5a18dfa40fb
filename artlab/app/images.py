"""Paintings for the browser: previews of uploads and of a run's paintings (the original when the collection is
reachable, else the run's thumbnail), and the sample paintings offered on the Classify page."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from artlab.app.memory import APP_DECODE_BUDGET, decode_slot
from artlab.app.runs import open_run, paintings
from artlab.collection.wheel import demo_data_dir, met_records
from artlab.errors import ArtlabError, ImageError
from artlab.images import encode_jpeg, fit_within, load_image
from artlab.runfolder import Run


@st.cache_data(show_spinner=False, max_entries=1024)
def thumbnail(run_path: str, painting_id: str, side: int = 256) -> bytes | None:
    """The run's own thumbnail of a painting, decoded under the app's budget and shrunk to ``side`` (JPEG bytes): a
    crafted run's "thumbnail" may be any image at all."""
    p = Run(Path(run_path), {}).thumbnail(painting_id)
    return _shrunk(p, p.name, side) if p is not None else None


def _shrunk(source: Path | bytes, name: str, side: int) -> bytes | None:
    """Any image the app shows, decoded within APP_DECODE_BUDGET and shrunk to ``side``; None when unreadable."""
    try:
        with decode_slot():
            return encode_jpeg(fit_within(load_image(source, name=name, min_side=side, budget=APP_DECODE_BUDGET),
                                          side), quality=88)
    except ImageError:
        return None


def painting_file(run: Run, painting_id: str, rel_path: str = "") -> Path | None:
    """The original image if the run's collection is reachable from here, else the run's thumbnail."""
    original = run.painting_file(rel_path)
    return original if original is not None else run.thumbnail(painting_id)


@st.cache_data(show_spinner=False, max_entries=1024)
def painting_preview(run_path: str, painting_id: str, rel_path: str = "", side: int = 480) -> bytes | None:
    """What to show of a painting of the run (JPEG bytes no larger than ``side``): the original when the collection
    is reachable, else the run's thumbnail, else None. Both are decoded within the app's budget."""
    run = open_run(run_path)
    original = run.painting_file(rel_path)
    if original is not None:
        shown = _shrunk(original, original.name, side)
        if shown is not None:
            return shown
    return thumbnail(run_path, painting_id)


@st.cache_data(show_spinner=False, max_entries=512)
def preview(data: bytes, name: str, side: int = 640) -> bytes | None:
    """A JPEG no larger than ``side`` for the browser (TIFFs and huge scans don't display as they are)."""
    return _shrunk(data, name, side)


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
