"""A run's honest probabilities (docs/calibration.md): the temperature and the conformal threshold, fitted on
predictions that training did not use, and the "unfamiliar painting" threshold; the card's ``calibration``,
``conformal`` and ``unfamiliar``.

Where the held-out predictions come from (``TrainConfig.calibrate_on``):

* ``validation``: the run's own validation split (the default; a real run's 1,200 validation paintings fit a
  temperature well);
* ``cv``: out-of-fold predictions of the run's own recipe over its training and validation paintings, 5
  artist-grouped folds (artlab.train.selection's folds and head training, on the run's cached frozen features): what
  the shipped demo runs use, whose 16-18 validation paintings cannot fit anything. The test paintings are left out
  of the folds, so the test figures stay held out (the selection's cross-validation, which covers the whole
  collection, would have seen them).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from artlab.errors import ConfigError
from artlab.model.knn import l2_normalise
from artlab.report.calibration import calibrate, familiarity, softmax, unfamiliar_entry
from artlab.train.frozen import FrozenCache
from artlab.train.selection import Candidate, artist_folds, artist_groups, train_head

CV_FOLDS = 5


def held_out(cfg, y: np.ndarray, idx: dict[str, np.ndarray], artists, logits: np.ndarray, pooled: np.ndarray,
             frozen: FrozenCache | None) -> tuple[np.ndarray, np.ndarray, str]:
    """(logits, true classes, words saying where they come from) of the held-out paintings. ``pooled``: every
    painting's frozen pooled features (a transfer run's head input); ``frozen``: the cache, whose augmented views of
    the training paintings the folds train on too (None: a GPU run without a cache trains them on ``pooled``)."""
    if cfg.calibrate_on == "validation":
        return logits[idx["val"]], y[idx["val"]], "the validation split"
    if cfg.method != "transfer":
        raise ConfigError("calibrate_on 'cv' needs method 'transfer' (its folds train heads on frozen features)")
    rows = np.concatenate([idx["train"], idx["val"]])
    n_classes = logits.shape[1]
    train_pos = {int(r): p for p, r in enumerate(idx["train"])}  # a training row's place in frozen.views
    views = frozen.views.shape[0] if frozen is not None else 0
    feats = (frozen.all if frozen is not None else torch.from_numpy(np.asarray(pooled)))[rows].float()
    stacked = feats.unsqueeze(0).repeat(max(views, 1), 1, 1)
    for j, r in enumerate(rows):
        if views and int(r) in train_pos:
            stacked[:, j] = frozen.views[:, train_pos[int(r)]].float()
    yr = y[rows]
    with warnings.catch_warnings():  # a class with fewer paintings than folds: said by the card's fitted_on.n
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        folds = artist_folds(yr, artists.iloc[rows].reset_index(drop=True), CV_FOLDS, cfg.seed)
    recipe = Candidate(cfg.backbone, "centre", cfg.head, cfg.weight_decay, cfg.class_weights, cfg.epochs)
    out = np.zeros((len(rows), n_classes))
    for f in np.unique(folds):
        test, train = np.flatnonzero(folds == f), np.flatnonzero(folds != f)
        head = train_head(stacked[:, train].numpy(), yr[train], n_classes, recipe, seed=cfg.seed * 100 + int(f))
        with torch.no_grad():
            out[test] = head(feats[test]).numpy()
    return out, yr, (f"out-of-fold predictions of the run's recipe over its training and validation paintings "
                     f"({CV_FOLDS} artist-grouped folds)")


def reference_familiarity(knn_feats: np.ndarray, idx: dict[str, np.ndarray], artists, k: int) -> np.ndarray:
    """Each training and validation painting's familiarity against the training paintings by other artists (an
    unknown artist's painting: all but itself), as a painting by an unseen artist meets the run."""
    unit = l2_normalise(knn_feats)
    train = idx["train"]
    rows = np.concatenate([train, idx["val"]])
    groups = artist_groups(artists.reset_index(drop=True))
    sims = unit[rows] @ unit[train].T
    sims[groups[rows][:, None] == groups[train][None, :]] = -np.inf
    top = -np.sort(-sims, axis=1)[:, :k]
    ok = np.isfinite(top).all(1)
    return familiarity(top[ok], k)


def test_familiarity(knn_feats: np.ndarray, idx: dict[str, np.ndarray], k: int) -> np.ndarray:
    unit = l2_normalise(knn_feats)
    sims = unit[idx["test"]] @ unit[idx["train"]].T
    return familiarity(-np.sort(-sims, axis=1), k)


def card_entries(cfg, y: np.ndarray, idx: dict[str, np.ndarray], artists, logits: np.ndarray, knn_feats: np.ndarray,
                 k: int, frozen: FrozenCache | None) -> tuple[np.ndarray, dict]:
    """(every painting's calibrated probabilities, the card's calibration, conformal and unfamiliar entries)."""
    cal_logits, cal_y, source = held_out(cfg, y, idx, artists, logits, knn_feats, frozen)
    t, calibration, conformal = calibrate(cal_logits, cal_y, logits[idx["test"]], y[idx["test"]], source)
    unfamiliar = unfamiliar_entry(reference_familiarity(knn_feats, idx, artists, k),
                                  test_familiarity(knn_feats, idx, k), k,
                                  "the training and validation paintings' own (each against the training paintings "
                                  "of other artists)")
    return softmax(logits, t), {"calibration": calibration, "conformal": conformal, "unfamiliar": unfamiliar}
