"""Curation (artlab.collection.curation, `artlab curate`): decisions beside the manifest, on the real demo collection.

The latest decision per id and column wins and an undo withdraws it; the manifest is never rewritten; processes
flagging at once lose nothing; bad input is one line naming the file or field; what people download cannot run as a
spreadsheet formula; a rebuild keeps the file and reports it; the next training sees the decisions and its card
records them, and the retrain command the app shows trains the same configuration.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from artlab.cli.commands import build_parser, main
from artlab.cli.train_options import config_from_args
from artlab.collection import curation
from artlab.collection.contract import read_manifest
from artlab.errors import CollectionError
from conftest import private_collection


@pytest.fixture
def coll(demo_collection, tmp_path):
    return private_collection(demo_collection, tmp_path / "D")


def genre_ids(folder, genre, n=1):
    df = read_manifest(folder)
    return list(df.loc[df["genre"] == genre, "id"][:n])


def test_latest_decision_wins_and_undo_goes_back_to_the_manifest(coll):
    manifest_bytes = (coll / "manifest.csv").read_bytes()
    a, b = genre_ids(coll, "landscape", 2)
    curation.exclude(coll, a, reason="duplicate", note="same as another")
    curation.relabel(coll, b, "genre", "portrait")
    curation.relabel(coll, b, "genre", "still life", note="a bowl of fruit after all")
    curation.relabel(coll, b, "culture", "French")
    cur = curation.effective(coll)
    df = cur.manifest.set_index("id")
    assert a not in df.index and len(df) == len(read_manifest(coll)) - 1
    assert df.loc[b, "genre"] == "still life" and df.loc[b, "culture"] == "French"
    assert cur.rows == 4 and len(cur.decisions) == 3 and cur.excluded == {a} and cur.relabelled == 2
    assert cur.sha256 == hashlib.sha256((coll / "curation.csv").read_bytes()).hexdigest()

    curation.undo(coll, b, column="genre")  # only the genre decision: the culture one stands
    df = curation.effective(coll).manifest.set_index("id")
    original = read_manifest(coll).set_index("id")
    assert df.loc[b, "genre"] == original.loc[b, "genre"] and df.loc[b, "culture"] == "French"
    curation.undo(coll, a)
    assert a in set(curation.effective(coll).manifest["id"])
    assert list(curation.history(coll)["status"]) == ["undone", "replaced", "undone", "in force", "undo", "undo"]
    assert (coll / "manifest.csv").read_bytes() == manifest_bytes  # never rewritten
    with pytest.raises(CollectionError, match=f"{a} has no decision to undo"):
        curation.undo(coll, a)


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from artlab.collection import curation
    folder, worker, ids, go = Path(sys.argv[1]), sys.argv[2], sys.argv[3].split(","), Path(sys.argv[4])
    while not go.exists():
        time.sleep(0.005)
    for i, pid in enumerate(ids):
        curation.relabel(folder, pid, "title", f"w{worker}-{i}", note=f"worker {worker}")
""")


def test_processes_flagging_at_once_lose_nothing(coll):
    ids = list(read_manifest(coll)["id"])
    workers, each = 6, 15
    go = coll.parent / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(coll), str(w),
                               ",".join(ids[w * each:(w + 1) * each]), str(go)]) for w in range(workers)]
    time.sleep(4)  # every process imported and waiting: they start together
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0] * workers
    rows = curation.read_decisions(coll)
    assert len(rows) == workers * each and sorted(rows["value"]) == sorted(
        f"w{w}-{i}" for w in range(workers) for i in range(each))
    for w in range(workers):  # each process's decisions in its own order
        mine = rows[rows["note"] == f"worker {w}"]
        assert list(mine["value"]) == [f"w{w}-{i}" for i in range(each)]
    titles = curation.effective(coll).manifest.set_index("id")["title"]
    assert titles[ids[0]] == "w0-0" and titles[ids[workers * each - 1]] == f"w{workers - 1}-{each - 1}"


