"""30 % injected faults (429, 500, stalls, resets, truncated JSON, range errors) at 20 seeds
in a row: with a retry budget in seconds instead of a count, every scan stores exactly what
a clean scan stores. The seed is in the test id and in every failure message."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from monitor.errors import MonitorError
from monitor.scan import scan_all
from monitor.store import Store
from tests.faults.conftest import SmallDevnet
from tests.support_proxy import FAULT_KINDS, FaultProxy, Faults

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

SEEDS = list(range(1300, 1320))
_expected: dict[int, dict[str, Any]] = {}


def stored(db: Path) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        return {
            "accounts": sorted(conn.execute("SELECT account FROM accounts").fetchall()),
            "positions": sorted(conn.execute(
                "SELECT account, block, health_factor_wad, collateral_base, debt_base, legs FROM positions"
            ).fetchall()),
            "prices": sorted(conn.execute("SELECT asset, block, price, liquidity_index FROM prices").fetchall()),
            "scans": sorted(conn.execute("SELECT block, block_hash FROM scans").fetchall()),
        }  # fmt: skip


def expected(small: SmallDevnet, tmp_path: Path) -> dict[str, Any]:
    head = small.node.client.block_number()
    if head not in _expected:
        db = tmp_path / "clean.db"
        with Store(db) as store:
            scan_all(small.config([small.url], db), store)
        _expected[head] = stored(db)
    return _expected[head]


@pytest.mark.parametrize("seed", SEEDS)
def test_thirty_percent_faults_at_twenty_seeds(small_devnet: SmallDevnet, tmp_path: Path, seed: int) -> None:
    clean = expected(small_devnet, tmp_path)
    assert len(clean["positions"]) >= 12
    db = tmp_path / f"faulty-{seed}.db"
    faults = Faults(rate=0.3, retry_after=0.05, timeout_s=0.5)
    started = time.monotonic()
    with FaultProxy(small_devnet.url, faults, seed=seed) as proxy:
        config = small_devnet.config([proxy.url], db, max_log_range=16, request_timeout_s=0.4, max_retries=1,
                                     retry_budget_s=30.0, backoff_s=0.02, backoff_cap_s=0.5)  # fmt: skip
        try:
            with Store(db) as store:
                scan_all(config, store)
        except MonitorError as exc:
            pytest.fail(f"seed {seed}: the scan failed under 30 % faults: {exc} (faults {dict(proxy.counts)})")
        injected = sum(proxy.counts[k] for k in FAULT_KINDS)
        requests = proxy.counts["requests"]
    assert injected >= 0.15 * requests, f"seed {seed}: only {injected} faults in {requests} requests"
    assert stored(db) == clean, f"seed {seed}: the stored history differs from a clean scan"
    assert time.monotonic() - started < 60, f"seed {seed}: took {time.monotonic() - started:.0f} s"
