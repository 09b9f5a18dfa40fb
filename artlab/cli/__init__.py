"""The ``artlab`` command line: ``commands`` (the parser and one function a command), ``explain`` (overlays and the
faithfulness table), ``files`` (the images a command line names)."""

from artlab.cli.commands import main

__all__ = ["main"]
