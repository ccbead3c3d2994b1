"""The SQLite history: exact big integers, idempotent saves, transactions, migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlite_utils

import monitor.store.rows as rows_module
import monitor.store.schema as schema_module
from monitor.errors import StoreError
from monitor.models import (
    MAX_UINT256,
    RAY,
    WAD,
    AssetLeg,
    EModeCategory,
    MarketSnapshot,
    Position,
    Reserve,
)
from monitor.protocols.aave_revisions import a_token_balance, rules_for, variable_debt_balance
from monitor.risk.health import snapshot_account_data
from monitor.store import Checkpoint, Store

MARKET = "aave-v3-ethereum"
BASE = 10**8  # USD with 8 decimals
T0 = 1_700_000_000.0
BLOCK = 19_000_000
BLOCK_TIME = 1_705_000_000

WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
ALICE = "0x1111111111111111111111111111111111111111"  # borrower
BOB = "0x2222222222222222222222222222222222222222"  # supplier only, no debt
CAROL = "0x3333333333333333333333333333333333333333"  # riskier borrower
DAVE = "0xAbCdEf0123456789aBcDeF0123456789AbCdEf01"

# 25.5 WETH: an 18-decimal amount above 2**64.
ALICE_COLLATERAL = 25_500_000_000_000_000_123
ALICE_SCALED = 24_871_234_567_890_123_456
LIQUIDITY_INDEX = 1_025_282_936_374_523_859_121_315_482  # ray
ALICE_HF = 1_537_654_321_987_654_321  # 1.537... WAD
ALICE_CONFIG = 2**130 + 2**3 + 1  # a bitmap wider than int64


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "history.db"


@pytest.fixture
def store(db_path: Path, clock: FakeClock) -> Iterator[Store]:
    with Store(db_path, clock=clock) as opened:
        yield opened


def make_reserve(asset: str, symbol: str, decimals: int, reserve_id: int, price: int) -> Reserve:
    return Reserve(
        asset=asset,
        symbol=symbol,
        decimals=decimals,
        reserve_id=reserve_id,
        ltv=8050,
        liquidation_threshold=8300,
        liquidation_bonus=10500,
        emode_category=1 if symbol == "WETH" else 0,
        active=True,
        frozen=False,
        borrowing_enabled=True,
        a_token="0x4d5F47FA6A74757f35C14fD3a6Ef8E3C9BC514E8",
        stable_debt_token="0x102633152313C81cD80419b6EcF66d14Ad68949A",
        variable_debt_token="0xeA51d7853EEFb32b6ee06b1C12E6dcCA88Be0fFE",
        liquidity_index=LIQUIDITY_INDEX,
        variable_borrow_index=RAY + 55_555_555_555_555_555_555_555,
        price=price,
    )


def make_position(
    account: str,
    block: int = BLOCK,
    *,
    health_factor: int = ALICE_HF,
    debt_base: int = 1_234_567_890_123,
    market: str = MARKET,
) -> Position:
    legs = (
        AssetLeg(
            asset=WETH,
            symbol="WETH",
            scaled_collateral=ALICE_SCALED,
            collateral=ALICE_COLLATERAL,
            scaled_variable_debt=0,
            variable_debt=0,
            stable_debt=0,
            used_as_collateral=True,
        ),
        AssetLeg(
            asset=USDC,
            symbol="USDC",
            scaled_collateral=0,
            collateral=0,
            scaled_variable_debt=11_000_000_000 if debt_base else 0,
            variable_debt=12_345_678_901 if debt_base else 0,
            stable_debt=0,
            used_as_collateral=False,
        ),
        AssetLeg(  # no balance at all: must not be stored
            asset="0x6B175474E89094C44Da98b954EedeAC495271d0F",
            symbol="DAI",
            scaled_collateral=0,
            collateral=0,
            scaled_variable_debt=0,
            variable_debt=0,
            stable_debt=0,
            used_as_collateral=False,
        ),
    )
    return Position(
        market=market,
        account=account,
        block=block,
        health_factor=health_factor,
        total_collateral_base=5_865_000_000_000_000_000_777,  # > 2**64 base units
        total_debt_base=debt_base,
        available_borrows_base=4_000_000_000_000,
        current_liquidation_threshold=8300,
        ltv=8050,
        emode_category=0,
        user_configuration=ALICE_CONFIG,
        legs=legs,
    )


def make_snapshot(
    block: int = BLOCK,
    positions: tuple[Position, ...] | None = None,
    *,
    market: str = MARKET,
    weth_price: int = 230_012_345_678,
    base_currency_unit: int = BASE,
    addresses: dict[str, str] | None = None,
) -> MarketSnapshot:
    if positions is None:
        positions = (
            make_position(ALICE, block, market=market),
            make_position(BOB, block, health_factor=MAX_UINT256, debt_base=0, market=market),
        )
    return MarketSnapshot(
        market=market,
        protocol="aave-v3",
        chain_id=1,
        block=block,
        block_hash=f"0x{block:064x}",
        timestamp=BLOCK_TIME + (block - BLOCK) * 12,
        base_currency_unit=base_currency_unit,
        reserves=(
            make_reserve(WETH, "WETH", 18, 0, weth_price),
            make_reserve(USDC, "USDC", 6, 3, 99_998_000),
        ),
        emode_categories=(
            EModeCategory(
                id=1,
                ltv=9300,
                liquidation_threshold=9500,
                liquidation_bonus=10100,
                price_source="0x0000000000000000000000000000000000000000",
                label="ETH correlated",
            ),
        ),
        positions=positions,
        addresses=(
            {
                "pool_addresses_provider": "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e",
                "pool": "0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2",
            }
            if addresses is None
            else addresses
        ),
    )


def table_count(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def meta_version(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
    finally:
        conn.close()


DATA_TABLES = (
    "markets",
    "reserves",
    "emode_categories",
    "prices",
    "positions",
    "scans",
    "accounts",
    "checkpoints",
)


# --------------------------------------------------------------------------- opening


def test_creates_parent_directory_and_uses_wal(store: Store, db_path: Path) -> None:
    assert db_path.is_file()
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_records_schema_version_and_indexes(store: Store, db_path: Path) -> None:
    assert meta_version(db_path) == str(len(schema_module._MIGRATIONS))
    db = sqlite_utils.Database(db_path)
    try:
        index_columns = {
            (table, tuple(index.columns))
            for table in ("position_rows", "price_rows", "account_ids")
            for index in db.table(table).indexes
        }
        sql = {table: db.table(table).schema for table in ("scans", "position_rows", "position_legs", "price_rows")}
        foreign = {
            (fk.table, fk.column, fk.other_table)
            for t in ("position_rows", "position_legs")
            for fk in db[t].foreign_keys
        }
    finally:
        db.close()
    assert ("price_rows", ("asset_id", "timestamp")) in index_columns  # the volatility window's time index
    assert ("account_ids", ("market", "account")) in index_columns
    assert "AUTOINCREMENT" in sql["scans"]
    for table in ("position_rows", "position_legs", "price_rows"):  # the primary key is the table
        assert "WITHOUT ROWID" in sql[table], table
    assert ("position_legs", "asset_id", "asset_ids") in foreign
    assert ("position_rows", "account_id", "account_ids") in foreign


def test_reopen_keeps_data_and_does_not_rerun_migrations(
    db_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(db_path, clock=clock) as first:
        scan_id = first.save_snapshot(make_snapshot())
        first.add_accounts(MARKET, [(ALICE, 1)], "logs")

    def must_not_run(db: sqlite_utils.Database) -> None:
        raise AssertionError("migration re-run on an up-to-date database")

    monkeypatch.setattr(schema_module, "_MIGRATIONS", (must_not_run,) * len(schema_module._MIGRATIONS))
    with Store(db_path, clock=clock) as second:
        assert [scan["id"] for scan in second.scans()] == [scan_id]
        assert second.accounts(MARKET) == [ALICE]
        assert len(second.position_history(ALICE)) == 1


def test_new_migration_runs_once_on_reopen(db_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    Store(db_path, clock=clock).close()
    runs: list[int] = []

    def add_note_column(db: sqlite_utils.Database) -> None:
        runs.append(1)
        db.table("scans").add_column("note", str)

    migrations = (*schema_module._MIGRATIONS, add_note_column)
    monkeypatch.setattr(schema_module, "_MIGRATIONS", migrations)
    Store(db_path, clock=clock).close()
    Store(db_path, clock=clock).close()

    assert runs == [1]
    assert meta_version(db_path) == str(len(migrations))


def test_failing_migration_leaves_schema_unchanged(
    db_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    Store(db_path, clock=clock).close()
    version_before = meta_version(db_path)

    def half_done(db: sqlite_utils.Database) -> None:
        db.table("half_done").create({"id": int}, pk="id")
        db.execute("INSERT INTO no_such_table VALUES (1)")

    monkeypatch.setattr(schema_module, "_MIGRATIONS", (*schema_module._MIGRATIONS, half_done))
    with pytest.raises(StoreError, match="half_done"):
        Store(db_path, clock=clock)

    assert meta_version(db_path) == version_before
    conn = sqlite3.connect(db_path)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert "half_done" not in tables


def test_newer_schema_version_is_refused(db_path: Path, clock: FakeClock) -> None:
    Store(db_path, clock=clock).close()
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    conn.close()

    with pytest.raises(StoreError, match=r"schema version 999, newer") as error:
        Store(db_path, clock=clock)
    assert str(db_path) in str(error.value)


def test_non_database_file_is_refused_with_its_path(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are not the pages you are looking for\n" * 200)

    with pytest.raises(StoreError, match="not a database") as error:
        Store(path, clock=clock)
    assert str(path) in str(error.value)


def test_foreign_sqlite_database_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE recipes (name TEXT)")
    conn.close()

    with pytest.raises(StoreError, match="not a liqmon history") as error:
        Store(path, clock=clock)
    assert str(path) in str(error.value)


def test_unusable_directory_is_reported_with_the_path(tmp_path: Path, clock: FakeClock) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    path = blocker / "history.db"

    with pytest.raises(StoreError) as error:
        Store(path, clock=clock)
    assert str(path) in str(error.value)


# --------------------------------------------------------------------------- snapshots


def test_big_integers_round_trip_exactly(store: Store) -> None:
    store.save_snapshot(make_snapshot())

    alice = store.position_history(ALICE)[0]
    assert alice["health_factor"] == "1.537654321987654321"
    assert alice["health_factor_wad"] == str(ALICE_HF)
    assert alice["hf"] == pytest.approx(ALICE_HF / WAD)
    assert alice["collateral_base"] == "5865000000000000000777"
    assert int(alice["collateral_base"]) > 2**64
    assert alice["collateral_usd"] == pytest.approx(58_650_000_000_000.0)
    assert alice["debt_base"] == "1234567890123"
    assert alice["debt_usd"] == pytest.approx(12_345.67890123)
    assert int(alice["user_configuration"]) == ALICE_CONFIG
    assert (alice["liquidation_threshold"], alice["ltv"]) == (8300, 8050)
    weth_leg = alice["legs"][0]
    assert int(weth_leg["collateral"]) == ALICE_COLLATERAL
    assert int(weth_leg["scaled_collateral"]) == ALICE_SCALED
    assert weth_leg["used_as_collateral"] is True


def test_position_without_debt_stores_inf(store: Store) -> None:
    store.save_snapshot(make_snapshot())

    bob = store.position_history(BOB)[0]
    assert bob["health_factor"] == "inf"
    assert bob["health_factor_wad"] == str(MAX_UINT256)
    assert int(bob["health_factor_wad"]) == MAX_UINT256
    assert bob["hf"] is None
    assert bob["debt_usd"] == 0.0


def test_legs_without_balances_are_left_out(store: Store) -> None:
    store.save_snapshot(make_snapshot())

    assert [leg["symbol"] for leg in store.position_history(ALICE)[0]["legs"]] == [
        "WETH",
        "USDC",
    ]
    assert [leg["symbol"] for leg in store.position_history(BOB)[0]["legs"]] == ["WETH"]


def test_prices_are_exact_with_a_usd_companion(store: Store) -> None:
    # A market whose base currency is ETH in wei: a price above 2**64.
    btc_in_wei = 19_123_456_789_012_345_678
    store.save_snapshot(make_snapshot(weth_price=btc_in_wei, base_currency_unit=WAD))

    weth = store.price_history(MARKET, "WETH")
    assert len(weth) == 1
    assert weth[0]["price"] == str(btc_in_wei)
    assert weth[0]["price_usd"] == pytest.approx(19.123456789012345678)
    assert weth[0]["timestamp"] == BLOCK_TIME
    assert store.markets()[0]["base_currency_unit"] == str(WAD)


def test_market_row_keeps_addresses_and_newest_block(store: Store, clock: FakeClock) -> None:
    store.save_snapshot(make_snapshot(BLOCK + 10))
    clock.now = T0 + 60
    store.save_snapshot(make_snapshot(BLOCK))  # an older block saved later (backfill)

    (market,) = store.markets()
    assert market["name"] == MARKET
    assert market["protocol"] == "aave-v3"
    assert market["chain_id"] == 1
    assert market["pool"] == "0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2"
    assert market["pool_addresses_provider"] == "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e"
    assert market["oracle"] is None
    assert market["data_provider"] is None
    assert market["base_currency_unit"] == "100000000"
    assert market["last_block"] == BLOCK + 10
    assert market["updated_at"] == T0 + 60


def test_reserves_and_emode_categories_are_upserted(store: Store, db_path: Path) -> None:
    store.save_snapshot(make_snapshot(BLOCK))
    store.save_snapshot(make_snapshot(BLOCK + 1))

    db = sqlite_utils.Database(db_path)
    try:
        reserves = list(db.query("SELECT * FROM reserves ORDER BY reserve_id"))
        categories = list(db.query("SELECT * FROM emode_categories"))
    finally:
        db.close()
    assert [(r["symbol"], r["updated_block"]) for r in reserves] == [  # change-only: written when they change
        ("WETH", BLOCK),
        ("USDC", BLOCK),
    ]
    assert reserves[0]["active"] == 1 and reserves[0]["frozen"] == 0
    assert reserves[0]["emode_category"] == 1
    assert categories == [
        {
            "market": MARKET,
            "id": 1,
            "ltv": 9300,
            "liquidation_threshold": 9500,
            "liquidation_bonus": 10100,
            "price_source": "0x0000000000000000000000000000000000000000",
            "label": "ETH correlated",
            "updated_block": BLOCK,
            "collateral_bitmap": None,  # pre-3.2: membership by the reserve eMode bits
            "borrowable_bitmap": None,
            "ltv_zero_bitmap": "0",
        }
    ]


def test_saving_the_same_block_again_replaces(store: Store, db_path: Path) -> None:
    first = store.save_snapshot(make_snapshot())
    riskier = make_position(ALICE, health_factor=1_010_000_000_000_000_000)
    second = store.save_snapshot(make_snapshot(positions=(riskier,), weth_price=210_000_000_000))

    assert table_count(db_path, "positions") == 1  # the block's rows are those of the snapshot saved last
    assert table_count(db_path, "prices") == 2
    assert table_count(db_path, "reserves") == 2
    assert store.position_history(ALICE)[0]["health_factor"] == "1.010000000000000000"
    assert store.price_history(MARKET, "WETH")[0]["price"] == "210000000000"
    assert second > first
    assert [scan["positions"] for scan in store.scans()] == [2, 1]


def test_scans_log_each_save(store: Store, clock: FakeClock) -> None:
    first = store.save_snapshot(make_snapshot(BLOCK))
    clock.now = T0 + 12
    second = store.save_snapshot(make_snapshot(BLOCK + 1, market="spark-ethereum"))

    assert store.scans() == [
        {
            "id": first,
            "market": MARKET,
            "block": BLOCK,
            "block_hash": f"0x{BLOCK:064x}",
            "timestamp": BLOCK_TIME,
            "positions": 2,
            "created_at": T0,
            "revision": 0,
        },
        {
            "id": second,
            "market": "spark-ethereum",
            "block": BLOCK + 1,
            "block_hash": f"0x{BLOCK + 1:064x}",
            "timestamp": BLOCK_TIME + 12,
            "positions": 2,
            "created_at": T0 + 12,
            "revision": 0,
        },
    ]
    assert [scan["id"] for scan in store.scans("spark-ethereum")] == [second]


def test_snapshot_with_a_position_from_another_block_is_refused(store: Store, db_path: Path) -> None:
    stray = make_position(CAROL, BLOCK - 1)
    with pytest.raises(StoreError, match=CAROL):
        store.save_snapshot(make_snapshot(positions=(make_position(ALICE), stray)))
    for table in DATA_TABLES:
        assert table_count(db_path, table) == 0, table


# --------------------------------------------------------------------------- transactions


def test_failure_in_the_middle_of_save_snapshot_leaves_nothing(
    store: Store, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(snapshot: MarketSnapshot) -> None:
        raise RuntimeError("process killed between reserves and positions")

    monkeypatch.setattr(store, "_insert_scan", crash)  # after the history rows, before the scan row
    with pytest.raises(RuntimeError, match="process killed"):
        store.save_snapshot(make_snapshot())
    for table in DATA_TABLES:
        assert table_count(db_path, table) == 0, table


def test_store_is_usable_after_a_failed_write(db_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    with Store(db_path, clock=clock) as store:
        with pytest.raises(RuntimeError), store.transaction():
            store.add_accounts(MARKET, [(ALICE, 1)], "logs")
            raise RuntimeError("boom")
        assert store.add_accounts(MARKET, [(ALICE, 1)], "logs") == 1
    with Store(db_path, clock=clock) as reopened:
        assert reopened.accounts(MARKET) == [ALICE]


def test_failure_inside_a_transaction_leaves_no_rows(store: Store, db_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), store.transaction():
        store.add_accounts(MARKET, [(ALICE, 100), (BOB, 101)], "logs")
        store.set_checkpoint(MARKET, "logs", 200, "0xabc")
        store.save_snapshot(make_snapshot())
        raise RuntimeError("boom")

    for table in DATA_TABLES:
        assert table_count(db_path, table) == 0, table
    assert store.get_checkpoint(MARKET, "logs") is None


def test_nested_transactions_commit_with_the_outer_one(store: Store, db_path: Path) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        with store.transaction():
            store.add_accounts(MARKET, [(ALICE, 100)], "logs")
        assert store.accounts(MARKET) == [ALICE]  # visible inside the outer transaction
        assert table_count(db_path, "accounts") == 0  # but not committed
        raise RuntimeError("outer fails after the inner block finished")
    assert store.accounts(MARKET) == []

    with store.transaction():
        with store.transaction():
            store.add_accounts(MARKET, [(ALICE, 100)], "logs")
        store.set_checkpoint(MARKET, "logs", 100, "0xabc")
    assert table_count(db_path, "accounts") == 1
    assert table_count(db_path, "checkpoints") == 1


# --------------------------------------------------------------------------- accounts


def test_add_accounts_counts_only_new_ones(store: Store) -> None:
    assert store.add_accounts(MARKET, [(CAROL, 300), (ALICE, 100)], "logs") == 2
    assert store.add_accounts(MARKET, [(ALICE, 50), (BOB, 400), (BOB, 401)], "watchlist") == 1
    assert store.add_accounts(MARKET, [(DAVE.lower(), 10), (DAVE, 11)], "watchlist") == 1
    assert store.add_accounts(MARKET, [(DAVE.upper().replace("0X", "0x"), 1)], "logs") == 0
    assert store.add_accounts(MARKET, [], "logs") == 0
    assert store.add_accounts("spark-ethereum", [(ALICE, 7)], "logs") == 1

    assert store.accounts(MARKET) == sorted([ALICE, BOB, CAROL, DAVE.lower()])
    assert store.accounts("spark-ethereum") == [ALICE]
    assert store.accounts("unknown") == []


def test_add_accounts_keeps_existing_rows_unchanged(store: Store, db_path: Path) -> None:
    store.add_accounts(MARKET, [(ALICE, 100)], "logs")
    store.add_accounts(MARKET, [(ALICE, 5)], "watchlist")

    db = sqlite_utils.Database(db_path)
    try:
        rows = list(db.query("SELECT * FROM accounts"))
    finally:
        db.close()
    assert rows == [{"market": MARKET, "account": ALICE, "first_seen_block": 100, "source": "logs"}]


def test_add_accounts_rejects_an_unknown_source(store: Store) -> None:
    with pytest.raises(StoreError, match="'manual'"):
        store.add_accounts(MARKET, [(ALICE, 1)], "manual")


# --------------------------------------------------------------------------- checkpoints


def test_checkpoints(store: Store, clock: FakeClock) -> None:
    assert store.get_checkpoint(MARKET, "logs") is None

    store.set_checkpoint(MARKET, "logs", BLOCK, "0xaaa")
    clock.now = T0 + 30
    store.set_checkpoint(MARKET, "scan", BLOCK + 5, "0xbbb")
    assert store.get_checkpoint(MARKET, "logs") == Checkpoint(BLOCK, "0xaaa", T0)

    store.set_checkpoint(MARKET, "logs", BLOCK + 9, "0xccc")
    assert store.get_checkpoint(MARKET, "logs") == Checkpoint(BLOCK + 9, "0xccc", T0 + 30)
    assert store.get_checkpoint(MARKET, "scan") == Checkpoint(BLOCK + 5, "0xbbb", T0 + 30)
    assert store.get_checkpoint("spark-ethereum", "logs") is None


# --------------------------------------------------------------------------- queries


def save_two_markets(store: Store) -> None:
    """Block BLOCK then BLOCK+1 on the main market (CAROL gone at BLOCK+1); one spark scan."""
    store.save_snapshot(
        make_snapshot(
            BLOCK,
            (
                make_position(ALICE, BLOCK, health_factor=2 * WAD),
                make_position(CAROL, BLOCK, health_factor=WAD // 2),
            ),
        )
    )
    store.save_snapshot(
        make_snapshot(
            BLOCK + 1,
            (
                make_position(BOB, BLOCK + 1, health_factor=MAX_UINT256, debt_base=0),
                make_position(ALICE, BLOCK + 1, health_factor=1_200_000_000_000_000_000),
                make_position(DAVE, BLOCK + 1, health_factor=1_050_000_000_000_000_000),
            ),
        )
    )
    spark = "spark-ethereum"
    store.save_snapshot(
        make_snapshot(
            BLOCK - 5,
            (make_position(ALICE, BLOCK - 5, health_factor=1_100_000_000_000_000_000, market=spark),),
            market=spark,
        )
    )


def test_latest_positions_are_riskiest_first_with_inf_last(store: Store) -> None:
    save_two_markets(store)

    rows = store.latest_positions()
    assert [(row["market"], row["account"], row["block"]) for row in rows] == [
        (MARKET, DAVE, BLOCK + 1),
        ("spark-ethereum", ALICE, BLOCK - 5),
        (MARKET, ALICE, BLOCK + 1),
        (MARKET, BOB, BLOCK + 1),
    ]
    assert rows[-1]["health_factor"] == "inf"


def test_latest_positions_of_one_market(store: Store) -> None:
    save_two_markets(store)

    rows = store.latest_positions(MARKET)
    assert [row["account"] for row in rows] == [DAVE, ALICE, BOB]
    assert {row["block"] for row in rows} == {BLOCK + 1}
    assert store.latest_positions("unknown") == []


def test_position_history_is_ordered_and_filtered(store: Store) -> None:
    save_two_markets(store)

    history = store.position_history(ALICE)
    assert [(row["market"], row["block"]) for row in history] == [
        ("spark-ethereum", BLOCK - 5),
        (MARKET, BLOCK),
        (MARKET, BLOCK + 1),
    ]
    assert [row["block"] for row in store.position_history(ALICE, market=MARKET)] == [
        BLOCK,
        BLOCK + 1,
    ]
    assert [row["block"] for row in store.position_history(ALICE, since_block=BLOCK)] == [
        BLOCK,
        BLOCK + 1,
    ]
    since = float(BLOCK_TIME + 12)  # the timestamp of BLOCK + 1
    assert [row["block"] for row in store.position_history(ALICE, since_time=since)] == [BLOCK + 1]
    assert store.position_history(ALICE, market="spark-ethereum", since_block=BLOCK) == []
    assert [row["account"] for row in store.position_history(DAVE.lower())] == [DAVE]
    assert store.position_history("0x000000000000000000000000000000000000dEaD") == []


def test_price_history_by_symbol_or_address(store: Store) -> None:
    store.save_snapshot(make_snapshot(BLOCK, weth_price=230_000_000_000))
    store.save_snapshot(make_snapshot(BLOCK + 1, weth_price=231_000_000_000))

    by_symbol = store.price_history(MARKET, "weth")
    assert [(row["block"], row["price"]) for row in by_symbol] == [
        (BLOCK, "230000000000"),
        (BLOCK + 1, "231000000000"),
    ]
    assert store.price_history(MARKET, WETH.lower()) == by_symbol
    assert [row["price_usd"] for row in by_symbol] == [2300.0, 2310.0]
    assert [(row["symbol"], row["block"]) for row in store.price_history(MARKET, since_block=BLOCK + 1)] == [
        ("WETH", BLOCK + 1),  # change-only: USDC's price did not change
    ]
    later = store.price_history(MARKET, "weth", since_time=BLOCK_TIME + 1)  # the second block is 12 s later
    assert [row["block"] for row in later] == [BLOCK + 1]
    assert len(store.price_history(MARKET)) == 3  # WETH twice, USDC once
    assert [r["block"] for r in store.price_history(MARKET, after_block=BLOCK)] == [BLOCK + 1]  # incremental
    assert store.price_history("unknown") == []


def test_closed_store_reports_a_store_error(db_path: Path, clock: FakeClock) -> None:
    store = Store(db_path, clock=clock)
    store.close()
    with pytest.raises(StoreError, match=str(db_path)):
        store.markets()


def test_saved_snapshot_is_visible_to_another_connection(store: Store, db_path: Path, clock: FakeClock) -> None:
    snapshot = make_snapshot()
    store.save_snapshot(replace(snapshot, positions=snapshot.positions[:1]))
    with Store(db_path, clock=clock) as reader:
        assert [row["account"] for row in reader.latest_positions()] == [ALICE]


# --------------------------------------------------------------------------- exact rebuild (Aave 3.0 .. 3.7)

WSTETH = "0x7f39C581F595B53c5cb19bD0b3f8dA6c935E2Ca0"
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


def liquid_snapshot(revision: int = 10) -> MarketSnapshot:
    """A 3.2+ snapshot: liquid eMode categories with bitmaps wider than int64, protocol fees,
    a paused reserve and a grace period; every position has one leg per reserve (as read)."""
    reserves = (
        replace(make_reserve(WETH, "WETH", 18, 0, 230_012_345_678), emode_category=0, liquidation_protocol_fee=1000),
        replace(
            make_reserve(USDC, "USDC", 6, 3, 99_998_000), emode_category=0, paused=True,
            liquidation_protocol_fee=0, stable_debt_token=ZERO_ADDRESS,
        ),
        replace(
            make_reserve(WSTETH, "wstETH", 18, 127, 270_000_000_000), emode_category=0, liquidation_threshold=0,
            ltv=0, liquidation_protocol_fee=2500, liquidation_grace_period_until=1_705_003_600,
        ),
    )  # fmt: skip
    categories = (
        EModeCategory(1, 9300, 9500, 10100, ZERO_ADDRESS, "ETH correlated", collateral_bitmap=(1 << 127) | 1,
                      borrowable_bitmap=1, ltv_zero_bitmap=1 << 127),
        EModeCategory(2, 7500, 8000, 10500, ZERO_ADDRESS, "", collateral_bitmap=0, borrowable_bitmap=1 << 3),
    )  # fmt: skip

    def position(account: str, emode: int, hf: int) -> Position:
        rules = rules_for(revision)  # Aave: the balances are the scaled ones at the block's indexes
        legs = tuple(
            AssetLeg(r.asset, r.symbol, ALICE_SCALED + i, a_token_balance(ALICE_SCALED + i, r.liquidity_index, rules),
                     7 * i, variable_debt_balance(7 * i, r.variable_borrow_index, rules), 0, i != 1)
            for i, r in enumerate(reserves)
        )  # fmt: skip
        return replace(make_position(account, health_factor=hf), emode_category=emode, legs=legs)

    return replace(
        make_snapshot(positions=(position(ALICE, 1, ALICE_HF), position(CAROL, 2, 999_999_999_999_999_999))),
        protocol="aave_v3", reserves=reserves, emode_categories=categories, revision=revision,
    )  # fmt: skip


@pytest.mark.parametrize("revision", [1, 10])
def test_stored_snapshot_rebuilds_exactly(store: Store, revision: int) -> None:
    snapshot = liquid_snapshot(revision)
    if revision == 1:  # 3.0: eMode by the reserve bits, categories without bitmaps, a price source
        snapshot = replace(
            snapshot,
            reserves=tuple(replace(r, emode_category=1 if r.symbol != "USDC" else 0) for r in snapshot.reserves),
            emode_categories=(EModeCategory(1, 9300, 9500, 10100, WETH, "ETH correlated"),),
        )
    store.save_snapshot(snapshot)
    rebuilt = store.load_snapshot(MARKET)
    assert rebuilt == snapshot
    assert rebuilt.revision == revision
    assert [r.liquidation_protocol_fee for r in rebuilt.reserves] == [1000, 0, 2500]
    assert [r.paused for r in rebuilt.reserves] == [False, True, False]
    assert rebuilt.reserves[2].liquidation_grace_period_until == 1_705_003_600
    if revision == 10:
        assert rebuilt.emode_categories[0].collateral_bitmap == (1 << 127) | 1
        assert rebuilt.emode_categories[0].ltv_zero_bitmap == 1 << 127
        assert rebuilt.emode_categories[1].collateral_bitmap == 0  # 0 is not "pre-3.2"
        assert rebuilt.emode_categories[0].covers(rebuilt.reserves[2])
        assert not rebuilt.emode_categories[1].covers(rebuilt.reserves[0])
    else:
        assert rebuilt.emode_categories[0].collateral_bitmap is None


def test_older_block_keeps_its_own_revision(store: Store) -> None:
    store.save_snapshot(liquid_snapshot(9))
    newer = liquid_snapshot(10)
    store.save_snapshot(replace(
        newer, block=BLOCK + 1, block_hash=f"0x{BLOCK + 1:064x}",
        positions=tuple(replace(p, block=BLOCK + 1) for p in newer.positions),
    ))  # fmt: skip
    assert store.load_snapshot(MARKET, BLOCK).revision == 9
    assert store.load_snapshot(MARKET).revision == 10
    assert [s["revision"] for s in store.scans()] == [9, 10]


def test_version_4_database_migrates_with_neutral_defaults(
    db_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A history written before schema 5 opens, and its rows read as pre-3.2 / revision 0."""
    snapshot = make_snapshot()
    with monkeypatch.context() as patch:
        patch.setattr(schema_module, "_MIGRATIONS", schema_module._MIGRATIONS[:4])
        with Store(db_path, clock=clock):
            pass
    db = sqlite_utils.Database(db_path)
    try:  # rows exactly as a version-4 liqmon wrote them
        db.table("markets").insert(rows_module._market_row(snapshot, BLOCK, T0))
        db.table("reserves").insert_all(r.as_row(MARKET, BLOCK) for r in snapshot.reserves)
        old_emode = rows_module._emode_row(MARKET, BLOCK, snapshot.emode_categories[0])
        for key in ("collateral_bitmap", "borrowable_bitmap", "ltv_zero_bitmap"):
            del old_emode[key]
        db.table("emode_categories").insert(old_emode)
        db.table("prices").insert_all(rows_module._price_row(snapshot, r) for r in snapshot.reserves)
        scan = rows_module._scan_row(snapshot, T0)
        del scan["revision"]
        db.table("scans").insert(scan)
    finally:
        db.close()
    with Store(db_path, clock=clock) as migrated:
        assert meta_version(db_path) == str(len(schema_module._MIGRATIONS))
        rebuilt = migrated.load_snapshot(MARKET)
    assert rebuilt.revision == 0
    assert rebuilt.emode_categories == snapshot.emode_categories
    assert rebuilt.emode_categories[0].collateral_bitmap is None
    assert [(r.liquidation_protocol_fee, r.paused, r.liquidation_grace_period_until) for r in rebuilt.reserves] == [
        (0, False, 0),
        (0, False, 0),
    ]


