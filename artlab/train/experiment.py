"""``artlab experiment CONFIG``: train every row of a grid (artlab.train.grid) and write its results table (the two
studies' tables): results.csv and results.md beside the runs.

The experiment's ``out`` folder is claimed as a run folder is (artlab.safety): new, empty, or artlab's own experiment
(its marker, or, for folders written before the marker, a results.csv with artlab's header); a folder holding anything
else is refused in one line before any work, so the tables are written only into a folder artlab owns.

A row whose folder already holds a complete run of the same configuration is skipped, so an interrupted grid resumes;
a row that fails with a user-facing error is recorded in the table and the grid goes on.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from pathlib import Path

import pandas as pd

from artlab.collection import curation
from artlab.collection.contract import is_collection
from artlab.errors import ArtlabError, ConfigError
from artlab.io import atomic_save, atomic_write_text
from artlab.progress import Progress
from artlab.report.csvsafe import to_csv_for_people
from artlab.report.text import table_markdown, table_text
from artlab.runfolder import CARD, missing_files
from artlab.safety import RECOGNISERS, OutputError, check_output, mark_output, recognise
from artlab.train.config import TrainConfig
from artlab.train.grid import PUBLISHED_KEYS, Experiment, Row, load_experiment, read_experiment

__all__ = ["run_experiment", "is_complete", "results_table", "load_experiment", "read_experiment"]

RESULTS_CSV, RESULTS_MD = "results.csv", "results.md"
KIND = "experiment"
COLUMNS = ("name", "row", "backbone", "method", "head", "optimizer", "scheduler", "split", "epochs", "val", "top1",
           "top3", "precision", "recall", "f1", "knn_val", "knn_top1", "knn_top3", "knn_precision", "knn_recall",
           "knn_f1", "knn_k", "train_s", "total_s", "status", "error")
#: Columns shown only when the config publishes a figure for them (the genre table; the culture one has none).
OPTIONAL = {"precision", "recall", "f1", "knn_val", "knn_precision", "knn_recall", "knn_f1"}
#: A grid with more runs to train than this starts only when told to (--yes): a typo in a [grid] list can ask for
#: thousands.
CONFIRM_ROWS = 100


def _written_by_artlab(folder: Path) -> bool:
    """An experiment folder from before the marker: its results.csv starts with artlab's own columns, or (a grid
    interrupted before its first table) it holds nothing but artlab's runs, their staging folders and collections."""
    table = folder / RESULTS_CSV
    if table.is_symlink() or not folder.is_dir():
        return False
    if table.is_file():
        with open(table, "rb") as f:
            first = f.readline(1 << 16).decode("utf-8", "replace").strip().split(",")
        return first[:8] == ["name", "row", "backbone", "method", "head", "optimizer", "scheduler", "split"]
    entries = list(itertools.islice(folder.iterdir(), 10_000))
    return bool(entries) and all(_artlabs_own(p) for p in entries)


def _artlabs_own(p: Path) -> bool:
    if p.is_symlink() or not p.is_dir():
        return False
    if p.name.startswith(".") and p.name.endswith(".partial"):  # a run's staging folder (artlab.runfolder.staging)
        return True
    return any(RECOGNISERS[kind](p) for kind in ("run", "collection") if kind in RECOGNISERS)


recognise(KIND, _written_by_artlab)


def claim_folder(exp: Experiment) -> None:
    """Refuse (OutputError, one line) an ``out`` that holds anything artlab did not write as an experiment; mark a
    new or empty one as artlab's experiment before anything is written into it."""
    out = exp.out
    fresh = not out.exists() or (out.is_dir() and not out.is_symlink() and next(out.iterdir(), None) is None)
    check_output(out, KIND, resume=True, option=f"{exp.path.name}: out")
    if fresh:
        try:
            mark_output(out, KIND)
        except OSError as exc:
            raise OutputError(f"{exp.path.name}: out {out} cannot be created ({exc.strerror})") from None


class Outcome(str):
    """The text ``run_experiment`` prints, knowing whether every row it ran failed (the command then exits 2)."""

    all_failed: bool = False


# --- running ----------------------------------------------------------------------------------------------------

