"""A Progress for tests: what a builder reported, and a Ctrl-C at a chosen count."""

from __future__ import annotations

from artlab.progress import Progress


class Counted(Progress):
    """Keeps (done, total) after every step of the current stage in ``calls``; raises KeyboardInterrupt once a stage
    reaches ``stop_at`` (a user pressing Ctrl-C mid-build)."""

    def __init__(self, stop_at: int | None = None):
        self.calls: list[tuple[int, int]] = []
        self.stages: list[str] = []
        self.stop_at, self._done, self._total = stop_at, 0, 0

    def stage(self, name: str, total: int) -> None:
        self.stages.append(name)
        self._done, self._total = 0, total

    def advance(self, n: int = 1) -> None:
        self._done += n
        self.calls.append((self._done, self._total))
        if self.stop_at is not None and self._done >= self.stop_at:
            raise KeyboardInterrupt
