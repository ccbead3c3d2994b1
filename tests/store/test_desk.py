"""monitor.store.desk on a simulated change-only Aave history: between written rows the snapshot
recomputes the HF (prices move), and the desk's range query must still equal the union of every
stored snapshot of the range, while rebuilding only the scans the history policy cannot rule out."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from monitor.models import MAX_UINT256, RAY, WAD, AssetLeg, MarketSnapshot, Position, Reserve, format_wad
from monitor.store import Store
from monitor.store.desk import hf_wad

MARKET = "aave-v3-desk-test"
ZERO = "0x" + "0" * 40


class Market:
    """Seeded Aave positions (collateral WETH-like / WBTC-like, stable debt), random-walk prices."""

    def __init__(self, n: int, *, sigma: float, seed: int, lt_from: int | None = None) -> None:
        self.lt_from = lt_from  # from this block on WETH's LT is 78 % (new market parameters)
        self.rng = random.Random(seed)
        self.sigma = sigma
        self.assets = [f"0x{i + 1:040x}" for i in range(3)]
        self.prices = [2000 * 10**8, 30_000 * 10**8, 10**8]
        self.accounts = [f"0x{0xE0000000 + k:040x}" for k in range(n)]
        self.legs: dict[str, dict[int, list[int]]] = {}
        for a in self.accounts:
            c = self.rng.choice((0, 1))
            amount = self.rng.randint(10**3, 10**6) * 10**26 // self.prices[c]
            value = amount * self.prices[c] // 10**18
            debt = int(value * self.rng.uniform(0.35, 0.76)) * 10**18 // self.prices[2]
            self.legs[a] = {c: [amount, 0], 2: [0, debt]}
        self.block = 100

    def _value(self, r: int, amount: int) -> int:
        return amount * self.prices[r] // 10**18

    def _lt(self, r: int) -> int:
        return 7800 if r == 0 and self.lt_from is not None and self.block >= self.lt_from else 8000

    def step(self) -> MarketSnapshot:
        self.block += 1
        for i in (0, 1):
            self.prices[i] = max(1, int(self.prices[i] * (1 + self.rng.gauss(-0.002, self.sigma))))
        reserves = tuple(
            Reserve(asset, f"T{i}", 18, i, 7500, self._lt(i), 10500, 0, True, False, True, ZERO, ZERO, ZERO, RAY, RAY,
                    self.prices[i])
            for i, asset in enumerate(self.assets)
        )  # fmt: skip
        positions = []
        for a in self.accounts:
            held = sorted(self.legs[a].items())
            legs = tuple(AssetLeg(self.assets[r], f"T{r}", c, c, d, d, 0, c > 0) for r, (c, d) in held)
            coll = sum(self._value(r, c) for r, (c, _) in self.legs[a].items())
            debt = sum(self._value(r, d) for r, (_, d) in self.legs[a].items())
            config = sum((1 << (2 * r + 1) if c else 0) | (1 << (2 * r) if d else 0) for r, (c, d) in held)
            weighted = sum(self._value(r, c) * self._lt(r) for r, (c, _) in held)
            hf = weighted * WAD // (10_000 * debt)
            positions.append(Position(MARKET, a, self.block, hf, coll, debt, 0, 8000, 7500, 0, config, legs))
        return MarketSnapshot(MARKET, "aave_v3", 1, self.block, f"0x{self.block:064x}", 1_760_000_000 + self.block * 12,
                              10**8, reserves, (), tuple(positions), {}, 1)  # fmt: skip


def stored(
    tmp_path: Path, *, sigma: float, blocks: int = 24, n: int = 150, lt_from: int | None = None
) -> tuple[Path, list[int]]:
    market = Market(n, sigma=sigma, seed=16, lt_from=lt_from)
    db = tmp_path / "desk.db"
    with Store(db) as store:
        for _ in range(blocks):
            store.save_snapshot(market.step())
        return db, [s["block"] for s in store.scans(MARKET)]


def union_below(store: Store, blocks: list[int], hf: str) -> dict[str, tuple[str, int]]:
    """account -> (lowest exact HF, its first block) over the snapshots of ``blocks``."""
    low: dict[str, tuple[str, int]] = {}
    limit = hf_wad(hf)
    for b in blocks:
        for p in store.load_snapshot(MARKET, b).positions:
            below = p.health_factor != MAX_UINT256 and p.health_factor < limit
            if below and (p.account not in low or p.health_factor < int(low[p.account][0].replace(".", ""))):
                low[p.account] = (format_wad(p.health_factor), b)
    return low


@pytest.mark.parametrize(("hf", "lt_from"), [("1.2", None), ("1.1", None), ("1.0", None), ("1.2", 112)])
def test_range_equals_every_snapshot_of_it(tmp_path: Path, hf: str, lt_from: int | None) -> None:
    """lt_from: WETH's LT changes inside the range (new parameters: whole snapshots there)."""
    db, scans = stored(tmp_path, sigma=0.01, lt_from=lt_from)
    first, last = scans[3], scans[-2]
    span = [b for b in scans if first <= b <= last]
    with Store(db) as store:
        rows = store.positions_below_between(MARKET, hf, first, last)
        want = union_below(store, span, hf)
        written = store._rows("SELECT count(*) AS n FROM position_rows WHERE block > ? AND block < ?", [first, last])
    assert {r["account"]: r["lowest_health_factor"] for r in rows} == {a: v[0] for a, v in want.items()}
    assert {r["account"]: r["lowest_block"] for r in rows} == {a: v[1] for a, v in want.items()}
    assert rows and written[0]["n"] < 150 * (len(span) - 2)  # change-only: not every position every block


