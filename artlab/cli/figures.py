"""``artlab figures RUN|EXPERIMENT_DIR --out DIR``: every figure of the run's study that the run supports, regenerated
(PNG for slides, SVG for print), the papers' tables with the published number beside the run's (CSV, Markdown, LaTeX),
and ``captions.md``: what the paper's figure showed, and what this one shows.

GenRe (a genre run): Fig. 1 training curves, Figs. 2-3 both models' confusion matrices, Figs. 4-11 Grad-CAM of the
fine-tuned model beside the baseline's for a correct and a wrong test painting of each class. The culture study (a
culture run): Fig. 1 sample paintings per culture, Figs. 4-5 channel-sum feature maps, Fig. 6 ForceAtlas2 of the class
centroids, Fig. 7 the chord diagram. A figure the run cannot support is named and skipped in one line. An experiment's
output folder (``results.csv`` beside one folder a row) gives its published-beside-run table, and each run's figures
in a sub-folder of its name. Paintings are chosen by a stated rule, seeded with the run's seed (``PICK_RULE``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from artlab.errors import ArtlabError, ConfigError
from artlab.io import atomic_save, atomic_write_text
from artlab.report import figures, paper
from artlab.report.csvsafe import md, to_csv_for_people
from artlab.report.protocol import GENRE, study_of
from artlab.safety import CAPS, MARKER, check_output, check_size, contained, mark_output

KIND = "figures"
RESULTS, CAPTIONS = "results.csv", "captions.md"
PICK_RULE = ("chosen at random among the test paintings of that class the fine-tuned model got right (correct) and "
             "among those it got wrong (wrong), with the run's seed, in the order of their ids")
SAMPLES_PER_CLASS = 4
MAX_FEATURE_MAPS = 8
DEPARTURES = "departures"


class Writer:
    """Where one run's (or the experiment's) files go, and what was written and skipped, for captions.md."""

    def __init__(self, root: Path, sub: str = "", progress=None):
        from artlab.progress import Progress
        self.root, self.sub, self.progress = root, sub, progress or Progress()
        self.folder = root / sub if sub else root
        self.folder.mkdir(parents=True, exist_ok=True)
        self.files: list[str] = []
        self.entries: list[tuple[str, str, str]] = []  # (stem, what the paper showed, what this shows)
        self.skipped: list[str] = []

    def _name(self, file: str) -> str:
        return f"{self.sub}/{file}" if self.sub else file

    def figure(self, fig, stem: str, key: str, here: str) -> None:
        for path in figures.save(fig, self.folder, stem):
            self.files.append(self._name(path.name))
        self.entries.append((stem, paper.PAPER_FIGURES.get(key, ""), here))

    def table(self, df: pd.DataFrame, stem: str, source: str, here: str) -> None:
        atomic_save(self.folder / f"{stem}.csv", lambda tmp: to_csv_for_people(df, tmp))
        atomic_write_text(self.folder / f"{stem}.md", paper.markdown_table(df))
        atomic_write_text(self.folder / f"{stem}.tex", paper.latex_table(df, f"{source}: {here}"))
        self.files += [self._name(f"{stem}.{ext}") for ext in ("csv", "md", "tex")]
        self.entries.append((stem, source, here))

    def skip(self, line: str) -> None:
        self.skipped.append(line)


def _slug(text: str, i: int) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or f"class{i}"


# --- one run ----------------------------------------------------------------------------------------------------------

class _Paintings:
    """The run's paintings, their files in its collection, and a Predictor built once, when first needed."""

    def __init__(self, run):
        self.run, self._predictor = run, None
        meta = run.paintings()
        self.meta = meta.set_index("id") if len(meta) and "id" in meta.columns else pd.DataFrame()

    @property
    def predictor(self):
        if self._predictor is None:
            from artlab.explain.predictor import Predictor
            self._predictor = Predictor(self.run)
        return self._predictor

    def field(self, pid: str, column: str) -> str:
        if pid not in self.meta.index or column not in self.meta.columns:
            return ""
        value = self.meta.at[pid, column]
        return "" if pd.isna(value) else str(value)

    def file(self, pid: str) -> Path | None:
        return self.run.painting_file(self.field(pid, "path"))

    def image(self, pid: str):
        path = self.file(pid)
        return None if path is None else self.predictor.load(path, name=str(path))

    def describe(self, pid: str) -> str:
        title, artist = self.field(pid, "title") or pid, self.field(pid, "artist")
        return f"*{md(title)}*" + (f" by {md(artist)}" if artist else "") + f" (id {md(pid)})"


