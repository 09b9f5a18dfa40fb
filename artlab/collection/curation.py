"""A collection's curation: a curator's decisions about its paintings, kept beside the manifest (docs/curation.md).

``curation.csv`` holds one row a decision, ``id, action, column, value, note, time``, in the order they were made:

- ``exclude``: leave the painting out (``value`` is the reason: not a painting, duplicate, damaged image, other);
- ``set``: give ``column`` (a label such as ``genre``) the value ``value``;
- ``undo``: withdraw the painting's decisions (``column`` empty: all of them; else that column's).

The latest decision for an id and column wins. The manifest is never rewritten: ``effective`` is the one function
that applies the curation to it, and every reader (training, the app, the builders' reports) goes through it.
Decisions are appended under a lock file and written through a temporary file, so two app sessions (or a session
and the command line) flagging at once lose nothing and a reader never sees half a row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import hashlib
import io
import os
import re
from pathlib import Path
from typing import Iterator

import pandas as pd

from artlab.collection import contract
from artlab.collection.contract import CURATION, LABEL_COLUMNS, MANIFEST, read_manifest
from artlab.errors import CollectionError
from artlab.io import atomic_write_bytes

LOCK = contract.CURATION_LOCK
COLUMNS = ("id", "action", "column", "value", "note", "time")
ACTIONS = ("exclude", "set", "undo")
REASONS = ("not a painting", "duplicate", "damaged image", "other")
#: Columns a decision may not change: they tie a row to its image.
FIXED_COLUMNS = ("id", "path")
#: A cell starting with one of these is run as a formula by spreadsheets (OWASP's CSV injection advice).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclasses.dataclass
class Curated:
    """A collection with its curation applied.

    ``manifest``: the effective rows (excluded paintings removed, labels set); ``decisions``: the decisions in force
    on paintings of the collection (one row per id and column); ``rows``: rows in curation.csv; ``sha256``: of that
    file (None when there is none); ``orphans``: decisions in force on ids the manifest no longer holds.
    """

    manifest: pd.DataFrame
    decisions: pd.DataFrame
    rows: int = 0
    sha256: str | None = None
    orphans: int = 0

    @property
    def excluded(self) -> set[str]:
        return set(self.decisions.loc[self.decisions["action"] == "exclude", "id"])

    @property
    def relabelled(self) -> int:
        return int((self.decisions["action"] == "set").sum())

    def record(self) -> dict:
        """What a model card keeps of the curation it was trained on."""
        return {"file": CURATION, "sha256": self.sha256, "rows": self.rows, "decisions_applied": len(self.decisions),
                "excluded": len(self.excluded), "relabelled": self.relabelled}

    def flags(self) -> dict[str, list[dict]]:
        """{painting id: its decisions in force}, for badges."""
        return {pid: group.to_dict("records") for pid, group in self.decisions.groupby("id", sort=False)}


# --- reading ------------------------------------------------------------------------------------------------------

def read_decisions(folder: str | Path) -> pd.DataFrame:
    """Every row of the collection's curation.csv, in order (an empty table when there is none)."""
    path = Path(folder) / CURATION
    if not path.is_file():
        return pd.DataFrame(columns=list(COLUMNS))
    return _parse(path.read_bytes(), path)


