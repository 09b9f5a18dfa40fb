"""Honest probabilities: temperature scaling, split-conformal sets, the unfamiliar threshold, and what a run records,
prints and predicts with them (artlab/report/calibration.py, artlab/train/calibrate.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from artlab.report import calibration as cal


def overconfident(n: int, k: int = 4, seed: int = 0, scale: float = 4.0):
    """Logits whose softmax is right ~65% of the time but says ~95%: a well-calibrated model's logits times
    ``scale``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k))
    z[np.arange(n), y] += 1.5
    return z * scale, y


def test_overconfident_logits_get_a_temperature_above_one_and_a_lower_ece():
    z, y = overconfident(2000)
    t = cal.fit_temperature(z[:1000], y[:1000])
    assert t > 1.5
    before, after = cal.ece(cal.softmax(z[1000:]), y[1000:]), cal.ece(cal.softmax(z[1000:], t), y[1000:])
    assert after < before / 2 and after < 0.05
    # the argmax never moves: accuracy is the same
    assert (cal.softmax(z, t).argmax(1) == z.argmax(1)).all()
    assert cal.nll(cal.softmax(z[1000:], t), y[1000:]) < cal.nll(cal.softmax(z[1000:]), y[1000:])


def test_underconfident_logits_get_a_temperature_below_one():
    z, y = overconfident(2000, scale=0.3)
    assert cal.fit_temperature(z, y) < 1


def test_ece_of_known_bins():
    probs = np.array([[0.9, 0.1]] * 10 + [[0.6, 0.4]] * 10)
    y = np.array([0] * 9 + [1] + [0] * 3 + [1] * 7)  # 90% right at 0.9, 30% right at 0.6
    assert cal.ece(probs, y) == pytest.approx(0.5 * 0.0 + 0.5 * 0.3)
    rows = cal.reliability(probs, y)
    assert [(r["n"], round(r["accuracy"], 2)) for r in rows] == [(10, 0.3), (10, 0.9)]
    assert cal.brier(np.eye(2), np.array([0, 1])) == 0.0


@pytest.mark.parametrize("coverage", [0.8, 0.9])
def test_conformal_sets_cover_the_target_over_200_exchangeable_draws(coverage):
    rng = np.random.default_rng(1)
    covered, sizes = [], []
    for _ in range(200):
        z, y = overconfident(300, k=5, seed=int(rng.integers(1 << 30)), scale=1.0)
        p = cal.softmax(z)
        q = cal.conformal_threshold(cal.conformal_scores(p[:100], y[:100]), coverage)
        fig = cal.set_figures(p[100:], y[100:], q)
        covered.append(fig["coverage"]), sizes.append(fig["mean_size"])
    assert abs(np.mean(covered) - coverage) <= 0.02
    assert 1 <= np.mean(sizes) < 5


def test_conformal_threshold_finite_sample_rank_and_small_sets():
    scores = np.arange(1, 10) / 10  # 9 scores: ceil(10 * 0.9) = 9th smallest
    assert cal.conformal_threshold(scores, 0.9) == pytest.approx(0.9)
    assert cal.conformal_threshold(scores, 0.5) == pytest.approx(0.5)  # ceil(10 * 0.5) = 5th
    assert cal.conformal_threshold(scores[:5], 0.9) == 1.0  # too few for 90%: every class
    sets = cal.prediction_sets(np.array([[0.5, 0.3, 0.2]]), 0.0)
    assert sets.tolist() == [[True, False, False]]  # never empty: the top class stays
    assert cal.set_classes(np.array([0.2, 0.5, 0.3]), 0.8, ["a", "b", "c"]) == ["b", "c", "a"]
    assert cal.set_classes(np.array([0.2, 0.5, 0.3]), 0.75, ["a", "b", "c"]) == ["b", "c"]
    with pytest.raises(ValueError):
        cal.conformal_threshold(scores, 1.0)


