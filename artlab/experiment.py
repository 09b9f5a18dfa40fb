"""``artlab experiment CONFIG``: a grid of runs from a TOML file, and its results table (the two studies' tables).

A config (see ``configs/*.toml``)::

    description = "what this reproduces"           # optional
    out = "../runs/culture-table2"                  # one sub-folder a row, plus results.csv and results.md
    [base]                                          # TrainConfig fields shared by every row (artlab/config.py)
    collection = "${ARTLAB_DATA:-../data}/met"      # + `umap = false` to skip the UMAP map of each run
    label = "culture"
    [grid]                                          # lists: every combination is a row, named by its values,
    backbone = ["resnet50", "alexnet"]              #   e.g. resnet50-finetune-plateau (numbers keep their key: lr0.01)
    method = ["finetune", "transfer"]
    [[runs]]                                        # explicit rows: a name and overrides of [base]
    name = "densenet121-partial"
    backbone = "densenet121"
    [published.resnet50-finetune-plateau]           # optional: the paper's figures, shown beside ours
    top1 = 0.718                                    #   (top1, top3, knn_top1, knn_top3; fractions, not percent)

Paths (``out``, ``collection``, ``weights_file``) are relative to the config file's folder; ``${VAR}`` and
``${VAR:-default}`` are expanded in every string. ``collection = "demo:PATH"`` names the CC0 demo collection in PATH,
built there (as ``artlab data demo`` would) when PATH has no manifest yet.

A row whose folder already holds a complete run of the same configuration is skipped, so an interrupted grid resumes;
a row that fails with a user-facing error is recorded in the table and the grid goes on.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import math
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pandas as pd

from .config import TrainConfig
from .errors import ArtlabError, ConfigError
from .csvsafe import to_csv_for_people
from .io import atomic_save, atomic_write_text
from .progress import Progress
from .runs import CARD, RUN_FILES, UMAP

TOP_KEYS = ("description", "out", "base", "grid", "runs", "published")
ROW_OPTIONS = {"umap": bool}  # experiment options a row may set besides the TrainConfig fields
PATH_FIELDS = ("collection", "weights_file")
DEMO_PREFIX = "demo:"
PUBLISHED_KEYS = ("top1", "top3", "knn_top1", "knn_top3")
RESULTS_CSV, RESULTS_MD = "results.csv", "results.md"
COLUMNS = ("name", "backbone", "method", "head", "optimizer", "scheduler", "epochs", "val_acc", "top1", "top3",
           "knn_top1", "knn_top3", "knn_k", "train_s", "total_s", "status", "error")
TEXT_COLUMNS = {"name", "backbone", "method", "head", "optimizer", "scheduler", "status", "error"}
TRAIN_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    config: TrainConfig
    umap: bool = True


@dataclasses.dataclass(frozen=True)
class Experiment:
    path: Path
    out: Path
    rows: list[Row]
    description: str = ""
    published: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    demo_dirs: frozenset[Path] = frozenset()  # collections to build with build_demo when missing

    def folder(self, row: Row) -> Path:
        return self.out / row.name


# --- reading and validating a config ----------------------------------------------------------------------------

def load_experiment(path: str | Path) -> list[tuple[str, TrainConfig]]:
    """The rows of an experiment config, validated: (name, TrainConfig) in the order they run."""
    return [(row.name, row.config) for row in read_experiment(path).rows]


def read_experiment(path: str | Path) -> Experiment:
    """Parse and validate a config completely (keys, types, backbones...) without touching any data."""
    path = Path(path)
    raw = _read_toml(path)
    _check_keys(raw, TOP_KEYS, f"{path.name}: top level")
    if not isinstance(raw.get("out"), str):
        raise ConfigError(f"{path.name}: `out = \"FOLDER\"` (where the runs go) is required")
    ctx = _Context(path.parent.resolve())
    base = _table(raw, "base", path.name)
    _check_keys(base, _row_keys(), f"{path.name}: [base]")
    settings = _grid_settings(raw, path.name) + _explicit_settings(raw, path.name)
    if not settings:
        raise ConfigError(f"{path.name}: no rows; add a [grid] table or [[runs]] rows")
    rows = [_make_row(name, {**base, **over}, ctx) for name, over in settings]
    _check_unique([r.name for r in rows], path.name)
    published = _published(raw, {r.name for r in rows}, path.name)
    out = ctx.path(ctx.expand(raw["out"], "out"))
    return Experiment(path, out, rows, str(raw.get("description", "")), published, frozenset(ctx.demo_dirs))


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"no experiment config at {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name} is not valid TOML: {exc}") from None


def _row_keys() -> tuple[str, ...]:
    return (*TRAIN_FIELDS, *ROW_OPTIONS)


def _check_keys(table: dict, allowed, where: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (allowed: {', '.join(allowed)})"
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")


def _table(raw: dict, key: str, where: str) -> dict:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key} must be a table ([{key}])")
    return value


def _grid_settings(raw: dict, where: str) -> list[tuple[str, dict]]:
    grid = _table(raw, "grid", where)
    _check_keys(grid, _row_keys(), f"{where}: [grid]")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: [grid] {key} must be a non-empty list of values")
    if not grid:
        return []
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    return [(_derived_name(c), c) for c in combos]


def _explicit_settings(raw: dict, where: str) -> list[tuple[str, dict]]:
    runs = raw.get("runs", [])
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise ConfigError(f"{where}: runs must be [[runs]] tables")
    out = []
    for i, run in enumerate(runs, 1):
        over = {k: v for k, v in run.items() if k != "name"}
        _check_keys(over, _row_keys(), f"{where}: [[runs]] #{i}")
        name = run.get("name") or _derived_name(over)
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: [[runs]] #{i} needs a name (it overrides nothing to name it by)")
        out.append((name, over))
    return out


def _derived_name(values: dict) -> str:
    """resnet50-finetune-plateau: strings as they are, numbers with their key (lr0.01), flags as key / no-key."""
    parts = []
    for key, v in values.items():
        if isinstance(v, bool):
            parts.append(key if v else f"no-{key}")
        elif isinstance(v, (int, float)):
            parts.append(f"{key}{v:g}")
        elif isinstance(v, list):
            parts.append("_".join(f"{x:g}" if isinstance(x, (int, float)) else str(x) for x in v))
        else:
            parts.append(str(v))
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts))


def _check_unique(names: list[str], where: str) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise ConfigError(f"{where}: two rows are named {name!r}; give one a `name`")
        if name.startswith(".") or not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            raise ConfigError(f"{where}: row name {name!r} is not a plain folder name")
        seen.add(name)


def _published(raw: dict, names: set[str], where: str) -> dict[str, dict[str, float]]:
    published = _table(raw, "published", where)
    for name, figures in published.items():
        if name not in names:
            raise ConfigError(f"{where}: [published.{name}] names no row")
        if not isinstance(figures, dict):
            raise ConfigError(f"{where}: [published.{name}] must be a table of figures")
        _check_keys(figures, PUBLISHED_KEYS, f"{where}: [published.{name}]")
        if not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in figures.values()):
            raise ConfigError(f"{where}: [published.{name}] figures are fractions between 0 and 1")
    return published


class _Context:
    """Resolves a config's strings: environment variables, paths relative to the config, demo collections."""

    VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

    def __init__(self, folder: Path):
        self.folder, self.demo_dirs = folder, set()

    def expand(self, value: str, key: str) -> str:
        def sub(m: re.Match) -> str:
            if m.group(1) in os.environ:
                return os.environ[m.group(1)]
            if m.group(2) is not None:
                return m.group(2)
            raise ConfigError(f"{key} = {value!r}: environment variable {m.group(1)} is not set")
        return self.VAR.sub(sub, value)

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.folder / p).resolve()

    def collection(self, value: str) -> str:
        if value.startswith(DEMO_PREFIX):
            folder = self.path(value[len(DEMO_PREFIX):] or "demo")
            self.demo_dirs.add(folder)
            return str(folder)
        return str(self.path(value))


