"""The papers beside the run: the published tables, and each published number next to a run's (or an experiment
grid's) with the run's departures from its study that explain the difference (docs/studies.md).

The published figures are those of ``configs/genre_table1.toml`` and ``configs/culture_table2.toml`` (a test holds
them equal) and of the culture study's Table 1 (``artlab.collection.met.labels.PAPER_TABLE1``, likewise). Tables come
out as CSV (formula cells quoted), Markdown and LaTeX.
"""

from __future__ import annotations

import math

import pandas as pd

from artlab.report.protocol import GENRE, deviations, study_of

GENRE_SOURCE = "GenRe, Table 1 (section 5)"
CULTURE_T1_SOURCE = "culture study, Table 1 (section 3.1)"
CULTURE_T2_SOURCE = "culture study, Table 2 (section 4.1)"

#: GenRe's Table 1: test metrics of both models (precision, recall, F1 compared with artlab's weighted averages).
GENRE_TABLE1 = {"fine-tuned": {"accuracy": 0.8933, "precision": 0.8931, "recall": 0.8933, "f1": 0.8930},
                "kNN baseline": {"accuracy": 0.8666, "precision": 0.8669, "recall": 0.8666, "f1": 0.8663}}

#: The culture study's Table 1: culture -> (initial, final) Met paintings.
CULTURE_TABLE1 = {"American": (1592, 1585), "Japanese": (1149, 1084), "Chinese": (1097, 1034), "French": (940, 815),
                  "Italian": (759, 688), "Dutch": (429, 412), "Indian": (559, 372), "British": (300, 280),
                  "German": (259, 172), "Spanish": (125, 115), "Flemish": (109, 106)}

#: The culture study's Table 2, in its order: artlab's (backbone, method, scheduler) -> val, top-1, top-3.
CULTURE_TABLE2 = {("resnet50", "finetune", "plateau"): (0.6928, 0.7179, 0.9184),
                  ("resnet50", "finetune", "step"): (0.6828, 0.7009, 0.9169),
                  ("vgg16_bn", "finetune", "step"): (0.6737, 0.6813, 0.9063),
                  ("alexnet", "finetune", "step"): (0.6828, 0.6571, 0.8807),
                  ("resnet50", "transfer", "step"): (0.6088, 0.6088, 0.8686),
                  ("resnet50", "scratch", "step"): (0.5001, 0.4804, 0.7855)}

MEASURES = {"val": "validation accuracy", "top1": "top-1 accuracy", "top3": "top-3 accuracy",
            "accuracy": "accuracy", "precision": "precision", "recall": "recall", "f1": "F1"}
COLUMNS = ["source", "row", "model", "measure", "paper", "run", "difference"]


