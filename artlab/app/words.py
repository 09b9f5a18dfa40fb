"""The model card in words, for a curator: what the model does, how it was built, what it learned from, how it was
tested, how often it is right, a warning when the collection is small, and where it departs from its study. Pure
functions of the card (Markdown strings, data escaped), so a test reads them without a Streamlit session; app.py only
lays them out."""

from __future__ import annotations

from artlab.report import protocol
from artlab.report.csvsafe import md

METHOD_WORDS = {
    "partial": "only its last block and a new final layer were retrained on paintings; the rest kept what it "
               "learned from everyday photographs (ImageNet)",
    "finetune": "every layer was retrained on paintings, starting from what it learned on everyday photographs "
                "(ImageNet)",
    "transfer": "the network kept what it learned from everyday photographs (ImageNet) unchanged; only a new final "
                "part that turns what it sees into a {label} was trained",
    "scratch": "it was trained on paintings alone, from a random start (no ImageNet)",
}
HEAD_WORDS = {"linear": "a single layer", "mlp3": "three layers"}


def card_paragraphs(card: dict) -> list[str]:
    """The "About this model" paragraphs, in order, as Markdown; the weights' provenance is ``weights_caption``."""
    task, backbone, m = card["task"], card["backbone"], card.get("metrics", {})
    classes, label = task["classes"], task["label"]
    sizes = task.get("split_sizes", {})
    kind = card.get("method", "")
    method = METHOD_WORDS[kind].format(label=md(label)) if kind in METHOD_WORDS else md(kind)
    said = [
        f"**What it does.** It sorts a painting into one of {len(classes)} {md(label)} classes: "
        f"{', '.join(map(md, classes))}.",
        f"**How it was built.** It starts from {md(backbone.get('description') or backbone['name'])}; {method}."
        + (f" The final part has {HEAD_WORDS.get(card['head'], md(card['head']))}." if card.get("head") else ""),
        f"**What it learned from.** {task.get('n_images', '?')} paintings from "
        f"{md(task.get('collection_source', 'an unnamed collection'))}: {sizes.get('train', '?')} to learn from, "
        f"{sizes.get('val', '?')} to decide when to stop, {sizes.get('test', '?')} kept aside to test it. "
        f"Licences: {'; '.join(map(md, task.get('licenses', []))) or 'not recorded'}.",
        f"**How it was tested.** {split_words(task)}",
    ]
    if m:
        ft, kn = m["finetuned"], m["knn"]
        said.append(f"**How often it is right** on the {ft.get('n', sizes.get('test', '?'))} test paintings: "
                    f"fine-tuned model {float(ft['accuracy']):.0%}, simple baseline {float(kn['accuracy']):.0%} "
                    f"(the baseline gives the majority {md(label)} among the {kn.get('k', '?')} most similar "
                    "training paintings).")
    return said


def weights_caption(card: dict) -> str:
    """Where the pretrained weights came from, their file, checksum and licence ('' when the card does not say)."""
    backbone = card["backbone"]
    weights = backbone.get("weights") or {}
    source = weights.get("source") or (weights.get("classifier") or {}).get("source")
    if not source:
        return ""
    return (f"Pretrained weights: {md(source)}" + (f", {md(weights['file'])}" if weights.get("file") else "")
            + (f" (sha256 {md(str(weights['sha256'])[:12])}…)" if weights.get("sha256") else "")
            + (f". Licence: {md(backbone['license'])}." if backbone.get("license") else "."))


def small_collection_warning(card: dict) -> str:
    """A warning when the test split is small (one painting moves the accuracy by a point or more) or a class had
    fewer than 20 paintings to learn from; '' otherwise."""
    task, metrics = card["task"], card.get("metrics", {})
    n_test = (metrics.get("finetuned") or {}).get("n") or task.get("split_sizes", {}).get("test", 0)
    thin = [c for c, s in task.get("per_class", {}).items() if s.get("train", 0) < 20]
    small = bool(n_test) and n_test < 100
    if not (small or thin):
        return ""
    words = (f"only {n_test} test paintings, so one painting moves the accuracy by {100 / max(n_test, 1):.0f} points"
             if small else "a small collection")
    extra = f"; few examples to learn from for {', '.join(map(md, thin))}" if thin else ""
    return f"Small collection: {words}{extra}. Read the numbers as a rough guide, not a verdict."


def split_words(task: dict) -> str:
    """How the run's test paintings were chosen, for a curator (``task`` is the card's ``task``)."""
    if task.get("group_by_artist"):
        return ("On paintings by artists it never saw in training: each named artist's paintings are all in one of "
                "the three groups (anonymous and unidentified artists may fall in any).")
    return ("On paintings picked at random, so a painter it learned from may also appear among the test paintings "
            "(the studies split this way; it flatters a model that recognises the painter).")


