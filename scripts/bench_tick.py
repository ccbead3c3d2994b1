"""CPU of the daemon tick's local parts, against what they replaced, in the same run.

1. Alert evaluation of one block at N positions (``evaluate_snapshot`` with the LevelCache
   warm): the current code against the previous per-row ``add_collateral_to_target`` (which
   recomputed the whole book for every row: O(N^2)), timed on the same book.
2. The volatility market state of one tick after D simulated days of stored prices (a price
   row per asset every ``--price-every`` seconds): the in-memory ``PriceWindow`` against the
   previous re-read of every stored price of the last 400 days at every tick.

    .venv/bin/python scripts/bench_tick.py [--positions 10000] [--days 1 30]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from monitor.alerts.pipeline import evaluate_snapshot
from monitor.config.alerts import AlertsConfig
from monitor.models import WAD, AssetLeg, EModeCategory, MarketSnapshot, Position, Reserve
from monitor.positions.state import FollowedMarket
from monitor.risk.book import book_from_snapshot
from monitor.risk.liquidation import add_collateral_to_target
from monitor.risk.policy import LevelCache, market_state_for
from monitor.risk.price_window import PriceWindow
from monitor.service import HISTORY_DAYS, stored_history
from monitor.store import Store

RAY = 10**27
BASE = 10**8
SYMBOLS = (("WETH", 18, 2300), ("WBTC", 8, 60000), ("USDC", 6, 1), ("DAI", 18, 1), ("LINK", 18, 15))


def _reserves(count: int) -> tuple[Reserve, ...]:
    out = []
    extra = [(f"TKN{i}", 18, 10) for i in range(max(0, count - len(SYMBOLS)))]
    for i, (symbol, decimals, usd) in enumerate([*SYMBOLS, *extra][:count]):
        out.append(Reserve(
            asset=f"0x{i + 1:040x}", symbol=symbol, decimals=decimals, reserve_id=i, ltv=7500,
            liquidation_threshold=8000, liquidation_bonus=10500, emode_category=0, active=True, frozen=False,
            borrowing_enabled=True, a_token=f"0x{i + 101:040x}", stable_debt_token=f"0x{i + 201:040x}",
            variable_debt_token=f"0x{i + 301:040x}", liquidity_index=RAY, variable_borrow_index=RAY,
            price=usd * BASE,
        ))  # fmt: skip
    return tuple(out)


def snapshot_of(n: int, seed: int = 1, reserve_count: int = 5) -> MarketSnapshot:
    """``n`` positions: one or two volatile collaterals, a stablecoin or WETH debt, HF 1.02-3;
    ``reserve_count`` reserves (one leg each in every position, as the readers give)."""
    rng = random.Random(seed)
    reserves = _reserves(reserve_count)
    positions = []
    for i in range(n):
        legs = {r.asset: AssetLeg(r.asset, r.symbol, 0, 0, 0, 0, 0, False) for r in reserves}
        value = 0
        config = 0
        for r in rng.sample(reserves[:2] + reserves[4:], rng.choice((1, 2, 3))):
            config |= 1 << (2 * r.reserve_id + 1)
            usd = rng.uniform(1e3, 1e6)
            amount = int(usd / (r.price / BASE) * 10**r.decimals)
            legs[r.asset] = AssetLeg(r.asset, r.symbol, amount, amount, 0, 0, 0, True)
            value += amount * r.price // 10**r.decimals
        debt_r = rng.choice(reserves[:1] + reserves[2:4])
        debt_value = int(value * 0.8 / rng.uniform(1.02, 3.0))
        debt = debt_value * 10**debt_r.decimals // debt_r.price
        legs[debt_r.asset] = AssetLeg(debt_r.asset, debt_r.symbol, 0, 0, debt, debt, 0, False)
        config |= 1 << (2 * debt_r.reserve_id)
        positions.append(Position(
            market="bench", account=f"0x{i + 1:040x}", block=1, health_factor=value * 8000 // 10000 * WAD // debt_value,
            total_collateral_base=value, total_debt_base=debt_value, available_borrows_base=0,
            current_liquidation_threshold=8000, ltv=7500, emode_category=0, user_configuration=config,
            legs=tuple(legs[r.asset] for r in reserves),
        ))  # fmt: skip
    emode = EModeCategory(1, 9300, 9500, 10100, "0x" + "00" * 20, "ETH")
    return MarketSnapshot("bench", "aave_v3", 1, 1, "0x" + "11" * 32, 1_750_000_000, BASE, reserves, (emode,),
                          tuple(positions), {"pool": "0x" + "77" * 20}, revision=10)  # fmt: skip


def bench_evaluation(n: int, reserve_count: int) -> None:
    snapshot = snapshot_of(n, reserve_count=reserve_count)
    cfg = AlertsConfig()
    cache = LevelCache()
    symbols = [r.symbol for r in snapshot.reserves]
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "b.db") as store:
        times = []
        for k in range(4):
            s = replace(snapshot, block=1 + k, timestamp=snapshot.timestamp + 12 * k)
            market = market_state_for(symbols, {}, float(s.timestamp))
            started = time.process_time()
            evaluate_snapshot(s, store, cfg, market, now=float(s.timestamp), cache=cache, observe_hours=12 / 3600)
            times.append(time.process_time() - started)
    book = book_from_snapshot(snapshot)
    main = np.argmax(book.collateral, axis=1)
    started = time.process_time()
    for i in range(min(n, 1000)):  # the previous code: the whole book for every row (timed on 1,000 rows)
        add_collateral_to_target(book, cfg.target_hf, book.symbols[main[i]])[i]
    naive = (time.process_time() - started) * n / min(n, 1000)
    print(f"evaluation of one block, {n} positions on {reserve_count} reserves: first block (levels computed)"
          f" {times[0]:.3f} s CPU, next blocks (levels cached) {np.median(times[1:]):.3f} s CPU")  # fmt: skip
    print(f"  previous per-row add-collateral alone: {naive:.2f} s CPU a block"
          f" -> {naive / np.median(times[1:]):.0f}x the whole evaluation now")  # fmt: skip


def bench_block(n: int, reserve_count: int) -> None:
    """The local CPU of one followed block in the daemon's tick: the followed state as a snapshot
    (every HF computed once, exactly) + its alert evaluation, then the store write."""
    first = snapshot_of(n, reserve_count=reserve_count)
    followed = FollowedMarket(first)
    cfg = AlertsConfig()
    cache = LevelCache()
    symbols = [r.symbol for r in first.reserves]
    local, writes = [], []
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "t.db") as store:
        for k in range(5):
            block, now = 2 + k, first.timestamp + 12 * (k + 1)
            prices = {a: r.price * (1000 - k) // 1000 for a, r in followed.reserves.items()}
            indexes = {a: r.liquidity_index + k * 10**18 for a, r in followed.reserves.items()}
            debts = {a: r.variable_borrow_index + k * 10**18 for a, r in followed.reserves.items()}
            started = time.process_time()
            followed.update_reserves(block, indexes, debts, prices)
            snapshot = followed.snapshot("0x" + f"{block:064x}", now)
            market = market_state_for(symbols, {}, float(now))
            evaluate_snapshot(snapshot, store, cfg, market, now=float(now), cache=cache, observe_hours=12 / 3600)
            local.append(time.process_time() - started)
            touched = None if k == 0 else frozenset(p.account for p in snapshot.positions[k::100])  # 1 %
            started = time.perf_counter()
            store.save_snapshot(snapshot, touched=touched)  # the daemon passes the step's touched accounts
            writes.append(time.perf_counter() - started)
    print(f"one followed block, {n} positions on {reserve_count} reserves: followed snapshot + evaluation"
          f" {np.median(local[1:]):.3f} s CPU (first block, levels computed: {local[0]:.2f} s);"
          f" store write (1 % touched) {np.median(writes[1:]):.3f} s")  # fmt: skip


def bench_window(days: list[float], price_every: float) -> None:
    base = snapshot_of(1)
    symbols = [r.symbol for r in base.reserves]
    rng = np.random.default_rng(3)
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "w.db") as store:
        t0 = base.timestamp
        block = 1
        window: PriceWindow | None = None
        stored_until = 0.0
        for d in sorted(days):
            steps = int((d * 86_400 - stored_until) / price_every)
            prices = np.array([r.price for r in base.reserves], dtype=float)
            with store.transaction():
                for _ in range(steps):
                    prices *= np.exp(rng.normal(0, 0.002, len(prices)))
                    reserves = tuple(
                        replace(r, price=max(1, int(p))) for r, p in zip(base.reserves, prices, strict=True)
                    )
                    s = replace(base, block=block, timestamp=int(t0 + stored_until), reserves=reserves,
                                positions=tuple(replace(p, block=block) for p in base.positions))  # fmt: skip
                    store.save_snapshot(s)
                    if window is not None:
                        window.append(s)
                    block += 1
                    stored_until += price_every
            now = float(t0 + stored_until - price_every)
            started = time.process_time()
            if window is None:
                window = PriceWindow.of_rows(HISTORY_DAYS, store.price_history("bench", since_time=now - 400 * 86_400))
            load = time.process_time() - started
            last = replace(base, block=block - 1, timestamp=int(now))
            started = time.process_time()
            for _ in range(5):
                old = market_state_for(symbols, stored_history(store, last), now)
            reread = (time.process_time() - started) / 5
            started = time.process_time()
            for _ in range(5):
                new = market_state_for(symbols, window.history(now), now)
            kept = (time.process_time() - started) / 5
            same = np.array_equal(old.log_returns, new.log_returns, equal_nan=True)
            print(f"volatility state after {d:g} days ({block - 1} price blocks x {len(symbols)} assets):"
                  f" re-read {reread * 1000:.1f} ms CPU a tick, window {kept * 1000:.1f} ms"
                  f" ({reread / kept:.0f}x; loaded once in {load * 1000:.0f} ms); same state: {same}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=10_000)
    parser.add_argument("--reserves", type=int, nargs="+", default=[5, 60])
    parser.add_argument("--days", type=float, nargs="+", default=[1.0, 30.0])
    parser.add_argument("--price-every", type=float, default=600.0, help="seconds between stored price rows")
    args = parser.parse_args()
    for count in args.reserves:
        bench_evaluation(args.positions, count)
    for count in args.reserves:
        bench_block(args.positions, count)
    bench_window(args.days, args.price_every)


if __name__ == "__main__":
    main()
