"""Progress reporting through a small interface: tqdm in the CLI, st.progress in the app, nothing in tests."""

from __future__ import annotations


class Progress:
    """Stages with a known total, plus one-line messages (an epoch's summary). The base class ignores everything."""

    def stage(self, name: str, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def done(self) -> None:
        pass


class TqdmProgress(Progress):
    def __init__(self):
        self._bar = None

    def stage(self, name, total):
        from tqdm import tqdm
        self.done()
        self._bar = tqdm(total=total, desc=name, unit="img", leave=False, dynamic_ncols=True)

    def advance(self, n=1):
        if self._bar is not None:
            self._bar.update(n)

    def message(self, text):
        from tqdm import tqdm
        tqdm.write(text)

    def done(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