def _fit(image, side: int = 512):
    out = image.copy()
    out.thumbnail((side, side))
    return np.asarray(out.convert("RGB"))


def figures_of_run(run, w: Writer) -> None:
    card = run.card
    cfg, task = card.get("config") or {}, card.get("task") or {}
    study = study_of(cfg.get("label", task.get("label", "")), cfg.get("head", ""))
    seed = int(cfg.get("seed", 0) or 0)
    _tables(card, study, w)
    paintings = _Paintings(run)
    if study is GENRE:
        _genre(run, paintings, w, seed)
        w.skip("culture study Figs. 1, 4-5, 6, 7: this is a genre run (they need a culture run)")
    else:
        _culture(run, paintings, w, seed)
        w.skip("GenRe Figs. 1-11: this is a culture run (they need a genre run)")


def _tables(card: dict, study, w: Writer) -> None:
    beside, notes = paper.beside_run(card)
    if study is GENRE:
        w.table(beside, "genre_table1", paper.GENRE_SOURCE, "the published figures beside this run's test metrics "
                "(precision, recall and F1 as weighted averages)")
        w.skip("culture study Tables 1-2: this is a genre run")
    else:
        w.table(beside, "culture_table2", paper.CULTURE_T2_SOURCE, "the published validation, top-1 and top-3 "
                "accuracy beside this run's fine-tuned model")
        w.table(paper.counts_beside_run(card), "culture_table1", paper.CULTURE_T1_SOURCE,
                "the Met paintings per culture before and after cleaning, beside this run's paintings per class")
        w.skip("GenRe Table 1: this is a culture run")
    w.entries.append((DEPARTURES, "", "each sentence computed from the run's card; they explain the differences in "
                      "the tables:\n\n" + "\n".join(f"- {md(n)}" for n in notes)))


def _genre(run, paintings: _Paintings, w: Writer, seed: int) -> None:
    card, name = run.card, run.name
    hist = run.history()
    training = card.get("training") or {}
    if hist.empty or "val_loss" not in hist:
        w.skip("GenRe Fig. 1: the run left no training history")
    else:
        kept = training.get("best_epoch") if (card.get("config") or {}).get("restore_best", True) \
            else int(hist["epoch"].max())
        w.figure(figures.history_figure(hist, kept, bool(training.get("stopped_early")), f"{name}: training"),
                 "genre_fig1_training", "genre_fig1",
                 f"Loss and accuracy per epoch on this run's training and validation paintings; the dashed line marks "
                 f"the lowest validation loss, the dotted one (when it differs) the epoch whose weights were kept "
                 f"({kept}); {'it stopped early' if training.get('stopped_early') else 'it ran every planned epoch'}.")
    classes, metrics = run.classes, card.get("metrics") or {}
    for key, model, stem in (("genre_fig2", "finetuned", "genre_fig2_confusion_finetuned"),
                             ("genre_fig3", "knn", "genre_fig3_confusion_knn")):
        m = metrics.get(model) or {}
        words = "fine-tuned model" if model == "finetuned" else f"kNN baseline (k = {m.get('k')})"
        if not m.get("confusion"):
            w.skip(f"GenRe Fig. {key[-1]}: the card records no confusion matrix of the {words}")
            continue
        w.figure(figures.confusion_figure(m["confusion"], classes, f"{name}: {words}"), stem, key,
                 f"The {words}'s confusion matrix on this run's {int(np.sum(m['confusion']))} test paintings "
                 f"(accuracy {m.get('accuracy', float('nan')):.3f}).")
    _genre_cams(run, paintings, w, seed)


