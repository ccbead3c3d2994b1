"""`kill -9` of the daemon between a committed state change and its delivery: the message
is sent after restart (at-least-once); SIGTERM stops the daemon cleanly."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.alerts.grouping import entry_line
from monitor.alerts.pipeline import message_from_json
from monitor.devnet.anvil import free_port
from monitor.devnet.seed import set_price
from monitor.devnet.session import devnet_config
from tests.support import Devnet
from tests.support_daemon import rows, start_daemon
from tests.support_peers import TELEGRAM_TEST_TOKEN, TelegramServer

pytestmark = [pytest.mark.devnet, pytest.mark.slow]


def wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_kill_9_between_state_change_and_delivery(devnet: Devnet, tmp_path: Path) -> None:
    port = free_port()  # nothing listens here yet: delivery fails (retryable) until the peer starts
    db = tmp_path / "d.db"
    data: dict[str, Any] = devnet_config(devnet.url, devnet.deployment, str(db))
    data["markets"][0]["accounts"] = [s.account for s in devnet.seeded[:150]]
    data["daemon"] = {"mode": "interval", "interval_s": 1, "deliver_interval_s": 0.3, "log_format": "json"}
    data["alerts"] = {
        "channels": {"desk": {"type": "telegram", "token_env": "TG_TOKEN", "base_url": f"http://127.0.0.1:{port}",
                              "min_interval_s": 0, "timeout_s": 2}},
        "routes": [{"channel": "desk", "to": "-100777", "min_severity": "watch"}],
    }  # fmt: skip
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))
    set_price(devnet.node, devnet.deployment, "WETH", 1500)
    log = tmp_path / "daemon.log"

    first = start_daemon(config, log, append=True)
    try:
        failed_once = "SELECT 1 FROM outbox WHERE attempts >= 1 AND status = 'pending'"
        wait(lambda: bool(rows(db, failed_once)), 60, "a committed alert whose delivery failed")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    alerts = rows(db, "SELECT id FROM alerts")
    pending = rows(db, "SELECT alert_id FROM outbox WHERE status = 'pending'")
    assert alerts and pending and not rows(db, "SELECT 1 FROM outbox WHERE status = 'sent'")

    with TelegramServer(port=port) as telegram:
        second = start_daemon(config, log, append=True)
        try:
            wait(lambda: not rows(db, "SELECT 1 FROM outbox WHERE status = 'pending'"), 90, "the outbox to drain")
        finally:
            second.send_signal(signal.SIGTERM)  # clean shutdown
            assert second.wait(30) == 0
        texts = [m.plain for m in telegram.messages]
    delivered_alerts = {r[0] for r in rows(db, "SELECT alert_id FROM outbox WHERE status = 'sent'")}
    assert {a[0] for a in alerts} <= delivered_alerts  # none lost
    for (message,) in rows(db, "SELECT message FROM outbox"):  # at-least-once: each alert alone or in a group
        assert any(entry_line(message_from_json("", message)) in t for t in texts)
    assert len(texts) >= len({b or i for b, i in rows(db, "SELECT batch, id FROM outbox WHERE status = 'sent'")})
    log_text = log.read_text()
    assert '"msg": "stopping"' in log_text and '"signal": "SIGTERM"' in log_text
    assert TELEGRAM_TEST_TOKEN not in log_text  # secrets never logged
