"""The two studies' protocols, and the plain sentences that say where a run departs from its study.

``deviations(card)`` is the one place that compares a run with the study it reproduces: the card's configuration
(its ``config``, the split and collection it used, the device it ran on) against ``GENRE`` or ``CULTURE``. Which study:
the label decides (genre, culture); any other label goes by the recipe (the three-layer head is the culture study's).
A sentence starts with what it is about ("augmentation: ..."), says what the run did and what the study did, so a
curator can read the list without knowing the code. Settings the papers leave open are listed too, as artlab's
choices, because a reader cannot tell a guess from a published setting otherwise.

Cards written before an option existed carry the behaviour of that time (``LEGACY``), so the list is computed alike
for old runs when they are read (artlab.runfolder). A card's ``config`` is its TrainConfig in full (``to_dict``), so
this module needs no defaults of its own: it sits below the run folder (which computes old cards' lists on read) and
so cannot import artlab.train; a setting a card does not carry is said as unknown, never guessed.
"""

from __future__ import annotations

import dataclasses



@dataclasses.dataclass(frozen=True)
class Protocol:
    study: str
    label: str
    data: str  # the collection, in words
    source: str  # a collection_source starting with this is the study's data
    classes: tuple[str, ...]
    backbones: tuple[str, ...]
    methods: tuple[str, ...]
    head: str
    optimizer: str
    schedulers: tuple[str, ...]
    split: tuple[float, float, float]
    epochs: int | None  # None: not given by the paper
    patience: int | None  # early stopping; None: the study does not stop early
    sizes: dict[str, int]  # paintings per split as the paper gives them (train/val/test; "around" for culture)
    sizes_words: str  # the same, in the paper's words, with its section


GENRE = Protocol(
    study="genre study", label="genre", data="WikiArt, four genres x 2,000 paintings", source="wikiart",
    classes=("landscape", "portrait", "sketch", "still life"), backbones=("densenet121",), methods=("partial",),
    head="linear", optimizer="adam", schedulers=("none",), split=(0.7, 0.15, 0.15), epochs=20, patience=5,
    sizes={"train": 5600, "val": 1200, "test": 1200}, sizes_words="5,600 / 1,200 / 1,200 (section 3)")

CULTURE = Protocol(
    study="culture study", label="culture", data="Met Open Access paintings of 11 cultures", source="met",
    classes=("American", "British", "Chinese", "Dutch", "Flemish", "French", "German", "Indian", "Italian", "Japanese",
             "Spanish"),
    backbones=("resnet50", "vgg16_bn", "alexnet"), methods=("finetune", "transfer", "scratch"), head="mlp3",
    optimizer="sgd", schedulers=("step", "plateau"), split=(0.8, 0.1, 0.1), epochs=None, patience=None,
    sizes={"train": 4000, "test": 600},
    sizes_words="around 4,000 for training (section 3.2) and around 600 for testing (section 4.1)")

#: How far a run's split may be from the paper's sizes before it is said (a demo run of 174 paintings always is).
SIZE_TOLERANCE = 0.2

#: What a card written before an option existed did: heads had Dropout(0.2), the geometry came from the head's layer,
#: partial and transfer runs cached 4 augmented views on any device.
LEGACY = {"dropout": 0.2, "embedding_layer": "head", "knn_metric": "cosine", "cache_views": 4}

METHOD_WORDS = {"partial": "partial fine-tuning (last block + head)", "finetune": "fine-tuning every layer",
                "transfer": "a frozen backbone with a trained head", "scratch": "training from random weights"}
SCHEDULER_WORDS = {"none": "no schedule", "step": "StepLR", "plateau": "ReduceLROnPlateau"}


def study_of(label: str, head: str) -> Protocol:
    if label in (GENRE.label, CULTURE.label):
        return GENRE if label == GENRE.label else CULTURE
    return CULTURE if head == CULTURE.head else GENRE


