"""The served app's memory per request: a decode budget for every image the app decodes, how many such decodes run at
once, and memory handed back after each one."""

from __future__ import annotations

import contextlib
import ctypes
import threading
from typing import Iterator

#: Bytes one decode may take in the served app, conversions included (artlab.images.load_image: larger images are
#: reduced while converting, or refused with a plain line). Uploads, previews, thumbnails and a run's paintings alike.
APP_DECODE_BUDGET = 256 << 20

#: Decodes running at once in one server, whatever the number of sessions: the server's peak is its idle size plus
#: at most this many budgets (eight visitors uploading at once wait their turn for a few seconds instead).
CONCURRENT_DECODES = 3

_SLOTS = threading.BoundedSemaphore(CONCURRENT_DECODES)


@contextlib.contextmanager
def decode_slot() -> Iterator[None]:
    """Hold one of the CONCURRENT_DECODES slots while decoding (never while holding it, wait for a predictor's lock),
    and hand the memory back afterwards."""
    with _SLOTS:
        try:
            yield
        finally:
            release_memory()


def release_memory() -> None:
    """Hand the pages freed after a decode back to the system (glibc keeps them otherwise: a 500 KB PNG of 120 MP
    held 2.3 GB of the server for good)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass
