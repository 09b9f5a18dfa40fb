"""An experiment config (``artlab experiment CONFIG``): a grid of runs in a TOML file, read and validated into rows.

A config (see ``configs/*.toml``)::

    description = "what this reproduces"           # optional
    out = "../runs/culture-table2"                  # one sub-folder a row, plus results.csv and results.md
    [base]                                          # TrainConfig fields shared by every row (artlab/train/config.py)
    collection = "${ARTLAB_DATA:-../data}/met"      # + `umap = false` to skip the UMAP map of each run
    label = "culture"
    [grid]                                          # lists: every combination is a row, named by its values,
    backbone = ["resnet50", "alexnet"]              #   e.g. resnet50-finetune-plateau (numbers keep their key: lr0.01)
    method = ["finetune", "transfer"]
    [[runs]]                                        # explicit rows: a name and overrides of [base]
    name = "densenet121-partial"
    backbone = "densenet121"
    [published.resnet50-finetune-plateau]           # optional: the paper's figures, shown beside ours
    top1 = 0.7179                                   #   (val, top1, top3, precision, recall, f1 and the same with
                                                    #   knn_; fractions, not percent)

Rows with published figures run first (in the order of their [published] tables), then the others, marked
"extension" in the table's ``row`` column: what the grid adds to the paper. Precision, recall and F1 are compared with
artlab's weighted averages (``published_averaging = "macro"`` at the top level to compare with the macro ones
instead).

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
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from artlab.errors import ConfigError
from artlab.train.config import TrainConfig

TOP_KEYS = ("description", "out", "base", "grid", "runs", "published", "published_averaging")
ROW_OPTIONS = {"umap": bool}  # experiment options a row may set besides the TrainConfig fields
PATH_FIELDS = ("collection", "weights_file")
DEMO_PREFIX = "demo:"
PUBLISHED_KEYS = ("val", "top1", "top3", "precision", "recall", "f1",
                  "knn_val", "knn_top1", "knn_top3", "knn_precision", "knn_recall", "knn_f1")
AVERAGINGS = ("weighted", "macro")
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
    averaging: str = "weighted"  # which of artlab's precision/recall/F1 averages the published figures match
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
    by_name = {r.name: r for r in rows}
    rows = [by_name[n] for n in published] + [r for r in rows if r.name not in published]
    averaging = raw.get("published_averaging", "weighted")
    if averaging not in AVERAGINGS:
        raise ConfigError(f"{path.name}: published_averaging must be one of {', '.join(AVERAGINGS)}")
    out = ctx.path(ctx.expand(raw["out"], "out"))
    return Experiment(path, out, rows, str(raw.get("description", "")), published, averaging,
                      frozenset(ctx.demo_dirs))


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"no experiment config at {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path.name} is not valid TOML: it is not UTF-8 text") from None
    except RecursionError:
        raise ConfigError(f"{path.name} is not valid TOML: it nests too deeply to read") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise ConfigError(f"cannot read the experiment config {path}: {exc.strerror}") from None


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
