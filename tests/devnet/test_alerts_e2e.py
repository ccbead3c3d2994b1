"""End to end on the devnet: a real crash path, real Aave V3, Telegram and SMTP peers."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.alerts.factory import build_channels
from monitor.config import Config, parse_config
from monitor.demo import crash_steps
from monitor.devnet.seed import set_answer
from monitor.devnet.session import devnet_config
from monitor.models import WAD
from monitor.service import Monitor
from monitor.store import Store
from tests.support import Devnet
from tests.support_peers import TELEGRAM_TEST_TOKEN, SmtpServer, TelegramServer

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

CHAT = "-1001234567890"
STEP_SECONDS = 2 * 3600


@pytest.fixture
def peers() -> Iterator[tuple[TelegramServer, SmtpServer]]:
    with TelegramServer() as telegram, SmtpServer(tls="starttls") as smtp:
        yield telegram, smtp


def alert_config(devnet: Devnet, tmp_path: Path, telegram: TelegramServer, smtp: SmtpServer, mine: list[str]) -> Config:
    data: dict[str, Any] = devnet_config(devnet.url, devnet.deployment, str(tmp_path / "alerts.db"))
    data["alerts"] = {
        "channels": {
            "desk": {"type": "telegram", "token_env": "TG_TOKEN", "base_url": telegram.base_url, "min_interval_s": 0},
            "mail": {"type": "email", "host": smtp.host, "port": smtp.port, "security": "starttls",
                     "sender": "liqmon@example.com"},
        },
        "routes": [
            {"channel": "desk", "to": CHAT, "min_severity": "watch"},
            {"channel": "mail", "to": "owner@example.com", "accounts": mine, "min_severity": "watch"},
        ],
        "grouping": {"max_per_message": 1},  # each alert its own message, as counted below (grouped: test_grouping*)
    }  # fmt: skip
    return parse_config(data, tmp_path / "c.yaml", env={"TG_TOKEN": TELEGRAM_TEST_TOKEN})


def chain_time(devnet: Devnet) -> float:
    return float(int(devnet.client.get_block("latest")["timestamp"], 16))


def move(devnet: Devnet, prices: dict[str, int], seconds: int = STEP_SECONDS) -> None:
    devnet.client.request("evm_increaseTime", [seconds])
    for symbol, answer in prices.items():
        set_answer(devnet.node, devnet.deployment, symbol, answer, mine=False)
    devnet.node.mine()


def test_crash_walk_warns_before_liquidation_once_per_change_and_resolves(
    devnet: Devnet, tmp_path: Path, peers: tuple[TelegramServer, SmtpServer]
) -> None:
    telegram, smtp = peers
    start = {"WETH": 2000 * 10**8, "WBTC": 30000 * 10**8}
    mine = [s.account for s in devnet.seeded[:400] if "WETH" in s.collaterals][:3]
    config = alert_config(devnet, tmp_path, telegram, smtp, mine)
    steps = crash_steps(substeps=4)
    base = steps[0].prices
    liquidatable_at: dict[str, int] = {}
    with Store(config.store.path) as store:
        channels = build_channels(config.alerts, ssl_context=smtp.client_context())
        monitor = Monitor(config, store, channels, clock=lambda: chain_time(devnet))
        for step in steps:
            move(devnet, {s: round(start[s] * step.prices[s] / base[s]) for s in start})
            tick = monitor.tick()
            snapshot = tick.scans[0].snapshot
            for p in snapshot.positions:
                if p.health_factor < WAD:
                    liquidatable_at.setdefault(p.account, snapshot.block)
        for _ in range(3):  # prices recover; time passes beyond the dwell
            move(devnet, start, seconds=6 * 3600)
            final = monitor.tick()
        alerts = store.alerts(market="aave-v3-devnet")
        outbox = store.outbox()

    assert len(liquidatable_at) >= 20
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for a in alerts:
        by_subject.setdefault(a["subject"], []).append(a)
    # 1. every position that reached HF < 1 had an alert at an EARLIER block
    for account, block in liquidatable_at.items():
        earlier = [a for a in by_subject.get(account, []) if a["block"] < block and a["severity"] != "ok"]
        assert earlier, f"{account} became liquidatable at block {block} without a prior alert"
    # 2. each state change is exactly one alert row, and each alert row exactly one Telegram message
    for _subject, rows in by_subject.items():
        for before, after in itertools.pairwise(rows):
            assert after["previous"] == before["severity"]
            assert after["severity"] != before["severity"] or after["reason"] == "repeat"
    assert [(r["status"], r["last_error"]) for r in outbox if r["status"] != "sent"] == []
    desk = [row for row in outbox if row["channel"] == "desk"]
    assert len(telegram.messages) == len(desk) == len(alerts)
    keys = Counter(m.text for m in telegram.messages)
    assert max(keys.values()) == 1  # no duplicate message
    # each position alert names the policy's level in force and why ("WETH/USDC, 48 h: warn at ...")
    position_alerts = [m.plain for m in telegram.messages
                       if " HF " in m.plain.split("\n", 1)[0] and not m.plain.startswith("✅")]  # resolved: no level
    assert position_alerts and all("Why this level: " in text and " h: " in text for text in position_alerts)
    # 3. recovery: every alert episode (first ... resolved) is well formed, and every position
    #    back to ok at the end got exactly one resolved message for its last episode
    for subject, rows in by_subject.items():
        ok = True
        for row in rows:
            assert (row["reason"] == "first") == ok, (subject, [r["reason"] for r in rows])
            ok = row["reason"] == "resolved"
    recovered = [a.account for a in final.evaluations[0].assessments if a.severity == "ok" and a.account in by_subject]
    assert len(recovered) >= 50
    for account in recovered:
        assert by_subject[account][-1]["reason"] == "resolved"
    [a for a in alerts if a["reason"] == "resolved" and not a["subject"].startswith("oracle:")]
    assert sum(1 for m in telegram.messages if m.plain.startswith("✅ RESOLVED")) == sum(
        1 for a in alerts if a["reason"] == "resolved"
    )
    # 4. the owner's wallets went to the owner's mailbox, and only those
    mail = [row for row in outbox if row["channel"] == "mail"]
    assert len(smtp.messages) == len(mail) == sum(len(by_subject.get(a, [])) for a in mine)
    assert all(any(a in m.get_body(("plain",)).get_content() for a in mine) for m in smtp.messages)
