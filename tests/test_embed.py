"""`artlab embed` on the real demo paintings: chunks, resuming after an interruption, the FAISS index reused."""

import json

import numpy as np
import pytest

from artlab.cli import main
from artlab.train.embed import INDEX, META, chunk_name, embed_collection, features, load_index
from artlab.errors import ConfigError
from artlab.progress import Progress


class StopAt(Progress):
    """Interrupts the run when a stage starts (Ctrl-C during that chunk)."""

    def __init__(self, stage: str):
        self.stop = stage

    def stage(self, name, total):
        if name == self.stop:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def whole(demo_collection, tmp_path_factory):
    out = tmp_path_factory.mktemp("embed") / "whole"
    report = embed_collection(demo_collection, out, chunk=50)
    return out, report


def test_chunks_and_index_cover_the_collection(whole, demo_collection):
    out, report = whole
    n = sum(1 for _ in open(demo_collection / "manifest.csv")) - 1
    assert (report.n, report.chunks, report.resumed, report.index) == (n, 4, 0, "built")
    assert [p.name for p in sorted(out.glob("chunk-*.npz"))] == [chunk_name(k) for k in range(4)]
    index, ids = load_index(out)
    x = features(out)
    assert index.ntotal == n == len(ids) == len(x) and x.shape[1] == 1280
    q = x[[0, 77, 173]] / np.linalg.norm(x[[0, 77, 173]], axis=1, keepdims=True)
    _, found = index.search(q.astype(np.float32), 1)
    assert list(found[:, 0]) == [0, 77, 173]  # each painting's nearest is itself


def test_an_interrupted_run_resumes_and_gives_the_same_features(whole, demo_collection, tmp_path):
    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        embed_collection(demo_collection, out, chunk=50, progress=StopAt("chunk 3/4"))
    assert sorted(p.name for p in out.iterdir()) == [chunk_name(0), chunk_name(1), META]  # no half-written chunk
    report = embed_collection(demo_collection, out, chunk=50)
    assert (report.resumed, report.index) == (2, "built")
    assert np.allclose(features(out), features(whole[0]), atol=1e-5)
    assert list(load_index(out)[1]) == list(load_index(whole[0])[1])


def test_a_rerun_reuses_the_index_and_a_rewritten_chunk_rebuilds_it(demo_collection, tmp_path):
    out = tmp_path / "again"
    embed_collection(demo_collection, out, chunk=100)
    built = (out / INDEX).stat().st_mtime_ns
    report = embed_collection(demo_collection, out, chunk=100)
    assert (report.resumed, report.index) == (2, "reused") and (out / INDEX).stat().st_mtime_ns == built
    (out / chunk_name(1)).unlink()
    report = embed_collection(demo_collection, out, chunk=100)
    assert (report.resumed, report.index) == (1, "built")
    assert json.loads((out / META).read_text())["n"] == report.n


def test_a_folder_it_did_not_write_or_other_settings_are_refused(demo_collection, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        embed_collection(demo_collection, mine)
    assert (mine / "notes.txt").read_text() == "keep me"
    out = tmp_path / "lite0"
    with pytest.raises(KeyboardInterrupt):
        embed_collection(demo_collection, out, chunk=100, progress=StopAt("chunk 1/2"))
    assert main(["embed", "--collection", str(demo_collection), "--out", str(out), "--chunk", "50"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "chunk" in err[0] and "differ" in err[0]
