"""How the command line ends on a failure that is not a bug: the progress bars it left open closed, and what the machine
refused (a full disk, a read-only folder) said in one line naming the file."""

from __future__ import annotations

import sys


def end_bars() -> None:
    """Close the progress bars a failure left open, so that the error starts a line of its own."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", None) or []):
        try:
            bar.close()
        except Exception:  # noqa: BLE001 - a bar that cannot close must not hide the error
            pass


def environment_error(exc: BaseException) -> str | None:
    """One line for what the machine refused (a full disk wherever it happened, an OSError naming its file)."""
    from artlab.io import disk_full, is_disk_full
    filename = getattr(exc, "filename", None)
    if is_disk_full(exc):
        return str(disk_full(filename)) if filename else ("the disk is full: free some space and run the command "
                                                          "again (what was already written is kept)")
    if isinstance(exc, OSError) and filename and exc.strerror:
        return f"{filename}: {exc.strerror}"
    return None
