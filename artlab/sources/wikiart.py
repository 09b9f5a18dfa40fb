"""The GenRe study's data: a balanced, seeded per-genre sample of WikiArt as the Hugging Face hub holds it.

``huggan/wikiart`` is a set of parquet shards with columns ``image`` (a struct {bytes, path}), ``artist``, ``genre`` and
``style`` (class-label integers). The builder reads only the cheap ``genre`` column of every shard first, samples
``per_class`` rows per genre with a seed, and then reads the image bytes of just those rows. Shards come from a local
file or folder, or from the hub over plain HTTP (resumable, cached in ``<out>/.cache/``): neither ``huggingface_hub``
nor ``datasets`` is needed.

An image's id is ``wikiart-<row>``, its row number in the dataset's train split (shards in order), so a sample does not
depend on how the split was cut into shards.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator, Sequence, TypeVar
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from ..collection import BuildReport, write_manifest
from ..errors import CollectionError, ConfigError, DownloadError, ImageError
from ..images import encode_jpeg, fit_within, load_image
from ..io import atomic_write_bytes, atomic_write_json
from ..safety import check_output, mark_output
from .rules import WIKIART_GENRES

# --- what the dataset's integers mean --------------------------------------------------------------------------
# The ClassLabel names of huggan/wikiart, index = the integer stored in the parquet files. They come from the dataset
# card's ``dataset_info`` (README.md and dataset_infos.json of https://huggingface.co/datasets/huggan/wikiart; 11
# genres including "Unknown Genre", 27 styles, 129 artists including "Unknown Artist"), checked against copies of that
# card on the hub and against several independent projects that hard-code the same lists. Index 49 is stored on the
# card as mis-decoded UTF-8 ("joaquín" read as Latin-1); we keep the card's spelling and fix it only for display.
# Shards written by `datasets` carry these names in their own schema metadata; when present, those win (_label_names).

GENRE_NAMES = ("abstract_painting", "cityscape", "genre_painting", "illustration", "landscape", "nude_painting",
               "portrait", "religious_painting", "sketch_and_study", "still_life", "Unknown Genre")

STYLE_NAMES = ("Abstract_Expressionism", "Action_painting", "Analytical_Cubism", "Art_Nouveau", "Baroque",
               "Color_Field_Painting", "Contemporary_Realism", "Cubism", "Early_Renaissance", "Expressionism",
               "Fauvism", "High_Renaissance", "Impressionism", "Mannerism_Late_Renaissance", "Minimalism",
               "Naive_Art_Primitivism", "New_Realism", "Northern_Renaissance", "Pointillism", "Pop_Art",
               "Post_Impressionism", "Realism", "Rococo", "Romanticism", "Symbolism", "Synthetic_Cubism", "Ukiyo_e")

ARTIST_NAMES = (
    "Unknown Artist", "boris-kustodiev", "camille-pissarro", "childe-hassam", "claude-monet", "edgar-degas",
    "eugene-boudin", "gustave-dore", "ilya-repin", "ivan-aivazovsky", "ivan-shishkin", "john-singer-sargent",
    "marc-chagall", "martiros-saryan", "nicholas-roerich", "pablo-picasso", "paul-cezanne", "pierre-auguste-renoir",
    "pyotr-konchalovsky", "raphael-kirchner", "rembrandt", "salvador-dali", "vincent-van-gogh", "hieronymus-bosch",
    "leonardo-da-vinci", "albrecht-durer", "edouard-cortes", "sam-francis", "juan-gris", "lucas-cranach-the-elder",
    "paul-gauguin", "konstantin-makovsky", "egon-schiele", "thomas-eakins", "gustave-moreau", "francisco-goya",
    "edvard-munch", "henri-matisse", "fra-angelico", "maxime-maufra", "jan-matejko", "mstislav-dobuzhinsky",
    "alfred-sisley", "mary-cassatt", "gustave-loiseau", "fernando-botero", "zinaida-serebriakova", "georges-seurat",
    "isaac-levitan", "joaqu\u00e3\u00adn-sorolla", "jacek-malczewski", "berthe-morisot", "andy-warhol",
    "arkhip-kuindzhi", "niko-pirosmani", "james-tissot", "vasily-polenov", "valentin-serov", "pietro-perugino",
    "pierre-bonnard", "ferdinand-hodler", "bartolome-esteban-murillo", "giovanni-boldini", "henri-martin",
    "gustav-klimt", "vasily-perov", "odilon-redon", "tintoretto", "gene-davis", "raphael", "john-henry-twachtman",
    "henri-de-toulouse-lautrec", "antoine-blanchard", "david-burliuk", "camille-corot", "konstantin-korovin",
    "ivan-bilibin", "titian", "maurice-prendergast", "edouard-manet", "peter-paul-rubens", "aubrey-beardsley",
    "paolo-veronese", "joshua-reynolds", "kuzma-petrov-vodkin", "gustave-caillebotte", "lucian-freud", "michelangelo",
    "dante-gabriel-rossetti", "felix-vallotton", "nikolay-bogdanov-belsky", "georges-braque", "vasily-surikov",
    "fernand-leger", "konstantin-somov", "katsushika-hokusai", "sir-lawrence-alma-tadema", "vasily-vereshchagin",
    "ernst-ludwig-kirchner", "mikhail-vrubel", "orest-kiprensky", "william-merritt-chase", "aleksey-savrasov",
    "hans-memling", "amedeo-modigliani", "ivan-kramskoy", "utagawa-kuniyoshi", "gustave-courbet", "william-turner",
    "theo-van-rysselberghe", "joseph-wright", "edward-burne-jones", "koloman-moser", "viktor-vasnetsov",
    "anthony-van-dyck", "raoul-dufy", "frans-hals", "hans-holbein-the-younger", "ilya-mashkov",
    "henri-fantin-latour", "m.c.-escher", "el-greco", "mikalojus-ciurlionis", "james-mcneill-whistler",
    "karl-bryullov", "jacob-jordaens", "thomas-gainsborough", "eugene-delacroix", "canaletto",
)

#: Display fixes for names that a slug cannot spell.
ARTIST_DISPLAY = {"joaqu\u00e3\u00adn-sorolla": "Joaquín Sorolla", "m.c.-escher": "M. C. Escher"}

#: The GenRe study's four genres, in WikiArt's spelling.
STUDY_GENRES = ("portrait", "landscape", "still_life", "sketch_and_study")

HUB_REPO = "huggan/wikiart"
DEFAULT_ENDPOINT = "https://huggingface.co"
LICENSE = "WikiArt (for research; check each work's rights)"
CACHE = ".cache"
REJECTS = "wikiart-rejects.json"

#: Download retries per shard, and the first wait between them (doubled each time; tests set it to 0).
RETRIES = 4
RETRY_WAIT_S = 1.0
_CHUNK = 1 << 16  # what a dropped connection can lose (urllib3 drops a partly read chunk)

T = TypeVar("T")
ProgressFn = Callable[[int, int], None]
DownloadProgressFn = Callable[[str, int, int], None]


# --- the builder ------------------------------------------------------------------------------------------------

def build_wikiart(out: str | Path, *, genres: Sequence[str] = STUDY_GENRES, per_class: int = 2000, seed: int = 0,
                  max_side: int = 512, source: str = HUB_REPO, endpoint: str | None = None,
                  progress: ProgressFn | None = None,
                  download_progress: DownloadProgressFn | None = None) -> BuildReport:
    """Build a balanced WikiArt collection in ``out``: ``images/<genre>/<id>.jpg`` + manifest.csv + report.json.

    ``source`` is a parquet file, a folder of shards, or a hub dataset id (fetched from ``endpoint``, else
    ``$ARTLAB_HF_ENDPOINT``, ``$HF_ENDPOINT`` or huggingface.co, with ``$HF_TOKEN`` if set). ``genres`` accepts
    WikiArt's names ("still_life") or artlab's ("still life"). The same data and seed give the same images; a rerun
    reuses every image already written (change ``max_side`` or ``seed`` in a fresh ``out`` to avoid mixing).
    """
    if per_class < 1 or max_side < 1 or seed < 0:
        raise ConfigError(f"per_class and max_side must be positive and seed not negative "
                          f"(got {per_class}, {max_side}, {seed})")
    local = Path(str(source)).expanduser()
    out = check_output(out, "collection", resume=True,
                       sources={"the WikiArt source folder": local if local.exists() else None})
    mark_output(out, "collection")
    shards = resolve_shards(source, out / CACHE, endpoint=endpoint, progress=download_progress)
    index, names = read_index(shards)
    chosen = resolve_genres(genres, names["genre"])
    report = BuildReport(source=f"wikiart ({source})")
    plan = {g: sample_order(index, g, seed) for g in chosen}
    rejects = _load_rejects(out, source)
    kept, tried = _collect(out, shards, index, names, plan, per_class, max_side, rejects, report, progress)
    atomic_write_json(out / CACHE / REJECTS, {"source": str(source), "rejects": rejects})
    df = _manifest(index, names, kept)
    _summarise(report, len(index), names, plan, kept, tried, per_class, seed, max_side)
    _note_leftovers(out, df, shards, report)
    write_manifest(out, df, report)
    return report


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


# --- reading the shards -----------------------------------------------------------------------------------------

def read_index(shards: Sequence[Path]) -> tuple[pd.DataFrame, dict[str, Sequence[str]]]:
    """One row per dataset row: global ``row``, ``shard``, ``local`` row, ``genre``, ``artist``, ``style``, ``file``.

    Reads only the label columns and the image's file name, never the image bytes.
    """
    frames, offset, names = [], 0, None
    for i, shard in enumerate(shards):
        pf = _open_parquet(shard)
        names = names or _label_names(pf.schema_arrow)
        columns = _check_schema(pf.schema_arrow, shard)
        table = pf.read(columns=columns)
        n = table.num_rows
        frame = pd.DataFrame({"row": np.arange(offset, offset + n), "shard": i, "local": np.arange(n)})
        for col in ("genre", "artist", "style"):
            frame[col] = _ints(table, col) if col in table.column_names else -1
        frame["file"] = _image_field(table, "path").to_pylist() if "image" in table.column_names else None
        frames.append(frame)
        offset += n
    return pd.concat(frames, ignore_index=True), names or _default_names()


def _open_parquet(shard: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(shard)
    except (pa.ArrowInvalid, OSError) as exc:
        raise CollectionError(f"not a readable parquet shard: {shard} ({exc})") from None


def _check_schema(schema: pa.Schema, shard: Path) -> list[str]:
    if "genre" not in schema.names or "image" not in schema.names:
        raise CollectionError(f"{shard.name} is not a WikiArt shard: it needs 'image' and 'genre' columns "
                              f"(it has: {', '.join(schema.names)})")
    image = schema.field("image").type
    if not pa.types.is_struct(image) or image.get_field_index("bytes") < 0:
        raise CollectionError(f"{shard.name}: column 'image' is not a {{bytes, path}} struct")
    has_path = image.get_field_index("path") >= 0
    return [c for c in ("genre", "artist", "style") if c in schema.names] + (["image.path"] if has_path else [])


def _image_field(table: pa.Table, field: str) -> pa.ChunkedArray:
    """One child of the ``image`` struct (reading "image.<field>" keeps the struct around it)."""
    return pc.struct_field(table.column("image"), field)


def _ints(table: pa.Table, col: str) -> np.ndarray:
    return table.column(col).fill_null(-1).to_numpy().astype(np.int64)


def _default_names() -> dict[str, Sequence[str]]:
    return {"genre": GENRE_NAMES, "artist": ARTIST_NAMES, "style": STYLE_NAMES}


def _label_names(schema: pa.Schema) -> dict[str, Sequence[str]]:
    """Class names from the shard's own `datasets` metadata when it has them, else the card's lists above."""
    names = _default_names()
    try:
        features = json.loads((schema.metadata or {})[b"huggingface"])["info"]["features"]
    except (KeyError, TypeError, ValueError):
        return names
    for col in names:
        feature = features.get(col) or {}
        if feature.get("_type") == "ClassLabel" and feature.get("names"):
            names[col] = tuple(feature["names"])
    return names


def read_image_bytes(shard: Path, local_rows: Sequence[int]) -> Iterator[tuple[int, bytes | None]]:
    """(local row, image bytes) for the given rows of one shard, reading only the row groups that hold them."""
    pf = pq.ParquetFile(shard)
    wanted = np.sort(np.asarray(local_rows, dtype=np.int64))
    start = 0
    for group in range(pf.metadata.num_row_groups):
        stop = start + pf.metadata.row_group(group).num_rows
        here = wanted[(wanted >= start) & (wanted < stop)]
        if len(here):
            column = _image_field(pf.read_row_group(group, columns=["image.bytes"]), "bytes")
            yield from zip(here.tolist(), column.take(pa.array(here - start)).to_pylist())
        start = stop


# --- sampling and writing images --------------------------------------------------------------------------------

def _collect(out: Path, shards: Sequence[Path], index: pd.DataFrame, names: dict, plan: dict[int, np.ndarray],
             per_class: int, max_side: int, rejects: dict[str, str], report: BuildReport,
             progress: ProgressFn | None) -> tuple[dict[int, list[int]], dict[int, int]]:
    """Walk each genre's sample order until ``per_class`` images are written (or candidates run out).

    Works in rounds: the first takes ``per_class`` candidates per genre, later ones replace the images that failed.
    Returns the kept rows per genre and how many candidates each genre went through.
    """
    kept: dict[int, list[int]] = {g: [] for g in plan}
    cursor = dict.fromkeys(plan, 0)
    total = sum(min(per_class, len(order)) for order in plan.values())
    done = 0
    while batch := _next_batch(plan, kept, cursor, per_class, rejects, report):
        for row, ok in _materialise(out, shards, index, names, batch, max_side, rejects, report):
            if ok:
                kept[batch[row]].append(row)
                done += 1
                if progress:
                    progress(done, total)
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


def _materialise(out: Path, shards: Sequence[Path], index: pd.DataFrame, names: dict, batch: dict[int, int],
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
    report.notes.append("genre names mapped to artlab's by artlab.sources.rules.WIKIART_GENRES")
    report.notes.append(f"license: {LICENSE}")


def _note_leftovers(out: Path, df: pd.DataFrame, shards: Sequence[Path], report: BuildReport) -> None:
    """Say what lies in ``out`` beyond the collection: images of earlier samples, downloaded shards."""
    listed = set(df["path"])
    orphans = [p for p in (out / "images").rglob("*.jpg") if p.relative_to(out).as_posix() not in listed]
    if orphans:
        report.notes.append(f"{len(orphans)} image file(s) under images/ are not in this sample (an earlier build "
                            f"with other settings); the manifest ignores them")
    if any(out / CACHE in shard.parents for shard in shards):
        size = sum(shard.stat().st_size for shard in shards) / 1e9
        report.notes.append(f"hub shards cached in {out / CACHE} ({size:.2f} GB): delete it when no rebuild is needed")


# --- the hub, over plain HTTP -----------------------------------------------------------------------------------

_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")


def resolve_shards(source: str | os.PathLike, cache: Path, *, endpoint: str | None = None,
                   progress: DownloadProgressFn | None = None) -> list[Path]:
    """Local parquet file(s) for ``source``: a file, a folder (searched recursively), or a hub id (downloaded)."""
    path = Path(source).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        shards = sorted((p for p in path.rglob("*.parquet") if CACHE not in p.parts), key=_natural_key)
        if not shards:
            raise CollectionError(f"no parquet shards (*.parquet) in {path}")
        return shards
    if _REPO_ID.fullmatch(str(source)):
        return fetch_hub_shards(str(source), cache, endpoint=endpoint, progress=progress)
    raise CollectionError(f"no such file or folder, and not a hub dataset id (owner/name): {source}")


def hub_endpoint(endpoint: str | None = None) -> str:
    return (endpoint or os.environ.get("ARTLAB_HF_ENDPOINT") or os.environ.get("HF_ENDPOINT")
            or DEFAULT_ENDPOINT).rstrip("/")


def fetch_hub_shards(repo: str, cache: Path, *, endpoint: str | None = None,
                     progress: DownloadProgressFn | None = None) -> list[Path]:
    """Download the parquet shards of ``repo``'s train split into ``cache`` (skipping those already there)."""
    session = _session()
    base = hub_endpoint(endpoint)
    paths = []
    for url in hub_shard_urls(repo, endpoint=base, session=session):
        target = cache / repo.replace("/", "__") / _safe_name(url)
        paths.append(download(url, target, session=session, headers=_auth_headers(url, base), progress=progress))
    return paths


