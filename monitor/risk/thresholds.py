"""Severity mechanics shared by every caller of the threshold policy, and the normal distribution.

The levels themselves come from :mod:`monitor.risk.policy` (filtered historical simulation,
levels by expected cost). This module keeps what every caller of the policy shares:

- :class:`Levels` (the per-position watch / warning / critical HF) and :func:`raw_severity`;
- :func:`step_severity`: hysteresis (leave a level only above ``level * (1 + exit_margin)``)
  and a minimum dwell before de-escalating; escalation is always immediate. Its parameters
  are any object with ``exit_margin`` and ``min_dwell_s`` (:class:`ThresholdPolicy`, or the
  policy's :class:`~monitor.risk.policy.PolicyConfig`);
- the normal CDF / quantile (no scipy: ``erfc`` and Acklam's rational approximation refined
  by one Halley step), the reference the policy's simulation is checked against on Gaussian
  returns (tests);
- :func:`covariance_for`: the daily covariance from the store's oracle history or the
  shipped data (the oracle-jump detector's volatility).

Sigmas are DAILY (24 h), as in :mod:`monitor.risk.volatility`. The clock is always a parameter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from monitor import price_data
from monitor.errors import InputError
from monitor.risk.checks import finite_number, parse_day
from monitor.risk.volatility import DEFAULT_LAMBDA, asset_covariance, ewma_covariance

__all__ = [
    "SEVERITIES",
    "Hysteresis",
    "Levels",
    "ThresholdPolicy",
    "covariance_for",
    "norm_cdf",
    "norm_ppf",
    "raw_severity",
    "step_severity",
]

Array = NDArray[np.float64]
IntArray = NDArray[np.int64]

SEVERITIES: tuple[str, ...] = ("ok", "watch", "warning", "critical", "liquidatable")  # index = rank
SECONDS_PER_DAY = 86400.0
SHIPPED_WINDOW_DAYS = 365


class Hysteresis(Protocol):
    """What :func:`step_severity` needs (a :class:`ThresholdPolicy` or a ``PolicyConfig``)."""

    @property
    def exit_margin(self) -> float: ...

    @property
    def min_dwell_s(self) -> float: ...


@dataclass(frozen=True, slots=True)
class ThresholdPolicy:
    """Hysteresis parameters on their own (the policy's ``PolicyConfig`` carries the same two)."""

    exit_margin: float = 0.02  # leave a level only when HF > level * (1 + exit_margin)
    min_dwell_s: float = 300.0  # ... and it has been held this long (escalation is immediate)

    def validate(self) -> ThresholdPolicy:
        """``self`` if consistent, else an :class:`InputError` naming the field."""
        _check_hysteresis(self)
        return self


def _check_hysteresis(policy: Hysteresis) -> tuple[float, float]:
    margin = finite_number(policy.exit_margin, "exit_margin")
    dwell = finite_number(policy.min_dwell_s, "min_dwell_s")
    if margin < 0.0:
        raise InputError(f"exit_margin must be >= 0, got {policy.exit_margin}")
    if dwell < 0.0:
        raise InputError(f"min_dwell_s must be >= 0, got {policy.min_dwell_s}")
    return margin, dwell


# -- the normal distribution ----------------------------------------------------------

_ERFC = np.vectorize(math.erfc, otypes=[np.float64])

# Acklam's rational approximation of the normal quantile (relative error < 1.15e-9).
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
      1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)  # fmt: skip
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01, -1.328068155288572e01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
      -2.549671010029162e00, 4.374664141464968e00, 2.938163982698783e00)  # fmt: skip
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
_P_LOW = 0.02425


def norm_cdf(x: ArrayLike) -> Array:
    """Standard normal CDF, ``0.5 * erfc(-x / sqrt(2))`` (accurate in both tails; NaN stays NaN)."""
    arr = np.asarray(x, dtype=np.float64)
    out: Array = 0.5 * _ERFC(-arr / math.sqrt(2.0))
    return out


