"""Honest probabilities: calibration error, temperature scaling, split-conformal prediction sets and the
"unfamiliar painting" threshold, as small pure functions of arrays (docs/calibration.md).

* **Temperature scaling** (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017): one number T divides
  the logits, fitted by minimising the negative log-likelihood on predictions training did not use. It never changes
  which class comes first (accuracy, top-3 and the confusion matrix stay as they were), it has one parameter, so a
  few dozen held-out paintings can fit it, and Guo et al. found it the best of the post-hoc methods they compared on
  image classifiers. scikit-learn 1.9 has it (``CalibratedClassifierCV(method="temperature")``) but only around an
  estimator, and it fails when a class is missing from the calibration paintings (an IndexError in
  ``cross_val_predict``; a demo validation split holds one still life); the fit is the same one-dimensional
  minimisation over log T (scipy's ``minimize_scalar``), written here.
* **Split-conformal sets** (Vovk et al. 2005; the LAC score of Sadinle, Lei and Wasserman, JASA 2019): the score of a
  held-out painting is 1 - (calibrated probability of its true class); the threshold is the
  ceil((n + 1)(1 - alpha))-th smallest of the n scores; a new painting's set is every class whose score is at most
  the threshold (and never empty: the most probable class is always in it). For exchangeable paintings the true class
  is in the set with probability at least 1 - alpha.
* **ECE**: top-label expected calibration error over 10 equal-width confidence bins (Guo et al. 2017, eq. 3).
"""

from __future__ import annotations

import math

import numpy as np

BINS = 10
SMALL = 50  # fewer calibration paintings than this: the sets' guarantee is loose, and the app says so
EPS = 1e-12


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def logits_of(probs: np.ndarray) -> np.ndarray:
    """Logits up to a per-row constant (all softmax and temperature scaling need) from probabilities."""
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), EPS, None))


