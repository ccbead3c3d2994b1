#!/usr/bin/env python3
"""Write a seeded synthetic OHLC prices file for ``liqmon backtest --prices`` (real hourly data
cannot be shipped): BTC, ETH, SOL (fat-tailed, correlated, with crash days) and USDC, USDT,
DAI (tight pegs with rare depegs); see :mod:`monitor.risk.synthetic_prices`.

Usage::

    .venv/bin/python scripts/make_hourly_prices.py --out hourly.csv [--days 120] [--step-hours 1]
        [--start 2024-01-01] [--seed 3]
    .venv/bin/liqmon backtest --prices hourly.csv --window-days 10 --test-start 2024-02-15
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from monitor.errors import InputError
from monitor.risk.synthetic_prices import SyntheticSpec, generate, write_csv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    parser.add_argument("--days", type=int, default=120, help="days of bars (default 120)")
    parser.add_argument("--step-hours", type=float, default=1.0, help="bar length in hours (default 1)")
    parser.add_argument("--start", default="2024-01-01", help="first day (default 2024-01-01)")
    parser.add_argument("--crashes-per-year", type=float, default=6.0, help="crash-day rate (default 6)")
    parser.add_argument("--seed", type=int, default=3, help="random seed (default 3)")
    args = parser.parse_args(argv)
    try:
        spec = SyntheticSpec(days=args.days, step_hours=args.step_hours, start=args.start,
                             crash_rate_per_year=args.crashes_per_year, seed=args.seed)  # fmt: skip
        prices = generate(spec)
        write_csv(prices, args.out)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {prices.size} bars x {len(prices.symbols)} assets ({', '.join(prices.symbols)}), "
          f"{prices.step_hours:g} h, seed {args.seed}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
