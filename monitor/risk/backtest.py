"""Backtest of alert rules on REAL price history: how well does a rule warn before liquidation?

Method
------
Data
    Daily OHLC from the shipped Yahoo Finance files (:mod:`monitor.price_data`). Each asset of
    the book is mapped by :func:`~monitor.price_data.resolve_asset` (``WETH`` -> ``ETH``). An
    asset without data is HELD CONSTANT (multiplier 1, zero returns): symbols that do not
    resolve at all, and, per start, assets whose history does not cover the start's volatility
    seed and window (DAI, SOL, USDC and USDT begin on 2021-01-01, so they are constant in the
    2020 crash and in the 2020 part of ``"all"``; :attr:`BacktestResult.notes` says how often).
    The few calendar days missing from a file take the previous close, with low = high = close.

Periods (:data:`PERIODS`)
    The five named crash windows of :data:`monitor.risk.scenarios.HISTORICAL_EVENTS`, padded by
    30 days before the event so the early starts see the crash from a calm book, and the whole
    record ``"all"`` = 2020-01-01 .. 2023-08-29.

Rolling starts
    Every ``step_days`` (default 7) from the first day of the period up to its last day, the
    book is opened at that day's close and followed for ``window_days`` (default 30) days; a
    start whose window would run past the data is dropped. Every position keeps its CURRENT
    composition: its legs are scaled by the price multipliers relative to the start close, so
    at the start it has exactly the health factor it has now. Windows overlap (a calendar day
    lies in about ``window_days / step_days`` windows), so the counts are per (start, position)
    pair, not per independent event. Positions without debt (HF = inf) and positions already
    below HF 1 now are left out.

Observations
    The start close (day 0) is observed once, for alerts. Each following day ``d`` is observed
    twice, in this order:

    1. intraday, the ADVERSE point: a position is LIQUIDATED at the first observation where its
       HF < 1. A daily file does not say when each extreme happened, so the HF is taken at the
       lower of (all assets at their daily LOW at the same moment), (all assets at their daily
       HIGH at the same moment) and (the close). The lows serve long-collateral positions, the
       highs the positions whose debt is a volatile asset (their adverse point is a rally), and
       taking every asset at the same extreme keeps a position's legs in the same asset
       consistent. Lows of different assets at the same moment are conservative for a position
       long crypto against stablecoin debt (the extremes need not coincide, so some of these
       liquidations did not happen); for mixed positions it is neither strictly conservative
       nor optimistic (the true worst case, collateral at its low while the debt asset is at
       its high, is not modelled).
    2. the CLOSE, where alert rules are evaluated: a daily backtest only sees closes, like a
       monitor that looks once a day.

    A liquidation at day ``d`` is therefore never "warned" by the close of day ``d``.

No lookahead
    The volatility a rule uses at the close of day ``t`` comes only from returns up to day
    ``t - 1`` (one day staler than strictly needed): the RiskMetrics EWMA covariance
    (lambda 0.94, :func:`monitor.risk.volatility.ewma_covariance`) of daily close-to-close log
    returns, seeded with the 60 returns before the start and updated once per day (with a seed
    of 30 returns or more this equals ``ewma_covariance`` of all returns from the seed's first
    to day ``t - 1``). Prices after the close of day ``t`` never change a decision made at or
    before day ``t`` (``test_no_lookahead`` checks it).

Rules
    - fixed HF levels: warn when HF <= ``level`` (default 1.1 and 1.2);
    - optimized: warn when HF <= ``max(threshold_hf(sigma_t, horizon, tolerance), floor_hf)``
      of that position, with ``sigma_t`` = :func:`~monitor.risk.thresholds.log_hf_sigma` under
      the covariance at ``t``, for a grid of tolerances (:data:`DEFAULT_TOLERANCES`). The
      horizon is 24 h by default: in a daily backtest the monitor's next look is a day away, so
      the question a warning answers is "can this position be liquidated before I look again?".
      A SMALLER tolerance gives a HIGHER threshold, i.e. more and earlier warnings.

Scoring, per (start, position)
    One warning episode: the FIRST warning of the window. If the position is liquidated later
    in the window it is a warned liquidation (true positive) with lead time
    ``liquidation day - warning day`` (>= 1: a warning at the close of day ``d`` and a
    liquidation at the low of day ``d + 1`` has lead 1); otherwise it is a false alarm. A
    liquidation without an earlier warning is a miss. Recall = warned / liquidations; false
    alarms are also given per 1,000 position-days (a position contributes the days it is
    followed: to its liquidation day, or the whole window). Because the episode lasts the
    whole window, a warning 25 days before a liquidation counts as a success: the rule is
    credited for a warning state the user lived in, not for a short-notice forecast.

Cost and optimizer
    ``cost = miss_cost * misses + false_alarm_cost * false_alarms``, by default 50 and 1 (a
    missed liquidation is worth 50 needless alerts). The best tolerance is the one with the
    lowest cost (ties: fewer false alarms, then the larger tolerance). It is chosen IN SAMPLE,
    on the same history it is scored on, so its score is optimistic; the whole frontier
    (tolerance -> result) is returned so a reader can see how flat the choice is. When the best
    tolerance is the smallest tried, a note says so: the cost would prefer still more warnings.
    Expect that with the defaults: a warning is credited for a liquidation up to 30 days later
    while the threshold speaks of 24 h, misses cost 50 times more, and daily crypto returns are
    fat-tailed with volatility jumps, so a 24 h Gaussian "tolerance" is best read as a multiple
    ``z`` of the daily sigma of ln HF rather than as a calibrated probability.

Performance: one start costs a few matrix products over ``[window + 1, positions]``; 2,000
positions over ``"all"`` (187 starts x 30 days, 8 tolerances) take about 2 s on one core.

Everything is vectorised over positions and the days of a start (numpy only); no I/O beyond
reading the shipped prices.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from monitor import price_data
from monitor.errors import InputError
from monitor.risk.book import Array, Book, hf_of
from monitor.risk.checks import finite_number, positive_int
from monitor.risk.scenarios import HISTORICAL_EVENTS
from monitor.risk.thresholds import log_hf_sensitivities, threshold_hf
from monitor.risk.volatility import DEFAULT_LAMBDA, ewma_covariance

__all__ = [
    "DEFAULT_TOLERANCES",
    "PERIODS",
    "TABLE_HEADERS",
    "BacktestResult",
    "RuleResult",
    "backtest",
    "backtest_many",
]

DEFAULT_TOLERANCES: tuple[float, ...] = (0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 1e-4, 1e-5, 1e-6)
SEED_DAYS = 60  # returns before the start that seed the EWMA covariance
LONG_RUN_DAYS = 365  # returns behind the long-run volatility floor (when vol_floor > 0)
PAD_DAYS = 30  # days added before each crash window
ALL_PERIOD: tuple[str, str] = ("2020-01-01", "2023-08-29")

TABLE_HEADERS: tuple[str, ...] = (
    "rule", "liquidations", "warned", "misses", "false alarms", "recall",
    "FA / 1000 pos-days", "median lead (d)", "p10 lead (d)", "cost",
)  # fmt: skip


def _padded(start: str, end: str) -> tuple[str, str]:
    first = pd.Timestamp(start) - pd.Timedelta(days=PAD_DAYS)
    return first.strftime("%Y-%m-%d"), end


PERIODS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {**{name: _padded(ev.start, ev.end) for name, ev in HISTORICAL_EVENTS.items()}, "all": ALL_PERIOD}
)


@dataclass(frozen=True, slots=True)
class RuleResult:
    """Scores of one alert rule over all (start, position) pairs of a period."""

    rule: str
    liquidations: int
    warned: int
    misses: int
    false_alarms: int
    recall: float  # warned / liquidations; NaN without liquidations
    false_alarms_per_1000_position_days: float
    median_lead_days: float | None
    p10_lead_days: float | None
    cost: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "liquidations": self.liquidations,
            "warned": self.warned,
            "misses": self.misses,
            "false_alarms": self.false_alarms,
            "recall": None if math.isnan(self.recall) else self.recall,
            "false_alarms_per_1000_position_days": self.false_alarms_per_1000_position_days,
            "median_lead_days": self.median_lead_days,
            "p10_lead_days": self.p10_lead_days,
            "cost": self.cost,
        }

    def row(self) -> tuple[str, ...]:
        """One table row, in the order of :data:`TABLE_HEADERS`."""
        recall = "-" if math.isnan(self.recall) else f"{self.recall:.1%}"
        return (
            self.rule, str(self.liquidations), str(self.warned), str(self.misses), str(self.false_alarms), recall,
            f"{self.false_alarms_per_1000_position_days:.2f}", _days(self.median_lead_days),
            _days(self.p10_lead_days), f"{self.cost:g}",
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """The rules compared on one period. ``rules`` holds the fixed levels, then the optimized
    rule at :attr:`best_tolerance`; :attr:`frontier` holds every tolerance tried."""

    period: str
    starts: int
    positions: int
    position_days: int
    rules: tuple[RuleResult, ...]
    best_tolerance: float
    frontier: tuple[tuple[float, RuleResult], ...]
    notes: tuple[str, ...] = ()  # data caveats (assets held constant)

    def table_rows(self) -> list[tuple[str, ...]]:
        """The compared rules as rows of strings (headers: :data:`TABLE_HEADERS`)."""
        return [r.row() for r in self.rules]

    def frontier_rows(self) -> list[tuple[str, ...]]:
        """Every tolerance tried as rows of strings (headers: :data:`TABLE_HEADERS`)."""
        return [r.row() for _, r in self.frontier]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (floats, ints, strings, None, lists, dicts)."""
        return {
            "period": self.period,
            "dates": list(PERIODS[self.period]) if self.period in PERIODS else None,
            "starts": self.starts,
            "positions": self.positions,
            "position_days": self.position_days,
            "best_tolerance": self.best_tolerance,
            "rules": [r.as_dict() for r in self.rules],
            "frontier": [{"tolerance": tol, **r.as_dict()} for tol, r in self.frontier],
            "notes": list(self.notes),
        }


