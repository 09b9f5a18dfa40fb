"""A real `streamlit run` server for tests, and a session that talks to it the way a browser tab does.

``serve`` starts ``streamlit run app.py`` on a free local port and waits until it answers. ``Session`` is one browser
session without the browser: it opens the app's websocket (``/_stcore/stream``, with the XSRF cookie and token a tab
sends), asks for script runs with the widget values a user would have set, uploads files over HTTP as the file
uploader does (PUT ``/_stcore/upload_file/<session>/<file>``, DELETE when a file is replaced) and reads back the
elements the run drew: texts, alerts, progress bars, pictures (their ``/media`` addresses name their bytes) and widgets
(their ids, needed to set them). Only what the tests need of Streamlit's protocol is here.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Common_pb2 import FileURLs
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[2]  # the checkout: app.py beside artlab/
XSRF_COOKIE = "_streamlit_xsrf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"streamlit did not answer /_stcore/health within {timeout} s:\n{log.read_text()[-3000:]}")


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: Path
    started: float  # time.perf_counter() when the process was started

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def serve(runs: Path, log: Path, timeout: float = 90) -> Server:
    """``streamlit run app.py`` on ``runs`` (ARTLAB_RUNS), as `make app` serves it, once it answers /_stcore/health
    (RuntimeError if it does not within ``timeout`` s); stop() it when done."""
    port = free_port()
    # As `make app` serves it: without the allocator settings that steady the tests' timings (a served app must
    # hand memory back after each upload), so that memory measured here is what a served app uses.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | {"ARTLAB_RUNS": str(runs)}
    with open(log, "w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "artlab.app.serve", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", proc, log, started)
    try:
        wait_healthy(server.url, proc, log, timeout)
    except BaseException:
        server.stop()
        raise
    return server


@dataclass
class Page:
    """What one script run drew, in order."""
    status: str = ""
    texts: list[str] = field(default_factory=list)  # markdown (captions, subheaders...), alerts, progress labels
    alerts: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # /media/... addresses: the file name is a hash of the bytes
    exceptions: list[str] = field(default_factory=list)
    widgets: dict[str, str] = field(default_factory=dict)  # widget id -> element kind

    def widget(self, marker: str) -> str:
        """The id of the widget whose key contains ``marker`` (keyed widget ids end with their key)."""
        found = [w for w in self.widgets if marker in w]
        if len(found) != 1:
            raise LookupError(f"{len(found)} widgets match {marker!r}: {sorted(self.widgets)}")
        return found[0]


class Session:
    """One browser session: a websocket to the server and the files this session has uploaded."""

    def __init__(self, url: str, timeout: float = 300):
        self.url, self.timeout = url, timeout
        self.http = requests.Session()
        # The server closes idle keep-alive connections (uvicorn: after 5 s); a request sent on one just as it closes
        # is reset. Browsers then send it again on a new connection; so does this session. (PUT and DELETE of one
        # file id are idempotent.)
        retry = Retry(total=3, connect=3, read=3, status=0, backoff_factor=0.1, allowed_methods=None)
        self.http.mount("http://", HTTPAdapter(max_retries=retry))
        self.http.get(f"{url}/_stcore/health", timeout=30).raise_for_status()  # sets the XSRF cookie
        self.xsrf = self.http.cookies.get(XSRF_COOKIE)
        headers = {"Origin": url}
        if self.xsrf:
            headers["Cookie"] = f"{XSRF_COOKIE}={self.xsrf}"
        ws_url = url.replace("http://", "ws://") + "/_stcore/stream"
        # A tab passes its XSRF token as the second "subprotocol" (Streamlit's convention).
        self._open = contextlib.ExitStack()
        self.ws = self._open.enter_context(connect(ws_url, subprotocols=["streamlit", self.xsrf or ""],
                                                   additional_headers=headers, max_size=None, open_timeout=30))
        self.session_id = ""
        self.page_hash = ""
        self.uploaded: list[str] = []

    def close(self) -> None:
        self._open.close()
        self.http.close()

    def run(self, widgets: list[WidgetState] = ()) -> Page:
        """Ask for a script run with these widget values (what a tab sends when a widget changes) and read it."""
        msg = BackMsg()
        state = msg.rerun_script
        state.page_script_hash = self.page_hash
        state.widget_states.widgets.extend(widgets)
        self.ws.send(msg.SerializeToString())
        page = Page()
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no end of the script run within {self.timeout} s")
            fwd = ForwardMsg()
            fwd.ParseFromString(self.ws.recv(timeout=left))
            kind = fwd.WhichOneof("type")
            if kind == "new_session":
                self.session_id = fwd.new_session.initialize.session_id or self.session_id
                self.page_hash = fwd.new_session.page_script_hash or self.page_hash
            elif kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                _read_element(fwd.delta.new_element, page)
            elif kind == "script_finished":
                page.status = ForwardMsg.ScriptFinishedStatus.Name(fwd.script_finished)
                if page.status != "FINISHED_EARLY_FOR_RERUN":
                    return page

    def upload(self, name: str, data: bytes, mime: str = "image/jpeg") -> WidgetState:
        """Put a file on the server as the uploader does, dropping this session's earlier ones as a tab does when a
        file is replaced; returns the file uploader's value to send with the next run (its ``id`` left to fill)."""
        for file_id in self.uploaded:
            self._http("delete", file_id)
        self.uploaded = []
        file_id = uuid.uuid4().hex
        self._http("put", file_id, files={"file": (name, data, mime)})
        self.uploaded.append(file_id)
        value = WidgetState()
        info = value.file_uploader_state_value.uploaded_file_info.add()
        info.name, info.size, info.file_id = name, len(data), file_id
        info.file_urls.CopyFrom(FileURLs(file_id=file_id, upload_url=self._address(file_id),
                                         delete_url=self._address(file_id)))
        return value

    def media(self, address: str) -> bytes:
        r = self.http.get(self.url + address, timeout=60)
        r.raise_for_status()
        return r.content

    def _address(self, file_id: str) -> str:
        return f"/_stcore/upload_file/{self.session_id}/{file_id}"

    def _http(self, method: str, file_id: str, **kwargs) -> None:
        if not self.session_id:
            raise RuntimeError("run() once first: the server names the session in its first answer")
        headers = {"X-Xsrftoken": self.xsrf} if self.xsrf else {}
        r = self.http.request(method, self.url + self._address(file_id), headers=headers, timeout=60, **kwargs)
        r.raise_for_status()


def _read_element(element, page: Page) -> None:
    kind = element.WhichOneof("type")
    if kind == "markdown":
        page.texts.append(element.markdown.body)
    elif kind == "heading":
        page.texts.append(element.heading.body)
    elif kind == "alert":
        page.alerts.append(element.alert.body)
        page.texts.append(element.alert.body)
    elif kind == "progress":
        page.texts.append(element.progress.text)
    elif kind == "exception":
        page.exceptions.append(f"{element.exception.type}: {element.exception.message}")
    elif kind == "imgs":
        page.images += [img.url for img in element.imgs.imgs]
    sub = getattr(element, kind) if kind else None
    widget_id = getattr(sub, "id", "") if sub is not None else ""
    if widget_id:
        page.widgets[widget_id] = kind
