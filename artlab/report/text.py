"""Plain-text tables for a terminal: a run's metrics (the study's Table 1), a confusion matrix, and an experiment's
results as aligned text or Markdown."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from artlab.report.protocol import study_of
from artlab.report.tables import metrics_frame

TEXT_COLUMNS = {"name", "row", "backbone", "method", "head", "optimizer", "scheduler", "split", "status", "error"}


def metrics_table(run) -> str:
    """The study's Table 1 for a run: both models side by side (the same table the app shows)."""
    table = metrics_frame(run.card)
    ft, kn = run.card["metrics"]["finetuned"], run.card["metrics"]["knn"]
    lines = [f"{run.name}: {run.card['backbone']['name']} {run.card['method']}, {len(run.classes)} {run.label} classes, "
             f"{ft['n']} test paintings",
             f"{'metric':<22}" + "".join(f"{c:>14}" for c in table.columns)]
    lines += [f"{name:<22}" + "".join(f"{v:>14.3f}" for v in row) for name, row in table.iterrows()]
    lines.append("per-class recall: " + ", ".join(
        f"{c} {ft['per_class'][c]['recall']:.2f}/{kn['per_class'][c]['recall']:.2f}" for c in run.classes))
    lines.append(deviations_text(run.card))
    return "\n".join(lines)


def deviations_text(card: dict) -> str:
    """Where the run departs from its study, one sentence a line (under the metrics table)."""
    study = study_of(card["task"]["label"], card.get("head", "")).study
    split = "artist-disjoint" if card["task"].get("group_by_artist") else "random"
    return "\n".join([f"split: {split}; where this run departs from the {study}:"]
                      + [f"  - {d}" for d in card.get("deviations") or []])


def confusion_text(cm, classes) -> str:
    width = max(8, max(len(c) for c in classes) + 1)
    head = " " * width + "".join(f"{c[:width - 1]:>{width}}" for c in classes)
    return "\n".join([head] + [f"{c[:width - 1]:<{width}}" + "".join(f"{v:>{width}}" for v in row)
                               for c, row in zip(classes, cm)])


def _cell(value: Any, column: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.1f}" if column.endswith("_s") else f"{value:.3f}"
    return str(value)


def table_text(table: pd.DataFrame) -> str:
    """The table as aligned plain text (empty columns left out: no error column when nothing failed)."""
    table = _drop_empty(table)
    cells = [[_cell(v, c) for v, c in zip(r, table.columns)] for r in table.itertuples(index=False)]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(table.columns)]

    def line(values):
        return "  ".join(v.ljust(w) if c in TEXT_COLUMNS else v.rjust(w)
                         for v, w, c in zip(values, widths, table.columns)).rstrip()
    return "\n".join([line(list(table.columns))] + [line(r) for r in cells])


def table_markdown(table: pd.DataFrame) -> str:
    table = _drop_empty(table)
    cells = [[_cell(v, c).replace("|", "\\|") for v, c in zip(r, table.columns)] for r in table.itertuples(index=False)]
    head = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" if c in TEXT_COLUMNS else "---:" for c in table.columns) + "|"
    return "\n".join([head, rule] + ["| " + " | ".join(r) + " |" for r in cells])


def _drop_empty(table: pd.DataFrame) -> pd.DataFrame:
    keep = [c for c in table.columns if c in ("name", "status") or table[c].map(lambda v: _cell(v, c) != "").any()]
    return table[keep]
