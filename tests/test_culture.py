"""The culture study's recipe end to end: mlp3 head, SGD, StepLR / ReduceLROnPlateau, class weights, 80/10/10,
top-1 and top-3 for both models, through the library and the real CLI, on real CC0 paintings."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from artlab.train import runner
from artlab.model.backbones import Parts
from artlab.cli import main
from artlab.train.config import TrainConfig
from artlab.train.data import class_weights, make_task
from artlab.model.classifier import Classifier, Head
from artlab.progress import Progress
from artlab.runfolder import RUN_FILES, Run
from artlab.train.loop import fit, make_optimizer, make_scheduler


def test_culture_run_card(culture_run):
    card = Run.open(culture_run).card
    cfg = card["config"]
    assert (card["task"]["label"], card["method"], card["head"]) == ("culture", "transfer", "mlp3")
    assert (cfg["optimizer"], cfg["scheduler"], cfg["split"]) == ("sgd", "plateau", [0.8, 0.1, 0.1])
    for model in ("finetuned", "knn"):
        m = card["metrics"][model]
        assert 0 <= m["accuracy"] <= m["top3_accuracy"] <= 1, "top-3 can only add to top-1"
        assert set(m["per_class"]) == set(card["task"]["classes"])
        for figures in m["per_class"].values():
            assert {"precision", "recall", "f1", "support"} <= set(figures)


def test_culture_split_is_80_10_10(culture_run):
    task = Run.open(culture_run).card["task"]
    sizes, n = task["split_sizes"], task["n_images"]
    assert sum(sizes.values()) == n
    assert abs(sizes["train"] / n - 0.8) < 0.06 and abs(sizes["test"] / n - 0.1) < 0.05
    for c, counts in task["per_class"].items():
        assert counts["val"] >= 1 and counts["test"] >= 1, c  # every class is seen in validation and test
        assert counts["train"] >= counts["val"] + counts["test"], c
    assert sum(c["test"] for c in task["per_class"].values()) == sizes["test"]


def test_class_weights_are_inverse_frequency_with_mean_one():
    w = class_weights(np.array([0, 0, 0, 1]), 3)  # counts 3, 1, 0
    assert torch.allclose(w, torch.tensor([0.5, 1.5, 0.0]))  # 1/3 : 1, scaled to mean 1 over the present classes
    y = np.repeat([0, 1, 2, 3], [50, 10, 5, 1])
    w = class_weights(y, 4).numpy()
    assert np.isclose(w.mean(), 1.0)
    assert np.allclose(w * np.bincount(y), (w * np.bincount(y))[0]), "each class weighs the same in total"


@pytest.mark.slow
def test_cli_culture_recipe_with_class_weights(demo_collection, tmp_path, capsys, monkeypatch):
    """`artlab train` with the culture recipe writes a complete run; --class-weights weights its loss."""
    seen = {}
    real_fit = runner.fit

    def spy(model, forward, train_b, val_b, n_train, cfg, device, criterion, *args, **kwargs):
        seen["weight"] = None if criterion.weight is None else criterion.weight.cpu()
        return real_fit(model, forward, train_b, val_b, n_train, cfg, device, criterion, *args, **kwargs)

    monkeypatch.setattr(runner, "fit", spy)
    out = tmp_path / "R"
    assert main(["train", "--collection", str(demo_collection), "--label", "culture", "--backbone",
                 "efficientnet_lite0", "--method", "transfer", "--head", "mlp3", "--optimizer", "sgd",
                 "--scheduler", "plateau", "--out", str(out), "--epochs", "2", "--no-umap",
                 "--cache-views", "1", "--class-weights"]) == 0
    printed = capsys.readouterr().out
    assert "top-3 accuracy" in printed and "accuracy" in printed
    run = Run.open(out)
    assert all((out / f).is_file() for f in RUN_FILES)
    cfg = run.card["config"]
    assert cfg["class_weights"] and cfg["split"] == [0.8, 0.1, 0.1] and cfg["head"] == "mlp3"
    assert len(run.history()) == 2

    task = make_task(TrainConfig.from_dict(cfg))
    train_y = task.rows("train")["y"].to_numpy()
    expected = class_weights(train_y, len(task.classes))
    assert seen["weight"] is not None and torch.allclose(seen["weight"], expected)
    assert not torch.allclose(expected, torch.ones_like(expected)), "the demo cultures are imbalanced"
    assert expected[np.bincount(train_y).argmax()] == expected.min(), "the commonest culture weighs least"


# --- schedulers ---------------------------------------------------------------------------------------------------

def _cfg(**kw) -> TrainConfig:
    return TrainConfig(collection="unused", optimizer="sgd", **kw)


def _lrs_after(cfg: TrainConfig, losses) -> list[float]:
    opt = make_optimizer([nn.Parameter(torch.zeros(1))], cfg)
    sched = make_scheduler(opt, cfg)
    opt.step()  # no gradients, so a no-op; torch warns when a scheduler steps before its optimizer ever did
    lrs = []
    for loss in losses:
        lrs.append(opt.param_groups[0]["lr"])
        sched.step(loss) if cfg.scheduler == "plateau" else sched.step()
    return lrs


def test_make_scheduler_step():
    lrs = _lrs_after(_cfg(lr=1.0, scheduler="step", step_size=2, gamma=0.1), [0.0] * 6)
    assert np.allclose(lrs, [1, 1, 0.1, 0.1, 0.01, 0.01])


def test_make_scheduler_plateau():
    # Better, better, then flat: after plateau_patience (=2) epochs without improvement, the next flat one cuts.
    lrs = _lrs_after(_cfg(lr=1.0, scheduler="plateau", plateau_patience=2, gamma=0.5),
                     [3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 1.0])
    assert np.allclose(lrs, [1, 1, 1, 1, 1, 0.5, 0.5])


def test_no_scheduler():
    assert make_scheduler(make_optimizer([nn.Parameter(torch.zeros(1))], _cfg()), _cfg()) is None


def _tiny_fit(cfg: TrainConfig, val_shift: int = 0) -> pd.DataFrame:
    """The real training loop on a tiny classifier and fixed random data: returns its history.

    ``val_shift`` relabels the validation copy of the training data (y + shift): learning the training labels then
    makes the validation loss worse every epoch, a plateau by construction.
    """
    torch.manual_seed(0)
    parts = Parts(stem=nn.Identity(), block=nn.Linear(6, 6), pool=nn.Identity(), cam_layer_path="block")
    model = Classifier(parts, Head(cfg.head, 6, 3))
    y = torch.arange(24) % 3
    x = torch.cat([nn.functional.one_hot(y, 3) * 3.0, torch.zeros(24, 3)], dim=1) + 0.1 * torch.randn(24, 6)
    train = lambda: iter([(x[:12], y[:12]), (x[12:], y[12:])])  # noqa: E731
    val = lambda: iter([(x, (y + val_shift) % 3)])  # noqa: E731
    result = fit(model, model, train, val, 24, cfg, torch.device("cpu"), nn.CrossEntropyLoss(), Progress())
    return pd.DataFrame(result.history)


def test_fit_steps_the_lr_with_steplr():
    hist = _tiny_fit(_cfg(method="finetune", lr=0.1, scheduler="step", step_size=2, gamma=0.5, epochs=5,
                          patience=10))
    assert np.allclose(hist["lr"], [0.1, 0.1, 0.05, 0.05, 0.025])


def test_fit_cuts_the_lr_on_a_plateau():
    hist = _tiny_fit(_cfg(method="finetune", lr=0.5, scheduler="plateau", plateau_patience=1, gamma=0.1, epochs=5,
                          patience=10), val_shift=1)
    assert hist["best"].tolist() == [True, False, False, False, False], "validation loss never improves"
    # epochs 2 and 3 without improvement: more than plateau_patience (1), so epoch 4 runs at lr * gamma
    assert np.allclose(hist["lr"], [0.5, 0.5, 0.5, 0.05, 0.05])


def test_early_stopping_on_a_plateau():
    hist = _tiny_fit(_cfg(method="finetune", lr=0.5, epochs=10, patience=3), val_shift=1)
    assert len(hist) == 4, "stops after `patience` epochs without a better validation loss"


@pytest.mark.slow
def test_steplr_in_a_real_run(demo_collection, tmp_path):
    """history.csv of a real culture run records the StepLR decay."""
    cfg = TrainConfig(collection=str(demo_collection), label="culture", method="transfer", head="mlp3",
                      optimizer="sgd", lr=0.02, scheduler="step", step_size=1, gamma=0.5, epochs=3, patience=5,
                      split=(0.8, 0.1, 0.1), cache_views=1, classes=("Dutch", "French", "Italian"), max_per_class=12)
    out = runner.train_run(cfg, tmp_path / "step", umap=False)
    hist = pd.read_csv(out / "history.csv")
    assert np.allclose(hist["lr"], [0.02, 0.01, 0.005])
    assert json.loads((out / "card.json").read_text())["config"]["scheduler"] == "step"
