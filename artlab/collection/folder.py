"""A user's own collection: one sub-folder per class, or a CSV listing ``path,label`` (and optional metadata).

Every image is opened with ``load_image`` before it enters the collection; unreadable files are skipped and named in
the report. By default images are re-encoded as JPEG (capped at ``max_side``) into ``out/images/<class>/``; with
``copy=False`` they stay where they are and the manifest points at them by relative path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd
from PIL import Image

from artlab.collection.contract import MANIFEST, MAX_SIDE, REQUIRED_COLUMNS, BuildReport
from artlab.collection.curation import FORMULA_START, write_manifest
from artlab.collection.csvread import read_table
from artlab.errors import CollectionError, ConfigError, ImageError
from artlab.images import IMAGE_SUFFIXES, encode_jpeg, fit_within, load_image
from artlab.io import atomic_write_bytes
from artlab.progress import Progress
from artlab.safety import OutputError, check_output, mark_output

CSV_REQUIRED = ("path", "label")
CSV_OPTIONAL = ("title", "artist", "date", "license")
UNLABELLED = "_unlabelled"
#: The longest label (it names a folder of the collection) and the longest file stem kept in an image's new name.
MAX_LABEL, MAX_STEM = 100, 100
#: With copy=False an image is only checked: decoding it (all of its data) at a small scale is enough.
_VERIFY_SIDE = 64


@dataclass(frozen=True)
class Item:
    """One image file to bring in, with its class and what the user told us about it."""

    file: Path
    label: str
    title: str = ""
    artist: str = ""
    date: str = ""
    license: str = ""


def build_folder(src: str | Path, out: str | Path, *, label: str = "genre", csv: str | Path | None = None,
                 max_side: int | None = MAX_SIDE, copy: bool = True, progress: Progress | None = None,
                 encoding: str | None = None, delimiter: str | None = None) -> BuildReport:
    """Build a collection in ``out`` from a folder of class sub-folders, or from a CSV of ``path,label``.

    ``src`` is the folder (or the CSV itself). With ``csv``, relative paths are looked up beside the CSV first, then
    in ``src``; its encoding and delimiter are detected unless given (artlab.csvread). ``label`` names the manifest
    column the classes go into ("genre", "culture", ...). ``out`` must be new, empty or an artlab collection (resumed);
    never the source, inside it or around it; no file being read is ever written over.
    """
    src, out = Path(src).expanduser(), Path(out).expanduser()
    _check_label(label)
    if csv is None and src.is_file() and src.suffix.lower() == ".csv":
        csv = src
    if not src.exists():
        raise CollectionError(f"no such folder: {src}")
    check_output(out, "collection", resume=True, sources={"the source folder": src, "the labels CSV": csv})
    report = BuildReport(source=f"folder ({csv or src})")
    items = items_from_csv(Path(csv), src, report, encoding=encoding, delimiter=delimiter) if csv else \
        items_from_folders(src, out, report)
    _check_labels(items, Path(csv).name if csv else str(src))  # before anything is written
    mark_output(out, "collection")
    rows = _bring_in(items, out, label, max_side, copy, report, progress)
    df = pd.DataFrame(rows, columns=[*REQUIRED_COLUMNS, label, "original"])
    _summarise(report, df, label, max_side, copy)
    write_manifest(out, df, report)
    return report


def _check_label(label: str) -> None:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", label) or label in REQUIRED_COLUMNS or label == "original":
        raise ConfigError(f"'{label}' cannot be a label column: use a lower-case name like genre or culture")


def _check_labels(items: list[Item], where: str) -> None:
    """Labels become manifest cells and folder names: none may read as a spreadsheet formula (as curate refuses) or
    be too long for a folder name."""
    for item in items:
        if item.label.startswith(FORMULA_START):
            raise CollectionError(f"{where}: the label {item.label[:40]!r} (of {item.file.name}) starts with "
                                  f"{item.label[0]!r}, which spreadsheets read as a formula: rename the class")
        if len(item.label) > MAX_LABEL:
            raise CollectionError(f"{where}: the label {item.label[:40]!r}... (of {item.file.name}) is "
                                  f"{len(item.label)} characters long; a class name may have at most {MAX_LABEL}")


# --- what to bring in -------------------------------------------------------------------------------------------

def items_from_folders(src: Path, out: Path, report: BuildReport) -> list[Item]:
    """Every file under each class sub-folder of ``src`` (recursively; hidden files and folders are ignored)."""
    if not src.is_dir():
        raise CollectionError(f"no such folder: {src}")
    classes = [d for d in sorted(src.iterdir()) if _is_class_dir(d, out)]
    if not classes:
        raise CollectionError(f"{src} has no class sub-folders: put each class's images in its own folder "
                              f"(e.g. {src}/portrait/, {src}/landscape/), or give a CSV of path,label")
    items = []
    for folder in classes:
        files = [f for f in sorted(folder.rglob("*")) if f.is_file() and not _hidden(f.relative_to(src))]
        if not files:
            raise CollectionError(f"class '{folder.name}' has no readable images (its folder {folder} is empty)")
        items += [Item(file=f, label=folder.name) for f in files]
    loose = [f.name for f in src.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
    if loose:
        report.notes.append(f"{len(loose)} image(s) directly in {src} (outside any class folder) were left out, "
                            f"e.g. {loose[0]}")
    return items


def _is_class_dir(path: Path, out: Path) -> bool:
    """A visible sub-folder that is not the output collection itself (``out`` may live inside ``src``)."""
    if not path.is_dir() or path.name.startswith(".") or (path / MANIFEST).exists():
        return False
    return not (out.exists() and path.resolve() == out.resolve())


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def items_from_csv(csv: Path, src: Path, report: BuildReport, encoding: str | None = None,
                   delimiter: str | None = None) -> list[Item]:
    """One item per CSV row; paths relative to the CSV's folder (or ``src``) or absolute. Empty labels stay empty."""
    df = _read_csv(csv, encoding, delimiter)
    items, seen = [], set()
    for i, rec in df.iterrows():
        file = _locate(rec["path"], csv.parent, src)
        if file is None:
            report.drop(f"listed in {csv.name} (line {i + 2}) but not found: {rec['path']}")
            continue
        if file.resolve() in seen:
            report.drop(f"listed twice in {csv.name}: {rec['path']}")
            continue
        seen.add(file.resolve())
        items.append(Item(file=file, label=rec["label"].strip(),
                          **{c: rec[c].strip() for c in CSV_OPTIONAL if c in df.columns}))
    if not items:
        raise CollectionError(f"none of the {len(df)} file(s) listed in {csv} exist (paths are read relative to "
                              f"{csv.parent}" + (f" or {src})" if src.is_dir() else ")"))
    return items