def run_experiment(config: Path, progress: Progress | None = None, only: str | None = None,
                   dry_run: bool = False, yes: bool = False) -> Outcome:
    """Train every row not already complete, write ``results.csv`` and ``results.md``; return the table as text
    (``all_failed`` set when every row run now failed)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("experiment grids run in one process; to train one row on several GPUs, launch "
                          "`artlab train` with that row's settings under torchrun")
    exp = read_experiment(config)
    selected = _select(exp, only)
    if dry_run:
        return dry_run_text(exp, selected)
    progress = progress or Progress()
    todo = [r for r in selected if not is_complete(exp.folder(r), r)]
    _check_collections(exp, todo)  # before any training: a missing collection is a config mistake
    if len(todo) > CONFIRM_ROWS and not yes:
        raise ConfigError(f"{exp.path.name} would train {len(todo)} runs into {exp.out}: pass --yes to start them "
                          "(or --dry-run to list them)")
    claim_folder(exp)  # before anything is written: a folder of someone else's files is refused
    progress.message(f"{exp.path.name}: {len(todo)} of {len(selected)} row(s) to train into {exp.out}")
    _build_demos(exp, todo, progress)
    status: dict[str, tuple[str, str]] = {}
    for i, row in enumerate(selected, 1):
        status[row.name] = _run_row(exp, row, f"[{i}/{len(selected)}] {row.name}", progress)
        table = results_table(exp, status)
        _write_results(exp, table)  # after every row: an interrupted grid still leaves its table
    outcome = Outcome(_summary(exp, status) + "\n" + table_text(table)
                      + f"\nresults written to {exp.out / RESULTS_CSV}")
    outcome.all_failed = all(state == "failed" for state, _ in status.values())
    return outcome


def _select(exp: Experiment, only: str | None) -> list[Row]:
    rows = [r for r in exp.rows if only is None or only in r.name]
    if not rows:
        raise ConfigError(f"--only {only!r} matches no row of {exp.path.name} "
                          f"(rows: {', '.join(r.name for r in exp.rows)})")
    return rows


def is_complete(folder: Path, row: Row) -> bool:
    """A finished run of exactly this row's configuration (and its UMAP, if the row wants one)."""
    if missing_files(folder, umap=row.umap):
        return False
    try:
        card = json.loads((folder / CARD).read_text())
    except (OSError, ValueError, RecursionError):
        return False
    if not isinstance(card, dict):
        return False
    wanted = row.config.to_dict()
    # A field added to TrainConfig after the run was written is missing from its card: the run was trained the way
    # that field's default trains (a new option keeps the old behaviour as its default).
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
    saved = {**{k: v for k, v in defaults.items() if k in wanted}, **(card.get("config") or {})}
    saved = {k: list(v) if isinstance(v, tuple) else v for k, v in saved.items()}
    relative = card.get("task", {}).get("collection_relative")
    if relative and (folder / relative).resolve() == Path(wanted["collection"]).resolve():
        saved["collection"] = wanted["collection"]  # the same folder, recorded by a checkout somewhere else
    return saved == wanted and curation.since(wanted["collection"], card) == 0  # no decision since it trained


def _check_collections(exp: Experiment, rows: list[Row]) -> None:
    for row in rows:
        folder = Path(row.config.collection)
        if folder not in exp.demo_dirs and not is_collection(folder):
            raise ConfigError(f"row {row.name!r}: no collection at {folder} (build one with `artlab data ...`, "
                              f"or write collection = \"demo:PATH\" for the demo paintings)")


def _build_demos(exp: Experiment, rows: list[Row], progress: Progress) -> None:
    from artlab.collection.demo import build_demo
    wanted = {Path(r.config.collection) for r in rows} & exp.demo_dirs
    for folder in sorted(wanted):
        if is_collection(folder):
            continue
        progress.message(f"building the demo collection in {folder}")
        build_demo(folder, progress=progress)


def _run_row(exp: Experiment, row: Row, label: str, progress: Progress) -> tuple[str, str]:
    """(status, error): 'complete' (skipped), 'trained' or 'failed'."""
    from artlab.train.runner import train_run
    folder = exp.folder(row)
    if is_complete(folder, row):
        progress.message(f"{label}: already complete, skipped")
        return "complete", ""
    progress.message(f"{label}: training")
    try:
        train_run(row.config, folder, _RowProgress(progress, label), umap=row.umap, overwrite=True)
    except ArtlabError as exc:
        progress.done()
        progress.message(f"{label}: failed: {exc}")
        return "failed", str(exc)
    return "trained", ""


class _RowProgress(Progress):
    """Prefixes a run's stages and messages with the row it belongs to."""

    def __init__(self, inner: Progress, label: str):
        self.inner, self.label = inner, label

    def stage(self, name, total):
        self.inner.stage(f"{self.label}: {name}", total)

    def advance(self, n=1):
        self.inner.advance(n)

    def message(self, text):
        self.inner.message(f"{self.label}: {text}")

    def done(self):
        self.inner.done()


# --- the results table ------------------------------------------------------------------------------------------

