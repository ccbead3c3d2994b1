#!/usr/bin/env python3
"""Benchmark and acceptance figures of issue 10: the walk-forward, per-episode backtest of the
threshold policy against the fixed HF family, OUT OF SAMPLE on the shipped daily data 2020-2023
with the realistic book (or any --prices file).

It runs exactly what ``liqmon backtest`` runs (same Settings, the policy as ``liqmon run`` builds
it: the defaults, or ``--config FILE``) and prints:

- the walk-forward fixed level (its level per fold, recall, false-alarm episodes, median lead);
- the policy at each alarm-cost multiple against the fixed family at the same recall;
- the acceptance line: at the fixed level's recall, the policy's false-alarm episodes (its
  frontier, interpolated) and their ratio, with the bootstrap CI, and the median leads;
- recall by count and by liquidation penalty (USD), the stated cost of each rule, per class;
- the wall time (budget: < 3 min on 2 cores).

Usage::

    .venv/bin/python scripts/bench_backtest.py [--positions 1000] [--seed 7] [--jobs 2]
        [--config FILE] [--prices FILE --window-days D --test-start DAY] [--size-sigma 1.6]
        [--react-share 0] [--count notifications|episodes] [--fixed-critical-step 0.5] [--json]

Exit code 0 whatever the verdict (the figures are reported, not enforced); 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from monitor.config import load_config
from monitor.config.alerts import policy_config
from monitor.errors import MonitorError
from monitor.risk import backtest as bt
from monitor.risk import backtest_data as bd
from monitor.risk.backtest_book import realistic_book
from monitor.risk.policy import PolicyConfig


def _pct(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.1%}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--positions", type=int, default=1000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--config", type=Path)
    p.add_argument("--prices", type=Path)
    p.add_argument("--window-days", type=float, default=30.0)
    p.add_argument("--lead-hours", type=float, default=72.0)
    p.add_argument("--test-start", default="2020-01-01")
    p.add_argument("--size-sigma", type=float, default=1.6, help="lognormal sigma of position sizes (0: all equal)")
    p.add_argument("--react-share", type=float, default=0.0)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--test-end", default=None, help="last test day (e.g. 2019-12-31 for the fit period 2017-2019)")
    p.add_argument("--count", choices=("notifications", "episodes"), default="notifications",
                   help="score every notification the daemon sends (default) or only episode starts")
    p.add_argument("--fixed-critical-step", type=float, default=0.5,
                   help="a fixed rule L re-arms (critical) at 1 + step (L - 1); 1 = a single level")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        alerts = load_config(args.config).alerts if args.config else None
        cfg = policy_config(alerts) if alerts is not None else PolicyConfig()
        # what the daemon sends: the config's routes (the shipped config.yaml sends warning and above)
        severity = alerts.lowest_sent_severity() if alerts is not None else "warning"
        prices = bd.load_prices_csv(args.prices) if args.prices else bd.shipped_daily()
        cbook = realistic_book(args.positions, args.seed, react_share=args.react_share, size_sigma=args.size_sigma)
        settings = bt.Settings(window_days=args.window_days, lead_hours=args.lead_hours, test_start=args.test_start,
                               test_end=args.test_end, bootstrap=args.bootstrap, seed=args.seed, count=args.count,
                               fixed_critical_step=args.fixed_critical_step, severity=severity)  # fmt: skip
        t0 = time.perf_counter()
        report = bt.run_backtest(cbook, prices, cfg, settings, jobs=args.jobs)
        wall = time.perf_counter() - t0
    except MonitorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    c = report.comparison
    wf = report.walk_forward_fixed
    out: dict[str, Any] = {
        "command": "python scripts/bench_backtest.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "wall_s": round(wall, 1),
        "jobs": args.jobs,
        "prices": report.prices,
        "book": report.book,
        "test_windows": report.test_windows,
        "position_windows": report.position_windows,
        "fixed_levels_per_fold": [f["fixed_level"] for f in report.folds],
        "walk_forward_fixed": {
            "recall": wf.recall,
            "recall_ci": wf.recall_ci,
            "recall_usd": wf.recall_usd,
            "false_alarm_episodes": wf.false_alarm_episodes,
            "median_lead_hours": wf.median_lead_hours,
            "p10_lead_hours": wf.p10_lead_hours,
            "cost_usd": wf.cost_usd,
            "liquidations": wf.liquidations,
        },
        "policy": [
            {
                "cost_multiple": r.cost_multiple,
                "recall": r.recall,
                "recall_ci": r.recall_ci,
                "recall_usd": r.recall_usd,
                "false_alarm_episodes": r.false_alarm_episodes,
                "fa_ci_per_1000": r.false_alarms_per_1000_ci,
                "median_lead_hours": r.median_lead_hours,
                "p10_lead_hours": r.p10_lead_hours,
                "cost_usd": r.cost_usd,
            }
            for r in report.policy_rules()
        ],
        "comparison": c,
        "by_class": {
            "walk_forward_fixed": wf.by_class,
            **{f"policy_x{r.cost_multiple:g}": r.by_class for r in report.policy_rules()},
        },
        "notes": list(report.notes),
    }
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    print(f"{report.book}\nprices: {report.prices}; {report.test_windows} test windows, "
          f"{report.position_windows:,} position-windows; wall {wall:.0f} s with {args.jobs} job(s)")  # fmt: skip
    print(f"walk-forward fixed level per fold: {', '.join(f'{x:.2f}' for x in out['fixed_levels_per_fold'])}")
    print(f"fixed (walk-forward): recall {_pct(wf.recall)} (CI90 {_pct(wf.recall_ci[0])}-{_pct(wf.recall_ci[1])}), "
          f"by penalty {_pct(wf.recall_usd)}; {wf.false_alarm_episodes} false-alarm episodes; median lead "
          f"{wf.median_lead_hours} h (p10 {wf.p10_lead_hours}); stated cost {wf.cost_usd:,.0f} USD")  # fmt: skip
    print(
        "policy setting  recall  by penalty  false alarms  fixed family at that recall  fewer  median lead h  cost USD"
    )
    for r, f in zip(report.policy_rules(), c["policy_vs_fixed_family"], strict=True):
        fam = f["fixed_family_false_alarm_episodes_at_recall"]
        print(f"  x{r.cost_multiple:<12g} {_pct(r.recall):>6}  {_pct(r.recall_usd):>10}  {r.false_alarm_episodes:>12}  "
              f"{'-' if fam is None else f'{fam:.0f}':>27}  {_pct(f['reduction']):>5}  "
              f"{r.median_lead_hours!s:>13}  {r.cost_usd:>9,.0f}")  # fmt: skip
    if c["policy_false_alarm_episodes_at_target"] is None:
        print(f"ACCEPTANCE NOT MET: at the fixed recall {_pct(c['target_recall'])} the policy's frontier does not "
              f"exist (its highest recall is {_pct(c['policy_max_recall'])}, "
              f"{(c['target_recall'] - c['policy_max_recall']) * 100:.1f} pp short)")  # fmt: skip
    else:
        ratio = c["policy_false_alarm_episodes_at_target"] / max(c["fixed_false_alarm_episodes"], 1)
        at = c["policy_false_alarm_episodes_at_target"]
        print(f"at the fixed recall {_pct(c['target_recall'])}: policy {at:.0f} "
              f"vs fixed {c['fixed_false_alarm_episodes']} false-alarm episodes (ratio {ratio:.2f}, reduction "
              f"{_pct(c['false_alarm_reduction'])}, CI90 {c['false_alarm_reduction_ci90']}); median lead policy "
              f"{c['policy_median_lead_hours']} h vs fixed {c['fixed_median_lead_hours']} h -> "
              f"{'MET' if c['accepted'] else 'NOT MET'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
