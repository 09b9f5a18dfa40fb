"""The seeded per-genre sample, its images written (checked, shrunk) as they are read, and the manifest rows;
a rerun keeps the images already written."""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from artlab.collection.contract import BuildReport
from artlab.errors import ConfigError, ImageError
from artlab.images import encode_jpeg, fit_within, load_image
from artlab.io import atomic_write_bytes
from artlab.collection.rules import WIKIART_GENRES
from artlab.collection.wikiart.hub import cache_dir
from artlab.collection.wikiart.names import ARTIST_DISPLAY, CACHE, LICENSE, REJECTS
from artlab.collection.wikiart.remote import Shard, hub_shards
from artlab.collection.wikiart.shards import read_image_bytes
from artlab.progress import Progress


def resolve_genres(genres: Iterable[str], genre_names: Sequence[str]) -> list[int]:
    """WikiArt genre indices for names in WikiArt's or artlab's spelling; ConfigError naming the valid ones."""
    artlab_to_wikiart = {v: k for k, v in WIKIART_GENRES.items()}
    lookup = {n.lower(): i for i, n in enumerate(genre_names) if n != "Unknown Genre"}
    chosen: list[int] = []
    for name in genres:
        key = artlab_to_wikiart.get(name.strip().lower(), name.strip().lower()).replace(" ", "_")
        if key not in lookup:
            valid = ", ".join(n for n in genre_names if n != "Unknown Genre")
            raise ConfigError(f"unknown WikiArt genre '{name}'; choose from: {valid}")
        if lookup[key] not in chosen:
            chosen.append(lookup[key])
    if not chosen:
        raise ConfigError("no genres chosen")
    return chosen


def artlab_genre(wikiart_name: str) -> str:
    """artlab's name for a WikiArt genre ("still_life" -> "still life"); unmapped ones lose their underscores."""
    return WIKIART_GENRES.get(wikiart_name, wikiart_name.replace("_", " "))


def sample_order(index: pd.DataFrame, genre: int, seed: int) -> np.ndarray:
    """Every row of ``genre`` in a seeded random order: the first ``per_class`` are the sample, the rest replacements.

    Each genre gets its own generator, seeded with (seed, genre), so a genre's sample does not change when other
    genres are added to or removed from the request.
    """
    rows = index.loc[index["genre"] == genre, "row"].to_numpy()
    rng = np.random.default_rng([seed, genre])
    return rows[rng.permutation(len(rows))]


# --- sampling and writing images --------------------------------------------------------------------------------

def _collect(out: Path, shards: Sequence[Shard], index: pd.DataFrame, names: dict, plan: dict[int, np.ndarray],
             per_class: int, max_side: int, rejects: dict[str, str], report: BuildReport,
             progress: Progress | None) -> tuple[dict[int, list[int]], dict[int, int]]:
    """Walk each genre's sample order until ``per_class`` images are written (or candidates run out).

    Works in rounds: the first takes ``per_class`` candidates per genre, later ones replace the images that failed.
    Returns the kept rows per genre and how many candidates each genre went through.
    """
    kept: dict[int, list[int]] = {g: [] for g in plan}
    cursor = dict.fromkeys(plan, 0)
    total = sum(min(per_class, len(order)) for order in plan.values())
    progress = progress or Progress()
    progress.stage("WikiArt images", total)
    while batch := _next_batch(plan, kept, cursor, per_class, rejects, report):
        for row, ok in _materialise(out, shards, index, names, batch, max_side, rejects, report):
            if ok:
                kept[batch[row]].append(row)
                progress.advance(1)
    progress.done()
    return {g: sorted(rows) for g, rows in kept.items()}, cursor


def _next_batch(plan: dict[int, np.ndarray], kept: dict[int, list[int]], cursor: dict[int, int], per_class: int,
                rejects: dict[str, str], report: BuildReport) -> dict[int, int]:
    """{row: genre} for the next candidates; rows that failed in an earlier build are skipped (and still reported)."""
    batch: dict[int, int] = {}
    for genre, order in plan.items():
        need = per_class - len(kept[genre])
        while need > 0 and cursor[genre] < len(order):
            row = int(order[cursor[genre]])
            cursor[genre] += 1
            if image_id(row) in rejects:
                report.drop(rejects[image_id(row)])
                continue
            batch[row] = genre
            need -= 1
    return batch


def _materialise(out: Path, shards: Sequence[Shard], index: pd.DataFrame, names: dict, batch: dict[int, int],
                 max_side: int, rejects: dict[str, str], report: BuildReport) -> Iterator[tuple[int, bool]]:
    """(row, written?) for each row of ``batch``: images already on disk first, then the rest shard by shard."""
    todo = []
    for row, genre in batch.items():
        if _usable(out / _image_path(names, genre, row), max_side):
            yield row, True
        else:
            todo.append(row)
    rows = index.set_index("row").loc[todo]
    for shard, group in rows.groupby("shard", sort=True):
        local_to_row = dict(zip(group["local"], group.index))
        for local, blob in read_image_bytes(shards[shard], list(local_to_row)):
            row = int(local_to_row[local])
            try:
                _write_image(blob, row, out / _image_path(names, batch[row], row), max_side)
            except ImageError as exc:
                rejects[image_id(row)] = str(exc)
                report.drop(str(exc))
                yield row, False
                continue
            yield row, True


def _write_image(blob: bytes | None, row: int, target: Path, max_side: int) -> None:
    if not blob:
        raise ImageError(f"no image bytes in the parquet row: {image_id(row)}")
    im = load_image(blob, name=image_id(row), min_side=max_side)
    atomic_write_bytes(target, encode_jpeg(fit_within(im, max_side)))


