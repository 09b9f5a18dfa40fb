"""The Hugging Face hub's repository API over plain HTTP: revision, file tree, resolve URLs, ranged and resumable reads.

The same endpoints ``huggingface_hub`` calls (``HfApi.dataset_info`` / ``list_repo_tree``, ``hf_hub_download``):

- ``GET {endpoint}/api/datasets/{repo}/revision/{rev}``: the repository at a revision; ``sha`` pins the commit.
- ``GET {endpoint}/api/datasets/{repo}/tree/{sha}/{path}``: a folder's entries (``lfs`` {oid = sha256, size}); long
  listings are paged with a ``Link: <...>; rel="next"`` header.
- ``GET {endpoint}/datasets/{repo}/resolve/{sha}/{path}``: a 302 to a CDN on another host, which honours Range.

The token is ``$HF_TOKEN``, else the file ``hf auth login`` writes (``$HF_TOKEN_PATH``, else ``$HF_HOME/token``, else
``~/.cache/huggingface/token``). It is sent to the hub's host only: requests drops it when a redirect leaves the host.
Every failure a user can meet becomes one DownloadError line: no network, 401/403 (gated), 404, 429, disk full.
Downloads, retries and the disk-full line are artlab.collection.http's, shared with the Met.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

from artlab.collection import http
from artlab.collection.wikiart.names import DEFAULT_ENDPOINT
from artlab.errors import DownloadError


def endpoint(explicit: str | None = None) -> str:
    return (explicit or os.environ.get("ARTLAB_HF_ENDPOINT") or os.environ.get("HF_ENDPOINT")
            or DEFAULT_ENDPOINT).rstrip("/")


def token() -> str | None:
    """``$HF_TOKEN``, else the token file of ``hf auth login`` (same lookup as huggingface_hub's constants)."""
    if os.environ.get("HF_TOKEN"):
        return os.environ["HF_TOKEN"].strip()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                     os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    path = Path(os.environ.get("HF_TOKEN_PATH") or os.path.join(home, "token")).expanduser()
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repository at a pinned commit."""
    path: str
    size: int
    sha256: str | None
    url: str


class Hub:
    """A requests session on one hub endpoint; counts the bytes it received (``received``)."""

    def __init__(self, endpoint_url: str | None = None, *, session=None):
        self.endpoint = endpoint(endpoint_url)
        self.session = session or _session()
        self.token = token()
        self.received = 0
        self._cdn: dict[str, str] = {}  # resolve URL -> the CDN URL it redirected to (signed: it can expire)

    # --- the repository API ---

    def revision(self, repo: str, rev: str = "main") -> str:
        """The commit sha of ``rev`` (a branch, tag or sha)."""
        info = self.get_json(f"{self.endpoint}/api/datasets/{repo}/revision/{quote(rev, safe='')}", repo)
        if not isinstance(info, dict) or not isinstance(info.get("sha"), str):
            raise DownloadError(f"the hub's answer about {repo} has no commit sha ({self.endpoint})")
        return info["sha"]

    def tree(self, repo: str, sha: str, folder: str) -> list[RemoteFile]:
        """The files directly in ``folder`` at commit ``sha``, following the Link header's pages."""
        url: str | None = f"{self.endpoint}/api/datasets/{repo}/tree/{sha}/{quote(folder, safe='/')}"
        files = []
        while url:
            response = self.request("GET", url, repo)
            for entry in _json(response, url):
                if entry.get("type") == "file":
                    lfs = entry.get("lfs") or {}
                    files.append(RemoteFile(entry["path"], int(lfs.get("size", entry.get("size", 0))),
                                            lfs.get("oid"), self.resolve_url(repo, sha, entry["path"])))
            url = response.links.get("next", {}).get("url")
        return files

    def resolve_url(self, repo: str, sha: str, path: str) -> str:
        return f"{self.endpoint}/datasets/{repo}/resolve/{sha}/{quote(path, safe='/')}"

    def get_json(self, url: str, repo: str):
        return _json(self.request("GET", url, repo), url)

    # --- bytes ---

    def ranged(self, url: str, start: int, stop: int):
        """A streaming 206 answer for bytes [start, stop) of a resolve URL.

        The resolve URL is asked once (its 302 names the CDN); later ranges go to the CDN URL directly, and ask the
        hub again when the CDN refuses it (a signed URL that expired answers 403).
        """
        headers = {"Range": f"bytes={start}-{stop - 1}"}
        if url in self._cdn:
            try:
                return self.request("GET", self._cdn[url], url, headers=headers, stream=True, ok=(206,))
            except DownloadError:
                del self._cdn[url]
        first = self.request("GET", url, url, stream=False, ok=(200, 301, 302, 303, 307, 308), redirects=False)
        first.close()
        if first.is_redirect:
            self._cdn[url] = urljoin(url, first.headers["Location"])
            return self.request("GET", self._cdn[url], url, headers=headers, stream=True, ok=(206,))
        return self.request("GET", url, url, headers=headers, stream=True, ok=(206,))

    def read_range(self, url: str, start: int, stop: int) -> bytes:
        """Bytes [start, stop) of a file, through the resolve redirect."""
        def once() -> bytes:
            with self.ranged(url, start, stop) as response:
                try:
                    data = response.raw.read(stop - start + 1, decode_content=False)
                except http.network_errors() as exc:
                    raise http.Transient(f"connection lost reading {url}: {exc}") from None
            self.received += len(data)
            if len(data) != stop - start:
                raise http.Transient(f"got {len(data)} of {stop - start} bytes of {url}")
            return data
        return http.retrying(f"read {url}", once)

    def fetch(self, url: str, target: Path, start: int, stop: int, *, sha256: str | None = None,
              progress: http.ByteProgress | None = None) -> Path:
        """Bytes [start, stop) of ``url`` into ``target`` through ``target.part``, resuming the part by Range.

        With ``sha256`` the whole result is checked; a mismatch deletes it and fetches it once more, then fails.
        """
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        part = http.part_file(target)
        for attempt in range(2):
            http.retrying(f"download {url}", lambda: self._fetch_once(url, part, start, stop, progress))
            if sha256 is None or http.sha256_of(part) == sha256:
                return http.finish(part, target)
            part.unlink()
            if attempt:
                raise DownloadError(f"{target.name} failed its checksum twice (sha256 is not the hub's {sha256[:12]}"
                                    f"...); nothing was kept: run again later")
        raise AssertionError("unreachable")

    def _fetch_once(self, url: str, part: Path, start: int, stop: int, progress: http.ByteProgress | None) -> None:
        have = part.stat().st_size if part.exists() else 0
        if have >= stop - start:
            if have > stop - start:
                part.unlink()
                raise http.Transient(f"{part.name} was longer than the file: starting again")
            return

        def counted(n: int) -> None:
            self.received += n
            if progress:
                progress(n)

        with self.ranged(url, start + have, stop) as response:
            http.append(response, part, have, url, counted, offset=start)
        if part.stat().st_size != stop - start:  # an answer without Content-Length that ended early
            raise http.Transient(f"got {part.stat().st_size} of {stop - start} bytes of {url}")

    # --- one request, its errors as one line ---

    def request(self, method: str, url: str, what: str, *, headers: dict | None = None, stream: bool = False,
                ok: tuple[int, ...] = (200,), redirects: bool = True):
        """A request with retries for 5xx / dropped connections / short 429s; other failures as one line."""
        ask = dict(headers or {})
        if self.token and urlsplit(url).netloc == urlsplit(self.endpoint).netloc:
            ask["Authorization"] = f"Bearer {self.token}"
        return http.retrying(f"{method} {url}",
                             lambda: self._request_once(method, url, what, ask, stream, ok, redirects))

    def _request_once(self, method, url, what, headers, stream, ok, redirects):
        try:
            response = self.session.request(method, url, headers=headers, stream=stream, timeout=(10, 60),
                                            allow_redirects=redirects)
        except http.network_errors() as exc:
            host = urlsplit(url).netloc
            raise http.Transient(f"cannot reach {host} (no network, or the host is down): {type(exc).__name__}",
                                 offline=True) from None
        if response.status_code in ok:
            return response
        response.close()
        raise _http_error(response, what)


def _http_error(response, what: str) -> Exception:
    code, error = response.status_code, response.headers.get("X-Error-Code", "")
    message = response.headers.get("X-Error-Message", "")
    if code == 429:
        wait = _retry_after(response)
        asks = f"; it asks to wait {wait:.0f} s" if wait else ""
        return http.Transient(f"the hub is rate-limiting requests (HTTP 429){asks}: wait and run again (it resumes)",
                              wait=wait)
    if code >= 500:
        return http.Transient(f"{response.url}: HTTP {code}")
    if code in (401, 403) and error != "RepoNotFound" and error != "EntryNotFound":
        gated = " (a gated dataset: accept its terms on the hub page)" if error == "GatedRepo" or code == 403 else ""
        return DownloadError(f"the hub refused access to {what} (HTTP {code}){gated}: set HF_TOKEN or run "
                             f"`hf auth login` with a token that may read it")
    if code in (401, 404) or error in ("RepoNotFound", "EntryNotFound", "RevisionNotFound"):
        return DownloadError(f"not on the hub: {what} (HTTP {code}{', ' + error if error else ''}"
                             f"{': ' + message if message else ''}); a private dataset needs HF_TOKEN")
    if code == 416:
        return DownloadError(f"the server refused the byte range asked of {what} (HTTP 416): the file changed?")
    return DownloadError(f"unexpected answer from the hub for {what}: HTTP {code}")


def _retry_after(response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _json(response, url: str):
    try:
        return response.json()
    except ValueError:
        raise DownloadError(f"the hub's answer is not JSON: {url}") from None


def _session():
    try:
        import requests
    except ImportError:
        raise DownloadError("downloading from the hub needs the `requests` package: pip install requests") from None
    session = requests.Session()
    session.headers["User-Agent"] = "artlab"
    session.headers["Accept-Encoding"] = "identity"  # sizes and ranges are of the file's own bytes
    return session