def _no_collection(run) -> str:
    """Where the run's collection was looked for, and for the demo collection the command that builds it there."""
    task = run.card["task"]
    rel = task.get("collection_relative")
    where = str((run.path / rel).resolve()) if rel else str(task.get("collection", "?"))
    if not os.path.relpath(where).startswith(".."):
        where = os.path.relpath(where)  # inside the working folder, as a user would type it
    build = (f"; build it with `artlab data demo --out {where}`"
             if str(task.get("collection_source", "")).startswith("demo") else "")
    return f"the run's collection is not at {where}{build}"


def _genre_cams(run, paintings: _Paintings, w: Writer, seed: int) -> None:
    if run.collection is None:
        w.skip(f"GenRe Figs. 4-11: {_no_collection(run)} (its images are needed for Grad-CAM)")
        return
    from artlab.explain.cams import explain_both, overlay
    pred = run.predictions().sort_values("id", kind="stable")
    rng = np.random.default_rng(seed)
    w.progress.stage(f"{run.name}: Grad-CAM", 2 * len(run.classes))
    for i, c in enumerate(run.classes):
        rows = pred[pred["true"] == c]
        for kind, mask in (("correct", rows["pred_finetuned"] == c), ("wrong", rows["pred_finetuned"] != c)):
            w.progress.advance()
            candidates = rows[mask]
            if candidates.empty:
                w.skip(f"GenRe Figs. 4-11, {c} ({kind}): no test painting of {c} that the fine-tuned model got "
                       f"{'right' if kind == 'correct' else 'wrong'}")
                continue
            pid = str(candidates["id"].iloc[int(rng.integers(len(candidates)))])
            image = paintings.image(pid)
            if image is None:
                w.skip(f"GenRe Figs. 4-11, {c} ({kind}): the image of painting {pid} is not in the collection")
                continue
            r = explain_both(paintings.predictor, image, name=pid)
            p, ft, kn = r["prediction"], r["finetuned"], r["knn"]
            says_ft = f"fine-tuned: {p.finetuned} ({float(p.probs.max()):.0%})"
            says_kn = f"kNN baseline: {p.knn} ({float(p.knn_shares.max()):.0%} of the vote)"
            fig = figures.panels_figure(
                [(f"true: {c}", _fit(image)),
                 (f"{says_ft}\nGrad-CAM", np.asarray(overlay(image, ft.cam, crop=ft.crop, view=ft.view, max_side=512))),
                 (f"{says_kn}\nsimilarity CAM", np.asarray(overlay(image, kn.cam, crop=kn.crop, view=kn.view,
                                                                    max_side=512)))],
                f"{paintings.field(pid, 'title') or pid}"[:90])
            w.figure(fig, f"genre_fig4-11_{_slug(c, i)}_{kind}", "genre_fig4-11",
                     f"{paintings.describe(pid)}, a {md(c)} test painting the fine-tuned model got {kind}: the "
                     f"painting, the fine-tuned model's Grad-CAM ({md(says_ft)}) and the kNN baseline's CAM of its "
                     f"similarity to its neighbours ({md(says_kn)}). Picked by this rule: {PICK_RULE}.")


