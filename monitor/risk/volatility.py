"""Volatility and covariance estimators on daily log returns (pure numpy).

Conventions
-----------
- All sigmas are DAILY (one UTC calendar day; crypto trades 24/7, so a day is 24 h).
- EWMA follows RiskMetrics with a zero mean: the recursion is
  ``s2_t = lam * s2_{t-1} + (1 - lam) * r_t**2`` (``r_t r_t^T`` for covariances).
  It is seeded with the zero-mean sample variance ``mean(r**2)`` of the first 30
  returns (all of them if fewer), then run over EVERY return, so the result is the
  forecast for the day after the last return. The seed and the recursion use the same
  zero-mean convention, hence a constant return ``c`` gives exactly ``|c|``, and the
  estimate is a convex combination of the squared returns
  (``lam**T + (1 - lam) * sum(lam**k) == 1``).
- Only :func:`asset_volatilities` and :func:`asset_covariance` read data: the shipped
  daily prices, through :mod:`monitor.price_data`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from monitor import price_data
from monitor.errors import InputError
from monitor.risk.checks import finite_number, parse_day

__all__ = [
    "DEFAULT_LAMBDA",
    "SEED_RETURNS",
    "asset_covariance",
    "asset_volatilities",
    "correlation_from_covariance",
    "ewma_covariance",
    "ewma_volatility",
    "joint_log_returns",
    "parkinson_volatility",
    "scale_sigma",
]

Array = NDArray[np.float64]

DEFAULT_LAMBDA = 0.94
SEED_RETURNS = 30
HOURS_PER_DAY = 24.0


def ewma_volatility(log_returns: ArrayLike, lam: float = DEFAULT_LAMBDA) -> float:
    """RiskMetrics EWMA daily sigma of a 1-D series of daily log returns (see module doc)."""
    r = _finite_array(log_returns, "log_returns", ndim=1)
    return math.sqrt(float(ewma_covariance(r[:, None], lam)[0, 0]))


def ewma_covariance(returns: ArrayLike, lam: float = DEFAULT_LAMBDA) -> Array:
    """RiskMetrics EWMA covariance ``[A, A]`` of joint daily log returns ``[T, A]``.

    Seeded with ``R0.T @ R0 / n0`` over the first ``n0 = min(30, T)`` rows, then
    ``C = lam * C + (1 - lam) * r_t r_t^T`` for every row ``t`` (evaluated in closed form).
    """
    r = _finite_array(returns, "returns", ndim=2)
    lam = _check_lambda(lam)
    n_obs = r.shape[0]
    n0 = min(SEED_RETURNS, n_obs)
    seed = r[:n0].T @ r[:n0] / n0
    # weight of r_t in the final estimate: (1 - lam) * lam**(T - 1 - t)
    weights = (1.0 - lam) * lam ** np.arange(n_obs - 1, -1, -1, dtype=np.float64)
    cov = lam**n_obs * seed + (r * weights[:, None]).T @ r
    cov = 0.5 * (cov + cov.T)
    return np.asarray(cov, dtype=np.float64)


def correlation_from_covariance(cov: ArrayLike) -> Array:
    """Correlation matrix of a covariance matrix (unit diagonal, clipped to [-1, 1])."""
    c = _finite_array(cov, "cov", ndim=2)
    if c.shape[0] != c.shape[1]:
        raise InputError(f"covariance must be square, got shape {c.shape}")
    if not np.allclose(c, c.T, rtol=1e-9, atol=1e-15):
        raise InputError("covariance must be symmetric")
    var = np.diag(c)
    if np.any(var <= 0.0):
        bad = [int(i) for i in np.flatnonzero(var <= 0.0)]
        raise InputError(f"covariance has a zero or negative variance at index {bad}; correlation is undefined")
    sd = np.sqrt(var)
    corr = np.clip(c / np.outer(sd, sd), -1.0, 1.0)
    np.fill_diagonal(corr, 1.0)
    return np.asarray(corr, dtype=np.float64)


def parkinson_volatility(high: ArrayLike, low: ArrayLike) -> float:
    """Parkinson daily sigma from daily highs and lows: ``sqrt(mean(ln(H/L)**2) / (4 ln 2))``."""
    h = _finite_array(high, "high", ndim=1)
    lo = _finite_array(low, "low", ndim=1)
    if h.shape != lo.shape:
        raise InputError(f"high and low must have the same length, got {h.shape[0]} and {lo.shape[0]}")
    if np.any(lo <= 0.0):
        raise InputError("low prices must be positive")
    if np.any(h < lo):
        bad = int(np.flatnonzero(h < lo)[0])
        raise InputError(f"high is below low at index {bad} ({h[bad]} < {lo[bad]})")
    ranges = np.log(h / lo)
    return math.sqrt(float(np.mean(ranges**2)) / (4.0 * math.log(2.0)))


def scale_sigma(daily_sigma: float, hours: float) -> float:
    """Square-root-of-time scaling of a daily sigma to ``hours`` (24 h == one day)."""
    sigma = finite_number(daily_sigma, "daily_sigma")
    h = finite_number(hours, "hours")
    if sigma < 0.0:
        raise InputError(f"daily_sigma must be >= 0, got {daily_sigma}")
    if h < 0.0:
        raise InputError(f"hours must be >= 0, got {hours}")
    return sigma * math.sqrt(h / HOURS_PER_DAY)


def asset_volatilities(assets: Sequence[str], end: str | None = None, window_days: int = 365) -> dict[str, float]:
    """EWMA daily sigma of each asset's close-to-close log returns in the window.

    The window is the calendar days ``end - window_days .. end`` (``end`` defaults to
    the asset's last day), i.e. about ``window_days`` returns. Each asset uses its own
    dates. Keys are the names exactly as given (``"WETH"`` stays ``"WETH"``).
    """
    names = _names(assets)
    days = _check_window(window_days)
    out: dict[str, float] = {}
    for name in names:
        asset = price_data.resolve_asset(name)
        last = _end_day(end, price_data.load_daily(asset).index[-1])
        start = (last - pd.Timedelta(days=days)).strftime("%Y-%m-%d")
        returns = price_data.log_returns(asset, start, last.strftime("%Y-%m-%d")).to_numpy(dtype=np.float64)
        if returns.size < 2:
            raise InputError(f"not enough {name} price data in the {days} days ending {last:%Y-%m-%d}")
        out[name] = ewma_volatility(returns)
    return out


def joint_log_returns(assets: Sequence[str], start: str | None = None, end: str | None = None) -> Array:
    """Daily log returns ``[T, A]`` of ``assets`` over the dates they all have (start..end).

    Columns follow ``assets``; a return across a missing day spans the gap.
    """
    names = _names(assets)
    unique = list(dict.fromkeys(price_data.resolve_asset(n) for n in names))
    closes = price_data.load_closes(unique, start, end)
    if len(closes) < 2:
        raise InputError(f"not enough joint price data for {', '.join(unique)} between {start} and {end}")
    logp = np.log(closes.to_numpy(dtype=np.float64))
    rets = np.diff(logp, axis=0)
    cols = [unique.index(price_data.resolve_asset(n)) for n in names]
    return np.ascontiguousarray(rets[:, cols], dtype=np.float64)


def asset_covariance(
    assets: Sequence[str], end: str | None = None, window_days: int = 365, lam: float = DEFAULT_LAMBDA
) -> Array:
    """EWMA covariance ``[A, A]`` of joint daily log returns over ``end - window_days .. end``.

    ``end`` defaults to the last day all assets have. Rows/columns follow ``assets``.
    """
    names = _names(assets)
    days = _check_window(window_days)
    unique = list(dict.fromkeys(price_data.resolve_asset(n) for n in names))
    closes = price_data.load_closes(unique, None, end)
    if closes.empty:
        raise InputError(f"no joint price data for {', '.join(unique)} up to {end}")
    last = pd.Timestamp(closes.index[-1])
    start = (last - pd.Timedelta(days=days)).strftime("%Y-%m-%d")
    returns = joint_log_returns(names, start, last.strftime("%Y-%m-%d"))
    return ewma_covariance(returns, lam)


# -- internals ----------------------------------------------------------------------


def _finite_array(values: ArrayLike, what: str, *, ndim: int) -> Array:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} must be numeric: {exc}") from exc
    if arr.ndim != ndim:
        raise InputError(f"{what} must be {ndim}-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{what} is empty")
    if not np.isfinite(arr).all():
        raise InputError(f"{what} contains NaN or infinite values")
    return arr


def _check_lambda(lam: float) -> float:
    out = finite_number(lam, "lam")
    if not 0.0 < out < 1.0:
        raise InputError(f"EWMA decay lam must be in (0, 1), got {lam}")
    return out


def _check_window(window_days: int) -> int:
    if isinstance(window_days, bool) or not isinstance(window_days, int | np.integer):
        raise InputError(f"window_days must be an integer, got {window_days!r}")
    if window_days < 2:
        raise InputError(f"window_days must be >= 2, got {window_days}")
    return int(window_days)


def _names(assets: Sequence[str]) -> list[str]:
    if isinstance(assets, str):
        raise InputError(f"assets must be a sequence of names, got the string {assets!r}")
    names = list(assets)
    if not names:
        raise InputError(f"no assets given; known assets: {', '.join(price_data.ASSETS)}")
    return names


def _end_day(end: str | None, default: pd.Timestamp) -> pd.Timestamp:
    if end is None:
        return pd.Timestamp(default)
    return parse_day(end)
