"""The same replayed history in the local SQLite store and in a shared PostgreSQL history:
the documented queries answer the same, row for row (one replay per module, ~4 s)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from monitor.models import WAD
from monitor.store import Store
from monitor.store.connection import SqlConnection, connect
from monitor.store.shared import COMPANION_TABLES, HISTORY_TABLES, SharedHistory, companion_ddl
from tests.store import replay
from tests.store.conftest import fresh_schema

NOW = 1_730_000_000.0
MARKETS = ("aave-a", "aave-b")
CRASH = next(b for b in range(replay.FIRST_BLOCK, replay.FIRST_BLOCK + 120) if b % 47 == 0)


def clock() -> float:
    return NOW


@dataclass(frozen=True)
class Both:
    local: Store
    local_sql: SqlConnection  # the same SQLite connection, for raw SQL
    shared: SharedHistory
    saves: int


@pytest.fixture(scope="module")
def both(postgres_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Both]:
    ops = replay.operations()
    with fresh_schema(postgres_database) as url, Store(tmp_path_factory.mktemp("h") / "local.db", clock=clock) as local:
        conn = connect(url)
        shared = SharedHistory(url, clock=clock, conn=conn)
        replay.apply(local, ops)
        replay.apply(shared, ops)
        yield Both(local, connect(local._db.conn), shared, sum(1 for kind, _ in ops if kind == "save"))
        conn.close()


def _sorted(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(rows, key=repr)


def test_latest_positions_are_the_same(both: Both) -> None:
    assert both.shared.conn.dialect == "postgresql"
    latest = both.local.latest_positions()
    assert latest == both.shared.latest_positions()
    assert len(latest) >= 40 and {p["market"] for p in latest} == set(MARKETS)
    assert both.local.latest_positions("aave-b") == both.shared.latest_positions("aave-b")


def test_position_history_of_accounts_is_the_same(both: Both) -> None:
    accounts = sorted({p["account"] for p in both.local.latest_positions()})[::6]
    for account in accounts:
        history = both.local.position_history(account)
        assert history, account
        assert history == both.shared.position_history(account), account
        since = replay.FIRST_BLOCK + 90
        assert both.local.position_history(account, since_block=since) == both.shared.position_history(
            account, since_block=since
        )


def test_price_history_scans_and_orphans_are_the_same(both: Both) -> None:
    for market in MARKETS:
        for asset in ("WETH", "WBTC", None):
            prices = both.local.price_history(market, asset)
            assert prices == both.shared.price_history(market, asset)
        assert both.local.scans(market) == both.shared.scans(market)
        orphans = both.local.orphaned_blocks(market)
        assert orphans == both.shared.orphaned_blocks(market)


@pytest.mark.parametrize("n", [0, CRASH - replay.FIRST_BLOCK, 58, 59, 60, 61, 110, 119])
def test_positions_below_an_hf_at_a_block_are_the_same(both: Both, n: int) -> None:
    """Whole snapshots rebuilt at a block (the crash, the reorged and the dropped blocks too),
    and the positions under HF 1.5 in them."""
    for market in MARKETS:
        block = replay.FIRST_BLOCK + n
        snapshot = both.local.load_snapshot(market, block)
        assert snapshot == both.shared.load_snapshot(market, block), (market, block)
        below = [p.account for p in snapshot.positions if p.health_factor < 3 * WAD // 2]
        if block == CRASH:
            assert below


def test_sql_below_an_hf_is_the_same(both: Both) -> None:
    """The documented SQL over the stored rows: positions written under HF 1.1 at the crash."""
    sql = (
        "SELECT a.market, a.account, p.block, p.health_factor FROM position_rows p"
        " JOIN account_ids a ON a.id = p.account_id"
        " WHERE p.block = ? AND p.health_factor IS NOT NULL AND CAST(p.health_factor AS NUMERIC) < ?"
        " ORDER BY a.market, a.account"
    )
    threshold = 11 * WAD // 10
    mine = both.local_sql.execute(sql, [CRASH, threshold])
    assert mine, "the crash puts some position under 1.1"
    assert mine == both.shared.conn.execute(sql, [CRASH, threshold])


def test_the_stored_rows_are_the_same(both: Both) -> None:
    for table in (*HISTORY_TABLES, "markets", "market_params", "orphaned_blocks"):
        mine = both.local_sql.execute(f"SELECT * FROM {table}")
        assert _sorted(mine) == _sorted(both.shared.conn.execute(f"SELECT * FROM {table}")), table
    rows = both.local_sql.execute("SELECT count(*) FROM position_rows")[0][0]
    assert 0 < rows < both.saves * 25 // 3  # change-only: far fewer rows than positions x blocks


def test_the_shared_schema_has_the_local_columns(both: Both, tmp_path: Path) -> None:
    for table in (*COMPANION_TABLES, *HISTORY_TABLES):
        names = [row[1] for row in both.local_sql.execute(f"PRAGMA table_info({table})")]
        pg_names = [
            row[0]
            for row in both.shared.conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
                [table],
            )
        ]
        assert pg_names == names, table
    assert any("GENERATED BY DEFAULT AS IDENTITY" in s for s in companion_ddl("postgresql"))


README = Path(__file__).resolve().parents[2] / "README.md"
README_SECTION = "## Sharing one history on PostgreSQL"


def _readme_queries() -> list[str]:
    text = README.read_text()
    section = text[text.index(README_SECTION) :]
    section = section[: section.index("\n## ", 1)]
    return [block.split("```", 1)[0].strip() for block in section.split("```sql\n")[1:]]


def test_the_readme_queries_answer_the_same_on_both(both: Both) -> None:
    queries = _readme_queries()
    assert len(queries) == 4  # latest positions, an account's history, below an HF at a block, a price's history
    account = both.local.latest_positions("aave-a")[3]["account"]
    for sql in queries:
        sql = (
            sql.replace("'aave-v3-ethereum'", "'aave-a'")
            .replace("0x0100000000000000000000000000000000000007", account)
            .replace("20000047", str(CRASH))
        )
        mine = both.local_sql.execute(sql.rstrip(";"))
        assert mine, sql
        assert mine == both.shared.conn.execute(sql.rstrip(";")), sql


def test_the_desk_queries_are_the_same(both: Both) -> None:
    """positions_below at a block, positions_below_between a range, the portfolio across markets."""
    for market in MARKETS:
        below = both.local.positions_below(market, "1.3", CRASH)
        assert below, market
        assert below == both.shared.positions_below(market, "1.3", CRASH)
        start, end = replay.FIRST_BLOCK + 50, replay.FIRST_BLOCK + 70  # across the reorged blocks
        assert both.local.positions_below_between(market, "1.3", start, end) == both.shared.positions_below_between(
            market, "1.3", start, end
        )
    blocks = {m: replay.FIRST_BLOCK + 100 for m in MARKETS}
    assert both.local.portfolio(blocks, "1.5") == both.shared.portfolio(blocks, "1.5")
