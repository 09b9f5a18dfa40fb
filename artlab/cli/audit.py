"""``artlab audit`` and ``artlab curate --from-findings`` (docs/audit.md), and the Met build's non-painting
ranking (``met_proposals``): the CLI's side of artlab.audit."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from artlab.errors import ArtlabError


def add_audit_parser(sub) -> None:
    au = sub.add_parser("audit", help="near-copies, items that are not paintings and labels that look wrong, "
                        "ranked, with their pictures (docs/audit.md)")
    au.add_argument("collection", help="the collection folder to audit (with manifest.csv)")
    au.add_argument("--label", default=None, help="the label column to check (genre, culture); none: no label "
                    "finder")
    au.add_argument("--run", default=None, help="a run trained on the collection: the near-copy groups that "
                    "straddle its splits, and its test accuracy without them")
    au.add_argument("--out", required=True, help="the folder the findings and their pictures are written to")
    au.add_argument("--backbone", default="efficientnet_lite0", help="the network whose features compare the "
                    "paintings (default efficientnet_lite0)")
    au.add_argument("--top", type=int, default=50, help="rows of the not-a-painting and label rankings kept "
                    "(default 50; near-copies: every pair)")
    au.add_argument("--folds", type=int, default=5, help="cross-validation folds of the label finder (default 5)")
    au.add_argument("--copy-similarity", type=float, default=None, help="the centred cosine similarity from which "
                    "two paintings may be the same in another scan or crop, before the pixel check (default 0.5, "
                    "measured with efficientnet_lite0)")
    au.add_argument("--no-pictures", action="store_true", help="write no side-by-side pictures")
    au.add_argument("--overwrite", action="store_true", help="replace an earlier audit in --out")


def add_from_findings(cu: argparse.ArgumentParser) -> None:
    cu.add_argument("--from-findings", default=None, metavar="FINDINGS_CSV",
                    help="record the top findings of an `artlab audit` findings.csv as decisions")
    cu.add_argument("--kind", default=None, choices=["near-copy", "not-a-painting", "label"],
                    help="with --from-findings: which finder's findings")
    cu.add_argument("--top", type=int, default=None, help="with --from-findings: the first N by rank (default 5)")
    cu.add_argument("--dry-run", action="store_true", help="with --from-findings: print the commands, record "
                    "nothing")


def cmd_audit(a) -> int:
    from artlab.audit import audit_collection
    from artlab.audit.report import FINDINGS, write_audit
    from artlab.collection.contract import MANIFEST
    from artlab.progress import TqdmProgress
    from artlab.safety import check_output, mark_output
    if not (Path(a.collection) / MANIFEST).is_file():
        raise ArtlabError(f"{a.collection} is not a collection (no {MANIFEST})")
    from artlab.collection.contract import read_manifest
    if a.label and a.label not in read_manifest(a.collection).columns:  # said before --out is claimed
        raise ArtlabError(f"{Path(a.collection) / MANIFEST}: no column {a.label!r} to check")
    if a.folds < 2:
        raise ArtlabError(f"--folds {a.folds}: the label finder needs at least 2 folds")
    if a.top < 1:
        raise ArtlabError(f"--top {a.top}: keep at least 1 finding a ranking")
    if a.copy_similarity is not None and not -1 < a.copy_similarity <= 1:  # nan fails this too
        raise ArtlabError(f"--copy-similarity {a.copy_similarity}: a cosine similarity in (-1, 1]")
    sources = {"the collection": a.collection, "the run": a.run}
    out = check_output(a.out, "audit", overwrite=a.overwrite, sources=sources)
    mark_output(out, "audit")  # first: an interrupted audit (its feature cache written) is still artlab's
    run = None
    if a.run:
        from artlab.runfolder import Run
        run = Run.open(a.run)
    audit = audit_collection(a.collection, a.label, backbone=a.backbone, cache=out / "features", run=run,
                             n_folds=a.folds, top=a.top, progress=TqdmProgress(),
                             **({"copy_similarity": a.copy_similarity} if a.copy_similarity is not None else {}))
    write_audit(audit, out, pictures=not a.no_pictures)
    for kind in ("near-copy", "not-a-painting", "label"):
        rows = audit.of(kind)
        print(f"{kind}: {len(rows)} finding(s)" + (f"; first: {rows['id'].iloc[0]} ({rows['related'].iloc[0]})"
                                                   if len(rows) else ""))
    if audit.run:
        r = audit.run
        print(f"run: {r['groups_across_splits']} near-copy group(s) across its splits, {r['paintings_affected']} "
              f"paintings; test accuracy without them: " + ", ".join(
                  f"{m} {v['without_copies']:.3f} (all: {v['all']:.3f})" for m, v in r["accuracy"].items()))
    print(f"audit written to {out} ({FINDINGS}, report.md, pictures/)")
    return 0


def cmd_from_findings(a) -> int:
    """``artlab curate COLLECTION --from-findings F --kind K --top N``: each finding one decision (a near-copy's id
    excluded as a duplicate, a non-painting excluded, a label set to the suggestion)."""
    from artlab.audit.report import curate_command, decide, read_findings
    from artlab.collection import curation
    if not a.kind:
        raise ArtlabError("--from-findings needs --kind near-copy, not-a-painting or label")
    folder = Path(a.from_findings)
    table, summary = read_findings(folder)
    label = summary.get("label")
    if a.kind == "label" and not label:
        raise ArtlabError(f"{folder}: the audit checked no label (its audit.json names none)")
    rows = table[table["kind"] == a.kind].sort_values("rank").head(a.top or 5)
    if rows.empty:
        print(f"no {a.kind} finding in {folder}")
        return 0
    for r in rows.itertuples():
        if a.dry_run:
            print(curate_command(a.collection, r.kind, r.id, r.related, label))
            continue
        row = decide(a.collection, r.kind, r.id, r.related, label)
        print(f"{row['id']}: {curation.describe(row)}")
    if not a.dry_run:
        print(f"{len(rows)} decision(s) recorded in {Path(a.collection) / curation.CURATION}; the next training "
              "sees them")
    return 0


def met_proposals(out: Path) -> Path | None:
    """After ``artlab data met``: the audit's not-a-painting ranking beside the build's report, per culture, next
    to the culture study's Table 1 counts (initial, final), so a curator's removals can be compared with the
    study's 655. Written to ``out/not-a-painting.csv`` and ``.md``; None when the collection is too small."""
    from artlab.audit import audit_collection
    from artlab.audit.features import imagenet_classes  # noqa: F401  (fails early if torchvision lacks them)
    from artlab.collection.contract import read_manifest
    from artlab.io import atomic_save, atomic_write_text
    from artlab.report.csvsafe import to_csv_for_people
    manifest = read_manifest(out)
    if len(manifest) < 3:
        return None
    audit = audit_collection(out, None, cache=out / ".audit-features", top=None)
    odd = audit.odd.merge(manifest[["id", "culture", "title"]].astype(str), on="id", how="left")
    odd = odd.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    odd.insert(1, "rank", range(1, len(odd) + 1))
    atomic_save(out / "not-a-painting.csv", lambda tmp: to_csv_for_people(odd.round(4), tmp))
    atomic_write_text(out / "not-a-painting.md", _met_markdown(odd))
    return out / "not-a-painting.csv"


