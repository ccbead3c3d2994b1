"""Oracle-anomaly validation on the shipped daily history: detections per named event, false
alarms per feed-year in calm periods, at the default settings (and a threshold trade-off).

    .venv/bin/python scripts/bench_anomalies.py [--json]

Definitions (printed with the figures):
- event window: each named stress event of ``monitor.risk.scenarios.HISTORICAL_EVENTS``
  (2020-03-12, 2021-05-19, 2022-05 Terra/LUNA, 2022-11 FTX, 2023-03 USDC depeg) from 3 days
  before its start to 3 days after its end;
- an alarm = a day on which the detector returns a warning or critical anomaly; consecutive
  alarm days are ONE episode (the alert pipeline holds one alert while it lasts);
- a detection = an episode starting inside an event window; a false alarm = one starting
  elsewhere; calm = every day after the 60-day warm-up outside the event windows; false alarms
  per feed-year = false-alarm episodes / calm days x 365.25.
- sustained moves (kind ``drift``): each horizon of ``DEFAULT_DRIFT_Z`` is also run ALONE beside
  the jump detector, and the jump detector alone (``drift_z={}``), so each horizon's false alarms
  per feed-year are printed; ``--rule`` prints the grid behind the levels: for each horizon the
  smallest z in 4.0, 4.5, ..., 7.0 whose false alarms ADDED to the jump detector's on the fit
  period (calm days before 2020-01-01, which hold none of the named events) are <= 0.5 per
  feed-year for ETH and for BTC (falls only).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import pandas as pd

from monitor import price_data
from monitor.risk.anomalies import DEFAULT_DRIFT_Z, feed_spec, replay_daily
from monitor.risk.scenarios import HISTORICAL_EVENTS

FEEDS = ("ETH", "BTC", "SOL", "USDC", "USDT", "DAI")
MARGIN_DAYS = 3
WARMUP_DAYS = 60
FIT_END = "2020-01-01"  # the fit period of the drift levels: calm days before this
RULE_ADDED_PER_YEAR = 0.5
RULE_GRID = (4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0)


def event_windows(margin_days: int = MARGIN_DAYS) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
    pad = pd.Timedelta(days=margin_days)
    return {n: (pd.Timestamp(e.start) - pad, pd.Timestamp(e.end) + pad) for n, e in HISTORICAL_EVENTS.items()}


def evaluate(asset: str, **detector: Any) -> dict[str, Any]:
    daily = price_data.load_daily(asset)
    days = [d.strftime("%Y-%m-%d") for d in pd.DatetimeIndex(daily.index)]
    replay = replay_daily(
        asset, days, daily["low"].to_numpy(), daily["high"].to_numpy(), daily["close"].to_numpy(),
        warmup_days=WARMUP_DAYS, **detector,
    )  # fmt: skip
    windows = event_windows()
    dates = pd.DatetimeIndex(daily.index)
    alarm = [s != "ok" for s in replay.severity]
    where: list[str | None] = []
    for d in dates:
        where.append(next((n for n, (a, b) in windows.items() if a <= d <= b), None))
    episodes: list[tuple[str, str | None, float]] = []
    for i, on in enumerate(alarm):
        if on and not (i > 0 and alarm[i - 1]):
            peak = max(replay.score[k] for k in range(i, len(alarm)) if all(alarm[i : k + 1]))
            episodes.append((days[i], where[i], round(peak, 1)))
    calm_days = sum(1 for i in range(WARMUP_DAYS, len(days)) if where[i] is None)
    fit_days = sum(1 for i in range(WARMUP_DAYS, len(days)) if where[i] is None and days[i] < FIT_END)
    false_alarms = [(d, z) for d, w, z in episodes if w is None]
    covered = {n for i, n in enumerate(where) if n is not None and i >= WARMUP_DAYS}
    peak_by_event = {
        n: round(max(replay.score[i] for i in range(len(days)) if where[i] == n), 1) for n in sorted(covered)
    }
    drift_by_event = {
        n: round(max(replay.drift[i] for i in range(len(days)) if where[i] == n), 1) for n in sorted(covered)
    }
    fit_fa = sum(1 for d, _ in false_alarms if d < FIT_END)
    detected = sorted({w for _, w, _ in episodes if w is not None})
    spec = feed_spec(asset)
    return {
        "asset": asset,
        "model": f"{spec.kind}, deviation {spec.deviation:.2%}, heartbeat {spec.heartbeat_s / 3600:g} h",
        "first_day": days[WARMUP_DAYS],
        "last_day": days[-1],
        "calm_years": round(calm_days / 365.25, 2),
        "false_alarms": len(false_alarms),
        "false_alarms_per_feed_year": round(len(false_alarms) / (calm_days / 365.25), 2),
        "false_alarm_days": false_alarms,
        "fit_years": round(fit_days / 365.25, 2),
        "fit_false_alarms": fit_fa,
        "events_with_data": sorted(covered),
        "events_detected": detected,
        "peak_z_by_event": peak_by_event,
        "peak_drift_z_by_event": drift_by_event if spec.kind == "floating" else {},
    }


def horizons(assets: tuple[str, ...] = ("ETH", "BTC", "SOL")) -> dict[str, dict[str, Any]]:
    """Each default drift horizon alone beside the jump detector, and the jump detector alone."""
    out: dict[str, dict[str, Any]] = {}
    runs: dict[str, dict[float, float]] = {"jump only": {}}
    runs.update({f"+ {h:g} d at z {z:g}": {h: z} for h, z in DEFAULT_DRIFT_Z.items()})
    runs["defaults (all)"] = dict(DEFAULT_DRIFT_Z)
    for label, levels in runs.items():
        row: dict[str, Any] = {}
        for asset in assets:
            r = evaluate(asset, drift_z=levels)
            row[f"{asset} FA/feed-y"] = r["false_alarms_per_feed_year"]
            row[f"{asset} LUNA"] = "2022-05-terra" in r["events_detected"]
        out[label] = row
    return out


def rule_grid() -> dict[str, Any]:
    """The rule behind the drift levels, run on the fit period only (see the module docstring)."""
    base = {a: evaluate(a, drift_z={}) for a in ("ETH", "BTC")}
    out: dict[str, Any] = {}
    for h in DEFAULT_DRIFT_Z:
        rows = []
        chosen = None
        for z in RULE_GRID:
            added = {}
            for a in ("ETH", "BTC"):
                r = evaluate(a, drift_z={h: z})
                added[a] = round((r["fit_false_alarms"] - base[a]["fit_false_alarms"]) / r["fit_years"], 2)
            rows.append({"z": z, "added_fit_FA_per_feed_year": added})
            if chosen is None and max(added.values()) <= RULE_ADDED_PER_YEAR:
                chosen = z
        out[f"{h:g} d"] = {"chosen": chosen, "shipped": DEFAULT_DRIFT_Z[h], "grid": rows}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rule", action="store_true", help="also print the fit-period grid behind the drift levels")
    args = parser.parse_args()
    t0 = time.perf_counter()
    rows = [evaluate(a) for a in FEEDS]
    per_horizon = horizons()
    rule = rule_grid() if args.rule else None
    tradeoff: dict[str, dict[str, Any]] = {}
    for zw in (3.5, 4.0, 5.0):
        levels: dict[str, Any] = {"z_warning": zw, "z_critical": max(10.0, zw + 1.0), "drift_z": {}}
        row: dict[str, Any] = {}
        for asset in ("ETH", "BTC"):
            r = evaluate(asset, **levels)
            row[f"{asset} FA/feed-y"] = r["false_alarms_per_feed_year"]
            row[f"{asset} LUNA"] = "2022-05-terra" in r["events_detected"]
        tradeoff[f"z_warning={zw:g}"] = row
    elapsed = time.perf_counter() - t0
    if args.json:
        doc = {"feeds": rows, "horizons": per_horizon, "rule": rule, "tradeoff": tradeoff}
        print(json.dumps(doc | {"seconds": round(elapsed, 1)}, indent=2))
        return
    print("event windows (named event +- 3 days):")
    for n, (a, b) in event_windows().items():
        print(f"  {n:<20} {a:%Y-%m-%d} .. {b:%Y-%m-%d}")
    print()
    print(f"{'feed':<6} {'model':<42} {'calm y':>6} {'FA':>3} {'FA/feed-y':>9}  detected (peak z per event)")
    for r in rows:
        peaks = ", ".join(
            f"{n}{'*' if n in r['events_detected'] else ''} {z:g}" for n, z in r["peak_z_by_event"].items()
        )
        print(f"{r['asset']:<6} {r['model']:<42} {r['calm_years']:>6.2f} {r['false_alarms']:>3} "
              f"{r['false_alarms_per_feed_year']:>9.2f}  {peaks}")  # fmt: skip
    print("  (* = detected: an alarm episode starts inside the event window)")
    print()
    levels_txt = ", ".join(f"{h:g} d: z {z:g}" for h, z in DEFAULT_DRIFT_Z.items())
    print(f"peak sustained-move z per event (floating feeds; falls only; levels {levels_txt}):")
    for r in rows:
        if r["peak_drift_z_by_event"]:
            print(f"  {r['asset']:<4} " + ", ".join(f"{n} {z:g}" for n, z in r["peak_drift_z_by_event"].items()))
    print()
    print("false alarms per feed-year and LUNA detected, per drift horizon (each alone beside the jumps):")
    for k, v in per_horizon.items():
        print(f"  {k:<18} {v}")
    if rule is not None:
        print()
        print(f"rule: smallest z adding <= {RULE_ADDED_PER_YEAR} false alarms/feed-year on calm days before {FIT_END}")
        for h, g in rule.items():
            grid = "; ".join(f"{x['z']:g}: {x['added_fit_FA_per_feed_year']}" for x in g["grid"])
            print(f"  {h}: chosen {g['chosen']}, shipped {g['shipped']:g}   (added ETH/BTC per z: {grid})")
    print()
    for r in rows:
        if r["false_alarm_days"]:
            days = ", ".join(f"{d} (z {z:g})" for d, z in r["false_alarm_days"])
            print(f"{r['asset']} false alarms (peak jump z): {days}")
    print()
    print("lower jump thresholds, drift horizons off (false alarms per feed-year; LUNA detected?):")
    for k, v in tradeoff.items():
        print(f"  {k}: {v}")
    print(f"\n{elapsed:.1f} s")


if __name__ == "__main__":
    main()
