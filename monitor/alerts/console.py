"""Console channel: one line per alert on a text stream (stdout by default), the full text with
``verbose``."""

from __future__ import annotations

import sys
from typing import TextIO

from monitor.alerts.channels import DeliveryError
from monitor.alerts.message import Message, one_line


def console_line(message: Message) -> str:
    """One line: an alert's summary (``⚠️ WARNING who · market · HF 1.18 → warn 1.25 · ...``); a
    message without one (a group, an old outbox row) as ``headline — line; line``."""
    if message.summary:
        return message.summary_line()
    body = "; ".join(one_line(line) for line in message.lines if line.strip())
    return f"{message.headline} — {body}" if body else message.headline


class ConsoleChannel:
    """Prints each alert as one line. ``stream=None`` means ``sys.stdout`` at the time of sending."""

    def __init__(self, name: str = "console", stream: TextIO | None = None, *, verbose: bool = False) -> None:
        self.name = name
        self.stream = stream
        self.verbose = verbose  # the whole message (headline, body, links) then a blank line

    def __repr__(self) -> str:
        return f"ConsoleChannel(name={self.name!r})"

    def validate_destination(self, destination: str) -> None:
        """Any destination is fine: the console ignores it."""

    def send(self, message: Message, destination: str = "") -> None:
        stream = self.stream if self.stream is not None else sys.stdout
        try:
            stream.write((message.plain() + "\n\n") if self.verbose else (console_line(message) + "\n"))
            stream.flush()
        except (OSError, ValueError) as exc:  # closed stream, broken pipe
            raise DeliveryError(f"channel {self.name!r}: cannot write to the console ({exc})", retryable=False) from exc
