"""``liqmon run`` (the daemon); ``liqmon backtest`` lives in :mod:`monitor.cli_risk`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from monitor.cli_args import count
from monitor.config import load_config


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.daemon import run_daemon

    config = load_config(args.config)
    return run_daemon(config, max_ticks=args.max_ticks)


def add_alert_parsers(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="the monitoring daemon: scan on each new block, alert on thresholds, deliver (Ctrl-C / SIGTERM stops)",
        description="Runs until stopped: polls each chain's head every daemon.interval_s, scans on every new block "
        "(daemon.mode: block) or on every poll (interval), records alerts in the store and delivers them to the "
        "configured channels with retries. Logs go to stderr as JSON lines (daemon.log_format).",
    )
    run.add_argument("--config", required=True, type=Path, help="config file (YAML)")
    run.add_argument("--max-ticks", type=count(1, 10**9), help="stop after this many scans (for trials)")
    run.set_defaults(func=cmd_run)

    from monitor.cli_risk import add_backtest_parser  # the backtest command lives with stress / calibrate

    add_backtest_parser(sub)
