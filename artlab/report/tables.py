"""Tables derived from a run's card and predictions: pure pandas, shared by the app's pages and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd

METRIC_ROWS = [("accuracy", "accuracy"), ("top-3 accuracy", "top3_accuracy"), ("precision (macro)", "precision_macro"),
               ("recall (macro)", "recall_macro"), ("F1 (macro)", "f1_macro"),
               ("precision (weighted)", "precision_weighted"), ("recall (weighted)", "recall_weighted"),
               ("F1 (weighted)", "f1_weighted")]


def metrics_frame(card: dict) -> pd.DataFrame:
    """The study's Table 1: both models' test metrics side by side."""
    m = card["metrics"]
    k = m["knn"].get("k")
    cols = {"fine-tuned": m["finetuned"], f"kNN (k={k})": m["knn"]}
    return pd.DataFrame({name: [float(v.get(key, float("nan"))) for _, key in METRIC_ROWS]
                         for name, v in cols.items()}, index=[label for label, _ in METRIC_ROWS])


def per_class_frame(card: dict) -> pd.DataFrame:
    m, classes = card["metrics"], card["task"]["classes"]
    return pd.DataFrame({
        "paintings": [m["finetuned"]["per_class"][c]["support"] for c in classes],
        "recall (fine-tuned)": [m["finetuned"]["per_class"][c]["recall"] for c in classes],
        "recall (kNN)": [m["knn"]["per_class"][c]["recall"] for c in classes],
        "precision (fine-tuned)": [m["finetuned"]["per_class"][c]["precision"] for c in classes],
        "precision (kNN)": [m["knn"]["per_class"][c]["precision"] for c in classes]}, index=classes)


def gallery_frame(pred: pd.DataFrame, meta: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """predictions.csv joined with the paintings' titles and artists, plus each model's confidence in its answer."""
    df = pred.copy()
    ft = df[[f"finetuned:{c}" for c in classes]].to_numpy()
    kn = df[[f"knn:{c}" for c in classes]].to_numpy()
    col = {c: i for i, c in enumerate(classes)}
    rows = np.arange(len(df))
    df["finetuned_conf"] = ft[rows, df["pred_finetuned"].map(col).to_numpy()] if len(df) else []
    df["knn_conf"] = kn[rows, df["pred_knn"].map(col).to_numpy()] if len(df) else []
    df["finetuned_wrong"] = df["pred_finetuned"] != df["true"]
    df["knn_wrong"] = df["pred_knn"] != df["true"]
    keep = [c for c in ("id", "title", "artist", "date", "url", "path") if c in meta.columns]
    if len(meta) and "id" in meta.columns:
        df = df.merge(meta[keep], on="id", how="left")
    for c in ("title", "artist", "date", "url", "path"):
        df[c] = df[c].fillna("") if c in df.columns else ""
    return df[["id", "title", "artist", "date", "url", "path", "true", "pred_finetuned", "finetuned_conf",
               "pred_knn", "knn_conf", "finetuned_wrong", "knn_wrong"]]


ERRED = {"any": "either model wrong", "both": "both models wrong", "finetuned": "only the fine-tuned model wrong",
         "knn": "only the kNN baseline wrong", "all": "all test paintings"}


def filter_gallery(df: pd.DataFrame, true: str | None = None, predicted: str | None = None,
                   predicted_by: str = "finetuned", erred: str = "any") -> pd.DataFrame:
    """The test paintings that match, most confident first (the model named by ``predicted_by`` sorts them)."""
    keep = pd.Series(True, index=df.index)
    if true:
        keep &= df["true"] == true
    if predicted:
        keep &= df[f"pred_{predicted_by}"] == predicted
    ft, kn = df["finetuned_wrong"], df["knn_wrong"]
    keep &= {"any": ft | kn, "both": ft & kn, "finetuned": ft & ~kn, "knn": kn & ~ft,
             "all": pd.Series(True, index=df.index)}[erred]
    return df[keep].sort_values(f"{predicted_by}_conf", ascending=False, kind="stable")


#: The column names of an experiment's results.csv (``artlab.train.experiment.COLUMNS``), in words; ``paper_X`` is
#: "X, published".
RESULT_WORDS = {
    "name": "run", "row": "in the study's table", "backbone": "backbone", "method": "training", "head": "head",
    "optimizer": "optimizer", "scheduler": "learning-rate schedule", "split": "split", "epochs": "epochs",
    "val": "fine-tuned, validation accuracy", "top1": "fine-tuned, test accuracy",
    "top3": "fine-tuned, test top-3 accuracy", "precision": "fine-tuned, precision", "recall": "fine-tuned, recall",
    "f1": "fine-tuned, F1", "knn_val": "kNN, validation accuracy", "knn_top1": "kNN, test accuracy",
    "knn_top3": "kNN, test top-3 accuracy", "knn_precision": "kNN, precision", "knn_recall": "kNN, recall",
    "knn_f1": "kNN, F1", "knn_k": "kNN, k", "train_s": "training (s)", "total_s": "in all (s)", "status": "status",
    "error": "error"}


def readable_results(df: pd.DataFrame) -> pd.DataFrame:
    """An experiment's results table for people: columns named in words, columns with no value in any row left out
    (no "None" for a grid that is not a study's table), empty text cells blank."""
    out = df.dropna(axis=1, how="all").copy()
    out = out.loc[:, [c for c in out.columns if not (out[c].dtype == object and (out[c].astype(str).str.strip()
                                                                                == "").all())]]
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = out[c].fillna("")

    def words(c: str) -> str:
        if c.startswith("paper_") and c[6:] in RESULT_WORDS:
            return f"{RESULT_WORDS[c[6:]]}, published"
        return RESULT_WORDS.get(c, c)
    return out.rename(columns=words)
