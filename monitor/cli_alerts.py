"""``liqmon run`` (the daemon) and ``liqmon backtest`` (alert rules on real price history)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from monitor.config import load_config
from monitor.errors import InputError
from monitor.render import table, to_json
from monitor.risk.book import Book, book_from_snapshot, synthetic_book
from monitor.store import Store


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.daemon import run_daemon

    config = load_config(args.config)
    return run_daemon(config, max_ticks=args.max_ticks)


def _book(args: argparse.Namespace) -> Book:
    if args.synthetic:
        if args.synthetic < 1:
            raise InputError("--synthetic needs at least 1 position")
        rng = np.random.default_rng(args.seed)
        symbols = ["WETH", "WBTC", "USDC", "DAI", "SOL"]
        return synthetic_book(args.synthetic, symbols, [2000, 30000, 1, 1, 20], [0.83, 0.78, 0.80, 0.77, 0.65], rng,
                              hf_range=(1.05, 2.0))  # fmt: skip
    if args.config is None:
        raise InputError("give --config FILE (stored positions) or --synthetic N (a synthetic book)")
    from monitor.cli_risk import stored_market

    config = load_config(args.config)
    with Store(config.store.path) as store:
        return book_from_snapshot(store.load_snapshot(stored_market(config, store, args.market)))


def cmd_backtest(args: argparse.Namespace) -> int:
    from monitor.risk.backtest import PERIODS, TABLE_HEADERS, backtest

    periods = args.period or ["all"]
    for p in periods:
        if p not in PERIODS:
            raise InputError(f"unknown period {p!r}; known: {', '.join(PERIODS)}")
    book = _book(args)
    results = []
    for p in periods:
        print(f"backtest {p}: {book.size} positions ...", flush=True) if not args.json else None
        results.append(
            backtest(book, p, horizon_hours=args.horizon_hours, miss_cost=args.miss_cost,
                     false_alarm_cost=args.false_alarm_cost, window_days=args.window_days, step_days=args.step_days)
        )  # fmt: skip
    if args.json:
        print(to_json([r.as_dict() for r in results]))
        return 0
    for r in results:
        print(f"\n{r.period}: {r.starts} starts x {r.positions} positions ({r.position_days:,} position-days); "
              f"best tolerance {r.best_tolerance:g} (cost = {args.miss_cost:g} x misses + "
              f"{args.false_alarm_cost:g} x false alarms)")  # fmt: skip
        print(table(r.table_rows(), list(TABLE_HEADERS), "<" + ">" * (len(TABLE_HEADERS) - 1)))
        for note in r.notes:
            print(f"  note: {note}")
        if args.frontier:
            print("  frontier:")
            print(table(r.frontier_rows(), list(TABLE_HEADERS), "<" + ">" * (len(TABLE_HEADERS) - 1)))
    if args.plot:
        _plot_frontier(results, args.plot)
    return 0


def _plot_frontier(results: list[Any], path: Path) -> None:
    from monitor.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in results:
        pts = [(rr.false_alarms, rr.recall) for _, rr in r.frontier]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=f"optimized ({r.period})")
        for rule in r.rules:
            if rule.rule.startswith("fixed"):
                ax.scatter([rule.false_alarms], [rule.recall], marker="x", s=60)
                ax.annotate(f"{rule.rule} ({r.period})", (rule.false_alarms, rule.recall), fontsize=7)
    ax.set_xlabel("false alarms")
    ax.set_ylabel("recall (liquidations warned before)")
    ax.set_title("alert rules on real price history")
    ax.legend(fontsize=7)
    _save(fig, path)
    plt.close(fig)


def add_alert_parsers(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="the monitoring daemon: scan on each new block, alert on thresholds, deliver (Ctrl-C / SIGTERM stops)",
        description="Runs until stopped: polls each chain's head every daemon.interval_s, scans on every new block "
        "(daemon.mode: block) or on every poll (interval), records alerts in the store and delivers them to the "
        "configured channels with retries. Logs go to stderr as JSON lines (daemon.log_format).",
    )
    run.add_argument("--config", required=True, type=Path, help="config file (YAML)")
    run.add_argument("--max-ticks", type=int, help="stop after this many scans (for trials)")
    run.set_defaults(func=cmd_run)

    bt = sub.add_parser(
        "backtest",
        help="replay real price history through positions: warnings before liquidations, misses, false alarms",
        description="Replays the shipped daily prices (five crashes and 2020-2023) through the newest stored scan "
        "(or a synthetic book), compares the optimized volatility-aware threshold with fixed HF 1.1 and 1.2, and "
        "picks the tolerance that minimises miss_cost x misses + false_alarm_cost x false alarms.",
    )
    bt.add_argument("--config", type=Path, help="config file (YAML): backtest the market's stored positions")
    bt.add_argument("--market", help="market name (default: the config's first market)")
    bt.add_argument("--synthetic", type=int, metavar="N", help="use N synthetic positions instead of stored ones")
    bt.add_argument("--seed", type=int, default=7, help="seed of the synthetic book")
    bt.add_argument("--period", action="append", help="all (default), 2020-03-12, 2021-05-19, 2022-05-terra, ...")
    bt.add_argument("--horizon-hours", type=float, default=24.0, help="threshold horizon (daily data: 24)")
    bt.add_argument("--window-days", type=int, default=30, help="days followed after each start")
    bt.add_argument("--step-days", type=int, default=7, help="days between starts")
    bt.add_argument("--miss-cost", type=float, default=50.0, help="cost of a liquidation without warning")
    bt.add_argument("--false-alarm-cost", type=float, default=1.0, help="cost of a warning without liquidation")
    bt.add_argument("--frontier", action="store_true", help="also print every tolerance tried")
    bt.add_argument("--json", action="store_true", help="machine-readable output")
    bt.add_argument("--plot", type=Path, metavar="FILE.png", help="recall vs false alarms")
    bt.set_defaults(func=cmd_backtest)
