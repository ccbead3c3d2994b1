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
from monitor.alerts.grouping import Entry, compose, size_limit
from monitor.alerts.message import Message
from monitor.alerts.pipeline import message_from_json
from monitor.alerts.silences import silencing
from monitor.config.alerts import GroupingConfig
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
    silenced: int = 0  # recorded, not sent: a silence matched (monitor.alerts.silences)
    messages: int = 0  # messages sent (a grouped message carries several rows)


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
    grouping: GroupingConfig | None = None,
) -> DeliveryStats:
    """Deliver the due rows. ``on_failure(channel, kind, reason)`` for each message given up on.

    ``grouping`` (``alerts.grouping``): the due rows of one channel and destination go as one
    message (:func:`monitor.alerts.grouping.compose`; split at the channel's size limit), after
    ``group_wait_s``; None: one message per row. Rows a silence matches are marked ``silenced``.
    A grouped message's rows are named (``outbox.batch``) before the send and marked together
    after it (one transaction): a crash between the two re-sends them (at-least-once).
    """
    counts = {"sent": 0, "retried": 0, "failed": 0, "held": 0, "silenced": 0, "messages": 0}
    seen: set[int] = set()
    while True:  # a second round for the copies a fallback route got in the first
        rows = [r for r in _due(store, now, limit) if r["id"] not in seen]
        if not rows:
            return DeliveryStats(**counts)
        seen.update(r["id"] for r in rows)
        _deliver_rows(store, channels, now, rows, counts, max_attempts, on_result, on_failure, fallback,
                      retry_after_cap, grouping)  # fmt: skip


def _deliver_rows(
    store: Store,
    channels: Mapping[str, Channel],
    now: float,
    rows: list[dict[str, Any]],
    counts: dict[str, int],
    max_attempts: int,
    on_result: Callable[[str, bool], None],
    on_failure: Callable[[str, str, str], None],
    fallback: Fallback | None,
    retry_after_cap: float,
    grouping: GroupingConfig | None,
) -> None:
    alerts = store.alerts_by_id([r["alert_id"] for r in rows])
    silences = store.silences(active_at=now)

    def give_up(row: dict[str, Any], attempts: int, reason: str, kind: str) -> None:
        store.mark_delivery(row["id"], status="failed", attempts=attempts, next_attempt_at=now, error=reason)
        log.warning(
            "delivery failed for good",
            extra={"channel": row["channel"], "destination": row["destination"], "outbox_id": row["id"],
                   "alert_id": row["alert_id"], "attempts": attempts, "kind": kind, "reason": reason},
        )  # fmt: skip
        on_result(row["channel"], False)
        on_failure(row["channel"], kind, reason)
        counts["failed"] += 1
        if fallback is not None and (row["channel"], row["destination"]) != (fallback.channel, fallback.destination):
            copy = store.add_delivery(row["alert_id"], fallback.channel, fallback.destination, row["message"])
            log.warning("delivery rerouted", extra={"outbox_id": row["id"], "fallback_outbox_id": copy,
                                                    "channel": fallback.channel})  # fmt: skip

    targets: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        targets.setdefault((row["channel"], row["destination"]), []).append(row)
    for (name, destination), queued in targets.items():
        channel = channels.get(name)
        live = []
        for row in queued:
            silence = silencing(silences, alerts.get(row["alert_id"], {}))
            if silence is not None:
                store.mark_deliveries([row["id"]], status="silenced", attempts=[row["attempts"]], next_attempt_at=now,
                                      silence_id=int(silence["id"]))  # fmt: skip
                counts["silenced"] += 1
            elif channel is None:
                give_up(row, row["attempts"] + 1, f"channel {name!r} is not configured any more", "unconfigured")
            else:
                live.append(row)
        if not live or channel is None:
            continue
        if grouping is not None and _waiting(store, grouping, live, alerts, now):
            counts["held"] += len(live)
            continue
        parts = _parts(channel, live, alerts, grouping)
        for i, (message, part) in enumerate(parts):
            attempts = max(r["attempts"] for r in part) + 1
            ids = [r["id"] for r in part]
            if len(part) > 1:
                store.set_batch(ids, message.key)
            try:
                channel.send(message, destination)
            except DeliveryError as exc:
                if exc.retryable and attempts < max_attempts:
                    retry_at = now + backoff(attempts, exc.retry_after, retry_after_cap=retry_after_cap)
                    store.mark_deliveries(ids, status="pending", attempts=[r["attempts"] + 1 for r in part],
                                          next_attempt_at=retry_at, error=str(exc))  # fmt: skip
                    counts["retried"] += len(part)
                    counts["held"] += sum(len(p) for _, p in parts[i + 1 :])
                    break  # later rows for this destination wait: FIFO per destination
                kind = exc.kind if not exc.retryable else "out_of_attempts"
                reason = str(exc) if not exc.retryable else f"gave up after {attempts} attempts: {exc}"
                for r in part:
                    give_up(r, r["attempts"] + 1, reason, kind)
                continue
            store.mark_deliveries(
                ids, status="sent", attempts=[r["attempts"] + 1 for r in part], next_attempt_at=now, batch=message.key
            )
            for _ in part:  # the metric counts alerts delivered, not messages
                on_result(name, True)
            counts["sent"] += len(part)
            counts["messages"] += 1


def _parts(
    channel: Channel,
    rows: list[dict[str, Any]],
    alerts: Mapping[int, Mapping[str, Any]],
    grouping: GroupingConfig | None,
) -> list[tuple[Message, list[dict[str, Any]]]]:
    """The messages for one destination's due rows and the rows each carries."""
    limit = size_limit(channel) if grouping is not None else None
    if limit is None:
        return [(message_from_json(f"outbox:{r['id']}", r["message"]), [r]) for r in rows]
    assert grouping is not None
    by_id = {r["id"]: r for r in rows}
    entries = [Entry(r["id"], alerts.get(r["alert_id"], {}), message_from_json(f"outbox:{r['id']}", r["message"]))
               for r in rows]  # fmt: skip
    return [(message, [by_id[i] for i in ids]) for message, ids in compose(entries, limit, grouping.max_per_message)]


def _waiting(
    store: Store,
    grouping: GroupingConfig,
    rows: list[dict[str, Any]],
    alerts: Mapping[int, Mapping[str, Any]],
    now: float,
) -> bool:
    """A destination's rows wait: ``group_wait_s`` after the oldest for company, or (repeat
    reminders only) until the group's ``repeat_interval_s`` since its last reminder."""
    if grouping.group_wait_s and now - min(float(r["created_at"]) for r in rows) < grouping.group_wait_s:
        return True
    if grouping.repeat_interval_s and all(alerts.get(r["alert_id"], {}).get("reason") == "repeat" for r in rows):
        last = store.last_repeat_sent(rows[0]["channel"], rows[0]["destination"])
        return last is not None and now - last < grouping.repeat_interval_s
    return False
