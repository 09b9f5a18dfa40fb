"""The demo runs shipped in checkpoints/, known by name. A user's own runs live in the same folder (the README's own
steps train into checkpoints/mine), so no test may take every folder there for a shipped one."""

from __future__ import annotations

from pathlib import Path

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
#: What configs/demo.toml builds (tests/test_protocol.py holds the two lists together).
SHIPPED_RUNS = ("demo-culture", "demo-genre")


def shipped_runs(root: Path = CHECKPOINTS) -> list[Path]:
    """The shipped run folders under ``root``; whatever else is there (a user's runs, results tables) is not one."""
    missing = [name for name in SHIPPED_RUNS if not (root / name / "card.json").is_file()]
    if missing:
        raise FileNotFoundError(f"shipped demo run(s) missing from {root}: {', '.join(missing)} (`make demo` builds "
                                "them)")
    return [root / name for name in SHIPPED_RUNS]