# -- public entry points --------------------------------------------------------------


def backtest(
    book: Book,
    period: str = "all",
    *,
    tolerances: Sequence[float] = DEFAULT_TOLERANCES,
    fixed_levels: Sequence[float] = (1.1, 1.2),
    step_days: int = 7,
    window_days: int = 30,
    miss_cost: float = 50.0,
    false_alarm_cost: float = 1.0,
    horizon_hours: float = 24.0,
    floor_hf: float = 1.0,
    vol_floor: float = 1.0,
    long_run_days: int = LONG_RUN_DAYS,
) -> BacktestResult:
    """Replay the shipped daily prices of ``period`` through ``book`` and score the rules
    (see the module docstring for the method)."""
    if not isinstance(period, str) or period not in PERIODS:
        raise InputError(f"unknown backtest period {period!r}; known: {', '.join(PERIODS)}")
    step = positive_int(step_days, "step_days")
    window = positive_int(window_days, "window_days")
    _check_book(book)
    first, last = (pd.Timestamp(d) for d in PERIODS[period])
    history = max(SEED_DAYS, long_run_days if vol_floor > 0 else 0)
    cal_start = first - pd.Timedelta(days=history + 1)
    dates, closes, lows, highs = _price_arrays(book.symbols, cal_start, last + pd.Timedelta(days=window))
    day0 = int(dates.get_loc(first))
    starts = [s for s in range(day0, len(dates), step) if dates[s] <= last and s + window < len(dates)]
    if not starts:
        raise InputError(
            f"period {period} has no start with a full {window}-day window of price data "
            f"(data ends {dates[-1]:%Y-%m-%d}); use a shorter window_days"
        )
    return _run(
        book, closes, lows, highs, starts=starts, period=period, tolerances=tolerances,
        fixed_levels=fixed_levels, window_days=window, miss_cost=miss_cost, false_alarm_cost=false_alarm_cost,
        horizon_hours=horizon_hours, floor_hf=floor_hf, start_dates=[dates[s] for s in starts],
        vol_floor=vol_floor, long_run_days=long_run_days,
    )  # fmt: skip


