"""Runs checked on open: card.json against its schema, arrays for NaN/inf and for agreement with the card.

Every problem is a RunError of one plain line naming the file and the field, so the CLI prints it and exits 2 and
the app lists the run as broken while the other runs still work.
"""

from __future__ import annotations

import re
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RunError

_NUMBER = (Real,)
#: (dotted field, type(s), required). Types are checked with isinstance; bool is not accepted where a number is.
CARD_SCHEMA: tuple[tuple[str, Any, bool], ...] = (
    ("task", dict, True),
    ("task.label", str, True),
    ("task.classes", list, True),
    ("task.collection", str, False),
    ("task.collection_relative", str, False),
    ("task.collection_source", str, False),
    ("task.n_images", int, False),
    ("task.split_sizes", dict, False),
    ("task.per_class", dict, False),
    ("task.licenses", list, False),
    ("task.leakage", dict, False),
    ("task.leakage", dict, False),
    ("task.leakage.groups_across_splits", int, False),
    ("task.leakage.paintings_affected", int, False),
    ("backbone", dict, True),
    ("backbone.name", str, True),
    ("backbone.description", str, False),
    ("backbone.weights", dict, False),
    ("backbone.license", str, False),
    ("method", str, True),
    ("head", str, True),
    ("metrics", dict, True),
    ("metrics.finetuned", dict, True),
    ("metrics.knn", dict, True),
    ("metrics.finetuned.accuracy", _NUMBER, True),
    ("metrics.knn.accuracy", _NUMBER, True),
    ("metrics.finetuned.n", int, True),
    ("metrics.knn.k", int, False),
    ("metrics.finetuned.per_class", dict, True),
    ("metrics.knn.per_class", dict, True),
    ("metrics.finetuned.confusion", list, False),
    ("metrics.knn.confusion", list, False),
    ("training", dict, False),
    ("deviations", list, False),
    ("backbone.weights.sha256", str, False),
    ("backbone.weights.source", str, False),
    ("backbone.weights.file", str, False),
    ("backbone.weights.classifier", dict, False),
    # honest probabilities (artlab.report.calibration): absent from runs written before them
    ("calibration", dict, False),
    ("calibration.method", str, False),
    ("calibration.parameters", dict, False),
    ("calibration.parameters.temperature", _NUMBER, False),
    ("calibration.fitted_on", dict, False),
    ("calibration.test", dict, False),
    ("conformal", dict, False),
    ("conformal.target_coverage", _NUMBER, False),
    ("conformal.threshold", _NUMBER, False),
    ("conformal.calibration_n", int, False),
    ("conformal.calibration_scores", list, False),
    ("conformal.test", dict, False),
    ("unfamiliar", dict, False),
    ("unfamiliar.threshold", _NUMBER, False),
    ("unfamiliar.k", int, False),
)
#: Counts (whole numbers, 0 or more), fractions (0 to 1) and k (1 or more) where a card has them.
_COUNTS = ("task.n_images", "metrics.finetuned.n", "metrics.knn.n")
_FRACTIONS = tuple(f"metrics.{m}.{k}" for m in ("finetuned", "knn")
                   for k in ("accuracy", "top3_accuracy", "val_accuracy"))
#: The largest number a card may hold anywhere (beyond it a float conversion overflows; no count comes near it).
_LARGEST = 1e15
_MAX_NODES = 1_000_000

_TYPE_WORDS = {dict: "an object", list: "a list", str: "a string", int: "a whole number"}


def _words(kind) -> str:
    return _TYPE_WORDS.get(kind, "a number") if not isinstance(kind, tuple) else "a number"


def _get(card: dict, dotted: str):
    node = card
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


_MISSING = object()


def validate_card(card: Any, file: Path, allowed: dict[str, tuple[str, ...]], table_keys: frozenset[str]) -> None:
    """Raise RunError naming ``file`` and the first field that is missing or of the wrong type. ``allowed`` gives
    the names a field may hold (``backbone.name``, ``method``, ``head``: the run folder's reader passes the model's),
    ``table_keys`` the Table 1 figures that must be numbers where present (this module is core-level, so the model
    and report stages hand their names in rather than being imported)."""
    if not isinstance(card, dict):
        raise RunError(f"{file}: the card must be a JSON object, not {type(card).__name__}")
    for field, kind, required in CARD_SCHEMA:
        parent = field.rpartition(".")[0]
        if parent and not isinstance(_get(card, parent), dict):
            continue  # an absent optional parent: its fields are not checked
        value = _get(card, field)
        if value is _MISSING or value is None:
            if required:
                raise RunError(f"{file}: field '{field}' is missing")
            continue
        if isinstance(value, bool) or not isinstance(value, kind):
            raise RunError(f"{file}: field '{field}' must be {_words(kind)}, not {type(value).__name__}")
        if isinstance(value, float) and not np.isfinite(value):
            raise RunError(f"{file}: field '{field}' is {value}, not a number")
    _check_numbers(card, file)
    _check_ranges(card, file)
    _check_classes(card, file, allowed, table_keys)
    _check_honest(card, file)


