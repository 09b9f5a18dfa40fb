"""A run's calibration, prediction sets and unfamiliar-painting threshold in words: the lines ``artlab evaluate``
prints and the sentences the app shows (plain strings; data-derived names are escaped by the caller where Markdown
renders them)."""

from __future__ import annotations

import numpy as np

from artlab.report.calibration import logits_of, reliability, softmax

NOT_CALIBRATED = "not calibrated (a run written before calibration: its probabilities are the raw softmax)"


def evaluate_text(card: dict) -> str:
    """ECE, NLL and Brier before/after calibration, the sets' coverage and size, the unfamiliar threshold."""
    cal, conf, unf = card.get("calibration"), card.get("conformal"), card.get("unfamiliar")
    if not cal:
        return "calibration: " + NOT_CALIBRATED
    b, a = cal["test"]["before"], cal["test"]["after"]
    fit = cal.get("fitted_on", {})
    lines = [f"calibration: temperature {cal['parameters']['temperature']:.3f}, fitted on {fit.get('n', '?')} "
             f"paintings ({fit.get('source', '?')})",
             f"  on the {cal['test']['n']} test paintings ({cal.get('bins', 10)} bins): "
             f"ECE {b['ece']:.3f} -> {a['ece']:.3f}, NLL {b['nll']:.3f} -> {a['nll']:.3f}, "
             f"Brier {b['brier']:.3f} -> {a['brier']:.3f} (before -> after)"]
    if "after" in fit:
        lines.append(f"  on the {fit['n']} paintings it was fitted on: ECE {fit['before']['ece']:.3f} -> "
                     f"{fit['after']['ece']:.3f}, NLL {fit['before']['nll']:.3f} -> {fit['after']['nll']:.3f}")
    if conf:
        t = conf["test"]
        lines.append(f"prediction sets: target coverage {conf['target_coverage']:.0%}, threshold "
                     f"{conf['threshold']:.3f} on {conf['calibration_n']} calibration paintings"
                     + (" (fewer than 50: a loose guarantee)" if conf.get("small") else "")
                     + f"; on the test paintings: coverage {t['coverage']:.3f}, mean set size {t['mean_size']:.2f}")
    if unf:
        lines.append(f"unfamiliar: {unf['measure']} {unf['rule']} (threshold {unf['threshold']:.3f}); "
                     f"{unf['test']['rate']:.1%} of the {unf['test']['n']} test paintings fall below it")
    return "\n".join(lines)


def join_classes(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def in_ten(coverage: float) -> str:
    """0.9 -> '9 in 10'; 0.95 -> '19 in 20'; else a percentage."""
    for d in (10, 20, 100):
        if abs(coverage * d - round(coverage * d)) < 1e-9:
            return f"{round(coverage * d)} in {d}"
    return f"{coverage:.0%} of"


def set_sentence(names: list[str], coverage: float, label: str, n_classes: int, small: bool, n: int) -> str:
    """'portrait or religious scene: for 9 in 10 paintings like the ones it was tested on, the true genre is in such
    a set', with what a small calibration means."""
    head = join_classes(names)
    if len(names) == n_classes:
        head = f"any {label} ({head})"
    out = (f"{head}: for {in_ten(coverage)} paintings like the ones it was tested on, the true {label} is in such "
           "a set.")
    if small:
        out += (f" Calibrated on only {n} paintings (fewer than 50): take the {in_ten(coverage)} as a rough "
                "guide.")
    return out


def unfamiliar_notice(label: str) -> str:
    return (f"This image is unlike the paintings the models learned from: it is less similar to its nearest training "
            f"paintings than nearly every painting they were tested on. It may not be a painting, or not one of "
            f"the kinds they know; treat both answers, and the {label} set, with caution.")


def test_probs(pred, classes: list[str], temperature: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true class numbers, calibrated probabilities, probabilities before calibration) of predictions.csv's
    test rows (its ``finetuned:<class>`` columns are calibrated; the raw ones are recovered with the temperature)."""
    cols = [f"finetuned:{c}" for c in classes]
    after = pred[cols].to_numpy(dtype=np.float64)
    index = {c: i for i, c in enumerate(classes)}
    y = pred["true"].map(index).to_numpy()
    before = softmax(logits_of(after) * temperature)
    return y, after, before


def reliability_rows(pred, classes: list[str], temperature: float) -> list[dict]:
    """The reliability diagram's points, before and after calibration (``kind``)."""
    y, after, before = test_probs(pred, classes, temperature)
    return ([{**r, "kind": "before calibration"} for r in reliability(before, y)]
            + [{**r, "kind": "after calibration"} for r in reliability(after, y)])


def reliability_sentence(card: dict) -> str:
    cal = card["calibration"]
    b, a = cal["test"]["before"]["ece"], cal["test"]["after"]["ece"]
    return (f"Each dot is a group of test paintings: how sure the fine-tuned model said it was (across) against how "
            f"often it was right (up); on the diagonal, its word can be taken at face value. Its stated confidence "
            f"was off by {b:.0%} on average before calibration and {a:.0%} after (expected calibration error, "
            f"{cal['test']['n']} test paintings).")


def coverage_sentence(card: dict) -> str:
    conf = card["conformal"]
    t = conf["test"]
    small = (f" The sets were calibrated on only {conf['calibration_n']} paintings (fewer than 50), so the guarantee "
             "is loose." if conf.get("small") else "")
    return (f"Prediction sets aim to contain the true {card['task']['label']} for {in_ten(conf['target_coverage'])} "
            f"paintings; on the {t['n']} test paintings they did for {t['coverage']:.0%}, naming "
            f"{t['mean_size']:.1f} of the {len(card['task']['classes'])} classes on average.{small}")