def hub_shard_urls(repo: str, *, endpoint: str | None = None, session=None) -> list[str]:
    """The parquet URLs of ``repo``'s default config, train split, from the hub's dataset API, in shard order."""
    base = hub_endpoint(endpoint)
    api = f"{base}/api/datasets/{repo}/parquet/default/train"
    session = session or _session()
    try:
        response = _retrying(f"list the shards of {repo}", lambda: _request(session, api, _auth_headers(api, base),
                                                                            stream=False))
    except _NotFound:
        raise DownloadError(f"no dataset '{repo}' on {base} (HTTP 404 from {api}), and no local file or folder "
                            f"of that name") from None
    try:
        urls = response.json()
    except ValueError:
        raise DownloadError(f"the hub's answer for {repo} is not JSON: {api}") from None
    if isinstance(urls, dict):  # an older answer shape: {"default": {"train": [...]}}
        urls = urls.get("default", {}).get("train", [])
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
        raise DownloadError(f"the hub lists no parquet shards for {repo} ({api})")
    return sorted(urls, key=lambda u: _natural_key(Path(urlsplit(u).path)))


def download(url: str, target: Path, *, session=None, headers: dict | None = None,
             progress: DownloadProgressFn | None = None) -> Path:
    """Fetch ``url`` to ``target`` through ``target.part``, resuming a partial file with an HTTP Range request.

    The finished file is moved onto ``target`` atomically, so a file under its final name is always complete.
    """
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    session = session or _session()
    _retrying(f"download {url}", lambda: _download_once(session, url, part, headers or {}, progress))
    os.replace(part, target)
    return target


