"""The image files named on a command line: files as given, folders searched for images."""

from __future__ import annotations

from pathlib import Path

from artlab.errors import ArtlabError
from artlab.images import IMAGE_SUFFIXES


def image_files(paths: list[str]) -> list[Path]:
    out = []
    if any(not str(p).strip() for p in paths):  # Path("") is the working folder: everything under it, .venv too
        raise ArtlabError("an empty image path was given (pass files or folders of images)")
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    if not out:
        raise ArtlabError("no images given (pass files or folders of images)")
    return out
