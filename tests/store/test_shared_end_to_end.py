"""`liqmon scan` and `liqmon run` with store.history_url: the devnet's history lands in PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli import main
from monitor.devnet.market_config import MARKET_NAME, devnet_config
from monitor.devnet.seed import set_price
from monitor.store import Store
from monitor.store.connection import connect
from monitor.store.shared import SharedHistory, close_shared_connections
from tests.support import Devnet

pytestmark = pytest.mark.devnet


def test_scan_and_run_record_the_history_in_postgresql(
    devnet: Devnet, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    close_shared_connections()
    monkeypatch.setenv("LIQMON_TEST_HISTORY_URL", postgres_url)
    data = devnet_config(devnet.url, devnet.deployment, str(tmp_path / "local.db"))
    data["store"]["history_url"] = "${LIQMON_TEST_HISTORY_URL}"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(data))

    assert main(["scan", "--config", str(cfg)]) == 0
    set_price(devnet.node, devnet.deployment, "WETH", 1500)
    assert main(["run", "--config", str(cfg), "--max-ticks", "1"]) == 0
    capsys.readouterr()
    close_shared_connections()

    shared = SharedHistory(postgres_url, conn=connect(postgres_url))
    with Store(tmp_path / "local.db") as local:
        latest = local.latest_positions(MARKET_NAME)
        assert len(latest) == len(devnet.seeded)
        assert shared.latest_positions(MARKET_NAME) == latest
        assert [s["block"] for s in shared.scans(MARKET_NAME)] == [s["block"] for s in local.scans(MARKET_NAME)]
        assert len(shared.scans(MARKET_NAME)) == 2  # the scan and the daemon's tick after the price move
        account = devnet.seeded[0].account
        assert shared.position_history(account) == local.position_history(account)
        assert shared.price_history(MARKET_NAME, "WETH") == local.price_history(MARKET_NAME, "WETH")
        assert shared.load_snapshot(MARKET_NAME) == local.load_snapshot(MARKET_NAME)
    # what stays local: the lease, alerts and the outbox are not in the shared database
    tables = set(shared.conn.tables())
    assert {"position_rows", "price_rows", "scans"} <= tables
    assert not tables & {"writer_lease", "alerts", "outbox", "accounts", "checkpoints"}
