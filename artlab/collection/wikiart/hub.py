"""The Hugging Face hub through its own client, ``huggingface_hub``: revision, file list, ranged reads, whole files.

artlab speaks no hub endpoint itself. The client does, and follows the hub as it changes (Xet storage behind
``resolve``, its CDN, rate limits):

- the commit of a revision: ``HfApi.dataset_info``; the shard list: ``HfApi.list_repo_tree`` (paged by the client);
- a byte range of a file (footers, label columns, row groups): ``file_download.http_get`` on the file's ``resolve``
  URL with a ``Range`` header, the function ``hf_hub_download`` downloads with (it follows the redirect to the CDN or
  to Xet's bridge, both of which honour Range, keeps the token on the hub's host, retries a 429 after the wait the
  hub asks for, and continues a dropped transfer where it stopped); a range cut short in an earlier run continues
  from its ``.part`` file;
- a whole shard: ``hf_hub_download`` into the standard Hugging Face cache (``$HF_HUB_CACHE``, else
  ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``), so a shard that ``datasets`` or ``huggingface_hub`` fetched
  before is read from there, and one that artlab fetched serves them; ``try_to_load_from_cache`` finds it offline.

The token, ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and the cache folder are the client's (its own environment variables
and ``hf auth login``'s file). Every failure a user can meet becomes one DownloadError line (``errors``): no network,
401/403 (gated), 404, 429, offline mode, a full disk.
"""

from __future__ import annotations

import errno
import io
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from artlab.collection import http
from artlab.errors import DownloadError

REPO_TYPE = "dataset"