def _check_honest(card: dict, file: Path) -> None:
    """The values the Predictor computes with: a positive temperature, a coverage between 0 and 1, numeric scores."""
    t = _get(card, "calibration.parameters.temperature")
    if t is not _MISSING and t is not None and not t > 0:
        raise RunError(f"{file}: field 'calibration.parameters.temperature' must be above 0, not {t}")
    cov = _get(card, "conformal.target_coverage")
    if cov is not _MISSING and cov is not None and not 0 < cov < 1:
        raise RunError(f"{file}: field 'conformal.target_coverage' must be between 0 and 1, not {cov}")
    cal = _get(card, "conformal.calibration_scores")
    if isinstance(cal, list) and any(isinstance(v, bool) or not isinstance(v, Real) or not np.isfinite(v)
                                     for v in cal):
        raise RunError(f"{file}: field 'conformal.calibration_scores' must list numbers")


def _check_numbers(card: dict, file: Path) -> None:
    """Every number anywhere in the card finite and of a sane size (walked without recursion)."""
    stack, seen = [("", card)], 0
    while stack:
        where, node = stack.pop()
        seen += 1
        if seen > _MAX_NODES:
            raise RunError(f"{file}: the card holds more than {_MAX_NODES:,} values")
        if isinstance(node, dict):
            stack.extend((f"{where}.{k}" if where else str(k), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(node))
        elif isinstance(node, Real) and not isinstance(node, bool):
            if isinstance(node, float) and not np.isfinite(node):
                raise RunError(f"{file}: field '{where[:120]}' is {node}, not a number")
            if abs(node) > _LARGEST:
                raise RunError(f"{file}: field '{where[:120]}' is a number too large to be true")


def _check_ranges(card: dict, file: Path) -> None:
    for field in _COUNTS:
        value = _get(card, field)
        if value is not _MISSING and value is not None and (not _whole(value) or value < 0):
            raise RunError(f"{file}: field '{field}' must be a whole number, 0 or more")
    for field in _FRACTIONS:
        value = _get(card, field)
        if value is not _MISSING and value is not None and (not _real(value) or not 0 <= value <= 1):
            raise RunError(f"{file}: field '{field}' must be a fraction between 0 and 1")
    k = _get(card, "metrics.knn.k")
    if k is not _MISSING and k is not None and k < 1:
        raise RunError(f"{file}: field 'metrics.knn.k' must be 1 or more")
    deviations = _get(card, "deviations")
    if isinstance(deviations, list) and not all(isinstance(d, str) for d in deviations):
        raise RunError(f"{file}: field 'deviations' must be a list of sentences (strings)")
    licenses = _get(card, "task.licenses")
    if isinstance(licenses, list) and not all(isinstance(d, str) for d in licenses):
        raise RunError(f"{file}: field 'task.licenses' must be a list of strings")
    sizes = _get(card, "task.split_sizes")
    if isinstance(sizes, dict) and not all(_whole(v) and v >= 0 for v in sizes.values()):
        raise RunError(f"{file}: field 'task.split_sizes' must give whole numbers, 0 or more")
    per_class = _get(card, "task.per_class")
    if isinstance(per_class, dict) and not all(isinstance(v, dict) and all(_whole(n) and n >= 0 for n in v.values())
                                               for v in per_class.values()):
        raise RunError(f"{file}: field 'task.per_class' must give each class its counts (whole numbers)")


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _real(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _check_classes(card: dict, file: Path, allowed: dict[str, tuple[str, ...]], table_keys: frozenset[str]) -> None:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", card["task"]["label"]):
        raise RunError(f"{file}: field 'task.label' must be a lower-case name like genre or culture")
    classes = card["task"]["classes"]
    if len(classes) < 2 or not all(isinstance(c, str) and c for c in classes):
        raise RunError(f"{file}: field 'task.classes' must list at least two class names (strings)")
    if len(set(classes)) != len(classes):
        raise RunError(f"{file}: field 'task.classes' repeats a class")
    for field, names in allowed.items():
        if _get(card, field) not in names:
            raise RunError(f"{file}: field '{field}' is {_get(card, field)!r}, not one of {', '.join(names)}")
    for model in ("finetuned", "knn"):
        metrics = card["metrics"][model]
        for key, value in metrics.items():  # the Table 1 figures: any that is there is a number
            if key in table_keys and (isinstance(value, bool) or not isinstance(value, Real)):
                raise RunError(f"{file}: field 'metrics.{model}.{key}' must be a number")
        for c in classes:
            entry = metrics["per_class"].get(c)
            for key in ("precision", "recall", "support"):
                value = entry.get(key) if isinstance(entry, dict) else None
                if isinstance(value, bool) or not isinstance(value, Real):
                    raise RunError(f"{file}: field 'metrics.{model}.per_class.{c}.{key}' is missing or not a number")
                if not (value >= 0 if key == "support" else 0 <= value <= 1):  # NaN fails both
                    raise RunError(f"{file}: field 'metrics.{model}.per_class.{c}.{key}' must be "
                                   + ("0 or more" if key == "support" else "a fraction between 0 and 1"))
        cm = _get(card, f"metrics.{model}.confusion")
        if cm is not _MISSING and (len(cm) != len(classes) or any(not isinstance(r, list) or len(r) != len(classes)
                                                                  for r in cm)):
            raise RunError(f"{file}: field 'metrics.{model}.confusion' is not {len(classes)} x {len(classes)}")


def check_array(file: Path, key: str, a: np.ndarray, *, ndim: int | None = None, rows: int | None = None,
                cols: int | None = None, finite: bool = False) -> np.ndarray:
    """``a`` (the array ``key`` of ``file``) with the dimensions and values asked, else RunError."""
    if ndim is not None and a.ndim != ndim:
        raise RunError(f"{file}: array '{key}' has {a.ndim} dimension(s), expected {ndim}")
    if rows is not None and len(a) != rows:
        raise RunError(f"{file}: array '{key}' has {len(a)} rows, expected {rows}")
    if cols is not None and (a.ndim < 2 or a.shape[1] != cols):
        raise RunError(f"{file}: array '{key}' has shape {a.shape}, expected {cols} columns")
    if finite and a.dtype.kind in "fc" and not np.isfinite(a).all():
        raise RunError(f"{file}: array '{key}' holds NaN or infinite values ({int((~np.isfinite(a)).sum())} of them)")
    return a


def require_keys(file: Path, have, keys) -> None:
    missing = [k for k in keys if k not in have]
    if missing:
        raise RunError(f"{file}: missing array(s) {', '.join(missing)}")


def check_embeddings(file: Path, z: dict[str, np.ndarray], classes: list[str]) -> None:
    require_keys(file, z, ("embeddings", "ids", "labels", "y"))
    n = len(check_array(file, "embeddings", z["embeddings"], ndim=2, finite=True))
    for key in ("ids", "labels", "y", "split"):
        if key in z:
            check_array(file, key, z[key], ndim=1, rows=n)
    for key in ("knn_embeddings", "backbone_embeddings"):
        if key in z:
            check_array(file, key, z[key], ndim=2, rows=n, finite=True)
    y = z["y"]
    if y.dtype.kind not in "iu" or (len(y) and (y.min() < -1 or y.max() >= len(classes))):
        raise RunError(f"{file}: array 'y' holds class numbers outside the card's {len(classes)} classes")
    if "classes" in z and [str(c) for c in z["classes"]] != list(classes):
        raise RunError(f"{file}: array 'classes' does not match the card's classes")


def check_knn(file: Path, z, n_classes: int, width: int | None = None) -> None:
    """knn.npz against the card: its classes, k, labels and (``width``, the backbone's feature size) its columns."""
    require_keys(file, z.files if hasattr(z, "files") else z, ("embeddings", "labels", "ids", "k", "n_classes"))
    n = len(check_array(file, "embeddings", z["embeddings"], ndim=2, cols=width, finite=True))
    check_array(file, "labels", z["labels"], ndim=1, rows=n)
    check_array(file, "ids", z["ids"], ndim=1, rows=n)
    if int(z["n_classes"]) != n_classes:
        raise RunError(f"{file}: 'n_classes' is {int(z['n_classes'])}, the card has {n_classes} classes")
    k = int(z["k"])
    if not 1 <= k <= max(n, 1):
        raise RunError(f"{file}: 'k' is {k}, but there are {n} reference paintings")
    labels = z["labels"]
    if n and (labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= n_classes):
        raise RunError(f"{file}: array 'labels' holds class numbers outside 0..{n_classes - 1}")
