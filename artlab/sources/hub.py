"""The Hugging Face hub's repository API over plain HTTP: revision, file tree, resolve URLs, ranged and resumable reads.

The same endpoints ``huggingface_hub`` calls (``HfApi.dataset_info`` / ``list_repo_tree``, ``hf_hub_download``):

- ``GET {endpoint}/api/datasets/{repo}/revision/{rev}``: the repository at a revision; ``sha`` pins the commit.
- ``GET {endpoint}/api/datasets/{repo}/tree/{sha}/{path}``: a folder's entries (``lfs`` {oid = sha256, size}); long
  listings are paged with a ``Link: <...>; rel="next"`` header.
- ``GET {endpoint}/datasets/{repo}/resolve/{sha}/{path}``: a 302 to a CDN on another host, which honours Range.

The token is ``$HF_TOKEN``, else the file ``hf auth login`` writes (``$HF_TOKEN_PATH``, else ``$HF_HOME/token``, else
``~/.cache/huggingface/token``). It is sent to the hub's host only: requests drops it when a redirect leaves the host.
Every failure a user can meet becomes one DownloadError line: no network, 401/403 (gated), 404, 429, disk full.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import quote, urljoin as requests_urljoin, urlsplit

from ..errors import DownloadError

DEFAULT_ENDPOINT = "https://huggingface.co"
#: Tries per request for what is worth retrying (5xx, a dropped connection, 429), and the first wait (doubled).
RETRIES = 4
RETRY_WAIT_S = 1.0
#: The longest Retry-After we sleep through; a longer one becomes the user-facing 429 line at once.
MAX_RETRY_AFTER_S = 60.0
CHUNK = 1 << 16

ByteProgress = Callable[[int], None]


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
        if first.is_redirect:
            first.close()
            self._cdn[url] = requests_urljoin(url, first.headers["Location"])
            return self.request("GET", self._cdn[url], url, headers=headers, stream=True, ok=(206,))
        first.close()
        return self.request("GET", url, url, headers=headers, stream=True, ok=(206,))

    def read_range(self, url: str, start: int, stop: int) -> bytes:
        """Bytes [start, stop) of a file, through the resolve redirect."""
        def once() -> bytes:
            with self.ranged(url, start, stop) as response:
                try:
                    data = response.raw.read(stop - start + 1, decode_content=False)
                except _network_errors() as exc:
                    raise _Transient(f"connection lost reading {url}: {exc}") from None
            self.received += len(data)
            if len(data) != stop - start:
                raise _Transient(f"got {len(data)} of {stop - start} bytes of {url}")
            return data
        return _retrying(f"read {url}", once)

    def fetch(self, url: str, target: Path, start: int, stop: int, *, sha256: str | None = None,
              progress: ByteProgress | None = None) -> Path:
        """Bytes [start, stop) of ``url`` into ``target`` through ``target.part``, resuming the part by Range.

        With ``sha256`` the whole result is checked; a mismatch deletes it and fetches it once more, then fails.
        """
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        for attempt in range(2):
            _retrying(f"download {url}", lambda: self._fetch_once(url, part, start, stop, progress))
            if sha256 is None or _sha256(part) == sha256:
                os.replace(part, target)
                return target
            part.unlink()
            if attempt:
                raise DownloadError(f"{target.name} failed its checksum twice (sha256 is not the hub's {sha256[:12]}"
                                    f"...); nothing was kept: run again later")
        raise AssertionError("unreachable")

    def _fetch_once(self, url: str, part: Path, start: int, stop: int, progress: ByteProgress | None) -> None:
        have = part.stat().st_size if part.exists() else 0
        if have >= stop - start:
            if have > stop - start:
                part.unlink()
                raise _Transient(f"{part.name} was longer than the file: starting again")
            return
        with self.ranged(url, start + have, stop) as response:
            if not response.headers.get("Content-Range", "").startswith(f"bytes {start + have}-"):
                raise DownloadError(f"the server answered a range of {url} at the wrong offset "
                                    f"({response.headers.get('Content-Range')})")
            try:
                with _writing(part, "ab") as f:
                    for chunk in response.iter_content(CHUNK):
                        f.write(chunk)
                        have += len(chunk)
                        self.received += len(chunk)
                        if progress:
                            progress(len(chunk))
            except _network_errors() as exc:
                raise _Transient(f"connection lost after {have} bytes: {exc}") from None
        if have != stop - start:
            raise _Transient(f"got {have} of {stop - start} bytes")

    # --- one request, its errors as one line ---

    def request(self, method: str, url: str, what: str, *, headers: dict | None = None, stream: bool = False,
                ok: tuple[int, ...] = (200,), redirects: bool = True):
        """A request with retries for 5xx / dropped connections / short 429s; other failures as one line."""
        ask = dict(headers or {})
        if self.token and urlsplit(url).netloc == urlsplit(self.endpoint).netloc:
            ask["Authorization"] = f"Bearer {self.token}"
        return _retrying(f"{method} {url}",
                         lambda: self._request_once(method, url, what, ask, stream, ok, redirects))

    def _request_once(self, method, url, what, headers, stream, ok, redirects):
        try:
            response = self.session.request(method, url, headers=headers, stream=stream, timeout=(10, 60),
                                            allow_redirects=redirects)
        except _network_errors() as exc:
            host = urlsplit(url).netloc
            raise _Transient(f"cannot reach {host} (no network, or the host is down): {type(exc).__name__}",
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
        return _Transient(f"the hub is rate-limiting requests (HTTP 429){asks}: wait and run again (it resumes)",
                          wait=wait)
    if code >= 500:
        return _Transient(f"{response.url}: HTTP {code}")
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


class _Transient(Exception):
    def __init__(self, text: str, *, wait: float | None = None, offline: bool = False):
        super().__init__(text)
        self.wait, self.offline = wait, offline


def _retrying(what: str, step: Callable):
    last: _Transient | None = None
    for attempt in range(RETRIES + 1):
        if last is not None:
            if last.wait is not None and last.wait > MAX_RETRY_AFTER_S:
                break
            time.sleep(last.wait if last.wait is not None else RETRY_WAIT_S * 2 ** (attempt - 1))
        try:
            return step()
        except _Transient as exc:
            last = exc
            if exc.offline and attempt >= 1:  # a second refusal: no network, say so now
                break
    raise DownloadError(f"{last}; run again to resume" if "run again" not in str(last) else str(last))


class _writing:
    """open() whose ENOSPC becomes the disk-full line (the part file stays: the next run resumes it)."""

    def __init__(self, path: Path, mode: str):
        self.path, self.f = path, open(path, mode)

    def __enter__(self):
        return self

    def write(self, data: bytes) -> None:
        try:
            self.f.write(data)
        except OSError as exc:
            raise _disk_error(exc, self.path) from None

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:  # already failing: close without a second error hiding the first
            try:
                self.f.close()
            except OSError:
                pass
            return False
        try:
            self.f.flush()
            os.fsync(self.f.fileno())
            self.f.close()
        except OSError as err:
            raise _disk_error(err, self.path) from None
        return False


def _disk_error(exc: OSError, path: Path) -> Exception:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DownloadError(f"disk full writing {path}: free space there (or use another --out) and run again; "
                             f"what was downloaded is kept and resumed")
    return exc


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _json(response, url: str):
    try:
        return response.json()
    except ValueError:
        raise DownloadError(f"the hub's answer is not JSON: {url}") from None


def _session():
    import requests
    session = requests.Session()
    session.headers["User-Agent"] = "artlab"
    session.headers["Accept-Encoding"] = "identity"  # sizes and ranges are of the file's own bytes
    return session


def _network_errors() -> tuple[type[Exception], ...]:
    import requests
    import urllib3
    return (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError)


class SegmentFile(io.RawIOBase):
    """A file of ``size`` bytes of which only some segments are on disk: {start: path}. Reading a gap is a bug."""

    def __init__(self, size: int, segments: dict[int, Path]):
        self.size, self.pos = size, 0
        self.segments = sorted((start, path, path.stat().st_size) for start, path in segments.items())

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: offset, 1: self.pos + offset, 2: self.size + offset}[whence]
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer) -> int:
        want, done = min(len(buffer), self.size - self.pos), 0
        while done < want:
            segment = self._segment_at(self.pos, short_ok=done > 0)
            if segment is None:  # a read past a column chunk's end (pyarrow pads some reads): what is there
                break
            start, path, length = segment
            with open(path, "rb") as f:
                f.seek(self.pos - start)
                data = f.read(min(want - done, start + length - self.pos))
            buffer[done:done + len(data)] = data
            done += len(data)
            self.pos += len(data)
        return done

    def _segment_at(self, pos: int, short_ok: bool) -> tuple[int, Path, int] | None:
        for segment in self.segments:
            if segment[0] <= pos < segment[0] + segment[2]:
                return segment
        if short_ok:
            return None
        raise OSError(f"byte {pos} of the file was not downloaded")
