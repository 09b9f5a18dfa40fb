"""The Hugging Face hub over plain HTTP: the parquet shard list from the dataset API, each shard downloaded once
(resumable, artlab.collection.http) into the cache; ``HF_TOKEN`` sent only to the hub's own host."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit


from artlab.errors import CollectionError, DownloadError

from artlab.collection import http
from artlab.collection.http import DownloadProgressFn
from artlab.collection.wikiart.names import CACHE, DEFAULT_ENDPOINT


# --- the hub, over plain HTTP -----------------------------------------------------------------------------------

_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")


def resolve_shards(source: str | os.PathLike, cache: Path, *, endpoint: str | None = None,
                   progress: DownloadProgressFn | None = None) -> list[Path]:
    """Local parquet file(s) for ``source``: a file, a folder (searched recursively), or a hub id (downloaded)."""
    path = Path(source).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        shards = sorted((p for p in path.rglob("*.parquet") if CACHE not in p.parts), key=_natural_key)
        if not shards:
            raise CollectionError(f"no parquet shards (*.parquet) in {path}")
        return shards
    if _REPO_ID.fullmatch(str(source)):
        return fetch_hub_shards(str(source), cache, endpoint=endpoint, progress=progress)
    raise CollectionError(f"no such file or folder, and not a hub dataset id (owner/name): {source}")


def hub_endpoint(endpoint: str | None = None) -> str:
    return (endpoint or os.environ.get("ARTLAB_HF_ENDPOINT") or os.environ.get("HF_ENDPOINT")
            or DEFAULT_ENDPOINT).rstrip("/")


def fetch_hub_shards(repo: str, cache: Path, *, endpoint: str | None = None,
                     progress: DownloadProgressFn | None = None) -> list[Path]:
    """Download the parquet shards of ``repo``'s train split into ``cache`` (skipping those already there)."""
    session = _session()
    base = hub_endpoint(endpoint)
    paths = []
    for url in hub_shard_urls(repo, endpoint=base, session=session):
        target = cache / repo.replace("/", "__") / _safe_name(url)
        paths.append(download(url, target, session=session, headers=_auth_headers(url, base), progress=progress))
    return paths


def hub_shard_urls(repo: str, *, endpoint: str | None = None, session=None) -> list[str]:
    """The parquet URLs of ``repo``'s default config, train split, from the hub's dataset API, in shard order."""
    base = hub_endpoint(endpoint)
    api = f"{base}/api/datasets/{repo}/parquet/default/train"
    session = session or _session()
    try:
        response = http.retrying(f"list the shards of {repo}", lambda: _request(session, api, _auth_headers(api, base),
                                                                            stream=False))
    except _NotFound:
        raise DownloadError(f"no dataset '{repo}' on {base} (HTTP 404 from {api}), and no local file or folder "
                            f"of that name") from None
    try:
        urls = response.json()
    except ValueError:
        raise DownloadError(f"the hub's answer for {repo} is not JSON: {api}") from None
    if isinstance(urls, dict):  # an older answer shape: {"default": {"train": [...]}}
        urls = urls.get("default", {}).get("train", [])
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
        raise DownloadError(f"the hub lists no parquet shards for {repo} ({api})")
    return sorted(urls, key=lambda u: _natural_key(Path(urlsplit(u).path)))


def download(url: str, target: Path, *, session=None, headers: dict | None = None,
             progress: DownloadProgressFn | None = None) -> Path:
    """Fetch ``url`` to ``target`` through ``target.part``, resuming a partial file with an HTTP Range request
    (artlab.collection.http). The finished file is moved onto ``target`` atomically, so a file under its final name
    is always complete.
    """
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = http.part_file(target)
    session = session or _session()

    def once() -> None:
        have, ask = http.resume_headers(part, headers)
        with _request(session, url, ask, stream=True, ok=(200, 206, 416)) as response:
            http.append(response, part, have, url, progress)
    http.retrying(f"download {url}", once)
    return http.finish(part, target)


class _NotFound(DownloadError):
    """HTTP 404."""


def _request(session, url: str, headers: dict, *, stream: bool, ok: tuple[int, ...] = (200,)):
    """GET with the hub's error statuses turned into one-line DownloadErrors; transient ones raise http.Transient."""
    try:
        response = session.get(url, headers=headers, stream=stream, timeout=(10, 60))
    except http.network_errors() as exc:
        raise http.Transient(f"{url}: {exc}") from None
    if response.status_code in ok:
        return response
    response.close()
    if response.status_code in (401, 403):
        raise DownloadError(f"the hub refused {url} (HTTP {response.status_code}): set HF_TOKEN to a token that "
                            f"may read this dataset (and accept its terms on the hub)")
    if response.status_code == 404:
        raise _NotFound(f"not found on the hub (HTTP 404): {url}")
    if response.status_code == 429 or response.status_code >= 500:
        raise http.Transient(f"{url}: HTTP {response.status_code}")
    raise DownloadError(f"unexpected answer from the hub for {url}: HTTP {response.status_code}")


def _session():
    try:
        import requests
    except ImportError:
        raise DownloadError("downloading from the hub needs the `requests` package: pip install requests") from None
    session = requests.Session()
    session.headers["User-Agent"] = "artlab (wikiart builder)"
    return session


def _auth_headers(url: str, endpoint: str) -> dict:
    """``$HF_TOKEN`` as a bearer token, sent only to the hub's own host (never to the CDN it redirects to)."""
    token = os.environ.get("HF_TOKEN")
    if token and urlsplit(url).netloc == urlsplit(endpoint).netloc:
        return {"Authorization": f"Bearer {token}"}
    return {}


def _safe_name(url: str) -> str:
    name = PurePosixPath(urlsplit(url).path).name or "shard.parquet"
    return re.sub(r"[^\w.-]", "_", name)


def _natural_key(path: Path) -> list:
    """'2.parquet' before '10.parquet': shard order is the dataset's row order."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.as_posix())]
