"""Desk queries on the change-only history (issue 16 part 7): market-wide reads against the way
they had to be made before (one ``history --account`` per account).

A simulated Aave market of N positions (1-2 collateral legs, one debt leg, 5 reserves) stored
block by block through ``Store.save_snapshot`` (change-only rows: a row on a band crossing, a
5 % HF move or a balance change); every block the prices take a random step (0.1 %, a slight
downward drift) and 1 % of the accounts change a leg; HFs 1.03-2.5 at the start. Then, in the same run:

1. ``positions_below(market, 1.2, B)`` (what ``history --below 1.2 --at B`` runs: one snapshot
   rebuild, exact HF at B) vs the per-account way: ``position_history(account)`` for every
   account, the row in force at B, HF < 1.2 (its last WRITTEN figures: stale between rows).
   positions_below checked equal to the snapshot of B; the per-account differences counted.
2. ``positions_below_between(market, 1.2, B0, B1)`` (``--since B0 --until B1``: the snapshots
   of B0 and B1, the rows of the range, and a rebuild only of the scans where the history
   policy's bound lets an unwritten HF fall under 1.2) vs rebuilding every stored snapshot of
   the range. Results checked equal (accounts and lowest exact HF).

    .venv/bin/python scripts/bench_desk.py            # 10,000 positions, 60 blocks
    .venv/bin/python scripts/bench_desk.py --quick    # 2,000 positions, 40 blocks
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.models import MAX_UINT256, RAY, WAD, AssetLeg, MarketSnapshot, Position, Reserve, format_wad
from monitor.store import Store
from monitor.store.desk import hf_wad

MARKET = "aave-v3-desk-bench"
ZERO = "0x" + "0" * 40
T0 = 1_760_000_000
LIMIT = "1.2"


class Market:
    """Seeded positions and their evolution: random-walk prices, 1 % of accounts acting a block."""

    def __init__(self, n: int, seed: int = 16) -> None:
        self.rng = random.Random(seed)
        self.assets = [f"0x{i + 1:040x}" for i in range(5)]
        self.prices = [2000 * 10**8, 30_000 * 10**8, 10**8, 10**8, 20 * 10**8]
        self.accounts = [f"0x{0xD0000000 + k:040x}" for k in range(n)]
        self.legs: dict[str, dict[int, list[int]]] = {}
        for a in self.accounts:
            coll = self.rng.sample([0, 1, 4], self.rng.choice((1, 2)))
            legs = {c: [self.rng.randint(10**3, 10**6) * 10**8 // self.prices[c] * 10**10, 0] for c in coll}
            value = sum(self._value(c, legs[c][0]) for c in coll)
            debt = self.rng.choice((2, 3))
            legs[debt] = [0, int(value * self.rng.uniform(0.32, 0.78)) * 10**18 // self.prices[debt]]
            self.legs[a] = legs
        self.block = 1_000

    def _value(self, r: int, amount: int) -> int:
        return amount * self.prices[r] // 10**18

    def hf(self, a: str) -> int:
        legs = self.legs[a]
        coll = sum(self._value(r, c) for r, (c, _) in legs.items())
        debt = sum(self._value(r, d) for r, (_, d) in legs.items())
        return MAX_UINT256 if debt == 0 else coll * 8000 * WAD // (10_000 * debt)

    def step(self) -> MarketSnapshot:
        self.block += 1
        for i in (0, 1, 4):
            self.prices[i] = max(1, int(self.prices[i] * (1 + self.rng.gauss(-0.0005, 0.001))))
        for a in self.rng.sample(self.accounts, max(1, len(self.accounts) // 100)):
            r = self.rng.choice(list(self.legs[a]))
            side = 0 if self.legs[a][r][0] else 1
            self.legs[a][r][side] = max(1, int(self.legs[a][r][side] * self.rng.uniform(0.9, 1.1)))
        return self.snapshot()

    def snapshot(self) -> MarketSnapshot:
        reserves = tuple(
            Reserve(asset, f"T{i}", 18, i, 7500, 8000, 10500, 0, True, False, True, ZERO, ZERO, ZERO, RAY, RAY,
                    self.prices[i])
            for i, asset in enumerate(self.assets)
        )  # fmt: skip
        positions = []
        for a in self.accounts:
            legs = tuple(
                AssetLeg(self.assets[r], f"T{r}", c, c, d, d, 0, c > 0) for r, (c, d) in sorted(self.legs[a].items())
            )
            coll = sum(self._value(r, c) for r, (c, _) in self.legs[a].items())
            debt = sum(self._value(r, d) for r, (_, d) in self.legs[a].items())
            config = sum((1 << (2 * r + 1) if c else 0) | (1 << (2 * r) if d else 0)
                         for r, (c, d) in self.legs[a].items())  # fmt: skip
            positions.append(Position(MARKET, a, self.block, self.hf(a), coll, debt, 0, 8000, 7500, 0, config, legs))
        return MarketSnapshot(MARKET, "aave_v3", 1, self.block, f"0x{self.block:064x}", T0 + self.block * 12, 10**8,
                              reserves, (), tuple(positions), {}, 1)  # fmt: skip


def timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def per_account_below(store: Store, accounts: list[str], block: int) -> list[tuple[str, str]]:
    """The way before: every account's history, the row in force at ``block``."""
    limit = int(float(LIMIT) * 10**6) * 10**12
    out = []
    for a in accounts:
        rows = [r for r in store.position_history(a, market=MARKET) if r["block"] <= block]
        if rows and rows[-1]["health_factor_wad"] != str(MAX_UINT256) and int(rows[-1]["health_factor_wad"]) < limit:
            out.append((rows[-1]["account"], rows[-1]["health_factor"]))
    return sorted(out, key=lambda x: (x[1], x[0]))