def backtest_many(book: Book, periods: Sequence[str], **kw: Any) -> list[BacktestResult]:
    """:func:`backtest` for each period, in order (same book and settings)."""
    if isinstance(periods, str):
        raise InputError(f"periods must be a sequence of names, got the string {periods!r}")
    names = list(periods)
    if not names:
        raise InputError(f"no periods given; known: {', '.join(PERIODS)}")
    for name in names:
        if name not in PERIODS:
            raise InputError(f"unknown backtest period {name!r}; known: {', '.join(PERIODS)}")
    return [backtest(book, name, **kw) for name in names]


# -- the engine (arrays in, result out; exposed for tests) ----------------------------


@dataclass(frozen=True, slots=True)
class _Replay:
    """Per (start, position): the liquidation day and every rule's first warning day."""

    levels: tuple[float, ...]  # fixed rules, first in ``first_warn``
    tolerances: tuple[float, ...]  # optimized rules, after them
    window: int
    liq_day: NDArray[np.int32]  # [S, P]: day 1..W of the liquidation, W+1 if none in the window
    first_warn: NDArray[np.int32]  # [R, S, P]: day 0..W of the first warning close before it, W+1 if none
    held: NDArray[np.int64]  # [A] starts in which each asset was held constant
    held_last: NDArray[np.int64]  # [A] index of the last such start, -1 if none


