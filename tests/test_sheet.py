"""One painting on one sheet: `artlab explain RUN IMAGE --sheet OUT` writes a PNG and a PDF with the painting, both
models' answers, both heat maps, the neighbours, the run and the painting's provenance; a prediction set is drawn when
the prediction carries one; a file artlab did not write is never replaced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artlab.cli import main
from artlab.report.sheet import SOFTWARE, SheetPrediction, sheet_bytes, sheet_figure

SHIPPED = Path(__file__).parents[1] / "checkpoints"


def _texts(fig) -> str:
    out = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        out += [t.get_text() for t in ax.texts] + [ax.get_title()]
    return "\n".join(out)


def test_the_answers_in_words_with_a_tie_and_an_optional_prediction_set():
    pred = SheetPrediction(label="genre", top=[("portrait", 0.7), ("religious", 0.2), ("landscape", 0.1)],
                           knn="religious", knn_share=1 / 3, k=3, tie=True)
    lines = "\n".join(pred.lines())
    assert "1. portrait  70%" in lines and "1 of its 3 nearest training paintings" in lines
    assert "a tie, broken by" in lines and "Prediction set" not in lines
    with_set = SheetPrediction.from_dict({**pred.__dict__, "prediction_set": ["portrait", "religious"],
                                          "set_coverage": 0.9, "ignored": 1})
    assert "Prediction set at 90% coverage: portrait, religious" in " ".join(" ".join(with_set.lines()).split())
    assert "Unfamiliar" not in " ".join(with_set.lines())
    odd = SheetPrediction.from_dict({**with_set.__dict__, "unfamiliar": True})
    assert "Unfamiliar: this picture is less like the paintings" in " ".join(" ".join(odd.lines()).split())
    picture = np.zeros((40, 30, 3), dtype=np.uint8)
    fig = sheet_figure(picture, with_set.__dict__, picture, picture, [("religious · a neighbour", picture)],
                       "my-run", {"title": "A title, $5 or $\\frac{x", "artist": "Someone", "license": "CC0"})
    words = _texts(fig)
    assert "A title" in words and "Artist: Someone" in words and "Licence: CC0" in words and "my-run" in words
    assert "Prediction set at 90% coverage" in words
    png, pdf = sheet_bytes(fig, "png"), sheet_bytes(fig, "pdf")
    assert png.startswith(b"\x89PNG") and SOFTWARE.encode() in png
    assert pdf.startswith(b"%PDF") and SOFTWARE.encode() in pdf


@pytest.fixture(scope="module")
def shipped_genre(demo_collection, tmp_path_factory):
    from conftest import private_run
    return private_run(SHIPPED / "demo-genre", demo_collection, tmp_path_factory.mktemp("sheet") / "demo-genre")


@pytest.mark.slow
def test_explain_sheet_of_a_collection_painting(shipped_genre, demo_collection, tmp_path, capsys):
    import pandas as pd
    meta = pd.read_csv(shipped_genre / "paintings.csv")
    row = meta[meta["split"] == "test"].iloc[0]
    image = demo_collection / row["path"]
    out = tmp_path / "sheet"
    assert main(["explain", str(shipped_genre), str(image), "--sheet", str(out) + ".pdf"]) == 0
    with Image.open(out.with_suffix(".png")) as im:
        im.verify()
    with Image.open(out.with_suffix(".png")) as im:
        assert im.size == (1753, 1240)  # A4 landscape at 150 dpi
    pdf = out.with_suffix(".pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 20_000
    assert "sheet of" in capsys.readouterr().out
    # the figure itself: provenance from the run's paintings, both answers, the run
    from artlab.explain.predictor import Predictor
    from artlab.explain.sheet import make_sheet, painting_id_of, provenance_of
    from artlab.runfolder import Run
    predictor = Predictor(Run.open(shipped_genre))
    assert painting_id_of(predictor.run, image) == row["id"]
    fig = make_sheet(predictor, predictor.load(image), str(image), provenance_of(predictor.run, row["id"]))
    words = _texts(fig)
    assert str(row["title"])[:30] in words and "Licence: CC0" in words and "kNN baseline:" in words
    assert "Fine-tuned model:" in words and "demo-genre" in words and "most similar" in words
    # again: refused without --overwrite, replaced with it; a file of the user's is never replaced
    assert main(["explain", str(shipped_genre), str(image), "--sheet", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"\x89PNG not artlab's")
    assert main(["explain", str(shipped_genre), str(image), "--sheet", str(mine), "--overwrite"]) == 2
    assert "did not write" in capsys.readouterr().err and mine.read_bytes() == b"\x89PNG not artlab's"
    assert main(["explain", str(shipped_genre), str(image), str(image), "--sheet", str(tmp_path / "two")]) == 2
    assert "exactly one image" in capsys.readouterr().err