def _read_csv(csv: Path, encoding: str | None = None, delimiter: str | None = None) -> pd.DataFrame:
    df = read_table(csv, encoding=encoding, delimiter=delimiter)
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = [c for c in CSV_REQUIRED if c not in df.columns]
    if missing:
        raise CollectionError(f"{csv.name} lacks column(s): {', '.join(missing)} (it needs path,label; "
                              f"optional: {','.join(CSV_OPTIONAL)}; it has: {', '.join(df.columns)})")
    if df.empty:
        raise CollectionError(f"{csv.name} lists no images")
    return df


def _locate(path: str, *bases: Path) -> Path | None:
    candidate = Path(path.strip()).expanduser()
    if candidate.is_absolute():
        return candidate if candidate.is_file() else None
    for base in bases:
        if base.is_dir() and (base / candidate).is_file():
            return base / candidate
    return None


# --- bringing images in -----------------------------------------------------------------------------------------

def _bring_in(items: list[Item], out: Path, label: str, max_side: int | None, copy: bool, report: BuildReport,
              progress: Progress | None) -> list[dict]:
    """Verify every item, write (or reference) it, and return its manifest row; unreadable files are dropped."""
    out.mkdir(parents=True, exist_ok=True)  # "../x.jpg" paths resolve only from an existing folder
    rows, names, first_failure = [], _OutputNames(), {}
    reading = {item.file.resolve() for item in items}
    progress = progress or Progress()
    progress.stage("images", len(items))
    for item in items:
        try:
            im = _verified(item.file, max_side if copy else _VERIFY_SIDE)
        except ImageError as exc:
            report.drop(str(exc))
            first_failure.setdefault(item.label, str(exc))
        else:
            rel = names.next(item)
            if copy and (out / rel).resolve() in reading:
                raise OutputError(f"{out / rel} is one of the images being read: artlab will not write over it")
            if copy:
                atomic_write_bytes(out / rel, encode_jpeg(fit_within(im, max_side) if max_side else im))
            path = rel if copy else Path(os.path.relpath(item.file.resolve(), out.resolve())).as_posix()
            rows.append(_row(item, path, label, names.id_of(rel)))
        progress.advance(1)
    progress.done()
    report.per_class.update(_per_class(items, rows, label))
    for name, c in report.per_class.items():
        if name != "(unlabelled)" and c["final"] == 0:
            raise CollectionError(f"class '{name}' has no readable images ({c['initial']} file(s); "
                                  f"e.g. {first_failure.get(name, 'none found')})")
    return rows


