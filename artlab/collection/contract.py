"""The collection contract: a folder of images plus ``manifest.csv`` (see docs/design.md).

One manifest row an image, with at least ``REQUIRED_COLUMNS`` and one column per label it carries (``genre``,
``culture``). An empty label means "no rule labelled it": such rows are kept for browsing but never trained on.
Builders return a ``BuildReport`` saying what they kept, merged and dropped, and why.
"""

from __future__ import annotations

import collections
import dataclasses
import json
from pathlib import Path

import pandas as pd

from artlab.errors import CollectionError
from artlab.io import atomic_save, atomic_write_json
from artlab.safety import recognise

MANIFEST = "manifest.csv"
REPORT = "report.json"
CURATION, CURATION_LOCK = "curation.csv", ".curation.csv.lock"  # a curator's decisions (collection/curation.py)
REQUIRED_COLUMNS = ("id", "path", "title", "artist", "date", "source", "license")
LABEL_COLUMNS = ("genre", "culture")

#: The long side, in pixels, that collection builders shrink images to by default (WikiArt: 512). Models resize the
#: short side to a few hundred pixels; files this size decode in a few ms (benchmarks/bench_embed_throughput.py).
MAX_SIDE = 1024

# a folder with a manifest and a report is artlab's collection (artlab.safety.check_output may resume or replace it)
recognise("collection", lambda folder: (folder / MANIFEST).is_file() and (folder / REPORT).is_file())


@dataclasses.dataclass
class BuildReport:
    """What a builder kept and dropped: counts per reason, and per class (the culture study's Table 1)."""

    source: str
    kept: int = 0
    dropped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    merged: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    per_class: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    label_counts: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)
    curation: dict = dataclasses.field(default_factory=dict)  # what of an existing curation.csv applies

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] += n

    def to_dict(self) -> dict:
        return {"source": self.source, "kept": self.kept, "dropped": dict(self.dropped), "merged": self.merged,
                "per_class": self.per_class,
                "label_counts": self.label_counts, "notes": self.notes, "curation": self.curation}

    def lines(self) -> list[str]:
        out = [f"{self.source}: kept {self.kept} images"]
        out += [f"  dropped {n}: {reason}" for reason, n in self.dropped.most_common()]
        out += [f"  merged into {k}: {', '.join(v)}" for k, v in self.merged.items()]
        if self.per_class:
            paper = any("paper_initial" in c for c in self.per_class.values())  # the study's Table 1, when known
            out.append(f"  {'class':<20}{'initial':>9}{'excluded':>10}{'final':>7}"
                       + (f"{'paper initial':>15}{'paper final':>13}" if paper else ""))
            for name, c in sorted(self.per_class.items(), key=lambda kv: -kv[1].get("final", 0)):
                out.append(f"  {name:<20}{c.get('initial', 0):>9}{c.get('excluded', 0):>10}{c.get('final', 0):>7}"
                           + (f"{c.get('paper_initial', ''):>15}{c.get('paper_final', ''):>13}" if paper else ""))
        for label, counts in self.label_counts.items():
            out.append(f"  {label}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        out += [f"  note: {n}" for n in self.notes]
        return out


def write_manifest(folder: str | Path, df: pd.DataFrame, report: BuildReport | None = None) -> Path:
    """Validate and atomically write ``manifest.csv`` (and ``report.json``) into ``folder``. Builders write through
    ``curation.write_manifest``, which first adds to the report what of an existing curation.csv applies."""
    folder = Path(folder)
    validate_manifest(df, folder, check_files=True)
    atomic_save(folder / MANIFEST, lambda tmp: df.to_csv(tmp, index=False))
    if report is not None:
        atomic_write_json(folder / REPORT, report.to_dict())
    return folder / MANIFEST


def is_collection(folder: str | Path) -> bool:
    """Whether ``folder`` holds a collection (its manifest)."""
    return (Path(folder) / MANIFEST).is_file()


def read_manifest(folder: str | Path) -> pd.DataFrame:
    """Read and validate a collection's manifest; labels and text columns come back as strings ('' if missing)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise CollectionError(f"not a collection: {folder} has no {MANIFEST} (build one with `artlab data ...`)")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise CollectionError(f"unreadable manifest {path}: {exc}") from None
    validate_manifest(df, folder, check_files=False)
    return df


def read_report(folder: str | Path) -> dict | None:
    """The builder's ``report.json`` of a collection, or None when it has none (or an unreadable one)."""
    path = Path(folder) / REPORT
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError, RecursionError):  # not JSON, not UTF-8, nested too deeply
        return None


def validate_manifest(df: pd.DataFrame, folder: Path, check_files: bool) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise CollectionError(f"manifest in {folder} lacks column(s): {', '.join(missing)}")
    dup = df["id"][df["id"].duplicated()]
    if len(dup):
        raise CollectionError(f"manifest in {folder} repeats id(s): {', '.join(map(str, dup[:5]))}")
    if check_files:
        absent = [p for p in df["path"] if not (folder / p).is_file()]
        if absent:
            raise CollectionError(f"manifest in {folder} names {len(absent)} missing file(s), e.g. {absent[0]}")


def labelled(df: pd.DataFrame, label: str) -> pd.DataFrame:
    """Rows that carry ``label`` (non-empty)."""
    if label not in df.columns:
        have = [c for c in LABEL_COLUMNS if c in df.columns] or ["none"]
        raise CollectionError(f"this collection has no '{label}' labels (it has: {', '.join(have)})")
    return df[df[label].astype(str).str.len() > 0]
