"""The model card's sentences that are more than a field: which kind of split tested the run, and where it departs
from its study. Pure functions of the card, so a test reads them without a Streamlit session."""

from __future__ import annotations


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