def _run(
    book: Book,
    closes: Array,
    lows: Array,
    highs: Array | None = None,
    *,
    starts: Sequence[int],
    period: str = "custom",
    tolerances: Sequence[float] = DEFAULT_TOLERANCES,
    fixed_levels: Sequence[float] = (1.1, 1.2),
    window_days: int = 30,
    miss_cost: float = 50.0,
    false_alarm_cost: float = 1.0,
    horizon_hours: float = 24.0,
    floor_hf: float = 1.0,
    lam: float = DEFAULT_LAMBDA,
    seed_days: int = SEED_DAYS,
    start_dates: Sequence[pd.Timestamp] | None = None,
    vol_floor: float = 0.0,
    long_run_days: int = LONG_RUN_DAYS,
) -> BacktestResult:
    """Score the rules on price arrays ``[T, A]`` (see :func:`_replay`)."""
    m_cost, fa_cost = _check_costs(miss_cost, false_alarm_cost)
    rep = _replay(
        book, closes, lows, highs, starts=starts, tolerances=tolerances, fixed_levels=fixed_levels,
        window_days=window_days, horizon_hours=horizon_hours, floor_hf=floor_hf, lam=lam, seed_days=seed_days,
        vol_floor=vol_floor, long_run_days=long_run_days,
    )  # fmt: skip
    window = rep.window
    liquidated = rep.liq_day <= window
    position_days = int(np.minimum(rep.liq_day, window).sum(dtype=np.int64))
    n_liq = int(liquidated.sum())

    def result(i: int, name: str) -> RuleResult:
        first = rep.first_warn[i]
        warned = first <= window
        tp = warned & liquidated
        lead = (rep.liq_day[tp] - first[tp]).astype(np.float64)
        n_tp, n_fa = int(tp.sum()), int((warned & ~liquidated).sum())
        return RuleResult(
            rule=name,
            liquidations=n_liq,
            warned=n_tp,
            misses=n_liq - n_tp,
            false_alarms=n_fa,
            recall=n_tp / n_liq if n_liq else math.nan,
            false_alarms_per_1000_position_days=1000.0 * n_fa / position_days if position_days else 0.0,
            median_lead_days=float(np.median(lead)) if lead.size else None,
            p10_lead_days=float(np.percentile(lead, 10)) if lead.size else None,
            cost=m_cost * (n_liq - n_tp) + fa_cost * n_fa,
        )

    n_fixed = len(rep.levels)
    fixed = [result(i, f"HF <= {level:g}") for i, level in enumerate(rep.levels)]
    floor = float(floor_hf)
    suffix = f", floor {floor:g}" if floor > 1.0 else ""
    frontier = [(tol, result(n_fixed + j, f"optimized tol={tol:g}{suffix}")) for j, tol in enumerate(rep.tolerances)]
    best_tol, best = min(frontier, key=lambda tr: (tr[1].cost, tr[1].false_alarms, -tr[0]))
    notes = list(_held_notes(book.symbols, rep.held, rep.held_last, start_dates))
    if len(frontier) > 1 and best_tol == min(rep.tolerances):
        notes.append(
            f"the best tolerance {best_tol:g} is the smallest tried: at these costs still more warnings would pay; "
            "try smaller tolerances (or a longer horizon_hours)"
        )
    return BacktestResult(
        period=period,
        starts=int(rep.liq_day.shape[0]),
        positions=int(rep.liq_day.shape[1]),
        position_days=position_days,
        rules=(*fixed, best),
        best_tolerance=best_tol,
        frontier=tuple(frontier),
        notes=tuple(notes),
    )


