"""The GenRe study's data: a balanced, seeded per-genre sample of WikiArt as the Hugging Face hub holds it.

``huggan/wikiart`` is a set of parquet shards with columns ``image`` (a struct {bytes, path}), ``artist``, ``genre`` and
``style`` (class-label integers). The builder reads only the cheap ``genre`` column of every shard first, samples
``per_class`` rows per genre with a seed, and then reads the image bytes of just those rows. Shards come from a local
file or folder, or from the hub over plain HTTP (resumable, cached in ``<out>/.cache/``): neither ``huggingface_hub``
nor ``datasets`` is needed. Modules: ``names`` (what the integers mean), ``shards`` (reading parquet), ``sample``
(the sample, its images, the manifest), ``hub`` (the hub over HTTP).

An image's id is ``wikiart-<row>``, its row number in the dataset's train split (shards in order), so a sample does not
depend on how the split was cut into shards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from artlab.collection.contract import BuildReport, write_manifest
from artlab.errors import ConfigError
from artlab.io import atomic_write_json
from artlab.safety import check_output, mark_output
from artlab.collection.http import DownloadProgressFn
from artlab.collection.wikiart.hub import download, hub_endpoint, hub_shard_urls, resolve_shards
from artlab.collection.wikiart.names import (ARTIST_DISPLAY, ARTIST_NAMES, CACHE, DEFAULT_ENDPOINT, GENRE_NAMES,
                                           HUB_REPO, LICENSE, REJECTS, STUDY_GENRES, STYLE_NAMES, ProgressFn)
from artlab.collection.wikiart.sample import (_collect, _load_rejects, _manifest, _note_leftovers, _summarise,
                                            artlab_genre, display_name, image_id, parse_file_name, resolve_genres,
                                            sample_order)
from artlab.collection.wikiart.shards import read_image_bytes, read_index

__all__ = ["build_wikiart", "download", "hub_endpoint", "hub_shard_urls", "resolve_shards", "ARTIST_DISPLAY",
           "ARTIST_NAMES", "CACHE", "DEFAULT_ENDPOINT", "GENRE_NAMES", "HUB_REPO", "LICENSE", "REJECTS",
           "STUDY_GENRES", "STYLE_NAMES", "artlab_genre", "display_name", "image_id", "parse_file_name",
           "resolve_genres", "sample_order", "read_image_bytes", "read_index"]


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
