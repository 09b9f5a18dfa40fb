"""An audit's folder: ``findings.csv`` (kind, id, related, score, rank), ``audit.json`` (what was audited, the
thresholds, the times, a run's leakage), ``pictures/`` (each finding's pictures side by side) and ``report.md`` (the
rankings for people, with thumbnails and the ``artlab curate`` command that turns each finding into a decision)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pandas as pd

from artlab import __version__
from artlab.audit.audit import COLUMNS, KINDS, Audit
from artlab.collection.contract import read_manifest
from artlab.errors import ArtlabError
from artlab.images import load_image
from artlab.io import atomic_save, atomic_write_json, atomic_write_text
from artlab.report.csvsafe import to_csv_for_people
from artlab.safety import mark_output

FINDINGS, SUMMARY, REPORT, PICTURES = "findings.csv", "audit.json", "report.md", "pictures"
TILE = 256  # pixels: the height of a picture in a side-by-side image
TITLES = {"near-copy": "Near-copies", "not-a-painting": "Not a painting", "label": "Label looks wrong"}


def curate_words(collection: str | Path, kind: str, pid: str, related: str, label: str | None) -> list[str]:
    """The ``artlab curate`` command that makes a finding a decision: a near-copy's ``id`` excluded as a duplicate
    (its twin ``related`` kept), a non-painting excluded, a label set to the suggested one."""
    base = ["artlab", "curate", str(collection), pid]
    if kind == "label":
        return base + ["--set", f"{label}={related}", "--note", "audit: label looks wrong"]
    reason = "duplicate" if kind == "near-copy" else "not a painting"
    note = f"audit: a copy of {related}" if kind == "near-copy" else f"audit: looks like {related}"
    return base + ["--exclude", "--reason", reason, "--note", note]


def curate_command(collection, kind, pid, related, label) -> str:
    return " ".join(shlex.quote(w) for w in curate_words(collection, kind, pid, related, label))


def decide(collection: str | Path, kind: str, pid: str, related: str, label: str | None) -> dict:
    """Record the decision ``curate_words`` spells (artlab.collection.curation): the one mapping from a finding to
    a decision, for ``artlab curate --from-findings`` and the app's review page. Returns the decision's row."""
    from artlab.collection import curation
    if kind == "label":
        if not label:
            raise ArtlabError("this audit checked no label: a label finding cannot be applied")
        return curation.relabel(collection, pid, label, related, note="audit: label looks wrong")
    if kind == "near-copy":
        return curation.exclude(collection, pid, reason="duplicate", note=f"audit: a copy of {related}")
    return curation.exclude(collection, pid, reason="not a painting", note=f"audit: looks like {related}")


def picture_ids(kind: str, pid: str, related: str, nearest: dict[str, str]) -> list[str]:
    """The paintings shown for a finding: a pair's two; a non-painting alone; a label finding beside the nearest
    painting of the suggested class."""
    if kind == "near-copy":
        return [pid, related]
    if kind == "label" and nearest.get(pid):
        return [pid, nearest[pid]]
    return [pid]


def side_by_side(files: list[Path], target: Path) -> None:
    from PIL import Image
    tiles = []
    for f in files:
        im = load_image(f, min_side=TILE)
        im.thumbnail((TILE * 2, TILE))
        tiles.append(im.convert("RGB"))
    sheet = Image.new("RGB", (sum(t.width for t in tiles) + 8 * (len(tiles) - 1), TILE), "white")
    x = 0
    for t in tiles:
        sheet.paste(t, (x, (TILE - t.height) // 2))
        x += t.width + 8
    atomic_save(target, lambda tmp: sheet.save(tmp, format="JPEG", quality=85))


def write_audit(audit: Audit, out: str | Path, pictures: bool = True) -> Path:
    """Write the audit's folder (``out`` already checked by the caller with artlab.safety.check_output)."""
    out = Path(out)
    mark_output(out, "audit")
    atomic_save(out / FINDINGS, lambda tmp: to_csv_for_people(audit.findings[list(COLUMNS)], tmp))
    manifest = read_manifest(audit.collection)
    paths = dict(zip(manifest["id"].astype(str), manifest["path"]))
    names = []
    if pictures:
        (out / PICTURES).mkdir(exist_ok=True)
        for r in audit.findings.itertuples():
            name = f"{PICTURES}/{r.kind}-{r.rank:03d}.jpg"
            ids = picture_ids(r.kind, r.id, r.related, audit.nearest)
            try:
                side_by_side([audit.collection / paths[i] for i in ids], out / name)
            except Exception:  # noqa: BLE001 - an unreadable picture: the finding stays, without its image
                name = ""
            names.append(name)
    else:
        names = [""] * len(audit.findings)
    findings = audit.findings.assign(picture=names)
    summary = {"artlab_version": __version__, "collection": str(audit.collection.resolve()), "label": audit.label,
               "counts": {k: int((findings["kind"] == k).sum()) for k in KINDS},
               "near_copy_groups": len(set(audit.groups.values())), "embedding_threshold": round(audit.threshold, 4),
               "seconds": {k: round(v, 2) for k, v in audit.seconds.items()}, "run": audit.run}
    atomic_write_json(out / SUMMARY, summary)
    atomic_write_text(out / REPORT, markdown(audit, findings, summary))
    return out