def _met_markdown(odd) -> str:
    from artlab.collection.met.labels import PAPER_TABLE1
    top = odd[odd["score"] >= odd["score"].quantile(0.9)] if len(odd) >= 10 else odd
    lines = ["# Not a painting? The audit's proposals, per culture", "",
             "The 10% of the collection the audit finds least like a painting (the ImageNet head's guess and an "
             "outlier score; `not-a-painting.csv` ranks all). The culture study removed 655 items by hand "
             "(its Table 1): compare a curator's removals with its initial and final counts.", "",
             "| culture | paintings | proposed | study: initial | study: final | study: removed |",
             "|---|---|---|---|---|---|"]
    for culture, n in odd["culture"].value_counts().items():
        paper = PAPER_TABLE1.get(culture) if isinstance(PAPER_TABLE1, dict) else None
        initial, final = _paper_counts(paper)
        removed = initial - final if isinstance(initial, int) and isinstance(final, int) else ""
        lines.append(f"| {culture or '(unlabelled)'} | {n} | {int((top['culture'] == culture).sum())} | "
                     f"{initial} | {final} | {removed} |")
    lines += ["", "| rank | id | culture | looks like | score | title |", "|---|---|---|---|---|---|"]
    for r in top.head(100).itertuples():
        lines.append(f"| {r.rank} | {r.id} | {r.culture} | {r.looks_like} | {r.score:.3f} | "
                     f"{str(r.title).replace('|', '/')[:80]} |")
    return "\n".join(lines) + "\n"


def _paper_counts(entry) -> tuple:
    """(initial, final) from a PAPER_TABLE1 entry, whatever its shape (a pair, or a dict with those keys)."""
    if isinstance(entry, dict):
        return entry.get("initial", ""), entry.get("final", "")
    if isinstance(entry, (tuple, list)) and len(entry) >= 2:
        return entry[0], entry[1]
    return "", ""


def print_summary(path: Path) -> None:
    print(json.dumps(json.loads(path.read_text()), indent=1))
