"""Which folders the app opens: runs only under its configured roots (checkpoints/, ``$ARTLAB_RUNS``, the roots file
named by ``$ARTLAB_ROOTS_FILE``), unless started with ``--allow-any-folder`` (unsafe on a shared server); and how
far it looks under one."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from artlab.errors import ArtlabError
from artlab.safety import inside

log = logging.getLogger("artlab.app")

RUNS_ENV = "ARTLAB_RUNS"
APP_ROOT = Path(__file__).resolve().parents[2]
ROOTS_ENV, ANY_FOLDER_ENV, ANY_FOLDER_FLAG = "ARTLAB_ROOTS_FILE", "ARTLAB_ALLOW_ANY_FOLDER", "--allow-any-folder"
#: Bounds on what the app lists under a root: folders looked at, and results.csv files found (at most this deep).
MAX_LISTED, MAX_RESULTS, RESULTS_DEPTH = 500, 50, 3


def allowed_roots() -> list[Path]:
    """The folders the app may open runs from: checkpoints/, every folder of ``$ARTLAB_RUNS`` (os.pathsep-separated)
    and the ``roots = [...]`` of the TOML file named by ``$ARTLAB_ROOTS_FILE``."""
    roots = [APP_ROOT / "checkpoints"]
    roots += [Path(p).expanduser() for p in os.environ.get(RUNS_ENV, "").split(os.pathsep) if p]
    config = os.environ.get(ROOTS_ENV)
    if config:
        import tomllib
        try:
            listed = tomllib.loads(Path(config).read_text()).get("roots", [])
        except (OSError, ValueError) as exc:
            log.warning("unreadable %s %s: %s", ROOTS_ENV, config, exc)
            listed = []
        base = Path(config).parent
        roots += [(base / Path(p).expanduser()) for p in listed if isinstance(p, str)]
    return [r.resolve() for r in roots]


def any_folder_allowed() -> bool:
    """Started with ``python -m artlab.app.serve ... -- --allow-any-folder`` (or ARTLAB_ALLOW_ANY_FOLDER=1): unsafe
    on a shared server, since every visitor may then open any folder the server can read."""
    return ANY_FOLDER_FLAG in sys.argv[1:] or os.environ.get(ANY_FOLDER_ENV) == "1"


def check_root(folder: str) -> Path:
    """The typed folder, if the app may open it (inside one of ``allowed_roots``), else ArtlabError."""
    path = Path(folder).expanduser()
    if within_roots(path):
        return path
    log.info("refused %s: not under %s", path, ", ".join(map(str, allowed_roots())))  # the full paths: server only
    raise ArtlabError(f"This app only opens trained models under {', '.join(shown_root(r) for r in allowed_roots())}."
                      f" Add the folder to {RUNS_ENV} (or to the roots file in {ROOTS_ENV}) when starting it.")


def within_roots(path: str | Path) -> bool:
    """Whether the app may open (or, for a collection, write curation decisions into) ``path``."""
    return any_folder_allowed() or any(inside(root, path) for root in allowed_roots())


def shown_root(root: Path) -> str:
    """A root as a visitor may see it: relative to the app's folder (checkpoints/), else only its own name (the
    server's absolute paths are not shown to every visitor)."""
    try:
        return f"{root.relative_to(APP_ROOT)}/"
    except ValueError:
        return f"…/{root.name}/"
