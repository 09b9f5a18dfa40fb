"""The Met Collection API over HTTP: one rate limit shared by every thread, time-outs, retries with back-off that
honour Retry-After; 404 is final."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import requests

from artlab.errors import ConfigError, DownloadError


DEFAULT_API = "https://collectionapi.metmuseum.org"
#: The Met Collection API's published limit. ``rate`` may be set lower, never higher.
MET_RATE_LIMIT = 80.0
USER_AGENT = "artlab (Met Open Access collection builder)"
#: Longest Retry-After we obey; a server asking for more is treated as a failure after this wait.
MAX_RETRY_AFTER = 120.0


# --- HTTP: rate limit and retries ----------------------------------------------------------------------------------

class Unavailable(DownloadError):
    """One object or image that could not be had; ``reason`` is short, for the report's counts."""

    def __init__(self, reason: str, url: str, status: int | None = None):
        super().__init__(f"{reason}: {url}")
        self.reason, self.url, self.status = reason, url, status


class Stopped(Exception):
    """Raised in worker threads once the build is interrupted."""


class RateLimiter:
    """A token bucket holding one token, refilled ``rate`` times a second, shared by all threads.

    Holding a single token means no bursts: requests leave evenly spaced, so no one-second window ever holds more
    than ``rate`` of them (the way the Met counts). ``pause`` empties the bucket for a while (after a 429).
    """

    def __init__(self, rate: float, stop: threading.Event):
        self.interval = 1.0 / rate
        self._next = 0.0  # monotonic time at which the next token is available
        self._lock = threading.Lock()
        self._stop = stop

    def acquire(self) -> None:
        # The next slot counts from when a request really leaves, not from a schedule made in advance: a thread that
        # wakes late on a busy machine must not let the threads queued behind it leave in a burst.
        while True:
            with self._lock:
                now = time.monotonic()
                if now >= self._next:
                    self._next = now + self.interval
                    break
                delay = self._next - now
            if self._stop.wait(delay):
                raise Stopped
        if self._stop.is_set():
            raise Stopped

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._next = max(self._next, time.monotonic() + seconds)


@dataclasses.dataclass
class MetClient:
    """HTTP GETs with a global rate limit, time-outs and retries; one ``requests.Session`` per thread."""

    api: str = DEFAULT_API
    rate: float = MET_RATE_LIMIT
    timeout: float = 30.0
    retries: int = 4
    backoff: float = 1.0
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        if not 0 < self.rate <= MET_RATE_LIMIT:
            raise ConfigError(f"rate must be above 0 and at most the Met's limit of {MET_RATE_LIMIT:g} requests/second "
                              f"(got {self.rate:g})")
        if self.retries < 0 or self.timeout <= 0:
            raise ConfigError("retries must be 0 or more and timeout above 0 seconds")
        self.limiter = RateLimiter(self.rate, self.stop)
        self._local = threading.local()
        self._sessions: list[requests.Session] = []

    def object_url(self, object_id: str) -> str:
        return f"{self.api.rstrip('/')}/public/collection/v1/objects/{object_id}"

    def get(self, url: str, *, headers: dict | None = None, stream: bool = False) -> requests.Response:
        """A successful response, after retries; raises Unavailable (404 and other refusals at once) or Stopped."""
        for attempt in range(self.retries + 1):
            self.limiter.acquire()
            resp, error, wait = self._attempt(url, headers, stream)
            if resp is not None:
                return resp
            if attempt < self.retries:
                self.wait(attempt, wait)
        raise Unavailable(f"failed after {self.retries + 1} tries ({error})", url)

    def _attempt(self, url: str, headers: dict | None, stream: bool):
        """(response, None, None) on success, or (None, what went wrong, seconds the server asked us to wait)."""
        try:
            resp = self._session().get(url, headers=headers, stream=stream, timeout=self.timeout)
        except requests.Timeout:
            return None, "timeout", None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
            return None, "connection error", None
        except requests.RequestException as exc:  # a malformed URL and the like: retrying cannot help
            raise Unavailable(f"bad request ({type(exc).__name__})", url) from None
        if resp.status_code < 400:
            return resp, None, None
        resp.close()
        if resp.status_code == 404:
            raise Unavailable("no record/image (404)", url, 404)
        if resp.status_code != 429 and resp.status_code < 500:
            raise Unavailable(f"refused (HTTP {resp.status_code})", url, resp.status_code)
        wait = retry_after(resp)
        if resp.status_code == 429:
            self.limiter.pause(wait if wait is not None else self._delay(0))
        return None, f"HTTP {resp.status_code}", wait

    def get_json(self, url: str) -> dict:
        resp = self.get(url)
        try:
            data = resp.json()
        except ValueError:
            raise Unavailable("the API answered something that is not JSON", url) from None
        if not isinstance(data, dict):
            raise Unavailable("the API answered an unexpected JSON value", url)
        return data

    def wait(self, attempt: int, seconds: float | None = None) -> None:
        """Sleep before retry number ``attempt + 1``: what the server asked, else exponential back-off with jitter."""
        if self.stop.wait(self._delay(attempt) if seconds is None else seconds):
            raise Stopped

    def _delay(self, attempt: int) -> float:
        return min(60.0, self.backoff * 2 ** attempt) * random.uniform(0.5, 1.0)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            self._sessions.append(session)
        return session

    def close(self) -> None:
        for session in self._sessions:
            session.close()


def retry_after(resp: requests.Response) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), capped at ``MAX_RETRY_AFTER``; None if absent."""
    value = (resp.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    return min(MAX_RETRY_AFTER, max(0.0, seconds))
