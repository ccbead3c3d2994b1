"""Telegram 429 and an SMTP outage delay messages; none is lost or sent twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.alerts.email import EmailChannel
from monitor.alerts.outbox import deliver_due
from monitor.alerts.telegram import TelegramChannel
from monitor.store import Store
from tests.support_peers import TELEGRAM_TEST_TOKEN, SmtpServer, TelegramServer


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    clock = Clock()
    with Store(tmp_path / "o.db", clock=clock) as s:
        s.clock_ref = clock  # type: ignore[attr-defined]
        yield s


def enqueue(store: Store, n: int) -> None:
    alerts = []
    for i in range(n):
        message = json.dumps({"severity": "warning", "title": f"m: account {i}", "lines": [f"alert {i}"]})
        deliveries = [
            {"channel": "tg", "destination": "-100123", "message": message},
            {"channel": "mail", "destination": "desk@example.com", "message": message},
        ]
        alerts.append(({"subject": f"0x{i:040x}", "severity": "warning", "previous": "ok", "reason": "first",
                        "hf": 1.05, "threshold": 1.1, "detail": message}, deliveries))  # fmt: skip
    store.record_alerts("m", 1, [], alerts)


def test_429_and_smtp_outage_delay_but_never_lose_or_duplicate(store: Store) -> None:
    clock: Clock = store.clock_ref  # type: ignore[attr-defined]
    with TelegramServer() as telegram, SmtpServer() as smtp:
        channels = {
            "tg": TelegramChannel("tg", TELEGRAM_TEST_TOKEN, base_url=telegram.base_url, min_interval_per_chat_s=0),
            "mail": EmailChannel("mail", smtp.host, smtp.port, security="none", sender="l@example.com", timeout=2),
        }
        enqueue(store, 5)
        telegram.too_many_requests(retry_after=30, times=1)
        smtp.stop()  # the mail server is down for a while
        stats = deliver_due(store, channels, clock())
        assert stats.sent == 0 and stats.retried == 2 and stats.held == 8  # order per destination kept
        assert store.due_deliveries(clock() + 1) == []  # later rows wait behind the rescheduled ones
        assert telegram.messages == [] and smtp.messages == []
        pending = store.outbox("pending")
        tg = [r for r in pending if r["channel"] == "tg"]
        assert tg[0]["next_attempt_at"] >= clock() + 30  # Retry-After honoured

        clock.now += 10  # too early for Telegram's retry_after, SMTP still down
        deliver_due(store, channels, clock())
        assert telegram.messages == []

        clock.now += 60
        smtp.start()
        stats = deliver_due(store, channels, clock())
        assert stats.sent == 10 and stats.failed == 0
        assert [m.text.split("\n")[-1] for m in telegram.messages] == [f"alert {i}" for i in range(5)]
        assert len(smtp.messages) == 5
        assert store.outbox("pending") == [] and len(store.outbox("sent")) == 10
        assert deliver_due(store, channels, clock() + 3600).sent == 0  # nothing is sent twice


def test_permanent_failure_is_recorded_not_retried(store: Store) -> None:
    clock: Clock = store.clock_ref  # type: ignore[attr-defined]
    with TelegramServer(blocked_chats=["-100123"]) as telegram, SmtpServer() as smtp:
        channels = {
            "tg": TelegramChannel("tg", TELEGRAM_TEST_TOKEN, base_url=telegram.base_url, min_interval_per_chat_s=0),
            "mail": EmailChannel("mail", smtp.host, smtp.port, security="none", sender="l@example.com"),
        }
        enqueue(store, 1)
        stats = deliver_due(store, channels, clock())
        assert stats.failed == 1 and stats.sent == 1
        (failed,) = store.outbox("failed")
        assert "blocked" in failed["last_error"] and TELEGRAM_TEST_TOKEN not in failed["last_error"]