def deviations(card: dict) -> list[str]:
    """Where the run departs from its study, said from its configuration now (``report.protocol.deviations``, so a
    sentence corrected since the card was written reads true), else as the card recorded it."""
    try:
        return protocol.deviations(card)
    except Exception:  # noqa: BLE001 - a card this function cannot read still has its own list
        return [str(d) for d in card.get("deviations") or []]


def deviations_markdown(card: dict) -> str:
    """The run's departures from its study as a Markdown list under a heading ('' when it has none)."""
    said = deviations(card)
    if not said:
        return ""
    return "**Where it departs from the study it reproduces:**\n" + "\n".join(f"- {md(d)}" for d in said)


def card_summary(card: dict) -> list[str]:
    """The short "About this model" shown open in the sidebar (the rest is ``card_paragraphs``, a click away): what
    it does, how often each model is right in one line, and a short word when the test was small."""
    paragraphs = card_paragraphs(card)
    m, sizes = card.get("metrics") or {}, card["task"].get("split_sizes", {})
    said = [paragraphs[0]]
    if m:
        ft, kn = m["finetuned"], m["knn"]
        n = ft.get("n", sizes.get("test", "?"))
        said.append(f"**How often it is right** on {n} test paintings: fine-tuned model {float(ft['accuracy']):.0%}, "
                    f"simple baseline {float(kn['accuracy']):.0%}.")
    return said


def small_collection_note(card: dict) -> str:
    """``small_collection_warning`` in one short line for the summary ('' when the collection is not small)."""
    if not small_collection_warning(card):
        return ""
    n_test = (card.get("metrics", {}).get("finetuned") or {}).get("n") or card["task"].get("split_sizes", {}).get(
        "test", 0)
    if n_test and n_test < 100:
        return f"Only {n_test} test paintings: a rough guide, not a verdict."
    return "A small collection: a rough guide, not a verdict."


# --- what the run did: sentences computed from its card and history ------------------------------------------------

def _epoch_of_lowest(history) -> tuple[int, float] | None:
    """(epoch, loss) where the validation loss was lowest (the first such epoch), or None without a record."""
    if history is None or len(history) == 0 or "val_loss" not in history or history["val_loss"].isna().all():
        return None
    i = history["val_loss"].idxmin()
    return int(history.loc[i, "epoch"]), float(history.loc[i, "val_loss"])


def kept_epoch(card: dict, history) -> int | None:
    """The epoch whose weights the run kept: the card's ``best_epoch`` (the last epoch when ``restore_best`` was
    off), else the epoch of the lowest validation loss (cards before the key)."""
    best = (card.get("training") or {}).get("best_epoch")
    if best is not None:
        return int(best)
    lowest = _epoch_of_lowest(history)
    return lowest[0] if lowest else None


def training_words(card: dict, history) -> str:
    """How long the run trained and which epoch's weights it kept, in words, from what it did: whether it stopped
    early, whether it kept the lowest validation loss or its last epoch, and how the two compare."""
    info, cfg = card.get("training") or {}, card.get("config") or {}
    n = len(history) if history is not None else int(info.get("epochs_run") or 0)
    stopped = (f"it stopped early, as the validation loss had not improved for {cfg['patience']} epochs"
               if info.get("stopped_early") and cfg.get("patience") else
               "it stopped early, as the validation loss had stopped improving" if info.get("stopped_early")
               else "it ran every planned epoch")
    said = [f"{n} epoch{'s' if n != 1 else ''} ({stopped})."]
    kept, lowest = kept_epoch(card, history), _epoch_of_lowest(history)
    if kept is None:
        return said[0]
    if cfg.get("restore_best", True) is False:
        said.append(f"This run keeps the weights of its last epoch, {kept}, whatever the validation loss did.")
    else:
        said.append(f"The weights kept are those of epoch {kept}, where the loss on the validation paintings was "
                    "lowest." if lowest is None or lowest[0] == kept else f"The weights kept are those of epoch "
                    f"{kept}.")
    if lowest is not None and lowest[0] != kept:
        at_kept = history.loc[history["epoch"] == kept, "val_loss"]
        said.append(f"The validation loss was lowest at epoch {lowest[0]} ({lowest[1]:.2f})"
                    + (f"; at the kept epoch it was {float(at_kept.iloc[0]):.2f}"
                       + (f", {float(at_kept.iloc[0]) / lowest[1]:.1f} times as high" if lowest[1] > 0 else "")
                       if len(at_kept) else "") + ".")
    said.append("Training paintings are the ones it learned from; validation paintings were only used to decide "
                "when to stop" + (" and which epoch to keep." if cfg.get("restore_best", True) is not False else "."))
    return " ".join(said)