def endpoint(explicit: str | None = None) -> str:
    """The hub's address: ``explicit``, else ``$HF_ENDPOINT`` (read now, as the client reads it at start), else the
    client's default."""
    from huggingface_hub import constants
    return (explicit or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repository at a pinned commit (``sha256``: its LFS oid, when the hub gives one)."""
    repo: str
    commit: str
    path: str
    size: int
    sha256: str | None


class Hub:
    """The client on one hub endpoint; counts the bytes of the ranges it read and fetched (``received``)."""

    def __init__(self, endpoint_url: str | None = None):
        from huggingface_hub import HfApi
        self.endpoint = endpoint(endpoint_url)
        self.api = HfApi(endpoint=self.endpoint)  # token: the client's own lookup (HF_TOKEN, hf auth login)
        self.received = 0

    # --- the repository ---

    def revision(self, repo: str, rev: str = "main") -> str:
        """The commit sha of ``rev`` (a branch, tag or sha); offline (HF_HUB_OFFLINE), the one the cache knows."""
        if offline():
            return _cached_revision(repo, rev)
        with errors(repo, self.endpoint):
            sha = self.api.dataset_info(repo, revision=rev).sha
        if not isinstance(sha, str):
            raise DownloadError(f"the hub's answer about {repo} has no commit sha ({self.endpoint})")
        return sha

    def tree(self, repo: str, sha: str, folder: str) -> list[RemoteFile]:
        """The files directly in ``folder`` at commit ``sha``; offline, those of the cache's snapshot."""
        from huggingface_hub.hf_api import RepoFile
        if offline():
            return _cached_tree(repo, sha, folder)
        with errors(f"{repo}/{folder}", self.endpoint):
            entries = list(self.api.list_repo_tree(repo, folder, repo_type=REPO_TYPE, revision=sha))
        return [RemoteFile(repo, sha, e.path, int(e.size), e.lfs.sha256 if e.lfs else None)
                for e in entries if isinstance(e, RepoFile)]

    # --- the Hugging Face cache ---

    @staticmethod
    def cached(remote: RemoteFile) -> Path | None:
        """The whole file in the Hugging Face cache at its commit, if some client put it there (no network)."""
        from huggingface_hub import try_to_load_from_cache
        found = try_to_load_from_cache(remote.repo, remote.path, revision=remote.commit, repo_type=REPO_TYPE)
        return Path(found) if isinstance(found, str) else None

    def download(self, remote: RemoteFile, progress: http.ByteProgress | None = None) -> Path:
        """The whole file, through ``hf_hub_download`` into the Hugging Face cache (nothing when it is there).

        A file this call fetched is checked against its sha256 (the client checks only its size): a mismatch fetches
        it once more, then removes what it fetched and fails.
        """
        if (found := self.cached(remote)) is not None:
            return found
        for attempt in range(2):
            path = self._hf_hub_download(remote, progress, force=attempt > 0)
            if remote.sha256 is None or http.sha256_of(path) == remote.sha256:
                return path
        _forget(path)
        raise DownloadError(f"{Path(remote.path).name} failed its checksum twice (sha256 is not the hub's "
                            f"{remote.sha256[:12]}...); nothing was kept: run again later")

    def _hf_hub_download(self, remote: RemoteFile, progress: http.ByteProgress | None, force: bool) -> Path:
        from huggingface_hub import hf_hub_download
        with errors(f"{remote.repo}/{remote.path}", self.endpoint):
            return Path(hf_hub_download(remote.repo, remote.path, repo_type=REPO_TYPE, revision=remote.commit,
                                        endpoint=self.endpoint, force_download=force,
                                        tqdm_class=_counting(progress)))

    # --- byte ranges ---

    def read_range(self, remote: RemoteFile, start: int, stop: int) -> bytes:
        """Bytes [start, stop) of a file."""
        buffer = io.BytesIO()
        self._get(remote, buffer, start, stop, 0, None)
        self.received += buffer.tell()
        return buffer.getvalue()

    def fetch_range(self, remote: RemoteFile, target: Path, start: int, stop: int,
                    progress: http.ByteProgress | None = None) -> Path:
        """Bytes [start, stop) into ``target`` through ``target.part``, which a later run continues."""
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        part = http.part_file(target)
        have = part.stat().st_size if part.exists() else 0
        if have > stop - start:
            part.unlink()
            have = 0

        def counted(n: int) -> None:
            self.received += n
            if progress:
                progress(n)

        with http.writing(part, "ab" if have else "wb") as f:
            self._get(remote, f, start, stop, have, counted)
        if part.stat().st_size != stop - start:
            raise DownloadError(f"got {part.stat().st_size} of {stop - start} bytes of {remote.path}: run again "
                                f"to resume")
        return http.finish(part, target)

    def _get(self, remote: RemoteFile, out, start: int, stop: int, have: int,
             progress: http.ByteProgress | None) -> None:
        from huggingface_hub import hf_hub_url
        from huggingface_hub.file_download import http_get
        from huggingface_hub.utils import build_hf_headers
        url = hf_hub_url(remote.repo, remote.path, repo_type=REPO_TYPE, revision=remote.commit,
                         endpoint=self.endpoint)
        with errors(f"{remote.repo}/{remote.path}", self.endpoint):
            http_get(url, out, resume_size=have, headers={**build_hf_headers(), "Range": f"bytes={start}-{stop - 1}"},
                     expected_size=stop - start, displayed_filename=Path(remote.path).name,
                     tqdm_class=_counting(progress))


def _counting(progress: http.ByteProgress | None):
    """A silent progress-bar class for the client that hands each chunk's size to ``progress``."""
    from huggingface_hub.utils import tqdm

    class Counted(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            if n and progress:
                progress(int(n))
            return super().update(n)

    return Counted


def _forget(path: Path) -> None:
    """Remove a file this run fetched into the Hugging Face cache: the snapshot's link and the blob behind it."""
    blob = path.resolve()
    path.unlink(missing_ok=True)
    if blob != path:
        blob.unlink(missing_ok=True)


# --- offline: the Hugging Face cache as the client lays it out (refs/<rev>, snapshots/<sha>/<path> -> blobs/) ------

def offline() -> bool:
    from huggingface_hub import constants
    return constants.is_offline_mode()


def _repo_cache(repo: str) -> Path:
    from huggingface_hub.file_download import repo_folder_name
    return Path(cache_dir()) / repo_folder_name(repo_id=repo, repo_type=REPO_TYPE)


def _cached_revision(repo: str, rev: str) -> str:
    ref = _repo_cache(repo) / "refs" / rev
    sha = ref.read_text().strip() if ref.is_file() else rev
    if not (_repo_cache(repo) / "snapshots" / sha).is_dir():
        raise DownloadError(f"HF_HUB_OFFLINE is set and {repo} at {rev} is not in the Hugging Face cache "
                            f"({cache_dir()}): unset it to download")
    return sha


def _cached_tree(repo: str, sha: str, folder: str) -> list[RemoteFile]:
    snapshot = _repo_cache(repo) / "snapshots" / sha
    files = sorted(p for p in (snapshot / folder).glob("*") if p.is_file())
    return [RemoteFile(repo, sha, p.relative_to(snapshot).as_posix(), p.stat().st_size,
                       p.resolve().name if len(p.resolve().name) == 64 else None) for p in files]


# --- failures as one line ---------------------------------------------------------------------------------------

@contextmanager
def errors(what: str, where: str) -> Iterator[None]:
    """The client's exceptions about ``what`` (on the hub at ``where``) as one DownloadError line."""
    from huggingface_hub import errors as hf
    import httpx2
    try:
        yield
    except hf.OfflineModeIsEnabled:
        raise DownloadError(f"HF_HUB_OFFLINE is set and {what} is not in the Hugging Face cache ({cache_dir()}): "
                            f"unset it to download") from None
    except hf.GatedRepoError as exc:
        raise _refused(what, exc.response.status_code, gated=True) from None
    except (hf.RepositoryNotFoundError, hf.RevisionNotFoundError, hf.RemoteEntryNotFoundError) as exc:
        code = exc.response.status_code
        kind = exc.response.headers.get("X-Error-Code", "")
        raise DownloadError(f"not on the hub: {what} (HTTP {code}{', ' + kind if kind else ''}); a private dataset "
                            f"needs HF_TOKEN or `hf auth login` ({where})") from None
    except hf.HfHubHTTPError as exc:
        raise _http_line(what, exc) from None
    except hf.LocalEntryNotFoundError as exc:  # hf_hub_download could not reach the hub, and the file is not cached
        cause = exc.__cause__
        if isinstance(cause, hf.OfflineModeIsEnabled):
            raise DownloadError(f"HF_HUB_OFFLINE is set and {what} is not in the Hugging Face cache ({cache_dir()}): "
                                f"unset it to download") from None
        if isinstance(cause, hf.HfHubHTTPError):
            raise _http_line(what, cause) from None
        if isinstance(cause, hf.FileMetadataError):
            raise DownloadError(f"{where} answered for {what} without the headers the hub sends (X-Repo-Commit, "
                                f"ETag): is HF_ENDPOINT a Hugging Face hub?") from None
        raise _unreachable(cause if isinstance(cause, httpx2.HTTPError) else None, where) from None
    except (httpx2.TransportError, httpx2.TooManyRedirects) as exc:
        raise _unreachable(exc, where) from None
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DownloadError(f"disk full writing {exc.filename or 'the download'}: free space there and run "
                                f"again") from None
        if "Consistency check failed" in str(exc):
            raise DownloadError(f"the download of {what} ended short: run again") from None
        raise


def _http_line(what: str, exc) -> DownloadError:
    from huggingface_hub.utils import parse_ratelimit_headers
    response = exc.response
    code = response.status_code
    if code == 429:
        limit = parse_ratelimit_headers(response.headers)
        wait = limit.reset_in_seconds if limit else response.headers.get("Retry-After")
        asks = f"; it asks to wait {wait} s" if wait is not None else ""
        return DownloadError(f"the hub is rate-limiting requests (HTTP 429){asks}: wait and run again (it resumes)")
    if code in (401, 403):
        return _refused(what, code, gated=code == 403)
    if code >= 500:
        return DownloadError(f"the hub failed to answer for {what} (HTTP {code}): run again later (it resumes)")
    return DownloadError(f"unexpected answer from the hub for {what}: HTTP {code}")


def _refused(what: str, code: int, gated: bool) -> DownloadError:
    why = " (a gated dataset: accept its terms on the hub page)" if gated else ""
    return DownloadError(f"the hub refused access to {what} (HTTP {code}){why}: set HF_TOKEN or run `hf auth login` "
                         f"with a token that may read it")


def _unreachable(exc, where: str) -> DownloadError:
    host = where.split("://", 1)[-1].split("/", 1)[0]
    try:
        host = exc.request.url.netloc.decode() if exc is not None else host
    except (AttributeError, RuntimeError):
        pass
    name = type(exc).__name__ if exc is not None else "no answer"
    return DownloadError(f"cannot reach {host} (no network, or the host is down): {name}; run again to resume")


def cache_dir() -> str:
    """The Hugging Face cache the client downloads into."""
    from huggingface_hub import constants
    return constants.HF_HUB_CACHE
