"""Grouping: one message per destination per delivery round, as Alertmanager's dispatcher does.

The due outbox rows of one channel and destination (:func:`monitor.alerts.outbox.deliver_due`)
become :func:`compose`'s parts: the alerts sorted by urgency (severity, then the lowest HF), an
oracle alert followed by the positions it moved (``alerts.cause``, :mod:`monitor.alerts.inhibit`),
packed into as few messages as the channel's size limit (:func:`size_limit`: Telegram 4,096
UTF-16 units of the HTML it posts, email a generous 100,000 characters) and
``alerts.grouping.max_per_message`` entries allow. A split never cuts an entry; a part that
continues an oracle alert's list repeats its line. One alert alone (or every alert, with
``max_per_message: 1``) is sent as its own full message; the console and channels without a size
limit here (PagerDuty: one incident per episode) are never grouped.

Each entry is one line: :func:`entry_line`, the alert's summary line (:mod:`monitor.alerts.render`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from monitor.alerts.dedup import rank
from monitor.alerts.inhibit import ORACLE_PREFIX
from monitor.alerts.message import TELEGRAM_TEXT_LIMIT, Message, utf16_len

EMAIL_TEXT_LIMIT: Final = 100_000
CHILD_PREFIX: Final = "  ↳ "
_PART_ROOM: Final = " (part 999/999)"


@dataclass(frozen=True, slots=True)
class SizeLimit:
    """A channel's limit on one message, in the unit ``measure`` counts."""

    limit: int
    measure: Callable[[Message], int]


def _html_units(message: Message) -> int:
    return utf16_len(message.html())


def _plain_chars(message: Message) -> int:
    return len(message.plain())


_BY_CHANNEL_CLASS: Final = {
    "TelegramChannel": SizeLimit(TELEGRAM_TEXT_LIMIT, _html_units),
    "EmailChannel": SizeLimit(EMAIL_TEXT_LIMIT, _plain_chars),
    "SlackChannel": SizeLimit(12_000, _plain_chars),
    "DiscordChannel": SizeLimit(4_000, _plain_chars),
    "WebhookChannel": SizeLimit(EMAIL_TEXT_LIMIT, _plain_chars),
}


def size_limit(channel: object) -> SizeLimit | None:
    """The channel's own ``size_limit`` attribute, else the table's; None (the console, an
    unknown channel): no grouping, one message per alert."""
    own = getattr(channel, "size_limit", None)
    if isinstance(own, SizeLimit):
        return own
    return _BY_CHANNEL_CLASS.get(type(channel).__name__)


@dataclass(frozen=True, slots=True)
class Entry:
    """One due outbox row with its alert and its rendered message."""

    outbox_id: int
    alert: Mapping[str, Any]
    message: Message


def entry_line(message: Message) -> str:
    """The one line an alert takes in a grouped message: its summary line (badge, who, market,
    HF -> level, the liquidation price; <= 120 characters), the headline for a message without one."""
    return message.summary_line()


def urgency(entry: Entry) -> tuple[int, float, int]:
    """Sort key, most urgent first: severity (a resolution last), then the lowest HF, then age."""
    hf = entry.alert.get("hf")
    return (-rank(str(entry.alert.get("severity", "ok"))), float(hf) if hf is not None else float("inf"),
            entry.outbox_id)  # fmt: skip


def batch_key(outbox_ids: Sequence[int]) -> str:
    """The key of the message carrying these rows (``outbox:7`` for one row), stable across re-sends."""
    if len(outbox_ids) == 1:
        return f"outbox:{outbox_ids[0]}"
    digest = hashlib.sha256(",".join(map(str, outbox_ids)).encode()).hexdigest()[:12]
    return f"group:{min(outbox_ids)}+{len(outbox_ids) - 1}:{digest}"


