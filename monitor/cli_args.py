"""Argument types and the parser class of the ``liqmon`` command line.

Every count and number a user can type is bounded here, so a typo such as ``--paths 1e11``
or ``--seed -1`` is a one-line usage error (exit 2) before any work starts, and an argparse
error is one line too (the usage is one ``--help`` away)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import NoReturn

EXIT_USAGE = 2
MAX_SEED = 2**63 - 1


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: ``liqmon scan: error: ... (see --help)``."""

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(EXIT_USAGE, f"{self.prog}: error: {text} (see {self.prog} --help)\n")


def count(minimum: int, maximum: int) -> Callable[[str], int]:
    """An integer in ``[minimum, maximum]`` (``1_000`` allowed; ``1e3``, ``-1`` beyond the range refused)."""

    def parse(text: str) -> int:
        clean = text.strip().replace("_", "")
        body = clean[1:] if clean[:1] in "+-" else clean
        if not body or not body.isascii() or not body.isdigit() or len(body) > 40:
            raise argparse.ArgumentTypeError(f"expected an integer from {minimum:,} to {maximum:,}, got {text!r}")
        value = int(clean)
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{value:,} is out of range: expected {minimum:,} to {maximum:,}")
        return value

    parse.__name__ = "integer"
    return parse


def number(minimum: float, maximum: float, *, open_low: bool = False) -> Callable[[str], float]:
    """A finite float in ``[minimum, maximum]`` (``(minimum, maximum]`` with ``open_low``)."""
    low = "(" if open_low else "["

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(
                f"expected a finite number in {low}{minimum:g}, {maximum:g}], got {text!r}"
            )
        if value < minimum or value > maximum or (open_low and value == minimum):
            raise argparse.ArgumentTypeError(
                f"{text} is out of range: expected a number in {low}{minimum:g}, {maximum:g}]"
            )
        return value

    parse.__name__ = "number"
    return parse


seed = count(0, MAX_SEED)


def say_broken_pipe() -> None:
    """stdout's reader went away (``liqmon scan --json | head``): exit quietly, as command-line
    tools do; stdout is pointed at devnull so the interpreter's final flush does not fail."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