def _replay(
    book: Book,
    closes: Array,
    lows: Array,
    highs: Array | None = None,
    *,
    starts: Sequence[int],
    tolerances: Sequence[float] = DEFAULT_TOLERANCES,
    fixed_levels: Sequence[float] = (1.1, 1.2),
    window_days: int = 30,
    horizon_hours: float = 24.0,
    floor_hf: float = 1.0,
    lam: float = DEFAULT_LAMBDA,
    seed_days: int = SEED_DAYS,
    vol_floor: float = 0.0,
    long_run_days: int = LONG_RUN_DAYS,
) -> _Replay:
    """Replay price arrays ``[T, A]`` (rows consecutive days, columns ``book.symbols``; NaN =
    no data, and that asset is held constant in every start whose seed or window touches a
    NaN) through the book's positions with debt and HF >= 1. ``starts`` index rows; each needs
    ``seed_days + 1`` rows before it and ``window_days`` rows after it. ``highs=None`` means
    no intraday high is known (the adverse point is then the lows or the close)."""
    tols = _check_tolerances(tolerances)
    levels = _check_levels(fixed_levels)
    horizon = finite_number(horizon_hours, "horizon_hours")
    if horizon <= 0.0:
        raise InputError(f"horizon_hours must be > 0, got {horizon_hours}")
    floor = finite_number(floor_hf, "floor_hf")
    if floor < 0.0:
        raise InputError(f"floor_hf must be >= 0, got {floor_hf}")
    window = positive_int(window_days, "window_days")
    seed = positive_int(seed_days, "seed_days")
    floor_share = finite_number(vol_floor, "vol_floor")
    if floor_share < 0:
        raise InputError(f"vol_floor must be >= 0, got {vol_floor}")
    long_run = positive_int(long_run_days, "long_run_days") if floor_share > 0 else 0
    book = _check_book(book)
    n_assets = len(book.symbols)
    c_px = _price_matrix(closes, "closes", n_assets)
    lo_px = _price_matrix(lows, "lows", n_assets, c_px.shape[0])
    hi_px = c_px if highs is None else _price_matrix(highs, "highs", n_assets, c_px.shape[0])
    lo_px = np.where(np.isfinite(lo_px), lo_px, c_px)
    hi_px = np.where(np.isfinite(hi_px), hi_px, c_px)
    if isinstance(starts, str):
        raise InputError(f"starts must be row numbers, got the string {starts!r}")
    start_rows = [positive_int(s, "start row") for s in starts]
    if not start_rows:
        raise InputError("no backtest starts given")
    need = max(seed, long_run)
    for s in start_rows:
        if s - need - 1 < 0 or s + window >= c_px.shape[0]:
            raise InputError(
                f"start row {s} needs {need + 1} rows of history before it and {window} after it "
                f"({c_px.shape[0]} rows given)"
            )

    at_risk = (book.debt.sum(axis=1) > 0) & (book.health_factors() >= 1.0)
    if not at_risk.any():
        raise InputError("the book has no position with debt and HF >= 1: nothing can be liquidated or warned")
    sub = book.with_rows(np.flatnonzero(at_risk))
    n_pos, n_days = sub.size, window + 1
    coll, debt, lt = sub.collateral, sub.debt, sub.lt
    # HF under K multiplier rows as three matrix products (BLAS), the arithmetic of
    # Book.health_factors: sum(c * LT) with the average LT floored to whole bps, over the debt.
    coll_t, coll_bps_t, debt_t = coll.T.copy(), (coll * np.rint(lt * 1e4)).T.copy(), debt.T.copy()

    def hf_at(mult: Array) -> Array:
        """HF [K, P] under K multiplier rows [K, A]."""
        total = mult @ coll_t
        with np.errstate(divide="ignore", invalid="ignore"):
            avg_bps = np.floor(mult @ coll_bps_t / np.where(total > 0, total, 1.0) + 1e-9)
        return hf_of(total * avg_bps / 1e4, mult @ debt_t)

    stacked = Book(
        sub.market, sub.block, sub.accounts * n_days, sub.symbols, sub.prices,
        np.tile(coll, (n_days, 1)), np.tile(debt, (n_days, 1)), np.tile(lt, (n_days, 1)),
        np.tile(sub.ltv, (n_days, 1)), np.tile(sub.bonus, (n_days, 1)),
    )  # fmt: skip  # every position once per day of the window, day-major
    n_rules = len(levels) + len(tols)
    liq_days = np.empty((len(start_rows), n_pos), dtype=np.int32)
    first_warn = np.empty((n_rules, len(start_rows), n_pos), dtype=np.int32)
    held = np.zeros(n_assets, dtype=np.int64)
    held_last = np.full(n_assets, -1, dtype=np.int64)
    days = np.arange(n_days)[:, None]

    for k, s in enumerate(start_rows):
        span = c_px[s - seed - 1 : s + window + 1]
        live = np.isfinite(span).all(axis=0)
        held += ~live
        held_last[~live] = k
        base = np.where(live, c_px[s], 1.0)
        m_close = np.where(live, c_px[s : s + n_days] / base, 1.0)  # [W+1, A]; day 0 is all ones
        m_low = np.where(live, lo_px[s + 1 : s + n_days] / base, 1.0)  # [W, A]; days 1..W
        m_high = np.where(live, hi_px[s + 1 : s + n_days] / base, 1.0)

        # 1. intraday adverse point of days 1..W -> liquidation day
        hf_close = hf_at(m_close)  # [W+1, P]
        hf_adverse = np.minimum(np.minimum(hf_at(m_low), hf_at(m_high)), hf_close[1:])  # [W, P]
        below = hf_adverse < 1.0
        liq_day = np.where(below.any(axis=0), below.argmax(axis=0) + 1, window + 1)
        liq_days[k] = liq_day
        alive = days < liq_day[None, :]  # [W+1, P]: the closes before the liquidation

        # 2. EWMA covariance at the close of day t from the returns up to day t-1 (no lookahead)
        rets = np.diff(np.log(np.where(live, span, 1.0)), axis=0)  # rets[i]: into row s - seed + i
        covs = np.empty((n_days, n_assets, n_assets))
        covs[0] = ewma_covariance(rets[:seed], lam)
        for t in range(1, n_days):
            r = rets[seed + t - 1]
            covs[t] = lam * covs[t - 1] + (1.0 - lam) * np.outer(r, r)
        # log_hf_sigma of the moved book for every day at once: sqrt(w_t S_t w_t^T)
        moved = np.repeat(m_close, n_pos, axis=0)  # [(W+1) * P, A], day-major like ``stacked``
        w = log_hf_sensitivities(replace(stacked, collateral=stacked.collateral * moved, debt=stacked.debt * moved))
        w = w.reshape(n_days, n_pos, n_assets)
        var = np.einsum("tpa,tpa->tp", np.matmul(w, 0.5 * (covs + covs.transpose(0, 2, 1))), w)
        sigma = np.sqrt(np.clip(var, 0.0, None))  # [W+1, P]
        if floor_share > 0:  # never below a share of the long-run volatility: no "calm before the storm"
            cov_long = _long_run_covariance(c_px[s - long_run - 1 : s + 1], np.asarray(live, dtype=bool))
            var_long = np.einsum("tpa,tpa->tp", np.matmul(w, cov_long), w)
            sigma = np.maximum(sigma, floor_share * np.sqrt(np.clip(var_long, 0.0, None)))

        # 3. alerts at the closes
        warn_masks = [hf_close <= level for level in levels]
        for tol in tols:
            thr = np.asarray(threshold_hf(sigma.ravel(), horizon, tol), dtype=np.float64).reshape(sigma.shape)
            warn_masks.append(hf_close <= np.maximum(thr, floor))
        for i, mask in enumerate(warn_masks):
            warn = mask & alive
            first_warn[i, k] = np.where(warn.any(axis=0), warn.argmax(axis=0), window + 1)

    return _Replay(levels, tols, window, liq_days, first_warn, held, held_last)