def at_block(snapshot: MarketSnapshot, block: int) -> MarketSnapshot:
    moved = replace(snapshot, block=block, block_hash=f"0x{block:064x}", timestamp=BLOCK_TIME + (block - BLOCK) * 12)
    # the HF and totals of the protocol's math at this block (what a rebuilt block gives)
    positions = []
    for p in snapshot.positions:
        data = snapshot_account_data(moved, p)
        positions.append(replace(
            p, block=block, health_factor=data.health_factor, total_collateral_base=data.total_collateral_base,
            total_debt_base=data.total_debt_base, available_borrows_base=data.available_borrows_base,
            current_liquidation_threshold=data.current_liquidation_threshold, ltv=data.ltv,
        ))  # fmt: skip
    return replace(moved, positions=tuple(positions))


def test_every_stored_block_rebuilds_with_the_parameters_of_its_block(store: Store, db_path: Path) -> None:
    """Parameters change (a pause with a grace period, a bitmap, a new category, a fee): each
    block rebuilds exactly as it was read, and unchanged parameters add no row (change-only)."""
    first = at_block(liquid_snapshot(10), BLOCK)
    usdc = replace(first.reserves[1], paused=False, liquidation_grace_period_until=BLOCK_TIME + 3600)
    weth = replace(first.reserves[0], liquidation_protocol_fee=1500, ltv=7900)
    eth = replace(first.emode_categories[0], collateral_bitmap=1, ltv_zero_bitmap=0)
    new = EModeCategory(3, 8600, 8800, 10500, ZERO_ADDRESS, "PT-USD", collateral_bitmap=1 << 127, borrowable_bitmap=8)
    second = at_block(replace(first, reserves=(weth, usdc, first.reserves[2]),
                              emode_categories=(eth, first.emode_categories[1], new)), BLOCK + 5)  # fmt: skip
    third = at_block(second, BLOCK + 9)  # same parameters, new prices and positions
    third = replace(third, reserves=tuple(replace(r, price=r.price + 1) for r in third.reserves))
    for snapshot in (first, second, third):
        store.save_snapshot(snapshot)
    assert store.load_snapshot(MARKET, BLOCK) == first
    assert store.load_snapshot(MARKET, BLOCK + 5) == second
    assert store.load_snapshot(MARKET, BLOCK + 9) == third
    assert table_count(db_path, "market_params") == 2  # the third block changed no parameter
    # saving an older block again after newer ones keeps each block's own parameters
    store.save_snapshot(first)
    assert store.load_snapshot(MARKET, BLOCK + 9) == third and store.load_snapshot(MARKET, BLOCK) == first
    # a reorg drops a suffix of blocks and their parameter rows with them
    store.drop_blocks(MARKET, [BLOCK + 5, BLOCK + 9])
    assert table_count(db_path, "market_params") == 1
    assert store.load_snapshot(MARKET) == first


def test_saving_a_block_again_with_unchanged_parameters_drops_its_redundant_row(store: Store, db_path: Path) -> None:
    first = at_block(liquid_snapshot(10), BLOCK)
    changed = at_block(
        replace(first, reserves=(replace(first.reserves[0], paused=True), *first.reserves[1:])), BLOCK + 1
    )
    store.save_snapshot(first)
    store.save_snapshot(changed)
    assert table_count(db_path, "market_params") == 2
    store.save_snapshot(at_block(first, BLOCK + 1))  # the block re-read: the pause was not real
    assert table_count(db_path, "market_params") == 1
    assert store.load_snapshot(MARKET, BLOCK + 1) == at_block(first, BLOCK + 1)
