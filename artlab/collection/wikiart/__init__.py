"""The GenRe study's data: a balanced, seeded per-genre sample of WikiArt as the Hugging Face hub holds it.

``huggan/wikiart`` is a set of parquet shards with columns ``image`` (a struct {bytes, path}), ``artist``, ``genre`` and
``style`` (class-label integers). The builder reads only the cheap ``genre`` column of every shard first, samples
``per_class`` rows per genre with a seed, and then reads the image bytes of just those rows. Shards come from a local
file or folder, or from the hub's repository (``data/train-*.parquet`` at a pinned commit) through ``huggingface_hub``:
whole shards in the Hugging Face cache (shared with ``datasets`` and ``huggingface_hub``), parts read by range and
kept in ``<out>/.cache/``. Modules: ``names`` (what the integers mean), ``hub`` (huggingface_hub: the repository,
ranges, whole files, its errors as one line), ``remote`` (a hub shard read by parts), ``shards``
(where shards come from, reading parquet), ``sample`` (the sample, its images, the manifest), ``plan`` (the row
groups a sample needs, ``--plan``).

An image's id is ``wikiart-<row>``, its row number in the dataset's train split (shards in order), so a sample does not
depend on how the split was cut into shards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from artlab.collection.contract import BuildReport
from artlab.collection.curation import write_manifest
from artlab.collection.wikiart.hub import Hub, RemoteFile
from artlab.collection.wikiart.names import (ARTIST_DISPLAY, ARTIST_NAMES, CACHE, GENRE_NAMES,
                                             HUB_REPO, LICENSE, REJECTS, STUDY_GENRES, STYLE_NAMES,
                                             DownloadProgressFn)
from artlab.collection.wikiart.plan import (FetchPlan, at_commit, check_numbers, claim_output, fetch_plan, flat,
                                            plan_fetch, plan_wikiart, prefetch)
from artlab.collection.wikiart.remote import HubShard, Shard, hub_shards, list_shards, row_groups_of
from artlab.collection.wikiart.sample import (_collect, _load_rejects, _manifest, _note_leftovers, _summarise,
                                              artlab_genre, display_name, image_id, parse_file_name, resolve_genres,
                                              sample_order)
from artlab.collection.wikiart.shards import read_image_bytes, read_index, resolve_shards
from artlab.io import atomic_write_json
from artlab.progress import Progress

__all__ = ["build_wikiart", "plan_wikiart", "plan_fetch", "fetch_plan", "FetchPlan", "Hub", "RemoteFile", "HubShard",
           "Shard", "list_shards", "row_groups_of", "resolve_shards", "ARTIST_DISPLAY",
           "ARTIST_NAMES", "CACHE", "GENRE_NAMES", "HUB_REPO", "LICENSE", "REJECTS",
           "STUDY_GENRES", "STYLE_NAMES", "artlab_genre", "display_name", "image_id", "parse_file_name",
           "resolve_genres", "sample_order", "read_image_bytes", "read_index"]


# --- the builder ------------------------------------------------------------------------------------------------

def build_wikiart(out: str | Path, *, genres: Sequence[str] = STUDY_GENRES, per_class: int = 2000, seed: int = 0,
                  max_side: int = 512, source: str = HUB_REPO, endpoint: str | None = None,
                  progress: Progress | None = None,
                  download_progress: DownloadProgressFn | None = None) -> BuildReport:
    """Build a balanced WikiArt collection in ``out``: ``images/<genre>/<id>.jpg`` + manifest.csv + report.json.

    ``source`` is a parquet file, a folder of shards, or a hub dataset id (fetched from ``endpoint``, else
    ``$HF_ENDPOINT`` or huggingface.co, with huggingface_hub's token if any). ``genres`` accepts
    WikiArt's names ("still_life") or artlab's ("still life"). The same data and seed give the same images; a rerun
    reuses every image already written (change ``max_side`` or ``seed`` in a fresh ``out`` to avoid mixing).
    """
    check_numbers(per_class, max_side, seed)
    out = claim_output(out, source)
    shards = resolve_shards(source, out / CACHE, endpoint=endpoint)
    index, names = read_index(shards)
    chosen = resolve_genres(genres, names["genre"])
    report = BuildReport(source=f"wikiart ({source}{at_commit(shards)})")
    plan = {g: sample_order(index, g, seed) for g in chosen}
    rejects = _load_rejects(out, source)
    if hub_shards(shards):
        fetch = plan_fetch(shards, index, plan, per_class, str(source))
        prefetch(shards, fetch, download_progress)
        report.notes.append(f"{source} at commit {fetch.sha}: the sample is in {len(flat(fetch.groups))} of "
                            f"{fetch.groups_total} row groups ({fetch.bytes_needed / 1e6:.1f} of "
                            f"{fetch.bytes_dataset / 1e6:.1f} MB)")
    kept, tried = _collect(out, shards, index, names, plan, per_class, max_side, rejects, report, progress)
    atomic_write_json(out / CACHE / REJECTS, {"source": str(source), "rejects": rejects})
    df = _manifest(index, names, kept)
    if hub_shards(shards):
        df["revision"] = shards[0].commit
    _summarise(report, len(index), names, plan, kept, tried, per_class, seed, max_side)
    _note_leftovers(out, df, shards, report)
    write_manifest(out, df, report)
    return report
