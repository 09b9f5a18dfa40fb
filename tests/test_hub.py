"""WikiArt from a hub laid out as huggingface.co lays out huggan/wikiart, served by tests/standins/hub.py.

The stand-in is checked first with huggingface_hub's own client; then artlab's CLI and builder run against it with
HF_ENDPOINT pointing at it: plan, build, resume, and each failure a user can meet as one line.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
from PIL import Image

from artlab import cli
from artlab.collection import http
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
def standin(files, monkeypatch, tmp_path):
    monkeypatch.setattr(http, "RETRY_WAIT_S", 0.0)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("ARTLAB_HF_ENDPOINT", raising=False)
    monkeypatch.delenv("HF_TOKEN_PATH", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no token file unless a test writes one
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


def test_an_interrupted_download_resumes_where_it_stopped(standin, files, tmp_path, monkeypatch):
    monkeypatch.setattr(http, "CHUNK", 512)
    plan_wikiart(tmp_path / "c", per_class=20)
    for k in range(5):
        standin.cut[shard_sha(files, k)] = 1  # the next transfer of each shard stops half-way
    build_wikiart(tmp_path / "c", per_class=20, max_side=64)
    assert len(read_manifest(tmp_path / "c")) == 80
    resumed = []
    gets = [(p.rsplit("/", 1)[1].split("?")[0], r) for _, m, p, r in cdn_requests(standin) if m == "GET"]
    for i, (blob, rng) in enumerate(gets):
        first, last = rng.removeprefix("bytes=").split("-")
        earlier = [g for g in gets[:i] if g[0] == blob and g[1].endswith(f"-{last}")]
        if earlier and int(earlier[-1][1].removeprefix("bytes=").split("-")[0]) < int(first):
            resumed.append(blob)
    assert len(set(resumed)) == 5, "every cut transfer resumed past the bytes it had"
    assert not list((tmp_path / "c" / ".cache").rglob("*.part"))


def test_a_shard_failing_its_checksum_is_fetched_again_and_never_kept(standin, files, tmp_path):
    everything = [g for g in GENRE_NAMES if g != "Unknown Genre"]
    standin.corrupt[shard_sha(files, 0)] = 1
    build_wikiart(tmp_path / "a", genres=everything, per_class=60, max_side=64)  # every row: whole shards
    cached = next((tmp_path / "a" / ".cache").rglob("train-00000-of-00005.parquet"))
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == shard_sha(files, 0)
    standin.corrupt[shard_sha(files, 1)] = 2
    with pytest.raises(DownloadError, match=r"^train-00001-of-00005.parquet failed its checksum twice"):
        build_wikiart(tmp_path / "b", genres=everything, per_class=60, max_side=64)
    assert not [p for p in (tmp_path / "b" / ".cache").rglob("train-00001-of-00005.parquet*")
                if not p.name.endswith((".footer", ".labels.parquet"))]


def one_error_line(capsys, argv) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_rate_limit_is_retried_then_one_line(standin, tmp_path, capsys):
    standin.throttle, standin.retry_after = 2, 0
    assert plan_wikiart(tmp_path / "a", per_class=3)
    standin.throttle, standin.retry_after = 10 ** 6, 3600
    err = one_error_line(capsys, ["data", "wikiart", "--out", str(tmp_path / "b"), "--plan"])
    assert "rate-limiting requests (HTTP 429); it asks to wait 3600 s: wait and run again" in err


def test_a_gated_dataset_asks_for_a_token_and_takes_the_login_file(standin, tmp_path, capsys, monkeypatch):
    standin.gated, standin.token = True, "hf_standin_token"
    err = one_error_line(capsys, ["data", "wikiart", "--out", str(tmp_path / "a"), "--plan"])
    assert "HTTP 401" in err and "gated" in err and "HF_TOKEN" in err and "hf auth login" in err
    (tmp_path / "hf-home").mkdir()
    (tmp_path / "hf-home" / "token").write_text("hf_standin_token\n")  # where `hf auth login` writes it
    standin.log.clear()
    build_wikiart(tmp_path / "b", per_class=3, max_side=64)
    assert len(read_manifest(tmp_path / "b")) == 12
    assert cdn_requests(standin) and standin.authorised_on_cdn == 0, "the token stays on the hub's host"


def test_a_full_disk_is_one_line_and_keeps_nothing_half_named(standin, files, tmp_path):
    client = hub_client.Hub()
    name = "data/train-00000-of-00005.parquet"
    target = tmp_path / "shard.parquet"
    (tmp_path / "shard.parquet.part").symlink_to("/dev/full")  # writes there fail with ENOSPC, as on a full disk
    with pytest.raises(DownloadError, match=r"^disk full writing .*shard.parquet.part: free space there"):
        client.fetch(client.resolve_url(REPO, SHA, name), target, 0, len(files[name]))
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