def _cell(text) -> str:
    """A table cell: no pipe or newline from the data breaks the table."""
    return str(text).replace("|", "/").replace("\n", " ")


def markdown(audit: Audit, findings: pd.DataFrame, summary: dict) -> str:
    lines = [f"# Audit of {audit.collection.name}", "",
             f"{len(audit.odd)} paintings (as curated), label checked: {audit.label or 'none'}. "
             f"Near-copy groups: {summary['near_copy_groups']}. Each finding's command records a curation "
             "decision (curation.csv); the next `artlab train` on the collection trains without it, and its card "
             "says so (`task.curation`).", ""]
    if audit.run:
        r = audit.run
        lines += [f"**Run {Path(r['run']).name}**: {r['groups_across_splits']} near-copy group(s) straddle its "
                  f"splits ({r['paintings_affected']} paintings; {r['test_paintings_left_out']} of its "
                  f"{r['test_paintings']} test paintings have a copy in another split). Test accuracy, all / "
                  "without them: " + ", ".join(f"{m} {a['all']:.3f} / {a['without_copies']:.3f}"
                                                for m, a in r["accuracy"].items()), ""]
    for kind in KINDS:
        rows = findings[findings["kind"] == kind]
        lines += [f"## {TITLES[kind]} ({len(rows)})", ""]
        if rows.empty:
            lines += ["Nothing found.", ""]
            continue
        lines += ["| rank | id | related | score | what | pictures | decision |", "|---|---|---|---|---|---|---|"]
        for r in rows.itertuples():
            pic = f"![{r.kind} {r.rank}]({r.picture})" if r.picture else ""
            cmd = curate_command(audit.collection, r.kind, r.id, r.related, audit.label)
            lines.append(f"| {r.rank} | {_cell(r.id)} | {_cell(r.related)} | {r.score:.3f} | {_cell(r.detail)} | "
                         f"{pic} | `{_cell(cmd)}` |")
        lines.append("")
    lines += ["Times (s): " + json.dumps(summary["seconds"]), ""]
    return "\n".join(lines)


def read_findings(folder: str | Path) -> tuple[pd.DataFrame, dict]:
    """(findings.csv, audit.json) of an audit folder, for the app and ``artlab curate --from-findings``."""
    from artlab.safety import CAPS, read_capped
    path = Path(folder)
    csv = path if path.suffix.lower() == ".csv" else path / FINDINGS  # the folder, or its findings.csv
    try:
        table = pd.read_csv(csv, dtype={"id": str, "related": str}, keep_default_na=False)
        summary = json.loads(read_capped(csv.parent / SUMMARY, CAPS["json"])) if (csv.parent / SUMMARY).is_file() \
            else {}
    except (OSError, ValueError, ArtlabError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ArtlabError(f"{csv}: unreadable ({str(exc).strip().splitlines()[0][:160]})") from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ArtlabError(f"{csv}: missing column(s) {', '.join(missing)}")
    bad = table[~table["kind"].isin(KINDS)]
    if len(bad):
        raise ArtlabError(f"{csv}, line {int(bad.index[0]) + 2}: unknown kind {bad['kind'].iloc[0]!r}")
    if not pd.to_numeric(table["rank"], errors="coerce").notna().all():
        raise ArtlabError(f"{csv}: column 'rank' must hold whole numbers")
    return table, summary
