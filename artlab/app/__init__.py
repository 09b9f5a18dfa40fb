"""The app layer: the only package of artlab that imports Streamlit.

``frame`` (session defaults, the run chosen, ``run_safely``, the legacy ``pages/`` workaround), ``cache`` (the one
cache decorator, keyed on a run and its card), ``runs`` (what the app reads from runs), ``images`` (previews and
samples), ``analysis`` (predictions, CAMs, neighbours, the map), ``widgets`` (display helpers), ``words`` (the model
card in words), ``curation`` (flagging a painting, the decisions table, the corrections since a run was trained),
``review`` (an audit's findings, each one click from a decision),
``roots`` (the folders the app may open, and how far it looks under one),
``honesty`` (prediction sets, the unfamiliar notice, the reliability diagram),
``memory`` (the decode budget of an upload, memory handed back), ``exports`` (downloads of figures, tables and a
painting's sheet, made as ``artlab figures`` makes them; the paper beside the run). Pages use the names offered here:
``from artlab import app``, then ``app.current_run()``; each is loaded from its module on first use, so
``python -m artlab.app.serve`` starts the server without loading torch.
"""

from __future__ import annotations

import importlib

_MODULES = {
    "frame": (
        "APP_ROOT", "DEFAULTS", "RUNS_ENV", "UPLOAD_TYPES", "current_run", "default_runs_root", "init_state",
        "require_frame", "run_safely",
    ),
    "runs": (
        "card", "embeddings", "geometry", "history", "list_runs", "load_predictor", "open_run", "paintings",
        "predictions", "results_tables", "runs_overview", "test_gallery",
    ),
    "roots": ("ANY_FOLDER_ENV", "ANY_FOLDER_FLAG", "ROOTS_ENV", "allowed_roots", "any_folder_allowed", "check_root"),
    "memory": ("APP_DECODE_BUDGET", "CONCURRENT_DECODES", "decode_slot", "release_memory"),
    "images": ("painting_file", "painting_preview", "preview", "sample_choices", "short", "thumbnail"),
    "widgets": ("percent_style", "percent_table", "show_image", "show_table"),
    "words": (
        "agreement_words", "card_paragraphs", "card_summary", "deviations", "deviations_markdown", "distance_words",
        "feature_map_words", "frozen_backbone", "k_words", "kept_epoch", "paintings_words", "several_ks",
        "small_collection_note", "small_collection_warning", "split_words",
        "training_words", "votes_words", "weights_caption",
    ),
    "search": ("DATE_HELP", "match_paintings", "years_of"),
    "analysis": (
        "MAX_PATH_PAINTINGS", "METHOD_NAMES", "TOO_SLOW_FOR_THE_APP", "cam_methods", "digest", "explanations",
        "feature_maps", "map_table", "method_name", "nearest_paintings", "overlay", "path_between", "path_steps",
        "predict",
    ),
    "review": ("findings_tab", "leakage_warning", "list_audits", "load_audit", "summary_lines", "tab_titles"),
    "exports": (
        "cam_pair_downloads", "figure_downloads", "paper_beside_results", "paper_beside_run", "sheet_downloads",
        "table_downloads",
    ),
    "honesty": ("prediction_notes", "reliability_section", "unfamiliar_warning"),
    "curation": (
        "FLAGGED", "curation_message", "decisions_table", "filter_flagged", "flag_controls", "stale_notice",
        "unavailable_notice",
    ),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'artlab.app' has no attribute {name!r}")
    return getattr(importlib.import_module(f"artlab.app.{module}"), name)