def _parse(data: bytes, path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise CollectionError(f"unreadable curation file {path}: {str(exc).strip()[:160]}") from None
    if tuple(df.columns[:len(COLUMNS)]) != COLUMNS:
        raise CollectionError(f"curation file {path} must start with the columns {', '.join(COLUMNS)}")
    bad = df[~df["action"].isin(ACTIONS)]
    if len(bad):
        line = int(bad.index[0]) + 2  # the header is line 1
        raise CollectionError(f"curation file {path}, line {line}: unknown action {bad['action'].iloc[0]!r} "
                              f"(one of: {', '.join(ACTIONS)})")
    return df[list(COLUMNS)]


def in_force(decisions: pd.DataFrame) -> pd.DataFrame:
    """The decisions that stand: the latest per id and column, less those withdrawn by a later undo."""
    standing, _ = _replay(decisions)
    return decisions.iloc[sorted(standing.values())].reset_index(drop=True)


def _replay(decisions: pd.DataFrame) -> tuple[dict[tuple[str, str], int], set[int]]:
    """{(id, column): row number of the decision in force} ("" for an exclusion), and the rows an undo withdrew."""
    standing: dict[tuple[str, str], int] = {}
    undone: set[int] = set()
    for i, (pid, action, column) in enumerate(zip(decisions["id"], decisions["action"], decisions["column"])):
        if action == "undo":
            for key in [k for k in standing if k[0] == pid and (not column or k[1] == column)]:
                undone.add(standing.pop(key))
        else:
            standing[(pid, column if action == "set" else "")] = i
    return standing, undone


def effective(folder: str | Path) -> Curated:
    """The collection as training and the app see it: its manifest with curation.csv applied."""
    folder = Path(folder)
    return apply(read_manifest(folder), folder)


def apply(manifest: pd.DataFrame, folder: str | Path) -> Curated:
    """``manifest`` (a collection's rows) with the curation of ``folder`` applied."""
    path = Path(folder) / CURATION
    data = path.read_bytes() if path.is_file() else b""
    decisions = _parse(data, path) if data else pd.DataFrame(columns=list(COLUMNS))
    standing = in_force(decisions)
    known = standing["id"].isin(manifest["id"]) & (
        (standing["action"] == "exclude") | standing["column"].isin(manifest.columns))
    standing, orphans = standing[known].reset_index(drop=True), int((~known).sum())
    df = manifest.copy()
    position = pd.Series(range(len(df)), index=df["id"])
    for row in standing[standing["action"] == "set"].itertuples():
        df.iloc[position[row.id], df.columns.get_loc(row.column)] = row.value
    df = df[~df["id"].isin(standing.loc[standing["action"] == "exclude", "id"])].reset_index(drop=True)
    return Curated(manifest=df, decisions=standing, rows=len(decisions),
                   sha256=hashlib.sha256(data).hexdigest() if data else None, orphans=orphans)


def history(folder: str | Path) -> pd.DataFrame:
    """Every decision with its ``status``: in force, replaced (by a later one), undone, or undo (an undo row)."""
    decisions = read_decisions(folder)
    standing, undone = _replay(decisions)
    live = set(standing.values())
    status = ["undo" if a == "undo" else "in force" if i in live else "undone" if i in undone else "replaced"
              for i, a in enumerate(decisions["action"])]
    return decisions.assign(status=status)


def report_curation(folder: str | Path, manifest: pd.DataFrame, report) -> None:
    """A builder rebuilding into a folder that has a curation.csv keeps it: say in its report what of it applies to
    the new manifest, and count the labels as training will see them."""
    if not (Path(folder) / CURATION).is_file():
        return
    curated = apply(manifest, folder)
    report.curation = {**curated.record(), "orphans": curated.orphans}
    gone = f"; {curated.orphans} concern paintings no longer in the collection" if curated.orphans else ""
    report.notes.append(f"{CURATION} kept: {len(curated.decisions)} decision(s) apply ({len(curated.excluded)} "
                        f"excluded, {curated.relabelled} relabelled){gone}; training sees the curated labels")
    for label in LABEL_COLUMNS:
        if label in curated.manifest.columns:
            values = curated.manifest.loc[curated.manifest[label] != "", label]
            report.label_counts[f"{label} (curated)"] = {c: int(n) for c, n in values.value_counts().items()}


def write_manifest(folder: str | Path, df: pd.DataFrame, report=None) -> Path:
    """What every builder writes a collection through: ``contract.write_manifest``, its report first saying what of
    an existing curation.csv applies to the new manifest."""
    if report is not None:
        report_curation(folder, df, report)
    return contract.write_manifest(folder, df, report)


def since(folder: str | Path, card: dict) -> int:
    """How many decisions the collection has had since the run of ``card`` was trained on it."""
    path = Path(folder) / CURATION
    if not path.is_file():
        return 0
    trained = (card.get("task", {}).get("curation") or {}).get("rows", 0)
    return max(0, len(read_decisions(folder)) - int(trained))


# --- writing ------------------------------------------------------------------------------------------------------

def exclude(folder: str | Path, painting_id: str, reason: str = "other", note: str = "") -> dict:
    if reason not in REASONS:
        raise CollectionError(f"reason must be one of: {', '.join(REASONS)} (not {reason!r})")
    return _decide(folder, painting_id, "exclude", "", reason, note)


def relabel(folder: str | Path, painting_id: str, column: str, value: str, note: str = "") -> dict:
    return _decide(folder, painting_id, "set", column, value, note)


def undo(folder: str | Path, painting_id: str, column: str = "", note: str = "") -> dict:
    return _decide(folder, painting_id, "undo", column, "", note)


def _decide(folder: str | Path, painting_id: str, action: str, column: str, value: str, note: str) -> dict:
    folder = Path(folder)
    why_not = unavailable(folder)
    if why_not:
        raise CollectionError(why_not)
    manifest = read_manifest(folder)
    painting_id, column, value = str(painting_id).strip(), str(column).strip(), _one_line(value)
    if painting_id not in set(manifest["id"]):
        raise CollectionError(f"no painting with id {painting_id!r} in {folder / MANIFEST}")
    if action == "set":
        _check_set(manifest, folder, column, value)
    row = {"id": painting_id, "action": action, "column": column, "value": value, "note": neutralise(_one_line(note)),
           "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    with _locked(folder):
        if action == "undo":
            standing = in_force(read_decisions(folder))
            mine = standing[(standing["id"] == painting_id) & ((standing["column"] == column) | (column == ""))]
            if mine.empty:
                raise CollectionError(f"painting {painting_id} has no decision to undo"
                                      + (f" on {column}" if column else ""))
        _append(folder / CURATION, row)
    return row


def _check_set(manifest: pd.DataFrame, folder: Path, column: str, value: str) -> None:
    if column in FIXED_COLUMNS or column not in manifest.columns:
        allowed = [c for c in manifest.columns if c not in FIXED_COLUMNS]
        raise CollectionError(f"column {column!r} cannot be set in {folder / MANIFEST} "
                              f"(choose one of: {', '.join(allowed)})")
    if not value:
        raise CollectionError(f"a new {column} needs a value (to leave the painting out, exclude it)")
    if value.startswith(FORMULA_START):
        raise CollectionError(f"a {column} may not start with {value[0]!r} (spreadsheets read it as a formula)")


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on the collection's curation (flock on a lock file: released if the process dies)."""
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _append(path: Path, row: dict) -> None:
    """Add ``row`` to curation.csv: the whole file through a temporary one, so no reader sees half a row."""
    old = path.read_bytes() if path.is_file() else b""
    if old:
        _parse(old, path)  # refuse to append to a file artlab would not read back
    buffer = io.StringIO()
    pd.DataFrame([row], columns=list(COLUMNS)).to_csv(buffer, index=False, header=not old, lineterminator="\n")
    if old and not old.endswith(b"\n"):
        old += b"\n"
    atomic_write_bytes(path, old + buffer.getvalue().encode("utf-8"))


def unavailable(folder: str | Path) -> str | None:
    """Why decisions cannot be recorded in ``folder`` (None when they can)."""
    folder = Path(folder)
    if not folder.is_dir():
        return f"the collection folder {folder} is not on this machine"
    if not (folder / MANIFEST).is_file():
        return f"{folder} is not a collection (it has no {MANIFEST})"
    for path in (folder, folder / CURATION, folder / LOCK):
        if path.exists() and not os.access(path, os.W_OK):
            return f"the collection folder {folder} is read-only here ({path.name} cannot be written)"
    return None


# --- for people ---------------------------------------------------------------------------------------------------

def neutralise(text: str) -> str:
    """A cell a spreadsheet shows as text: a leading = + - @ tab or CR gets a quote in front."""
    text = str(text)
    return "'" + text if text.startswith(FORMULA_START) else text


def _one_line(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]+", " ", str(text or "")).strip()


def to_csv(table: pd.DataFrame) -> bytes:
    """A table as CSV for people to open: every text cell neutralised."""
    safe = table.copy()
    for c in safe.columns:
        safe[c] = safe[c].map(lambda v: neutralise(v) if isinstance(v, str) else v)
    return safe.to_csv(index=False).encode("utf-8")


def describe(decision: dict) -> str:
    """A decision in a few words: "excluded (duplicate)", "genre set to portrait"."""
    if decision["action"] == "exclude":
        return f"excluded ({decision['value']})"
    return f"{decision['column']} set to {decision['value']}"
