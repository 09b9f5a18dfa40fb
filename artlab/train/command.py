"""The ``artlab train`` command line of a configuration: the option spelling of each TrainConfig field (the CLI
generates its options from the same table, artlab/cli/train_options.py) and the command that trains a run again,
which the app shows beside "N corrections since this model was trained"."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

from artlab.train.config import TrainConfig

#: Option names that differ from the field's (``--weights`` reads better than ``--weights-file``).
FLAGS = {"weights_file": "--weights"}
#: The command as the README spells it: `make app` installs artlab into the clone's .venv, not onto the PATH.
VENV_ARTLAB = ".venv/bin/artlab"
CULTURE_SPLIT = (0.8, 0.1, 0.1)  # the culture study's split, the default when --label culture


def flag(field: dataclasses.Field) -> str:
    """``--name``; a switch whose default is on is turned off by ``--no-name``."""
    name = FLAGS.get(field.name, "--" + field.name.replace("_", "-"))
    return "--no-" + name[2:] if field.default is True else name


def _default(field: dataclasses.Field, label: str):
    if field.name == "split" and label == "culture":
        return CULTURE_SPLIT
    return None if field.default is dataclasses.MISSING else field.default


def _spelled(value) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)


def typed_program(cwd: str | Path | None = None) -> str:
    """How to type ``artlab`` in ``cwd`` (default: the folder the app or CLI was started from): ``.venv/bin/artlab``
    in a clone set up by `make app` (the README's spelling), else ``artlab`` (installed onto the PATH)."""
    here = Path.cwd() if cwd is None else Path(cwd)
    return VENV_ARTLAB if (here / VENV_ARTLAB).is_file() else "artlab"


def train_words(config: dict, collection: str | Path, out: str | Path, program: str = "artlab") -> list[str]:
    """``artlab train`` options that give back ``config`` (a TrainConfig as a dict): every field that differs from
    its default, on ``collection`` into ``out``."""
    label = config.get("label", "genre")
    words = [program, "train", "--collection", str(collection)]
    for field in dataclasses.fields(TrainConfig):
        value = config.get(field.name)
        default = _default(field, label)
        if isinstance(default, bool):  # a switch: spelled only when away from its default (--name or --no-name)
            if value is not None and bool(value) != default:
                words.append(flag(field))
            continue
        if field.name == "collection" or value is None:
            continue
        if isinstance(value, (list, tuple)) and default is not None and tuple(value) == tuple(default):
            continue
        if value == default:
            continue
        words += [flag(field)] if value is True else [flag(field), _spelled(value)]
    return words + ["--out", str(out)]


def retrain_command(card: dict, collection: str | Path, out: str | Path, program: str | None = None) -> str:
    """The ``artlab train`` command that trains the run of ``card`` again (on its collection as curated now), typed
    as ``program`` (default: as it runs from the current folder, typed_program)."""
    words = train_words(card.get("config", {}), collection, out, program or typed_program())
    return " ".join(shlex.quote(w) for w in words)
