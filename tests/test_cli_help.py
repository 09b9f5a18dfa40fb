"""Every argument of the ``artlab`` command says what it is: the parser is walked, every sub-command included, and
an argument without help text (a positional such as ``predict RUN``, or ``--csv``) fails the test by name."""

from __future__ import annotations

import argparse

from artlab.cli.commands import build_parser


def arguments(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("artlab",)):
    """(command words, argument name, help) for every argument of ``parser`` and of its sub-commands."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from arguments(sub, path + (name,))
        elif not isinstance(action, argparse._HelpAction):
            yield " ".join(path), (action.option_strings or [action.dest])[0], action.help


def test_every_argument_has_help():
    found = list(arguments(build_parser()))
    assert len(found) > 60 and {cmd for cmd, _, _ in found} >= {
        "artlab data folder", "artlab train", "artlab evaluate", "artlab predict", "artlab explain"}
    missing = [f"{cmd} {name}" for cmd, name, text in found if not (text and text.strip())]
    assert not missing, "arguments without help text: " + ", ".join(missing)


def test_the_walk_finds_an_argument_without_help():
    """The walk itself can fail: an argument added without help is reported."""
    parser = build_parser()
    parser.add_argument("--undocumented")
    assert ("artlab", "--undocumented", None) in list(arguments(parser))


def test_help_prints_for_every_command(capsys):
    """``--help`` formats on every sub-command (a stray % in a help text would raise here, not in a user's shell)."""
    def commands(parser, path=()):
        yield path
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from commands(sub, path + (name,))
    for words in commands(build_parser()):
        try:
            build_parser().parse_args([*words, "--help"])
        except SystemExit as done:
            assert done.code == 0, words
        assert "usage: artlab" in capsys.readouterr().out