def ece(probs: np.ndarray, y: np.ndarray, bins: int = BINS) -> float:
    """Top-label expected calibration error: sum over equal-width confidence bins of (share of paintings) x
    |accuracy - mean confidence|."""
    probs, y = np.asarray(probs, dtype=np.float64), np.asarray(y)
    if not len(y):
        return 0.0
    conf, right = probs.max(1), probs.argmax(1) == y
    which = np.minimum((conf * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.mean() * abs(right[m].mean() - conf[m].mean())
    return float(total)


def reliability(probs: np.ndarray, y: np.ndarray, bins: int = BINS) -> list[dict]:
    """Per non-empty confidence bin: its range, how many paintings, their mean stated confidence and how often the
    top answer was right (a reliability diagram's points)."""
    probs, y = np.asarray(probs, dtype=np.float64), np.asarray(y)
    conf, right = probs.max(1), probs.argmax(1) == y
    which = np.minimum((conf * bins).astype(int), bins - 1)
    return [{"low": b / bins, "high": (b + 1) / bins, "n": int((which == b).sum()),
             "confidence": float(conf[which == b].mean()), "accuracy": float(right[which == b].mean())}
            for b in range(bins) if (which == b).any()]


def nll(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class (natural log)."""
    p = np.asarray(probs, dtype=np.float64)[np.arange(len(y)), np.asarray(y)]
    return float(-np.mean(np.log(np.clip(p, EPS, None)))) if len(y) else 0.0


def brier(probs: np.ndarray, y: np.ndarray) -> float:
    """Multi-class Brier score: mean over paintings of the squared distance to the one-hot truth (0 best, 2 worst)."""
    probs = np.asarray(probs, dtype=np.float64)
    if not len(y):
        return 0.0
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(y)), np.asarray(y)] = 1.0
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def scores(probs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return {"ece": round(ece(probs, y), 4), "nll": round(nll(probs, y), 4), "brier": round(brier(probs, y), 4)}


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T > 0 minimising the mean NLL of softmax(logits / T) on held-out predictions (searched over log T in
    [-5, 5]); 1.0 when there is nothing to fit on."""
    from scipy.optimize import minimize_scalar
    z, y = np.asarray(logits, dtype=np.float64), np.asarray(y)
    if len(y) == 0:
        return 1.0
    z = z - z.max(axis=1, keepdims=True)

    def loss(log_t: float) -> float:
        s = z / math.exp(log_t)
        return float(np.mean(np.log(np.exp(s - s.max(1, keepdims=True)).sum(1)) + s.max(1) - s[np.arange(len(y)), y]))

    res = minimize_scalar(loss, bounds=(-5.0, 5.0), method="bounded", options={"xatol": 1e-6})
    return float(math.exp(res.x))


def cross_fitted(probs: np.ndarray, y: np.ndarray, assignment: np.ndarray) -> dict[str, float]:
    """Out-of-fold probabilities' ECE and log loss, raw and after temperature scaling, cross-fitted: each fold's
    predictions are scaled by the temperature fitted on the other folds' (no painting calibrates itself); and the
    temperature fitted on them all."""
    logits, scaled = logits_of(probs), np.zeros_like(probs, dtype=np.float64)
    for f in np.unique(assignment):
        mine, others = assignment == f, assignment != f
        scaled[mine] = softmax(logits[mine], fit_temperature(logits[others], y[others]))
    return {"ece_raw": ece(probs, y), "ece": ece(scaled, y), "log_loss_raw": nll(probs, y), "log_loss": nll(scaled, y),
            "temperature": fit_temperature(logits, y)}


# --- split-conformal sets -----------------------------------------------------------------------------------------

def conformal_scores(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """LAC nonconformity: 1 - the probability given to the true class."""
    return 1.0 - np.asarray(probs, dtype=np.float64)[np.arange(len(y)), np.asarray(y)]


def conformal_threshold(cal_scores: np.ndarray, coverage: float) -> float:
    """The ceil((n + 1) * coverage)-th smallest calibration score (the finite-sample correction); 1.0 (every class
    in every set) when there are too few scores for that coverage."""
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"coverage must be between 0 and 1, not {coverage}")
    s = np.sort(np.asarray(cal_scores, dtype=np.float64))
    rank = math.ceil((len(s) + 1) * coverage)
    return 1.0 if rank > len(s) else float(s[rank - 1])


def prediction_sets(probs: np.ndarray, threshold: float) -> np.ndarray:
    """(n, classes) booleans: the classes whose score 1 - p is at most ``threshold``, and always the top class."""
    probs = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    keep = 1.0 - probs <= threshold + 1e-12
    keep[np.arange(len(probs)), probs.argmax(1)] = True
    return keep


def set_figures(probs: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, float]:
    """Empirical coverage (share of paintings whose true class is in their set) and mean set size."""
    sets = prediction_sets(probs, threshold)
    if not len(y):
        return {"coverage": 0.0, "mean_size": 0.0}
    return {"coverage": round(float(sets[np.arange(len(y)), np.asarray(y)].mean()), 4),
            "mean_size": round(float(sets.sum(1).mean()), 4)}


def set_classes(probs: np.ndarray, threshold: float, classes: list[str]) -> list[str]:
    """One painting's set, most probable class first."""
    p = np.asarray(probs, dtype=np.float64)
    keep = prediction_sets(p[None], threshold)[0]
    return [classes[i] for i in np.argsort(-p, kind="stable") if keep[i]]


# --- what the card records ----------------------------------------------------------------------------------------

def calibrate(cal_logits: np.ndarray, cal_y: np.ndarray, test_logits: np.ndarray, test_y: np.ndarray,
              source: str, coverage: float = 0.9) -> tuple[float, dict, dict]:
    """Fit the temperature and the conformal threshold on the held-out predictions; measure both on the test
    split. Returns (T, the card's ``calibration``, the card's ``conformal``)."""
    t = fit_temperature(cal_logits, cal_y)
    before, after = softmax(test_logits), softmax(test_logits, t)
    fitted = {"source": source, "n": int(len(cal_y)),  # the held-out predictions' own figures (T fitted on them)
              "before": scores(softmax(cal_logits), cal_y), "after": scores(softmax(cal_logits, t), cal_y)}
    calibration = {"method": "temperature", "parameters": {"temperature": round(t, 4)}, "fitted_on": fitted,
                   "bins": BINS,
                   "test": {"n": int(len(test_y)), "before": scores(before, test_y), "after": scores(after, test_y)}}
    cal_scores = np.sort(conformal_scores(softmax(cal_logits, t), cal_y))
    conformal = conformal_entry(cal_scores, coverage, after, test_y, source)
    return t, calibration, conformal


def conformal_entry(cal_scores: np.ndarray, coverage: float, test_probs: np.ndarray, test_y: np.ndarray,
                    source: str) -> dict:
    threshold = conformal_threshold(cal_scores, coverage)
    return {"target_coverage": coverage, "score": "1 - calibrated probability of the true class (LAC)",
            "threshold": round(threshold, 6), "calibration_n": int(len(cal_scores)), "calibrated_on": source,
            "small": bool(len(cal_scores) < SMALL),
            "calibration_scores": [round(float(s), 6) for s in np.sort(cal_scores)],
            "test": {"n": int(len(test_y)), **set_figures(test_probs, test_y, threshold)}}


def threshold_at(conformal: dict, coverage: float) -> float:
    """A card's conformal threshold at another coverage (from the calibration scores it keeps)."""
    if abs(coverage - float(conformal.get("target_coverage", 0))) < 1e-9 or not conformal.get("calibration_scores"):
        return float(conformal["threshold"])
    return conformal_threshold(np.asarray(conformal["calibration_scores"]), coverage)


# --- unfamiliar paintings -----------------------------------------------------------------------------------------

UNFAMILIAR_PERCENTILE = 2.0


def familiarity(similarities: np.ndarray, k: int) -> np.ndarray:
    """Mean cosine similarity to the ``k`` nearest training paintings (rows sorted most similar first)."""
    s = np.atleast_2d(np.asarray(similarities, dtype=np.float64))
    return s[:, :max(1, min(k, s.shape[1]))].mean(1)


def unfamiliar_entry(reference: np.ndarray, test: np.ndarray, k: int, reference_words: str,
                     percentile: float = UNFAMILIAR_PERCENTILE) -> dict:
    """The threshold: the ``percentile``-th percentile of the reference paintings' familiarity (each against the
    training paintings of other artists); and how often the test paintings fall below it."""
    threshold = float(np.percentile(reference, percentile)) if len(reference) else 0.0
    return {"measure": f"mean cosine similarity to the {k} nearest training paintings (the kNN's features)", "k": k,
            "rule": f"below the lowest {percentile:g}% of {reference_words}",
            "threshold": round(threshold, 4), "reference_n": int(len(reference)),
            "test": {"n": int(len(test)), "rate": round(float(np.mean(test < threshold)), 4) if len(test) else 0.0}}
