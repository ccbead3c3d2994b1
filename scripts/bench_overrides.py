"""Per-wallet / per-route policy overrides: what they cost, against the naive resolution, in the same run.

For a book of ``--positions`` accounts and N wallet entries (``alerts.accounts.<address>.policy``)
plus 5 route entries and 1 market entry, times

- resolving the knobs of every position: :meth:`PolicyConfig.knobs_for` (entries indexed by
  account) against the naive scan (every entry tried for every position, as first written);
- checking the entries: :meth:`PolicyConfig.validate` (one representative per distinct set of
  wallet knobs) against checking every (market, route, wallet) combination;
- :func:`position_levels` for the whole book with and without the entries (the daemon's recompute).

The two resolutions are checked equal. ::

    .venv/bin/python scripts/bench_overrides.py [--positions 2000] [--wallets 10,100,1000,2000]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.errors import InputError
from monitor.risk.book import Book
from monitor.risk.policy import (
    KNOB_NAMES,
    PolicyConfig,
    PolicyOverride,
    _check_knobs,
    _merge,
    market_state_from_prices,
    position_levels,
)

SYMBOLS = ("SOL", "USDC", "DAI", "WETH", "WBTC")


def naive_knobs(cfg: PolicyConfig, market: str, accounts: list[str]) -> list[np.ndarray]:
    """Every entry tried for every position (the first implementation)."""
    out = [np.broadcast_to(np.asarray(getattr(cfg, k), dtype=np.float64), (len(accounts), 3)).copy()
           for k in KNOB_NAMES]  # fmt: skip
    for i, acc in enumerate(accounts):
        chosen = []
        for kind in ("market", "route", "account"):
            o = next((o for o in cfg.overrides if o.kind == kind and o.selects(market, acc)), None)
            if o is not None:
                chosen.append(o)
        for n, k in enumerate(KNOB_NAMES):
            out[n][i] = _merge(getattr(cfg, k), [getattr(o, k) for o in chosen])
    return out


def naive_validate(cfg: PolicyConfig) -> None:
    """Every (market, route, wallet) combination checked."""
    by_kind: dict[str, list[PolicyOverride | None]] = {k: [None] for k in ("market", "route", "account")}
    for o in cfg.overrides:
        by_kind[o.kind].append(o)
    for m in by_kind["market"]:
        for r in by_kind["route"]:
            for a in by_kind["account"]:
                chosen = [o for o in (m, r, a) if o is not None]
                if chosen and all(x.overlaps(y) for x in chosen for y in chosen if x is not y):
                    _check_knobs(*[_merge(getattr(cfg, k), [getattr(o, k) for o in chosen]) for k in KNOB_NAMES])


def book(n: int) -> Book:
    rng = np.random.default_rng(1)
    coll = np.zeros((n, len(SYMBOLS)))
    debt = np.zeros((n, len(SYMBOLS)))
    coll[np.arange(n), rng.integers(0, len(SYMBOLS), n)] = rng.lognormal(10.5, 1.0, n)
    debt[:, 1] = coll.sum(axis=1) * rng.uniform(0.3, 0.7, n)
    coll[:, 1] = np.where(coll[:, 1] > 0, 0.0, coll[:, 1])  # no USDC/USDC
    coll[coll.sum(axis=1) == 0, 3] = 100_000.0
    lt = np.full((n, len(SYMBOLS)), 0.8)
    accounts = tuple(f"0x{i + 1:040x}" for i in range(n))
    return Book("m", 0, accounts, SYMBOLS, np.ones(len(SYMBOLS)), coll, debt, lt, lt * 0.95, np.full_like(lt, 1.05))


def config(accounts: tuple[str, ...], wallets: int) -> PolicyConfig:
    rng = np.random.default_rng(2)
    entries = [
        PolicyOverride("account", None, (accounts[int(j)],), reaction_hours=(None, float(h), None),
                       source=f"alerts.accounts.{accounts[int(j)]}.policy")
        for j, h in zip(rng.choice(len(accounts), wallets, replace=False), rng.choice([12, 24, 36], wallets),
                        strict=True)
    ]  # fmt: skip
    routes = [PolicyOverride("route", ("m",), None, alarm_cost_usd=(None, 5.0 + r, None), source=f"routes[{r}]")
              for r in range(5)]  # fmt: skip
    market = [PolicyOverride("market", ("m",), None, min_probability=(None, 0.02, None), source="markets.m")]
    return replace(PolicyConfig(paths=1000), overrides=(*market, *routes, *entries))


def timed(fn: object, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--positions", type=int, default=2000)
    parser.add_argument("--wallets", default="10,100,1000,2000")
    args = parser.parse_args()
    b = book(args.positions)
    accounts = list(b.accounts)
    state = market_state_from_prices(SYMBOLS, "2023-06-15")
    plain = PolicyConfig(paths=1000)
    base = timed(lambda: position_levels(b, state, plain), 2)
    print(f"{args.positions} positions; position_levels without entries: {base:.3f} s")
    print(f"{'wallets':>8} | {'knobs naive':>11} | {'knobs':>8} | {'ratio':>6} | {'check naive':>11} | {'check':>8} |"
          f" {'ratio':>6} | {'levels':>7}")  # fmt: skip
    for n in (min(int(x), args.positions) for x in args.wallets.split(",")):
        cfg = config(b.accounts, n)
        fast = cfg.knobs_for("m", accounts)
        slow = naive_knobs(cfg, "m", accounts)
        for k, name in enumerate(KNOB_NAMES):
            if not np.array_equal(getattr(fast, name), slow[k]):
                raise InputError(f"knobs_for differs from the naive resolution in {name}")
        t_naive = timed(lambda cfg=cfg: naive_knobs(cfg, "m", accounts), 1)
        t_fast = timed(lambda cfg=cfg: cfg.knobs_for("m", accounts))
        c_naive = timed(lambda cfg=cfg: naive_validate(cfg), 1)
        c_fast = timed(lambda cfg=cfg: cfg.validate())
        levels = timed(lambda cfg=cfg: position_levels(b, state, cfg), 2)
        print(f"{n:>8} | {t_naive:>9.3f} s | {t_fast * 1e3:>6.1f} ms | {t_naive / t_fast:>5.0f}x | {c_naive:>9.3f} s |"
              f" {c_fast * 1e3:>6.1f} ms | {c_naive / c_fast:>5.0f}x | {levels:>5.3f} s")  # fmt: skip


if __name__ == "__main__":
    main()
