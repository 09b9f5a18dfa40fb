"""WikiArt from a hub laid out as huggingface.co lays out huggan/wikiart, served by tests/standins/hub.py.

The stand-in is checked first with huggingface_hub's own client; then artlab's CLI and builder, which reach the hub
through that client, run against it with HF_ENDPOINT pointing at it: plan, build, resume, the Hugging Face cache
shared, and each failure a user can meet as one line. huggingface_hub reads its environment (HF_HOME, HF_HUB_CACHE,
the token file, HF_HUB_OFFLINE) once, when it is imported: in this process the fixture sets its constants, as the
client's own tests do; one test runs the CLI in a fresh process with the environment variables themselves.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artlab import cli
from artlab.collection.contract import read_manifest
from artlab.collection.wikiart import hub as hub_client
from artlab.errors import DownloadError
from artlab.collection.wikiart import GENRE_NAMES, build_wikiart, plan_wikiart
from standins.hub import Repo, Standin
from standins.wikiart_data import GENRE_COLOURS, GENRE_ROWS, dataset_rows, shard_bytes

REPO, SHA = "huggan/wikiart", "9fd0ab1e5ed4f8ad3b8d6c1f0f2a1e7d5cfa6b3e"
STUDY = {"portrait": "portrait", "landscape": "landscape", "still life": "still_life", "sketch": "sketch_and_study"}


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    files = shard_bytes(dataset_rows())
    files["README.md"] = b"---\nlicense: unknown\n---\n# huggan/wikiart (stand-in)\n"
    return files


@pytest.fixture()
def sleeps(monkeypatch) -> list[float]:
    """The client's waits between tries, recorded instead of slept."""
    import huggingface_hub.file_download
    import huggingface_hub.utils._http
    waits: list[float] = []
    for module in (huggingface_hub.file_download, huggingface_hub.utils._http):
        monkeypatch.setattr(module, "time", types.SimpleNamespace(sleep=waits.append))
    return waits


@pytest.fixture()
def hf_home(monkeypatch, tmp_path) -> Path:
    """A fresh HF_HOME for the client: its cache (hub/) and token file, no token unless a test writes one."""
    from huggingface_hub import constants
    home = tmp_path / "hf-home"
    monkeypatch.delenv("HF_TOKEN", raising=False)
    for name, value in (("HF_HOME", home), ("HF_HUB_CACHE", home / "hub"), ("HF_TOKEN_PATH", home / "token"),
                        ("HF_HUB_OFFLINE", False)):
        monkeypatch.setattr(constants, name, value if isinstance(value, bool) else str(value))
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return home


@pytest.fixture()
def standin(files, monkeypatch, hf_home, sleeps):
    with Standin([Repo(REPO, files, SHA)]) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def shard_sha(files, k: int) -> str:
    return hashlib.sha256(files[f"data/train-{k:05d}-of-00005.parquet"]).hexdigest()


def cdn_requests(standin):
    return [entry for entry in standin.log if entry[0].startswith("localhost:")]


def test_huggingface_hubs_own_client_reads_the_standin(standin, files, tmp_path):
    from huggingface_hub import HfApi, hf_hub_download
    api = HfApi(endpoint=standin.url)
    assert api.dataset_info(REPO).sha == SHA and api.dataset_info(REPO, revision=SHA).sha == SHA
    tree = list(api.list_repo_tree(REPO, "data", repo_type="dataset", revision=SHA))
    assert [f.path for f in tree] == sorted(p for p in files if p.startswith("data/"))
    assert any("cursor=" in path for _, _, path, _ in standin.log), "five entries at three a page: two pages"
    assert all(f.lfs.sha256 == hashlib.sha256(files[f.path]).hexdigest() and f.size == len(files[f.path])
               for f in tree)
    info = api.get_paths_info(REPO, ["README.md", "data", "nothing"], repo_type="dataset")
    assert [i.path for i in info] == ["README.md", "data"]
    name = "data/train-00003-of-00005.parquet"
    path = hf_hub_download(REPO, name, repo_type="dataset", revision=SHA, cache_dir=tmp_path, endpoint=standin.url)
    assert open(path, "rb").read() == files[name]
    assert cdn_requests(standin), "the file came from the CDN's host, not the hub's"
    readme = hf_hub_download(REPO, "README.md", repo_type="dataset", cache_dir=tmp_path, endpoint=standin.url)
    assert open(readme, "rb").read() == files["README.md"]
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "data/missing.parquet", repo_type="dataset", cache_dir=tmp_path, endpoint=standin.url)
    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info("someone/nothing-here")


