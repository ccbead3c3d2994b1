"""Change-only history (monitor.store.history): what is written when, and that every stored
block still rebuilds exactly (the HF recomputed from the stored legs, indexes and prices)."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlite_utils

import monitor.store.schema as schema_module
from monitor.models import MAX_UINT256, RAY, WAD, AssetLeg, EModeCategory, MarketSnapshot, Position, Reserve
from monitor.protocols.aave_revisions import a_token_balance, rules_for, variable_debt_balance
from monitor.risk.health import account_data, categories_by_id, snapshot_account_data
from monitor.store import Store
from monitor.store.history import BALANCES, BAND, CLOSED, FIRST, HEARTBEAT, MOVE, HistoryPolicy, RetentionPolicy

MARKET = "aave-v3-test"
BLOCK = 1_000
T0 = 1_750_000_000
ZERO = "0x" + "0" * 40
ASSETS = [f"0x{i:040x}" for i in range(1, 5)]
DECIMALS = [18, 6, 8, 18]
SYMBOLS = ["WETH", "USDC", "WBTC", "wstETH"]
ACCOUNTS = [f"0x{0xA11CE0 + i:040x}" for i in range(8)]


def rows(db: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


class Market:
    """A small Aave market with exact balances: legs per reserve, scaled balances changed by
    user actions, indexes accruing every block, prices moving every few blocks."""

    def __init__(self, revision: int = 3, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.rules = rules_for(revision)
        self.revision = revision
        self.block = BLOCK
        self.prices = [2_000 * 10**8, 10**8, 60_000 * 10**8, 2_300 * 10**8]
        self.liquidity = [RAY + 12_345_678_901_234_567_890_123 * (i + 1) for i in range(4)]
        self.borrow = [RAY + 55_555_555_555_555_555_555_555 * (i + 1) for i in range(4)]
        self.categories = (EModeCategory(1, 9000, 9300, 10100, ZERO, "ETH", collateral_bitmap=0b1001,
                                         borrowable_bitmap=0b1001),)  # fmt: skip
        # account -> [emode, {reserve: [scaled collateral, scaled debt, used as collateral]}]
        self.state: dict[str, list[object]] = {}
        for a in ACCOUNTS:
            legs: dict[int, list[int]] = {}
            coll = self.rng.choice([0, 2, 3])
            legs[coll] = [self.rng.randint(10, 100) * 10 ** DECIMALS[coll], 0, 1]
            debt = 1 if coll != 1 else 0
            legs[debt] = [0, self.rng.randint(1, 10) * 10 ** DECIMALS[debt] * self.prices[coll] // self.prices[debt], 0]
            self.state[a] = [1 if coll in (0, 3) and debt in (0, 3) else 0, legs]
        self.present = set(ACCOUNTS)
        self.touched: set[str] = set()

    def reserves(self) -> tuple[Reserve, ...]:
        return tuple(
            Reserve(ASSETS[i], SYMBOLS[i], DECIMALS[i], i, 7500, 8000 + 100 * i, 10500, 0, True, False, True, ZERO,
                    ZERO, ZERO, self.liquidity[i], self.borrow[i], self.prices[i])
            for i in range(4)
        )  # fmt: skip

    def position(self, account: str, reserves: tuple[Reserve, ...]) -> Position:
        emode, legs = self.state[account]
        assert isinstance(emode, int) and isinstance(legs, dict)
        config = 0
        out = []
        for r in reserves:
            sc, sd, flag = legs.get(r.reserve_id, [0, 0, 0])
            if sc and flag:
                config |= 1 << (2 * r.reserve_id + 1)
            if sd:
                config |= 1 << (2 * r.reserve_id)
            out.append(
                AssetLeg(
                    r.asset,
                    r.symbol,
                    sc,
                    a_token_balance(sc, r.liquidity_index, self.rules),
                    sd,
                    variable_debt_balance(sd, r.variable_borrow_index, self.rules),
                    0,
                    bool(flag),
                )
            )
        data = account_data(out, reserves, emode, config, categories_by_id(self.categories), rules=self.rules)
        return Position(MARKET, account, self.block, data.health_factor, data.total_collateral_base,
                        data.total_debt_base, data.available_borrows_base, data.current_liquidation_threshold,
                        data.ltv, emode, config, tuple(out))  # fmt: skip

    def snapshot(self) -> MarketSnapshot:
        reserves = self.reserves()
        positions = tuple(self.position(a, reserves) for a in ACCOUNTS if a in self.present)
        ts = T0 + (self.block - BLOCK) * 12
        return MarketSnapshot(MARKET, "aave_v3", 31337, self.block, f"0x{self.block:064x}", ts, 10**8, reserves,
                              self.categories, positions, {}, self.revision)  # fmt: skip

    def step(self, actions: int = 2, *, prices: bool | None = None) -> MarketSnapshot:
        rng = self.rng
        self.block += 1
        for i in range(4):
            self.liquidity[i] += self.liquidity[i] // 10**7 + rng.randint(0, 999)
            self.borrow[i] += self.borrow[i] // 10**6 + rng.randint(0, 999)
        if prices or (prices is None and self.block % 3 == 0):
            self.prices = [max(1, p + rng.randint(-p // 50, p // 50)) for p in self.prices]
        self.touched = set(rng.sample(ACCOUNTS, actions))
        for account in sorted(self.touched):
            emode, legs = self.state[account]
            assert isinstance(legs, dict)
            kind = rng.choice(["supply", "borrow", "repay", "flag", "emode", "new"])
            r = rng.choice(list(legs))
            if kind == "supply" and legs[r][0]:
                legs[r][0] += rng.randint(1, 10**6) * 10 ** (DECIMALS[r] - 3)
            elif kind in ("borrow", "repay") and legs[r][1]:
                legs[r][1] = max(1, legs[r][1] + (1 if kind == "borrow" else -1) * rng.randint(1, legs[r][1] // 10 + 1))
            elif kind == "flag" and legs[r][0]:
                legs[r][2] = 1 - legs[r][2]
            elif kind == "emode":
                self.state[account][0] = 1 - int(emode)  # type: ignore[call-overload]
            else:  # a new collateral leg
                spare = [i for i in range(4) if i not in legs]
                if spare:
                    legs[rng.choice(spare)] = [rng.randint(1, 5) * 10 ** DECIMALS[spare[0]], 0, 1]
        return self.snapshot()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "h.db"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    with Store(db, retention=RetentionPolicy(full_days=None)) as opened:
        yield opened


def written_at(db: Path, block: int) -> dict[str, tuple[int, str | None]]:
    """account -> (reason, HF) of the position rows written at ``block``."""
    found = rows(db, "SELECT a.account, r.reason, r.health_factor FROM position_rows r JOIN account_ids a"
                     " ON a.id = r.account_id WHERE r.block = ?", (block,))  # fmt: skip
    return {str(a): (int(reason), h) for a, reason, h in found}  # type: ignore[call-overload,misc]


# --------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("revision", [3, 10])  # 3.1 (half-up rayMul) and 3.6 (floor / ceil)
def test_every_stored_block_rebuilds_and_its_recomputed_hf_is_exact(store: Store, db: Path, revision: int) -> None:
    """For 60 blocks of random actions, index accrual and price moves: at EVERY block, every
    position's HF recomputed (risk.health) from the rebuilt snapshot equals the true HF of
    that block, and for the positions written at that block, the HF saved there."""
    market = Market(revision)
    truth: dict[int, MarketSnapshot] = {}
    snap = market.snapshot()
    for _ in range(60):
        store.save_snapshot(snap)
        truth[snap.block] = snap
        snap = market.step()
    checked_written = 0
    for block, true_snapshot in truth.items():
        rebuilt = store.load_snapshot(MARKET, block)
        assert rebuilt.reserves == true_snapshot.reserves  # prices and indexes in force at the block
        expected = {p.account: p for p in true_snapshot.positions}
        assert {p.account for p in rebuilt.positions} == set(expected)
        saved = written_at(db, block)
        for position in rebuilt.positions:
            truth_position = expected[position.account]
            assert position.legs == truth_position.legs  # exact unscaled balances at this block's indexes
            recomputed = snapshot_account_data(rebuilt, position).health_factor
            assert recomputed == truth_position.health_factor, (block, position.account)
            if position.account in saved:
                stored_hf = saved[position.account][1]
                assert recomputed == (MAX_UINT256 if stored_hf is None else int(stored_hf))
                checked_written += 1
    assert checked_written >= 60  # the first block's 8 and every block's changes
    total = rows(db, "SELECT count(*) FROM position_rows")[0][0]
    assert isinstance(total, int) and total < 60 * len(ACCOUNTS) * 0.6  # change-only: far from every row


def test_history_of_an_account_answers_with_the_legs_of_each_row(store: Store) -> None:
    market = Market()
    snaps = [market.snapshot()] + [market.step(3) for _ in range(15)]
    for s in snaps:
        store.save_snapshot(s)
    for account in ACCOUNTS:
        history = store.position_history(account.upper().replace("0X", "0x"))  # any case
        assert history, account
        by_block = {s.block: {p.account: p for p in s.positions}[account] for s in snaps}
        for row in history:
            truth = by_block[row["block"]]
            assert row["health_factor_wad"] == str(truth.health_factor)
            assert row["collateral_base"] == str(truth.total_collateral_base)
            assert row["legs"] == [g.as_dict() for g in truth.legs if g.collateral or g.debt]
            assert row["written_because"]


# --------------------------------------------------------------------------- when rows are written


def test_an_unchanged_block_writes_no_position_leg_price_or_index_row(store: Store, db: Path) -> None:
    market = Market()
    first = market.snapshot()
    store.save_snapshot(first)
    same = replace(first, block=BLOCK + 1, block_hash="0x" + "1" * 64, timestamp=first.timestamp + 12,
                   positions=tuple(replace(p, block=BLOCK + 1) for p in first.positions))  # fmt: skip
    store.save_snapshot(same)
    for table in ("position_rows", "position_legs", "price_rows", "reserve_indexes", "market_params"):
        assert rows(db, f"SELECT count(*) FROM {table} WHERE block = ?", (BLOCK + 1,))[0][0] == 0, table
    assert written_at(db, BLOCK) and all(reason & FIRST for reason, _ in written_at(db, BLOCK).values())
    assert store.load_snapshot(MARKET, BLOCK + 1) == same


def test_one_changed_leg_writes_one_leg_row_and_one_position_row(store: Store, db: Path) -> None:
    market = Market()
    store.save_snapshot(market.snapshot())
    account = ACCOUNTS[0]
    legs = market.state[account][1]
    assert isinstance(legs, dict)
    reserve = next(r for r, leg in legs.items() if leg[0])
    legs[reserve][0] += 10**12
    market.block += 1
    store.save_snapshot(market.snapshot())
    assert rows(db, "SELECT asset_id FROM position_legs WHERE block = ?", (market.block,)) == [(reserve + 1,)]
    assert list(written_at(db, market.block)) == [account]
    assert written_at(db, market.block)[account][0] & BALANCES


def _one(hf: int, block: int, legs: tuple[AssetLeg, ...] = ()) -> MarketSnapshot:
    position = Position(MARKET, ACCOUNTS[0], block, hf, 10**8, 10**8 if hf != MAX_UINT256 else 0, 0, 8000, 7500, 0, 2,
                        legs)  # fmt: skip
    reserve = Market().reserves()[0]
    return MarketSnapshot(MARKET, "aave_v3", 1, block, f"0x{block:064x}", T0 + (block - BLOCK) * 12, 10**8,
                          (reserve,), (), (position,), {}, 3)  # fmt: skip


def test_band_crossings_moves_and_the_heartbeat_write_a_row(db: Path) -> None:
    policy = HistoryPolicy(hf_bands=(1.0, 1.1, 1.25, 1.5), hf_move=0.03, heartbeat_s=600)
    with Store(db, history=policy) as store:
        for block, hf in enumerate([1.40, 1.39, 1.37, 1.34, 1.26, 1.24, 1.24, 1.24], start=BLOCK):
            store.save_snapshot(_one(int(hf * WAD), block))
        store.save_snapshot(_one(int(1.24 * WAD), BLOCK + 60))  # 624 s after the last row: a heartbeat
        store.save_snapshot(_one(MAX_UINT256, BLOCK + 61))  # the debt repaid: a band of its own
    reasons = {b: r for b, r in rows(db, "SELECT block, reason FROM position_rows")}
    assert reasons == {
        BLOCK: FIRST | BALANCES,
        BLOCK + 3: MOVE,  # 1.34 is 4.3 % below 1.40 (1.39, 1.37: under 3 %)
        BLOCK + 5: BAND,  # 1.24 crosses 1.25 (1.26: 6 % below 1.34, within the band: a move)
        BLOCK + 4: MOVE,
        BLOCK + 60: HEARTBEAT,
        BLOCK + 61: BAND,
    }


def test_an_account_that_leaves_the_snapshot_is_closed_and_comes_back(store: Store, db: Path) -> None:
    market = Market()
    store.save_snapshot(market.snapshot())
    market.present.discard(ACCOUNTS[1])
    market.block += 1
    store.save_snapshot(market.snapshot())
    assert written_at(db, market.block) == {ACCOUNTS[1]: (CLOSED, written_at(db, BLOCK)[ACCOUNTS[1]][1])}
    assert ACCOUNTS[1] not in {r["account"] for r in store.latest_positions()}
    assert ACCOUNTS[1] not in {p.account for p in store.load_snapshot(MARKET).positions}
    market.present.add(ACCOUNTS[1])
    market.block += 1
    store.save_snapshot(market.snapshot())
    assert written_at(db, market.block)[ACCOUNTS[1]][0] & FIRST
    assert store.load_snapshot(MARKET) == market.snapshot()


def test_the_touched_hint_writes_the_same_rows_as_comparing_everyone(tmp_path: Path) -> None:
    """save_snapshot(touched=the accounts a block's events named) skips the others' legs and
    writes exactly what comparing every position writes."""
    dumps = []
    for hint in (False, True):
        market, path = Market(seed=5), tmp_path / f"hint{hint}.db"
        with Store(path) as store:
            store.save_snapshot(market.snapshot())
            for _ in range(25):
                snap = market.step(2)
                store.save_snapshot(snap, touched=market.touched if hint else None)
        dumps.append([rows(path, f"SELECT * FROM {t} ORDER BY 1, 2, 3") for t in ("position_rows", "position_legs")])
    assert dumps[0] == dumps[1] and len(dumps[0][1]) > len(ACCOUNTS)


def test_a_reopened_store_rebuilds_its_last_written_state(db: Path) -> None:
    market = Market()
    with Store(db) as store:
        for _ in range(5):
            store.save_snapshot(market.step())
    expected = market.step(0, prices=False)  # only indexes accrue
    import monitor.store.history as history_module

    history_module._SHARED_STATES.clear()  # a new process
    with Store(db) as reopened:
        reopened.save_snapshot(expected)
    assert rows(db, "SELECT count(*) FROM position_rows WHERE block = ?", (expected.block,))[0][0] == 0
    assert rows(db, "SELECT count(*) FROM position_legs WHERE block = ?", (expected.block,))[0][0] == 0


# --------------------------------------------------------------------------- reorgs and retention


def test_a_dropped_suffix_and_its_replacement_rebuild_exactly(store: Store) -> None:
    market = Market()
    snaps = [market.snapshot()] + [market.step() for _ in range(8)]
    for s in snaps:
        store.save_snapshot(s)
    store.drop_blocks(MARKET, [s.block for s in snaps[6:]])
    other = Market(seed=99)  # the canonical chain after the fork: other actions
    other.state, other.block = market.state, snaps[5].block
    market.state = {}
    replacement = []
    for _ in range(4):
        replacement.append(other.step(3))
        store.save_snapshot(replacement[-1])
    for s in snaps[:6] + replacement:
        rebuilt = store.load_snapshot(MARKET, s.block)
        assert rebuilt == s
        assert all(snapshot_account_data(rebuilt, p).health_factor == p.health_factor for p in rebuilt.positions)


def test_orphaned_blocks_are_ignored_then_replaced(store: Store) -> None:
    market = Market()
    snaps = [market.snapshot()] + [market.step(4, prices=True) for _ in range(5)]
    for s in snaps:
        store.save_snapshot(s)
    store.mark_orphaned(MARKET, [(s.block, s.block_hash) for s in snaps[3:]], "test reorg")
    assert store.load_snapshot(MARKET) == snaps[2]
    fork = replace(market.step(0, prices=True), block=snaps[3].block, block_hash="0x" + "f" * 64)
    fork = replace(fork, positions=tuple(replace(p, block=fork.block) for p in fork.positions),
                   timestamp=snaps[3].timestamp)  # fmt: skip
    store.save_snapshot(fork)
    assert store.load_snapshot(MARKET) == fork
    store.unmark_orphaned(MARKET, [snaps[5].block])
    assert store.load_snapshot(MARKET, snaps[5].block).block == snaps[5].block


def test_retention_thins_old_rows_and_kept_blocks_still_rebuild(db: Path) -> None:
    market = Market()
    snaps = []
    with Store(db, retention=RetentionPolicy(full_days=None)) as store:
        for _ in range(300):  # 300 blocks, 10 minutes apart: ~2 days
            snap = market.step(1)
            snap = replace(snap, timestamp=T0 + (snap.block - BLOCK) * 600)
            store.save_snapshot(snap)
            snaps.append(snap)
        before = {t: rows(db, f"SELECT count(*) FROM {t}")[0][0] for t in ("position_rows", "reserve_indexes", "scans")}
    with Store(db, retention=RetentionPolicy(full_days=1, downsample_s=3 * 3600)) as store:
        deleted = store.apply_retention(MARKET, snaps[-1].timestamp)
        after = {t: rows(db, f"SELECT count(*) FROM {t}")[0][0] for t in before}
        kept = {int(b) for (b,) in rows(db, "SELECT block FROM scans")}  # type: ignore[call-overload]
        cutoff = snaps[-1].timestamp - 86_400
        old = [s for s in snaps if s.timestamp < cutoff // (3 * 3600) * (3 * 3600)]
        assert deleted > 0 and all(after[t] < before[t] for t in before)  # type: ignore[operator]
        assert len([s for s in old if s.block in kept]) <= len(old) // 15  # one block per 3 h of 10 min blocks
        for s in snaps:
            if s.block in kept:
                assert store.load_snapshot(MARKET, s.block) == s
        assert store.apply_retention(MARKET, snaps[-1].timestamp) == 0  # incremental: nothing left to do


# --------------------------------------------------------------------------- migration


def test_a_schema_8_database_migrates_keeping_every_row(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows written by the write-everything schema (8) read back the same after migration."""
    market = Market()
    snaps = [market.snapshot()] + [market.step() for _ in range(4)]
    with monkeypatch.context() as patch:
        patch.setattr(schema_module, "_MIGRATIONS", schema_module._MIGRATIONS[:8])
        with Store(db):
            pass
    old = sqlite_utils.Database(db)
    try:
        for s in snaps:
            old["markets"].upsert({"name": MARKET, "protocol": "aave_v3", "chain_id": 31337, "base_currency_unit":
                                   str(10**8), "last_block": s.block, "updated_at": 0.0}, pk="name")  # fmt: skip
            old["scans"].insert({"market": MARKET, "block": s.block, "block_hash": s.block_hash,
                                 "timestamp": s.timestamp, "positions": len(s.positions), "created_at": 0.0,
                                 "revision": 3})  # fmt: skip
            from monitor.store.rows import _params_json

            reserves_json, categories_json = _params_json(s)
            if s is snaps[0]:
                old["market_params"].insert({"market": MARKET, "block": s.block, "reserves": reserves_json,
                                             "emode_categories": categories_json})  # fmt: skip
            for r in s.reserves:
                old["prices"].insert({"market": MARKET, "asset": r.asset, "block": s.block, "symbol": r.symbol,
                                      "price": str(r.price), "price_usd": r.price / 1e8, "timestamp": s.timestamp,
                                      "liquidity_index": str(r.liquidity_index),
                                      "variable_borrow_index": str(r.variable_borrow_index)})  # fmt: skip
            for p in s.positions:
                old["positions"].insert(_old_position_row(s, p))
    finally:
        old.close()
    with Store(db) as migrated:
        assert rows(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [
            (str(len(schema_module._MIGRATIONS)),)
        ]
        assert rows(db, "SELECT count(*) FROM position_rows")[0][0] == sum(len(s.positions) for s in snaps)
        assert rows(db, "SELECT count(*) FROM price_rows")[0][0] == 4 * len(snaps)
        for s in snaps:
            assert migrated.load_snapshot(MARKET, s.block) == s
        history = migrated.position_history(ACCOUNTS[2])
        assert [r["health_factor_wad"] for r in history] == [
            str({p.account: p for p in s.positions}[ACCOUNTS[2]].health_factor) for s in snaps
        ]
        assert all(r["written_because"] == ["migrated"] for r in history)
        migrated.save_snapshot(market.step())  # and writing goes on change-only
        assert store_rows_at(db, market.block) < len(ACCOUNTS)


def store_rows_at(db: Path, block: int) -> int:
    found = rows(db, "SELECT count(*) FROM position_rows WHERE block = ?", (block,))[0][0]
    assert isinstance(found, int)
    return found


def _old_position_row(s: MarketSnapshot, p: Position) -> dict[str, object]:
    import json

    from monitor.models import format_wad

    no_debt = p.health_factor == MAX_UINT256
    return {
        "market": s.market, "account": p.account, "block": s.block, "timestamp": s.timestamp,
        "health_factor": format_wad(p.health_factor), "health_factor_wad": str(p.health_factor),
        "hf": None if no_debt else p.health_factor / WAD, "collateral_base": str(p.total_collateral_base),
        "debt_base": str(p.total_debt_base), "collateral_usd": p.total_collateral_base / 1e8,
        "debt_usd": p.total_debt_base / 1e8, "available_borrows_base": str(p.available_borrows_base),
        "liquidation_threshold": p.current_liquidation_threshold, "ltv": p.ltv, "emode_category": p.emode_category,
        "user_configuration": str(p.user_configuration),
        "legs": json.dumps([g.as_dict() for g in p.legs if g.collateral or g.debt], separators=(",", ":")),
    }  # fmt: skip


# --------------------------------------------------------------------------- config


def _config(store: dict[str, object], tmp_path: Path) -> object:
    from monitor.config import parse_config

    data = {
        "chains": {"devnet": {"chain_id": 31337, "rpc_urls": ["http://127.0.0.1:8545"]}},
        "markets": [{"name": "m", "protocol": "aave_v3", "chain": "devnet",
                     "pool_addresses_provider": "0x5FbDB2315678afecb367f032d93F642f64180aa3"}],
        "store": {"path": "h.db", **store},
    }  # fmt: skip
    return parse_config(data, tmp_path / "c.yaml", env={})


def test_store_history_and_retention_config(tmp_path: Path) -> None:
    from monitor.errors import ConfigError

    config = _config({"history": {"hf_bands": [1, 1.2], "hf_move": 0.1, "heartbeat_s": 900},
                      "retention": {"full_days": 7, "downsample_s": 86400}}, tmp_path)  # fmt: skip
    assert config.store.history == HistoryPolicy((1.0, 1.2), 0.1, 900)  # type: ignore[attr-defined]
    assert config.store.retention == RetentionPolicy(7.0, 86400)  # type: ignore[attr-defined]
    default = _config({"retention": {"full_days": None}}, tmp_path)
    assert default.store.history == HistoryPolicy()  # type: ignore[attr-defined]
    assert default.store.retention.full_days is None  # type: ignore[attr-defined]
    for bad, message in (
        ({"history": {"hf_bands": [1.2, 1.1]}}, "store.history.hf_bands: expected increasing levels"),
        ({"history": {"hf_move": 0}}, "store.history.hf_move: expected a number between"),
        ({"history": {"heartbeat": 60}}, "store.history.heartbeat: unknown key (did you mean 'heartbeat_s'?)"),
        ({"retention": {"downsample_s": 1}}, "store.retention.downsample_s: expected an integer >= 60, got 1"),
    ):
        with pytest.raises(ConfigError) as info:
            _config(bad, tmp_path)
        assert message in str(info.value) and "\n" not in str(info.value)
