"""Nothing lost, nothing leaked: where artlab may write, and which paths a file may name.

Output folders. Every command that writes a folder calls ``check_output`` first. A folder is artlab's own when it
holds artlab's mark for its kind: a run's card (with ``artlab_version``), a collection's manifest + report (each
recognised by the module that owns those file names, artlab.runfolder and artlab.collection.contract, through
``recognise``), or the ``.artlab.json`` marker written before anything else (so an interrupted build is still
recognised and resumed). Anything else that is not empty is the user's and is never replaced, ``--overwrite`` or not.

Contained paths. A path read from a run or collection file (paintings.csv, a manifest, ``collection_relative``) is
resolved with ``contained``: relative, no ``..`` that leaves the folder, no symlink pointing out of it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Callable

from .errors import ArtlabError

MARKER = ".artlab.json"
KINDS = ("run", "collection", "explain", "audit", "figures", "experiment")

#: Size caps on the files artlab reads, in bytes (a hostile or broken file is refused before it is read).
CAPS = {"json": 32 << 20, "csv": 512 << 20, "npz": 4 << 30, "weights": 8 << 30, "image": 1 << 30}


#: kind -> a test of whether a folder (without a marker) is artlab's output of that kind. Registered by the modules
#: that own the file names (artlab.runfiles: 'run'; artlab.collection.contract: 'collection'), so that this core
#: module spells none of them; the CLI imports both before any command runs.
RECOGNISERS: dict[str, Callable[[Path], bool]] = {}


def recognise(kind: str, test: Callable[[Path], bool]) -> None:
    """Register how a folder of ``kind`` is recognised as artlab's own (see RECOGNISERS)."""
    RECOGNISERS[kind] = test


class OutputError(ArtlabError):
    """A target folder that artlab must not write into (someone else's files, or the data being read)."""


class PathEscape(ArtlabError):
    """A path in a run or collection file that points outside its folder."""


# --- what is in a folder --------------------------------------------------------------------------------------------

def artlab_kind(folder: str | Path) -> str | None:
    """'run', 'collection', 'explain', 'audit', 'figures' or 'experiment' if ``folder`` is artlab's own output of that
    kind, else None."""
    folder = Path(folder)
    marker = _read_marker(folder)
    if marker in KINDS:
        return marker
    for kind, test in RECOGNISERS.items():
        if test(folder):
            return kind
    return None


def versioned_json(path: Path) -> bool:
    """True if ``path`` is a plain file holding a JSON object with ``artlab_version`` (artlab wrote it)."""
    if not path.is_file() or path.is_symlink():
        return False
    try:
        data = json.loads(read_capped(path, CAPS["json"]))
    except (ValueError, OSError, RecursionError, ArtlabError):
        return False
    return isinstance(data, dict) and "artlab_version" in data


def _read_marker(folder: Path) -> str | None:
    p = folder / MARKER
    if not p.is_file() or p.is_symlink():
        return None
    try:
        return json.loads(read_capped(p, 1 << 16)).get("kind")
    except (ValueError, OSError, AttributeError, RecursionError, ArtlabError):
        return None


def mark_output(folder: str | Path, kind: str, **extra) -> None:
    """Create ``folder`` and write artlab's marker into it (before any other file)."""
    from . import __version__
    from .io import atomic_write_json
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    current = _read_marker(folder)
    if current is None or extra:
        atomic_write_json(folder / MARKER, {"kind": kind, "artlab_version": __version__, **extra})


def _is_empty_dir(folder: Path) -> bool:
    return folder.is_dir() and next(folder.iterdir(), None) is None


def _related(a: Path, b: Path) -> str | None:
    """'the same folder as', 'inside', 'containing' when a and b overlap, else None."""
    a, b = a.resolve(), b.resolve()
    if a == b:
        return "the same folder as"
    if b in a.parents:
        return "inside"
    if a in b.parents:
        return "a folder containing"
    return None