def _culture(run, paintings: _Paintings, w: Writer, seed: int) -> None:
    from PIL import Image
    name, classes, meta = run.name, run.classes, paintings.meta
    rng = np.random.default_rng(seed)
    rows = []
    for c in classes:
        ids = sorted(str(i) for i in meta.index[meta["label"] == c]) if "label" in meta.columns else []
        chosen = sorted(rng.choice(len(ids), size=min(SAMPLES_PER_CLASS, len(ids)), replace=False)) if ids else []
        pictures = []
        for j in chosen:
            thumb = run.thumbnail(ids[j])
            if thumb is not None:
                with Image.open(thumb) as im:
                    pictures.append(((paintings.field(ids[j], "title") or ids[j])[:24], np.asarray(im.convert("RGB"))))
        if pictures:
            rows.append((c, pictures))
    if rows:
        w.figure(figures.grid_figure(rows, f"{name}: paintings per culture"), "culture_fig1_samples", "culture_fig1",
                 f"Up to {SAMPLES_PER_CLASS} paintings of each of this run's classes, chosen at random with the "
                 "run's seed among all its paintings of that class (thumbnails kept in the run folder).")
    else:
        w.skip("culture study Fig. 1: the run keeps no thumbnails")
    _feature_maps(run, paintings, w, rng)
    geometry = run.geometry()
    if len(geometry.get("classes", [])) < 2:
        w.skip("culture study Figs. 6-7: the run's geometry has fewer than two classes")
        return
    layer = "the backbone's pooled features" if geometry.get("layer") == "backbone" else "the head's penultimate layer"
    w.figure(figures.force_figure(geometry, f"{name}: class centroids (ForceAtlas2)"), "culture_fig6_forceatlas2",
             "culture_fig6", f"The centroid of each class in {layer} of this run's model, over all its paintings, "
             "laid out by ForceAtlas2 seeded with the run's seed; a node's area grows with its paintings, an edge's "
             "width with the pair's normalised similarity.")
    w.figure(figures.chord_figure(geometry, f"{name}: top quartile of normalised similarity"), "culture_fig7_chord",
             "culture_fig7", "Each class owns an arc; a ribbon joins two classes when either direction of their "
             "normalised similarity d(A,B)^-1 / sum over C != A of d(A,C)^-1 is in the top quartile, its ends as "
             "wide as the two directions.")


def _feature_maps(run, paintings: _Paintings, w: Writer, rng) -> None:
    if run.collection is None:
        w.skip(f"culture study Figs. 4-5: {_no_collection(run)} (its images are needed)")
        return
    from artlab.explain.cams import crop_fraction, feature_map, overlay
    pred = run.predictions().sort_values("id", kind="stable")
    rows = []
    w.progress.stage(f"{run.name}: feature maps", len(run.classes[:MAX_FEATURE_MAPS]))
    for c in run.classes[:MAX_FEATURE_MAPS]:
        w.progress.advance()
        ids = pred.loc[pred["true"] == c, "id"].astype(str).tolist()
        if not ids:
            continue
        pid = ids[int(rng.integers(len(ids)))]
        image = paintings.image(pid)
        if image is None:
            continue
        predictor = paintings.predictor
        fmap = feature_map(predictor, image, "finetuned")
        shown = overlay(image, fmap, crop=crop_fraction(predictor.spec), view=predictor.cam_view, max_side=384)
        rows.append((c, [((paintings.field(pid, "title") or pid)[:24], _fit(image, 384)),
                         ("channel sum", fmap), ("overlaid", np.asarray(shown))]))
    if not rows:
        w.skip("culture study Figs. 4-5: no test painting's image is in the collection")
        return
    frozen = run.card.get("method") == "transfer"
    w.figure(figures.grid_figure(rows, f"{run.name}: feature maps", cell=2.0), "culture_fig4-5_feature_maps",
             "culture_fig4-5", "A test painting of each class (chosen at random with the run's seed), the output of "
             "the model's last convolutional block summed over its channels and min-max normalised, and that map "
             "laid over the painting." + (" The backbone was frozen in this run (transfer): the map is the "
                                          "pretrained network's, the same as the baseline's." if frozen else ""))


# --- the command ------------------------------------------------------------------------------------------------------