def norm_ppf(p: ArrayLike) -> Array:
    """Standard normal quantile: ``norm_ppf(0.975) == 1.959963984540054``; 0 -> -inf, 1 -> +inf.

    Probabilities outside [0, 1] or NaN raise :class:`InputError`.
    """
    arr = np.asarray(p, dtype=np.float64)
    if np.isnan(arr).any() or (arr < 0.0).any() or (arr > 1.0).any():
        raise InputError(f"probabilities must be in [0, 1], got {arr[np.isnan(arr) | (arr < 0) | (arr > 1)][:3]}")
    upper = arr > 0.5
    # 1 - p is exact for p in [0.5, 1] (Sterbenz), so the upper half loses nothing by symmetry.
    q = np.where(upper, 1.0 - arr, arr)
    z = _lower_quantile(q)
    out: Array = np.where(upper, -z, z)
    return out


def _lower_quantile(q: Array) -> Array:
    """``Phi^-1(q)`` for ``q`` in [0, 0.5] (so the result is <= 0)."""
    q = np.asarray(q, dtype=np.float64)
    safe = np.clip(q, 1e-300, 0.5)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        t = np.sqrt(-2.0 * np.log(safe))
        tail = _poly(_C, t) / _poly((*_D, 1.0), t)
        c = safe - 0.5
        r = c * c
        central = _poly(_A, r) * c / _poly((*_B, 1.0), r)
        x = np.where(safe < _P_LOW, tail, central)
        # one Halley step on f(x) = Phi(x) - q; Phi(x) via erfc is accurate for x <= 0
        e = norm_cdf(x) - safe
        u = e * math.sqrt(2.0 * math.pi) * np.exp(0.5 * x * x)
        refined = x - u / (1.0 + 0.5 * x * u)
        x = np.where(np.isfinite(refined), refined, x)
    out: Array = np.where(q <= 0.0, -np.inf, x)
    return out


def _poly(coef: tuple[float, ...], t: Array) -> Array:
    acc = np.full_like(t, coef[0])
    for c in coef[1:]:
        acc = acc * t + c
    return acc


@dataclass(frozen=True, slots=True)
class Levels:
    """Per position, the HF at or below which each severity starts (from the policy)."""

    watch: Array
    warning: Array
    critical: Array

    @classmethod
    def from_matrix(cls, matrix: ArrayLike) -> Levels:
        """From ``[P, 3]`` columns watch, warning, critical (e.g. ``PolicyLevels.levels``)."""
        m = np.atleast_2d(np.asarray(matrix, dtype=np.float64))
        if m.ndim != 2 or m.shape[1] != 3:
            raise InputError(f"levels must be [P, 3] (watch, warning, critical), got shape {m.shape}")
        return cls(m[:, 0].copy(), m[:, 1].copy(), m[:, 2].copy())

    def as_matrix(self) -> Array:
        """``[P, 3]``: columns watch, warning, critical."""
        out: Array = np.column_stack([self.watch, self.warning, self.critical]).astype(np.float64)
        return out

    def enter(self) -> Array:
        """``[P, 4]``: the enter level of severities 1..4 (watch, warning, critical, liquidatable=1.0)."""
        m = self.as_matrix()
        out: Array = np.column_stack([m, np.ones(m.shape[0])])
        return out


# -- severities -------------------------------------------------------------------------


def raw_severity(hf: ArrayLike, lv: Levels) -> IntArray:
    """Rank per position without memory: 4 if ``hf < 1``, 3 if ``<= critical``, 2 if ``<= warning``,
    1 if ``<= watch``, else 0 (index into :data:`SEVERITIES`)."""
    h = _hf_array(hf)
    out = np.where(
        h < 1.0, 4, np.where(h <= lv.critical, 3, np.where(h <= lv.warning, 2, np.where(h <= lv.watch, 1, 0)))
    )
    return np.asarray(out, dtype=np.int64)


