"""Console channel: one line per alert on a text stream (stdout by default)."""

from __future__ import annotations

import sys
from typing import TextIO

from monitor.alerts.channels import DeliveryError
from monitor.alerts.message import Message, one_line


def console_line(message: Message) -> str:
    """``[SEVERITY] title — line; line`` (just ``[SEVERITY] title`` without body lines)."""
    body = "; ".join(one_line(line) for line in message.lines if line.strip())
    return f"{message.headline} — {body}" if body else message.headline


class ConsoleChannel:
    """Prints each alert as one line. ``stream=None`` means ``sys.stdout`` at the time of sending."""

    def __init__(self, name: str = "console", stream: TextIO | None = None) -> None:
        self.name = name
        self.stream = stream

    def __repr__(self) -> str:
        return f"ConsoleChannel(name={self.name!r})"

    def validate_destination(self, destination: str) -> None:
        """Any destination is fine: the console ignores it."""

    def send(self, message: Message, destination: str = "") -> None:
        stream = self.stream if self.stream is not None else sys.stdout
        try:
            stream.write(console_line(message) + "\n")
            stream.flush()
        except (OSError, ValueError) as exc:  # closed stream, broken pipe
            raise DeliveryError(f"channel {self.name!r}: cannot write to the console ({exc})", retryable=False) from exc