def _frame(lines: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(lines, columns=COLUMNS)
    df["difference"] = df["run"] - df["paper"]
    return df


def culture_row(cfg: dict) -> tuple[tuple[str, str, str], str]:
    """The Table 2 row a culture run is compared with: its own combination when the paper has it, else the paper's
    first row of the same backbone and method, of the same method, or its best row (and a note saying which)."""
    key = (cfg.get("backbone"), cfg.get("method"), cfg.get("scheduler"))
    if key in CULTURE_TABLE2:
        return key, ""
    rows = list(CULTURE_TABLE2)
    for match, words in ((lambda r: r[:2] == key[:2], "its row of the same backbone and method"),
                         (lambda r: r[1] == key[1], "its row of the same training method"),
                         (lambda r: True, "its best row")):
        found = next((r for r in rows if match(r)), None)
        if found is not None:
            return found, ("the paper has no row for " + " / ".join(str(k) for k in key) + f": compared with {words}, "
                           + " / ".join(found))
    return rows[0], ""


def beside_run(card: dict) -> tuple[pd.DataFrame, list[str]]:
    """(each published number of the run's study next to the run's, the run's deviations from that study)."""
    cfg, task = card.get("config") or {}, card.get("task") or {}
    study = study_of(cfg.get("label", task.get("label", "")), cfg.get("head", ""))
    metrics = card.get("metrics") or {}
    ft, knn = metrics.get("finetuned") or {}, metrics.get("knn") or {}
    lines = []
    if study is GENRE:
        for model, m in (("fine-tuned", ft), ("kNN baseline", knn)):
            run = {"accuracy": m.get("accuracy"), "precision": m.get("precision_weighted"),
                   "recall": m.get("recall_weighted"), "f1": m.get("f1_weighted")}
            lines += [{"source": GENRE_SOURCE, "row": "densenet121-partial", "model": model,
                       "measure": MEASURES[k], "paper": v, "run": _num(run[k])} for k, v in GENRE_TABLE1[model].items()]
        notes = []
    else:
        key, note = culture_row(cfg)
        val, top1, top3 = CULTURE_TABLE2[key]
        run = {"val": ft.get("val_accuracy"), "top1": ft.get("accuracy"), "top3": ft.get("top3_accuracy")}
        lines += [{"source": CULTURE_T2_SOURCE, "row": "-".join(key), "model": "fine-tuned", "measure": MEASURES[k],
                   "paper": v, "run": _num(run[k])} for k, v in zip(("val", "top1", "top3"), (val, top1, top3))]
        notes = [note] if note else []
    found = card.get("deviations")
    return _frame(lines), notes + list(found if isinstance(found, list) else deviations(card))


def counts_beside_run(card: dict) -> pd.DataFrame:
    """The culture study's Table 1 beside a culture run's paintings per class (all three splits)."""
    per_class = (card.get("task") or {}).get("per_class") or {}
    rows = []
    for culture, (initial, final) in CULTURE_TABLE1.items():
        counts = per_class.get(culture)
        rows.append({"culture": culture, "paper initial": initial, "paper final": final,
                     "run": sum(int(v) for v in counts.values()) if counts else None})
    for culture in sorted(set(per_class) - set(CULTURE_TABLE1)):
        rows.append({"culture": culture, "paper initial": None, "paper final": None,
                     "run": sum(int(v) for v in per_class[culture].values())})
    return pd.DataFrame(rows).astype({"paper initial": "Int64", "paper final": "Int64", "run": "Int64"})


def beside_results(results: pd.DataFrame) -> pd.DataFrame:
    """An experiment's results table (results.csv) as published-beside-run lines, one per ``paper_`` figure."""
    lines = []
    for _, r in results.iterrows():
        for column in results.columns:
            if not column.startswith("paper_") or pd.isna(r[column]):
                continue
            key = column[len("paper_"):]
            model = "kNN baseline" if key.startswith("knn_") else "fine-tuned"
            measure = MEASURES.get(key.removeprefix("knn_"), key)
            source = GENRE_SOURCE if r.get("backbone") in GENRE.backbones else CULTURE_T2_SOURCE
            lines.append({"source": source, "row": str(r.get("name", "")), "model": model, "measure": measure,
                          "paper": float(r[column]), "run": _num(r.get(key))})
    return _frame(lines)


def _num(value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value


# --- writing tables -------------------------------------------------------------------------------------------------

def _text(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub Markdown table; cells from data have their pipes and line breaks escaped."""
    def cell(v):
        return _text(v).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    head = "| " + " | ".join(cell(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(df[c]) else "---" for c in df.columns) + "|"
    return "\n".join([head, rule] + ["| " + " | ".join(cell(v) for v in row) + " |"
                                     for row in df.itertuples(index=False)]) + "\n"


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in str(text)).replace("\n", " ")


def latex_table(df: pd.DataFrame, caption: str = "") -> str:
    """A LaTeX ``table`` with a ``tabular`` (booktabs rules), every cell escaped."""
    align = "".join("r" if pd.api.types.is_numeric_dtype(df[c]) else "l" for c in df.columns)
    lines = [r"\begin{table}[ht]", r"\centering", rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(latex_escape(c) for c in df.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(_text(v)) for v in row) + r" \\" for row in df.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    return "\n".join(lines + [r"\end{table}"]) + "\n"


# --- what the papers' figures showed (for captions) -----------------------------------------------------------------

PAPER_FIGURES = {
    "genre_fig1": "GenRe, Fig. 1 (section 4): training and validation behaviour per epoch; validation accuracy "
                  "reaches about 88 %, and the epoch at which early stopping occurs varies slightly between runs.",
    "genre_fig2": "GenRe, Fig. 2 (section 5): the confusion matrix of the fine-tuned model (GenRe) on the 1,200 test "
                  "paintings; sketch is the hardest class (248 correct), confused with portrait 26 times.",
    "genre_fig3": "GenRe, Fig. 3 (section 5): the confusion matrix of the baseline (frozen DenseNet121 + kNN); "
                  "sketch 239 correct, confused with portrait 31 times.",
    "genre_fig4-11": "GenRe, Figs. 4-11 (section 5): Grad-CAM of the fine-tuned model beside the baseline's: a "
                     "portrait (4-5), a landscape (6-7), a sketch classified correctly and one wrongly (8-9), still "
                     "lifes (10-11).",
    "culture_fig1": "culture study, Fig. 1 (section 3.1): Met Open Access paintings, clockwise from top left "
                    "American, French, Chinese, Japanese, Italian and German.",
    "culture_fig4-5": "culture study, Figs. 4-5 (section 3.5): feature maps of the best model (fine-tuned ResNet50): "
                      "the 2048x7x7 output of its convolutional layers summed over channels with normalization, "
                      "upscaled and laid over the painting.",
    "culture_fig6": "culture study, Fig. 6 (section 4.2): each culture's averaged feature vector from the best model, "
                    "laid out by ForceAtlas2 with random initialization; Asian, European and North American art "
                    "stand apart.",
    "culture_fig7": "culture study, Fig. 7 (section 4.2): a Circos chord diagram of the top quartile of normalised "
                    "pairwise similarities between cultures (highest for China and Japan).",
}
