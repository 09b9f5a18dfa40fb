"""Classification metrics as small pure functions of arrays (checked against scikit-learn in the tests)."""

from __future__ import annotations

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows = true class, columns = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=float), where=b > 0)


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    tp = np.diag(cm).astype(float)
    precision = _safe_div(tp, cm.sum(axis=0).astype(float))
    recall = _safe_div(tp, cm.sum(axis=1).astype(float))
    f1 = _safe_div(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": cm.sum(axis=1)}


def top_k_accuracy(y_true: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Share of rows whose true class is among the k highest scores (ties resolved by column order)."""
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == np.asarray(y_true)[:, None], axis=1)))


def classification_report(y_true, y_pred, scores, classes: list[str]) -> dict:
    """Everything the run card stores for one model: accuracy, macro/weighted P/R/F1, top-3, per class, confusion."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    cm = confusion(y_true, y_pred, len(classes))
    pc = per_class(cm)
    present = pc["support"] > 0  # scikit-learn's macro average counts classes present in y_true or y_pred
    present |= cm.sum(axis=0) > 0
    weights = pc["support"] / max(pc["support"].sum(), 1)
    out = {"n": int(len(y_true)), "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else 0.0,
           "top3_accuracy": top_k_accuracy(y_true, scores, 3) if len(y_true) else 0.0,
           "confusion": cm.tolist()}
    for name in ("precision", "recall", "f1"):
        out[f"{name}_macro"] = float(pc[name][present].mean()) if present.any() else 0.0
        out[f"{name}_weighted"] = float(np.sum(pc[name] * weights))
    out["per_class"] = {c: {"precision": float(pc["precision"][i]), "recall": float(pc["recall"][i]),
                            "f1": float(pc["f1"][i]), "support": int(pc["support"][i])}
                        for i, c in enumerate(classes)}
    return out
