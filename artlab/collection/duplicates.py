"""Copies of one painting inside a collection, found cheaply from the files: identical bytes (sha256) and
near-identical pictures (a perceptual hash, imagehash's pHash: BSD-2-Clause), grouped with union-find.

This is the cheap half of the near-copy finder (artlab.audit.near adds the same painting in another scan or crop,
from embeddings). It lives with the collection (layer 1) because training uses it too: ``make_task`` can keep each
group in one split (``--group-duplicates``) and every run's card records ``leakage``, the groups that straddle its
splits (docs/audit.md).

A perceptual hash is 64 bits from the low frequencies of the picture's discrete cosine transform at 32 x 32 grey
pixels: resizing, recompressing and a mild colour shift move a few bits; a different painting moves about half.
Pairs are found by comparing every hash with every other in blocks (``np.bitwise_count`` on XORs): 10,000 hashes in
well under a second, 100,000 in about a minute (benchmarks/bench_audit.py projects it).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from artlab.io import sha256_file

log = logging.getLogger("artlab")

#: Two pictures whose pHashes differ in at most this many of 64 bits are near-identical (imagehash's own example
#: uses a few bits; resized + recompressed + colour-shifted copies of the demo paintings stay within 6, and no two
#: distinct demo paintings come within 12: benchmarks/bench_audit.py).
PHASH_BITS = 8
BLOCK = 4096  # hashes compared at once (a BLOCK x n matrix of XORs)



def phash(path: str | Path) -> int:
    """The picture's 64-bit pHash (decoded at reduced size: a JPEG's draft mode)."""
    import imagehash
    from PIL import Image
    with Image.open(path) as im:
        im.draft("L", (64, 64))  # JPEG: decode at 1/2..1/8 scale; the hash looks at 32 x 32 grey pixels
        bits = imagehash.phash(im.convert("L")).hash.flatten()
    return int(np.packbits(bits.astype(np.uint8)).view(">u8")[0])


def hash_files(root: str | Path, ids, paths) -> pd.DataFrame:
    """id, sha256, phash (uint64), hashed (False for a picture that could not be decoded: it is left out of the
    near-identical pairs, and logged)."""
    root, rows = Path(root), []
    for pid, rel in zip(ids, paths):
        f, sha, h, ok = root / rel, "", 0, False
        try:
            sha = sha256_file(f)
            h, ok = phash(f), True
        except Exception as exc:  # noqa: BLE001 - a broken picture is one line in the log, not a failed run
            log.warning("duplicates: %s not hashed (%s)", f, exc)
        rows.append((str(pid), sha, h, ok))
    df = pd.DataFrame(rows, columns=["id", "sha256", "phash", "hashed"])
    df["phash"] = df["phash"].astype(np.uint64)
    return df


def hamming_pairs(hashes: np.ndarray, max_bits: int = PHASH_BITS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, bits) for every pair i < j whose 64-bit hashes differ in at most ``max_bits`` bits."""
    h = np.asarray(hashes, dtype=np.uint64)
    out_i, out_j, out_d = [], [], []
    for start in range(0, len(h), BLOCK):
        block = h[start:start + BLOCK]
        bits = np.bitwise_count(block[:, None] ^ h[None, :])
        i, j = np.nonzero(bits <= max_bits)
        i = i + start
        keep = i < j
        out_i.append(i[keep]), out_j.append(j[keep]), out_d.append(bits[i[keep] - start, j[keep]])
    if not out_i:
        return np.empty(0, int), np.empty(0, int), np.empty(0, int)
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d).astype(int)


def copy_pairs(hashes: pd.DataFrame, max_bits: int = PHASH_BITS) -> pd.DataFrame:
    """a, b (ids), how ("identical file" or "near-identical picture"), bits (pHash distance; 0 for identical
    files): one row a pair, a < b in the table's order."""
    ids = hashes["id"].to_numpy()
    rows = {}
    sha = hashes["sha256"].to_numpy()
    for _, members in pd.Series(np.arange(len(ids))).groupby(sha):
        if len(members) > 1 and sha[members.iloc[0]]:
            m = members.to_numpy()
            for x in range(len(m)):
                for y in range(x + 1, len(m)):
                    rows[(m[x], m[y])] = "identical file", 0
    ok = np.flatnonzero(hashes["hashed"].to_numpy())
    i, j, d = hamming_pairs(hashes["phash"].to_numpy()[ok].astype(np.uint64), max_bits)
    for a, b, bits in zip(ok[i], ok[j], d):
        rows.setdefault((a, b), ("near-identical picture", int(bits)))
    table = [(ids[a], ids[b], how, bits) for (a, b), (how, bits) in sorted(rows.items())]
    return pd.DataFrame(table, columns=["a", "b", "how", "bits"])


class UnionFind:
    """Groups from pairs: ``union(a, b)``, then ``groups()`` {member: its group's first member}."""

    def __init__(self, items):
        self.parent = {x: x for x in items}

    def find(self, x):
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> dict:
        return {x: self.find(x) for x in self.parent}


def group_ids(ids, pairs: pd.DataFrame) -> dict[str, str]:
    """{id: its group} for the ids in a pair (a painting with no copy is left out); a group is named by its
    smallest id."""
    uf = UnionFind(sorted(set(pairs["a"]) | set(pairs["b"])))
    for a, b in zip(pairs["a"], pairs["b"]):
        uf.union(a, b)
    return uf.groups()


def find_copies(root: str | Path, ids, paths, max_bits: int = PHASH_BITS) -> tuple[pd.DataFrame, dict[str, str]]:
    """(pairs, {id: group}) of a collection's paintings ``ids`` at ``paths`` (see ``copy_pairs``)."""
    pairs = copy_pairs(hash_files(root, ids, paths), max_bits)
    return pairs, group_ids(ids, pairs)


def group_members(split: pd.Series, groups: dict[str, str]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(every group's members among the split's paintings, the groups among them whose paintings sit in more than
    one split), for ``split`` indexed by id and ``groups`` mapping an id to its group."""
    members: dict[str, list[str]] = {}
    for pid, g in groups.items():
        if pid in split.index:
            members.setdefault(g, []).append(pid)
    return members, {g: m for g, m in members.items() if len(set(split[m])) > 1}


def leakage(split: pd.Series, groups: dict[str, str], method: str, seconds: float) -> dict:
    """What a card records: the near-copy groups whose paintings sit in more than one split, and how many
    paintings they hold (``split`` indexed by id)."""
    members, across = group_members(split, groups)
    test_hit = sorted(p for m in across.values() for p in m if split[p] == "test")
    return {"groups": len([m for m in members.values() if len(m) > 1]), "groups_across_splits": len(across),
            "paintings_affected": sum(len(m) for m in across.values()), "test_paintings_affected": len(test_hit),
            "examples": [sorted(m) for m in list(across.values())[:5]], "method": method,
            "seconds": round(seconds, 2)}


def task_leakage(root: str | Path, df: pd.DataFrame) -> tuple[dict, dict[str, str]]:
    """``leakage`` of a task's rows (id, path, split) and the groups it found, hashing the files."""
    t0 = time.perf_counter()
    _, groups = find_copies(root, df["id"], df["path"])
    split = pd.Series(df["split"].to_numpy(), index=df["id"].astype(str))
    return leakage(split, groups, f"sha256 + pHash within {PHASH_BITS} bits", time.perf_counter() - t0), groups
