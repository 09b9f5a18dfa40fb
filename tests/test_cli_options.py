"""``artlab train``'s options come from TrainConfig's fields: each one settable, each default the dataclass's."""

from __future__ import annotations

import dataclasses

import pytest

from artlab.cli.commands import build_parser
from artlab.cli.train_options import CHOICE_FIELDS, _choices, config_from_args, flag
from artlab.errors import ArtlabError
from artlab.train.config import TrainConfig

BASE = ["train", "--collection", "data/x", "--out", "runs/x"]
#: A value different from the default for every field, as it is typed on a command line, and as the config holds it.
OTHER = {
    "label": ("culture", "culture"), "backbone": ("resnet50", "resnet50"), "method": ("transfer", "transfer"),
    "head": ("mlp3", "mlp3"), "optimizer": ("sgd", "sgd"), "lr": ("0.05", 0.05), "momentum": ("0.5", 0.5),
    "weight_decay": ("0.001", 0.001), "scheduler": ("step", "step"), "step_size": ("3", 3), "gamma": ("0.5", 0.5),
    "plateau_patience": ("4", 4), "epochs": ("7", 7), "patience": ("2", 2), "batch_size": ("8", 8), "seed": ("3", 3),
    "split": ("0.6,0.2,0.2", (0.6, 0.2, 0.2)), "group_by_artist": (None, True), "min_per_class": ("2", 2),
    "group_duplicates": (None, True),
    "max_per_class": ("40", 40), "classes": ("portrait,landscape", ("portrait", "landscape")),
    "class_weights": (None, True), "cache_views": ("0", 0), "dropout": ("0.3", 0.3),
    "knn_metric": ("euclidean", "euclidean"), "embedding_layer": ("head", "head"), "knn_ks": ("1,5", (1, 5)),
    "knn_vote": ("balanced", "balanced"), "views": ("whole,whole-flip", ("whole", "whole-flip")),
    "restore_best": (None, False), "calibrate_on": ("cv", "cv"), "selected_by": ("5 folds", "5 folds"),
    "weights_file": ("w.pth", "w.pth"), "device": ("cpu", "cpu"), "workers": ("2", 2),
}
#: Fields that need another option to be valid: test-time views and cross-validated calibration need a frozen
#: backbone.
CONTEXT = {"views": ("--method", "transfer"), "calibrate_on": ("--method", "transfer")}


def parse(*extra: str) -> TrainConfig:
    return config_from_args(build_parser().parse_args(BASE + list(extra)))


def test_defaults_are_the_dataclass_defaults():
    assert parse() == TrainConfig(collection="data/x")
    assert parse("--label", "culture") == TrainConfig(collection="data/x", label="culture", split=(0.8, 0.1, 0.1))


def test_every_field_is_settable():
    fields = [f for f in dataclasses.fields(TrainConfig) if f.name != "collection"]
    assert {f.name for f in fields} == set(OTHER), "a TrainConfig field without a test value here"
    for f in fields:
        typed, held = OTHER[f.name]
        cfg = parse(flag(f), *([typed] if typed is not None else []), *CONTEXT.get(f.name, ()))
        assert getattr(cfg, f.name) == held != getattr(TrainConfig(collection="x"), f.name), f.name


@pytest.mark.parametrize("args, message", [(["--split", "0.5,0.5"], "three comma-separated numbers"),
                                           (["--split", "a,b,c"], "three comma-separated numbers"),
                                           (["--knn-ks", "1,x"], "comma-separated ints")])
def test_bad_lists_are_one_plain_error(args, message):
    with pytest.raises(ArtlabError, match=message):
        parse(*args)


def test_the_options_the_papers_leave_open_take_their_choices_only():
    assert parse("--dropout", "0").dropout == 0.0
    for option in ("--knn-metric", "--embedding-layer"):
        with pytest.raises(SystemExit):  # argparse's own "invalid choice" line
            parse(option, "manhattan")


def test_the_options_named_as_choices_are_the_ones_the_registries_give_choices_for():
    """CHOICE_FIELDS is spelled out so that the parser is built without torch; it must name what _choices reads."""
    assert sorted(CHOICE_FIELDS) == sorted(_choices())


@pytest.mark.parametrize("name", sorted(OTHER))
@pytest.mark.parametrize("label", ["genre", "culture"])
def test_the_retrain_command_gives_back_the_configuration(name, label):
    """The command the app shows beside "N corrections since this model was trained" trains the same configuration:
    every field away from its default (under either label: culture's default split is the culture study's), and
    the defaults themselves, parse back to the card's config."""
    import shlex

    from artlab.train.command import retrain_command, typed_program
    context = {CONTEXT[name][0][2:]: CONTEXT[name][1]} if name in CONTEXT else {}
    for values in ({}, {name: OTHER[name][1], **context}):
        cfg = TrainConfig(**{"collection": "data/x", "label": label, **values})
        words = shlex.split(retrain_command({"config": cfg.to_dict()}, "data/my collection", "runs/x"))
        assert words[:2] == [typed_program(), "train"] and words[words.index("--out") + 1] == "runs/x"
        again = config_from_args(build_parser().parse_args(words[1:]))
        assert again.collection == "data/my collection"
        assert {**again.to_dict(), "collection": ""} == {**cfg.to_dict(), "collection": ""}


def test_the_retrain_command_is_typed_as_the_readme_types_it(tmp_path, monkeypatch):
    """In a clone set up by `make app` (a .venv/bin/artlab beside the app) the app's retrain command starts with
    .venv/bin/artlab, as the README's commands do (artlab is not on the PATH there); elsewhere with artlab."""
    from artlab.train.command import VENV_ARTLAB, retrain_command, typed_program
    monkeypatch.chdir(tmp_path)
    card = {"config": TrainConfig(collection="data/x").to_dict()}
    assert typed_program() == "artlab" and retrain_command(card, "data/x", "runs/x").startswith("artlab train ")
    (tmp_path / VENV_ARTLAB).parent.mkdir(parents=True)
    (tmp_path / VENV_ARTLAB).write_text("#!/bin/sh\n")
    assert retrain_command(card, "data/x", "runs/x").startswith(".venv/bin/artlab train --collection data/x ")
    assert retrain_command(card, "data/x", "runs/x", program="artlab").startswith("artlab train ")
