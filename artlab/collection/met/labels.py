"""Culture labels of the Met's paintings (``rules.culture_of``), the merges they make, and the selection: a curator's
exclusions, the class threshold, a cap for trial builds."""

from __future__ import annotations

import collections
import csv
from pathlib import Path

import pandas as pd

from artlab.collection.contract import BuildReport
from artlab.errors import CollectionError
from artlab.collection.rules import CULTURE_FIELDS, EXTRA_MERGES, culture_of

from artlab.collection.met.objects import SOURCE, drop, painting_verdict, read_paintings


# --- culture labels ----------------------------------------------------------------------------------------------

def label_cultures(df: pd.DataFrame, netherlandish: str | None = None, extra_merges: bool = False) -> pd.DataFrame:
    """Add ``culture`` (class or ''), ``culture_rule`` (why) and ``culture_raw`` (the value that decided)."""
    records = df[list(CULTURE_FIELDS)].to_dict("records")
    labels = [culture_of(r, netherlandish, extra_merges) for r in records]
    out = df.copy()
    out["culture"] = [c for c, _ in labels]
    out["culture_rule"] = [why for _, why in labels]
    out["culture_raw"] = [_deciding_value(r, netherlandish, extra_merges) if c else ""
                          for r, (c, _) in zip(records, labels)]
    return out


def _deciding_value(record: dict, netherlandish: str | None, extra_merges: bool = False) -> str:
    # culture_of stops at the first field with a matching token, so the first field that labels on its own decided.
    for field in CULTURE_FIELDS:
        if culture_of({field: record.get(field, "")}, netherlandish, extra_merges)[0]:
            return record[field]
    return ""


def drop_unlabelled(df: pd.DataFrame, report: BuildReport) -> pd.DataFrame:
    """Rows with a culture class; the others are counted by reason, and the commonest unmatched values noted."""
    unlabelled = df[df["culture"] == ""]
    if unlabelled.empty:
        return df
    for why, n in unlabelled["culture_rule"].map(_why_unlabelled).value_counts().items():
        report.drop(f"no culture class: {why}", int(n))
    values = unlabelled[list(CULTURE_FIELDS)].apply(lambda r: next((v for v in r if v), ""), axis=1)
    common = collections.Counter(v for v in values if v).most_common(10)
    if common:
        report.notes.append("commonest culture values no rule maps: " + ", ".join(f"{v} ({n})" for v, n in common))
    return df[df["culture"] != ""]


def _why_unlabelled(why: str) -> str:
    if why.startswith("Netherlandish"):
        return "Netherlandish, neither Dutch nor Flemish (choose with netherlandish=)"
    if "not one of the study's classes" in why:
        return why
    return "no culture recorded" if why == "no culture recorded" else "no rule in rules.py matches its culture"


def merges(df: pd.DataFrame) -> dict[str, list[str]]:
    """Class -> the distinct raw values merged into it (commonest first), for classes fed by more than one."""
    out = {}
    for culture, raw in df.groupby("culture")["culture_raw"]:
        values = [v for v, _ in collections.Counter(raw).most_common()]
        if len(values) > 1:
            out[culture] = values
    return out


# --- exclusions and the threshold ----------------------------------------------------------------------------------

def read_exclusions(path: Path) -> dict[str, str]:
    """Object ID -> reason, from a curator's CSV (column ``object_id``, optional ``reason``; ``#`` lines ignored)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r and r[0].strip() and not r[0].lstrip().startswith("#")]
    except FileNotFoundError:
        raise CollectionError(f"no such exclusions file: {path}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CollectionError(f"unreadable exclusions file {path}: {exc}") from None
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if "object_id" not in header:
        raise CollectionError(f"exclusions file {path} needs a header with an object_id column (and optional reason)")
    at, why = header.index("object_id"), header.index("reason") if "reason" in header else None
    out = {}
    for row in rows[1:]:
        reason = row[why].strip() if why is not None and why < len(row) else ""
        out[row[at].strip()] = reason
    return out


def exclude(df: pd.DataFrame, exclusions: dict[str, str], report: BuildReport) -> pd.Series:
    """A boolean Series: True for rows removed as non-paintings (``PAINTING_RULES``) or by the curator's list."""
    removed = pd.Series(False, index=df.index)
    for i, row in df.iterrows():
        if row["object_id"] in exclusions:
            reason = exclusions[row["object_id"]]
            report.drop(f"excluded by curator: {reason}" if reason else "excluded by curator")
            removed[i] = True
            continue
        keep, why = painting_verdict(row["object_name"], row["medium"])
        if not keep:
            report.drop(f"not a painting: {why}")
            removed[i] = True
    unknown = set(exclusions) - set(df["object_id"])
    if unknown:
        report.notes.append(f"{len(unknown)} object id(s) in the exclusions file are not among the labelled paintings")
    return removed


