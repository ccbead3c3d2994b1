"""`kill -9` at random points of discovery, scanning and delivery, 20 times; then one clean
run. The database must equal an uninterrupted run's, and no alert may be lost."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.alerts.grouping import entry_line
from monitor.alerts.pipeline import message_from_json
from monitor.devnet.seed import set_price
from monitor.devnet.session import devnet_config
from tests.support import Devnet
from tests.support_peers import TELEGRAM_TEST_TOKEN, TelegramServer

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

KILLS = 20


def write_config(devnet: Devnet, tmp_path: Path, name: str, telegram: TelegramServer) -> Path:
    data: dict[str, Any] = devnet_config(devnet.url, devnet.deployment, str(tmp_path / f"{name}.db"))
    data["chains"]["devnet"]["max_log_range"] = 40  # hundreds of discovery chunks: kills land inside discovery
    data["daemon"] = {"mode": "interval", "interval_s": 0.2, "deliver_interval_s": 0.2, "log_format": "json"}
    data["alerts"] = {
        "channels": {"tg": {"type": "telegram", "token_env": "TG_TOKEN", "base_url": telegram.base_url,
                            "min_interval_s": 0}},
        "routes": [{"channel": "tg", "to": "-100999", "min_severity": "watch"}],
    }  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def daemon(config: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "--config", str(config), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, TG_TOKEN=TELEGRAM_TEST_TOKEN),
    )  # fmt: skip


def state(db: Path) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        q = conn.execute
        return {
            "accounts": sorted(q("SELECT market, account, first_seen_block, source FROM accounts").fetchall()),
            "checkpoints": sorted(q("SELECT market, kind, block, block_hash FROM checkpoints").fetchall()),
            "positions": sorted(
                q(
                    "SELECT market, account, block, health_factor_wad, collateral_base, debt_base, legs FROM positions"
                ).fetchall()
            ),
            "prices": sorted(q("SELECT market, asset, block, price FROM prices").fetchall()),
            "alert_state": sorted(q("SELECT market, subject, severity FROM alert_state").fetchall()),
            "alerts": sorted(q("SELECT market, subject, block, severity, previous, reason FROM alerts").fetchall()),
            "outbox_not_sent": q("SELECT count(*) FROM outbox WHERE status != 'sent'").fetchone()[0],
        }


def test_random_kill_9_leaves_the_same_database_and_loses_no_alert(devnet: Devnet, tmp_path: Path) -> None:
    set_price(devnet.node, devnet.deployment, "WETH", 1600)  # alerts to record and deliver
    rng = random.Random(20261121)
    with TelegramServer() as telegram:
        reference = write_config(devnet, tmp_path, "reference", telegram)
        assert daemon(reference, "--max-ticks", "1").wait(180) == 0
        expected = state(tmp_path / "reference.db")
        reference_messages = len(telegram.messages)

        crashed = write_config(devnet, tmp_path, "crashed", telegram)
        for _ in range(KILLS):
            process = daemon(crashed)
            time.sleep(rng.uniform(0.3, 4.0))  # import, discovery chunks, the scan, delivery...
            process.send_signal(signal.SIGKILL)
            process.wait(30)
        assert daemon(crashed, "--max-ticks", "1").wait(180) == 0
        got = state(tmp_path / "crashed.db")
        crashed_texts = [m.plain for m in telegram.messages[reference_messages:]]

    assert expected["alerts"] and expected["positions"]
    assert got == expected
    assert got["outbox_not_sent"] == 0
    with sqlite3.connect(tmp_path / "crashed.db") as conn:
        recorded = {row[0] for row in conn.execute("SELECT message FROM outbox")}
    assert recorded and crashed_texts
    for text in recorded:  # every alert reached Telegram at least once (alone, or as a line of a grouped message)
        line = entry_line(message_from_json("", text))
        assert any(line in t for t in crashed_texts), line