class _Transient(Exception):
    """A failure worth retrying: a dropped connection, a timeout, a 5xx answer, a short body."""


class _NotFound(DownloadError):
    """HTTP 404."""


def _retrying(what: str, step: Callable[[], T]) -> T:
    last: Exception | None = None
    for attempt in range(RETRIES + 1):
        if attempt:
            time.sleep(RETRY_WAIT_S * 2 ** (attempt - 1))
        try:
            return step()
        except _Transient as exc:
            last = exc
    raise DownloadError(f"could not {what} after {RETRIES + 1} tries ({last}); run again to resume")


def _download_once(session, url: str, part: Path, headers: dict, progress: DownloadProgressFn | None) -> None:
    """One GET into ``part`` (appending from its current size); raises _Transient when it ends short."""
    have = part.stat().st_size if part.exists() else 0
    ask = dict(headers, **({"Range": f"bytes={have}-"} if have else {}))
    with _request(session, url, ask, stream=True, ok=(200, 206, 416)) as response:
        if response.status_code == 416:  # nothing left to send: the part is whole, or stale
            if have and _content_range_total(response) == have:
                return
            part.unlink(missing_ok=True)
            raise _Transient(f"the server refused to resume {url}; starting again")
        if response.status_code == 200:
            have = 0  # the server ignored the range: start again
        elif not response.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            part.unlink(missing_ok=True)
            raise _Transient(f"the server resumed {url} at the wrong offset; starting again")
        length = response.headers.get("Content-Length")
        total = have + int(length) if length else None
        try:
            with open(part, "ab" if have else "wb") as f:
                for chunk in response.iter_content(_CHUNK):
                    f.write(chunk)
                    have += len(chunk)
                    if progress:
                        progress(part.name[:-5], have, total or 0)
                f.flush()
                os.fsync(f.fileno())
        except _network_errors() as exc:
            raise _Transient(f"connection lost after {have} bytes: {exc}") from None
    if total is not None and have != total:
        raise _Transient(f"got {have} of {total} bytes")