def keep_classes(df: pd.DataFrame, min_per_class: int, report: BuildReport) -> pd.DataFrame:
    """Rows of the classes with more than ``min_per_class`` rows; the others are reported, one reason per class."""
    counts = df["culture"].value_counts()
    kept = counts[counts > min_per_class]
    for culture, n in counts[counts <= min_per_class].items():
        report.drop(f"class {culture}: {n} paintings, not more than {min_per_class}", int(n))
    if kept.empty:
        biggest = f" (largest: {counts.index[0]} with {counts.iloc[0]})" if len(counts) else ""
        raise CollectionError(f"no culture class has more than {min_per_class} paintings{biggest}; "
                              f"lower min_per_class")
    return df[df["culture"].isin(kept.index)]


def cap_per_class(df: pd.DataFrame, limit: int | None, report: BuildReport) -> pd.DataFrame:
    """At most ``limit`` rows a class (the lowest Object IDs), for a trial build."""
    if limit is None:
        return df
    ordered = df.assign(_n=df["object_id"].astype(int)).sort_values("_n").drop(columns="_n")
    capped = ordered.groupby("culture", sort=False).head(limit)
    drop(report, f"over the per-class limit ({limit})", len(df) - len(capped))
    return capped


def select_paintings(table: Path, *, min_per_class: int = 100, netherlandish: str | None = None,
                     exclusions: Path | None = None, limit: int | None = None, extra_merges: bool = False,
                     report: BuildReport | None = None) -> tuple[pd.DataFrame, BuildReport]:
    """Steps 2-5 without any download: the paintings to fetch, and the report so far (per_class, merged, dropped).

    The paper's order: a class is kept when it has more than ``min_per_class`` labelled paintings, and only then are
    the non-paintings (and the curator's exclusions) removed from the classes kept, so a class can end below it."""
    report = report or BuildReport(source=SOURCE)
    labelled = drop_unlabelled(label_cultures(read_paintings(table, report), netherlandish, extra_merges), report)
    counted = keep_classes(labelled, min_per_class, report)
    removed = exclude(counted, read_exclusions(exclusions) if exclusions else {}, report)
    selected = counted[~removed]
    capped = cap_per_class(selected, limit, report)
    for culture in sorted(counted["culture"].unique()):
        in_class = counted["culture"] == culture
        report.per_class[culture] = {
            "initial": int(in_class.sum()), "excluded": int((in_class & removed).sum()),
            "over_limit": int((selected["culture"] == culture).sum() - (capped["culture"] == culture).sum())}
    report.merged = merges(selected)
    report.notes.append(extra_merges_note(extra_merges))
    add_paper_counts(report)
    return capped.reset_index(drop=True), report


#: The culture study's Table 1 (section 3.1), culture -> (initial, final) paintings: the Met's public-domain
#: "Paintings" per culture before and after the images erroneously tagged as paintings were removed by hand (6,663 in
#: all). Printed beside a build's own counts (``paper_initial``, ``paper_final`` in ``report.per_class``).
PAPER_TABLE1: dict[str, tuple[int, int]] = {
    "American": (1592, 1585), "Japanese": (1149, 1084), "Chinese": (1097, 1034), "French": (940, 815),
    "Italian": (759, 688), "Dutch": (429, 412), "Indian": (559, 372), "British": (300, 280), "German": (259, 172),
    "Spanish": (125, 115), "Flemish": (109, 106)}


def add_paper_counts(report: BuildReport) -> None:
    """The paper's Table 1 figures beside today's (``paper_initial``, ``paper_final``) for each class it has."""
    for culture, counts in report.per_class.items():
        if culture in PAPER_TABLE1:
            counts["paper_initial"], counts["paper_final"] = PAPER_TABLE1[culture]
    if report.per_class and not set(report.per_class) & set(PAPER_TABLE1):
        report.notes.append("none of these classes is in the culture study's Table 1: no published counts beside them")


def extra_merges_note(on: bool) -> str:
    """The project's merges beyond the study's classes, and whether this build made them."""
    listed = "; ".join(f"{', '.join(k.title() for k, v in EXTRA_MERGES.items() if v == c)} -> {c}"
                       for c in dict.fromkeys(EXTRA_MERGES.values()))
    return (f"artlab's extra merges (not the study's) {'MADE' if on else 'not made (extra_merges=True to make them)'}: "
            f"{listed}")
