"""A seeded generator of intraday OHLC bars (real hourly data cannot be shipped).

Floating assets (BTC, ETH, SOL) follow correlated log returns with Student-t (df 3)
innovations, a slowly varying volatility regime (a log-AR(1) multiplier) and rare CRASH days:
on a crash day every floating asset falls by 15-40 % (scaled by its beta) over 6-18 hours,
with a partial rebound. Stablecoins (USDC, USDT, DAI) mean-revert tightly around 1 with a
rare depeg (down to 0.85-0.97, recovering over days). Each bar's low and high come from four
sub-steps, so the intraday extremes are consistent with the path.

Pure numpy; the same seed gives the same file. ``scripts/make_hourly_prices.py`` writes it in
the ``--prices`` CSV format (:func:`write_csv`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from monitor.errors import InputError
from monitor.risk.backtest_data import Array, PriceSet

__all__ = ["SyntheticSpec", "generate", "write_csv"]

FLOATING: dict[str, tuple[float, float, float]] = {
    # start price, daily sigma, beta to the market factor
    "BTC": (30000.0, 0.035, 1.0),
    "ETH": (2000.0, 0.045, 1.2),
    "SOL": (40.0, 0.07, 1.6),
}
STABLE_START: tuple[str, ...] = ("USDC", "USDT", "DAI")
SUB_STEPS = 4


@dataclass(frozen=True, slots=True)
class SyntheticSpec:
    days: int = 120
    step_hours: float = 1.0
    start: str = "2024-01-01"
    crash_rate_per_year: float = 6.0
    depeg_rate_per_year: float = 1.5
    seed: int = 3


def generate(spec: SyntheticSpec = SyntheticSpec()) -> PriceSet:
    """Bars of BTC, ETH, SOL, USDC, USDT, DAI (columns in that order)."""
    if spec.days < 2 or spec.step_hours <= 0 or 24.0 % spec.step_hours:
        raise InputError(f"synthetic prices need days >= 2 and a step dividing 24 h, got {spec}")
    rng = np.random.default_rng(spec.seed)
    per_day = round(24.0 / spec.step_hours)
    n = spec.days * per_day
    n_sub = n * SUB_STEPS
    dt_days = spec.step_hours / 24.0 / SUB_STEPS
    names = (*FLOATING, *STABLE_START)
    # market factor + idiosyncratic, Student-t(3) scaled to unit variance
    t_df = 3.0
    scale_t = np.sqrt((t_df - 2.0) / t_df)
    market = rng.standard_t(t_df, n_sub) * scale_t
    regime = np.empty(n_sub)
    x = 0.0
    phi = np.exp(-dt_days / 10.0)  # ~10-day memory
    shocks = rng.standard_normal(n_sub) * np.sqrt(1 - phi**2) * 0.5
    for i in range(n_sub):
        x = phi * x + shocks[i]
        regime[i] = x
    vol_mult = np.exp(regime - 0.125)
    logp = np.zeros((n_sub + 1, len(names)))
    for j, (_, (p0, sigma, beta)) in enumerate(FLOATING.items()):
        idio = rng.standard_t(t_df, n_sub) * scale_t
        rho = min(0.9, 0.75 * beta / 1.2)
        r = sigma * np.sqrt(dt_days) * vol_mult * (np.sqrt(rho) * market + np.sqrt(1 - rho) * idio)
        logp[0, j] = np.log(p0)
        logp[1:, j] = np.log(p0) + np.cumsum(r)
    # crash days
    n_crash = int(rng.poisson(spec.crash_rate_per_year * spec.days / 365.0))
    for _ in range(max(n_crash, 1)):
        begin = int(rng.integers(n_sub // 10, max(n_sub // 10 + 1, n_sub - 1)))
        length = int(rng.uniform(6, 18) / spec.step_hours * SUB_STEPS)
        depth = rng.uniform(0.15, 0.40)
        rebound = rng.uniform(0.2, 0.5)
        for j, (_, (_, _, beta)) in enumerate(FLOATING.items()):
            fall = np.log(1 - min(0.8, depth * beta))
            ramp = np.clip((np.arange(n_sub + 1) - begin) / max(length, 1), 0, 1)
            back = np.clip((np.arange(n_sub + 1) - begin - length) / max(4 * length, 1), 0, 1) * rebound
            logp[:, j] += fall * (ramp - back * ramp)
    # stablecoins: OU around 0 with a rare depeg
    k = len(FLOATING)
    for j in range(len(STABLE_START)):
        noise = rng.standard_normal(n_sub) * 0.0008 * np.sqrt(dt_days)
        level = np.zeros(n_sub + 1)
        kappa = dt_days * 5.0
        for i in range(n_sub):
            level[i + 1] = level[i] * (1 - kappa) + noise[i]
        n_dep = int(rng.poisson(spec.depeg_rate_per_year * spec.days / 365.0))
        for _ in range(n_dep):
            begin = int(rng.integers(0, n_sub))
            depth = rng.uniform(0.03, 0.15)
            dt = (np.arange(n_sub + 1) - begin) * dt_days
            level += np.where(dt >= 0, np.log(1 - depth) * np.clip(dt / 0.25, 0, 1) * 0.5 ** (dt / 2.0), 0.0)
        logp[:, k + j] = level
    prices = np.exp(logp)
    bars = prices[1:].reshape(n, SUB_STEPS, len(names))
    opens = prices[:-1][::SUB_STEPS]
    close = bars[:, -1, :]
    low = np.minimum(bars.min(axis=1), opens)
    high = np.maximum(bars.max(axis=1), opens)
    t0 = int(pd.Timestamp(spec.start, tz="UTC").timestamp())
    step_s = round(spec.step_hours * 3600)
    times = t0 + step_s * np.arange(1, n + 1, dtype=np.int64)
    return PriceSet(times, names, close, low, high, spec.step_hours, f"synthetic (seed {spec.seed})")


def write_csv(prices: PriceSet, path: Path | str, opens: Array | None = None) -> Path:
    """Write ``prices`` as a ``timestamp,asset,open,high,low,close`` CSV (open = previous close)."""
    out = Path(path)
    prev = np.vstack([prices.close[:1], prices.close[:-1]]) if opens is None else opens
    stamps = pd.to_datetime(prices.times, unit="s", utc=True).strftime("%Y-%m-%dT%H:%M:%SZ")
    frames = []
    for j, a in enumerate(prices.symbols):
        o = np.clip(prev[:, j], prices.low[:, j], prices.high[:, j])
        frames.append(pd.DataFrame({
            "timestamp": stamps, "asset": a, "open": o, "high": prices.high[:, j],
            "low": prices.low[:, j], "close": prices.close[:, j],
        }))  # fmt: skip
    frame = pd.concat(frames).sort_values(["timestamp", "asset"], kind="stable")
    frame.to_csv(out, index=False, float_format="%.10g")
    return out
