"""Oracle anomalies live: a Chainlink-compatible reference feed beside the protocol oracle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode

from monitor.alerts.console import ConsoleChannel
from monitor.chain.abi import fn
from monitor.config import parse_config
from monitor.contracts import load_artifact
from monitor.devnet.node import Tx
from monitor.devnet.seed import set_price
from monitor.devnet.session import devnet_config
from monitor.service import Monitor
from monitor.store import Store
from tests.support import Devnet

pytestmark = pytest.mark.devnet

SET_ANSWER = fn("setAnswer(int256)")
SET_ROUND_DATA = fn("setRoundData(int256,uint256)")


def deploy_feed(devnet: Devnet, answer: int) -> str:
    artifact = load_artifact("LiqmonPriceFeed")
    creation = bytes.fromhex(artifact["bytecode"][2:]) + encode(["uint8", "string", "int256"], [8, "ETH / USD", answer])
    return devnet.node.deploy_code(devnet.deployment.admin, creation, "LiqmonPriceFeed")


def test_divergence_and_stale_feed_alert_and_resolve(devnet: Devnet, tmp_path: Path, capsys: Any) -> None:
    feed = deploy_feed(devnet, 2000 * 10**8)
    data: dict[str, Any] = devnet_config(devnet.url, devnet.deployment, str(tmp_path / "o.db"))
    data["markets"][0]["accounts"] = [s.account for s in devnet.seeded[:20]]
    data["alerts"] = {
        "oracle": {"chainlink_feeds": {"WETH": feed}, "heartbeat_s": 3600, "stale_margin_s": 300,
                   "divergence_warning_bps": 100, "divergence_critical_bps": 300,
                   "resolve_dwell_blocks": 0, "resolve_dwell_s": 0},  # resolved at once (hysteresis: test_grouping)
        "routes": [{"channel": "console", "min_severity": "warning"}],
    }  # fmt: skip
    config = parse_config(data, tmp_path / "c.yaml")
    admin = devnet.deployment.admin

    def kinds(tick: Any) -> set[tuple[str, str, str]]:
        return {(a.kind, a.asset, a.severity) for a in tick.anomalies}

    with Store(config.store.path) as store:
        monitor = Monitor(config, store, {"console": ConsoleChannel()})
        assert kinds(monitor.tick()) == set()  # same price, fresh feed

        devnet.node.send(Tx(admin, feed, SET_ANSWER.encode(2040 * 10**8), 200_000, "setAnswer"))  # +2.0 %
        assert kinds(monitor.tick()) == {("divergence", "WETH", "warning")}
        devnet.node.send(Tx(admin, feed, SET_ANSWER.encode(2100 * 10**8), 200_000, "setAnswer"))  # +5.0 %
        assert kinds(monitor.tick()) == {("divergence", "WETH", "critical")}

        now = int(devnet.client.get_block("latest")["timestamp"], 16)
        devnet.node.send(Tx(admin, feed, SET_ROUND_DATA.encode(2000 * 10**8, now - 4000), 200_000, "stale round"))
        assert kinds(monitor.tick()) == {("stale", "WETH", "warning")}

        devnet.node.send(Tx(admin, feed, SET_ANSWER.encode(2000 * 10**8), 200_000, "fresh"))
        set_price(devnet.node, devnet.deployment, "WETH", 2000)
        assert kinds(monitor.tick()) == set()
        alerts = store.alerts()
    oracle = [(a["subject"], a["severity"], a["reason"]) for a in alerts if a["subject"].startswith("oracle:")]
    assert oracle == [
        ("oracle:divergence:WETH", "warning", "first"),
        ("oracle:divergence:WETH", "critical", "severity_up"),
        ("oracle:divergence:WETH", "ok", "resolved"),
        ("oracle:stale:WETH", "warning", "first"),
        ("oracle:stale:WETH", "ok", "resolved"),
    ]
    out = capsys.readouterr().out
    assert "🔴 CRITICAL oracle divergence on WETH · aave-v3-devnet · " in out and "✅ RESOLVED " in out