def test_below_at_a_block_is_the_recomputed_snapshot(tmp_path: Path) -> None:
    db, scans = stored(tmp_path, sigma=0.01)
    with Store(db) as store:
        for b in scans[::5]:
            got = [(r["account"], r["health_factor"]) for r in store.positions_below(MARKET, "1.2", b)]
            snap = store.load_snapshot(MARKET, b)
            want = sorted(((p.account, p.health_factor) for p in snap.positions
                           if p.health_factor != MAX_UINT256 and p.health_factor < hf_wad("1.2")),
                          key=lambda x: (x[1], x[0]))  # fmt: skip
            assert got == [(a, format_wad(h)) for a, h in want]


def test_a_range_recomputes_only_the_accounts_it_cannot_rule_out(tmp_path: Path, monkeypatch: Any) -> None:
    db, scans = stored(tmp_path, sigma=0.0005)
    with Store(db) as store:
        rebuilt: list[int] = []
        recomputed: list[tuple[int, int]] = []
        real_snapshot, real_recomputed = store._snapshot, store._recomputed_at

        def snapshot(market: str, block: int) -> MarketSnapshot:
            rebuilt.append(block)
            return real_snapshot(market, block)

        def recompute(market: str, start: MarketSnapshot, block: int, accounts: set[str]) -> Any:
            recomputed.append((block, len(accounts)))
            return real_recomputed(market, start, block, accounts)

        monkeypatch.setattr(store, "_snapshot", snapshot)
        monkeypatch.setattr(store, "_recomputed_at", recompute)
        assert store.positions_below_between(MARKET, "0.5", scans[0], scans[-1]) == []
        assert rebuilt == [scans[0], scans[-1]] and recomputed == []  # no HF can reach 0.5 between rows
        rebuilt.clear()
        rows = store.positions_below_between(MARKET, "1.3", scans[0], scans[-1])
        assert rows and rebuilt == [scans[0], scans[-1]]  # the ends only: inner scans per account
        assert recomputed and all(0 < n < 150 for _, n in recomputed)
        want = union_below(store, scans, "1.3")
        assert {r["account"]: r["lowest_health_factor"] for r in rows} == {a: v[0] for a, v in want.items()}
