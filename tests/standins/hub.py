"""A local Hugging Face hub: the endpoints huggingface_hub calls, answering as huggingface.co does.

Two servers, two host names, as on the real hub: the hub itself (``http://127.0.0.1:P``) and the CDN its ``resolve``
URLs redirect large (LFS) files to (``http://localhost:Q``). Implemented from huggingface_hub 2.4.0's own client
(hf_api.py ``dataset_info`` / ``list_repo_tree`` / ``get_paths_info``, file_download.py ``get_hf_file_metadata`` /
``hf_hub_download`` / ``http_get``, utils/_pagination.py, utils/_http.py ``hf_raise_for_status`` /
``parse_ratelimit_headers``), the hub's documentation (rate limits) and checked by running that client against it
(tests/test_hub.py):

- ``GET /api/datasets/{repo}`` and ``/api/datasets/{repo}/revision/{rev}``: the repository with ``sha``, ``siblings``.
- ``GET /api/datasets/{repo}/tree/{rev}/{path}``: entries ``{type, oid, size, path, lfs: {oid, size, pointerSize}}``,
  ``PAGE`` a page, the next page in ``Link: <...?cursor=...>; rel="next"``.
- ``POST /api/datasets/{repo}/paths-info/{rev}``: form fields ``paths`` (repeated) and ``expand``.
- ``HEAD|GET /datasets/{repo}/resolve/{rev}/{path}``: an LFS file answers 302 with ``Location`` on the CDN,
  ``X-Repo-Commit``, ``X-Linked-Etag`` (the sha256), ``X-Linked-Size``, ``ETag`` (the pointer's git oid); a small
  file answers 200 itself. The files are plain LFS, as in a repository the hub has not moved to Xet storage: a Xet
  file's answer would add ``X-Xet-Hash``, ``X-Xet-Refresh-Route`` and a ``Link: <...>; rel="xet-auth"`` (and its tree
  entry a ``xetHash``), from which the client downloads through ``hf_xet``; without them it downloads by plain HTTP,
  and a ranged GET of ``resolve`` follows the redirect for both kinds.
- The CDN honours ``Range: bytes=a-b`` / ``a-`` with 206 and ``Content-Range``, 416 with ``bytes */size`` past the end.
- ``GET /api/datasets/{repo}/parquet``: the dataset viewer's listing, which for a large dataset is only a partial
  conversion (``partial-train``); ``/parquet/default/train`` is a 404.
- Errors as the hub sends them: 404/401 with ``X-Error-Code: RepoNotFound``, ``EntryNotFound``, ``RevisionNotFound``,
  401/403 ``GatedRepo``; 429 with the IETF draft headers the hub documents, ``RateLimit: "api";r=0;t=<seconds to the
  window's reset>`` and ``RateLimit-Policy: "fixed window";"api";q=<requests>;w=300``, per bucket (``api`` for
  ``/api/``, ``resolvers`` for ``/resolve/``).

Test knobs: ``gated`` (a token is needed), ``throttle`` ({bucket: n}: the next n requests of that bucket get 429,
``reset`` seconds to wait), ``cut`` ({sha256: n}: the next n transfers stop half-way), ``corrupt`` ({sha256: n}: the
next n whole-file transfers carry a flipped byte). ``served`` counts the bytes the CDN sent per file; ``log`` holds
(host, method, path, Range) of every request.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

PAGE = 3  # entries per tree page (the hub's is 1000): small, so paging is exercised


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\n"
            f"size {len(data)}\n").encode()


class Repo:
    def __init__(self, repo_id: str, files: dict[str, bytes], sha: str, lfs_suffixes=(".parquet",)):
        self.id, self.files, self.sha = repo_id, dict(files), sha
        self.lfs = {p for p in files if p.endswith(lfs_suffixes)}

    def entry(self, path: str) -> dict:
        if path in self.files:
            data = self.files[path]
            if path in self.lfs:
                pointer = lfs_pointer(data)
                return {"type": "file", "oid": git_blob_oid(pointer), "size": len(data), "path": path,
                        "lfs": {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                                "pointerSize": len(pointer)}}
            return {"type": "file", "oid": git_blob_oid(data), "size": len(data), "path": path}
        return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}

    def folders(self) -> set[str]:
        out = set()
        for p in self.files:
            parts = p.split("/")[:-1]
            out |= {"/".join(parts[:i]) for i in range(1, len(parts) + 1)}
        return out

    def children(self, folder: str, recursive: bool) -> list[str]:
        prefix = folder + "/" if folder else ""
        names = sorted(self.folders() | set(self.files))
        if recursive:
            return [n for n in names if n.startswith(prefix)]
        return [n for n in names if n.startswith(prefix) and "/" not in n[len(prefix):]]


class Standin:
    """The hub and its CDN, started on two ports; use as a context manager."""

    def __init__(self, repos: list[Repo], token: str | None = None):
        self.repos = {r.id: r for r in repos}
        self.token, self.gated = token, False
        self.throttle: dict[str, int] = {}
        self.reset = 1
        self.cut: dict[str, int] = {}
        self.corrupt: dict[str, int] = {}
        self.served: dict[str, int] = {}
        self.authorised_on_cdn = 0  # requests that carried an Authorization header to the CDN (the token leaked)
        self.log: list[tuple[str, str, str, str | None]] = []
        self.lock = threading.Lock()
        self.hub = _Server(self, _HubHandler)
        self.cdn = _Server(self, _CdnHandler)
        self.url = f"http://127.0.0.1:{self.hub.server_address[1]}"
        self.cdn_url = f"http://localhost:{self.cdn.server_address[1]}"

    def __enter__(self):
        self.threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
                        for s in (self.hub, self.cdn)]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        for s in (self.hub, self.cdn):
            s.shutdown()
            s.server_close()

    def blob(self, sha256: str) -> bytes | None:
        for repo in self.repos.values():
            for path in repo.lfs:
                if hashlib.sha256(repo.files[path]).hexdigest() == sha256:
                    return repo.files[path]
        return None

    def cdn_bytes(self) -> int:
        return sum(self.served.values())


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, standin: Standin, handler):
        super().__init__(("127.0.0.1", 0), handler)
        self.standin = standin


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # headers and body leave in one write, as a real server sends them (no Nagle stalls)

    @property
    def s(self) -> Standin:
        return self.server.standin

    def log_message(self, *args):
        pass

    def _log(self) -> None:
        with self.s.lock:
            self.s.log.append((self.headers.get("Host", ""), self.command, self.path, self.headers.get("Range")))

    def send(self, status: int, body: bytes = b"", headers: dict | None = None, stop_after: int | None = None):
        self.send_response(status)
        headers = {"Content-Length": str(len(body)), **(headers or {})}
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body[:stop_after])
        self.wfile.flush()
        if stop_after is not None:
            self.close_connection = True

    def error(self, status: int, code: str, message: str):
        body = json.dumps({"error": message}).encode()
        self.send(status, body, {"Content-Type": "application/json", "X-Error-Code": code,
                                 "X-Error-Message": message})


class _HubHandler(_Handler):
    def do_HEAD(self):
        self.do_GET()

    def do_POST(self):
        self._log()
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        path = urlsplit(self.path).path
        if not path.startswith("/api/datasets/") or "/paths-info/" not in path:
            return self.error(404, "", "Not Found")
        repo_id, rev = path[len("/api/datasets/"):].split("/paths-info/")
        repo = self._repo(repo_id, unquote(rev))
        if repo is None:
            return
        known = repo.folders() | set(repo.files)
        entries = [repo.entry(p) for p in form.get("paths", []) if p in known]
        self._json(entries, repo)

    def do_GET(self):
        self._log()
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        bucket = "resolvers" if "/resolve/" in path else "api"
        if self.s.throttle.get(bucket):
            self.s.throttle[bucket] -= 1
            return self.send(429, f"You have exceeded our 5-minute quota for {bucket} requests.".encode(),
                             {"RateLimit": f'"{bucket}";r=0;t={self.s.reset}',
                              "RateLimit-Policy": f'"fixed window";"{bucket}";q=1000;w=300',
                              "Content-Type": "text/plain"})
        if path.startswith("/api/datasets/"):
            return self._api(path[len("/api/datasets/"):], query)
        if path.startswith("/datasets/") and "/resolve/" in path:
            repo_id, rest = path[len("/datasets/"):].split("/resolve/", 1)
            rev, _, file = rest.partition("/")
            return self._resolve(repo_id, rev, file)
        self.error(404, "", "Not Found")

    # --- the repository API ---

    def _authorised(self) -> bool:
        return bool(self.s.token) and self.headers.get("Authorization") == f"Bearer {self.s.token}"

    def _repo(self, repo_id: str, rev: str | None) -> Repo | None:
        repo = self.s.repos.get(repo_id)
        if repo is None:
            self.error(401 if not self._authorised() else 404, "RepoNotFound",
                       "Repository not found")
            return None
        if self.s.gated and not self._authorised():
            self.error(401, "GatedRepo", f"Access to dataset {repo_id} is restricted. You must have access to it "
                                         f"and be authenticated to access it. Please log in.")
            return None
        if rev is not None and rev not in ("main", repo.sha):
            self.error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            return None
        return repo

    def _api(self, rest: str, query: dict):
        parts = rest.split("/")
        repo_id = "/".join(parts[:2])
        tail = parts[2:]
        if tail and tail[0] == "parquet":
            return self._viewer(repo_id, tail[1:])
        if not tail or tail[0] == "revision":
            repo = self._repo(repo_id, "/".join(tail[1:]) if tail else "main")
            if repo:
                self._json(self._info(repo), repo)
            return
        if tail[0] == "tree" and len(tail) >= 2:
            repo = self._repo(repo_id, tail[1])
            if repo:
                self._tree(repo, "/".join(tail[2:]).strip("/"), query)
            return
        self.error(404, "", "Not Found")

    def _info(self, repo: Repo) -> dict:
        return {"_id": hashlib.md5(repo.id.encode()).hexdigest()[:24], "id": repo.id, "author": repo.id.split("/")[0],
                "sha": repo.sha, "lastModified": "2023-01-19T09:02:55.000Z", "private": False, "gated": self.s.gated
                and "auto", "disabled": False, "downloads": 1234, "likes": 99, "tags": ["size_categories:10K<n<100K"],
                "createdAt": "2022-12-21T09:57:06.000Z", "cardData": {}, "description": "",
                "siblings": [{"rfilename": p} for p in sorted(repo.files)],
                "usedStorage": sum(len(d) for d in repo.files.values())}

    def _tree(self, repo: Repo, folder: str, query: dict):
        if folder and folder not in repo.folders():
            return self.error(404, "EntryNotFound", f"{folder} does not exist on \"{repo.sha}\"")
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        names = repo.children(folder, recursive)
        start = int(query.get("cursor", ["0"])[0])
        page = names[start:start + PAGE]
        headers = {}
        if start + PAGE < len(names):
            nxt = dict((k, v[0]) for k, v in query.items())
            nxt["cursor"] = str(start + PAGE)
            link = f"{self.s.url}{urlsplit(self.path).path}?" + "&".join(f"{k}={quote(v)}" for k, v in nxt.items())
            headers["Link"] = f'<{link}>; rel="next"'
        self._json([repo.entry(n) for n in page], repo, headers)

    def _viewer(self, repo_id: str, tail: list[str]):
        """The viewer's parquet conversion of a large dataset: ten partial files, and no full 'train' split."""
        if repo_id not in self.s.repos:
            return self.error(404, "", "Not Found")
        if tail:
            if tail[:2] == ["default", "partial-train"]:
                return self._json([f"{self.s.url}/api/datasets/{repo_id}/parquet/default/partial-train/{i}.parquet"
                                   for i in range(10)], None)
            return self.error(404, "", f"Not found: config/split {'/'.join(tail)}")
        urls = [f"{self.s.url}/api/datasets/{repo_id}/parquet/default/partial-train/{i}.parquet" for i in range(10)]
        self._json({"default": {"partial-train": urls}}, None)

    def _json(self, obj, repo: Repo | None, headers: dict | None = None):
        extra = {"X-Repo-Commit": repo.sha} if repo else {}
        self.send(200, json.dumps(obj).encode(), {"Content-Type": "application/json; charset=utf-8", **extra,
                                                  **(headers or {})})

    # --- resolve ---

    def _resolve(self, repo_id: str, rev: str, file: str):
        repo = self._repo(repo_id, unquote(rev))
        if repo is None:
            return
        if file not in repo.files:
            return self.error(404, "EntryNotFound", f"{file} does not exist on \"{rev}\"")
        data = repo.files[file]
        if file not in repo.lfs:
            return self.send(200, data, {"ETag": f'"{git_blob_oid(data)}"', "X-Repo-Commit": repo.sha,
                                         "Accept-Ranges": "bytes", "Content-Type": "text/plain; charset=utf-8"})
        sha256 = hashlib.sha256(data).hexdigest()
        pointer = lfs_pointer(data)
        location = (f"{self.s.cdn_url}/repos/{hashlib.sha1(repo.id.encode()).hexdigest()[:2]}/{sha256}"
                    f"?response-content-disposition=inline%3B+filename%3D%22{quote(file.split('/')[-1])}%22"
                    f"&Expires=1999999999&Signature=standin&Key-Pair-Id=STANDIN")
        body = f"Found. Redirecting to {location}".encode()
        self.send(302, body, {"Location": location, "X-Repo-Commit": repo.sha, "X-Linked-Etag": f'"{sha256}"',
                              "X-Linked-Size": str(len(data)), "ETag": f'"{git_blob_oid(pointer)}"',
                              "Content-Type": "text/plain; charset=utf-8", "Accept-Ranges": "bytes"})