def test_the_viewer_listing_is_partial_and_never_asked(standin):
    import requests
    listing = requests.get(f"{standin.url}/api/datasets/{REPO}/parquet").json()
    assert list(listing["default"]) == ["partial-train"]
    assert requests.get(f"{standin.url}/api/datasets/{REPO}/parquet/default/train").status_code == 404


def index_bytes(shard: bytes) -> int:
    """What reading a shard's footer and label columns costs: its 8-byte tail, the footer, one range a row group."""
    import io
    import struct
    import pyarrow.parquet as pq
    md = pq.read_metadata(io.BytesIO(shard))
    total = 8 + struct.unpack("<I", shard[-8:-4])[0] + 8
    for g in range(md.num_row_groups):
        cols = [md.row_group(g).column(c) for c in range(md.num_columns)]
        cols = [c for c in cols if c.path_in_schema in ("image.path", "artist", "genre", "style")]
        starts = [c.dictionary_page_offset if c.has_dictionary_page else c.data_page_offset for c in cols]
        total += max(s + c.total_compressed_size for s, c in zip(starts, cols)) - min(starts)
    return total


def plan_bytes(lines: list[str]) -> int:
    return int(re.search(r"still to download: (\d+) bytes", "\n".join(lines)).group(1))


def test_cli_builds_20_paintings_per_study_genre_from_the_repository_files(standin, files, tmp_path, capsys):
    out = tmp_path / "D"
    assert cli.main(["data", "wikiart", "--per-class", "20", "--out", str(out), "--plan"]) == 0
    planned = plan_bytes(capsys.readouterr().out.splitlines())
    after_plan = standin.cdn_bytes()
    assert not list((out / ".cache").rglob("*.rg*")), "the plan fetched no row group"
    assert cli.main(["data", "wikiart", "--per-class", "20", "--out", str(out), "--max-side", "64"]) == 0
    assert standin.cdn_bytes() - after_plan == planned, "the plan's bytes are what the build fetched"
    assert planned < sum(len(files[p]) for p in files if p.endswith(".parquet"))
    df = read_manifest(out)
    assert df["genre"].value_counts().to_dict() == dict.fromkeys(STUDY, 20)
    assert set(df["revision"]) == {SHA}
    for rec in df.itertuples():
        with Image.open(out / rec.path) as im:
            mean = np.asarray(im.convert("RGB"), dtype=float).reshape(-1, 3).mean(axis=0)
        assert np.abs(mean - GENRE_COLOURS[STUDY[rec.genre]]).max() < 12, f"{rec.id} is not a {rec.genre}"
    hub_paths = [path for host, _, path, _ in standin.log if host.startswith("127.0.0.1")]
    assert not any("/parquet" in p for p in hub_paths if p.startswith("/api/")), "the viewer listing was used"
    report = (out / "report.json").read_text()
    assert SHA in report
    before, served = len(standin.log), standin.cdn_bytes()
    assert cli.main(["data", "wikiart", "--per-class", "20", "--out", str(out), "--max-side", "64"]) == 0
    assert standin.cdn_bytes() == served, "a rerun fetches nothing again"
    assert [p.split("?")[0] for _, _, p, _ in standin.log[before:]] == [
        f"/api/datasets/{REPO}/revision/main", f"/api/datasets/{REPO}/tree/{SHA}/data",
        f"/api/datasets/{REPO}/tree/{SHA}/data"]


