"""Silences and acknowledgements, as Alertmanager's silencer and an on-call acknowledge.

- A **silence** (``liqmon silence add``) mutes the alerts it matches while it is in force
  (``starts_at <= now < ends_at``, not expired): every matcher given must match, an absent one
  matches anything. ``account``: the alert's subject (an account, or an oracle subject such as
  ``oracle:jump:WETH``), case-insensitive; ``market``: the market name; ``severity``: that severity
  and milder (so a silence of warnings still lets a critical escalation through; a resolution is
  judged by the severity it resolves). It is applied at delivery time: a silenced alert is
  recorded (its outbox row ``silenced``, with the silence id, shown by ``history --alerts``),
  never sent, and not sent later when the silence ends.
- An **acknowledgement** (``liqmon ack``) of an open episode stops its repeat reminders until
  the episode escalates (a more severe alert) or ends; every other change is still sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from monitor.alerts.dedup import rank
from monitor.errors import InputError

_DURATION_RE: Final = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_SILENCE_S: Final = 366 * 86400.0


def parse_duration(text: str) -> float:
    """``90m``, ``6h``, ``1d12h``, ``2w`` -> seconds (at most a year)."""
    clean = text.strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    for match in _DURATION_RE.finditer(clean):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not clean or pos != len(clean) or total <= 0:
        raise InputError(f"duration {text!r} is invalid: expected e.g. 30m, 6h, 1d12h or 2w")
    if total > MAX_SILENCE_S:
        raise InputError(f"duration {text!r} is longer than a year: expire and renew silences instead")
    return total


def alert_severity(alert: Mapping[str, Any]) -> str:
    """The severity an alert is judged by: a resolution by the severity it resolves."""
    severity = str(alert.get("severity", "ok"))
    return str(alert.get("previous", "ok")) if severity == "ok" else severity


def matches(silence: Mapping[str, Any], alert: Mapping[str, Any]) -> bool:
    account = silence.get("account")
    if account and str(account).lower() != str(alert.get("subject", "")).lower():
        return False
    market = silence.get("market")
    if market and market != alert.get("market"):
        return False
    severity = silence.get("severity")
    return not (severity and rank(alert_severity(alert)) > rank(str(severity)))


def silencing(silences: Sequence[Mapping[str, Any]], alert: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first silence in force that matches ``alert`` (silences as ``Store.silences(active_at=now)``)."""
    return next((s for s in silences if matches(s, alert)), None)


def acknowledged(ack: Mapping[str, Any] | None, severity: str) -> bool:
    """An acknowledgement in force covers a repeat at ``severity`` no worse than the acknowledged one."""
    return ack is not None and rank(severity) <= rank(str(ack["severity"]))
