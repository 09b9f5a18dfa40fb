"""``python -m artlab.app.serve [--allow-any-folder] [streamlit run options]``: ``streamlit run app.py`` with
Streamlit's legacy ``pages/`` mode off before the first session starts, so a fresh server's first page, a deep link
included, comes inside the frame like every later one (artlab.app.pages_mode). `make app` and the tests' server start
the app so.

It listens on 127.0.0.1 unless ``--server.address`` says otherwise (`make app ADDRESS=0.0.0.0` for a shared
server). ``--allow-any-folder`` (the same as ARTLAB_ALLOW_ANY_FOLDER=1) lets the sidebar open any folder the server
can read, not only the configured roots (artlab.app.roots): unsafe on a shared server. The allocator settings that
steady the benchmarks' timings are not for the server (it hands memory back after each upload): `make app` sets none.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from artlab.app.pages_mode import legacy_pages_off
from artlab.app.roots import ANY_FOLDER_ENV, ANY_FOLDER_FLAG

APP = Path(__file__).resolve().parents[2] / "app.py"
LOCAL = "127.0.0.1"


def streamlit_args(argv: list[str]) -> list[str]:
    """The ``streamlit run`` options for ``argv``: ``--allow-any-folder`` taken out (into the environment, which the
    app reads), and ``--server.address 127.0.0.1`` added when no address is given."""
    if ANY_FOLDER_FLAG in argv:
        os.environ[ANY_FOLDER_ENV] = "1"
        argv = [a for a in argv if a != ANY_FOLDER_FLAG]
    if not any(a == "--server.address" or a.startswith("--server.address=") for a in argv):
        argv = ["--server.address", LOCAL, *argv]
    return argv


def main(argv: list[str] | None = None) -> None:
    from streamlit.web import cli
    legacy_pages_off()
    args = streamlit_args(sys.argv[1:] if argv is None else argv)
    cli.main(["run", str(APP), *args], prog_name="streamlit")


if __name__ == "__main__":
    main()
