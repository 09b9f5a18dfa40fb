"""One painting on one sheet (PNG and PDF, A4 landscape): the painting, both models' answers, both heat maps, the
neighbours behind the baseline's vote, the run it came from and the painting's provenance, for a catalogue entry or a
slide. Drawn from plain values only (``SheetPrediction``, pictures as arrays, dicts), so any caller can fill it:
``artlab explain RUN IMAGE --sheet OUT``, the app's Classify page (both through ``artlab.explain.sheet``).

A prediction set (the classes a calibrated, conformal predictor cannot rule out at a stated coverage) is drawn as one
more line when the prediction carries one (``prediction_set``, ``set_coverage``).
"""

from __future__ import annotations

import dataclasses
import textwrap
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

SOFTWARE = "artlab sheet"  # written into the PNG's and the PDF's metadata: how artlab knows its own sheet
PROVENANCE_FIELDS = (("title", "Title"), ("artist", "Artist"), ("date", "Date"), ("source", "Source"),
                     ("url", "Source"), ("license", "Licence"))


@dataclasses.dataclass
class SheetPrediction:
    """What the sheet says about the models' answers (plain values: a predictor's Prediction fills it)."""

    label: str  # what is classified: "genre", "culture"
    top: list[tuple[str, float]]  # the fine-tuned model's top classes with their probabilities
    knn: str  # the kNN baseline's answer
    knn_share: float  # its share of the neighbours' vote
    k: int  # neighbours voting
    tie: bool = False  # the top of the vote was shared: the closer neighbours decided
    prediction_set: list[str] | None = None  # optional: a conformal prediction set ...
    set_coverage: float | None = None  # ... and the coverage it was made for (0.9 = 90 %)
    unfamiliar: bool | None = None  # True: unlike the paintings the models learned from (None: not recorded)

    @classmethod
    def from_prediction(cls, pred, label: str, k_top: int = 3) -> "SheetPrediction":
        """From an ``artlab.explain.predictor.Prediction`` (or anything with its attributes); a ``prediction_set``
        and ``set_coverage`` on it are carried over when present."""
        shares = np.sort(np.asarray(pred.knn_shares, dtype=float))[::-1]
        return cls(label=label, top=[(str(c), float(p)) for c, p in pred.top(k_top)], knn=str(pred.knn),
                   knn_share=float(shares[0]), k=len(pred.neighbours),
                   tie=bool(len(shares) > 1 and abs(shares[0] - shares[1]) < 1e-9),
                   prediction_set=getattr(pred, "prediction_set", None),
                   set_coverage=getattr(pred, "set_coverage", None), unfamiliar=getattr(pred, "unfamiliar", None))

    @classmethod
    def from_dict(cls, d: Mapping) -> "SheetPrediction":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})

    def lines(self) -> list[str]:
        out = [f"Fine-tuned model: {self.top[0][0]}" if self.top else "Fine-tuned model: no answer"]
        out += [f"   {i}. {c}  {p:.0%}" for i, (c, p) in enumerate(self.top, 1)]
        votes = round(self.knn_share * self.k)
        out += ["", f"kNN baseline: {self.knn}", f"   {votes} of its {self.k} nearest training paintings",
                f"   ({self.knn_share:.0%} of the vote" + ("; a tie, broken by" if self.tie else ")")]
        if self.tie:
            out.append("   the closer neighbours)")
        if self.prediction_set is not None:
            coverage = f" at {self.set_coverage:.0%} coverage" if self.set_coverage is not None else ""
            out += [""] + textwrap.wrap(f"Prediction set{coverage}: " + (", ".join(self.prediction_set) or "empty"),
                                        42, subsequent_indent="   ")
        if self.unfamiliar:
            out += [""] + textwrap.wrap("Unfamiliar: this picture is less like the paintings the models learned from "
                                        "than nearly all of their test paintings; read both answers with caution.", 42)
        return out


