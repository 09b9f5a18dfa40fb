"""The app's one cache decorator for what is read or computed from a run folder.

A loader is keyed on the run folder *and* the modification time of its card, so a run retrained in place is read
afresh. ``per_run`` wraps ``st.cache_data`` (tables, arrays, explanations: copied out to each caller);
``per_run(resource=True)`` wraps ``st.cache_resource`` (the Predictor: one object shared by every session, which
carries its own lock for explanations). No widget is ever created inside a cached function.
"""

from __future__ import annotations

import functools
from typing import Callable

import streamlit as st

from artlab.runfolder import card_stamp


def per_run(max_entries: int, resource: bool = False, show_spinner: bool | str = False) -> Callable:
    """``fn(run_path, *args)`` cached on (run_path, the card's stamp, *args)."""
    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)  # Streamlit keys its cache on the wrapped function's name and source
        def keyed(run_path: str, stamp: int, *args):
            return fn(run_path, *args)

        cache = st.cache_resource if resource else st.cache_data
        cached = cache(show_spinner=show_spinner, max_entries=max_entries)(keyed)

        @functools.wraps(fn)
        def call(run_path, *args):
            return cached(str(run_path), card_stamp(str(run_path)), *args)
        call.clear = cached.clear
        return call
    return decorate
