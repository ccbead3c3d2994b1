"""Dedup: whether a state change is worth a message, and why (a reason, never a bool).

Reads the notification log kept in the store (the last state and when it was last sent),
as Alertmanager's nflog does.
"""

from __future__ import annotations

from typing import Final

RANKS: Final = {"ok": 0, "watch": 1, "warning": 2, "critical": 3, "liquidatable": 4}
REASONS: Final = ("first", "severity_up", "severity_down", "repeat", "resolved")


def rank(severity: str) -> int:
    return RANKS.get(severity, 0)


def decide(
    previous: str | None, last_sent_at: float | None, severity: str, now: float, repeat_interval_s: float
) -> str | None:
    """The reason to notify about ``severity`` given the previous state, or None.

    - first: from ok (or nothing known) to any alert level;
    - severity_up / severity_down: between two alert levels;
    - resolved: back to ok from an alert level;
    - repeat: unchanged alert level, nothing sent for ``repeat_interval_s``.
    """
    before = previous or "ok"
    if severity == before:
        if severity != "ok" and (last_sent_at is None or now - last_sent_at >= repeat_interval_s):
            return "repeat"
        return None
    if before == "ok":
        return "first"
    if severity == "ok":
        return "resolved"
    return "severity_up" if rank(severity) > rank(before) else "severity_down"
