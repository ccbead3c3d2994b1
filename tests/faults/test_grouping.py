"""Grouping against the local Telegram Bot API peer: one message per destination, split cleanly,
an oracle alert heading the positions it moved, silences, and at-least-once across a crash."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.alerts.grouping import CHILD_PREFIX, Entry, SizeLimit, compose, entry_line, size_limit
from monitor.alerts.message import TELEGRAM_TEXT_LIMIT, Message, utf16_len
from monitor.alerts.outbox import deliver_due
from monitor.alerts.telegram import TelegramChannel
from monitor.config.alerts import GroupingConfig
from monitor.store import Store
from tests.support_peers import TELEGRAM_TEST_TOKEN, TelegramServer

CHAT = "-100123"
T0 = 1_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    with Store(tmp_path / "g.db", clock=clock) as s:
        yield s


@pytest.fixture
def telegram() -> Iterator[TelegramServer]:
    with TelegramServer() as server:
        yield server


def tg(server: TelegramServer) -> dict[str, Any]:
    return {"tg": TelegramChannel("tg", TELEGRAM_TEST_TOKEN, base_url=server.base_url, min_interval_per_chat_s=0)}


def account(i: int) -> str:
    return f"0x{i + 1:040x}"


Alert = tuple[dict[str, Any], list[dict[str, Any]]]


def alert(i: int, severity: str = "warning", hf: float = 1.08, cause: str | None = None, title: str = "",
          subject: str | None = None, reason: str = "first") -> Alert:  # fmt: skip
    subject = subject or account(i)
    text = json.dumps({"severity": severity, "title": title or f"m: {subject} HF {hf:.4f}",
                       "lines": [f"body line of {subject}", "what to do"]})  # fmt: skip
    row = {"subject": subject, "severity": severity, "previous": "ok", "reason": reason, "hf": hf, "threshold": 1.1,
           "detail": text, "cause": cause}  # fmt: skip
    return row, [{"channel": "tg", "destination": CHAT, "message": text}]


def entries(text: str) -> list[str]:
    """The entry lines of a grouped message (after its headline)."""
    return [line for line in text.split("\n")[1:] if line.strip()]


def assert_fewest(messages: list[Any]) -> None:
    """Each message within 4096 UTF-16 units, and none could have taken the next one's first entry:
    an order-keeping split with fewer parts does not exist."""
    assert all(utf16_len(m.text) <= TELEGRAM_TEXT_LIMIT for m in messages)
    for this, following in itertools.pairwise(messages):
        assert utf16_len(this.text) + 1 + utf16_len(entries(following.text)[0]) > TELEGRAM_TEXT_LIMIT - 15


def test_a_tick_moving_50_positions_to_one_chat_sends_one_message(store: Store, telegram: TelegramServer) -> None:
    severities = ["watch", "warning", "critical", "liquidatable", "warning"]
    store.record_alerts("m", 1, [], [alert(i, severities[i % 5], hf=1.0 + (i % 7) / 100,
                                           title=f"m: {account(i)[:6]}…{account(i)[-4:]} HF {1.0 + (i % 7) / 100:.4f}")
                                     for i in range(50)])  # fmt: skip
    ungrouped = len(store.outbox("pending"))
    stats = deliver_due(store, tg(telegram), T0, grouping=GroupingConfig())
    assert ungrouped == 50 and stats.sent == 50 and stats.messages == 1  # was 50 messages
    (message,) = telegram.messages
    assert utf16_len(message.text) <= TELEGRAM_TEXT_LIMIT
    first = message.plain.split("\n")[0]
    assert "50 alerts: 10 liq, 10 crit, 20 warn, 10 watch" in first and len(first) <= 80
    lines = entries(message.plain)
    assert sorted(lines) == sorted(
        entry_line(
            Message("", severities[i % 5], f"m: {account(i)[:6]}…{account(i)[-4:]} HF {1.0 + (i % 7) / 100:.4f}")
        )
        for i in range(50)
    )
    # most urgent first: severity, then the lowest HF
    rank = {entry_line(Message("", s, "x"))[:-1]: -k for k, s in enumerate(["watch", "warning", "critical",
                                                                              "liquidatable"])}  # fmt: skip
    keys = [(next(v for p, v in rank.items() if e.startswith(p)), float(e.rsplit("HF ", 1)[1])) for e in lines]
    assert keys == sorted(keys)
    assert len({r["batch"] for r in store.outbox("sent")}) == 1
    assert deliver_due(store, tg(telegram), T0 + 3600, grouping=GroupingConfig()).sent == 0  # nothing twice


def test_50_full_address_alerts_take_the_fewest_messages(store: Store, telegram: TelegramServer) -> None:
    store.record_alerts("m", 1, [], [alert(i, hf=1.0 + i / 1000) for i in range(50)])
    stats = deliver_due(store, tg(telegram), T0, grouping=GroupingConfig())
    assert stats.sent == 50 and stats.messages == len(telegram.messages) <= 2
    assert_fewest(telegram.messages)
    assert sum(len(entries(m.plain)) for m in telegram.messages) == 50


def test_without_grouping_each_row_is_its_own_message(store: Store, telegram: TelegramServer) -> None:
    store.record_alerts("m", 1, [], [alert(i) for i in range(5)])
    assert deliver_due(store, tg(telegram), T0).messages == 5 and len(telegram.messages) == 5


def test_a_big_tick_is_split_into_the_fewest_messages_within_4096_utf16_units(
    store: Store, telegram: TelegramServer
) -> None:
    # titles with emoji (2 UTF-16 units each) and markup-escaped characters: the limit is in UTF-16 units of HTML
    alerts = [alert(i, title=f"m: {account(i)} 🔥 <&> HF {1 + i / 1000:.4f}") for i in range(300)]
    store.record_alerts("m", 1, [], alerts)
    stats = deliver_due(store, tg(telegram), T0, grouping=GroupingConfig(max_per_message=1000))
    messages = telegram.messages
    assert stats.sent == 300 and stats.messages == len(messages) > 1
    seen = [line for m in messages for line in entries(m.plain)]
    assert len(seen) == 300 == len(set(seen))  # every alert exactly once, none cut
    assert_fewest(messages)
    assert [m.plain.split("\n")[0].rsplit("(part ", 1)[1] for m in messages] == [
        f"{i + 1}/{len(messages)})" for i in range(len(messages))
    ]


def test_max_per_message_caps_the_entries(store: Store, telegram: TelegramServer) -> None:
    store.record_alerts("m", 1, [], [alert(i) for i in range(25)])
    stats = deliver_due(store, tg(telegram), T0, grouping=GroupingConfig(max_per_message=10))
    assert stats.messages == 3 and [len(entries(m.plain)) for m in telegram.messages] == [10, 10, 5]


def test_an_oracle_alert_heads_the_positions_it_moved(store: Store, telegram: TelegramServer) -> None:
    cause = "oracle:jump:WETH"
    rows = [alert(i, "warning", hf=1.05 + i / 1000, cause=cause) for i in range(20)]
    rows.append(alert(99, "watch", hf=1.3))  # not moved by it
    rows.append(alert(0, "critical", hf=0.0, subject=cause, title="m: oracle jump on WETH"))
    store.record_alerts("m", 1, [], rows)
    stats = deliver_due(store, tg(telegram), T0, grouping=GroupingConfig())
    assert stats.messages == 1 and stats.sent == 22
    lines = entries(telegram.messages[0].plain)
    assert lines[0] == entry_line(Message("", "critical", "m: oracle jump on WETH")) + " — moved 20 positions:"
    moved = lines[1:21]
    assert all(line.startswith(CHILD_PREFIX) for line in moved)
    assert [float(x.rsplit("HF ", 1)[1]) for x in moved] == sorted(1.05 + i / 1000 for i in range(20))
    assert account(99) in lines[21] and not lines[21].startswith(CHILD_PREFIX)


def test_a_split_oracle_list_repeats_its_head_and_carries_each_row_once() -> None:
    head = Entry(1, {"subject": "oracle:jump:WETH", "market": "m", "severity": "critical"},
                 Message("", "critical", "m: oracle jump on WETH"))  # fmt: skip
    kids = [Entry(10 + i, {"subject": account(i), "market": "m", "severity": "warning", "hf": 1.1,
                           "cause": "oracle:jump:WETH"}, Message("", "warning", f"m: {account(i)} HF 1.1000"))
            for i in range(30)]  # fmt: skip
    parts = compose([head, *kids], SizeLimit(600, lambda m: len(m.plain())), 100)
    assert len(parts) > 2
    carried = [i for _, ids in parts for i in ids]
    assert sorted(carried) == [1, *range(10, 40)]  # each row in exactly one part
    for message, _ in parts[1:]:
        assert message.lines[0] == entry_line(head.message) + " (continued)"
    assert all(len(m.plain()) <= 600 for m, _ in parts)


def test_group_wait_holds_a_new_group_for_company(store: Store, telegram: TelegramServer, clock: Clock) -> None:
    grouping = GroupingConfig(group_wait_s=30)
    store.record_alerts("m", 1, [], [alert(0)])
    assert deliver_due(store, tg(telegram), clock(), grouping=grouping).held == 1
    clock.now += 10
    store.record_alerts("m", 2, [], [alert(1), alert(2)])
    assert deliver_due(store, tg(telegram), clock(), grouping=grouping).sent == 0
    clock.now += 21
    assert deliver_due(store, tg(telegram), clock(), grouping=grouping).messages == 1
    assert len(telegram.messages) == 1 and "3 alerts" in telegram.messages[0].plain.split("\n")[0]


def test_repeat_reminders_to_a_destination_at_most_every_group_interval(
    store: Store, telegram: TelegramServer, clock: Clock
) -> None:
    grouping = GroupingConfig(repeat_interval_s=3600)
    store.record_alerts("m", 1, [], [alert(0, reason="repeat")])
    assert deliver_due(store, tg(telegram), clock(), grouping=grouping).sent == 1
    clock.now += 600
    store.record_alerts("m", 2, [], [alert(1, reason="repeat")])
    assert deliver_due(store, tg(telegram), clock(), grouping=grouping).held == 1  # a reminder 10 min later: waits
    store.record_alerts("m", 3, [], [alert(2, reason="first")])  # news goes at once, the reminder with it
    assert deliver_due(store, tg(telegram), clock(), grouping=grouping).sent == 2
    assert len(telegram.messages) == 2


def test_a_silenced_alert_is_recorded_not_sent(store: Store, telegram: TelegramServer) -> None:
    silence = store.add_silence(account=account(1), market=None, severity=None, starts_at=T0 - 1, ends_at=T0 + 60,
                                comment="known")  # fmt: skip
    store.record_alerts("m", 1, [], [alert(0), alert(1), alert(2)])
    stats = deliver_due(store, tg(telegram), T0, grouping=GroupingConfig())
    assert stats.silenced == 1 and stats.sent == 2 and stats.messages == 1
    (silenced,) = store.outbox("silenced")
    assert silenced["silence_id"] == silence and account(1) not in telegram.messages[0].plain


class CrashAfterSend:
    """A Telegram channel that dies (as kill -9 would) after the peer accepted the message."""

    def __init__(self, inner: TelegramChannel) -> None:
        self.inner = inner
        self.name = inner.name

    def validate_destination(self, destination: str) -> None:
        self.inner.validate_destination(destination)

    def send(self, message: Message, destination: str) -> None:
        self.inner.send(message, destination)
        raise SystemExit(137)


def test_a_crash_between_a_grouped_send_and_its_mark_resends_never_loses(
    store: Store, telegram: TelegramServer
) -> None:
    store.record_alerts("m", 1, [], [alert(i) for i in range(12)])
    crashing = {"tg": CrashAfterSend(tg(telegram)["tg"])}
    crashing["tg"].size_limit = size_limit(crashing["tg"].inner)  # type: ignore[attr-defined]
    with pytest.raises(SystemExit):
        deliver_due(store, crashing, T0, grouping=GroupingConfig())
    pending = store.outbox("pending")
    assert len(pending) == 12 and len({r["batch"] for r in pending}) == 1  # named before the send, not marked
    assert len(telegram.messages) == 1
    stats = deliver_due(store, tg(telegram), T0 + 5, grouping=GroupingConfig())  # the restarted daemon
    assert stats.sent == 12 and store.outbox("pending") == []
    assert len(telegram.messages) == 2 and telegram.messages[0].plain == telegram.messages[1].plain  # at least once


def test_a_retryable_failure_reschedules_every_row_of_the_group(store: Store, telegram: TelegramServer) -> None:
    store.record_alerts("m", 1, [], [alert(i) for i in range(8)])
    telegram.too_many_requests(retry_after=30)
    stats = deliver_due(store, tg(telegram), T0, grouping=GroupingConfig())
    assert stats.retried == 8 and stats.sent == 0
    assert {r["next_attempt_at"] for r in store.outbox("pending")} == {T0 + 30}
    assert deliver_due(store, tg(telegram), T0 + 31, grouping=GroupingConfig()).messages == 1


def test_max_per_message_1_sends_each_alert_as_its_own_full_message(store: Store, telegram: TelegramServer) -> None:
    rows = [alert(i, cause="oracle:jump:WETH") for i in range(3)]
    rows.append(alert(0, "critical", hf=0.0, subject="oracle:jump:WETH", title="m: oracle jump on WETH"))
    store.record_alerts("m", 1, [], rows)
    stats = deliver_due(store, tg(telegram), T0, grouping=GroupingConfig(max_per_message=1))
    assert stats.messages == 4 and [m.plain.count("what to do") for m in telegram.messages] == [1, 1, 1, 1]
    assert [r["batch"] for r in store.outbox("sent")] == [f"outbox:{r['id']}" for r in store.outbox("sent")]
