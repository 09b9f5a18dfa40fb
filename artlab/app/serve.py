"""``python -m artlab.app.serve [streamlit run options]``: ``streamlit run app.py`` with Streamlit's legacy
``pages/`` mode off before the first session starts, so a fresh server's first page, a deep link included, comes
inside the frame like every later one (artlab.app.pages_mode). `make app` and the tests' server start the app so."""

from __future__ import annotations

import sys
from pathlib import Path

from artlab.app.pages_mode import legacy_pages_off

APP = Path(__file__).resolve().parents[2] / "app.py"


def main(argv: list[str] | None = None) -> None:
    from streamlit.web import cli
    legacy_pages_off()
    cli.main(["run", str(APP), *(sys.argv[1:] if argv is None else argv)], prog_name="streamlit")


if __name__ == "__main__":
    main()
