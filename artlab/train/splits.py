"""Seeded, stratified train/val/test splits, optionally artist-disjoint.

A random split lets the same artist sit in train and test; a kNN baseline then finds the painter, not the genre.
``group_by="artist"`` keeps every artist in one split (unknown artists stay individually assignable); ``split_groups``
also keeps copies of one painting together (artlab.collection.duplicates: otherwise a kNN finds the twin).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from artlab.errors import ConfigError

SPLITS = ("train", "val", "test")
UNKNOWN_ARTISTS = {"", "unknown", "unidentified artist", "anonymous"}


def _counts(n: int, ratios: tuple[float, float, float]) -> tuple[int, int, int]:
    """Per-split counts for a class of n, with at least one in val and test whenever n >= 3."""
    n_val = int(round(n * ratios[1]))
    n_test = int(round(n * ratios[2]))
    if n >= 3:
        n_val, n_test = max(n_val, 1), max(n_test, 1)
    n_train = n - n_val - n_test
    if n_train < 1:
        raise ConfigError(f"a class with {n} images is too small to split {ratios}")
    return n_train, n_val, n_test


def check_ratios(ratios: tuple[float, float, float]) -> tuple[float, float, float]:
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise ConfigError(f"split ratios must be three non-negative numbers summing to 1, got {ratios}")
    return tuple(float(r) for r in ratios)


def stratified_split(labels: pd.Series, ratios=(0.7, 0.15, 0.15), seed: int = 0,
                     groups: pd.Series | None = None) -> pd.Series:
    """A 'train'/'val'/'test' Series aligned with ``labels``; per class proportions follow ``ratios``.

    With ``groups`` (e.g. artists), whole groups are assigned to one split, greedily filling each class's quota.
    """
    ratios = check_ratios(tuple(ratios))
    rng = np.random.default_rng(seed)
    out = pd.Series("", index=labels.index, dtype=object)
    for cls in sorted(labels.unique()):
        idx = labels.index[labels == cls].to_numpy()
        quotas = _counts(len(idx), ratios)
        if groups is None:
            order = rng.permutation(idx)
            bounds = np.cumsum(quotas)[:-1]
            for name, part in zip(SPLITS, np.split(order, bounds)):
                out[part] = name
        else:
            _assign_groups(out, idx, groups, quotas, rng)
    return out


def split_groups(df: pd.DataFrame, by_artist: bool, copies: dict[str, str]) -> pd.Series | None:
    """The groups a split keeps whole: a named artist's paintings (``by_artist``) and each near-copy group
    (``copies``: {id: group}, artlab.collection.duplicates), joined where they overlap (a copy of a painting by an
    artist goes where the artist goes). None when neither is asked."""
    if not copies:  # the artist column itself: the same splits as before near-copies were known
        return df["artist"] if by_artist else None
    ids = df["id"].astype(str).to_numpy()
    artists = df["artist"].fillna("").astype(str).str.strip().to_numpy() if by_artist else [""] * len(df)
    parent = list(range(len(df)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, (pid, artist) in enumerate(zip(ids, artists)):
        for key in ([f"artist:{artist}"] if artist and artist.lower() not in UNKNOWN_ARTISTS else []) + (
                [f"copy:{copies[pid]}"] if pid in copies else []):
            j = first.setdefault(key, i)
            parent[find(i)] = find(j)
    roots = [find(i) for i in range(len(df))]
    size = np.bincount(roots, minlength=len(df))
    return pd.Series([f"group:{ids[r]}" if size[r] > 1 else "" for r in roots], index=df.index)


def _assign_groups(out: pd.Series, idx: np.ndarray, groups: pd.Series, quotas, rng) -> None:
    """Give each group (artist) of this class to the split furthest below its quota, largest groups first.

    An artist who painted several classes must stay in one split across classes, so a group already placed
    (by an earlier class) goes to that split again.
    """
    keys = groups[idx].astype(str).str.strip()
    unknown = keys.str.lower().isin(UNKNOWN_ARTISTS)
    keys = keys.where(~unknown, pd.Series([f"__solo{i}" for i in idx], index=idx))
    members = {k: idx[keys.to_numpy() == k] for k in pd.unique(keys)}
    names = list(members)
    rng.shuffle(names)
    names.sort(key=lambda k: -len(members[k]))
    filled = dict.fromkeys(SPLITS, 0)
    placed = _placed_groups(out, groups)
    for name in names:
        split = placed.get(name) or max(SPLITS, key=lambda s: (quotas[SPLITS.index(s)] - filled[s], s == "train"))
        out[members[name]] = split
        filled[split] += len(members[name])


def _placed_groups(out: pd.Series, groups: pd.Series) -> dict[str, str]:
    done = out[out != ""]
    return {str(groups[i]).strip(): s for i, s in done.items()
            if str(groups[i]).strip().lower() not in UNKNOWN_ARTISTS}