def test_plan_for_the_real_defaults_prints_rows_sample_bytes_and_cache(standin, files, tmp_path, capsys):
    out = tmp_path / "data" / "wikiart"
    assert cli.main(["data", "wikiart", "--out", str(out), "--plan"]) == 0
    text = capsys.readouterr().out
    assert f"{REPO} at {SHA[:12]}: 300 rows in 5 shard(s)" in text
    for name, n in GENRE_ROWS.items():
        assert re.search(rf"^  {re.escape(name)}\s+{n}\b", text, re.M), name
    assert "sample (seed 0, up to 2000 per genre)" in text
    assert re.search(r"^  portrait\s+60  \(only 60 available\)$", text, re.M)
    assert re.search(r"fetch: \d+ of 60 row groups in 5 of 5 shards", text) and f"cache: {out / '.cache'}" in text
    dataset = sum(len(files[p]) for p in files if p.endswith(".parquet"))
    assert 0.4 * dataset < plan_bytes(text.splitlines()) < dataset  # 158 of 300 rows are of the four genres
    assert standin.cdn_bytes() == sum(map(index_bytes, (files[p] for p in files if p.endswith(".parquet")))), \
        "the plan read each shard's footer and label columns, and nothing else"
    assert not (out / "manifest.csv").exists()


def resumed_blobs(standin) -> set[str]:
    """The files of which a ranged GET continued an earlier one past its start (same end, later start)."""
    gets = [(p.rsplit("/", 1)[1].split("?")[0], r) for _, m, p, r in cdn_requests(standin) if m == "GET" and r]
    resumed = set()
    for i, (blob, rng) in enumerate(gets):
        first, last = rng.removeprefix("bytes=").split("-")
        earlier = [g for g in gets[:i] if g[0] == blob and g[1].endswith(f"-{last}")]
        if earlier and int(earlier[-1][1].removeprefix("bytes=").split("-")[0]) < int(first):
            resumed.add(blob)
    return resumed


def test_an_interrupted_download_resumes_where_it_stopped(standin, files, tmp_path, monkeypatch, sleeps):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 512)  # what a cut loses: the client's chunk in hand
    plan_wikiart(tmp_path / "c", per_class=20)
    for k in range(5):
        standin.cut[shard_sha(files, k)] = 1  # the next transfer of each shard stops half-way
    counts: list[tuple[int, int]] = []
    build_wikiart(tmp_path / "c", per_class=20, max_side=64, download_progress=lambda *a: counts.append(a))
    assert len(read_manifest(tmp_path / "c")) == 80
    assert counts[-1][0] == counts[-1][1] > 0, "the byte counter ends at the bytes planned, cuts and all"
    assert resumed_blobs(standin) == {shard_sha(files, k) for k in range(5)}, "every cut transfer resumed"
    assert not list((tmp_path / "c" / ".cache").rglob("*.part"))


def test_a_part_left_by_an_earlier_run_is_continued(standin, files, tmp_path):
    plan_wikiart(tmp_path / "c", per_class=20)
    folder = next((tmp_path / "c" / ".cache").rglob("train-00002-of-00005.parquet.footer")).parent
    shard = files["data/train-00002-of-00005.parquet"]
    import io
    import pyarrow.parquet as pq
    md = pq.read_metadata(io.BytesIO(shard))
    group = md.row_group(0)
    start = min(group.column(c).dictionary_page_offset or group.column(c).data_page_offset
                for c in range(md.num_columns))
    stop = max((group.column(c).dictionary_page_offset or group.column(c).data_page_offset) +
               group.column(c).total_compressed_size for c in range(md.num_columns))
    (folder / "train-00002-of-00005.parquet.rg0000.part").write_bytes(shard[start:start + 100])  # a cut transfer
    standin.log.clear()
    build_wikiart(tmp_path / "c", per_class=20, max_side=64)
    ranges = [r for _, m, p, r in cdn_requests(standin) if m == "GET" and shard_sha(files, 2) in p]
    assert f"bytes={start + 100}-{stop - 1}" in ranges and f"bytes={start}-{stop - 1}" not in ranges
    assert (folder / "train-00002-of-00005.parquet.rg0000").read_bytes() == shard[start:stop]


