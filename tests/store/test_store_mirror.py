"""Store(path, history_url=...): the local SQLite store, mirrored into the shared history."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from monitor.errors import StoreError
from monitor.models import MarketSnapshot, Position
from monitor.store import Store
from monitor.store.connection import connect
from monitor.store.shared import SharedHistory, close_shared_connections
from tests.store import replay

NOW = 1_730_000_000.0


def clock() -> float:
    return NOW


@pytest.fixture(autouse=True)
def _fresh_connections() -> object:
    close_shared_connections()
    yield None
    close_shared_connections()


def test_a_store_with_a_history_url_mirrors_its_writes(postgres_url: str, tmp_path: Path) -> None:
    ops = replay.operations(markets=("aave-a",), blocks=70, accounts=10)
    with Store(tmp_path / "local.db", clock=clock, history_url=postgres_url) as store:
        assert store.shared is not None and store.shared.conn.dialect == "postgresql"
        replay.apply(store, ops)
        local_latest = store.latest_positions()
        local_scans = store.scans("aave-a")
        local_orphans = store.orphaned_blocks("aave-a")
    reader = SharedHistory(postgres_url, clock=clock, conn=connect(postgres_url))  # another instance, read only
    assert reader.latest_positions() == local_latest and local_latest
    assert [(s["block"], s["block_hash"]) for s in reader.scans("aave-a")] == [
        (s["block"], s["block_hash"]) for s in local_scans
    ]
    assert reader.orphaned_blocks("aave-a") == local_orphans == []  # orphans replaced by the canonical blocks
    reorged = replay.FIRST_BLOCK + 35
    assert [s["block_hash"] for s in reader.scans("aave-a") if s["block"] == reorged] == [f"0x{reorged + 10**9:064x}"]


def test_a_shared_database_down_mid_run_leaves_the_local_write(
    postgres_url: str, postgres_server: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ops = replay.operations(markets=("aave-a",), blocks=30, accounts=5, reorgs=False)
    with Store(tmp_path / "local.db", clock=clock, history_url=postgres_url) as store:
        for _, snapshot in ops[:10]:
            store.save_snapshot(snapshot)  # type: ignore[arg-type]
        assert store.shared is not None
        pid = store.shared.conn.execute("SELECT pg_backend_pid()")[0][0]
        with connect(postgres_server) as admin:  # the server drops our connection
            admin.execute("SELECT pg_terminate_backend(?)", [pid])
        with caplog.at_level(logging.WARNING, logger="liqmon.store.shared"):
            store.save_snapshot(ops[10][1])  # type: ignore[arg-type]
        assert store.shared_failures == 1
        assert "shared history write failed" in caplog.text
        assert urlsplit(postgres_url).password not in caplog.text
        assert [s["block"] for s in store.scans("aave-a")][-1] == replay.FIRST_BLOCK + 10  # kept locally
    with Store(tmp_path / "local.db", clock=clock, history_url=postgres_url) as store:  # the next tick reconnects
        for _, snapshot in ops[11:]:
            store.save_snapshot(snapshot)  # type: ignore[arg-type]
        assert store.shared_failures == 0
        local = store.latest_positions()
    reader = SharedHistory(postgres_url, clock=clock, conn=connect(postgres_url))
    blocks = [s["block"] for s in reader.scans("aave-a")]
    assert replay.FIRST_BLOCK + 10 not in blocks and blocks[-1] == replay.FIRST_BLOCK + 29  # one gap, then on
    assert _balances(reader.latest_positions()) == _balances(local)  # exact balances across the gap


def test_a_wrong_password_stops_the_first_open_in_one_line(postgres_url: str, tmp_path: Path) -> None:
    password = urlsplit(postgres_url).password
    assert password
    wrong = postgres_url.replace(f":{password}@", ":wrong-pw@", 1)
    with pytest.raises(StoreError) as info:
        Store(tmp_path / "local.db", history_url=wrong)
    message = str(info.value)
    assert "password authentication failed" in message and "wrong-pw" not in message and "\n" not in message


def test_two_instances_write_two_markets_at_once(postgres_url: str, tmp_path: Path) -> None:
    """One instance per chain, one shared database: the advisory lock keeps the id allocation
    of both writers consistent (without it, both take the same new account ids)."""
    import threading

    ops = {m: [op[1] for op in replay.operations(markets=(m,), blocks=25, accounts=8, reorgs=False)]
           for m in ("aave-a", "aave-b")}  # fmt: skip
    errors: list[BaseException] = []

    def run(market: str) -> None:
        try:
            shared = SharedHistory(postgres_url, clock=clock, conn=connect(postgres_url))
            for snapshot in ops[market]:
                shared.save_snapshot(snapshot)  # type: ignore[arg-type]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(m,)) for m in ops]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    with connect(postgres_url) as db:
        ids = db.execute("SELECT market, count(*), count(DISTINCT id) FROM account_ids GROUP BY market ORDER BY market")
        assert [m for m, _, _ in ids] == ["aave-a", "aave-b"]
        assert all(n == d and n >= 8 for _, n, d in ids)
        assert db.execute("SELECT count(DISTINCT market) FROM scans") == [(2,)]


def test_a_database_with_foreign_tables_is_refused(postgres_url: str) -> None:
    with connect(postgres_url) as db:
        db.execute("CREATE TABLE scans (id BIGINT PRIMARY KEY, what TEXT)")
    with pytest.raises(StoreError, match=r"already has tables scans but no liqmon_meta: they are not liqmon's"):
        SharedHistory(postgres_url, conn=connect(postgres_url))


def test_a_shared_database_of_another_schema_version_is_refused(postgres_url: str) -> None:
    SharedHistory(postgres_url, conn=connect(postgres_url))
    with connect(postgres_url) as db:
        db.execute("UPDATE liqmon_meta SET value = '3' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match=r"has schema version 3, this liqmon writes \d+"):
        SharedHistory(postgres_url, conn=connect(postgres_url))


def test_a_missing_block_names_the_url_without_its_password(postgres_url: str) -> None:
    shared = SharedHistory(postgres_url, conn=connect(postgres_url))
    with pytest.raises(StoreError) as info:
        shared.load_snapshot("aave-a")
    message = str(info.value)
    parts = urlsplit(postgres_url)
    assert f"no stored scan of market 'aave-a' in postgresql://{parts.username}:<secret>@{parts.hostname}:" in message
    assert str(urlsplit(postgres_url).password) not in message


def test_a_local_rollback_sends_nothing_and_a_commit_sends_in_order(postgres_url: str, tmp_path: Path) -> None:
    snapshots = [op[1] for op in replay.operations(markets=("aave-a",), blocks=3, accounts=4, reorgs=False)]
    with Store(tmp_path / "local.db", clock=clock, history_url=postgres_url) as store:
        with pytest.raises(RuntimeError), store.transaction():  # as `liqmon scan` saves its markets
            store.save_snapshot(snapshots[0])  # type: ignore[arg-type]
            raise RuntimeError("the scan fails after the save")
        assert store.scans("aave-a") == []
        reader = SharedHistory(postgres_url, clock=clock, conn=connect(postgres_url))
        assert reader.scans("aave-a") == []
        with store.transaction():
            for snapshot in snapshots:
                store.save_snapshot(snapshot)  # type: ignore[arg-type]
            assert reader.scans("aave-a") == []  # not before the local commit
        assert [s["block"] for s in reader.scans("aave-a")] == [s["block"] for s in store.scans("aave-a")]
        assert len(reader.scans("aave-a")) == 3


def _balances(latest: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    assert latest
    return {(p["market"], p["account"]): p["legs"] for p in latest}


def _changed(before: MarketSnapshot, after: MarketSnapshot) -> frozenset[str]:
    def key(p: Position) -> tuple[object, ...]:  # scaled balances: the unscaled ones accrue every block
        legs = tuple((g.asset, g.scaled_collateral, g.scaled_variable_debt, g.used_as_collateral) for g in p.legs)
        return (legs, p.user_configuration)

    old = {p.account: key(p) for p in before.positions}
    return frozenset(p.account for p in after.positions if old.get(p.account) != key(p))


def test_touched_is_not_trusted_after_a_missed_block(postgres_url: str, postgres_server: str, tmp_path: Path) -> None:
    """The daemon passes touched= (the accounts of the block's events). A block the shared
    history missed changed other accounts: the next save there compares every position."""
    snapshots = [op[1] for op in replay.operations(markets=("aave-a",), blocks=4, accounts=12, reorgs=False)]
    with Store(tmp_path / "local.db", clock=clock, history_url=postgres_url) as store:
        store.save_snapshot(snapshots[0])  # type: ignore[arg-type]
        store.save_snapshot(snapshots[1], touched=_changed(snapshots[0], snapshots[1]))  # type: ignore[arg-type]
        assert store.shared is not None
        pid = store.shared.conn.execute("SELECT pg_backend_pid()")[0][0]
        with connect(postgres_server) as admin:
            admin.execute("SELECT pg_terminate_backend(?)", [pid])
        missed = _changed(snapshots[1], snapshots[2])  # type: ignore[arg-type]
        store.save_snapshot(snapshots[2], touched=missed)  # type: ignore[arg-type]
        assert store.shared_failures == 1
    with Store(tmp_path / "local.db", clock=clock, history_url=postgres_url) as store:
        later = _changed(snapshots[2], snapshots[3])  # type: ignore[arg-type]
        assert missed - later, "some account changed only in the missed block"
        store.save_snapshot(snapshots[3], touched=later)  # type: ignore[arg-type]
        local = store.latest_positions()
    reader = SharedHistory(postgres_url, clock=clock, conn=connect(postgres_url))
    # the balances in force at the newest block are the same (a change of the missed block is
    # written at the next one there: its row's block differs, its legs do not)
    assert _balances(reader.latest_positions()) == _balances(local)


def test_retention_thins_the_shared_rows_as_the_local_ones(postgres_url: str, tmp_path: Path) -> None:
    from monitor.store.history import RetentionPolicy

    policy = RetentionPolicy(full_days=300 / 86_400, downsample_s=60)  # older than 5 min: one block a minute
    ops = replay.operations(markets=("aave-a",), blocks=120, accounts=8)
    with Store(tmp_path / "local.db", clock=clock, history_url=postgres_url, retention=policy) as store:
        replay.apply(store, ops)
        local = connect(store._db.conn)
        reader = connect(postgres_url)
        scans = local.execute("SELECT count(*) FROM scans")[0][0]
        assert 0 < scans < 100  # thinned: 120 blocks saved (and a few saved twice)
        for table in ("position_rows", "position_legs", "price_rows", "reserve_indexes", "scans"):
            columns = "*" if table != "scans" else "market, block, block_hash, timestamp, positions, revision"
            mine = sorted(local.execute(f"SELECT {columns} FROM {table}"), key=repr)
            assert mine == sorted(reader.execute(f"SELECT {columns} FROM {table}"), key=repr), table
        reader.close()


def test_one_writer_per_market_is_enforced_and_named(postgres_url: str, tmp_path: Path) -> None:
    """A second instance configured with a market another one writes is refused there, named;
    once the first one's connection is gone, the market can be taken over."""
    snapshots = [op[1] for op in replay.operations(markets=("aave-a",), blocks=3, accounts=3, reorgs=False)]
    first = SharedHistory(postgres_url, clock=clock, conn=connect(postgres_url))
    second = SharedHistory(postgres_url, clock=clock, conn=connect(postgres_url))
    first.save_snapshot(snapshots[0])  # type: ignore[arg-type]
    with pytest.raises(StoreError) as info:
        second.save_snapshot(snapshots[1])  # type: ignore[arg-type]
    message = str(info.value)
    assert "market 'aave-a' is written into the shared history" in message and "one writer per market" in message
    assert "by liqmon pid " in message and str(urlsplit(postgres_url).password) not in message
    second.save_snapshot(replay.Replay("aave-b", seed=2, accounts=2).snapshot(replay.FIRST_BLOCK))  # another market
    first.save_snapshot(snapshots[1])  # type: ignore[arg-type]  # the holder goes on
    first.conn.close()  # the server ends that session a moment later: the next tries take over
    deadline = time.monotonic() + 10
    while True:
        try:
            second.save_snapshot(snapshots[2])  # type: ignore[arg-type]
            break
        except StoreError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert [s["block"] for s in second.scans("aave-a")] == [
        replay.FIRST_BLOCK,
        replay.FIRST_BLOCK + 1,
        replay.FIRST_BLOCK + 2,
    ]
