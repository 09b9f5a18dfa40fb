"""The plan before a download: which row groups of which hub shards hold the seeded sample, and what fetching them
costs (``artlab data wikiart --plan`` prints it); then the fetch itself, with a byte count for a progress bar.

Drawing the plan reads only the shards' footers and label columns (cached for the build), never an image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from artlab.safety import check_output, mark_output
from artlab.collection.wikiart.hub import cache_dir
from artlab.collection.wikiart.names import CACHE, HUB_REPO, STUDY_GENRES, DownloadProgressFn
from artlab.collection.wikiart.remote import HubShard, Shard, hub_shards, row_groups_of
from artlab.collection.wikiart.sample import artlab_genre, resolve_genres, sample_order
from artlab.collection.wikiart.shards import read_index, resolve_shards
from artlab.errors import ConfigError


@dataclass
class FetchPlan:
    """What a build will download: row groups per shard and their bytes, beside what the dataset holds."""
    repo: str
    sha: str
    cache: Path
    groups: dict[int, list[int]] = field(default_factory=dict)
    bytes_needed: int = 0
    bytes_missing: int = 0
    bytes_dataset: int = 0
    groups_total: int = 0


def check_numbers(per_class: int, max_side: int, seed: int) -> None:
    if per_class < 1 or max_side < 1 or seed < 0:
        raise ConfigError(f"per_class and max_side must be positive and seed not negative "
                          f"(got {per_class}, {max_side}, {seed})")


def claim_output(out: str | Path, source: str) -> Path:
    """``out`` checked (never a user's folder, nor the local source) and marked as artlab's collection."""
    local = Path(str(source)).expanduser()
    out = check_output(out, "collection", resume=True,
                       sources={"the WikiArt source folder": local if local.exists() else None})
    mark_output(out, "collection")
    return out


def plan_wikiart(out: str | Path, *, genres: Sequence[str] = STUDY_GENRES, per_class: int = 2000, seed: int = 0,
                 source: str = HUB_REPO, endpoint: str | None = None) -> list[str]:
    """What ``build_wikiart`` would do, as lines: rows per genre, the sample, the bytes to fetch, the cache.

    Reads only the shards' footers and label columns (cached for the build), never an image.
    """
    check_numbers(per_class, 1, seed)
    out = claim_output(out, source)  # the plan caches footers and label columns in the collection-to-be
    shards = resolve_shards(source, out / CACHE, endpoint=endpoint)
    index, names = read_index(shards)
    chosen = resolve_genres(genres, names["genre"])
    plan = {g: sample_order(index, g, seed) for g in chosen}
    counts = index["genre"].value_counts()
    lines = [f"{source}{at_commit(shards)}: {len(index)} rows in {len(shards)} shard(s)", "rows per genre:"]
    lines += [f"  {name:<20}{int(counts.get(i, 0)):>8}{'   <- sampled' if i in plan else ''}"
              for i, name in enumerate(names["genre"])]
    lines.append(f"sample (seed {seed}, up to {per_class} per genre):")
    for g, order in plan.items():
        short = "" if len(order) >= per_class else f"  (only {len(order)} available)"
        lines.append(f"  {artlab_genre(names['genre'][g]):<20}{min(per_class, len(order)):>8}{short}")
    if hub_shards(shards):
        fetch = plan_fetch(shards, index, plan, per_class, str(source))
        whole = sum(s.whole is not None for s in shards)
        lines += [f"fetch: {len(flat(fetch.groups))} of {fetch.groups_total} row groups in {len(fetch.groups)} of "
                  f"{len(shards)} shards, {_size(fetch.bytes_needed)} of the dataset's {_size(fetch.bytes_dataset)}; "
                  f"still to download: {fetch.bytes_missing} bytes ({_size(fetch.bytes_missing)})",
                  f"read for this plan: {_size(shards[0].hub.received)} (footers and label columns, kept in the cache)",
                  f"cache: {fetch.cache}",
                  f"whole shards: the Hugging Face cache, {cache_dir()} ({whole} of {len(shards)} there already)"]
    return lines


def plan_fetch(shards: Sequence[HubShard], index: pd.DataFrame, plan: dict[int, np.ndarray], per_class: int,
               repo: str) -> FetchPlan:
    """The row groups that the first ``per_class`` rows of each genre's order live in (replacements come later)."""
    first = np.concatenate([order[:per_class] for order in plan.values()]) if plan else np.array([], int)
    rows = index.set_index("row").loc[first]
    by_shard = {int(s): group["local"].tolist() for s, group in rows.groupby("shard")}
    return fetch_plan(repo, shards[0].commit, list(shards), by_shard)


def fetch_plan(repo: str, sha: str, shards: list[HubShard], rows_by_shard: dict[int, list[int]]) -> FetchPlan:
    """The row groups holding the given local rows of each shard, and what fetching them costs."""
    plan = FetchPlan(repo, sha, shards[0].folder if shards else Path())
    plan.bytes_dataset = sum(s.remote.size for s in shards)
    plan.groups_total = sum(s.metadata.num_row_groups for s in shards)
    for i, rows in sorted(rows_by_shard.items()):
        groups = row_groups_of(shards[i].metadata, rows)
        plan.groups[i] = groups
        plan.bytes_needed += shards[i].needed_bytes(groups)
        plan.bytes_missing += shards[i].missing_bytes(groups)
    return plan


def prefetch(shards: Sequence[HubShard], fetch: FetchPlan, progress: DownloadProgressFn | None) -> None:
    """Fetch every row group of the plan not yet cached; ``progress(bytes so far, bytes this build fetches)``."""
    done = [0]

    def advance(n: int) -> None:
        done[0] += n
        if progress:
            progress(done[0], fetch.bytes_missing)

    if progress:
        progress(0, fetch.bytes_missing)
    for i, groups in fetch.groups.items():
        shards[i].ensure(groups, advance)


def at_commit(shards: Sequence[Shard]) -> str:
    return f" at {shards[0].commit[:12]}" if hub_shards(shards) else ""


def flat(groups: dict[int, list[int]]) -> list[tuple[int, int]]:
    return [(s, g) for s, gs in groups.items() for g in gs]


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"
