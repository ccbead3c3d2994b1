"""LT calibration for WETH and WBTC on the shipped price history: the curves LT -> bad debt per
named crash and for Monte Carlo, the recommendation and what binds, the RiskDAO reference.

    .venv/bin/python scripts/bench_calibrate.py [--positions N] [--paths N] [--json]

The book (stated, reproducible with --seed): N positions per asset holding the asset as their only
collateral (lognormal sizes, median 50,000 USD), borrowing USDC / USDT / DAI (70 / 15 / 15 %) at a
borrow usage u ~ Beta(5, 2) of their LTV (mean 0.71); Aave V3 Ethereum parameters: WETH LT 83 % /
LTV 80 % / bonus 5 %, WBTC LT 78 % / LTV 73 % / bonus 5 %. Market depth (a constant-product pool):
deep (1e15, no cascade), 19 x the book's collateral of the asset (all of it sellable within the 5 % bonus slippage:
19 x 0.05 / 0.95 = 1) and 3 x (a thin market: 16 % of it sellable within the bonus).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from monitor.risk.book import Book
from monitor.risk.calibrate import calibrate

PARAMS = {"WETH": (0.83, 0.80, 1.05, 3000.0), "WBTC": (0.78, 0.73, 1.05, 60000.0)}
DEBT = (("USDC", 0.70), ("USDT", 0.15), ("DAI", 0.15))
SHOW = tuple(round(0.70 + 0.01 * i, 2) for i in range(21))  # 0.70 .. 0.90


def book_for(asset: str, n: int, seed: int) -> Book:
    lt, ltv, bonus, price = PARAMS[asset]
    rng = np.random.default_rng(seed)
    symbols = (asset, *(d for d, _ in DEBT))
    a = len(symbols)
    collateral = np.zeros((n, a))
    collateral[:, 0] = rng.lognormal(np.log(50_000.0), 1.0, n)
    usage = rng.beta(5.0, 2.0, n)
    debt = np.zeros((n, a))
    which = rng.choice(len(DEBT), size=n, p=[p for _, p in DEBT])
    debt[np.arange(n), 1 + which] = usage * collateral[:, 0] * ltv
    lts = np.array([lt, 0.78, 0.78, 0.77])
    ltvs = np.array([ltv, 0.75, 0.0, 0.75])
    return Book(
        "bench", 0, tuple(f"0x{i:040x}" for i in range(n)), symbols, np.array([price, 1.0, 1.0, 1.0]),
        collateral, debt, np.broadcast_to(lts, (n, a)).copy(), np.broadcast_to(ltvs, (n, a)).copy(),
        np.full((n, a), bonus), lt_rounding="exact", close_factor="v33",
    )  # fmt: skip


def run(asset: str, n: int, paths: int, seed: int, delay: float, depth: float | None) -> dict[str, Any]:
    book = book_for(asset, n, seed)
    liquidity = 0.6 * float(book.collateral[:, 0].sum()) if depth is None else depth
    t0 = time.perf_counter()
    result = calibrate(
        book, asset, delay_hours=delay, liquidity_usd=liquidity, n_paths=paths, rng=np.random.default_rng(seed)
    )
    out = result.as_dict()
    out["seconds"] = round(time.perf_counter() - t0, 2)
    out["book_debt_usd"] = float(book.debt.sum())
    return out


def _row(report: dict[str, Any]) -> str:
    lts = report["lts"]
    idx = [lts.index(x) for x in SHOW if x in lts]
    lines = [f"    {'LT':<10} " + " ".join(f"{lts[i]:>6.0%}" for i in idx)]
    for c in report["crashes"]:
        lines.append(f"    {c['name'][:18]:<18}"[:11] + " ".join(f"{c['fraction'][i]:>6.1%}" for i in idx))
    pts = report["points"]
    lines.append("    MC VaR99 "[:11] + " ".join(f"{pts[i]['var99_fraction']:>6.2%}" for i in idx))
    return "\n".join(lines)


DEPTHS = (("deep", None), ("19x", 19.0), ("3x", 3.0))  # x the book's collateral of the asset; None: 1e15


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--positions", type=int, default=1000)
    parser.add_argument("--paths", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    reports = []
    for asset in ("WETH", "WBTC"):
        collateral = float(book_for(asset, args.positions, args.seed).collateral[:, 0].sum())
        for delay in (1.0, 6.0, 24.0):
            for label, mult in DEPTHS:
                depth = 1e15 if mult is None else mult * collateral
                report = run(asset, args.positions, args.paths, args.seed, delay, depth)
                report["depth_label"] = label
                reports.append(report)
    if args.json:
        print(json.dumps(reports, indent=2))
        return
    print("recommended LT (binding constraint) by delay and depth (deep = no cascade; 19x = the book's")
    print("collateral x 19, in which all of it is sellable within the 5 % bonus slippage; 3x = a thin market):")
    for asset in ("WETH", "WBTC"):
        for delay in (1.0, 6.0, 24.0):
            cells = []
            for label, _ in DEPTHS:
                r = next(x for x in reports if x["asset"] == asset and x["delay_hours"] == delay
                         and x["depth_label"] == label)  # fmt: skip
                rec = "none" if r["recommended_lt"] is None else f"{r['recommended_lt']:.0%}"
                cells.append(f"{label}: {rec} ({r['binding'].removeprefix('crash:') or '-'}, {r['seconds']} s)")
            print(f"  {asset} {delay:>4g} h  " + "; ".join(cells))
    print()
    for r in reports:
        if r["delay_hours"] not in (1.0, 24.0) or r["depth_label"] != "19x":
            continue
        print(
            f"{r['asset']}  delay {r['delay_hours']:g} h  depth {r['liquidity_usd']:,.0f} USD  debt"
            f" {r['book_debt_usd']:,.0f} USD  ({r['scenarios']} MC paths + {len(r['crashes'])} crashes)"
        )
        rec = "none" if r["recommended_lt"] is None else f"{r['recommended_lt']:.0%}"
        print(f"  recommended LT {rec} (current {r['current_lt']:.0%}); RiskDAO smart LTV {r['smart_ltv']:.1%}"
              f" (l = {r['smart_ltv_sellable_usd']:,.0f} USD sellable within the {r['bonus']:.0%} bonus)")  # fmt: skip
        print(f"  {r['explanation']}")
        print("  bad debt as a fraction of debt (crashes, then Monte Carlo VaR99):")
        print(_row(r))
        print()


if __name__ == "__main__":
    main()
