"""Deliver the persisted outbox: due rows -> channels, with retries and backoff.

At-least-once: a row is marked sent only after its channel accepted it, so a crash between
the two re-sends it after restart (never loses it). A retryable failure (429, 5xx,
timeout, SMTP down) reschedules the row (``retry_after`` honoured, else exponential
backoff) and holds back later rows for the same destination in this round, so messages
to one chat keep their order. A permanent failure (bad chat, auth) or too many attempts
marks the row failed with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.alerts.channels import Channel, DeliveryError
from monitor.alerts.pipeline import message_from_json
from monitor.store import Store


@dataclass(frozen=True, slots=True)
class DeliveryStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    held: int = 0  # not tried this round: an earlier message to the same destination is waiting


def backoff(attempts: int, retry_after: float | None, base: float = 2.0, cap: float = 600.0) -> float:
    delay = min(cap, base * float(1 << max(0, attempts - 1)))
    return max(delay, retry_after or 0.0)


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
) -> DeliveryStats:
    sent = retried = failed = held = 0
    blocked: set[tuple[str, str]] = set()
    for row in _due(store, now, limit):
        target = (row["channel"], row["destination"])
        if target in blocked:
            held += 1
            continue
        attempts = row["attempts"] + 1
        channel = channels.get(row["channel"])
        if channel is None:
            store.mark_delivery(row["id"], status="failed", attempts=attempts, next_attempt_at=now,
                                error=f"channel {row['channel']!r} is not configured any more")  # fmt: skip
            failed += 1
            continue
        try:
            channel.send(message_from_json(f"outbox:{row['id']}", row["message"]), row["destination"])
        except DeliveryError as exc:
            if exc.retryable and attempts < max_attempts:
                retry_at = now + backoff(attempts, exc.retry_after)
                store.mark_delivery(
                    row["id"], status="pending", attempts=attempts, next_attempt_at=retry_at, error=str(exc)
                )
                blocked.add(target)
                retried += 1
            else:
                store.mark_delivery(row["id"], status="failed", attempts=attempts, next_attempt_at=now, error=str(exc))
                on_result(row["channel"], False)
                failed += 1
            continue
        store.mark_delivery(row["id"], status="sent", attempts=attempts, next_attempt_at=now)
        on_result(row["channel"], True)
        sent += 1
    return DeliveryStats(sent, retried, failed, held)