def _long_run_covariance(closes: Array, live: NDArray[np.bool_]) -> Array:
    """Equal-weight daily log-return covariance over the rows given (the year before a start),
    pairwise over the days both assets have data; 0 for assets held constant."""
    rets = pd.DataFrame(np.diff(np.log(closes), axis=0))
    cov = rets.cov(min_periods=30).to_numpy(dtype=np.float64)
    cov = np.where(np.isfinite(cov), cov, 0.0)
    mask = np.outer(live, live)
    return np.where(mask, cov, 0.0)


# -- data -----------------------------------------------------------------------------


def _price_arrays(
    symbols: Sequence[str], first: pd.Timestamp, last: pd.Timestamp
) -> tuple[pd.DatetimeIndex, Array, Array, Array]:
    """Calendar days ``first .. min(last, end of data)`` and closes, lows, highs ``[T, A]``.

    NaN before an asset's first day (and everywhere for a symbol without data); a day missing
    inside an asset's record takes the previous close, with low = high = close.
    """
    frames: list[pd.DataFrame | None] = []
    ends: list[pd.Timestamp] = []
    for symbol in symbols:
        try:
            asset = price_data.resolve_asset(symbol)
        except InputError:
            frames.append(None)
            continue
        daily = price_data.load_daily(asset)
        frames.append(daily)
        ends.append(pd.Timestamp(daily.index[-1]))
    if not ends:
        raise InputError(
            f"no asset of the book ({', '.join(symbols)}) has price data; known assets: {', '.join(price_data.ASSETS)}"
        )
    dates = pd.date_range(first, min(last, min(ends)), freq="D")
    shape = (len(dates), len(symbols))
    closes, lows, highs = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    for j, daily in enumerate(frames):
        if daily is None:
            continue
        frame = daily.reindex(dates)
        close = frame["close"].ffill()
        closes[:, j] = close.to_numpy(dtype=np.float64)
        lows[:, j] = frame["low"].fillna(close).to_numpy(dtype=np.float64)
        highs[:, j] = frame["high"].fillna(close).to_numpy(dtype=np.float64)
    return dates, closes, lows, highs


