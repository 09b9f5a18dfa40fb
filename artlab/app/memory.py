"""The served app's memory per request: a decode budget for uploads, and memory handed back after each one."""

from __future__ import annotations

import ctypes

#: Bytes one decode of an upload may take in the served app (eight visitors at once stay within a few GB; JPEGs
#: larger than this decode at a reduced scale, other formats are refused with a plain line).
APP_DECODE_BUDGET = 256 << 20


def release_memory() -> None:
    """Hand the pages freed after a decode back to the system (glibc keeps them otherwise: a 500 KB PNG of 120 MP
    held 2.3 GB of the server for good)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass
