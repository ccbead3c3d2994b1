"""PagerDuty Events API v2 channel: each alert a ``trigger`` event, each resolved message the
``resolve`` event of the same ``dedup_key``, so one episode is one PagerDuty incident.

The ``dedup_key`` names the position (``liqmon/<market>/<account>``) or, for an oracle alert,
the market's oracle (``liqmon/<market>/oracle``), from the message's structured fields; a
trigger while the incident is open joins it, the resolved message closes it, and the next
episode's trigger opens a new incident. A message without those fields (a test message)
gets a key of its own. PagerDuty dedups by key, so the outbox's at-least-once retries never
open a second incident.

The integration (routing) key is a secret from the environment; it travels in the body, never
in the URL, and is redacted from every error. ``url`` defaults to PagerDuty's endpoint and is
configurable (a local peer in tests, an EU account's ``events.eu.pagerduty.com``). PagerDuty
answers 202; 400 (``invalid event``) is final with its errors, 429 (throttled: PagerDuty gives
no wait, the outbox backs off) and 5xx retryable (transport: :mod:`monitor.alerts.webhook`).

The channel opts out of grouping (no ``size_limit``): an incident per position episode.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import requests

from monitor.alerts.message import Message, one_line
from monitor.alerts.webhook import USER_AGENT, HttpPoster, Pacer, message_fields, message_links, no_destination
from monitor.errors import ConfigError

DEFAULT_URL: Final = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_LIMIT: Final = 1024
ROUTING_KEY_RE: Final = re.compile(r"[A-Za-z0-9]{32}")
# liqmon severity -> PagerDuty severity (critical, error, warning, info)
SEVERITY: Final = {"liquidatable": "critical", "critical": "critical", "warning": "warning", "watch": "info",
                   "anomaly": "warning", "test": "info", "ok": "info"}  # fmt: skip


def dedup_key(message: Message) -> str:
    """The incident key of ``message`` (see the module doc)."""
    fields = message_fields(message)
    market = fields.get("market", "")
    account = fields.get("account", "")
    if market and account:
        return f"liqmon/{market}/{account.lower()}"
    if market:
        return f"liqmon/{market}/oracle"
    return "liqmon/" + hashlib.sha256(f"{message.key}\n{message.title}".encode()).hexdigest()[:32]


def event(message: Message, routing_key: str, now: float) -> dict[str, Any]:
    """The Events API v2 body of ``message``."""
    key = dedup_key(message)
    if message.severity == "resolved":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": key}
    fields = message_fields(message)
    summary = one_line(message.headline)
    details: dict[str, Any] = {"lines": list(message.lines), **{k: v for k, v in fields.items() if k != "severity"}}
    payload: dict[str, Any] = {
        "summary": summary if len(summary) <= SUMMARY_LIMIT else summary[: SUMMARY_LIMIT - 1] + "…",
        "source": "liqmon",
        "severity": SEVERITY.get(fields.get("severity", message.severity), "warning"),
        "timestamp": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        "custom_details": details,
    }
    if fields.get("market"):
        payload["component"] = fields["market"]
    if fields.get("chain"):
        payload["group"] = fields["chain"]
    payload["class"] = "position" if fields.get("account") else "oracle" if fields.get("market") else "liqmon"
    out: dict[str, Any] = {"routing_key": routing_key, "event_action": "trigger", "dedup_key": key,
                           "payload": payload, "client": "liqmon"}  # fmt: skip
    links = message_links(message)
    if links:
        out["links"] = [{"href": url, "text": label} for label, url in links]
    return out


class PagerDutyChannel:
    """Sends each alert as a PagerDuty Events API v2 event (``routing_key``: the integration key)."""

    def __init__(
        self,
        name: str,
        routing_key: str,
        *,
        url: str = DEFAULT_URL,
        timeout: float = 10.0,
        min_interval_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
        session: requests.Session | None = None,
    ) -> None:
        if not ROUTING_KEY_RE.fullmatch(routing_key):  # never echo the value
            raise ConfigError(f"channel {name!r}: the PagerDuty routing key must be the 32-character integration key")
        self.name = name
        self._key = routing_key
        self._wall = wall_clock
        self._http = HttpPoster(name, "PagerDuty", url, display=url, secrets=(routing_key,), timeout=timeout,
                                session=session, wall_clock=wall_clock)  # fmt: skip
        self._pacer = Pacer(min_interval_s, clock, sleep)

    def __repr__(self) -> str:
        return f"PagerDutyChannel(name={self.name!r}, url={self._http.display!r}, routing_key=<secret>)"

    def close(self) -> None:
        self._http.close()

    def validate_destination(self, destination: str) -> None:
        no_destination(self.name, "PagerDuty", destination)

    def send(self, message: Message, destination: str = "") -> None:
        body = json.dumps(event(message, self._key, self._wall()), ensure_ascii=False).encode()
        self._pacer.wait_turn()
        response = self._http.post(body, {"Content-Type": "application/json", "User-Agent": USER_AGENT})
        if 200 <= response.status_code < 300:
            return
        text = None
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            errors = data.get("errors")
            extra = "; ".join(str(e) for e in errors) if isinstance(errors, list) else ""
            text = f"{data.get('status', '')}: {data['message']}" + (f" ({extra})" if extra else "")
        self._http.check(response, description=text)
