"""Database growth and tick cost of the change-only history (issue 14 part 4).

A simulated Aave market: 60 reserves, 10,000 positions of 2-3 legs, one block every 12 s;
every block 1 % of the accounts change one leg (supply / borrow / repay / withdraw) and every
reserve's indexes accrue; every 10 blocks every price moves (a random walk, 0.1 % sigma for
floating assets, 0.005 % for stablecoins). Each block is one ``Store.save_snapshot`` of the
whole market, as the daemon calls it.

1. Growth over 7,200 blocks (one day), against the old write-everything-every-block schema
   (every position and price row at every block, legs as JSON) measured on a few blocks in
   the same run and extrapolated linearly (it is linear: the same rows every block).
2. A tick's store cost (save_snapshot of a block with 100 touched accounts + the daemon's
   incremental price read ``price_history(after_block=...)``) after 1 and after 30 simulated
   days stored. The 29 older days are bulk-inserted below the simulated day (hourly heartbeat
   rows of every position, every 10th block's price rows, every block's index rows and scans),
   which is what change-only writing leaves for quiet days.

    .venv/bin/python scripts/bench_history.py            # full: 10,000 positions, 7,200 blocks
    .venv/bin/python scripts/bench_history.py --quick    # 2,000 positions, 720 blocks
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.models import MAX_UINT256, RAY, WAD, AssetLeg, EModeCategory, MarketSnapshot, Position, Reserve
from monitor.store import Store
from monitor.store.history import HistoryPolicy, RetentionPolicy

MARKET = "aave-v3-bench"
T0 = 1_760_000_000
BLOCK0 = 20_000_000
BLOCKS_PER_DAY = 7_200
ZERO = "0x" + "0" * 40


@dataclass
class Account:
    address: str
    collateral: list[int]  # reserve ids
    debt: int
    legs: dict[int, list[int]]  # reserve id -> [scaled collateral, scaled debt]
    built: tuple[AssetLeg, ...] = ()
    health: int = 0


class Simulation:
    """The market's state and its per-block evolution (seeded, deterministic)."""

    def __init__(self, n_accounts: int, n_reserves: int, seed: int = 14) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        self.decimals = [(6, 8, 18)[i % 3] for i in range(n_reserves)]
        self.stable = [i % 5 == 0 for i in range(n_reserves)]
        self.prices = [10**8 if s else rng.randint(10**8, 5 * 10**11) for s in self.stable]
        self.liquidity = [RAY + rng.randint(0, RAY // 10) for _ in range(n_reserves)]
        self.borrow = [RAY + rng.randint(0, RAY // 5) for _ in range(n_reserves)]
        self.assets = [f"0x{i + 1:040x}" for i in range(n_reserves)]
        self.accounts: list[Account] = []
        for k in range(n_accounts):
            n_coll = rng.choice((1, 2))
            coll = rng.sample(range(n_reserves), n_coll)
            debt = rng.choice([i for i in range(n_reserves) if i not in coll])
            acct = Account(f"0x{0xA0000000 + k:040x}", coll, debt, {})
            for c in coll:
                acct.legs[c] = [rng.randint(1, 10**6) * 10 ** self.decimals[c] // 1000, 0]
            value = sum(self._value(c, acct.legs[c][0]) for c in coll)
            debt_value = value * rng.uniform(0.3, 0.75)
            acct.legs[debt] = [0, max(1, int(debt_value * 10 ** self.decimals[debt] / self.prices[debt]))]
            self._build(acct)
            acct.health = self.hf(acct)
            self.accounts.append(acct)
        self.block = BLOCK0
        self.touched: set[str] = set()
        self.reserves = self._reserves()

    def _value(self, r: int, scaled: int) -> int:
        return int(scaled * self.prices[r] // 10 ** self.decimals[r])

    def _build(self, acct: Account) -> None:
        acct.built = tuple(
            AssetLeg(self.assets[r], f"T{r}", sc, sc, sd, sd, 0, sc > 0) for r, (sc, sd) in sorted(acct.legs.items())
        )

    def _reserves(self) -> tuple[Reserve, ...]:
        return tuple(
            Reserve(self.assets[i], f"T{i}", self.decimals[i], i, 7500, 8000, 10500, 0, True, False, True, ZERO, ZERO,
                    ZERO, self.liquidity[i], self.borrow[i], self.prices[i])
            for i in range(len(self.assets))
        )  # fmt: skip

    def hf(self, acct: Account) -> int:
        coll = sum(self._value(r, sc) for r, (sc, _) in acct.legs.items())
        debt = sum(self._value(r, sd) for r, (_, sd) in acct.legs.items())
        return MAX_UINT256 if debt == 0 else coll * 8000 * WAD // (10_000 * debt)

    def step(self, touched: int) -> MarketSnapshot:
        """The next block: ``touched`` accounts change a leg; indexes accrue; prices every 10."""
        rng = self.rng
        self.block += 1
        for i in range(len(self.assets)):
            self.liquidity[i] += self.liquidity[i] // 10**9
            self.borrow[i] += self.borrow[i] // (5 * 10**8)
        if self.block % 10 == 0:
            for i, stable in enumerate(self.stable):
                self.prices[i] = max(1, int(self.prices[i] * (1 + rng.gauss(0, 0.00005 if stable else 0.001))))
            for acct in self.accounts:
                acct.health = self.hf(acct)
        self.touched = set()
        for acct in rng.sample(self.accounts, touched):
            r = rng.choice(list(acct.legs))
            leg = acct.legs[r]
            side = 0 if leg[0] else 1
            leg[side] = max(1, int(leg[side] * rng.uniform(0.9, 1.1)))
            self._build(acct)
            acct.health = self.hf(acct)
            self.touched.add(acct.address)
        self.reserves = self._reserves()
        return self.snapshot()

    def snapshot(self) -> MarketSnapshot:
        block = self.block
        positions = tuple(
            Position(MARKET, a.address, block, a.health, 0, 0, 0, 8000, 7500, 0, 0, a.built) for a in self.accounts
        )
        return MarketSnapshot(
            MARKET, "aave_v3", 1, block, f"0x{block:064x}", T0 + (block - BLOCK0) * 12, 10**8, self.reserves,
            (EModeCategory(1, 9000, 9300, 10100, ZERO, "eth"),), positions, {}, 3,
        )  # fmt: skip


def db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def table_bytes(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
    except sqlite3.OperationalError:  # no dbstat in this SQLite build
        rows = []
    finally:
        conn.close()
    return {str(n): int(s) for n, s in rows}


# --------------------------------------------------------------------------- the old schema


OLD_POSITIONS = (
    "CREATE TABLE positions (market TEXT NOT NULL, account TEXT NOT NULL, block INTEGER NOT NULL,"
    " timestamp INTEGER NOT NULL, health_factor TEXT NOT NULL, health_factor_wad TEXT NOT NULL, hf FLOAT,"
    " collateral_base TEXT NOT NULL, debt_base TEXT NOT NULL, collateral_usd FLOAT NOT NULL, debt_usd FLOAT NOT NULL,"
    " available_borrows_base TEXT NOT NULL, liquidation_threshold INTEGER NOT NULL, ltv INTEGER NOT NULL,"
    " emode_category INTEGER NOT NULL, user_configuration TEXT NOT NULL, legs TEXT NOT NULL,"
    " PRIMARY KEY (market, account, block))"
)
OLD_PRICES = (
    "CREATE TABLE prices (market TEXT NOT NULL, asset TEXT NOT NULL, block INTEGER NOT NULL, symbol TEXT NOT NULL,"
    " price TEXT NOT NULL, price_usd FLOAT NOT NULL, timestamp INTEGER NOT NULL, liquidity_index TEXT,"
    " variable_borrow_index TEXT, PRIMARY KEY (market, asset, block))"
)


def old_schema_bytes_per_block(sim: Simulation, blocks: int, folder: Path) -> tuple[float, int]:
    """Bytes per block of the schema-8 layout (every row every block), measured on ``blocks``."""
    from monitor.models import format_wad

    path = folder / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(OLD_POSITIONS)
    conn.execute("CREATE INDEX idx_positions_account_block ON positions (account COLLATE NOCASE, block)")
    conn.execute("CREATE INDEX idx_positions_market_block ON positions (market, block)")
    conn.execute(OLD_PRICES)
    for _ in range(blocks):
        s = sim.step(len(sim.accounts) // 100)
        ts = s.timestamp
        conn.executemany(
            "INSERT INTO prices VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(MARKET, r.asset, s.block, r.symbol, str(r.price), r.price / 1e8, ts, str(r.liquidity_index),
              str(r.variable_borrow_index)) for r in s.reserves],
        )  # fmt: skip
        rows = []
        for p in s.positions:
            legs = json.dumps([g.as_dict() for g in p.legs if g.collateral or g.debt], separators=(",", ":"))
            no_debt = p.health_factor == MAX_UINT256
            coll = sum(g.collateral for g in p.legs) * 10**8
            rows.append((MARKET, p.account, s.block, ts, format_wad(p.health_factor), str(p.health_factor),
                         None if no_debt else p.health_factor / WAD, str(coll), str(coll // 2), coll / 1e8,
                         coll / 2e8, str(coll // 3), 8000, 7500, 0, str(2**130 + 11), legs))  # fmt: skip
        conn.executemany(f"INSERT INTO positions VALUES ({', '.join('?' * 17)})", rows)
        conn.commit()
    conn.close()
    return db_bytes(path) / blocks, blocks


# --------------------------------------------------------------------------- ticks


Costs = tuple[list[float], list[float], list[float]]  # save ms, price read ms, CPU ms of both


def tick_costs(path: Path, sim: Simulation, ticks: int, touched: int, *, hint: bool = False) -> Costs:
    """(save_snapshot ms, incremental price read ms) of ``ticks`` blocks (``hint``: the touched
    accounts handed to save_snapshot, as a follower knows them)."""
    with Store(path) as store:
        return _ticks(store, sim, ticks, touched, hint)


def _ticks(store: Store, sim: Simulation, ticks: int, touched: int, hint: bool) -> Costs:
    saves, reads, cpu = [], [], []
    last = sim.block
    for _ in range(ticks):
        snap = sim.step(touched)
        c0 = time.process_time()
        t0 = time.perf_counter()
        store.save_snapshot(snap, touched=sim.touched if hint else None)
        t1 = time.perf_counter()
        store.price_history(MARKET, after_block=last)
        t2 = time.perf_counter()
        cpu.append((time.process_time() - c0) * 1000)
        last = snap.block
        saves.append((t1 - t0) * 1000)
        reads.append((t2 - t1) * 1000)
    return saves, reads, cpu


def bulk_older_days(path: Path, sim: Simulation, days: int, first_block: int) -> int:
    """Insert ``days`` quiet days below ``first_block``: hourly heartbeat rows of every position,
    every 10th block's price rows, every block's index rows and scan rows. Returns rows added."""
    conn = sqlite3.connect(path)
    ids = dict(conn.execute("SELECT account, id FROM account_ids").fetchall())
    assets = conn.execute("SELECT id FROM asset_ids ORDER BY id").fetchall()
    template = conn.execute("SELECT * FROM position_rows LIMIT 1").fetchone()
    start = first_block - days * BLOCKS_PER_DAY
    added = 0
    for day in range(days):
        base = start + day * BLOCKS_PER_DAY
        rows = []
        for hour in range(24):
            block = base + hour * 300
            ts = T0 + (block - BLOCK0) * 12
            rows += [(i, block, ts, 16, *template[4:]) for i in ids.values()]
        conn.executemany(f"INSERT INTO position_rows VALUES ({', '.join('?' * len(template))})", rows)
        blocks = range(base, base + BLOCKS_PER_DAY)
        conn.executemany(
            "INSERT INTO price_rows VALUES (?, ?, ?, ?, ?)",
            [(a, b, T0 + (b - BLOCK0) * 12, "100000000", 1.0) for b in blocks if b % 10 == 0 for (a,) in assets],
        )
        conn.executemany(
            "INSERT INTO reserve_indexes VALUES (?, ?, ?, ?)",
            [(a, b, str(RAY + b), str(RAY + 2 * b)) for b in blocks for (a,) in assets],
        )
        conn.executemany(
            "INSERT INTO scans (market, block, block_hash, timestamp, positions, created_at, revision)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(MARKET, b, f"0x{b:064x}", T0 + (b - BLOCK0) * 12, len(ids), 0.0, 3) for b in blocks],
        )
        conn.commit()
        added += len(rows) + BLOCKS_PER_DAY // 10 * len(assets) + BLOCKS_PER_DAY * (len(assets) + 1)
    conn.close()
    return added


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 positions, 720 blocks")
    parser.add_argument("--positions", type=int, default=10_000)
    parser.add_argument("--blocks", type=int, default=BLOCKS_PER_DAY)
    parser.add_argument("--reserves", type=int, default=60)
    parser.add_argument("--old-blocks", type=int, default=10, help="blocks of the old schema measured")
    parser.add_argument("--ticks", type=int, default=40)
    args = parser.parse_args()
    n, blocks = (2_000, 720) if args.quick else (args.positions, args.blocks)
    folder = Path(tempfile.mkdtemp(prefix="bench_history_"))
    try:
        return run(n, blocks, args.reserves, args.old_blocks, args.ticks, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(n: int, blocks: int, reserves: int, old_blocks: int, ticks: int, folder: Path) -> int:
    touched = max(1, n // 100)
    print(f"{n:,} positions, {reserves} reserves, {blocks:,} blocks (12 s), {touched} accounts touched per block,"
          f" prices every 10 blocks; policy {HistoryPolicy()}")  # fmt: skip
    days_below = 29
    sim = Simulation(n, reserves)
    sim.block = BLOCK0 + days_below * BLOCKS_PER_DAY  # room below for the bulk-inserted older days
    old = copy.deepcopy(sim)
    path = folder / "new.db"
    started = time.perf_counter()
    saves: list[float] = []
    cpu: list[float] = []
    with Store(path, retention=RetentionPolicy(full_days=None)) as store:
        store.save_snapshot(sim.snapshot())
        first = db_bytes(path)
        for _ in range(blocks):
            snap = sim.step(touched)
            c0, t0 = time.process_time(), time.perf_counter()
            store.save_snapshot(snap)
            saves.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        counts = {t: store._db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("position_rows", "position_legs", "price_rows", "reserve_indexes", "scans")}  # fmt: skip
    wall = time.perf_counter() - started
    size = db_bytes(path)
    per_table = table_bytes(path)
    per_block_kb = (size - first) / blocks / 1e3
    print(f"\nchange-only history after {blocks:,} blocks: {size / 1e6:,.1f} MB ({per_block_kb:,.1f} KB per block;"
          f" first full snapshot {first / 1e6:,.1f} MB); simulated in {wall:,.0f} s")  # fmt: skip
    print("  rows: " + ", ".join(f"{t} {c:,}" for t, c in counts.items()))
    if per_table:
        print("  bytes: " + ", ".join(f"{t} {b / 1e6:,.1f} MB" for t, b in list(per_table.items())[:8]))
    print(f"  save_snapshot per block: median {statistics.median(saves):.1f} ms, p95"
          f" {sorted(saves)[int(len(saves) * 0.95)]:.1f} ms, CPU median {statistics.median(cpu):.1f} ms"
          f" ({n:,} positions, {touched} touched)")  # fmt: skip
    per_block, measured = old_schema_bytes_per_block(old, old_blocks, folder)
    old_total = per_block * blocks
    print(f"old write-everything schema: {per_block / 1e6:,.2f} MB per block (measured on {measured} blocks,"
          f" extrapolated linearly) -> {old_total / 1e9:,.2f} GB for {blocks:,} blocks;"
          f" change-only is {old_total / size:,.0f}x smaller")  # fmt: skip
    if (n, blocks) == (10_000, BLOCKS_PER_DAY):
        print(f"acceptance (<= 200 MB for 10,000 positions over 7,200 blocks): {'PASS' if size <= 200e6 else 'FAIL'}")

    # tick cost after 1 and after 30 days (the 30-day copy made first: both continue from here)
    path30 = folder / "day30.db"
    for suffix in ("", "-wal", "-shm"):
        if (folder / f"new.db{suffix}").exists():
            shutil.copy(folder / f"new.db{suffix}", folder / f"day30.db{suffix}")
    state = copy.deepcopy(sim)
    day1 = tick_costs(path, sim, ticks, touched)
    day1_hint = tick_costs(path, sim, ticks, touched, hint=True)
    t0 = time.perf_counter()
    added = bulk_older_days(path30, state, days_below, BLOCK0 + days_below * BLOCKS_PER_DAY)
    bulk_s = time.perf_counter() - t0
    print(f"\n30 days stored: {days_below} older quiet days bulk-inserted ({added:,} rows in {bulk_s:,.0f} s):"
          f" {db_bytes(path30) / 1e6:,.0f} MB")  # fmt: skip
    with Store(path30) as store30:
        store30.save_snapshot(state.step(0))  # the open (the last-written state rebuilt) is not a tick
    day30 = tick_costs(path30, state, ticks, touched)
    day30_hint = tick_costs(path30, state, ticks, touched, hint=True)
    for label, one, thirty in (("", day1, day30), (" (touched accounts given)", day1_hint, day30_hint)):
        m1s, m30s = statistics.median(one[0]), statistics.median(thirty[0])
        m1r, m30r = statistics.median(one[1]), statistics.median(thirty[1])
        c1, c30 = statistics.median(one[2]), statistics.median(thirty[2])
        ratio = (m30s + m30r) / (m1s + m1r)
        print(f"tick store cost{label}, median of {ticks} blocks ({n:,} positions, {touched} touched): after 1 day"
              f" save_snapshot {m1s:.1f} ms + incremental price read {m1r:.2f} ms = {m1s + m1r:.1f} ms"
              f" (CPU {c1:.1f} ms); after 30 days {m30s:.1f} + {m30r:.2f} = {m30s + m30r:.1f} ms (CPU {c30:.1f} ms);"
              f" ratio {ratio:.2f} (CPU {c30 / c1:.2f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