def _verified(file: Path, min_side: int | None) -> Image.Image:
    """The decoded image; JPEGs decode at a reduced scale when only ``min_side`` pixels are needed (much faster)."""
    if file.suffix.lower() not in IMAGE_SUFFIXES:
        raise ImageError(f"not an image file type: {file.name} (expected one of {' '.join(IMAGE_SUFFIXES)})")
    return load_image(file, min_side=min_side)


def title_from_name(stem: str) -> str:
    """A title from a file name: underscores become spaces and a trailing catalogue number is dropped
    ("The_Coronation_of_the_Virgin_435853" -> "The Coronation of the Virgin"). Only a trailing number of four digits
    or more after a separator counts as an id, and never one that reads as a year (1000-2099): "Lot_7", "Study 12"
    and "View_of_Delft_1660" keep theirs, as does a name that is only a number."""
    text = re.sub(r"[_\s]+", " ", stem).strip()
    found = re.search(r"(?<=\S)[ -]+(\d{4,})$", text)
    if found is None or re.fullmatch(r"1\d{3}|20\d\d", found.group(1)):
        return text
    return text[:found.start()].rstrip(" -")


def _row(item: Item, rel: str, label: str, image_id: str) -> dict:
    return {"id": image_id, "path": rel, "title": item.title or title_from_name(item.file.stem),
            "artist": item.artist, "date": item.date, "source": "folder", "license": item.license, label: item.label,
            "original": str(item.file)}


class _OutputNames:
    """``images/<class>/<stem>.jpg`` for each item, with ``-2``, ``-3``... when two files would share a name."""

    def __init__(self):
        self.taken: set[str] = set()

    def next(self, item: Item) -> str:
        folder = _slug(item.label) or UNLABELLED
        stem = _slug(item.file.stem)[:MAX_STEM] or "image"
        rel, n = f"images/{folder}/{stem}.jpg", 1
        while rel.lower() in self.taken:
            n += 1
            rel = f"images/{folder}/{stem}-{n}.jpg"
        self.taken.add(rel.lower())
        return rel

    def id_of(self, rel: str) -> str:
        return "folder-" + _slug(rel.removeprefix("images/").removesuffix(".jpg").replace("/", "-"))


def _slug(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text.strip(), flags=re.UNICODE).strip("._")


def _per_class(items: Iterable[Item], rows: list[dict], label: str) -> dict[str, dict[str, int]]:
    """{class: {initial: files listed, excluded: unreadable, final: kept}}; empty labels count as "(unlabelled)"."""
    counts: dict[str, dict[str, int]] = {}
    for item in items:
        counts.setdefault(item.label or "(unlabelled)", {"initial": 0, "excluded": 0, "final": 0})["initial"] += 1
    for row in rows:
        counts[row[label] or "(unlabelled)"]["final"] += 1
    for c in counts.values():
        c["excluded"] = c["initial"] - c["final"]
    return counts


def _summarise(report: BuildReport, df: pd.DataFrame, label: str, max_side: int | None, copy: bool) -> None:
    report.kept = len(df)
    report.label_counts[label] = {c or "(unlabelled)": int(n) for c, n in df[label].value_counts().items()}
    if copy:
        report.notes.append("images re-encoded as JPEG" + (f", at most {max_side} px on the long side" if max_side
                                                           else ", at their own size"))
    else:
        report.notes.append("images left in place (copy=False): the manifest points at them by relative path, "
                            "so moving either folder breaks the collection")
    if (df["license"] == "").any():
        report.notes.append("licence unknown for images without a license column value: check your rights "
                            "before sharing the collection")
    classes = df.loc[df[label] != "", label].nunique()
    if classes < 2:
        report.notes.append(f"{classes} class(es) with images: training needs at least two")
