"""Plain-text tables for a terminal: a run's metrics (the study's Table 1) and a confusion matrix."""

from __future__ import annotations

from artlab.report.tables import metrics_frame


def metrics_table(run) -> str:
    """The study's Table 1 for a run: both models side by side (the same table the app shows)."""
    table = metrics_frame(run.card)
    ft, kn = run.card["metrics"]["finetuned"], run.card["metrics"]["knn"]
    lines = [f"{run.name}: {run.card['backbone']['name']} {run.card['method']}, {len(run.classes)} {run.label} classes, "
             f"{ft['n']} test paintings",
             f"{'metric':<22}" + "".join(f"{c:>14}" for c in table.columns)]
    lines += [f"{name:<22}" + "".join(f"{v:>14.3f}" for v in row) for name, row in table.iterrows()]
    lines.append("per-class recall: " + ", ".join(
        f"{c} {ft['per_class'][c]['recall']:.2f}/{kn['per_class'][c]['recall']:.2f}" for c in run.classes))
    return "\n".join(lines)


def confusion_text(cm, classes) -> str:
    width = max(8, max(len(c) for c in classes) + 1)
    head = " " * width + "".join(f"{c[:width - 1]:>{width}}" for c in classes)
    return "\n".join([head] + [f"{c[:width - 1]:<{width}}" + "".join(f"{v:>{width}}" for v in row)
                               for c, row in zip(classes, cm)])
