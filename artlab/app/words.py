"""The model card in words, for a curator: what the model does, how it was built, what it learned from, how it was
tested, how often it is right, a warning when the collection is small, and where it departs from its study. Pure
functions of the card (Markdown strings, data escaped), so a test reads them without a Streamlit session; app.py only
lays them out."""

from __future__ import annotations

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
            + (f" (sha256 {weights['sha256'][:12]}…)" if weights.get("sha256") else "")
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


def deviations_markdown(card: dict) -> str:
    """The card's ``deviations`` as a Markdown list under a heading ('' when it has none)."""
    if not card.get("deviations"):
        return ""
    return "**Where it departs from the study it reproduces:**\n" + "\n".join(f"- {d}" for d in card["deviations"])
