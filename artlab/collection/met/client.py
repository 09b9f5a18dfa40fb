"""The Met Collection API over HTTP: one rate limit shared by every thread, time-outs, retries with back-off that
honour Retry-After; 404 is final.

The Met publishes a limit of 80 requests a second, but its servers sit behind Imperva's bot protection
(Incapsula), which users have seen answer every request with ``403 Forbidden`` (an HTML page, an ``X-Iinfo`` header,
``visid_incap``/``incap_ses`` cookies) after about 30 quick requests, for 30 seconds or more
(github.com/metmuseum/openaccess issues 18, 20, 58 and 60). Only that page tells: Imperva's header and cookies come
with every answer it lets through. Its page for three different URLs with nothing getting through in between is a
block of every request: every thread pauses for a cool-down (30 s, doubling to 4 min), the rate halves, and the
requests are tried again without spending their retries; after 500 answers in a row without a block, the rate climbs
back by a quarter, up to ``rate``. A block that has not lifted after ``give_up_after`` seconds stops the build
(``MetBlocked``): what was downloaded is kept, and a rerun goes on from there. The page for one URL while the others
go through is that URL's refusal: retried with back-off, then dropped like any other failure.
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
#: Answers in a row without a block after which the rate climbs back by a quarter (up to the one asked for).
RECOVER_AFTER = 500
#: What only Imperva's own page holds (an iframe to its resource, an incident id).
IMPERVA_MARKS = (b"_Incapsula_Resource", b"Incapsula incident ID")
#: Different URLs refused with Imperva's page, nothing getting through in between: a block of every request.
BLOCK_EVIDENCE = 3


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
    """True when ``resp`` is Imperva's bot-protection page (a 403, or a 200 challenge) in place of the Met's answer.
    Its X-Iinfo header and incap cookies prove nothing: Imperva sets them on every answer it lets through."""
    if resp.status_code not in (200, 403) or "text/html" not in resp.headers.get("Content-Type", ""):
        return False
    try:
        head = next(resp.iter_content(8192), b"")  # the first 8 KB, read or still to read
    except (requests.RequestException, OSError, RuntimeError):  # a body that cannot be read says nothing
        return False
    return any(mark in head for mark in IMPERVA_MARKS)


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
            self.interval = max(self.interval, min(self.interval * 2, 1.0 / min_rate))  # never faster than asked
            return True

    def in_pause(self) -> bool:
        """Whether every thread is waiting out a block now."""
        with self._lock:
            return time.monotonic() < self._blocked_until

    def recover(self, rate: float) -> None:
        """A quarter faster again, up to ``rate``."""
        with self._lock:
            self.interval = max(self.interval / 1.25, 1.0 / rate)

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
        if self.retries < 0 or self.timeout <= 0 or self.cooldown <= 0 or self.give_up_after <= 0:
            raise ConfigError("retries must be 0 or more; timeout, cooldown and give_up_after above 0 seconds")
        self.limiter = RateLimiter(self.rate, self.stop)
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self.blocks = 0  # bot-protection blocks met (each paused every thread once)
        self._block_lock = threading.Lock()
        self._next_cooldown = self.cooldown
        self._blocked_since: float | None = None  # when the current block began (monotonic), None when none
        self._refused: dict[str, float] = {}  # URLs refused with Imperva's page since the last answer: when sent
        self._run = 0  # answers in a row since the last block

    def object_url(self, object_id: str) -> str:
        return f"{self.api.rstrip('/')}/public/collection/v1/objects/{object_id}"

    def get(self, url: str, *, headers: dict | None = None, stream: bool = False) -> requests.Response:
        """A successful response, after retries; raises Unavailable (404 and other refusals at once), Stopped, or
        MetBlocked. A bot-protection block costs no retry: the request waits for the block to lift."""
        attempt, refusals, blocks_seen = 0, 0, self.blocks
        while True:
            self.limiter.acquire()
            sent = time.monotonic()
            resp, error, wait = self._attempt(url, headers, stream)
            if resp is not None:
                self._succeeded(sent)
                return resp
            if error is BLOCKED:
                if self._refusal(url, sent):
                    continue  # a block of every request: the limiter holds every thread until the cool-down is over
                if blocks_seen != self.blocks:  # a block came since: the earlier refusals were part of it
                    refusals, blocks_seen = 0, self.blocks
                if refusals >= self.retries:
                    raise Unavailable("refused by the Met's bot protection (HTTP 403)", url, 403)
                self.wait(refusals)
                refusals += 1
                continue
            if attempt >= self.retries:
                raise Unavailable(f"failed after {self.retries + 1} tries ({error})", url)
            self.wait(attempt, wait)
            attempt += 1

    def _succeeded(self, sent: float) -> None:
        """An answer to a request sent at ``sent``: one sent after a block began means the block has lifted, and the
        URLs refused before it was sent were refused for themselves."""
        with self._block_lock:
            if self._blocked_since is not None and sent > self._blocked_since:
                self._blocked_since, self._next_cooldown, self._run = None, self.cooldown, 0
            self._refused = {u: t for u, t in self._refused.items() if t > sent}
            self._run += 1
            if self._run % RECOVER_AFTER == 0:
                self.limiter.recover(self.rate)

    def _refusal(self, url: str, sent: float) -> bool:
        """Imperva's page for ``url``: True when a block of every request is in force (waited out), after this
        refusal made it one or it came during the pause; False while it may be this URL's alone. Raises MetBlocked
        when a block has lasted ``give_up_after``."""
        with self._block_lock:
            if self.limiter.in_pause():
                return True
            self._refused[url] = sent
            if len(self._refused) < BLOCK_EVIDENCE:
                return False
            self._refused = {}
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
                self._next_cooldown, self._run = min(2 * self._next_cooldown, MAX_COOLDOWN), 0
            return True

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
        if (resp.status_code == 403 or (resp.status_code == 200 and not stream)) and bot_block(resp):
            resp.close()  # (a streamed 200 is the CSV from GitHub, which Imperva does not guard)
            return None, BLOCKED, None
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