def test_bad_input_is_one_line_naming_the_file_or_field(coll):
    pid = genre_ids(coll, "portrait")[0]
    with pytest.raises(CollectionError, match=r"no painting with id 'nope' in .*manifest.csv"):
        curation.exclude(coll, "nope")
    with pytest.raises(CollectionError, match="reason must be one of"):
        curation.exclude(coll, pid, reason="ugly")
    with pytest.raises(CollectionError, match="column 'path' cannot be set"):
        curation.relabel(coll, pid, "path", "images/other.jpg")
    with pytest.raises(CollectionError, match="column 'style' cannot be set"):
        curation.relabel(coll, pid, "style", "baroque")
    with pytest.raises(CollectionError, match="a genre may not start with '='"):
        curation.relabel(coll, pid, "genre", "=1+1")
    with pytest.raises(CollectionError, match="needs a value"):
        curation.relabel(coll, pid, "genre", "  ")
    assert not (coll / "curation.csv").exists()
    (coll / "curation.csv").write_text("id,action,column,value,note,time\nmet-1,delete,,,,\n")
    with pytest.raises(CollectionError, match=r"curation.csv, line 2: unknown action 'delete'"):
        curation.effective(coll)
    (coll / "curation.csv").write_text("painting,what\nmet-1,exclude\n")
    with pytest.raises(CollectionError, match="curation.csv must start with the columns id, action"):
        curation.exclude(coll, pid)
    assert (coll / "curation.csv").read_text() == "painting,what\nmet-1,exclude\n"  # not ours: left as it was


def test_what_people_open_cannot_run_as_a_formula(coll):
    pid = genre_ids(coll, "portrait")[0]
    curation.exclude(coll, pid, reason="other", note='=HYPERLINK("http://x","y")\nsecond line')
    row = curation.read_decisions(coll).iloc[0]
    assert row["note"] == '\'=HYPERLINK("http://x","y") second line'  # one line, neutralised
    table = pd.DataFrame({"id": ["-1", "@a", "ok"], "note": ["+x", "\tt", "fine"], "n": [1, 2, 3]})
    back = pd.read_csv(pd.io.common.BytesIO(curation.to_csv(table)), dtype=str, keep_default_na=False)
    assert list(back["id"]) == ["'-1", "'@a", "ok"] and list(back["note"]) == ["'+x", "'\tt", "fine"]
    assert list(back["n"]) == ["1", "2", "3"]


def test_unavailable_says_why(coll, tmp_path):
    assert curation.unavailable(coll) is None
    assert "is not on this machine" in curation.unavailable(tmp_path / "gone")
    assert "has no manifest.csv" in curation.unavailable(tmp_path)
    with pytest.raises(CollectionError, match="is not on this machine"):
        curation.exclude(tmp_path / "gone", "met-1")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_collection_says_so(coll):
    os.chmod(coll, 0o555)
    try:
        assert "read-only" in curation.unavailable(coll)
    finally:
        os.chmod(coll, 0o755)