class _CdnHandler(_Handler):
    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self._log()
        if self.headers.get("Authorization"):
            with self.s.lock:
                self.s.authorised_on_cdn += 1
        sha256 = urlsplit(self.path).path.rsplit("/", 1)[-1]
        data = self.s.blob(sha256)
        if data is None:
            return self.send(403, b"<Error><Code>AccessDenied</Code></Error>", {"Content-Type": "application/xml"})
        size, rng = len(data), self.headers.get("Range")
        headers = {"ETag": f'"{sha256}"', "Accept-Ranges": "bytes", "Content-Type": "binary/octet-stream"}
        start, stop, status = 0, size, 200
        if rng:
            first, _, last = rng.removeprefix("bytes=").partition("-")
            if first == "":
                start = max(0, size - int(last))
            else:
                start, stop = int(first), min(size, int(last) + 1) if last else size
            if start >= size:
                return self.send(416, b"", {**headers, "Content-Range": f"bytes */{size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        body = data[start:stop]
        with self.s.lock:
            if start == 0 and stop == size and self.s.corrupt.get(sha256):
                self.s.corrupt[sha256] -= 1
                body = bytes([body[0] ^ 0xFF]) + body[1:]
            cut = self.s.cut.get(sha256, 0) > 0 and len(body) > 1
            if cut:
                self.s.cut[sha256] -= 1
        sent = len(body) // 2 if cut else len(body)
        if self.command == "GET":
            with self.s.lock:
                self.s.served[sha256] = self.s.served.get(sha256, 0) + sent
        self.send(status, body, headers, stop_after=sent if cut else None)
