"""Delivery failures are told: a permanent failure (400 chat not found, bad TLS) is a warning
with its reason (no secret), a metric, a line of `history --alerts` (offline, without the bot
token) and a WARN of `doctor`; an optional fallback route gets the message; a service's
`retry_after` is capped."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.alerts.outbox import RETRY_AFTER_CAP_S, Fallback, deliver_due
from monitor.alerts.telegram import TelegramChannel
from monitor.cli import main
from monitor.devnet.anvil import free_port
from monitor.doctor import run_doctor
from monitor.metrics import Metrics
from monitor.store import Store
from tests.support_peers import TELEGRAM_TEST_TOKEN, TelegramServer


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    with Store(tmp_path / "o.db", clock=clock) as s:
        yield s


def enqueue(store: Store, chat: str, n: int = 1) -> None:
    alerts = []
    for i in range(n):
        message = json.dumps({"severity": "critical", "title": f"m: account {i}", "lines": [f"alert {i}"]})
        alerts.append(({"subject": f"0x{i + 1:040x}", "severity": "critical", "previous": "ok", "reason": "first",
                        "hf": 1.01, "threshold": 1.1, "detail": message},
                       [{"channel": "tg", "destination": chat, "message": message}]))  # fmt: skip
    store.record_alerts("m", 1, [], alerts)


def channel(base_url: str) -> TelegramChannel:
    return TelegramChannel("tg", TELEGRAM_TEST_TOKEN, base_url=base_url, min_interval_per_chat_s=0, timeout=3)


def test_chat_not_found_is_a_warning_a_metric_and_a_stored_reason(
    store: Store, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    with TelegramServer(chats=[-100111]) as telegram, caplog.at_level(logging.WARNING, logger="liqmon"):
        enqueue(store, "-100999")  # no such chat
        stats = deliver_due(
            store, {"tg": channel(telegram.base_url)}, clock(),
            on_result=lambda c, ok: metrics.alerts_delivered(c, int(ok), int(not ok)),
            on_failure=lambda c, kind, _reason: metrics.delivery_failed(c, kind),
        )  # fmt: skip
    assert stats.failed == 1 and stats.retried == 0
    (failed,) = store.outbox("failed")
    assert "chat not found" in failed["last_error"]
    (record,) = [r for r in caplog.records if r.getMessage() == "delivery failed for good"]
    assert record.levelno == logging.WARNING
    assert "chat not found" in record.reason and record.kind == "chat_not_found"  # type: ignore[attr-defined]
    assert TELEGRAM_TEST_TOKEN not in caplog.text
    text = metrics.text()
    assert 'liqmon_alerts_undeliverable_total{channel="tg",kind="chat_not_found"} 1.0' in text
    assert store.delivery_failures(clock() - 60)[0]["last_error"] == failed["last_error"]


def test_bad_tls_is_permanent_and_told(store: Store, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    with TelegramServer() as plain, caplog.at_level(logging.WARNING, logger="liqmon"):
        https = plain.base_url.replace("http://", "https://")  # TLS to a plain HTTP port: the handshake fails
        enqueue(store, "-100111")
        kinds: list[str] = []
        stats = deliver_due(store, {"tg": channel(https)}, clock(), on_failure=lambda c, k, r: kinds.append(k))
    assert stats.failed == 1 and kinds == ["tls"]
    (failed,) = store.outbox("failed")
    assert "TLS verification" in failed["last_error"] and TELEGRAM_TEST_TOKEN not in failed["last_error"]
    assert any(r.getMessage() == "delivery failed for good" for r in caplog.records)


def test_fallback_route_gets_what_its_route_could_not_deliver(store: Store, clock: Clock) -> None:
    with TelegramServer(chats=[-100111]) as telegram:
        enqueue(store, "-100999", n=2)
        stats = deliver_due(store, {"tg": channel(telegram.base_url)}, clock(), fallback=Fallback("tg", "-100111"))
        chats = [m.chat_id for m in telegram.messages]
    assert stats.failed == 2 and stats.sent == 2
    assert chats == [-100111, -100111] or chats == ["-100111", "-100111"]
    assert {r["destination"] for r in store.outbox("sent")} == {"-100111"}


def test_huge_retry_after_is_capped(store: Store, clock: Clock) -> None:
    with TelegramServer() as telegram:
        telegram.too_many_requests(retry_after=99_999_999)
        enqueue(store, "-100111")
        stats = deliver_due(store, {"tg": channel(telegram.base_url)}, clock())
    assert stats.retried == 1
    (row,) = store.outbox("pending")
    assert clock() < row["next_attempt_at"] <= clock() + RETRY_AFTER_CAP_S  # not in three years


def failing_history(tmp_path: Path, clock: Clock) -> Path:
    db = tmp_path / "h.db"
    with Store(db, clock=clock) as store, TelegramServer(chats=[-100111]) as telegram:
        enqueue(store, "-100999")
        deliver_due(store, {"tg": channel(telegram.base_url)}, clock())
    data: dict[str, Any] = {
        "chains": {"devnet": {"chain_id": 31337, "rpc_urls": [f"http://127.0.0.1:{free_port()}/${{RPC_KEY_UNSET}}"]}},
        "markets": [{"name": "m", "protocol": "aave_v3", "chain": "devnet",
                     "pool_addresses_provider": "0x" + "12" * 20}],
        "store": {"path": str(db)},
        "alerts": {"channels": {"tg": {"type": "telegram", "token_env": "LIQMON_TEST_TOKEN_UNSET"}},
                   "routes": [{"channel": "tg", "to": "-100999"}]},
    }  # fmt: skip
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))
    return config


def test_history_alerts_shows_the_failure_offline_without_the_token(
    tmp_path: Path, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    config = failing_history(tmp_path, clock)
    assert "LIQMON_TEST_TOKEN_UNSET" not in os.environ and "RPC_KEY_UNSET" not in os.environ
    assert main(["history", "--config", str(config), "--alerts", "--format", "json"]) == 0
    (alert,) = json.loads(capsys.readouterr().out)
    assert alert["delivery"].startswith("failed: ") and "chat not found" in alert["delivery"]
    assert alert["deliveries"][0]["status"] == "failed" and alert["deliveries"][0]["attempts"] == 1
    assert main(["history", "--config", str(config), "--alerts"]) == 0
    assert "chat not found" in capsys.readouterr().out


def test_doctor_reports_channels_with_recent_permanent_failures(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = failing_history(tmp_path, clock)
    monkeypatch.setenv("LIQMON_TEST_TOKEN_UNSET", TELEGRAM_TEST_TOKEN)
    monkeypatch.setenv("RPC_KEY_UNSET", "k")
    rows = run_doctor(config, clock=clock)
    (delivery,) = [r for r in rows if r.check == "delivery"]
    assert delivery.status == "WARN" and delivery.target == "tg"
    assert "1 message(s) given up on" in delivery.detail and "chat not found" in delivery.detail
    assert TELEGRAM_TEST_TOKEN not in delivery.detail
    clock.now += 2 * 86_400  # old failures are not "recent"
    assert [r for r in run_doctor(config, clock=clock) if r.check == "delivery"] == []
