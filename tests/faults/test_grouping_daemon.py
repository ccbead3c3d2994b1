"""Grouping, inhibition, silences, acknowledgements and oracle hysteresis through the daemon's own
loop (monitor.service.Monitor.tick + deliver) on the real Aave V3 devnet, against the Telegram peer."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor import cli_silence
from monitor.alerts.factory import build_channels
from monitor.alerts.grouping import CHILD_PREFIX
from monitor.alerts.message import TELEGRAM_TEXT_LIMIT, utf16_len
from monitor.cli import main
from monitor.config import Config, parse_config
from monitor.demo import crash_steps
from monitor.devnet.seed import set_answer, set_price
from monitor.devnet.session import devnet_config
from monitor.service import Monitor
from monitor.store import Store
from tests.support import Devnet
from tests.support_peers import TELEGRAM_TEST_TOKEN, TelegramServer

pytestmark = pytest.mark.devnet

CHAT = "-100555"
MARKET = "aave-v3-devnet"


@pytest.fixture
def telegram() -> Iterator[TelegramServer]:
    with TelegramServer() as server:
        yield server


def config_data(devnet: Devnet, tmp_path: Path, telegram: TelegramServer, accounts: list[str]) -> dict[str, Any]:
    data: dict[str, Any] = devnet_config(devnet.url, devnet.deployment, str(tmp_path / "g.db"))
    data["markets"][0]["accounts"] = accounts
    data["alerts"] = {
        "channels": {"desk": {"type": "telegram", "token_env": "TG_TOKEN", "base_url": telegram.base_url,
                              "min_interval_s": 0}},
        "routes": [{"channel": "desk", "to": CHAT, "min_severity": "watch"}],
        "repeat_interval_s": 3600,
    }  # fmt: skip
    return data


def load(data: dict[str, Any], tmp_path: Path) -> tuple[Config, Path]:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return parse_config(data, path, env={"TG_TOKEN": TELEGRAM_TEST_TOKEN}), path


def chain_time(devnet: Devnet) -> float:
    return float(int(devnet.client.get_block("latest")["timestamp"], 16))


def weth_holders(devnet: Devnet, n: int) -> list[str]:
    return [s.account for s in devnet.seeded if "WETH" in s.collaterals][:n]


def entries(text: str) -> list[str]:
    return [line for line in text.split("\n")[1:] if line.strip()]


def test_an_oracle_jump_that_moves_20_positions_sends_one_grouped_alert(
    devnet: Devnet, tmp_path: Path, telegram: TelegramServer
) -> None:
    config, _ = load(config_data(devnet, tmp_path, telegram, weth_holders(devnet, 60)), tmp_path)
    with Store(config.store.path) as store:
        monitor = Monitor(config, store, build_channels(config.alerts), clock=lambda: chain_time(devnet))
        monitor.tick()  # the jump detector's first look; the book as seeded
        before = len(telegram.messages)
        devnet.client.request("evm_increaseTime", [120])
        set_price(devnet.node, devnet.deployment, "WETH", 2000 * 0.72)  # -28 % in two minutes
        tick = monitor.tick()
        block = tick.scans[0].snapshot.block
        alerts = [a for a in store.alerts(market=MARKET) if a["block"] == block]
        sent = [r for r in store.outbox("sent") if r["alert_id"] in {a["id"] for a in alerts}]
    messages = telegram.messages[before:]
    assert ("jump", "WETH", "critical") in {(a.kind, a.asset, a.severity) for a in tick.anomalies}
    moved = [a for a in alerts if a["cause"] == "oracle:jump:WETH"]
    assert len(moved) >= 20 and len(sent) == len(alerts) > 20
    # one grouped alert: the jump first, the positions it moved under it (all of them), one message
    assert len(messages) == 1, [m.plain.split("\n")[0] for m in messages]
    lines = entries(messages[0].plain)
    assert "oracle" in lines[0] and "WETH" in lines[0] and lines[0].endswith(f"moved {len(moved)} positions:")
    assert sum(1 for line in lines if line.startswith(CHILD_PREFIX)) == len(moved)
    assert utf16_len(messages[0].text) <= TELEGRAM_TEXT_LIMIT
    assert len({r["batch"] for r in sent}) == 1


def test_silence_and_acknowledge_round_trip_through_the_daemon(
    devnet: Devnet, tmp_path: Path, telegram: TelegramServer, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    config, path = load(config_data(devnet, tmp_path, telegram, weth_holders(devnet, 120)), tmp_path)
    monkeypatch.setattr(cli_silence, "clock", lambda: chain_time(devnet))
    set_price(devnet.node, devnet.deployment, "WETH", 1650)
    with Store(config.store.path, clock=lambda: chain_time(devnet)) as store:  # one clock: the chain's
        monitor = Monitor(config, store, build_channels(config.alerts), clock=lambda: chain_time(devnet))
        monitor.tick()
        open_ = {s: row for s, row in store.alert_states(MARKET).items() if row["severity"] in ("watch", "warning")}
        assert len(open_) >= 3 and telegram.messages
        silenced, acked = sorted(open_)[:2]
        assert main(["silence", "add", "--config", str(path), "--account", silenced, "--for", "6h",
                     "--comment", "known, rebalancing"]) == 0  # fmt: skip
        assert main(["ack", acked, "--config", str(path), "--comment", "on it"]) == 0
        capsys.readouterr()

        # an hour later, nothing changed: reminders for every open episode but these two
        devnet.client.request("evm_increaseTime", [3601])
        devnet.node.mine()
        before = len(telegram.messages)
        tick = monitor.tick()
        block = tick.scans[0].snapshot.block
        new = {a["subject"]: a for a in store.alerts(market=MARKET) if a["block"] == block}
        rows = {r["alert_id"]: r for r in store.outbox()}
        assert new and all(a["reason"] == "repeat" for a in new.values())
        assert acked not in new  # acknowledged: no reminder
        assert rows[new[silenced]["id"]]["status"] == "silenced"  # recorded, not sent
        assert {rows[a["id"]]["status"] for s, a in new.items() if s != silenced} == {"sent"}
        batches = {rows[a["id"]]["batch"] for s, a in new.items() if s != silenced}
        assert len(telegram.messages) - before == len(batches) <= 2  # the reminders grouped (split at 4096)

        # the acknowledged position escalates: that is sent, and its reminders come back
        set_price(devnet.node, devnet.deployment, "WETH", 1250)
        monitor.tick()
        states = store.alert_states(MARKET)
        escalated = [a for a in store.alerts(market=MARKET, subject=acked) if a["reason"] == "severity_up"]
        assert escalated
        assert {r["status"] for r in store.outbox() if r["alert_id"] == escalated[-1]["id"]} == {"sent"}
        assert store.active_acks(MARKET) == {}
        devnet.client.request("evm_increaseTime", [3601])
        devnet.node.mine()
        tick = monitor.tick()
        block = tick.scans[0].snapshot.block
        again = {a["subject"]: a for a in store.alerts(market=MARKET) if a["block"] == block}
        if states[acked]["severity"] != "ok":
            assert again[acked]["reason"] == "repeat"

    assert main(["history", "--config", str(path), "--alerts", "--account", silenced, "--format", "json"]) == 0
    history = yaml.safe_load(capsys.readouterr().out)
    assert any(a["delivery"] == "silenced by #1" for a in history)
    assert main(["silence", "expire", "1", "--config", str(path)]) == 0


@pytest.mark.slow
def test_oracle_alerts_do_not_flap_on_the_black_thursday_replay(
    devnet: Devnet, tmp_path: Path, telegram: TelegramServer
) -> None:
    """The devnet replay of 2020-03-12 (the demo's path: ETH and BTC, intraday order, two-hour
    steps): the jump detector fires, pauses and fires again as the price falls in waves; with
    hysteresis each wave of an oracle alert is one episode, never resolved and re-fired within
    the dwell."""
    config, _ = load(config_data(devnet, tmp_path, telegram, weth_holders(devnet, 60)), tmp_path)
    dwell = config.alerts.oracle.resolve_dwell_blocks
    start = {"WETH": 2000 * 10**8, "WBTC": 30000 * 10**8}
    steps = crash_steps(substeps=4)
    base = steps[0].prices
    raw: dict[str, list[int]] = {}  # subject -> blocks at which the detector reported it
    blocks: list[int] = []
    with Store(config.store.path) as store:
        monitor = Monitor(config, store, build_channels(config.alerts), clock=lambda: chain_time(devnet))
        for step in [*steps, *([steps[0]] * 6)]:  # the crash, then the recovery and quiet blocks
            devnet.client.request("evm_increaseTime", [2 * 3600])
            for symbol, answer in start.items():
                set_answer(devnet.node, devnet.deployment, symbol, round(answer * step.prices[symbol] / base[symbol]),
                           mine=False)  # fmt: skip
            devnet.node.mine()
            tick = monitor.tick()
            blocks.append(tick.scans[0].snapshot.block)
            for a in tick.anomalies:
                raw.setdefault(f"oracle:{a.kind}:{a.asset}", []).append(blocks[-1])
        oracle = [a for a in store.alerts(market=MARKET) if a["subject"].startswith("oracle:")]

    # without hysteresis each re-appearance after a quiet block was a new alert (jump, drift, jump...)
    appearances = sum(1 + sum(1 for x, y in itertools.pairwise(s) if blocks.index(y) - blocks.index(x) > 1)
                      for s in raw.values())  # fmt: skip
    assert appearances > len(raw)
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for a in oracle:
        by_subject.setdefault(a["subject"], []).append(a)
    for subject, rows in by_subject.items():
        for resolved, fired in itertools.pairwise(rows):
            if resolved["reason"] == "resolved":
                assert fired["reason"] == "first"
                gap = blocks.index(fired["block"]) - blocks.index(resolved["block"])
                assert gap > dwell, f"{subject} resolved at {resolved['block']} and fired again at {fired['block']}"
        assert rows[-1]["reason"] == "resolved"  # the quiet end closes every episode
    episodes = sum(1 for a in oracle if a["reason"] == "first")
    assert episodes == len(by_subject) < appearances  # one episode per subject over the whole crash