def results_table(exp: Experiment, status: dict[str, tuple[str, str]] | None = None) -> pd.DataFrame:
    """One line a row of the config, in config order. Rows not run now are read from disk when complete."""
    status = status or {}
    lines = []
    for row in exp.rows:
        state, error = status.get(row.name) or (("complete", "") if is_complete(exp.folder(row), row)
                                                else ("pending", ""))
        card = json.loads((exp.folder(row) / CARD).read_text()) if state in ("trained", "complete") else None
        kind = "published" if row.name in exp.published else "extension" if exp.published else ""
        lines.append({**_row_figures(row, card, exp.averaging), "row": kind, "status": state, "error": error,
                      **{f"paper_{k}": v for k, v in exp.published.get(row.name, {}).items()}})
    table = pd.DataFrame(lines)
    return table.reindex(columns=_columns(exp)).astype({"epochs": "Int64", "knn_k": "Int64"})


def _columns(exp: Experiment) -> list[str]:
    """COLUMNS, less the optional ones no row publishes, with the published figure beside ours (``paper_``)."""
    shown = {k for figures in exp.published.values() for k in figures}
    columns = []
    for c in COLUMNS:
        if c in OPTIONAL and c not in shown:
            continue
        columns.append(c)
        if c in PUBLISHED_KEYS and (c in shown or c in ("val", "top1", "top3")) and exp.published:
            columns.append(f"paper_{c}")
    return columns


def _row_figures(row: Row, card: dict | None, averaging: str = "weighted") -> dict:
    cfg = row.config
    out = {"name": row.name, "backbone": cfg.backbone, "method": cfg.method, "head": cfg.head,
           "optimizer": cfg.optimizer, "scheduler": cfg.scheduler,
           "split": "artist-disjoint" if cfg.group_by_artist else "random"}
    if card is None:
        return out
    ft, knn, training = card["metrics"]["finetuned"], card["metrics"]["knn"], card["training"]
    out.update({"epochs": training["epochs_run"], "knn_k": knn.get("k"), "train_s": training["train_seconds"],
                "total_s": training.get("total_seconds")})
    for prefix, m in (("", ft), ("knn_", knn)):
        out.update({f"{prefix}val": m.get("val_accuracy"), f"{prefix}top1": m["accuracy"],
                    f"{prefix}top3": m["top3_accuracy"]})
        out.update({f"{prefix}{k}": m.get(f"{k}_{averaging}") for k in ("precision", "recall", "f1")})
    return out



def _write_results(exp: Experiment, table: pd.DataFrame) -> None:
    atomic_save(exp.out / RESULTS_CSV, lambda tmp: to_csv_for_people(table, tmp))
    intro = f"# {exp.path.stem}\n\n" + (f"{exp.description.strip()}\n\n" if exp.description.strip() else "")
    atomic_write_text(exp.out / RESULTS_MD, intro + table_markdown(table) + "\n\nTest-split accuracy of the "
                      "fine-tuned model (top1, top3) and of the kNN baseline on frozen pretrained features (knn_), "
                      "validation accuracy (val), and the published figure beside each (paper_); rows marked "
                      "extension are the grid's additions to the paper's table"
                      + (f"; precision, recall and F1 are {exp.averaging} averages" if set(table.columns) & OPTIONAL
                         else "") + ".\n")


def _summary(exp: Experiment, status: dict[str, tuple[str, str]]) -> str:
    counts = {s: sum(1 for v, _ in status.values() if v == s) for s in ("trained", "complete", "failed")}
    rest = len(exp.rows) - len(status)
    return (f"{exp.path.name}: {counts['trained']} trained, {counts['complete']} already complete, "
            f"{counts['failed']} failed" + (f", {rest} not selected" if rest else ""))


def dry_run_text(exp: Experiment, rows: list[Row]) -> str:
    """What a run would do: every selected row, whether it is already complete, and where its collection is."""
    lines = [f"{exp.path.name}: {len(rows)} row(s) into {exp.out}"]
    table = pd.DataFrame([{"name": r.name, "backbone": r.config.backbone, "method": r.config.method,
                           "head": r.config.head, "optimizer": r.config.optimizer, "scheduler": r.config.scheduler,
                           "epochs": r.config.epochs, "status": "complete (skip)" if is_complete(exp.folder(r), r)
                           else "to train"} for r in rows])
    lines.append(table_text(table))
    for folder in sorted({Path(r.config.collection) for r in rows}):
        if is_collection(folder):
            lines.append(f"collection {folder}: present")
        elif folder in exp.demo_dirs:
            lines.append(f"collection {folder}: the demo collection, built there on the first real run")
        else:
            lines.append(f"collection {folder}: MISSING (build it with `artlab data ...` first)")
    return "\n".join(lines)