def deviations(card: dict) -> list[str]:
    """Plain sentences, one a departure of this run from its study's protocol (see the module docstring)."""
    cfg = {**LEGACY, **(card.get("config") or {})}
    task, training = card.get("task") or {}, card.get("training") or {}
    p = study_of(cfg.get("label", task.get("label", "")), cfg.get("head", ""))
    out = _data(p, task) + _sizes(p, task) + _balance(p, task) + _recipe(p, cfg) + _schedule(p, cfg)
    out += _split(p, cfg, task)
    out += _augmentation(p, cfg, training) + _head_and_geometry(p, cfg) + _knn(p, cfg)
    return out


def _data(p: Protocol, task: dict) -> list[str]:
    out = []
    source = str(task.get("collection_source") or "")
    if not source.startswith(p.source):
        out.append(f"data: {source or 'a collection of its own'} instead of the {p.study}'s {p.data}")
    classes = tuple(task.get("classes") or ())
    if classes and tuple(sorted(classes)) != tuple(sorted(p.classes)):
        missing, extra = sorted(set(p.classes) - set(classes)), sorted(set(classes) - set(p.classes))
        parts = ([f"without {', '.join(missing)}"] if missing else []) + ([f"with {', '.join(extra)}"] if extra else [])
        out.append(f"classes: {'; '.join(parts)} ({len(classes)} {p.label} classes; the study has "
                   f"{len(p.classes)})")
    return out


def _sizes(p: Protocol, task: dict) -> list[str]:
    """The paintings a split held against the paper's counts, when the card records them."""
    sizes = task.get("split_sizes") or {}
    if not sizes or all(abs(sizes.get(k, 0) - n) <= SIZE_TOLERANCE * n for k, n in p.sizes.items()):
        return []
    run = " / ".join(f"{sizes.get(k, 0):,}" for k in ("train", "val", "test"))
    return [f"paintings: {run} (train / validation / test) instead of the {p.study}'s {p.sizes_words}"]


def _balance(p: Protocol, task: dict) -> list[str]:
    """GenRe's classes are equally represented in every split (section 3); the culture study's are not (Table 1)."""
    train = [int((c or {}).get("train", 0)) for c in (task.get("per_class") or {}).values()]
    if p is not GENRE or len(train) < 2 or min(train) >= 0.9 * max(train):
        return []
    return [f"classes: {min(train)} to {max(train)} training paintings a class instead of the genre study's equal "
            "numbers (section 3)"]


def _recipe(p: Protocol, cfg: dict) -> list[str]:
    out = []
    if cfg.get("backbone") not in p.backbones:
        out.append(f"backbone: {cfg.get('backbone')} instead of {' / '.join(p.backbones)}")
    if cfg.get("method") not in p.methods:
        out.append(f"training: {METHOD_WORDS.get(cfg.get('method'), cfg.get('method'))} instead of "
                   + " or ".join(METHOD_WORDS[m] for m in p.methods))
    if cfg.get("head") != p.head:
        out.append(f"head: {cfg.get('head')} instead of {p.head}")
    if cfg.get("optimizer") != p.optimizer:
        out.append(f"optimizer: {cfg.get('optimizer')} instead of {p.optimizer}")
    lr = cfg.get("lr")
    lr = lr if lr is not None else (1e-3 if cfg.get("optimizer") == "adam" else 1e-2)
    words = f"learning rate {lr:g}" + (f", momentum {_g(cfg.get('momentum'))}" if cfg.get("optimizer") == "sgd" else "")
    out.append(f"not from the paper: {words} (artlab's choice; the {p.study} does not give it)")
    if cfg.get("class_weights"):
        out.append("loss: weighted by inverse class frequency (artlab's option; not in the study)")
    if cfg.get("max_per_class"):
        out.append(f"data: at most {cfg['max_per_class']} paintings a class (a subset)")
    return out