def k_words(card: dict) -> str:
    """How the baseline's k was chosen: on the validation paintings among several values, or (one value tried)
    fixed, not chosen. '' when the card has no kNN figures."""
    knn = (card.get("metrics") or {}).get("knn") or {}
    k, curve = knn.get("k"), knn.get("k_curve") or {}
    if k is None:
        return ""
    if len(curve) > 1:
        tried = ", ".join(str(v) for v in sorted(int(c) for c in curve))
        best = curve.get(str(k))
        return (f"The baseline votes among the k most similar training paintings. Of the values tried ({tried}), "
                f"k = {k} did best on the validation paintings"
                + (f" ({float(best):.0%} right" + (", the smallest k of those that did as well)"
                                                  if sum(float(v) == float(best) for v in curve.values()) > 1
                                                  else ")") if best is not None else "") + ".")
    return (f"The baseline votes among the {k} most similar training paintings: k = {k} was the only value tried, "
            "so it was set, not chosen on the validation paintings.")


def several_ks(card: dict) -> bool:
    """Whether more than one k was tried (a curve worth drawing)."""
    return len(((card.get("metrics") or {}).get("knn") or {}).get("k_curve") or {}) > 1


def frozen_backbone(card: dict) -> bool:
    """Whether the backbone was kept frozen (``transfer``): its feature maps are then the baseline's, exactly."""
    return card.get("method") == "transfer"


def feature_map_words(card: dict) -> str:
    """The caption of the feature maps: one map when the backbone was frozen (the fine-tuned model and the baseline
    then see through the very same network), two otherwise."""
    if frozen_backbone(card):
        return ("Feature map of the backbone, shared by both models: this model's backbone was kept frozen (only a "
                "new final part was trained), so the fine-tuned model and the baseline see through the same network "
                "and their feature maps are the same picture.")
    return ""


def votes_words(classes, shares, k: int) -> str:
    """The neighbours' votes, most first: "2 of 3 religious, 1 of 3 portrait" (class names escaped)."""
    votes = sorted(((c, float(s)) for c, s in zip(classes, shares) if s > 0), key=lambda t: -t[1])
    return ", ".join(f"{round(s * k)} of {k} {md(c)}" for c, s in votes)


def agreement_words(pred) -> tuple[str, str]:
    """(kind, Markdown) for the verdict above a prediction: "agree" only when both models give the same answer and
    more than half of the baseline's neighbours vote for it; "split" when no class has a majority of the neighbours
    (the closer ones decided: a lean, not agreement); "disagree" otherwise. ``pred`` is an
    ``artlab.explain.predictor.Prediction``."""
    ft, kn = md(pred.finetuned), md(pred.knn)
    if not pred.knn_majority:
        k = len(pred.neighbours)
        lean = ("the same as" if pred.finetuned == pred.knn else "unlike")
        return "split", (f"The fine-tuned model says **{ft}**. The baseline's neighbours are split "
                         f"({votes_words(pred.classes, pred.knn_shares, k)}): the closer ones tip it to **{kn}**, "
                         f"{lean} the fine-tuned model, but that is a lean, not a verdict.")
    if pred.agree:
        return "agree", f"Both models say **{ft}**."
    return "disagree", f"The models disagree: the fine-tuned model says **{ft}**, the baseline says **{kn}**."


def paintings_words(layer: str | None) -> str:
    """Which description of a painting the nearest paintings, the map and the chains compare, and how they relate to
    the class views above (``layer``: geometry.json's, where the class centres came from)."""
    centres = (" The class centres above come from another description, the backbone's (see above), so a class "
               "that looks near there need not be near here." if layer == "backbone" else "")
    return ("The nearest paintings, the map and the chains all compare the fine-tuned model's own description of "
            "each painting (its last layer before the answer), by cosine similarity. The nearest paintings are exact; "
            "the map squeezes the same description into two dimensions, so a painting can sit in one class's cluster "
            "on the map while its nearest paintings belong to other classes: trust the list over the picture."
            + centres)


def distance_words(geometry: dict) -> str:
    """One sentence for the Distances tab's numbers: what they measure, that only comparisons mean anything, and
    the closest and farthest pair of this run."""
    classes, dist = geometry.get("classes") or [], geometry.get("distance") or []
    pairs = [(float(dist[i][j]), classes[i], classes[j]) for i in range(len(classes))
             for j in range(i + 1, len(classes)) if i < len(dist) and j < len(dist[i])]
    if not pairs:
        return ""
    (lo, a, b), (hi, c, d) = min(pairs), max(pairs)
    return (f"Each number is the straight-line distance between the centres of two classes in the model's "
            f"description of a painting (a long list of numbers, so the distance has no unit): only comparisons "
            f"mean anything. Here they run from {lo:.1f}, between {md(a)} and {md(b)} (the most alike), to "
            f"{hi:.1f}, between {md(c)} and {md(d)} (the least alike).")