def every_snapshot_between(store: Store, blocks: list[int], hf: str) -> dict[str, int]:
    limit = hf_wad(hf)
    low: dict[str, int] = {}
    for b in blocks:
        for p in store.load_snapshot(MARKET, b).positions:
            if p.health_factor != MAX_UINT256 and p.health_factor < limit:
                low[p.account] = min(low.get(p.account, p.health_factor), p.health_factor)
    return low


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, blocks = (2_000, 40) if args.quick else (10_000, 60)
    with tempfile.TemporaryDirectory(prefix="bench-desk-") as tmp:
        market = Market(n)
        t = time.perf_counter()
        with Store(Path(tmp) / "desk.db") as store:
            for _ in range(blocks):
                store.save_snapshot(market.step())
        print(f"stored {blocks} blocks of {n:,} positions in {time.perf_counter() - t:.1f} s")
        with Store(Path(tmp) / "desk.db") as store:
            scanned = [s["block"] for s in store.scans(MARKET)]
            at = scanned[len(scanned) // 2]
            t_desk, desk = timed(lambda: store.positions_below(MARKET, LIMIT, at))
            t_old, old = timed(lambda: per_account_below(store, market.accounts, at), repeat=1)
            got = [(r["account"], r["health_factor"]) for r in desk]
            exact = sorted(((p.account, format_wad(p.health_factor)) for p in store.load_snapshot(MARKET, at).positions
                            if p.health_factor != MAX_UINT256 and p.health_factor < hf_wad(LIMIT)),
                           key=lambda x: (x[1], x[0]))  # fmt: skip
            if got != exact:
                print("MISMATCH: positions_below differs from the snapshot of the block", file=sys.stderr)
                return 1
            stale = len(set(got) ^ set(old))
            print(f"1. below {LIMIT} at block {at} ({len(desk):,} positions): positions_below {t_desk * 1e3:,.0f} ms"
                  f" vs one position_history per account {t_old:,.2f} s: {t_old / t_desk:,.0f}x faster, and the"
                  f" per-account rows are the last WRITTEN figures: {stale:,} (account, HF) pairs differ from the"
                  f" block's exact HF")  # fmt: skip
            first, last = scanned[len(scanned) // 4], scanned[-1]
            span = [b for b in scanned if first <= b <= last]
            for limit in (LIMIT, "1.0"):
                t_rng, rng_rows = timed(lambda h=limit: store.positions_below_between(MARKET, h, first, last), repeat=1)
                t_all, union = timed(lambda h=limit: every_snapshot_between(store, span, h), repeat=1)
                want = {a: format_wad(h) for a, h in union.items()}
                if {r["account"]: r["lowest_health_factor"] for r in rng_rows} != want:
                    print("MISMATCH: positions_below_between differs from the union of the snapshots", file=sys.stderr)
                    return 1
                print(f"2. below {limit} within blocks {first}..{last} ({len(span)} scans, {len(rng_rows):,} accounts):"
                      f" positions_below_between {t_rng:,.2f} s vs every snapshot of the range {t_all:,.2f} s:"
                      f" {t_all / t_rng:,.1f}x (equal)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
