"""The real `liqmon run` with webhook channels: `kill -9` between a committed state change and its
Slack / generic-webhook delivery loses nothing (at-least-once after restart, the webhook URL never
logged); and "warn me at HF 1.5 for my own wallet" (alerts.accounts.<wallet>.levels) fires at
HF 1.49 for that wallet only."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.devnet.anvil import free_port
from monitor.devnet.seed import current_prices, set_answer, set_price
from monitor.devnet.session import devnet_config
from monitor.models import WAD
from monitor.protocols import aave_v3_abi as abi
from tests.support import Devnet
from tests.support_daemon import rows, start_daemon
from tests.support_webhooks import SLACK_PATH, WebhookServer

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

SIGNING_KEY = "whsec-daemon-test-key-0123456789"


def wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def write_config(tmp_path: Path, devnet: Devnet, accounts: list[str], alerts: dict[str, Any]) -> tuple[Path, Path]:
    db = tmp_path / "d.db"
    data: dict[str, Any] = devnet_config(devnet.url, devnet.deployment, str(db))
    data["markets"][0]["accounts"] = accounts
    data["daemon"] = {"mode": "interval", "interval_s": 1, "deliver_interval_s": 0.3, "log_format": "json"}
    data["alerts"] = alerts
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))
    return config, db


def test_kill_9_between_state_change_and_webhook_delivery(
    devnet: Devnet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack_port, hook_port = free_port(), free_port()  # nothing listens yet: deliveries fail (retryable)
    monkeypatch.setenv("SLACK_URL", f"http://127.0.0.1:{slack_port}{SLACK_PATH}")
    monkeypatch.setenv("HOOK_KEY", SIGNING_KEY)
    config, db = write_config(tmp_path, devnet, [s.account for s in devnet.seeded[:150]], {
        "channels": {
            "ops": {"type": "slack", "url": "${SLACK_URL}", "min_interval_s": 0, "timeout_s": 2},
            "hook": {"type": "webhook", "url": f"http://127.0.0.1:{hook_port}/hooks/liqmon", "secret_env": "HOOK_KEY",
                     "timeout_s": 2},
        },
        "routes": [{"channel": "ops", "min_severity": "watch"}, {"channel": "hook", "min_severity": "watch"}],
    })  # fmt: skip
    set_price(devnet.node, devnet.deployment, "WETH", 1500)
    log = tmp_path / "daemon.log"

    first = start_daemon(config, log, append=True)
    try:
        failed_once = "SELECT count(DISTINCT channel) FROM outbox WHERE attempts >= 1 AND status = 'pending'"
        wait(lambda: (rows(db, failed_once) or [(0,)])[0][0] == 2, 90, "committed alerts whose deliveries failed")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    alerts = {r[0] for r in rows(db, "SELECT id FROM alerts")}
    assert alerts and not rows(db, "SELECT 1 FROM outbox WHERE status = 'sent'")

    with WebhookServer("slack", port=slack_port) as slack, WebhookServer("generic", secret=SIGNING_KEY,
                                                                          port=hook_port) as hook:  # fmt: skip
        second = start_daemon(config, log, append=True)
        try:
            wait(lambda: not rows(db, "SELECT 1 FROM outbox WHERE status = 'pending'"), 120, "the outbox to drain")
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0
        slack_got, hook_got = slack.received, hook.received
    sent = rows(db, "SELECT channel, alert_id FROM outbox WHERE status = 'sent'")
    for channel in ("ops", "hook"):
        assert alerts <= {a for c, a in sent if c == channel}  # none lost, on either channel
    assert slack_got and hook_got  # one message per alert, or grouped: every alert is in one of them
    texts = "\n".join(json.dumps(r.json) for r in hook_got).lower()
    subjects = [r[0] for r in rows(db, "SELECT subject FROM alerts")]
    assert all(s[-4:].lower() in texts for s in subjects)  # each position named (in full or short form)
    assert rows(db, "SELECT 1 FROM outbox WHERE status = 'failed'") == []  # signatures all accepted
    log_text = log.read_text()
    assert SLACK_PATH.rsplit("/", 1)[1] not in log_text and SIGNING_KEY not in log_text  # secrets never logged


def _hf(devnet: Devnet, account: str) -> float:
    raw = devnet.client.eth_call(devnet.deployment.pool, abi.GET_USER_ACCOUNT_DATA.encode(account), "latest")
    return int(abi.GET_USER_ACCOUNT_DATA.decode(raw)[5]) / WAD


def test_own_wallet_warns_at_its_own_level_and_no_other_wallet_does(devnet: Devnet, tmp_path: Path) -> None:
    """alerts.accounts.<mine>.levels.warning 1.5: at HF 1.49 mine is warned; another WETH/stable
    position at about the same HF is not (the optimized warning level is far lower)."""
    stables = {"USDC", "DAI", "USDT"}
    weth_only = [s for s in devnet.seeded if s.collaterals == ("WETH",) and s.debt in stables and not s.emode]
    prices = current_prices(devnet.node, devnet.deployment)
    hfs = {s.account: _hf(devnet, s.account) for s in weth_only[:80]}
    mine = max((a for a, h in hfs.items() if 1.6 < h < 3.0), key=lambda a: hfs[a])
    scale = 1.49 / hfs[mine]  # WETH down so that mine lands at HF 1.49 (its HF is linear in the WETH price)
    others = [a for a, h in hfs.items() if a != mine and 1.42 <= h * scale <= 1.49]
    assert others, "the seeded book has no second WETH/stable position near HF 1.49"
    set_answer(devnet.node, devnet.deployment, "WETH", round(prices["WETH"] * scale))
    assert 1.485 <= _hf(devnet, mine) < 1.5 and all(1.4 <= _hf(devnet, a) < 1.5 for a in others)

    with WebhookServer("generic") as hook:
        config, db = write_config(tmp_path, devnet, [mine, *others], {
            "accounts": {mine: {"label": "treasury", "levels": {"warning": 1.5}}},
            "channels": {"hook": {"type": "webhook", "url": hook.url, "timeout_s": 2}},
            "routes": [{"channel": "hook", "min_severity": "warning"}],
        })  # fmt: skip
        daemon = start_daemon(config, tmp_path / "daemon.log")
        try:
            hook.wait_for(1, timeout=90)
            ticks = "SELECT count(*) FROM alerts"
            time.sleep(3)  # a few more ticks: nothing else may arrive
            assert rows(db, ticks)
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(30) == 0
        got = hook.received
    states = dict(rows(db, "SELECT subject, severity FROM alert_state"))
    assert states.get(mine) == "warning"
    assert all(states.get(a, "ok") in ("ok", "watch") for a in others)
    assert len(got) == 1 and got[0].json["severity"] == "warning"
    sent = json.dumps(got[0].json)
    assert mine in sent or mine.lower() in sent.lower()
    assert got[0].json["fields"]["label"] == "treasury"  # alerts.accounts.<mine>.label names the wallet
    assert not any(a.lower() in sent.lower() for a in others)