def _make_row(name: str, settings: dict, ctx: _Context) -> Row:
    where = f"row {name!r}"
    settings = {k: ctx.expand(v, k) if isinstance(v, str) else v for k, v in settings.items()}
    for key, value in settings.items():
        _check_type(key, value, where)
    if "collection" not in settings:
        raise ConfigError(f"{where}: no collection (set `collection` in [base])")
    settings["collection"] = ctx.collection(settings["collection"])
    if settings.get("weights_file"):
        settings["weights_file"] = str(ctx.path(settings["weights_file"]))
    umap = settings.pop("umap", True)
    try:
        return Row(name, TrainConfig.from_dict(settings), umap)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _check_type(key: str, value: Any, where: str) -> None:
    """TOML values against TrainConfig's annotations (``int``, ``float | None``, ``tuple[float, ...]``...)."""
    annotation = ROW_OPTIONS[key] if key in ROW_OPTIONS else TRAIN_FIELDS[key].type
    kind = (annotation if isinstance(annotation, str) else annotation.__name__).replace(" | None", "")
    if kind.startswith("tuple["):
        elem = kind[len("tuple["):-1].split(",")[0].strip()
        ok = isinstance(value, list) and all(_is(x, elem) for x in value)
        kind = f"a list of {elem}"
    else:
        ok = _is(value, kind)
    if not ok:
        raise ConfigError(f"{where}: {key} must be {kind}, got {value!r}")


def _is(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str)


# --- running ----------------------------------------------------------------------------------------------------

