"""Open only what was given: run and collection files cannot point the app outside their folders; the app opens
only its roots; every read is capped."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from artlab.errors import ArtlabError
from artlab.runfolder import Run
from artlab.safety import PathEscape, bounded_files, contained, read_capped

ROOT = Path(__file__).resolve().parent.parent


def test_contained_refuses_absolute_climbing_and_symlinks(tmp_path):
    base = tmp_path / "c"
    (base / "images").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("key")
    (base / "images" / "a.jpg").write_bytes(b"x")
    assert contained(base, "images/a.jpg") == (base / "images" / "a.jpg").resolve()
    for bad in ("/etc/passwd", "../secret.txt", "images/../../secret.txt", "C:\\Windows\\win.ini", ""):
        with pytest.raises(PathEscape):
            contained(base, bad)
    (base / "images" / "link.jpg").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(PathEscape, match="symbolic link"):
        contained(base, "images/link.jpg")
    assert (tmp_path / "secret.txt").read_text() == "key"


@pytest.fixture
def hostile_run(genre_run, demo_collection, tmp_path):
    run = tmp_path / "runs" / "hostile"
    shutil.copytree(genre_run, run)
    (tmp_path / "secret.jpg").write_bytes((demo_collection / "images").glob("*.jpg").__next__().read_bytes())
    return run


def test_paintings_csv_paths_stay_in_the_collection(hostile_run, tmp_path):
    run = Run.open(hostile_run)
    assert run.collection is not None  # the demo collection, found through collection_relative
    meta = run.paintings()
    good = meta["path"].iloc[0]
    assert run.painting_file(good) is not None
    for bad in (str(tmp_path / "secret.jpg"), "../" * 12 + str(tmp_path / "secret.jpg").lstrip("/"),
                "images/../../secret.jpg"):
        assert run.painting_file(bad) is None


def test_collection_pointing_elsewhere_is_not_followed(hostile_run, tmp_path):
    import json
    card = json.loads((hostile_run / "card.json").read_text())
    card["task"]["collection_relative"], card["task"]["collection"] = "../../..", "/"
    (hostile_run / "card.json").write_text(json.dumps(card))
    run = Run.open(hostile_run)
    assert run.collection is None and run.painting_file("secret.jpg") is None


def test_symlinked_thumbnail_is_not_shown(hostile_run, tmp_path):
    run = Run.open(hostile_run)
    pid = run.paintings()["id"].iloc[0]
    thumb = run.thumbnail(pid)
    assert thumb is not None
    thumb.unlink()
    thumb.symlink_to(tmp_path / "secret.jpg")
    assert Run.open(hostile_run).thumbnail(pid) is None


def test_app_opens_only_its_roots(tmp_path, monkeypatch):
    from artlab import app
    monkeypatch.delenv("ARTLAB_ALLOW_ANY_FOLDER", raising=False)
    monkeypatch.setenv("ARTLAB_RUNS", str(tmp_path / "mine"))
    (tmp_path / "mine").mkdir()
    assert app.check_root(str(tmp_path / "mine" / "sub")) == tmp_path / "mine" / "sub"
    assert app.check_root(str(ROOT / "checkpoints"))
    for outside in ("/", str(tmp_path), str(tmp_path / "mine" / ".." / "other")):
        with pytest.raises(ArtlabError, match="only opens trained models under"):
            app.list_runs(outside)
        with pytest.raises(ArtlabError):
            app.results_tables(outside)
    roots = tmp_path / "roots.toml"
    roots.write_text('roots = ["shared"]\n')
    monkeypatch.setenv("ARTLAB_ROOTS_FILE", str(roots))
    assert app.check_root(str(tmp_path / "shared" / "runs"))
    monkeypatch.setenv("ARTLAB_ALLOW_ANY_FOLDER", "1")
    assert app.check_root("/") == Path("/")


def test_listing_is_bounded_in_depth_and_count(tmp_path):
    deep = tmp_path / "a" / "b" / "c" / "d" / "e"
    deep.mkdir(parents=True)
    (deep / "results.csv").write_text("x\n1\n")
    for i in range(30):
        (tmp_path / f"g{i:02d}").mkdir()
        (tmp_path / f"g{i:02d}" / "results.csv").write_text("x\n1\n")
    (tmp_path / "link").symlink_to("/", target_is_directory=True)
    found = bounded_files(tmp_path, "results.csv", depth=3, limit=10, max_seen=1000)
    assert len(found) == 10 and all(tmp_path in p.parents for p in found)
    assert deep / "results.csv" not in bounded_files(tmp_path, "results.csv", depth=3, limit=100, max_seen=1000)


def test_reads_are_capped(tmp_path):
    big = tmp_path / "card.json"
    big.write_bytes(b" " * 5000)
    with pytest.raises(ArtlabError, match="too large to read"):
        read_capped(big, 4096)
    assert len(read_capped(big, 5000)) == 5000


def test_make_app_listens_on_localhost_unless_told():
    dry = subprocess.run(["make", "-n", "app"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "--server.address 127.0.0.1" in dry
    dry = subprocess.run(["make", "-n", "app", "ADDRESS=0.0.0.0"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert "--server.address 0.0.0.0" in dry
    assert "MALLOC_" not in dry  # the allocator settings that steady timings are for tests and benchmarks only


def test_the_app_server_listens_on_localhost_and_takes_allow_any_folder(monkeypatch):
    """python -m artlab.app.serve (what make app runs): 127.0.0.1 unless an address is given; --allow-any-folder
    is not passed on to Streamlit (which would refuse it) but becomes ARTLAB_ALLOW_ANY_FOLDER=1 for the app."""
    from artlab.app.serve import streamlit_args
    monkeypatch.setenv("ARTLAB_ALLOW_ANY_FOLDER", "0")  # recorded, so what serve sets is undone after the test
    assert streamlit_args(["--server.port", "9000"]) == ["--server.address", "127.0.0.1", "--server.port", "9000"]
    assert streamlit_args(["--server.address", "0.0.0.0"]) == ["--server.address", "0.0.0.0"]
    assert streamlit_args(["--server.address=::1"]) == ["--server.address=::1"]
    assert os.environ["ARTLAB_ALLOW_ANY_FOLDER"] == "0"
    assert streamlit_args(["--allow-any-folder", "--server.port", "9000"]) == [
        "--server.address", "127.0.0.1", "--server.port", "9000"]
    assert os.environ["ARTLAB_ALLOW_ANY_FOLDER"] == "1"
    from artlab import app
    assert app.check_root("/") == Path("/")
