"""``artlab train``'s options, generated from TrainConfig's fields: every field is settable, and its default is the
dataclass's (stated once, there). Only the help texts and the choices live here; the few spellings that differ from
the field's name are in artlab/train/command.py, which writes a configuration back as a command line."""

from __future__ import annotations

import argparse
import dataclasses

from artlab.errors import ArtlabError
from artlab.train.command import CULTURE_SPLIT, flag
from artlab.train.config import TrainConfig

HELP = {
    "collection": "collection folder (with manifest.csv)",
    "label": "label column: genre or culture",
    "lr": "learning rate (default 1e-3 Adam, 1e-2 SGD)",
    "momentum": "SGD momentum",
    "weight_decay": "L2 weight decay",
    "step_size": "StepLR: epochs between learning-rate drops",
    "gamma": "StepLR / ReduceLROnPlateau: the factor the learning rate is multiplied by",
    "plateau_patience": "ReduceLROnPlateau: epochs without a better val loss before the learning rate drops",
    "patience": "early stopping: epochs without a better val loss",
    "split": "train,val,test ratios (default 0.7,0.15,0.15; culture 0.8,0.1,0.1)",
    "group_by_artist": "artist-disjoint splits",
    "group_duplicates": "keep copies of one painting (identical files, near-identical pictures) in one split",
    "classes": "comma-separated subset of classes",
    "max_per_class": "at most this many paintings of a class (default: all of them)",
    "class_weights": "weight the loss by inverse class frequency",
    "cache_views": "augmented views cached for partial/transfer (0: a fresh augmentation every epoch, the studies' "
                   "way; default 0 on CUDA, 4 on a CPU)",
    "dropout": "dropout in the head (default 0: the studies use none)",
    "knn_metric": "the kNN baseline's distance (default cosine; euclidean is scikit-learn's default)",
    "embedding_layer": "features of the class geometry: the backbone's pooled features (default, the culture study's) "
                       "or the head's penultimate layer",
    "knn_ks": "comma-separated k values the kNN baseline chooses from on validation accuracy",
    "knn_vote": "how the kNN neighbours vote (distance: 1 / cosine distance; balanced: 1 / class share)",
    "views": "comma-separated test-time views whose features are averaged (transfer only): centre, centre-flip, "
             "whole (letterboxed), whole-flip",
    "restore_best": "keep the last epoch's weights, not those of the lowest validation loss",
    "calibrate_on": "where the temperature and the prediction sets are fitted: the validation split, or cv "
                    "(out-of-fold predictions over the training and validation paintings; transfer only)",
    "selected_by": "how the recipe was chosen (e.g. cross-validated figures), copied to the card",
    "weights_file": "a local file of the backbone's ImageNet weights",
    "workers": "data loader worker processes",
}


CHOICE_FIELDS = ("backbone", "method", "head", "optimizer", "scheduler", "knn_metric", "embedding_layer", "knn_vote",
                 "calibrate_on")


def _choices() -> dict[str, tuple[str, ...]]:
    from artlab.model.backbones import backbone_names
    from artlab.model.classifier import HEADS, METHODS
    from artlab.model.knn import VOTES
    from artlab.train.config import CALIBRATION_SOURCES, EMBEDDING_LAYERS, KNN_METRICS, OPTIMIZERS, SCHEDULERS
    return {"backbone": tuple(backbone_names()), "method": METHODS, "head": HEADS, "optimizer": OPTIMIZERS,
            "scheduler": SCHEDULERS, "knn_metric": KNN_METRICS, "embedding_layer": EMBEDDING_LAYERS,
            "knn_vote": VOTES, "calibrate_on": CALIBRATION_SOURCES}


class lazy_choices:  # noqa: N801 (used like a function: lazy_choices('backbone'))
    """One option's choices, read from the registries on first use. argparse asks for them only when the option is
    given or help is printed, so a command that trains nothing (`artlab data ...`) never imports torch."""

    def __init__(self, name: str):
        self.name, self._items = name, None

    def _load(self) -> tuple[str, ...]:
        if self._items is None:
            self._items = _choices()[self.name]
        return self._items

    def __contains__(self, value) -> bool:
        return value in self._load()

    def __iter__(self):
        return iter(self._load())


def _kind(field: dataclasses.Field) -> str:
    """'bool', 'int', 'float', 'str', or a list of them: 'ints', 'floats', 'strs' (the field's annotation, a string
    under ``from __future__ import annotations``)."""
    t = str(field.type).replace(" | None", "").replace("Optional[", "").strip()
    if t.startswith("tuple["):
        inner = t[len("tuple["):].split(",")[0].strip(" ]")
        return inner + "s"
    return t


def _help(field: dataclasses.Field) -> str:
    """The field's help, with its choices (argparse fills %(choices)s) and the dataclass's default when the text does
    not already state one."""
    text = HELP.get(field.name, "")
    said = ["one of: %(choices)s"] if field.name in CHOICE_FIELDS else []
    if not (field.default is dataclasses.MISSING or "default" in text or field.type == "bool"):
        default = field.default
        if default is not None:
            said.append(f"default {','.join(map(str, default)) if isinstance(default, tuple) else default}")
    return f"{text} ({'; '.join(said)})".strip() if said else (text or None)


def add_train_options(p: argparse.ArgumentParser) -> None:
    for field in dataclasses.fields(TrainConfig):
        kind, name = _kind(field), field.name
        kwargs: dict = {"help": _help(field), "dest": name}
        if field.default is dataclasses.MISSING:
            kwargs["required"] = True
        if kind == "bool":
            p.add_argument(flag(field), action="store_false" if field.default is True else "store_true",
                           default=None, **kwargs)
            continue
        if kind in ("int", "float"):
            kwargs["type"] = int if kind == "int" else float
        if name in CHOICE_FIELDS:  # metavar given, or argparse would read the choices now to name the value
            kwargs.update(choices=lazy_choices(name), metavar=name.upper())
        kwargs["default"] = None  # filled from TrainConfig in config_from_args: one place for every default
        p.add_argument(flag(field), **kwargs)


def _listed(text: str, kind: str, option: str):
    convert = {"ints": int, "floats": float, "strs": str}[kind]
    try:
        return tuple(convert(x.strip()) for x in text.split(",") if x.strip())
    except ValueError:
        what = "three comma-separated numbers" if option == "--split" else f"comma-separated {kind[:-1]}s"
        raise ArtlabError(f"{option} takes {what}, got {text!r}") from None


def config_from_args(a: argparse.Namespace) -> TrainConfig:
    values = {}
    for field in dataclasses.fields(TrainConfig):
        value = getattr(a, field.name)
        if value is None:
            continue  # the dataclass's default
        kind = _kind(field)
        values[field.name] = _listed(value, kind, flag(field)) if kind.endswith("s") else value
    if "split" in values and len(values["split"]) != 3:
        raise ArtlabError(f"--split takes three comma-separated numbers, got {a.split!r}")
    if "split" not in values and values.get("label") == "culture":
        values["split"] = CULTURE_SPLIT
    return TrainConfig(**values)