def check_output(out: str | Path, kind: str, *, overwrite: bool = False, resume: bool = False,
                 sources: dict[str, str | Path | None] | None = None, option: str = "--out") -> Path:
    """Refuse (OutputError, one line) an ``out`` that would lose someone's files; return it as a Path.

    ``sources`` ({'the collection': path, ...}) are what the command reads: ``out`` may be none of them, inside one
    or contain one. An existing ``out`` must be empty, or artlab's own output of ``kind``: replaced only with
    ``overwrite`` (or continued with ``resume``, which builders use to pick up an interrupted build).
    """
    out = Path(out).expanduser()
    for what, src in (sources or {}).items():
        if src is None or not Path(src).expanduser().exists():
            continue
        relation = _related(out, Path(src).expanduser())
        if relation:
            raise OutputError(f"{option} {out} is {relation} {what} ({src}): choose a new folder for the output")
    if not out.exists() and not out.is_symlink():
        return out
    if out.is_symlink() or not out.is_dir():
        raise OutputError(f"{option} {out} exists and is not a folder: choose a new folder for the output")
    if _is_empty_dir(out):
        return out
    found = artlab_kind(out)
    if found is None:
        raise OutputError(f"{option} {out} already holds files artlab did not write: choose a new or empty folder "
                          "(nothing was changed)")
    if found != kind:
        raise OutputError(f"{option} {out} holds an artlab {found}, not a {kind}: choose another folder")
    if not (overwrite or resume):
        raise OutputError(f"{option} {out} already holds an artlab {kind}: pass --overwrite to replace it, or "
                          "choose a new folder")
    return out


def check_output_file(path: str | Path, header: tuple[str, ...], *, overwrite: bool = False,
                      option: str = "--csv") -> Path:
    """An output file: new, or (with ``overwrite``) an earlier artlab CSV whose first line is ``header``."""
    path = Path(path).expanduser()
    if not path.exists() and not path.is_symlink():
        return path
    if path.is_symlink() or not path.is_file():
        raise OutputError(f"{option} {path} exists and is not a plain file: choose a new file name")
    with open(path, "rb") as f:
        first = f.readline(1 << 16).decode("utf-8", "replace").strip()
    ours = first.split(",")[:len(header)] == list(header)
    if not ours:
        raise OutputError(f"{option} {path} already exists and artlab did not write it: choose a new file name "
                          "(nothing was changed)")
    if not overwrite:
        raise OutputError(f"{option} {path} already exists: pass --overwrite to replace it")
    return path


# --- paths named by files ----------------------------------------------------------------------------------------

def contained(base: str | Path, name: str | os.PathLike, what: str = "a path") -> Path:
    """``base / name`` resolved, refused (PathEscape) when ``name`` is absolute, climbs out with ``..``, or reaches
    through a symlink to somewhere outside ``base``."""
    base = Path(base)
    text = os.fspath(name)
    if not text or "\x00" in text:
        raise PathEscape(f"{what} is empty or holds a NUL character")
    if PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute() or PureWindowsPath(text).drive:
        raise PathEscape(f"{what} {text!r} is absolute: only paths inside {base} are read")
    parts = PurePosixPath(text.replace("\\", "/")).parts
    if ".." in parts:
        raise PathEscape(f"{what} {text!r} climbs out of its folder with '..'")
    root = base.resolve()
    target = (root / Path(*parts)).resolve()
    if target != root and root not in target.parents:
        raise PathEscape(f"{what} {text!r} leads outside {base} (through a symbolic link)")
    return target


def inside(base: str | Path, path: str | Path) -> bool:
    """True if ``path`` (resolved, links followed) lies within ``base``."""
    root, target = Path(base).resolve(), Path(path).resolve()
    return target == root or root in target.parents


def bounded_files(base: str | Path, name: str, *, depth: int, limit: int, max_seen: int) -> list[Path]:
    """Files called ``name`` under ``base``, at most ``depth`` folders down and ``limit`` of them, looking at no
    more than ``max_seen`` entries; symlinks and hidden folders are not followed."""
    found, seen, level = [], 0, [Path(base)]
    for _ in range(depth + 1):
        below = []
        for folder in level:
            try:
                entries = sorted(folder.iterdir())
            except OSError:
                continue
            for p in entries:
                seen += 1
                if seen > max_seen or len(found) >= limit:
                    return found
                if p.is_symlink() or p.name.startswith("."):
                    continue
                if p.name == name and p.is_file():
                    found.append(p)
                elif p.is_dir():
                    below.append(p)
        level = below
    return found


def read_capped(path: str | Path, cap: int) -> bytes:
    """The bytes of ``path``, refused (ArtlabError naming it) when larger than ``cap``."""
    check_size(path, cap)
    with open(path, "rb") as f:
        data = f.read(cap + 1)
    if len(data) > cap:
        raise ArtlabError(f"{path} is too large to read ({_mb(len(data))}+; limit {_mb(cap)})")
    return data


def check_size(path: str | Path, cap: int) -> None:
    size = Path(path).stat().st_size
    if size > cap:
        raise ArtlabError(f"{path} is too large to read ({_mb(size)}; limit {_mb(cap)})")


def _mb(n: int) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n} bytes"