def test_the_command_line(coll, capsys):
    a, b = genre_ids(coll, "landscape", 2)
    assert main(["curate", str(coll), a, "--exclude", "--reason", "not a painting", "--note", "a frame"]) == 0
    assert main(["curate", str(coll), b, "--set", "genre=portrait"]) == 0
    assert main(["curate", str(coll), "--list"]) == 0
    out = capsys.readouterr().out
    assert "2 decision(s) in force: 1 excluded, 1 relabelled" in out and "not a painting" in out
    assert main(["curate", str(coll), "--undo", b]) == 0
    rows = curation.read_decisions(coll)
    assert list(rows["action"]) == ["exclude", "set", "undo"] and rows["note"][0] == "a frame"
    capsys.readouterr()
    assert main(["curate", str(coll), b, "--set", "genre"]) == 2
    assert main(["curate", str(coll), b]) == 2
    assert main(["curate", str(coll), "--exclude"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["artlab: --set takes COLUMN=VALUE (e.g. genre=portrait), got 'genre'",
                   "artlab: artlab curate takes one of --exclude, --set COLUMN=VALUE, --undo ID or --list",
                   "artlab: --exclude needs the painting's id: artlab curate COLLECTION ID --exclude ..."]


def test_a_rebuild_keeps_the_curation_and_reports_it(demo_images, tmp_path):
    from artlab.collection.folder import build_folder
    src = tmp_path / "src"
    for i, img in enumerate(demo_images[:6]):
        (src / ("portrait" if i % 2 else "landscape")).mkdir(parents=True, exist_ok=True)
        (src / ("portrait" if i % 2 else "landscape") / img.name).write_bytes(img.read_bytes())
    out = tmp_path / "mine"
    build_folder(src, out)
    first, second = genre_ids(out, "landscape", 2)  # of 3 landscapes and 3 portraits
    curation.exclude(out, first, reason="duplicate")
    curation.relabel(out, second, "genre", "still life")
    decisions = (out / "curation.csv").read_bytes()
    report = build_folder(src, out)  # the same folder, rebuilt
    assert (out / "curation.csv").read_bytes() == decisions
    saved = json.loads((out / "report.json").read_text())
    assert saved["curation"]["decisions_applied"] == 2 and saved["curation"]["excluded"] == 1
    assert any("curation.csv kept: 2 decision(s) apply (1 excluded, 1 relabelled)" in n for n in report.notes)
    assert saved["label_counts"]["genre (curated)"] == {"portrait": 3, "landscape": 1, "still life": 1}


@pytest.mark.train  # it trains: the fast tier (make test-fast) leaves it out
def test_the_next_training_sees_the_decisions(demo_collection, tmp_path, capsys):
    """The issue's check: exclude ID, relabel ID2 portrait, train without rebuilding: ID absent, ID2 a portrait."""
    coll = private_collection(demo_collection, tmp_path / "D")
    gone, moved = genre_ids(coll, "portrait")[0], genre_ids(coll, "landscape")[0]
    assert main(["curate", str(coll), gone, "--exclude", "--reason", "damaged image"]) == 0
    assert main(["curate", str(coll), moved, "--set", "genre=portrait", "--note", "a portrait in a landscape"]) == 0
    run = tmp_path / "run"
    assert main(["train", "--collection", str(coll), "--label", "genre", "--epochs", "1", "--cache-views", "1",
                 "--no-umap", "--out", str(run)]) == 0
    paintings = pd.read_csv(run / "paintings.csv", dtype=str, keep_default_na=False).set_index("id")
    assert gone not in paintings.index and paintings.loc[moved, "label"] == "portrait"
    card = json.loads((run / "card.json").read_text())
    assert card["task"]["curation"] == {
        "file": "curation.csv", "sha256": hashlib.sha256((coll / "curation.csv").read_bytes()).hexdigest(),
        "rows": 2, "decisions_applied": 2, "excluded": 1, "relabelled": 1}
    assert card["task"]["n_images"] == len(paintings)
    assert curation.since(coll, card) == 0
    curation.undo(coll, moved)
    assert curation.since(coll, card) == 1  # what the app counts as "1 correction since this model was trained"

    from artlab.train.command import retrain_command, typed_program
    words = shlex.split(retrain_command(card, coll, run))
    assert words[:2] == [typed_program(), "train"]
    again = config_from_args(build_parser().parse_args(words[1:]))
    assert {**again.to_dict(), "collection": ""} == {**card["config"], "collection": ""}
    assert Path(again.collection) == coll


def test_an_interrupted_run_resumes_only_on_the_same_curation(coll, tmp_path):
    """The staging folder of an interrupted training is kept for the same config and curation.csv, and started
    afresh once a decision has been recorded (the run would otherwise resume on the labels it started with)."""
    from artlab.runfolder import RESUME, staging
    from artlab.train.config import TrainConfig
    from artlab.train.data import make_task
    from artlab.train.runner import _staged_config
    cfg, out = TrainConfig(collection=str(coll), label="genre"), tmp_path / "run"
    work = staging(out, _staged_config(cfg, make_task(cfg)))
    (work / RESUME).write_bytes(b"an interrupted run's state")
    curation.exclude(coll, genre_ids(coll, "portrait")[0], reason="duplicate")
    assert staging(out, _staged_config(cfg, make_task(cfg))) == work and not (work / RESUME).exists()
    (work / RESUME).write_bytes(b"an interrupted run's state")
    assert staging(out, _staged_config(cfg, make_task(cfg))) == work and (work / RESUME).exists()  # same: resumed