def step_severity(
    prev: ArrayLike, prev_since: ArrayLike, hf: ArrayLike, lv: Levels, now: float, policy: Hysteresis
) -> tuple[IntArray, Array]:
    """One update of each position's alert severity with hysteresis and dwell.

    With ``target = raw_severity(hf, lv)`` and ``enter(s)`` the level at which severity ``s``
    starts (1.0 for liquidatable):

    - ``target > prev``: escalate to ``target`` now (``since = now``), whatever the dwell;
    - otherwise, if ``now - prev_since >= min_dwell_s`` and ``hf > enter(prev) * (1 + exit_margin)``,
      de-escalate to the lowest severity whose exit band still holds ``hf``, i.e. the number of
      levels ``k`` with ``hf <= enter(k) * (1 + exit_margin)`` (never below ``target``), ``since = now``;
    - else keep ``prev`` and ``prev_since``.

    Every de-escalation therefore comes at least ``min_dwell_s`` after the previous transition,
    and HF noise inside the exit band never de-escalates. Start a position with
    ``prev = raw_severity(hf, lv)`` and ``prev_since = now`` (or ``-inf``: "held forever").
    Returns ``(severity, since)``.
    """
    exit_margin, min_dwell_s = _check_hysteresis(policy)
    t_now = finite_number(now, "now")
    h = np.atleast_1d(_hf_array(hf))
    p_arr = np.asarray(prev)
    if p_arr.size and (not np.issubdtype(p_arr.dtype, np.integer) or p_arr.min() < 0 or p_arr.max() > 4):
        raise InputError(f"prev severities must be integer ranks 0..4, got {p_arr[:5]}")
    since = np.asarray(prev_since, dtype=np.float64)
    if np.isnan(since).any() or (since == np.inf).any():
        raise InputError("prev_since must be times (or -inf), not NaN or +inf")
    p_sev, since, h = np.broadcast_arrays(p_arr.astype(np.int64), since, h)
    enter = lv.enter()
    if enter.shape[0] not in (1, h.shape[0]):
        raise InputError(f"levels are for {enter.shape[0]} positions, health factors for {h.shape[0]}")
    target = raw_severity(h, lv)
    band = (h[:, None] <= enter * (1.0 + exit_margin)).sum(axis=1).astype(np.int64)
    band = np.maximum(band, target)
    up = target > p_sev
    down = ~up & (band < p_sev) & (t_now - since >= min_dwell_s)
    severity = np.where(up, target, np.where(down, band, p_sev)).astype(np.int64)
    new_since: Array = np.where(up | down, t_now, since).astype(np.float64)
    return severity, new_since


# -- covariance for a book ---------------------------------------------------------------


def covariance_for(
    symbols: Sequence[str],
    *,
    price_history: Mapping[str, Sequence[tuple[float, float]]] | None = None,
    min_days: float = 30.0,
    end: str | None = None,
    lam: float = DEFAULT_LAMBDA,
) -> tuple[Array, str]:
    """The ``[A, A]`` DAILY log-return covariance for ``symbols`` (rows/columns in that order).

    - ``"store"``: when every symbol has stored oracle history (``price_history``: symbol ->
      ``[(unix_time, usd_price), ...]``, any spacing, symbols matched case-insensitively) and
      their common daily grid spans at least ``min_days`` returns. Each UTC day takes the
      symbol's last price (carried forward over days without an update), then the EWMA
      covariance (``lam``) of the daily log returns.
    - ``"shipped data (...)"`` otherwise: the EWMA covariance of the shipped real daily prices
      over the ``365`` days to ``end`` (or the last common day), through
      :func:`monitor.price_data.resolve_asset` (WETH -> ETH, WBTC -> BTC). Symbols without
      shipped data get the median variance of the others and zero correlation; the source
      string names them.

    ``end`` (``YYYY-MM-DD``, inclusive) also cuts the stored history, so a replay sees no
    later prices.
    """
    names = list(symbols) if not isinstance(symbols, str) else None
    if not names:
        raise InputError(f"symbols must be a non-empty sequence of names, got {symbols!r}")
    days_needed = finite_number(min_days, "min_days")
    cutoff = _end_cutoff(end)
    reason = "no stored history"
    if price_history is not None:
        cov, reason = _store_covariance(names, price_history, days_needed, cutoff, lam)
        if cov is not None:
            return cov, "store"
    return _shipped_covariance(names, end, lam, reason)


