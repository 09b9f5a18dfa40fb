"""Atomic file writes: a reader never sees a half-written file, an interrupted writer leaves no debris that looks done.

Each writer goes to a temporary file in the same folder, flushes and fsyncs it, then ``os.replace``s it onto the
target (atomic on POSIX within one filesystem).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from artlab.errors import ArtlabError

#: What a full disk (or a full quota) says.
FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(ArtlabError):
    """No room left where artlab writes: one line naming the file and its folder."""


def disk_full(target: str | os.PathLike) -> DiskFull:
    folder = Path(target).parent
    try:
        free = f"; {os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize / 1e6:.1f} MB free there"
    except OSError:
        free = ""
    return DiskFull(f"the disk is full: could not write {target} (in {folder}{free}); free some space and run the "
                    "command again (what was already written is kept)")


def is_disk_full(exc: BaseException) -> bool:
    """An OSError of a full disk, or PyTorch's writer failing ("file write failed" at inline_container.cc), which
    hides the errno."""
    if isinstance(exc, OSError):
        return exc.errno in FULL
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("file write failed" in text or "inline_container" in text)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``, on error it is removed."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        if exc.errno in FULL:
            raise disk_full(target) from None
        raise
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o644)  # mkstemp makes 0600; these are ordinary shared files
        os.replace(tmp_path, target)
    except (OSError, RuntimeError) as exc:
        if is_disk_full(exc):
            raise disk_full(target) from None
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_json(target: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(target, json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def atomic_save(target: str | os.PathLike, save: Callable[[Path], None]) -> None:
    """Run ``save(tmp_path)`` (torch.save, np.savez, df.to_csv...) and move the result onto ``target``."""
    with atomic_path(target) as tmp:
        save(tmp)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def atomic_savez(target: str | os.PathLike, **arrays: Any) -> None:
    """``np.savez`` to ``target`` atomically (through a file object, so numpy adds no '.npz' to the temp name)."""
    import numpy as np

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_save(target, save)


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's bytes, read a megabyte at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