def hf_cached(name: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache
    found = try_to_load_from_cache(REPO, name, revision=SHA, repo_type="dataset")
    return found if isinstance(found, str) else None


def test_a_shard_failing_its_checksum_is_fetched_again_and_never_kept(standin, files, tmp_path, hf_home):
    everything = [g for g in GENRE_NAMES if g != "Unknown Genre"]
    standin.corrupt[shard_sha(files, 0)] = 1
    build_wikiart(tmp_path / "a", genres=everything, per_class=60, max_side=64)  # every row: whole shards
    cached = hf_cached("data/train-00000-of-00005.parquet")
    assert cached and str(hf_home / "hub") in cached, "whole shards are in the Hugging Face cache"
    assert hashlib.sha256(Path(cached).read_bytes()).hexdigest() == shard_sha(files, 0)
    assert not list((tmp_path / "a" / ".cache").rglob("*.rg*")), "no row group fetched apart"
    from huggingface_hub import hf_hub_download
    before = len(standin.log)
    assert hf_hub_download(REPO, "data/train-00003-of-00005.parquet", repo_type="dataset", revision=SHA,
                           endpoint=standin.url) == hf_cached("data/train-00003-of-00005.parquet")
    assert len(standin.log) == before, "what artlab fetched serves huggingface_hub"
    standin.corrupt[shard_sha(files, 1)] = 2
    hf_cache = hf_home / "hub" / "datasets--huggan--wikiart"
    shutil.rmtree(hf_cache)
    with pytest.raises(DownloadError, match=r"^train-00001-of-00005.parquet failed its checksum twice"):
        build_wikiart(tmp_path / "b", genres=everything, per_class=60, max_side=64)
    assert hf_cached("data/train-00001-of-00005.parquet") is None
    assert not (hf_cache / "blobs" / shard_sha(files, 1)).exists()


def populate_hf_cache(cache: Path, files: dict[str, bytes]) -> None:
    """The layout huggingface_hub writes: blobs/<sha256>, snapshots/<commit>/<path> -> ../../blobs/..., refs/main."""
    repo = cache / "datasets--huggan--wikiart"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SHA)
    for name, data in files.items():
        if not name.endswith(".parquet"):
            continue
        sha = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / sha).write_bytes(data)
        link = repo / "snapshots" / SHA / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(repo / "blobs" / sha, link.parent))


