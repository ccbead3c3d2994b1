"""Deliver the persisted outbox: due rows -> channels, with retries and backoff.

At-least-once: a row is marked sent only after its channel accepted it, so a crash between
the two re-sends it after restart (never loses it). A retryable failure (429, 5xx,
timeout, SMTP down) reschedules the row (``retry_after`` honoured, else exponential
backoff) and holds back later rows for the same destination in this round, so messages
to one chat keep their order. A permanent failure (bad chat, auth, bad TLS) or too many
attempts marks the row failed with the reason, and is TOLD: a warning in the log with the
reason (channel errors never hold secrets; the log filter redacts again), ``on_failure``
(the ``liqmon_alerts_undeliverable_total`` metric), ``history --alerts`` and ``doctor``.
An optional fallback route (``fallback``: a channel and destination) gets a copy of every
message its own route could not deliver.

A service's ``retry_after`` is honoured up to :data:`RETRY_AFTER_CAP_S` (Telegram may say
``retry_after: 99999999``: an alert parked for three years is a lost alert).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from monitor.alerts.channels import Channel, DeliveryError
from monitor.alerts.pipeline import message_from_json
from monitor.store import Store

log = logging.getLogger("liqmon")

RETRY_AFTER_CAP_S: Final = 3600.0
"""The longest wait a service's ``retry_after`` can impose on one message (seconds). To be
made configurable as ``alerts.retry_after_cap_s`` (config/alerts.py)."""


@dataclass(frozen=True, slots=True)
class Fallback:
    """Where a message goes when its own route failed for good."""

    channel: str
    destination: str


@dataclass(frozen=True, slots=True)
class DeliveryStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    held: int = 0  # not tried this round: an earlier message to the same destination is waiting


def backoff(
    attempts: int,
    retry_after: float | None,
    base: float = 2.0,
    cap: float = 600.0,
    retry_after_cap: float = RETRY_AFTER_CAP_S,
) -> float:
    delay = min(cap, base * float(1 << max(0, min(attempts - 1, 32))))
    return max(delay, min(retry_after or 0.0, retry_after_cap))


def _due(store: Store, now: float, page: int) -> Iterator[dict[str, Any]]:
    """Every due row, page by page (rows handled in a page are no longer due)."""
    seen: set[int] = set()
    while True:
        rows = [r for r in store.due_deliveries(now, page + len(seen)) if r["id"] not in seen]
        if not rows:
            return
        for row in rows:
            seen.add(row["id"])
            yield row


def deliver_due(
    store: Store,
    channels: Mapping[str, Channel],
    now: float,
    *,
    max_attempts: int = 50,
    limit: int = 200,
    on_result: Callable[[str, bool], None] = lambda _channel, _ok: None,
    on_failure: Callable[[str, str, str], None] = lambda _channel, _kind, _reason: None,
    fallback: Fallback | None = None,
    retry_after_cap: float = RETRY_AFTER_CAP_S,
) -> DeliveryStats:
    """Deliver the due rows. ``on_failure(channel, kind, reason)`` for each message given up on."""
    sent = retried = failed = held = 0

    def give_up(row: dict[str, Any], attempts: int, reason: str, kind: str) -> None:
        store.mark_delivery(row["id"], status="failed", attempts=attempts, next_attempt_at=now, error=reason)
        log.warning(
            "delivery failed for good",
            extra={"channel": row["channel"], "destination": row["destination"], "outbox_id": row["id"],
                   "alert_id": row["alert_id"], "attempts": attempts, "kind": kind, "reason": reason},
        )  # fmt: skip
        on_result(row["channel"], False)
        on_failure(row["channel"], kind, reason)
        if fallback is not None and (row["channel"], row["destination"]) != (fallback.channel, fallback.destination):
            copy = store.add_delivery(row["alert_id"], fallback.channel, fallback.destination, row["message"])
            log.warning("delivery rerouted", extra={"outbox_id": row["id"], "fallback_outbox_id": copy,
                                                    "channel": fallback.channel})  # fmt: skip

    blocked: set[tuple[str, str]] = set()
    for row in _due(store, now, limit):
        target = (row["channel"], row["destination"])
        if target in blocked:
            held += 1
            continue
        attempts = row["attempts"] + 1
        channel = channels.get(row["channel"])
        if channel is None:
            give_up(row, attempts, f"channel {row['channel']!r} is not configured any more", "unconfigured")
            failed += 1
            continue
        try:
            channel.send(message_from_json(f"outbox:{row['id']}", row["message"]), row["destination"])
        except DeliveryError as exc:
            if exc.retryable and attempts < max_attempts:
                retry_at = now + backoff(attempts, exc.retry_after, retry_after_cap=retry_after_cap)
                store.mark_delivery(
                    row["id"], status="pending", attempts=attempts, next_attempt_at=retry_at, error=str(exc)
                )
                blocked.add(target)
                retried += 1
            else:
                kind = exc.kind if not exc.retryable else "out_of_attempts"
                reason = str(exc) if not exc.retryable else f"gave up after {attempts} attempts: {exc}"
                give_up(row, attempts, reason, kind)
                failed += 1
            continue
        store.mark_delivery(row["id"], status="sent", attempts=attempts, next_attempt_at=now)
        on_result(row["channel"], True)
        sent += 1
    return DeliveryStats(sent, retried, failed, held)