def _schedule(p: Protocol, cfg: dict) -> list[str]:
    out, sched = [], cfg.get("scheduler", "none")
    if sched not in p.schedulers:
        out.append(f"learning-rate schedule: {SCHEDULER_WORDS.get(sched, sched)} instead of "
                   + " or ".join(SCHEDULER_WORDS[s] for s in p.schedulers))
    if sched == "step":
        out.append(f"not from the paper: StepLR every {cfg.get('step_size')} epochs by {_g(cfg.get('gamma'))} "
                   "(artlab's choice)")
    elif sched == "plateau":
        out.append(f"not from the paper: ReduceLROnPlateau by {_g(cfg.get('gamma'))} after "
                   f"{cfg.get('plateau_patience')} epochs without a better validation loss (artlab's choice)")
    epochs, patience = cfg.get("epochs"), cfg.get("patience")
    kept = ("the best-validation weights kept" if cfg.get("restore_best", True)
            else "the last epoch's weights kept")
    if p.patience is None:
        if patience is not None and epochs is not None and patience >= epochs:
            out.append(f"epochs: {epochs}, {kept}: the {p.study} gives no number of epochs (section 3.4: several "
                       "were tried)")
        else:
            out.append(f"early stopping after {patience} epochs without a better validation loss, and {kept} "
                       f"(at most {epochs} epochs): not in the {p.study}'s protocol")
    elif patience is not None and epochs is not None and patience >= epochs:
        out.append(f"epochs: {epochs} without early stopping, {kept}, instead of the study's at most {p.epochs} with "
                   f"early stopping after {p.patience}")
    elif (epochs, patience) != (p.epochs, p.patience):
        out.append(f"epochs: at most {epochs}, early stopping after {patience}, instead of the study's {p.epochs} "
                   f"and {p.patience}")
    if p.patience is not None and cfg.get("restore_best", True) and not (patience or 0) >= (epochs or 1):
        out.append(f"not from the paper: {kept} when training stops (the {p.study} says when it stops, not which "
                   "weights it keeps)")
    return out


def _split(p: Protocol, cfg: dict, task: dict) -> list[str]:
    out = []
    ratios = tuple(float(r) for r in (cfg.get("split") or task.get("split_ratios") or p.split))
    if any(abs(a - b) > 1e-9 for a, b in zip(ratios, p.split)):
        out.append(f"split: {_ratios(ratios)} instead of {_ratios(p.split)}")
    if cfg.get("group_by_artist", task.get("group_by_artist")):
        out.append("split: artist-disjoint (no named artist in two of train, validation and test) instead of the "
                   "study's random split, which lets a model recognise the painter; a stricter test")
    return out


def _g(value) -> str:
    return "unknown" if value is None else f"{value:g}"


def _ratios(r) -> str:
    return "/".join(f"{100 * x:.0f}" for x in r)


def _augmentation(p: Protocol, cfg: dict, training: dict) -> list[str]:
    if cfg.get("method") not in ("partial", "transfer"):
        return []
    views = training.get("cache_views", cfg.get("cache_views"))
    if views is None:  # neither the training record nor the config says (no card artlab wrote)
        return ["augmentation: the card does not record whether augmented views were cached"]
    if not views:
        return []
    why = "CPU shortcut" if not str(training.get("device", "cpu")).startswith("cuda") else "chosen"
    return [f"augmentation: {views} cached views per painting instead of a fresh crop each epoch ({why})"]


def _head_and_geometry(p: Protocol, cfg: dict) -> list[str]:
    out = []
    if cfg.get("dropout"):
        out.append(f"head: dropout {cfg['dropout']:g}, which the study does not use")
    if p is CULTURE and cfg.get("embedding_layer") == "head":
        out.append("culture geometry: class centroids of the head's penultimate layer instead of the backbone's "
                   "pooled features (the study's latent representation)")
    return out


def _knn(p: Protocol, cfg: dict) -> list[str]:
    out = []
    if p is GENRE and cfg.get("knn_metric", "cosine") == "cosine":
        out.append("kNN distance: cosine on L2-normalised features; the study does not name it, and scikit-learn's "
                   "default, Euclidean (--knn-metric euclidean), is the likely one")
    ks = cfg.get("knn_ks") or ()
    if len(ks) > 1:
        out.append(f"not from the paper: the kNN's k chosen on validation accuracy among {', '.join(map(str, ks))} "
                   "(artlab's choice)")
    elif ks:
        out.append(f"not from the paper: the kNN's k set to {ks[0]} (artlab's choice; one value, not chosen on "
                   "validation)")
    return out
