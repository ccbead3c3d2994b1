"""What every delivery channel offers the pipeline, and the one error a channel raises.

A channel is handed a rendered :class:`~monitor.alerts.message.Message` and a destination
(a Telegram chat id, comma-separated email addresses; the console ignores it). It either
returns (delivered) or raises :class:`DeliveryError`, whose ``retryable`` flag tells the
outbox whether to try again later (and ``retry_after`` how much later, when the service
said so) or to give up. Channels never retry themselves: retries and backoff belong to the
outbox, which persists them across restarts.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from monitor.alerts.message import Message
from monitor.errors import MonitorError


class DeliveryError(MonitorError):
    """A channel could not deliver a message.

    ``retryable``: the failure is transient (timeout, refused connection, rate limit, 5xx,
    SMTP 4xx); the same message may succeed later. ``retry_after``: seconds the service
    asked us to wait (Telegram's ``parameters.retry_after``), else None. ``kind``: a short
    label of the cause (``chat_not_found``, ``tls``, ``auth``...), the metric label of a
    permanent failure. The message never holds a secret (bot token, SMTP password).
    """

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None, kind: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.kind = kind or ("transient" if retryable else "refused")  # a short label for metrics and doctor

    def __repr__(self) -> str:
        return f"DeliveryError({str(self)!r}, retryable={self.retryable}, retry_after={self.retry_after})"


@runtime_checkable
class Channel(Protocol):
    """A way to deliver alerts (Telegram, email, console)."""

    name: str

    def send(self, message: Message, destination: str) -> None:
        """Deliver ``message`` to ``destination``, or raise :class:`DeliveryError`."""
        ...

    def validate_destination(self, destination: str) -> None:
        """Raise :class:`~monitor.errors.ConfigError` naming the bad part of ``destination``."""
        ...


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every non-empty secret replaced by ``<secret>`` (a last line of defence)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<secret>")
    return text