def _store_covariance(
    names: list[str],
    history: Mapping[str, Sequence[tuple[float, float]]],
    min_days: float,
    cutoff: float | None,
    lam: float,
) -> tuple[Array | None, str]:
    by_key = {str(k).upper(): v for k, v in history.items()}
    series: list[pd.Series] = []
    for name in names:
        rows = by_key.get(name.upper())
        if rows is None or len(rows) == 0:
            return None, f"no stored history for {name}"
        arr = np.asarray(rows, dtype=np.float64).reshape(-1, 2)
        if not np.isfinite(arr).all() or (arr[:, 1] <= 0).any():
            raise InputError(f"stored price history for {name} has non-finite or non-positive values")
        if cutoff is not None:
            arr = arr[arr[:, 0] < cutoff]
            if arr.size == 0:
                return None, f"no stored history for {name} up to the end date"
        order = np.argsort(arr[:, 0], kind="stable")
        day = np.floor(arr[order, 0] / SECONDS_PER_DAY).astype(np.int64)
        s = pd.Series(arr[order, 1], index=day)
        series.append(s[~s.index.duplicated(keep="last")])
    first = max(int(s.index[0]) for s in series)
    last = min(int(s.index[-1]) for s in series)
    span = last - first
    if span < max(min_days, 2.0):
        return None, f"stored history covers {max(span, 0)} common days < {min_days:g}"
    grid = np.arange(first, last + 1)
    # carry each symbol's last value forward to every grid day (its latest update on or before it)
    closes = np.column_stack([s.reindex(np.arange(int(s.index[0]), last + 1)).ffill().loc[grid] for s in series])
    returns = np.diff(np.log(closes), axis=0)
    return ewma_covariance(returns, lam), ""


def _shipped_covariance(names: list[str], end: str | None, lam: float, reason: str) -> tuple[Array, str]:
    known: list[str] = []
    unknown: list[str] = []
    for name in names:
        try:
            price_data.resolve_asset(name)
        except InputError:
            unknown.append(name)
        else:
            known.append(name)
    if not known:
        raise InputError(
            f"no price data for any of {', '.join(names)} ({reason}; shipped data has {', '.join(price_data.ASSETS)}):"
            " store at least the minimum days of oracle history first"
        )
    unique_known = list(dict.fromkeys(known))
    sub = asset_covariance(unique_known, end, SHIPPED_WINDOW_DAYS, lam)
    last_day = price_data.load_closes(list(dict.fromkeys(price_data.resolve_asset(n) for n in unique_known)), None, end)
    a = len(names)
    cov = np.zeros((a, a))
    idx = [unique_known.index(n) if n in unique_known else -1 for n in names]
    fill = float(np.median(np.diag(sub)))
    for i, ii in enumerate(idx):
        for j, jj in enumerate(idx):
            if ii >= 0 and jj >= 0:
                cov[i, j] = sub[ii, jj]
        if ii < 0:
            cov[i, i] = fill
    last = pd.Timestamp(last_day.index[-1]).strftime("%Y-%m-%d")
    parts = [f"{', '.join(unique_known)}: EWMA lam {lam:g} over {SHIPPED_WINDOW_DAYS} days to {last}"]
    if reason:
        parts.append(reason)
    if unknown:
        parts.append(
            f"no data for {', '.join(dict.fromkeys(unknown))}: median variance (sigma {math.sqrt(fill):.4f}/day),"
            " zero correlation"
        )
    return cov, f"shipped data ({'; '.join(parts)})"


# -- internals ----------------------------------------------------------------------------


def _hf_array(hf: ArrayLike) -> Array:
    try:
        arr = np.asarray(hf, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"health factors must be numeric: {exc}") from exc
    if np.isnan(arr).any() or (arr < 0.0).any():
        raise InputError("health factors must be >= 0 (inf for no debt), got NaN or a negative value")
    return arr


def _end_cutoff(end: str | None) -> float | None:
    """Unix time of the start of the day after ``end`` (history strictly before it is kept)."""
    if end is None:
        return None
    return float((parse_day(end) + pd.Timedelta(days=1)).timestamp())
