"""``artlab explain RUN IMAGE... --out DIR``: CAM overlays of both models as PNG files, and a predictions table.

Per painting: ``<stem>_finetuned.png`` (the fine-tuned classifier's CAM), ``<stem>_knn.png`` (the kNN baseline's
similarity CAM) and ``<stem>_featuremap.png`` (the channel-sum feature map), then ``predictions.csv`` for all of them.
``--faithfulness`` prints the ROAD / confidence-drop table over the run's test split instead (or as well).
``--sheet OUT`` writes one painting's analysis on one sheet, ``OUT.png`` and ``OUT.pdf`` (artlab.report.sheet).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from artlab.cli.files import image_files
from artlab.errors import ArtlabError, ConfigError, ImageError
from artlab.explain.cams import KNN_METHODS, Explanation, check_methods, explain_both, overlay
from artlab.io import atomic_save
from artlab.progress import TqdmProgress
from artlab.report.csvsafe import to_csv_for_people
from artlab.safety import MARKER, check_output, mark_output


def parse_target(value: str | None, classes: list[str]) -> int | None:
    """A class name (or its index) -> the class index."""
    if value is None:
        return None
    if value in classes:
        return classes.index(value)
    if value.isdigit() and int(value) < len(classes):
        return int(value)
    raise ConfigError(f"unknown class {value!r} for --target; this run's classes: {', '.join(classes)}")


def parse_methods(value: str) -> list[str]:
    """``--method`` for the faithfulness table: one name, a comma-separated list, or 'all'."""
    from artlab.explain.faithfulness import DEFAULT_METHODS
    methods = list(DEFAULT_METHODS) if value == "all" else [m.strip() for m in value.split(",") if m.strip()]
    return check_methods(methods, also=("all",))


def _save_png(image, path: Path) -> None:
    atomic_save(path, lambda tmp: image.save(tmp, format="PNG"))


def _unique_stem(path: Path, used: set[str]) -> str:
    stem, n = path.stem, 2
    while stem in used:  # folder/a.jpg and other/a.jpg must not overwrite each other's overlays
        stem, n = f"{path.stem}-{n}", n + 1
    used.add(stem)
    return stem


def _row(result: dict, file: Path, stem: str, classes: list[str]) -> dict:
    ft: Explanation = result["finetuned"]
    kn: Explanation = result["knn"]
    row = result["prediction"].row()
    row.update(file=str(file), overlay_stem=stem, finetuned_explained=classes[ft.target], finetuned_method=ft.method,
               knn_explained=classes[kn.target], knn_method=kn.method, knn_similarity=round(kn.similarity, 4))
    return row


def explain_files(predictor, files: list[Path], out: Path, method: str, knn_method: str, target: int | None
                  ) -> tuple[list[dict], int]:
    """Write the overlays of each readable file into ``out``; (prediction rows, number of files skipped)."""
    bar, rows, skipped, used = TqdmProgress(), [], 0, set()
    bar.stage("explaining", len(files))
    for f in files:
        try:
            image = predictor.load(f, name=str(f))  # decoded as `artlab predict` does
        except ImageError as exc:
            tqdm.write(f"skipped: {exc}", file=sys.stderr)
            skipped += 1
        else:
            result = explain_both(predictor, image, method, knn_method, target, name=str(f))
            stem = _unique_stem(f, used)
            ft, kn = result["finetuned"], result["knn"]
            _save_png(overlay(image, ft.cam, crop=ft.crop, view=ft.view), out / f"{stem}_finetuned.png")
            _save_png(overlay(image, kn.cam, crop=kn.crop, view=kn.view), out / f"{stem}_knn.png")
            _save_png(overlay(image, result["feature_map"], crop=ft.crop, view=ft.view),
                      out / f"{stem}_featuremap.png")
            rows.append(_row(result, f, stem, predictor.classes))
        bar.advance()
    bar.done()
    return rows, skipped


PREDICTIONS = "predictions.csv"


def _clear_earlier(out: Path) -> None:
    """Remove the files an earlier ``artlab explain`` listed in its marker (check_output allowed it: --overwrite on
    artlab's own explain folder); nothing else in ``out`` is touched."""
    import json
    marker = out / MARKER
    if not marker.is_file():
        return
    for name in json.loads(marker.read_text()).get("files", []):
        p = out / name
        if "/" not in name and p.is_file() and not p.is_symlink():
            p.unlink()


def _check_methods(method: str, knn_method: str) -> None:
    check_methods([method])
    check_methods([knn_method], KNN_METHODS, "--knn-method")


def _faithfulness(predictor, a: argparse.Namespace) -> None:
    from artlab.explain.faithfulness import faithfulness, format_table
    table = faithfulness(predictor, parse_methods(a.method), limit=a.limit, progress=TqdmProgress())
    print(f"{predictor.run.name}: faithfulness over {int(table['paintings'].max())} test painting(s)")
    print(format_table(table))


SHEET_FORMATS = ("png", "pdf")


def sheet_paths(value: str, overwrite: bool) -> list[Path]:
    """``--sheet OUT`` (OUT, OUT.png or OUT.pdf) -> the PNG and the PDF; each new, or (with --overwrite) a sheet
    artlab wrote (its metadata says so). Anything else is the user's and is refused."""
    from artlab.report.sheet import SOFTWARE
    from artlab.safety import CAPS, OutputError, read_capped
    base = Path(value).expanduser()
    base = base.with_suffix("") if base.suffix.lower() in (".png", ".pdf") else base
    paths = [base.parent / f"{base.name}.{fmt}" for fmt in SHEET_FORMATS]
    for p in paths:
        if not p.exists() and not p.is_symlink():
            continue
        ours = p.is_file() and not p.is_symlink() and SOFTWARE.encode() in read_capped(p, CAPS["image"])
        if not ours:
            raise OutputError(f"--sheet {p} already exists and artlab did not write it: choose a new name "
                              "(nothing was changed)")
        if not overwrite:
            raise OutputError(f"--sheet {p} already exists: pass --overwrite to replace it")
    if not base.parent.is_dir():
        raise OutputError(f"--sheet {base}: the folder {base.parent} does not exist")
    return paths


def write_sheet(predictor, file: Path, paths: list[Path]) -> None:
    """One painting's sheet as PNG and PDF, with its provenance when it is a painting of the run's collection."""
    from artlab.explain.sheet import make_sheet, painting_id_of, provenance_of
    from artlab.io import atomic_write_bytes
    from artlab.report.sheet import sheet_bytes
    image = predictor.load(file, name=str(file))
    fig = make_sheet(predictor, image, str(file), provenance_of(predictor.run, painting_id_of(predictor.run, file)))
    for path, fmt in zip(paths, SHEET_FORMATS):
        atomic_write_bytes(path, sheet_bytes(fig, fmt))
    print(f"sheet of {file.name} written to {paths[0]} and {paths[1]}")


def run_explain(a: argparse.Namespace) -> int:
    from artlab.explain.predictor import Predictor
    from artlab.runfolder import Run
    sheet = getattr(a, "sheet", None)
    if sheet:
        files = image_files(a.images) if a.images else []
        if len(files) != 1:
            raise ArtlabError(f"--sheet puts one painting on one sheet: give exactly one image (got {len(files)})")
        paths = sheet_paths(sheet, getattr(a, "overwrite", False))
        write_sheet(Predictor(Run.open(a.run), weights_file=a.weights), files[0], paths)
        if not (a.out or a.faithfulness):
            return 0
    if not a.faithfulness and not (a.images and a.out):
        raise ArtlabError("explain needs images and --out DIR (or --faithfulness for the scores table)")
    if a.images and not a.out:
        raise ArtlabError("explain needs --out DIR for the overlays of the images given")
    if a.faithfulness:
        parse_methods(a.method)
        if a.limit is not None and a.limit < 1:
            raise ConfigError("--limit must be at least 1")
    files = image_files(a.images) if a.images else []
    if files:
        _check_methods(a.method, a.knn_method)
        sources = {"the run": a.run, **{f"the image {f}": f for f in a.images}}
        check_output(a.out, "explain", overwrite=getattr(a, "overwrite", False), sources=sources)
    predictor = Predictor(Run.open(a.run), weights_file=a.weights)
    target = parse_target(a.target, predictor.classes)
    if a.faithfulness:
        _faithfulness(predictor, a)
    if not files:
        return 0
    out = Path(a.out)
    _clear_earlier(out)
    mark_output(out, "explain")
    rows, skipped = explain_files(predictor, files, out, a.method, a.knn_method, target)
    if not rows:
        raise ArtlabError(f"none of the {len(files)} file(s) given is a readable image")
    atomic_save(out / PREDICTIONS, lambda tmp: to_csv_for_people(pd.DataFrame(rows), tmp))
    mark_output(out, "explain", files=sorted(p.name for p in out.glob("*_*.png")) + [PREDICTIONS])
    print(f"{len(rows)} painting(s) explained ({a.method}; kNN: {a.knn_method}), overlays and predictions.csv in {out}"
          + (f"; {skipped} skipped" if skipped else ""))
    return 0