def _held_notes(
    symbols: Sequence[str],
    held: NDArray[np.int64],
    held_last: NDArray[np.int64],
    start_dates: Sequence[pd.Timestamp] | None,
) -> tuple[str, ...]:
    """One line per asset held constant in some starts."""
    n_starts = len(start_dates) if start_dates is not None else None
    notes = []
    for j, symbol in enumerate(symbols):
        count = int(held[j])
        if not count:
            continue
        last = "" if start_dates is None else f", the last on {start_dates[int(held_last[j])]:%Y-%m-%d}"
        of = "" if n_starts is None else f" of {n_starts}"
        notes.append(f"{symbol}: no price data for {count}{of} starts (seed + window); held constant there{last}")
    return tuple(notes)


# -- checks ---------------------------------------------------------------------------


def _check_book(book: Book) -> Book:
    if not isinstance(book, Book):
        raise InputError(f"book must be a Book, got {type(book).__name__}")
    if book.size == 0 or not book.symbols:
        raise InputError("the book is empty: no positions to backtest")
    return book


def _price_matrix(values: Array, what: str, n_assets: int, rows: int | None = None) -> Array:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} must be numeric: {exc}") from exc
    if arr.ndim != 2 or arr.shape[1] != n_assets or (rows is not None and arr.shape[0] != rows):
        want = f"[{rows if rows is not None else 'T'}, {n_assets}]"
        raise InputError(f"{what} must have shape {want} (days x book assets), got {arr.shape}")
    if np.any(arr[np.isfinite(arr)] <= 0.0) or np.isinf(arr).any():
        raise InputError(f"{what} must be positive and finite (NaN marks a missing price)")
    return arr


def _check_tolerances(tolerances: Sequence[float]) -> tuple[float, ...]:
    if isinstance(tolerances, str):
        raise InputError(f"tolerances must be a sequence of numbers, got the string {tolerances!r}")
    tols = tuple(finite_number(t, "tolerance") for t in tolerances)
    if not tols:
        raise InputError("no tolerances given; e.g. 0.05, 0.01, 0.001")
    for t in tols:
        if not 0.0 < t < 1.0:
            raise InputError(f"tolerance must be a probability in (0, 1), got {t}")
    return tols


def _check_levels(levels: Sequence[float]) -> tuple[float, ...]:
    if isinstance(levels, str):
        raise InputError(f"fixed_levels must be a sequence of numbers, got the string {levels!r}")
    out = tuple(finite_number(x, "fixed level") for x in levels)
    for x in out:
        if x <= 0.0:
            raise InputError(f"fixed HF level must be > 0, got {x}")
    return out


def _check_costs(miss_cost: float, false_alarm_cost: float) -> tuple[float, float]:
    miss = finite_number(miss_cost, "miss_cost")
    fa = finite_number(false_alarm_cost, "false_alarm_cost")
    if miss < 0.0 or fa < 0.0:
        raise InputError(f"costs must be >= 0, got miss_cost={miss_cost}, false_alarm_cost={false_alarm_cost}")
    if miss == 0.0 and fa == 0.0:
        raise InputError("miss_cost and false_alarm_cost are both 0: every rule would cost nothing")
    return miss, fa


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
