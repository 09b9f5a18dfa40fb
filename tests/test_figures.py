"""`artlab figures`: the papers' figures and tables regenerated from the shipped demo runs (valid PNG and SVG files of
a sensible size, captions that cite the papers), from an experiment's output folder, and refused on bad input; the
published figures artlab holds are the papers' (docs/studies.md)."""

from __future__ import annotations

import json
import shutil
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from artlab.cli import main
from artlab.collection.met.labels import PAPER_TABLE1
from artlab.report import paper

ROOT = Path(__file__).parents[1]
SHIPPED = ROOT / "checkpoints"

GENRE_FIGURES = ["genre_fig1_training", "genre_fig2_confusion_finetuned", "genre_fig3_confusion_knn"]
CULTURE_FIGURES = ["culture_fig1_samples", "culture_fig4-5_feature_maps", "culture_fig6_forceatlas2",
                   "culture_fig7_chord"]


def _check_figure(folder: Path, stem: str) -> None:
    png, svg = folder / f"{stem}.png", folder / f"{stem}.svg"
    with Image.open(png) as im:
        im.verify()
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width >= 300 and im.height >= 200, (stem, im.size)
    assert 2_000 < png.stat().st_size < 20_000_000 and 2_000 < svg.stat().st_size < 20_000_000
    assert ET.parse(svg).getroot().tag.endswith("svg")


@pytest.fixture(scope="module")
def shipped_runs(demo_collection, tmp_path_factory):
    """The shipped demo runs, reading the session's demo collection (their images are needed for the CAMs)."""
    from conftest import private_run
    base = tmp_path_factory.mktemp("shipped")
    return {name: private_run(SHIPPED / name, demo_collection, base / name) for name in ("demo-genre", "demo-culture")}


