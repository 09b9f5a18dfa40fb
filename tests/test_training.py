"""The genre study end to end on real CC0 paintings: the run-folder contract, the CLI, the real-study path."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from artlab.cli import main
from artlab.runfolder import RUN_FILES, Run


def test_run_folder_holds_the_contract(genre_run):
    run = Run.open(genre_run)
    for name in RUN_FILES:
        assert (genre_run / name).is_file(), name
    card = run.card
    classes = card["task"]["classes"]
    assert classes == sorted(classes) and len(classes) >= 3
    assert card["backbone"]["name"] == "efficientnet_lite0" and card["backbone"]["weights"]["sha256"]
    assert card["backbone"]["mean"] == [0.5, 0.5, 0.5]
    for model in ("finetuned", "knn"):
        m = card["metrics"][model]
        for key in ("accuracy", "precision_macro", "recall_weighted", "f1_macro", "f1_weighted", "top3_accuracy"):
            assert 0.0 <= m[key] <= 1.0
        assert np.array(m["confusion"]).shape == (len(classes), len(classes))
        assert np.array(m["confusion"]).sum() == card["task"]["split_sizes"]["test"]
    assert card["metrics"]["knn"]["k"] in card["config"]["knn_ks"]


def test_predictions_agree_with_the_card(genre_run):
    run = Run.open(genre_run)
    pred = run.predictions()
    classes = run.classes
    assert list(pred.columns[:4]) == ["id", "true", "pred_finetuned", "pred_knn"]
    probs = pred[[f"finetuned:{c}" for c in classes]].to_numpy()
    assert np.allclose(probs.sum(1), 1, atol=1e-4)
    assert (np.array(classes)[probs.argmax(1)] == pred["pred_finetuned"]).all()
    acc = (pred["true"] == pred["pred_finetuned"]).mean()
    assert np.isclose(acc, run.card["metrics"]["finetuned"]["accuracy"])
    assert np.isclose((pred["true"] == pred["pred_knn"]).mean(), run.card["metrics"]["knn"]["accuracy"])


def test_weights_load_safely_and_reproduce_test_predictions(genre_run, demo_collection):
    state = torch.load(genre_run / "model.pt", weights_only=True)
    assert all(k.startswith(("block.", "pool.", "head.")) for k in state), "partial runs store the trained part"
    run = Run.open(genre_run)
    from artlab.explain.predictor import Predictor
    predictor = Predictor(run)
    pred = run.predictions().head(5)
    paths = run.paintings().set_index("id").loc[pred["id"], "path"]
    out = predictor.predict_files([demo_collection / p for p in paths])
    for row, p in zip(pred.itertuples(), out):
        assert p.finetuned == row.pred_finetuned
        expected = pred.loc[row.Index, [f"finetuned:{c}" for c in run.classes]].to_numpy(dtype=float)
        assert np.allclose(p.probs, expected, atol=1e-3)


def test_history_and_embeddings(genre_run):
    run = Run.open(genre_run)
    hist = run.history()
    assert {"epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr"} <= set(hist.columns)
    assert len(hist) == run.card["training"]["epochs_run"]
    assert hist.loc[hist["val_loss"].idxmin(), "epoch"] == run.card["training"]["best_epoch"]
    emb = run.embeddings()
    n = run.card["task"]["n_images"]
    assert emb["embeddings"].shape[0] == n == len(emb["ids"]) == len(emb["labels"]) == len(emb["split"])
    assert set(emb["split"]) == {"train", "val", "test"}
    assert len(run.paintings()) == n and run.thumbnail(emb["ids"][0]) is not None


@pytest.mark.train
def test_cli_demo_train_evaluate(tmp_path, capsys):
    """The issue's done-when, through the real CLI (few epochs to keep the suite fast)."""
    data, out = tmp_path / "D", tmp_path / "R"
    assert main(["data", "demo", "--out", str(data)]) == 0
    assert main(["train", "--collection", str(data), "--label", "genre", "--backbone", "efficientnet_lite0",
                 "--method", "partial", "--out", str(out), "--epochs", "2", "--cache-views", "1", "--no-umap"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--confusion"]) == 0
    text = capsys.readouterr().out
    assert "fine-tuned" in text and "kNN (k=" in text and "top-3 accuracy" in text and "confusion" in text
    assert not list(tmp_path.glob(".R.*")), "no staging debris after a finished run"


def test_cli_user_errors_are_one_line(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "missing")]) == 2
    assert main(["train", "--collection", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("artlab: ") for line in err)
    assert "manifest.csv" in err[1]


@pytest.mark.slow
def test_real_study_backbone_offline(tmp_path, monkeypatch, demo_collection):
    """`--backbone densenet121` as a user with internet runs it: weights through torchvision's cache in TORCH_HOME."""
    from artlab.model.backbones import get_backbone
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    spec = get_backbone("densenet121")
    target = spec.weights.cache_path()
    target.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(spec.build().state_dict(), target)
    out = tmp_path / "dense"
    assert main(["train", "--collection", str(demo_collection), "--label", "genre", "--backbone", "densenet121",
                 "--max-per-class", "5", "--epochs", "1", "--cache-views", "1", "--no-umap", "--out", str(out)]) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["backbone"]["weights"]["file"] == str(target)
    assert card["backbone"]["input_size"] == 224 and card["backbone"]["mean"][0] == pytest.approx(0.485)
    pd.read_csv(out / "predictions.csv")


def test_a_run_without_the_cache_computes_the_same_features(genre_run, demo_collection, tmp_path):
    """cache_views=0: no frozen-feature cache, so after training the runner passes over the images once, the shared
    frozen stem feeding both models. The kNN's features must equal those the cached run computed, and the stored
    predictions must be what the saved model gives."""
    from artlab.train.config import TrainConfig
    from artlab.explain.predictor import Predictor
    from artlab.train.runner import train_run
    cfg = TrainConfig(collection=str(demo_collection), label="genre", backbone="efficientnet_lite0", method="partial",
                      epochs=1, patience=1, cache_views=0)
    run = Run.open(train_run(cfg, tmp_path / "uncached", umap=False))
    cached = Run.open(genre_run)
    a, b = run.embeddings(), cached.embeddings()
    assert list(a["ids"]) == list(b["ids"])
    assert np.allclose(a["knn_embeddings"], b["knn_embeddings"], atol=1e-4)
    assert not np.allclose(a["embeddings"], b["embeddings"], atol=1e-2)  # different training, different model

    pred = run.predictions().head(4)
    paths = run.paintings().set_index("id").loc[pred["id"], "path"]
    out = Predictor(run).predict_files([demo_collection / p for p in paths])
    for (_, row), p in zip(pred.iterrows(), out):
        expected = row[[f"finetuned:{c}" for c in run.classes]].to_numpy(dtype=float)
        assert np.allclose(p.probs, expected, atol=1e-3)
