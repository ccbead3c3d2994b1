"""A SMALL devnet for the hostile-node and many-seed fault tests: real Aave V3 on anvil with
a dozen positions, so a scan is a few dozen requests and a test can run many of them."""

from __future__ import annotations

import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from monitor.chain.rpc import RpcClient
from monitor.config import Config, parse_config
from monitor.devnet.anvil import Anvil
from monitor.devnet.deploy import Deployment, deploy_aave
from monitor.devnet.node import DevnetNode
from monitor.devnet.seed import seed_positions
from monitor.devnet.session import devnet_config
from monitor.scan import scan_all
from monitor.store import Store

SMALL_POSITIONS = 12


@dataclass
class SmallDevnet:
    anvil: Anvil
    node: DevnetNode
    deployment: Deployment
    template: Path  # a history with two clean scans of this devnet

    @property
    def url(self) -> str:
        return self.anvil.url

    def config(self, urls: list[str], db: Path, **chain: Any) -> Config:
        data: dict[str, Any] = devnet_config(self.url, self.deployment, str(db))
        data["chains"]["devnet"].update(
            {"rpc_urls": urls, "max_log_range": 40, "calls_per_batch": 400, "request_timeout_s": 2.0,
             "retry_budget_s": 5.0, "max_retries": 1, **chain}
        )  # fmt: skip
        return parse_config(data, db.parent / f"{db.stem}.yaml")

    def history(self, tmp_path: Path, name: str = "h.db") -> Path:
        """A copy of the template history (two scans, all positions) for one test."""
        db = tmp_path / name
        shutil.copy(self.template, db)
        return db


@pytest.fixture(scope="session")
def small_devnet_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmallDevnet]:
    with Anvil() as anvil:
        client = RpcClient([anvil.url], timeout=120, max_retries=0)
        node = DevnetNode(client)
        deployment = deploy_aave(node)
        seed_positions(node, deployment, SMALL_POSITIONS, seed=21)
        node.mine(3)
        template = tmp_path_factory.mktemp("small") / "template.db"
        small = SmallDevnet(anvil, node, deployment, template)
        config = small.config([anvil.url], template)
        with Store(template) as store:
            scan_all(config, store)
            node.mine(3)
            scan_all(config, store)
        _checkpoint(template)
        yield small
        client.close()


@pytest.fixture
def small_devnet(small_devnet_session: SmallDevnet) -> Iterator[SmallDevnet]:
    snapshot = small_devnet_session.node.snapshot()
    yield small_devnet_session
    small_devnet_session.node.revert(snapshot)


def _checkpoint(db: Path) -> None:
    """Fold the WAL into the main file, so a plain file copy is the whole history."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


# --------------------------------------------------------------------------- what a test asserts


# history rows (the discovery checkpoint moves on with every successful scan: checked for form only)
HISTORY_TABLES = ("positions", "prices", "scans", "accounts", "market_params", "discovery_blocks")


def raw_rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored row of the history tables (marked orphaned or not), sorted."""
    with sqlite3.connect(db) as conn:
        out = {}
        for table in HISTORY_TABLES:
            info = conn.execute(f"PRAGMA table_info({table})").fetchall()
            columns = [c[1] for c in info if c[1] not in ("id", "created_at", "updated_at")]
            out[table] = sorted(conn.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall(), key=repr)
        return out


def visible(db: Path) -> dict[str, Any]:
    """What the queries return: scans, the latest positions, and every account's history."""
    with Store(db) as store:
        scans = [(s["market"], s["block"], s["block_hash"], s["positions"]) for s in store.scans()]
        latest = [(p["account"], p["block"], p["health_factor_wad"]) for p in store.latest_positions()]
        accounts = store.accounts("aave-v3-devnet")
        history = {a: [(p["block"], p["health_factor_wad"]) for p in store.position_history(a)] for a in accounts}
    return {"scans": scans, "latest": latest, "history": history}


def assert_history_kept(db: Path, before_raw: dict[str, list[tuple[Any, ...]]], before_visible: dict[str, Any]) -> None:
    """No stored row lost or changed, none hidden; every row still well formed."""
    after_raw = raw_rows(db)
    for table, rows in before_raw.items():
        missing = [r for r in rows if r not in set(after_raw[table])]
        assert not missing, f"{table}: {len(missing)} stored row(s) lost or changed, e.g. {missing[:2]}"
    after_visible = visible(db)
    assert set(before_visible["scans"]) <= set(after_visible["scans"]), "a stored scan is hidden"
    for account, rows in before_visible["history"].items():
        assert set(rows) <= set(after_visible["history"].get(account, [])), f"{account}: history hidden"
    assert_well_formed(db)


_HASH = re.compile(r"0x[0-9a-f]{64}")


def assert_well_formed(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        hashes = [r[0] for r in conn.execute("SELECT block_hash FROM scans UNION ALL SELECT block_hash FROM checkpoints"
                                             " UNION ALL SELECT hash FROM discovery_blocks")]  # fmt: skip
        accounts = [r[0] for r in conn.execute("SELECT account FROM accounts")]
    bad = [h for h in hashes if not _HASH.fullmatch(h)]
    assert not bad, f"malformed hashes stored: {bad[:3]}"
    assert len(accounts) == SMALL_POSITIONS, f"{len(accounts)} accounts stored, {SMALL_POSITIONS} seeded"


def _hwm_kib() -> int:
    match = re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text())
    return int(match.group(1)) if match else 0


@dataclass
class Bounds:
    seconds: float = 0.0
    peak_growth_mib: float = 0.0


@contextmanager
def bounded(max_seconds: float, max_growth_mib: float) -> Iterator[Bounds]:
    """Assert that the block ran within ``max_seconds`` and that the process's peak RSS grew by
    less than ``max_growth_mib`` (the peak is reset first: /proc/self/clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")
    base = _hwm_kib()
    started = time.monotonic()
    result = Bounds()
    yield result
    result.seconds = time.monotonic() - started
    result.peak_growth_mib = (_hwm_kib() - base) / 1024
    assert result.seconds < max_seconds, f"took {result.seconds:.1f} s (limit {max_seconds} s)"
    assert result.peak_growth_mib < max_growth_mib, f"peak RSS grew {result.peak_growth_mib:.0f} MiB"