def compose(entries: Sequence[Entry], limit: SizeLimit, max_per_message: int) -> list[tuple[Message, list[int]]]:
    """The messages for one destination and, for each, the outbox rows it carries."""
    if not entries:
        return []
    if len(entries) == 1 or max_per_message == 1:  # alone: the alert's own message, in arrival order
        return [(replace(e.message, key=batch_key([e.outbox_id])), [e.outbox_id]) for e in entries]
    parts = _pack(_blocks(entries), limit, max_per_message)
    out = []
    for i, part in enumerate(parts):
        carried = [e for e, _ in part if e is not None]
        ids = [e.outbox_id for e in carried]
        suffix = f" (part {i + 1}/{len(parts)})" if len(parts) > 1 else ""
        message = Message(batch_key(ids), _severity(carried), _title(carried) + suffix, tuple(x for _, x in part))
        out.append((message, ids))
    return out


def _blocks(entries: Sequence[Entry]) -> list[tuple[Entry, list[Entry]]]:
    """(entry, the positions it moved) in urgency order; a caused entry whose oracle alert is not in
    this batch stands alone."""
    oracle = {(e.alert.get("market"), e.alert.get("subject")): e for e in entries
              if str(e.alert.get("subject", "")).startswith(ORACLE_PREFIX)}  # fmt: skip
    children: dict[int, list[Entry]] = {}
    top: list[Entry] = []
    for e in entries:
        parent = oracle.get((e.alert.get("market"), e.alert.get("cause")))
        if parent is not None and parent is not e:
            children.setdefault(parent.outbox_id, []).append(e)
        else:
            top.append(e)

    def block_key(e: Entry) -> tuple[int, float, int]:
        keys = [urgency(e)] + [urgency(c) for c in children.get(e.outbox_id, [])]
        return min(keys)

    top.sort(key=block_key)
    return [(e, sorted(children.get(e.outbox_id, []), key=urgency)) for e in top]


Item = tuple[Entry | None, str]  # an entry and its line; None: a repeated head (carries no row)


def _pack(blocks: Sequence[tuple[Entry, list[Entry]]], limit: SizeLimit, max_per_message: int) -> list[list[Item]]:
    """Greedy packing of the entry lines into parts within the limit (the title's room reserved)."""
    parts: list[list[Item]] = []
    current: list[Item] = []

    def fits(candidate: list[Item]) -> bool:
        carried = [e for e, _ in candidate if e is not None]
        probe = Message("", "critical", _title(carried) + _PART_ROOM, tuple(x for _, x in candidate))
        return len(carried) <= max_per_message and limit.measure(probe) <= limit.limit

    def add(item: Item, parent: Entry | None) -> None:
        nonlocal current
        if current and not fits([*current, item]):
            parts.append(current)
            current = []
            if parent is not None:  # the list continues: repeat its head (no row of its own)
                current.append((None, entry_line(parent.message) + " (continued)"))
        current.append(item)

    for parent, kids in blocks:
        add((parent, entry_line(parent.message)), None)
        if kids:
            current[-1] = (parent, current[-1][1] + f" — moved {len(kids)} position{'s' if len(kids) > 1 else ''}:")
        for kid in kids:
            add((kid, CHILD_PREFIX + entry_line(kid.message)), parent)
    if current:
        parts.append(current)
    return parts


_SHORT: Final = {"liquidatable": "liq", "critical": "crit", "warning": "warn", "watch": "watch", "anomaly": "oracle",
                 "resolved": "back to safe", "ok": "ok"}  # fmt: skip
TITLE_ROOM: Final = 51  # 80 (a phone's preview) - the severity header ("🚨 LIQUIDATABLE ") - " (part 99/99)"


def _title(entries: Sequence[Entry]) -> str:
    """``100 alerts: 3 liq, 28 crit, 32 warn, 37 watch``: within :data:`TITLE_ROOM` characters
    (counts dropped from the mildest end when even the short words do not fit)."""
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.message.severity] = counts.get(e.message.severity, 0) + 1
    order = ("liquidatable", "critical", "warning", "watch", "anomaly", "resolved", "ok")
    n = len(entries)
    head = f"{n} alert{'s' if n != 1 else ''}"
    parts = [f"{counts[s]} {_SHORT[s]}" for s in order if s in counts]
    while parts and len(f"{head}: {', '.join(parts)}") > TITLE_ROOM:
        parts.pop()
    return f"{head}: {', '.join(parts)}" if parts else head


def _severity(entries: Sequence[Entry]) -> str:
    severities = [e.message.severity for e in entries]
    live = [s for s in severities if s != "resolved"]
    return max(live, key=rank) if live else "resolved"