def _experiment(target: Path, out: Path, progress) -> list[Writer]:
    check_size(target / RESULTS, CAPS["csv"])
    results = pd.read_csv(target / RESULTS)
    if "name" not in results.columns:
        raise ConfigError(f"{target / RESULTS}: no 'name' column (not an `artlab experiment` results table)")
    top = Writer(out, progress=progress)
    beside = paper.beside_results(results)
    if len(beside):
        top.table(beside, "published_vs_run", "the papers' tables", "every published figure of this grid beside "
                  "the run's (rows marked published in results.csv)")
    else:
        top.skip("published_vs_run: no row of this experiment has published figures")
    writers = [top]
    from artlab.runfolder import Run, is_run
    for row in results["name"].astype(str):
        folder = contained(target, row, what="a row name in results.csv")
        if not is_run(folder):
            top.skip(f"{row}: no complete run in {folder}")
            continue
        plain = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", row)  # the grid's row names are folder names
        w = Writer(out, row if plain else _slug(row, len(writers)), progress)
        figures_of_run(Run.open(folder), w)
        writers.append(w)
    return writers


def _clear_earlier(out: Path) -> None:
    """Remove the files an earlier ``artlab figures`` listed in its marker; nothing else is touched."""
    marker = out / MARKER
    if not marker.is_file():
        return
    for name in json.loads(marker.read_text()).get("files", []):
        try:
            p = contained(out, name, what="a file listed in the marker")
        except ArtlabError:
            continue
        if p.is_file() and not p.is_symlink():
            p.unlink()


def _captions(target: Path, writers: list[Writer]) -> str:
    lines = [f"# Figures and tables regenerated from {md(target.name)}", "",
             "Written by `artlab figures`: each figure as PNG (slides) and SVG (print), each table as CSV, Markdown "
             "and LaTeX. *In the paper* says what the published figure showed; *here* what this one shows.", ""]
    for w in writers:
        if w.sub:
            lines += [f"## `{w.sub}`", ""]  # slugs and stems are artlab's own: [a-z0-9_-]
        for stem, published, here in w.entries:
            heading = "Where this run departs from the study" if stem == DEPARTURES else f"`{stem}`"
            lines += [f"### {heading}", ""] + ([f"*In the paper:* {published}", ""] if published else [])
            lines += [f"*Here:* {here}", ""]
        lines += [f"- skipped: {md(s)}" for s in w.skipped] + ([""] if w.skipped else [])
    return "\n".join(lines)


def run_figures(a: argparse.Namespace) -> int:
    from artlab.runfolder import Run, is_run
    target = Path(a.target)
    if not target.is_dir():
        raise ConfigError(f"{target}: no such folder (give a run folder or an `artlab experiment` output folder)")
    experiment = not is_run(target)
    if experiment and not (target / RESULTS).is_file():
        raise ConfigError(f"{target}: neither a run (no card.json) nor an experiment's output (no {RESULTS})")
    out = check_output(a.out, KIND, overwrite=a.overwrite, sources={"the run or experiment": target})
    run = None if experiment else Run.open(target)  # a broken run is said before anything is written
    _clear_earlier(out)
    mark_output(out, KIND)
    from artlab.progress import TqdmProgress
    progress = TqdmProgress()
    if experiment:
        writers = _experiment(target, out, progress)
    else:
        writers = [Writer(out, progress=progress)]
        figures_of_run(run, writers[0])
    progress.done()
    atomic_write_text(out / CAPTIONS, _captions(target, writers))
    files = [f for w in writers for f in w.files] + [CAPTIONS]
    mark_output(out, KIND, files=files)
    for w in writers:
        for line in w.skipped:
            print(f"skipped{f' ({w.sub})' if w.sub else ''}: {line}")
    n_fig = sum(1 for f in files if f.endswith(".png"))
    n_tab = sum(1 for f in files if f.endswith(".csv"))
    print(f"{n_fig} figure(s) (PNG + SVG) and {n_tab} table(s) (CSV, Markdown, LaTeX) written to {out}, "
          f"captions in {out / CAPTIONS}")
    return 0