@pytest.mark.slow
def test_figures_of_the_shipped_genre_run(shipped_runs, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["figures", str(shipped_runs["demo-genre"]), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    cams = sorted(p.stem for p in out.glob("genre_fig4-11_*.png"))
    assert "genre_fig4-11_portrait_correct" in cams and len(cams) >= 4, cams
    for stem in GENRE_FIGURES + cams:
        _check_figure(out, stem)
    # every class has a correct and a wrong painting, or a line saying why not
    classes = json.loads((out.parent / "figs" / ".artlab.json").read_text())["files"]
    for c in ("landscape", "portrait", "religious", "still-life"):
        for kind in ("correct", "wrong"):
            shown = f"genre_fig4-11_{c}_{kind}.png" in classes
            assert shown or f"{c.replace('-', ' ')} ({kind})" in said
    assert "skipped: culture study Figs. 1, 4-5, 6, 7: this is a genre run" in said
    assert not list(out.glob("culture_*")), "a culture figure from a genre run is skipped, not drawn"
    table = pd.read_csv(out / "genre_table1.csv")
    assert list(table.columns) == paper.COLUMNS and len(table) == 8
    assert table.loc[0, "paper"] == 0.8933 and table.loc[4, "paper"] == 0.8666
    assert "\\begin{tabular}" in (out / "genre_table1.tex").read_text()
    assert "| GenRe, Table 1 (section 5) |" in (out / "genre_table1.md").read_text()
    captions = (out / "captions.md").read_text()
    assert "GenRe, Fig. 1 (section 4)" in captions and "Where this run departs from the study" in captions
    for stem in GENRE_FIGURES + cams:
        assert f"`{stem}`" in captions


@pytest.mark.slow
def test_figures_of_the_shipped_culture_run(shipped_runs, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["figures", str(shipped_runs["demo-culture"]), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    for stem in CULTURE_FIGURES:
        _check_figure(out, stem)
    assert "skipped: GenRe Figs. 1-11: this is a culture run" in said and not list(out.glob("genre_fig*"))
    t2 = pd.read_csv(out / "culture_table2.csv")
    assert t2["paper"].tolist() == [0.6088, 0.6088, 0.8686], "a transfer run beside the paper's transfer row"
    t1 = pd.read_csv(out / "culture_table1.csv").set_index("culture")
    assert t1.loc["Indian", "paper final"] == 372 and pd.isna(t1.loc["American", "run"])
    captions = (out / "captions.md").read_text()
    assert "compared with its row of the same training method, resnet50 / transfer / step" in captions
    assert "the backbone was frozen in this run" in captions.lower()
    assert "culture study, Fig. 7 (section 4.2)" in captions


def test_an_experiment_folder_gives_its_table_and_each_runs_figures(tmp_path, capsys):
    exp = tmp_path / "exp"
    run = exp / "densenet121-partial"
    shutil.copytree(SHIPPED / "demo-genre", run)
    card = json.loads((run / "card.json").read_text())
    card["task"]["collection"], card["task"]["collection_relative"] = str(tmp_path / "gone"), None
    (run / "card.json").write_text(json.dumps(card, indent=2))
    pd.DataFrame([{"name": "densenet121-partial", "row": "published", "backbone": "densenet121", "top1": 0.8,
                   "paper_top1": 0.8933, "knn_top1": 0.7, "paper_knn_top1": 0.8666},
                  {"name": "never-ran", "row": "extension", "backbone": "densenet121", "top1": None}]
                 ).to_csv(exp / "results.csv", index=False)
    out = tmp_path / "figs"
    assert main(["figures", str(exp), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    beside = pd.read_csv(out / "published_vs_run.csv")
    assert beside[["model", "paper", "run"]].values.tolist() == [["fine-tuned", 0.8933, 0.8],
                                                                 ["kNN baseline", 0.8666, 0.7]]
    assert (out / "densenet121-partial" / "genre_table1.csv").is_file()
    _check_figure(out / "densenet121-partial", "genre_fig1_training")
    assert "the run's collection is not at " in said and "never-ran: no complete run" in said
    assert "## `densenet121-partial`" in (out / "captions.md").read_text()


def test_bad_input_is_one_line_and_nothing_of_the_users_is_touched(tmp_path, capsys):
    assert main(["figures", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "plain").mkdir()
    assert main(["figures", str(tmp_path / "plain"), "--out", str(tmp_path / "o")]) == 2
    assert "neither a run" in capsys.readouterr().err
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    run = tmp_path / "run"
    shutil.copytree(SHIPPED / "demo-culture", run)
    assert main(["figures", str(run), "--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did not write" in err and (mine / "notes.txt").read_text() == "keep"
    assert main(["figures", str(run), "--out", str(run / "figs")]) == 2, "never inside the run it reads"
    capsys.readouterr()


def test_an_earlier_figures_folder_is_replaced_only_with_overwrite(tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "figs"
    shutil.copytree(SHIPPED / "demo-culture", run)
    card = json.loads((run / "card.json").read_text())
    card["task"]["collection"], card["task"]["collection_relative"] = str(tmp_path / "gone"), None
    (run / "card.json").write_text(json.dumps(card, indent=2))
    assert main(["figures", str(run), "--out", str(out)]) == 0
    (out / "my-notes.txt").write_text("mine")
    assert main(["figures", str(run), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["figures", str(run), "--out", str(out), "--overwrite"]) == 0
    assert (out / "my-notes.txt").read_text() == "mine", "a file artlab did not write stays"
    _check_figure(out, "culture_fig6_forceatlas2")


def test_the_published_figures_are_the_papers_everywhere_artlab_keeps_them():
    culture = tomllib.loads((ROOT / "configs" / "culture_table2.toml").read_text())["published"]
    assert {tuple(name.split("-")): (f["val"], f["top1"], f["top3"]) for name, f in culture.items()} == \
        paper.CULTURE_TABLE2
    genre = tomllib.loads((ROOT / "configs" / "genre_table1.toml").read_text())["published"]["densenet121-partial"]
    assert {k: genre[k] for k in ("top1", "precision", "recall", "f1")} == dict(
        zip(("top1", "precision", "recall", "f1"), paper.GENRE_TABLE1["fine-tuned"].values()))
    assert {k: genre[f"knn_{k}"] for k in ("top1", "precision", "recall", "f1")} == dict(
        zip(("top1", "precision", "recall", "f1"), paper.GENRE_TABLE1["kNN baseline"].values()))
    assert PAPER_TABLE1 == paper.CULTURE_TABLE1


def test_latex_and_markdown_cells_from_data_are_escaped():
    df = pd.DataFrame({"name": ["a_b & 50% | $x$"], "run": [0.5]})
    tex = paper.latex_table(df, "c_d")
    assert r"a\_b \& 50\% | \$x\$ & 0.5000 \\" in tex and r"\caption{c\_d}" in tex
    assert r"| a_b & 50% \| $x$ | 0.5000 |" in paper.markdown_table(df)


def test_text_from_data_is_drawn_as_it_is():
    """A title with dollar signs (or a broken TeX command) is not matplotlib math: no error, the text as it is."""
    import numpy as np
    from artlab.report import figures
    fig = figures.panels_figure([("$\\frac{a$ costs $5", np.zeros((8, 8, 3), dtype=np.uint8))], "$x^$ title")
    assert figures.to_bytes(fig, "png").startswith(b"\x89PNG") and b"<svg" in figures.to_bytes(fig, "svg")
    assert fig.axes[0].get_title() == "$\\frac{a$ costs $5"
    cm = figures.confusion_figure([[1, 0], [0, 1]], ["$a$", "b_{c}"], "t")
    assert figures.to_bytes(cm, "pdf").startswith(b"%PDF")


def test_a_culture_run_is_compared_with_the_nearest_published_row():
    assert paper.culture_row({"backbone": "vgg16_bn", "method": "finetune", "scheduler": "step"}) == (
        ("vgg16_bn", "finetune", "step"), "")
    row, note = paper.culture_row({"backbone": "vgg16_bn", "method": "finetune", "scheduler": "plateau"})
    assert row == ("vgg16_bn", "finetune", "step") and "same backbone and method" in note
    row, note = paper.culture_row({"backbone": "alexnet", "method": "scratch", "scheduler": "plateau"})
    assert row == ("resnet50", "scratch", "step") and "same training method" in note
    row, note = paper.culture_row({"backbone": "efficientnet_lite0", "method": "partial", "scheduler": "none"})
    assert row == ("resnet50", "finetune", "plateau") and "its best row" in note