def _usable(path: Path, max_side: int) -> bool:
    """True for a file we wrote earlier that still decodes and respects ``max_side`` (decoded at 1/8 scale: cheap)."""
    if not path.is_file():
        return False
    try:
        with Image.open(path) as im:
            if max(im.size) > max_side:
                return False
            im.draft("RGB", (1, 1))
            im.load()
        return True
    except (OSError, SyntaxError, ValueError):
        return False


def image_id(row: int) -> str:
    return f"wikiart-{row}"


def _image_path(names: dict, genre: int, row: int) -> str:
    return f"images/{names['genre'][genre]}/{image_id(row)}.jpg"


def _load_rejects(out: Path, source: str) -> dict[str, str]:
    """Rows that failed to decode in an earlier build of the same source, so a rerun does not decode them again."""
    try:
        saved = json.loads((out / CACHE / REJECTS).read_text())
    except (OSError, ValueError):
        return {}
    return dict(saved.get("rejects", {})) if saved.get("source") == str(source) else {}


# --- manifest and report ----------------------------------------------------------------------------------------

def _manifest(index: pd.DataFrame, names: dict, kept: dict[int, list[int]]) -> pd.DataFrame:
    by_row = index.set_index("row")
    rows = []
    for genre, chosen in kept.items():
        for row in chosen:
            rec = by_row.loc[row]
            title, file_artist, date = parse_file_name(rec["file"] if isinstance(rec["file"], str) else "")
            rows.append({
                "id": image_id(row), "path": _image_path(names, genre, row), "title": title,
                "artist": _artist(names["artist"], int(rec["artist"])) or file_artist, "date": date,
                "source": "wikiart", "license": LICENSE, "genre": artlab_genre(names["genre"][genre]),
                "style": _label(names["style"], int(rec["style"])).replace("_", " "),
            })
    columns = ["id", "path", "title", "artist", "date", "source", "license", "genre", "style"]
    return pd.DataFrame(rows, columns=columns)


def _label(names: Sequence[str], i: int) -> str:
    return names[i] if 0 <= i < len(names) else ""


def _artist(names: Sequence[str], i: int) -> str:
    slug = _label(names, i)
    return "" if slug in ("", "Unknown Artist") else display_name(slug)


_LOWER_PARTICLES = {"van", "von", "de", "da", "der", "den", "del", "di", "du", "la", "le", "the", "y"}
#: "claude-monet_water-lilies-1916-1": artist slug, title slug, then an optional year and WikiArt's "-1" duplicate mark.
_FILE_NAME = re.compile(r"^(?:(?P<artist>[^_]+)_)?(?P<title>.*?)(?:-(?P<year>1\d{3}|20\d{2}))?(?:-\d{1,2})?$")


def display_name(slug: str) -> str:
    """'vincent-van-gogh' -> 'Vincent van Gogh'. Slugs lost accents and inner hyphens; we cannot restore them."""
    if slug in ARTIST_DISPLAY:
        return ARTIST_DISPLAY[slug]
    words = [w for w in slug.split("-") if w]
    return " ".join(w if i and w in _LOWER_PARTICLES else w[:1].upper() + w[1:] for i, w in enumerate(words))


def parse_file_name(path: str) -> tuple[str, str, str]:
    """(title, artist, date) from a WikiArt file name like 'vincent-van-gogh_the-starry-night-1889.jpg'.

    Anything that does not have that form gives ('', '', '') parts where it cannot tell.
    """
    stem = PurePosixPath(path.replace("\\", "/")).stem if path else ""
    m = _FILE_NAME.match(stem)
    if not stem or not m:
        return "", "", ""
    title = m["title"].replace("-", " ").strip()
    artist = display_name(m["artist"]) if m["artist"] else ""
    return title[:1].upper() + title[1:], artist, m["year"] or ""


def _summarise(report: BuildReport, n_rows: int, names: dict, plan: dict[int, np.ndarray],
               kept: dict[int, list[int]], tried: dict[int, int], per_class: int, seed: int, max_side: int) -> None:
    """Per genre: rows in the dataset (initial), candidates rejected as unreadable (excluded), images kept (final)."""
    report.kept = sum(len(rows) for rows in kept.values())
    for genre, order in plan.items():
        name = artlab_genre(names["genre"][genre])
        final = len(kept[genre])
        report.per_class[name] = {"initial": int(len(order)), "excluded": tried[genre] - final, "final": final}
        if final < per_class:
            report.notes.append(f"{name}: only {final} usable images of the {per_class} asked for")
    report.notes.append(f"balanced sample: up to {per_class} per genre with seed {seed} (of {n_rows} rows); "
                        f"images resized to at most {max_side} px")
    report.notes.append("genre names mapped to artlab's by artlab.collection.rules.WIKIART_GENRES")
    report.notes.append(f"license: {LICENSE}")


def _note_leftovers(out: Path, df: pd.DataFrame, shards: Sequence[Shard], report: BuildReport) -> None:
    """Say what lies in ``out`` beyond the collection: images of earlier samples, downloaded shards."""
    listed = set(df["path"])
    orphans = [p for p in (out / "images").rglob("*.jpg") if p.relative_to(out).as_posix() not in listed]
    if orphans:
        report.notes.append(f"{len(orphans)} image file(s) under images/ are not in this sample (an earlier build "
                            f"with other settings); the manifest ignores them")
    if hub_shards(shards):
        folder = shards[0].folder
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 1e9 if folder.is_dir() else 0.0
        whole = sum(s.whole is not None and folder not in s.whole.parents for s in shards)
        report.notes.append(f"hub data: parts of shards in {folder} ({size:.2f} GB: delete it when no rebuild is "
                            f"needed); {whole} whole shard(s) in the Hugging Face cache ({cache_dir()})")