def test_shards_already_in_the_hf_cache_are_not_fetched_again(standin, files, tmp_path):
    cache = tmp_path / "elsewhere" / "hf-cache"
    populate_hf_cache(cache, files)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_ENDPOINT": standin.url,
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent.parent), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "D"
    run = subprocess.run([sys.executable, "-m", "artlab.cli", "data", "wikiart", "--per-class", "20", "--out", str(out),
                          "--max-side", "64"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert standin.cdn_bytes() == 0 and not cdn_requests(standin), "nothing was fetched"
    assert len(read_manifest(out)) == 80 and set(read_manifest(out)["revision"]) == {SHA}
    assert not list((out / ".cache").rglob("*.footer")), "footers and labels were read from the cached shards"
    assert "5 whole shard(s) in the Hugging Face cache" in run.stdout


def test_a_whole_shard_an_earlier_build_kept_beside_the_parts_is_still_read(standin, files, tmp_path):
    name = "data/train-00001-of-00005.parquet"
    plan_wikiart(tmp_path / "D", per_class=20)
    earlier = tmp_path / "D" / ".cache" / "huggan__wikiart" / SHA / "train-00001-of-00005.parquet"
    earlier.write_bytes(files[name])
    standin.served.clear()
    build_wikiart(tmp_path / "D", per_class=20, max_side=64)
    assert len(read_manifest(tmp_path / "D")) == 80
    assert shard_sha(files, 1) not in standin.served and len(standin.served) == 4


def test_hf_hub_offline_builds_from_the_cache_or_says_what_is_missing(standin, files, tmp_path, hf_home, capsys,
                                                                       monkeypatch):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    err = one_error_line(capsys, ["data", "wikiart", "--out", str(tmp_path / "a"), "--plan"])
    assert "HF_HUB_OFFLINE is set" in err and "not in the Hugging Face cache" in err
    populate_hf_cache(hf_home / "hub", files)
    snapshot = hf_home / "hub" / "datasets--huggan--wikiart" / "snapshots" / SHA
    missing = snapshot / "data" / "train-00003-of-00005.parquet"
    target = missing.readlink()
    missing.unlink()
    err = one_error_line(capsys, ["data", "wikiart", "--out", str(tmp_path / "a"), "--plan"])
    assert "4 of the 5 shards" in err and "HF_HUB_OFFLINE is set" in err, "never a sample of a part of the rows"
    missing.symlink_to(target)
    build_wikiart(tmp_path / "b", per_class=20, max_side=64)
    assert len(read_manifest(tmp_path / "b")) == 80 and not standin.log, "offline: no request at all"


def one_error_line(capsys, argv) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_rate_limit_is_retried_then_one_line(standin, tmp_path, capsys, sleeps):
    standin.throttle, standin.reset = {"resolvers": 2}, 0
    assert plan_wikiart(tmp_path / "a", per_class=3)
    assert sleeps == [1, 1], "the client waited twice as the hub asked (its reset + 1 s) and read on"
    standin.throttle, standin.reset = {"api": 1}, 3600
    err = one_error_line(capsys, ["data", "wikiart", "--out", str(tmp_path / "b"), "--plan"])
    assert "rate-limiting requests (HTTP 429); it asks to wait 3600 s: wait and run again" in err
    standin.throttle = {"resolvers": 10 ** 6}
    sleeps.clear()
    err = one_error_line(capsys, ["data", "wikiart", "--out", str(tmp_path / "c"), "--plan"])
    assert "rate-limiting requests (HTTP 429); it asks to wait 3600 s: wait and run again" in err
    assert sleeps == [3601] * 5, "the client's own tries, each after the wait asked for"


def test_a_gated_dataset_asks_for_a_token_and_takes_the_login_file(standin, tmp_path, capsys, monkeypatch):
    standin.gated, standin.token = True, "hf_standin_token"
    err = one_error_line(capsys, ["data", "wikiart", "--out", str(tmp_path / "a"), "--plan"])
    assert "HTTP 401" in err and "gated" in err and "HF_TOKEN" in err and "hf auth login" in err
    (tmp_path / "hf-home").mkdir(exist_ok=True)
    (tmp_path / "hf-home" / "token").write_text("hf_standin_token\n")  # where `hf auth login` writes it
    standin.log.clear()
    build_wikiart(tmp_path / "b", per_class=3, max_side=64)
    assert len(read_manifest(tmp_path / "b")) == 12
    assert cdn_requests(standin) and standin.authorised_on_cdn == 0, "the token stays on the hub's host"


def test_a_full_disk_is_one_line_and_keeps_nothing_half_named(standin, files, tmp_path):
    client = hub_client.Hub()
    name = "data/train-00000-of-00005.parquet"
    remote = hub_client.RemoteFile(REPO, SHA, name, len(files[name]), shard_sha(files, 0))
    target = tmp_path / "shard.parquet"
    (tmp_path / "shard.parquet.part").symlink_to("/dev/full")  # writes there fail with ENOSPC, as on a full disk
    with pytest.raises(DownloadError, match=r"^disk full writing .*shard.parquet.part: free space there"):
        client.fetch_range(remote, target, 0, len(files[name]))
    assert not target.exists()


def test_no_network_and_no_dataset_are_one_line(standin, tmp_path, capsys, monkeypatch):
    err = one_error_line(capsys, ["data", "wikiart", "--from", "someone/nothing-here", "--out", str(tmp_path),
                                  "--plan"])
    assert "not on the hub" in err and "RepoNotFound" in err
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", closed)
    err = one_error_line(capsys, ["data", "wikiart", "--out", str(tmp_path), "--plan"])
    assert err.startswith(f"artlab: cannot reach 127.0.0.1:") and "no network" in err