def run_experiment(config: Path, progress: Progress | None = None, only: str | None = None,
                   dry_run: bool = False) -> str:
    """Train every row not already complete, write ``results.csv`` and ``results.md``; return the table as text."""
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
    _build_demos(exp, todo, progress)
    status: dict[str, tuple[str, str]] = {}
    for i, row in enumerate(selected, 1):
        status[row.name] = _run_row(exp, row, f"[{i}/{len(selected)}] {row.name}", progress)
        table = results_table(exp, status)
        _write_results(exp, table)  # after every row: an interrupted grid still leaves its table
    return _summary(exp, status) + "\n" + table_text(table) + f"\nresults written to {exp.out / RESULTS_CSV}"


def _select(exp: Experiment, only: str | None) -> list[Row]:
    rows = [r for r in exp.rows if only is None or only in r.name]
    if not rows:
        raise ConfigError(f"--only {only!r} matches no row of {exp.path.name} "
                          f"(rows: {', '.join(r.name for r in exp.rows)})")
    return rows


def is_complete(folder: Path, row: Row) -> bool:
    """A finished run of exactly this row's configuration (and its UMAP, if the row wants one)."""
    if not all((folder / f).is_file() for f in RUN_FILES) or (row.umap and not (folder / UMAP).is_file()):
        return False
    try:
        card = json.loads((folder / CARD).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    saved, wanted = dict(card.get("config") or {}), row.config.to_dict()
    relative = card.get("task", {}).get("collection_relative")
    if relative and (folder / relative).resolve() == Path(wanted["collection"]).resolve():
        saved["collection"] = wanted["collection"]  # the same folder, recorded by a checkout somewhere else
    return saved == wanted


def _check_collections(exp: Experiment, rows: list[Row]) -> None:
    for row in rows:
        folder = Path(row.config.collection)
        if folder not in exp.demo_dirs and not (folder / "manifest.csv").is_file():
            raise ConfigError(f"row {row.name!r}: no collection at {folder} (build one with `artlab data ...`, "
                              f"or write collection = \"demo:PATH\" for the demo paintings)")


def _build_demos(exp: Experiment, rows: list[Row], progress: Progress) -> None:
    from .sources.demo import build_demo
    wanted = {Path(r.config.collection) for r in rows} & exp.demo_dirs
    for folder in sorted(wanted):
        if (folder / "manifest.csv").is_file():
            continue
        progress.message(f"building the demo collection in {folder}")

        def advance(done: int, total: int) -> None:
            if done == 1:
                progress.stage("demo collection", total)
            progress.advance(1)

        build_demo(folder, progress=advance)
        progress.done()


def _run_row(exp: Experiment, row: Row, label: str, progress: Progress) -> tuple[str, str]:
    """(status, error): 'complete' (skipped), 'trained' or 'failed'."""
    from .runner import train_run
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
        lines.append({**_row_figures(row, card), "status": state, "error": error,
                      **{f"paper_{k}": v for k, v in exp.published.get(row.name, {}).items()}})
    table = pd.DataFrame(lines)
    paper = [f"paper_{k}" for k in PUBLISHED_KEYS if f"paper_{k}" in table.columns]
    table = table.reindex(columns=[c for c in COLUMNS if c not in ("status", "error")] + paper + ["status", "error"])
    return table.astype({"epochs": "Int64", "knn_k": "Int64"})


def _row_figures(row: Row, card: dict | None) -> dict:
    cfg = row.config
    out = {"name": row.name, "backbone": cfg.backbone, "method": cfg.method, "head": cfg.head,
           "optimizer": cfg.optimizer, "scheduler": cfg.scheduler}
    if card is None:
        return out
    ft, knn, training = card["metrics"]["finetuned"], card["metrics"]["knn"], card["training"]
    return {**out, "epochs": training["epochs_run"], "val_acc": ft.get("val_accuracy"), "top1": ft["accuracy"],
            "top3": ft["top3_accuracy"], "knn_top1": knn["accuracy"], "knn_top3": knn["top3_accuracy"],
            "knn_k": knn.get("k"), "train_s": training["train_seconds"], "total_s": training.get("total_seconds")}


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


def _write_results(exp: Experiment, table: pd.DataFrame) -> None:
    atomic_save(exp.out / RESULTS_CSV, lambda tmp: to_csv_for_people(table, tmp))
    intro = f"# {exp.path.stem}\n\n" + (f"{exp.description.strip()}\n\n" if exp.description.strip() else "")
    atomic_write_text(exp.out / RESULTS_MD, intro + table_markdown(table) + "\n\nTest-split accuracy of the "
                      "fine-tuned model (top1, top3) and of the kNN baseline on frozen pretrained features.\n")


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
        if (folder / "manifest.csv").is_file():
            lines.append(f"collection {folder}: present")
        elif folder in exp.demo_dirs:
            lines.append(f"collection {folder}: the demo collection, built there on the first real run")
        else:
            lines.append(f"collection {folder}: MISSING (build it with `artlab data ...` first)")
    return "\n".join(lines)
