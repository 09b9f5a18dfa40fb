"""The Met Collection API over HTTP: one rate limit shared by every thread, time-outs, retries with back-off that
honour Retry-After; 404 is final.

The Met publishes a limit of 80 requests a second, but its servers sit behind Imperva's bot protection
(Incapsula), which users have seen answer every request with ``403 Forbidden`` (an HTML page, an ``X-Iinfo`` header,
``visid_incap``/``incap_ses`` cookies) after about 30 quick requests, for 30 seconds or more
(github.com/metmuseum/openaccess issues 58 and 60). Such a 403 is not the object's answer: every thread pauses for a
cool-down (30 s, doubling to 4 min), the rate halves, and the request is tried again without spending the object's
retries. A block that has not lifted after ``give_up_after`` seconds without one success stops the build
(``MetBlocked``): what was downloaded is kept, and a rerun goes on from there.
"""

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
#: After a bot-protection block: the first cool-down, the longest, and how long blocks may last before the build
#: stops (seconds); and the slowest rate the halving goes down to (requests a second).
BLOCK_COOLDOWN, MAX_COOLDOWN, GIVE_UP_AFTER, MIN_RATE = 30.0, 240.0, 900.0, 0.5


# --- HTTP: rate limit and retries ----------------------------------------------------------------------------------

BLOCKED = "blocked by the Met's bot protection (HTTP 403)"


class Unavailable(DownloadError):
    """One object or image that could not be had; ``reason`` is short, for the report's counts."""

    def __init__(self, reason: str, url: str, status: int | None = None):
        super().__init__(f"{reason}: {url}")
        self.reason, self.url, self.status = reason, url, status


class Stopped(Exception):
    """Raised in worker threads once the build is interrupted."""


class MetBlocked(DownloadError):
    """The Met's bot protection has refused every request for too long: the build stops (and resumes on a rerun)."""


def bot_block(resp: requests.Response) -> bool:
    """True for a 403 from Imperva's bot protection (its X-Iinfo header, its cookies, or its HTML page), not from
    the Met's own servers."""
    if resp.status_code != 403:
        return False
    cookies = resp.headers.get("Set-Cookie", "")
    if "X-Iinfo" in resp.headers or "incap_ses" in cookies or "visid_incap" in cookies:
        return True
    if "text/html" not in resp.headers.get("Content-Type", ""):
        return False
    try:
        return b"Incapsula" in next(resp.iter_content(8192), b"")  # the first 8 KB, read or still to read
    except (requests.RequestException, OSError, RuntimeError):  # a body that cannot be read says nothing
        return False


class RateLimiter:
    """A token bucket holding one token, refilled ``rate`` times a second, shared by all threads.

    Holding a single token means no bursts: requests leave evenly spaced, so no one-second window ever holds more
    than ``rate`` of them (the way the Met counts). ``pause`` empties the bucket for a while (after a 429).
    """

    def __init__(self, rate: float, stop: threading.Event):
        self.interval = 1.0 / rate
        self._next = 0.0  # monotonic time at which the next token is available
        self._blocked_until = 0.0  # end of the pause after the last bot-protection block
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

    def back_off(self, seconds: float, min_rate: float) -> bool:
        """A block: every thread waits ``seconds`` and the rate halves (not below ``min_rate``). False when a pause
        for a block already covers now: the threads that were in flight met the same block."""
        with self._lock:
            now = time.monotonic()
            if now < self._blocked_until:
                return False
            self._blocked_until = now + seconds
            self._next = max(self._next, self._blocked_until)
            self.interval = min(self.interval * 2, 1.0 / min_rate)
            return True

    @property
    def rate(self) -> float:
        return 1.0 / self.interval


@dataclasses.dataclass
class MetClient:
    """HTTP GETs with a global rate limit, time-outs and retries; one ``requests.Session`` per thread."""

    api: str = DEFAULT_API
    rate: float = MET_RATE_LIMIT
    timeout: float = 30.0
    retries: int = 4
    backoff: float = 1.0
    cooldown: float = BLOCK_COOLDOWN  # the first pause after a bot-protection block (doubles to MAX_COOLDOWN)
    give_up_after: float = GIVE_UP_AFTER  # blocked this long with no success in between: MetBlocked
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
        self.blocks = 0  # bot-protection blocks met (each paused every thread once)
        self._block_lock = threading.Lock()
        self._next_cooldown, self._blocked_since = self.cooldown, None  # since the last success, monotonic

    def object_url(self, object_id: str) -> str:
        return f"{self.api.rstrip('/')}/public/collection/v1/objects/{object_id}"

    def get(self, url: str, *, headers: dict | None = None, stream: bool = False) -> requests.Response:
        """A successful response, after retries; raises Unavailable (404 and other refusals at once), Stopped, or
        MetBlocked. A bot-protection block costs no retry: the request waits for the block to lift."""
        attempt = 0
        while True:
            self.limiter.acquire()
            resp, error, wait = self._attempt(url, headers, stream)
            if resp is not None:
                self._succeeded()
                return resp
            if error == BLOCKED:
                continue  # the limiter holds every thread until the cool-down is over
            if attempt >= self.retries:
                raise Unavailable(f"failed after {self.retries + 1} tries ({error})", url)
            self.wait(attempt, wait)
            attempt += 1

    def _succeeded(self) -> None:
        if self._blocked_since is not None:
            with self._block_lock:
                self._blocked_since, self._next_cooldown = None, self.cooldown

    def _blocked(self, url: str) -> None:
        """Meet a bot-protection block: pause everyone and halve the rate (once per block), or give up."""
        with self._block_lock:
            now = time.monotonic()
            if self._blocked_since is None:
                self._blocked_since = now
            if now - self._blocked_since >= self.give_up_after:
                raise MetBlocked(
                    f"the Met's servers have refused every request for {now - self._blocked_since:.0f} s (HTTP 403 "
                    f"from their bot protection, Imperva Incapsula, at {url}); the images downloaded so far are "
                    "kept: run the same command again later to go on, or with a lower --rate")
            if self.limiter.back_off(self._next_cooldown, MIN_RATE):
                self.blocks += 1
                self._next_cooldown = min(2 * self._next_cooldown, MAX_COOLDOWN)

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
        if bot_block(resp):
            resp.close()
            self._blocked(url)
            return None, BLOCKED, None
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