def test_threshold_at_another_coverage_from_the_card():
    entry = cal.conformal_entry(np.linspace(0, 1, 99), 0.9, np.eye(3), np.arange(3), "x")
    assert cal.threshold_at(entry, 0.9) == entry["threshold"]
    assert cal.threshold_at(entry, 0.5) < entry["threshold"]
    assert entry["small"] is False and entry["test"]["coverage"] == 1.0


def test_unfamiliar_rule():
    ref = np.linspace(0.3, 0.9, 101)
    entry = cal.unfamiliar_entry(ref, np.array([0.1, 0.5, 0.8, 0.9]), 3, "reference paintings")
    assert entry["threshold"] == pytest.approx(np.percentile(ref, 2), abs=1e-4)
    assert entry["test"]["rate"] == 0.25
    assert cal.familiarity(np.array([[0.9, 0.5, 0.1, 0.0]]), 3)[0] == pytest.approx(0.5)


def test_the_runs_card_opens_checked(tmp_path, genre_run):
    from artlab.errors import RunError
    from artlab.runfolder import Run
    card = json.loads((genre_run / "card.json").read_text())
    for key in ("calibration", "conformal", "unfamiliar"):
        assert key in card
    assert card["calibration"]["fitted_on"]["n"] == card["task"]["split_sizes"]["val"]
    assert card["conformal"]["small"] is True  # a tiny test run's validation split
    run = tmp_path / "run"
    run.mkdir()
    for f in genre_run.iterdir():
        if f.is_file():
            (run / f.name).symlink_to(f)
    (run / "card.json").unlink()
    bad = json.loads(json.dumps(card))
    bad["calibration"]["parameters"]["temperature"] = -1
    (run / "card.json").write_text(json.dumps(bad))
    with pytest.raises(RunError, match="calibration.parameters.temperature"):
        Run.open(run)
    old = {k: v for k, v in card.items() if k not in ("calibration", "conformal", "unfamiliar")}
    (run / "card.json").write_text(json.dumps(old))
    assert "conformal" not in Run.open(run).card  # a run written before the keys still opens


