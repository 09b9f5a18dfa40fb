"""The reviewable labelling rules: Met culture fields to the culture study's 11 classes, Met tags/titles to genres.

A curator should be able to read this file and disagree with a line. Nothing here guesses: a record that no rule
labels gets an empty label and a reason, and builders report it.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

#: The culture study's classes, in the order used everywhere.
CULTURES = ("American", "British", "Chinese", "Dutch", "Flemish", "French", "German", "Indian", "Italian",
            "Japanese", "Spanish")

#: A token found in a Met culture field -> the class. Merges are explicit: England and United Kingdom (and Scotland,
#: Wales) -> British; India and its regions (Gujarat, Rajasthan, Mewar, Basohli, ...) -> Indian.
CULTURE_TOKENS: dict[str, str] = {
    "american": "American", "united states": "American", "america": "American",
    "british": "British", "english": "British", "england": "British", "united kingdom": "British",
    "scottish": "British", "scotland": "British", "welsh": "British", "wales": "British",
    "chinese": "Chinese", "china": "Chinese",
    "dutch": "Dutch", "holland": "Dutch",
    "flemish": "Flemish", "flanders": "Flemish",
    "french": "French", "france": "French",
    "german": "German", "germany": "German",
    "indian": "Indian", "india": "Indian", "gujarat": "Indian", "rajasthan": "Indian", "mewar": "Indian",
    "basohli": "Indian", "jammu": "Indian", "kangra": "Indian", "guler": "Indian", "bikaner": "Indian",
    "jaipur": "Indian", "deccan": "Indian", "punjab hills": "Indian",
    "italian": "Italian", "italy": "Italian",
    "japanese": "Japanese", "japan": "Japanese",
    "spanish": "Spanish", "spain": "Spanish",
}

#: Merges artlab can make beyond the study's classes, off by default (``extra_merges=True``, ``artlab data met
#: --extra-merges``): peoples of the Americas into American, a colony into its empire, Italian regional schools named
#: without "Italian", and the Mughal court into Indian. Off, such a record stays unlabelled and the builder says why.
EXTRA_MERGES: dict[str, str] = {
    "native american": "American", "latin american": "American", "spanish colonial": "Spanish",
    "venetian": "Italian", "florentine": "Italian", "sienese": "Italian", "mughal": "Indian",
}

#: "Netherlandish" names the Low Countries before the Dutch/Flemish split (c. 1585): neither class fits it.
#: Default: leave it unlabelled. ``netherlandish="flemish"`` (most Met Netherlandish paintings are southern) or
#: ``"dutch"`` maps it instead, and builders say so in their report.
NETHERLANDISH_TOKENS = ("netherlandish", "netherlands")

#: Met fields read for culture, in order of precedence: the object's own culture beats the artist's nationality.
CULTURE_FIELDS = ("culture", "artistNationality", "country")

_SPLIT = re.compile(r"[,;()/]|\bor\b|\band\b")


def _tokens(value: str) -> list[str]:
    return [t.strip().lower() for t in _SPLIT.split(value or "") if t.strip()]


def culture_of(record: Mapping[str, str], netherlandish: str | None = None,
               extra_merges: bool = False) -> tuple[str, str]:
    """(class, why) for a Met record; class is '' when no rule applies, and ``why`` says which field decided."""
    for field in CULTURE_FIELDS:
        for token in _tokens(str(record.get(field) or "")):
            words = token.split()
            extra = next((k for k in EXTRA_MERGES if re.search(rf"\b{k}\b", token)), None)
            if extra and token not in CULTURE_TOKENS:  # before "american" in "native american" can match
                if extra_merges:
                    return EXTRA_MERGES[extra], f"{field}={record.get(field)!r} merged by choice"
                return "", f"{extra.title()}: not one of the study's classes (extra_merges merges it into " \
                           f"{EXTRA_MERGES[extra]})"
            if token in CULTURE_TOKENS:
                return CULTURE_TOKENS[token], f"{field}={record.get(field)!r}"
            if token in NETHERLANDISH_TOKENS:
                if netherlandish:
                    return netherlandish.capitalize(), f"{field}={record.get(field)!r} mapped by choice"
                return "", "Netherlandish: neither Dutch nor Flemish (choose with --netherlandish)"
            for word_count in (2, 1):  # "Western India, Rajasthan, Mewar" -> "india"; "Italian, Rimini" -> "italian"
                for i in range(len(words) - word_count + 1):
                    key = " ".join(words[i:i + word_count])
                    if key in CULTURE_TOKENS:
                        return CULTURE_TOKENS[key], f"{field}={record.get(field)!r}"
    values = {f: record.get(f) for f in CULTURE_FIELDS if record.get(f)}
    return "", f"no culture rule matches {values}" if values else "no culture recorded"


# --- genre ------------------------------------------------------------------------------------------------------

#: Genre rules, checked in this order; the first that matches decides. Each: (genre, Met tags, title words).
#: Order matters: a still life or a study is that first; a portrait of a saint is a portrait; a scene with the
#: Virgin is religious before it is a landscape.
GENRE_RULES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("still life", ("Still Life",), ("still life", "flowers in", "bouquet", "fruit")),
    ("sketch", (), ("sketch", "study for", "study of")),
    ("portrait", ("Portraits", "Self-portraits"), ("portrait", "self-portrait")),
    ("religious", ("Virgin Mary", "Madonna and Child", "Saints", "Crucifixion", "Annunciation", "Holy Family",
                   "Jesus", "Christ", "Angels", "Archangel Gabriel", "Bodhisattvas", "Buddhism", "Buddha"),
     ("madonna", "virgin", "saint ", "crucifixion", "annunciation", "holy family", "adoration", "nativity",
      "lamentation", "pietà", "bodhisattva", "buddha", "avalokiteshvara")),
    ("landscape", ("Landscapes", "Seascapes", "Mountains", "Forests"), ("landscape", "view of", "river")),
)

#: WikiArt's genre names -> artlab's (the GenRe study's four, plus the ones WikiArt shares with the demo).
WIKIART_GENRES = {"portrait": "portrait", "landscape": "landscape", "still_life": "still life",
                  "sketch_and_study": "sketch", "religious_painting": "religious"}


def genre_of(tags: Iterable[str], title: str, object_name: str = "") -> tuple[str, str]:
    """(genre, why) from Met tags, title and object name; genre is '' when no rule applies."""
    tags = set(tags)
    text = f"{title} {object_name}".lower()
    for genre, rule_tags, words in GENRE_RULES:
        hit = sorted(tags.intersection(rule_tags))
        if hit:
            return genre, f"tag {hit[0]!r}"
        for word in words:
            if word in text:
                return genre, f"title/object name contains {word.strip()!r}"
    return "", "no genre rule matches its tags or title"