def provenance_lines(provenance: Mapping[str, str], width: int = 60) -> list[str]:
    lines, seen = [], set()
    for key, words in PROVENANCE_FIELDS:
        value = str(provenance.get(key) or "").strip()
        if value and words not in seen:
            seen.add(words)
            lines += textwrap.wrap(f"{words}: {value}", width) or [""]
    return lines or ["Provenance: not known (an uploaded file)"]


def sheet_figure(painting: np.ndarray, prediction: SheetPrediction | Mapping, finetuned: np.ndarray,
                 knn: np.ndarray, neighbours: Sequence[tuple[str, np.ndarray]], run_name: str,
                 provenance: Mapping[str, str], heat_map_words: tuple[str, str] = ("Grad-CAM", "similarity CAM"),
                 ) -> Figure:
    """The sheet: the painting and the answers on top, both heat maps beside, the neighbours along the bottom."""
    pred = prediction if isinstance(prediction, SheetPrediction) else SheetPrediction.from_dict(prediction)
    fig = Figure(figsize=(11.69, 8.27))  # A4 landscape
    fig.set_facecolor("white")
    title = str(provenance.get("title") or provenance.get("file") or "A painting")
    fig.text(0.03, 0.965, textwrap.shorten(title, 110), fontsize=15, family="serif", va="top")
    grid = fig.add_gridspec(3, 4, left=0.03, right=0.97, top=0.9, bottom=0.04, height_ratios=[1, 1, 0.72],
                            wspace=0.08, hspace=0.42)
    for cell, picture, caption in ((grid[0:2, 0], painting, "The painting"),
                                   (grid[0:2, 1], finetuned, f"Fine-tuned model: {heat_map_words[0]} of "
                                                             f"'{pred.top[0][0] if pred.top else ''}'"),
                                   (grid[0:2, 2], knn, f"kNN baseline: {heat_map_words[1]} of '{pred.knn}'")):
        ax = fig.add_subplot(cell)
        ax.imshow(np.asarray(picture))
        ax.set_axis_off()
        ax.set_title("\n".join(textwrap.wrap(caption, 34)), fontsize=9, family="serif")
    text = fig.add_subplot(grid[0:2, 3])
    text.set_axis_off()
    body = [f"What is its {pred.label}?", ""] + pred.lines() + ["", "Provenance"] + provenance_lines(provenance, 40)
    body += ["", "Model (run)", *textwrap.wrap(run_name, 44)]
    text.text(0, 1, "\n".join(body), va="top", ha="left", fontsize=8.5, family="serif", linespacing=1.35,
              transform=text.transAxes)
    shown = list(neighbours)[:8]
    if shown:
        strip = grid[2, :].subgridspec(1, max(len(shown), 6), wspace=0.1)
        for i, (caption, picture) in enumerate(shown):
            ax = fig.add_subplot(strip[0, i])
            ax.imshow(np.asarray(picture))
            ax.set_axis_off()
            ax.set_title("\n".join(textwrap.wrap(caption, 22)[:3]), fontsize=6.5, family="serif")
        top = strip[0, 0].get_position(fig).y1
        fig.text(0.03, top + 0.055, f"The {len(shown)} training paintings the baseline found most similar (their "
                 "votes make its answer)", fontsize=8, family="serif", style="italic")
    fig.text(0.97, 0.012, f"artlab · run {run_name}", fontsize=7, ha="right", color="#666666", family="serif")
    return fig


def sheet_bytes(fig: Figure, fmt: str) -> bytes:
    """PNG or PDF bytes of a sheet, marked as artlab's in their metadata (``SOFTWARE``)."""
    import io
    if fmt not in ("png", "pdf"):
        raise ValueError(f"a sheet is PNG or PDF, not {fmt!r}")
    from artlab.report.figures import plain_text
    buf = io.BytesIO()
    plain_text(fig)
    meta = {"Software": SOFTWARE} if fmt == "png" else {"Creator": SOFTWARE, "CreationDate": None}
    fig.savefig(buf, format=fmt, dpi=150, metadata=meta)
    return buf.getvalue()