def test_predictions_are_calibrated_and_written(genre_run):
    pred = pd.read_csv(genre_run / "predictions.csv")
    card = json.loads((genre_run / "card.json").read_text())
    classes = card["task"]["classes"]
    after = pred[[f"finetuned:{c}" for c in classes]].to_numpy()
    y = pred["true"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    assert cal.ece(after, y) == pytest.approx(card["calibration"]["test"]["after"]["ece"], abs=2e-3)
    assert cal.set_figures(after, y, card["conformal"]["threshold"])["coverage"] == pytest.approx(
        card["conformal"]["test"]["coverage"], abs=1e-3)


def texture(path, kind: str = "checker"):
    """A generated, licence-free non-painting: a black-and-white checkerboard."""
    from PIL import Image
    a = ((np.add.outer(np.arange(320) // 20, np.arange(320) // 20) % 2) * 255).astype(np.uint8)
    Image.fromarray(a).convert("RGB").save(path)
    return path


def test_evaluate_and_predict_say_how_sure(genre_run, demo_images, tmp_path, capsys):
    from artlab.cli.commands import main
    assert main(["evaluate", str(genre_run)]) == 0
    out = capsys.readouterr().out
    assert "ECE" in out and "->" in out and "coverage" in out and "mean set size" in out
    csv = tmp_path / "p.csv"
    files = [str(demo_images[0]), str(texture(tmp_path / "checker.png"))]
    assert main(["predict", str(genre_run), *files, "--csv", str(csv), "--coverage", "0.95"]) == 0
    table = pd.read_csv(csv)
    assert {"finetuned_set", "unfamiliar", "familiarity", "finetuned_confidence"} <= set(table.columns)
    assert table["unfamiliar"].tolist() == [False, True]
    assert all(isinstance(s, str) and s for s in table["finetuned_set"])
    assert main(["predict", str(genre_run), files[0], "--coverage", "1.5"]) == 2


def test_assess_one_painting(genre_run, demo_images):
    from PIL import Image
    from artlab.explain.predictor import Predictor
    from artlab.runfolder import Run
    p = Predictor(Run.open(genre_run))
    with Image.open(demo_images[0]) as im:
        a = p.assess(im.convert("RGB"), coverage=0.8)
    assert math.isclose(sum(a["probabilities"].values()), 1.0, abs_tol=1e-6)
    assert a["calibrated"] and a["set"] and a["coverage"] == 0.8 and a["unfamiliar"] is False


SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints"


@pytest.mark.parametrize("name", ["demo-genre", "demo-culture"])
def test_shipped_runs_are_calibrated_and_flag_generated_textures(name):
    """The shipped runs carry every key, and generated textures (noise, a checkerboard, stripes, a flat colour)
    are all unfamiliar to them, while their own test paintings rarely are."""
    from PIL import Image
    from artlab.explain.predictor import Predictor
    from artlab.runfolder import Run
    run = Run.open(SHIPPED / name)
    assert run.card["calibration"]["fitted_on"]["n"] >= 50 and not run.card["conformal"]["small"]
    assert run.card["unfamiliar"]["test"]["rate"] <= 0.1
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, 320)
    checker = ((np.add.outer(np.arange(320) // 20, np.arange(320) // 20) % 2) * 255).astype(np.uint8)
    images = [Image.fromarray(rng.integers(0, 256, (320, 320, 3), dtype=np.uint8)),
              Image.fromarray(checker).convert("RGB"),
              Image.fromarray(np.stack([(np.sin(np.add.outer(x, x) * 60) * 127 + 128).astype(np.uint8)] * 3, -1)),
              Image.new("RGB", (320, 320), (30, 90, 200))]
    preds = Predictor(run).predict_images(images)
    assert [p.unfamiliar for p in preds] == [True] * 4


def test_out_of_fold_calibration_data_without_a_cache():
    """calibrate_on 'cv' on a run without cached views (a GPU run): the folds train on the pooled features, every
    training and validation painting is predicted once by a head that never saw its artist, and the test paintings
    are left out."""
    from artlab.train.calibrate import held_out
    from artlab.train.config import TrainConfig
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    pooled = rng.normal(size=(90, 16)).astype(np.float32)
    pooled[np.arange(90), y] += 4.0
    split = np.array(["train", "train", "val", "test", "train"] * 18)
    idx = {s: np.flatnonzero(split == s) for s in ("train", "val", "test")}
    artists = pd.Series([f"artist {i % 20}" for i in range(90)])
    cfg = TrainConfig(collection="x", method="transfer", head="linear", epochs=150, calibrate_on="cv")
    logits, cal_y, source = held_out(cfg, y, idx, artists, np.zeros((90, 3)), pooled, None)
    assert len(logits) == len(cal_y) == len(idx["train"]) + len(idx["val"]) == 72
    assert (logits.argmax(1) == cal_y).mean() > 0.8 and "out-of-fold" in source


def test_a_sheet_carries_the_prediction_set():
    """The one-page sheet (artlab.report.sheet) shows a calibrated run's prediction set and its coverage."""
    from artlab.explain.predictor import Prediction
    from artlab.report.sheet import SheetPrediction
    conformal = cal.conformal_entry(np.linspace(0, 1, 99), 0.9, np.eye(3), np.arange(3), "x")
    pred = Prediction("p", ["a", "b", "c"], np.array([0.5, 0.45, 0.05]), np.array([1.0, 0, 0]),
                      np.array([1.0, 0, 0]), [], True, conformal, 0.6, 0.4)
    sheet = SheetPrediction.from_prediction(pred, "genre")
    assert sheet.prediction_set == pred.set_at() and sheet.set_coverage == 0.9
    assert any("Prediction set at 90% coverage" in line for line in sheet.lines())
