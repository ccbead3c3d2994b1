"""Scans through a misbehaving public-RPC stand-in store exactly what a clean scan stores."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from monitor.config import parse_config
from monitor.devnet.session import devnet_config
from monitor.metrics import Metrics
from monitor.scan import scan_all
from monitor.store import Store
from tests.support import Devnet
from tests.support_proxy import FaultProxy, Faults

pytestmark = [pytest.mark.devnet, pytest.mark.slow]


def config_for(devnet: Devnet, urls: list[str], db: Path, **chain: Any) -> Any:
    data: dict[str, Any] = devnet_config(devnet.url, devnet.deployment, str(db))
    data["chains"]["devnet"].update({"rpc_urls": urls, "max_log_range": 8, "calls_per_batch": 400, **chain})
    return parse_config(data, db.parent / f"{db.stem}.yaml")


def stored(db: Path) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        return {
            # first_seen_block is the end of the log chunk that found the account, and the chunking
            # adapts to range errors: the accounts found are compared, not where
            "accounts": sorted(conn.execute("SELECT account FROM accounts").fetchall()),
            "positions": sorted(conn.execute(
                "SELECT account, block, health_factor_wad, collateral_base, debt_base, legs FROM positions"
            ).fetchall()),
            "prices": sorted(conn.execute("SELECT asset, block, price, liquidity_index FROM prices").fetchall()),
        }  # fmt: skip


def clean_scan(devnet: Devnet, tmp_path: Path) -> dict[str, Any]:
    with Store(tmp_path / "clean.db") as store:
        scan_all(config_for(devnet, [devnet.url], tmp_path / "clean.db"), store)
    return stored(tmp_path / "clean.db")


def test_thirty_percent_faults_store_the_same_positions(devnet: Devnet, tmp_path: Path) -> None:
    expected = clean_scan(devnet, tmp_path)
    faults = Faults(rate=0.3, retry_after=0.05, timeout_s=1.0)
    with FaultProxy(devnet.url, faults, seed=30) as proxy:
        config = config_for(devnet, [proxy.url], tmp_path / "faulty.db", request_timeout_s=0.5, max_retries=15,
                            backoff_s=0.02, backoff_cap_s=0.5)
        with Store(tmp_path / "faulty.db") as store:
            scan_all(config, store)
        injected = {k: proxy.counts[k] for k in ("429", "500", "timeout", "reset", "truncated", "range")}
    assert all(n > 0 for n in injected.values()), (injected, proxy.counts)  # every kind of fault happened
    assert sum(injected.values()) >= 0.2 * proxy.counts["requests"]
    assert stored(tmp_path / "faulty.db") == expected


def test_failover_from_a_dead_endpoint_and_through_an_outage(devnet: Devnet, tmp_path: Path) -> None:
    expected = clean_scan(devnet, tmp_path)
    with FaultProxy(devnet.url, Faults(dead=True)) as dead, FaultProxy(devnet.url) as flaky:
        dead_url, flaky_url = dead.url, flaky.url
        config = config_for(devnet, [dead.url, flaky.url], tmp_path / "fo.db", request_timeout_s=1.0, max_retries=20)
        metrics = Metrics()
        errors: list[BaseException] = []

        def scan() -> None:
            try:
                with Store(tmp_path / "fo.db") as store:
                    scan_all(config, store, metrics=metrics)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        thread = threading.Thread(target=scan)
        thread.start()
        deadline = time.monotonic() + 30
        while flaky.counts["forwarded"] < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        flaky.faults.dead = True  # the only live endpoint dies mid-scan...
        time.sleep(1.0)
        flaky.faults.dead = False  # ...and comes back
        thread.join(120)
        assert not thread.is_alive() and errors == []
        assert flaky.counts["dead"] > 0 and dead.counts["dead"] > 0
    assert stored(tmp_path / "fo.db") == expected
    text = metrics.text()
    assert f'liqmon_rpc_errors_total{{endpoint="{dead_url}"' in text
    assert f'liqmon_rpc_failovers_total{{from="{dead_url}",to="{flaky_url}"}}' in text
    assert f'liqmon_rpc_active_endpoint{{chain="devnet",endpoint="{flaky_url}"}} 1.0' in text