def _content_range_total(response) -> int:
    m = re.search(r"/(\d+)$", response.headers.get("Content-Range", ""))
    return int(m.group(1)) if m else -1


def _request(session, url: str, headers: dict, *, stream: bool, ok: tuple[int, ...] = (200,)):
    """GET with the hub's error statuses turned into one-line DownloadErrors; transient ones raise _Transient."""
    try:
        response = session.get(url, headers=headers, stream=stream, timeout=(10, 60))
    except _network_errors() as exc:
        raise _Transient(f"{url}: {exc}") from None
    if response.status_code in ok:
        return response
    response.close()
    if response.status_code in (401, 403):
        raise DownloadError(f"the hub refused {url} (HTTP {response.status_code}): set HF_TOKEN to a token that "
                            f"may read this dataset (and accept its terms on the hub)")
    if response.status_code == 404:
        raise _NotFound(f"not found on the hub (HTTP 404): {url}")
    if response.status_code == 429 or response.status_code >= 500:
        raise _Transient(f"{url}: HTTP {response.status_code}")
    raise DownloadError(f"unexpected answer from the hub for {url}: HTTP {response.status_code}")


def _session():
    try:
        import requests
    except ImportError:
        raise DownloadError("downloading from the hub needs the `requests` package: pip install requests") from None
    session = requests.Session()
    session.headers["User-Agent"] = "artlab (wikiart builder)"
    return session


def _network_errors() -> tuple[type[Exception], ...]:
    import requests
    return (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


def _auth_headers(url: str, endpoint: str) -> dict:
    """``$HF_TOKEN`` as a bearer token, sent only to the hub's own host (never to the CDN it redirects to)."""
    token = os.environ.get("HF_TOKEN")
    if token and urlsplit(url).netloc == urlsplit(endpoint).netloc:
        return {"Authorization": f"Bearer {token}"}
    return {}


def _safe_name(url: str) -> str:
    name = PurePosixPath(urlsplit(url).path).name or "shard.parquet"
    return re.sub(r"[^\w.-]", "_", name)


def _natural_key(path: Path) -> list:
    """'2.parquet' before '10.parquet': shard order is the dataset's row order."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.as_posix())]
