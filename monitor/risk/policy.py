"""The threshold policy: per position, the HF at which watch, warning and critical start.

One function, :func:`position_levels`, is called by ``liqmon run`` (through
:class:`LevelCache`), ``scan``, the alert messages and the backtest, with the same
:class:`PolicyConfig` (the config file's ``alerts.policy`` section).

Method
------
1. **Filtered historical simulation.** The joint log returns ``[T, A]`` of the market's
   assets (oldest first, NaN where missing) are standardised per asset by their ex-ante
   RiskMetrics EWMA volatility (``z_t = r_t / sigma_t``, ``sigma_t`` from returns before
   ``t``, never below half the asset's long-run volatility so that a flat peg does not turn
   a later tick into a 1000-sigma residual). Today's volatility is
   ``sigma^2 = (1 - w) * ewma^2 + w * long_run^2`` (``w = long_run_weight``; long run = the
   mean squared return of the last ``long_run_days`` winsorised at 5 robust sigmas, so that
   a peg's rare break stays in the residuals instead of also inflating the scale, or the
   Parkinson range variance where OHLC exists and it is larger, capped at twice that sigma).
   Paths are a block bootstrap of whole ROWS of ``z`` (all assets on the same date:
   correlation and fat tails as they were), blocks of ``block_hours``, rescaled by today's
   volatility; when the longest horizon fits in one block and history has at most ``paths``
   windows, every window of history is taken equally often instead (no noise from which
   crash days happened to be drawn). A missing residual is refilled from the same asset's
   own residuals (in order, repeated; that date loses its correlation); an asset without
   any history: a stablecoin follows a stablecoin that has data (else a 0.2 %/day prior), any
   other asset takes residuals of the others from random dates (uncorrelated) and their
   median volatility.
2. **Exact revaluation.** Along each path the position's HF is recomputed from its own
   legs: ``HF_t = HF_0 * (sum_a wc_a M_a,t) / (sum_a wd_a M_a,t)`` with ``M`` the price
   multipliers, ``wc`` the shares of the LT-weighted collateral and ``wd`` the debt
   shares, so loops (the same asset on both sides) and stable/stable eMode nearly cancel.
   Between two simulated points the minimum is that of a Brownian bridge with the class's
   step volatility (sampled exactly), so a daily step still sees its intraday low.
   A horizon that is not a whole number of steps ends with a partial step whose residual is
   scaled by ``sqrt(fraction)`` (square-root-of-time: the approximation for sub-step
   horizons such as 1 h on daily data).
3. **Levels in closed form.** ``HF_t / HF_0`` does not depend on ``HF_0`` for a fixed
   composition, so one sample of the drawdown ``y = -ln min_t(HF_t / HF_0)`` per class gives
   ``P(HF < 1 within h) = P(y > ln HF_0)`` for every ``HF_0``, and the level at which the
   probability reaches ``p`` is ``exp(q_{1-p}(y))``. Compositions are rounded to a grid
   (``composition_grid``) so positions share one sample per class; one bootstrap draw
   serves every class of a call.
4. **Tail.** Below ``tail_share`` of the paths the upper tail of ``y`` is a Pareto (Hill)
   fit on the largest drawdowns, so small probabilities get an extrapolated level; a level
   is never below the simulated evidence (the empirical quantile, or the largest simulated
   drawdown for probabilities below ``1 / paths``).
5. **Expected cost.** A missed liquidation costs the penalty on what a liquidation takes:
   ``close_factor * debt * (bonus - 1)`` with the bonus of the position's largest
   collateral (plus the same penalty again on the part of the seized collateral beyond the
   DEX depth at bonus slippage, when known). An alarm costs ``alarm_cost_usd[s]``.
   Severity ``s`` starts where ``P(HF < 1 within h_s) * miss_cost >= alarm_cost_s``, i.e. at
   ``p_s = alarm_cost_s / miss_cost``, BOUNDED: ``p_s = clip(alarm_cost_s / miss_cost,
   min_probability_s, max_probability_s)``. Never alert on less than the minimum: with
   heavy-tailed sizes the raw target spans orders of magnitude (a $1M position would warn at
   p = 0.04 %, weeks before any crash, at HF 1.8), and such small probabilities are the Pareto
   tail's extrapolation, not evidence (4 years of history hold ~700 windows of 48 h; 2 % is
   ~15 of them). Always alert at the maximum whatever the size: nobody wants to be liquidated
   unwarned because the position is small (a $300 debt's penalty is below one alarm's cost,
   so its raw target exceeds 1). Defaults: watch 5-20 % (within a week), warning 1-5 % (a
   one-in-twenty chance within two days warns any position), critical 2-10 % (within hours).
   The minimums were chosen on the walk-forward FIT period 2017-2019, never on the test
   period (BENCHMARKS.md "Backtest": alarms on less than a few per cent cost more than the
   penalties they save there, by the stated cost the fixed level is also chosen by); the
   warning minimum is held at 1 % by issue 10's level acceptance (a $100k SOL/USDC position
   warns at HF >= 1.20 on an ordinary day: at most ~1.4 %). The maximums are the argument
   above (the fit is indifferent to them).
   Horizons per severity (``reaction_hours``, each plus ``observe_hours``, the time until the
   monitor looks again): watch = a week of lead (168 h: time to plan a repayment), warning =
   two days (48 h: the lead a user needs to move funds and act, so a warning arrives the
   day before the day of risk, not on it), critical = hours (4 h: act now). Levels are made
   non-increasing from watch to critical, never below 1, and never below an explicit
   ``hard_levels`` entry (none by default). A further fall inside an open warning episode
   escalates to critical, which the daemon sends as a new notification (``severity_up``).
6. **Liquidity, where observable** (:class:`Liquidity`): liquidatable debt within
   ``cascade_move`` of the price adds a jump (its price impact through the depth at bonus
   slippage) once an asset falls that far; utilisation above ``utilisation_knee`` makes the
   effective horizon longer (x2 at 100 %: the user cannot withdraw to deleverage).

Everything is numpy on arrays handed in; the clock is a parameter; the draw is seeded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from monitor import price_data
from monitor.errors import InputError
from monitor.risk.anomalies import STABLECOINS
from monitor.risk.book import Book
from monitor.risk.checks import finite_number, parse_day

__all__ = [
    "LEVEL_NAMES",
    "LevelCache",
    "Liquidity",
    "MarketState",
    "PolicyConfig",
    "PolicyKnobs",
    "PolicyLevels",
    "PolicyOverride",
    "level_reason",
    "levels_for_costs",
    "market_state_for",
    "market_state_from_history",
    "market_state_from_prices",
    "miss_costs",
    "position_levels",
    "probability_at",
    "volatility_now",
]

Array = NDArray[np.float64]
IntArray = NDArray[np.int64]
FArray = NDArray[np.floating[Any]]  # float32 or float64
Triple = tuple[float, float, float]
OptTriple = tuple[float | None, float | None, float | None]  # None: not set here, the next layer decides
KNOB_NAMES: tuple[str, str, str, str] = ("reaction_hours", "alarm_cost_usd", "min_probability", "max_probability")
OVERRIDE_RANKS: dict[str, int] = {"market": 1, "route": 2, "account": 3}  # precedence: account > route > market

LEVEL_NAMES: tuple[str, str, str] = ("watch", "warning", "critical")
HOURS_PER_DAY = 24.0
SECONDS_PER_DAY = 86_400.0
SEED_RETURNS = 30
EWMA_CHUNK = 256  # rows per closed-form block of the EWMA recursion
MAX_SIM_STEPS = 24  # simulated steps per path at most (finer data is summed into coarser steps)
WINSOR_MADS = 5.0  # long-run variance: returns clipped at this many robust sigmas
LONG_RUN_RANGE_DAYS = 365  # Parkinson range variance window of market_state_from_prices
AAVE_MIN_BASE_MAX_CLOSE_FACTOR_USD = 2_000.0  # Aave 3.3+ MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD (base ~ USD)
PEG_PRIOR_SIGMA_DAILY = 0.002  # a stablecoin without any price history (nor a peer with one)
MAX_LEVEL = 10.0  # no level above HF 10 (a tail fit on a handful of paths must not run away)
LN_MULTIPLIER_BOUND = 40.0  # simulated log price multipliers are clipped here (float32-safe)
# probability grid of the stored curves (P(HF < 1) as a function of HF), log-spaced
PROB_GRID: Array = np.logspace(-8.0, math.log10(0.5), 64)
_LN_PROB_GRID: Array = np.log(PROB_GRID)


@dataclass(frozen=True, slots=True)
class PolicyOverride:
    """Policy knobs of the positions one config entry selects (``alerts.accounts.<address>.policy``,
    ``alerts.routes[i].policy``, ``alerts.markets.<name>.policy``), per severity; None where the
    entry leaves the knob to the next layer. ``kind`` is ``account``, ``route`` or ``market``:
    precedence account > route > market > ``alerts.policy`` per knob and severity; of several
    routes selecting a position, the first in the list with a ``policy`` applies. ``markets`` /
    ``accounts``: the selection (None: any). ``source``: the config path, for errors."""

    kind: str
    markets: tuple[str, ...] | None
    accounts: tuple[str, ...] | None
    reaction_hours: OptTriple = (None, None, None)
    alarm_cost_usd: OptTriple = (None, None, None)
    min_probability: OptTriple = (None, None, None)
    max_probability: OptTriple = (None, None, None)
    source: str = ""

    def selects(self, market: str, account: str) -> bool:
        if self.markets is not None and market not in self.markets:
            return False
        return self.accounts is None or account.lower() in {a.lower() for a in self.accounts}

    def overlaps(self, other: PolicyOverride) -> bool:
        """Whether some position could be selected by both (conservative: any common market and account)."""
        if self.markets is not None and other.markets is not None and not set(self.markets) & set(other.markets):
            return False
        if self.accounts is not None and other.accounts is not None:
            return bool({a.lower() for a in self.accounts} & {a.lower() for a in other.accounts})
        return True


@dataclass(frozen=True, slots=True)
class PolicyKnobs:
    """``[P, 3]`` per position and severity: the knobs in force after the overrides."""

    reaction_hours: Array
    alarm_cost_usd: Array
    min_probability: Array
    max_probability: Array


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """How levels are chosen (defaults are the shipped ``alerts.policy``; README "Alerts")."""

    reaction_hours: Triple = (168.0, 48.0, 4.0)  # time to act, per severity: watch, warning, critical
    alarm_cost_usd: Triple = (2.0, 10.0, 25.0)  # cost of one alarm (a user action), per severity
    # the probability target alarm_cost / miss_cost of each severity is clipped to [min, max]:
    # never alert on less than min (below it the tail model extrapolates beyond the history's
    # evidence over that horizon), always alert at max whatever the size (see the module doc, 5)
    min_probability: Triple = (0.05, 0.01, 0.02)
    max_probability: Triple = (0.2, 0.05, 0.1)
    hard_levels: Triple | None = None  # explicit user levels (at/below: at least that severity)
    market_levels: tuple[tuple[str, Triple], ...] = ()  # per market name
    account_levels: tuple[tuple[str, Triple], ...] = ()  # per account (matched case-insensitively)
    # per alert route: (its markets or None, its accounts or None, levels) for the positions it selects
    route_levels: tuple[tuple[tuple[str, ...] | None, tuple[str, ...] | None, Triple], ...] = ()
    # per account / route / market policy knobs on top of the global ones (see PolicyOverride)
    overrides: tuple[PolicyOverride, ...] = ()
    close_factor: float = 0.5  # share of the debt one liquidation repays under a 50 % rule (see miss_costs)
    exit_margin: float = 0.02  # hysteresis: leave a level only above level * (1 + exit_margin)
    min_dwell_s: float = 300.0  # ... and after this long at it
    ewma_lambda: float = 0.94  # per day; per step it is lambda ** (step_hours / 24)
    long_run_weight: float = 0.5  # share of the long-run variance in today's variance
    long_run_days: float = 365.0
    pool_days: float = 1461.0  # history the residuals are drawn from
    block_hours: float = 120.0  # bootstrap block length
    paths: int = 4000
    seed: int = 20230615
    composition_grid: float = 0.025  # shares rounded to this grid define a class
    tail_share: float = 0.02  # the Pareto tail is fitted on this share of the paths
    cascade_move: float = 0.10  # liquidity: "liquidatable debt within x % of the price"
    utilisation_knee: float = 0.90  # above it the effective horizon grows, x2 at 100 %
    recompute_vol_change: float = 0.10  # cache: recompute when any asset's volatility moved this much
    recompute_after_s: float = SECONDS_PER_DAY  # cache: ... or after this long anyway
    recompute_debt_change: float = 0.10  # cache: a position's debt moved this much (miss cost)

    def validate(self) -> PolicyConfig:
        """``self`` if consistent, else an :class:`InputError` naming the field."""
        _check_knobs(self.reaction_hours, self.alarm_cost_usd, self.min_probability, self.max_probability)
        self._check_overrides()
        for name, levels in (
            ("hard_levels", [self.hard_levels] if self.hard_levels is not None else []),
            ("market_levels", [lv for _, lv in self.market_levels]),
            ("account_levels", [lv for _, lv in self.account_levels]),
            ("route_levels", [lv for _, _, lv in self.route_levels]),
        ):
            for lv in levels:
                a, b, c = _triple(lv, name)
                if not (a >= b >= c >= 1.0):
                    raise InputError(f"{name} must be health factors with watch >= warning >= critical >= 1, got {lv}")
        checks: tuple[tuple[str, float, float, float], ...] = (
            ("close_factor", self.close_factor, 0.0, 1.0),
            ("long_run_weight", self.long_run_weight, 0.0, 1.0),
            ("tail_share", self.tail_share, 0.0, 0.5),
            ("cascade_move", self.cascade_move, 0.0, 1.0),
            ("utilisation_knee", self.utilisation_knee, 0.0, 1.0),
        )
        for name, value, lo, hi in checks:
            v = finite_number(value, name)
            if not lo <= v <= hi or (name in ("close_factor", "tail_share") and v == 0.0):
                raise InputError(f"{name} must be in [{lo:g}, {hi:g}]{' and > 0' if lo == 0 else ''}, got {value}")
        if not 0.0 < finite_number(self.ewma_lambda, "ewma_lambda") < 1.0:
            raise InputError(f"ewma_lambda must be in (0, 1), got {self.ewma_lambda}")
        if not 0.0 < finite_number(self.composition_grid, "composition_grid") <= 0.5:
            raise InputError(f"composition_grid must be in (0, 0.5], got {self.composition_grid}")
        for name in ("long_run_days", "pool_days", "block_hours", "recompute_after_s"):
            if finite_number(getattr(self, name), name) <= 0.0:
                raise InputError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("exit_margin", "min_dwell_s", "recompute_vol_change", "recompute_debt_change"):
            if finite_number(getattr(self, name), name) < 0.0:
                raise InputError(f"{name} must be >= 0, got {getattr(self, name)}")
        if isinstance(self.paths, bool) or not isinstance(self.paths, int) or self.paths < 200:
            raise InputError(f"paths must be an integer >= 200, got {self.paths!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"seed must be an integer >= 0, got {self.seed!r}")
        return self

    def _check_overrides(self) -> None:
        """Every combination of overrides that can select one position (at most one per kind:
        the first route applies) gives consistent knobs; the error names the entries."""
        by_kind: dict[str, list[PolicyOverride | None]] = {k: [None] for k in OVERRIDE_RANKS}
        for o in self.overrides:
            if o.kind not in OVERRIDE_RANKS:
                raise InputError(f"{o.source or 'override'}: unknown kind {o.kind!r}")
        # wallets with the same knobs merge alike: one representative (selecting them all) per
        # distinct set of knobs keeps this linear in the number of wallets
        same: dict[tuple[OptTriple, ...], list[PolicyOverride]] = {}
        for o in self.overrides:
            if o.kind == "account" and o.markets is None and o.accounts is not None:
                same.setdefault(tuple(getattr(o, k) for k in KNOB_NAMES), []).append(o)
            else:
                by_kind[o.kind].append(o)
        members: dict[str, list[PolicyOverride]] = {}  # representative -> its wallets (for the error)
        for n, group in enumerate(same.values()):
            selected = tuple(a for o in group for a in o.accounts or ())
            members[f"\0{n}"] = group
            by_kind["account"].append(replace(group[0], accounts=selected, source=f"\0{n}"))
        for market in by_kind["market"]:
            for route in by_kind["route"]:
                for account in by_kind["account"]:
                    chosen = [o for o in (market, route, account) if o is not None]
                    if not chosen or any(not a.overlaps(b) for a in chosen for b in chosen if a is not b):
                        continue
                    merged = [_merge(getattr(self, k), [getattr(o, k) for o in chosen]) for k in KNOB_NAMES]
                    try:
                        _check_knobs(*merged)
                    except InputError as exc:
                        named = []
                        for o in chosen:  # a representative: the first of its wallets that meets the others
                            group = members.get(o.source, [])
                            hit = next((g for g in group if all(g.overlaps(x) for x in chosen if x is not o)), None)
                            named.append(hit.source if hit is not None else o.source)
                        raise InputError(f"{' with '.join(named)}: {exc}") from None

    def knobs_for(self, market: str, accounts: Sequence[str]) -> PolicyKnobs:
        """``[P, 3]`` knobs per position: per knob and severity the most specific entry that sets
        it (account > route > market > global; of the routes, the first with a policy that selects
        the position)."""
        first: dict[str, tuple[int | None, dict[str, int]]] = {}  # kind -> (first for any account, by account)
        for kind in ("market", "route", "account"):
            any_j: int | None = None
            by_account: dict[str, int] = {}
            for j, o in enumerate(self.overrides):
                if o.kind != kind or (o.markets is not None and market not in o.markets):
                    continue
                if o.accounts is None:
                    any_j = j if any_j is None else any_j
                    continue
                for a in o.accounts:
                    by_account.setdefault(a.lower(), j)
            first[kind] = (any_j, by_account)
        rows: dict[tuple[int, ...], list[int]] = {}
        for i, acc in enumerate(accounts):
            chosen: list[int] = []
            for any_j, by_account in first.values():
                picks = [j for j in (any_j, by_account.get(acc.lower())) if j is not None]
                if picks:
                    chosen.append(min(picks))  # the first in config order that selects the position
            rows.setdefault(tuple(chosen), []).append(i)
        out = [np.broadcast_to(np.asarray(getattr(self, k), dtype=np.float64), (len(accounts), 3)).copy()
               for k in KNOB_NAMES]  # fmt: skip
        merged: dict[tuple[Triple, ...], list[int]] = {}  # rows by the knobs they end up with
        for layers, idx in rows.items():
            if layers:
                key = tuple(_merge(getattr(self, k), [getattr(self.overrides[j], k) for j in layers])
                            for k in KNOB_NAMES)  # fmt: skip
                merged.setdefault(key, []).extend(idx)
        for key, idx in merged.items():
            for n in range(len(KNOB_NAMES)):
                out[n][idx] = key[n]
        return PolicyKnobs(*out)

    def hard_for(self, market: str, accounts: Sequence[str]) -> Array:
        """``[P, 3]`` explicit levels per position: the largest of those that apply to it (global,
        its market's, any route selecting it, its account's), since each says "at or below this
        HF the severity is at least that"; 1.0 where none is set, i.e. never binding."""
        out = np.ones((len(accounts), 3))
        if self.hard_levels is not None:
            out = np.maximum(out, np.asarray(self.hard_levels, dtype=np.float64))
        for name, lv in self.market_levels:
            if name == market:
                out = np.maximum(out, np.asarray(lv, dtype=np.float64))
        lower = [a.lower() for a in accounts]
        for markets, selected, lv in self.route_levels:
            if markets is not None and market not in markets:
                continue
            picked = np.ones(len(accounts), dtype=bool)
            if selected is not None:
                chosen = {a.lower() for a in selected}
                picked = np.array([a in chosen for a in lower], dtype=bool)
            out[picked] = np.maximum(out[picked], np.asarray(lv, dtype=np.float64))
        if self.account_levels:
            by_account = {a.lower(): lv for a, lv in self.account_levels}
            for i, acc in enumerate(lower):
                own = by_account.get(acc)
                if own is not None:
                    out[i] = np.maximum(out[i], own)
        return out


@dataclass(frozen=True, slots=True)
class Liquidity:
    """Order flow / liquidity per asset where observable (NaN: unknown)."""

    depth_usd: Array  # [A] USD of the asset sellable within its liquidation-bonus slippage
    liquidatable_debt_usd: Array  # [A] market debt liquidatable within cascade_move of the price
    utilisation: Array  # [A] 0..1


@dataclass(frozen=True, slots=True)
class MarketState:
    """What the market looks like at the decision time (no data after it)."""

    symbols: tuple[str, ...]  # columns, same order as Book.symbols
    log_returns: Array  # [T, A] joint log returns, oldest first, NaN where missing
    step_hours: float  # granularity of those returns (24.0 daily, 1.0 hourly)
    liquidity: Liquidity | None = None
    source: str = ""  # where the returns come from (for logs and reasons)
    range_var: Array | None = None  # [A] Parkinson variance per step over the long run where OHLC exists (NaN not)

    def validate(self) -> MarketState:
        r = np.asarray(self.log_returns, dtype=np.float64)
        if r.ndim != 2 or r.shape[1] != len(self.symbols):
            raise InputError(f"log_returns must be [T, {len(self.symbols)}] for {self.symbols}, got shape {r.shape}")
        if np.isinf(r).any():
            raise InputError("log_returns must be finite or NaN (missing)")
        if finite_number(self.step_hours, "step_hours") <= 0.0:
            raise InputError(f"step_hours must be > 0, got {self.step_hours}")
        if self.liquidity is not None:
            for name in ("depth_usd", "liquidatable_debt_usd", "utilisation"):
                arr = np.asarray(getattr(self.liquidity, name), dtype=np.float64)
                if arr.shape != (len(self.symbols),):
                    raise InputError(f"liquidity.{name} must have one value per asset ({len(self.symbols)})")
        return self


@dataclass(frozen=True, slots=True)
class PolicyLevels:
    """Per position: the levels, the probability at the current HF, and why."""

    levels: Array  # [P, 3] HF at/below which watch, warning, critical start (rows non-increasing, >= 1)
    probability: Array  # [P, 3] P(HF < 1 within each severity's horizon) at the current HF
    reasons: tuple[str, ...]  # [P] plain words, e.g. "SOL/USDC, 24 h: warn at 1.31 (vol 4.1 %/day)"
    classes: tuple[str, ...]  # [P] composition label, e.g. "SOL/USDC", "USDC+DAI/USDC eMode"
    horizons_hours: Array = field(default_factory=lambda: np.zeros((0, 3)))  # [P, 3] incl. observe_hours
    miss_cost_usd: Array = field(default_factory=lambda: np.zeros(0))  # [P]
    vol_daily: Array = field(default_factory=lambda: np.zeros(0))  # [P] daily sigma of ln HF
    curves: Array = field(default_factory=lambda: np.zeros((0, 3, PROB_GRID.size)))  # [P, 3, G] ln-HF at PROB_GRID
    hard: NDArray[np.bool_] = field(default_factory=lambda: np.zeros((0, 3), dtype=bool))  # [P, 3] hard level binds

    @property
    def size(self) -> int:
        return int(self.levels.shape[0])

    def rows(self, index: Sequence[int] | IntArray) -> PolicyLevels:
        idx = np.asarray(index, dtype=np.int64)
        return PolicyLevels(
            self.levels[idx], self.probability[idx], tuple(self.reasons[i] for i in idx),
            tuple(self.classes[i] for i in idx), self.horizons_hours[idx], self.miss_cost_usd[idx],
            self.vol_daily[idx], self.curves[idx], self.hard[idx],
        )  # fmt: skip


# -- market state builders ----------------------------------------------------------------


def market_state_from_prices(
    symbols: Sequence[str], end: str | None = None, *, days: float = 1461.0, liquidity: Liquidity | None = None
) -> MarketState:
    """Daily log returns of the SHIPPED prices for ``symbols`` over ``days`` up to ``end``
    (inclusive, ``YYYY-MM-DD``; default the last shipped day). Each asset keeps its own
    dates (NaN where it has no price, e.g. SOL before 2021); a symbol without shipped data
    (resolved through WETH -> ETH, WBTC -> BTC) is an all-NaN column."""
    _dates, out, range_var, source = _shipped(_symbols(symbols), end, days)
    return MarketState(tuple(_symbols(symbols)), out, HOURS_PER_DAY, liquidity, source, range_var)


def _shipped(names: list[str], end: str | None, days: float) -> tuple[pd.DatetimeIndex, Array, Array, str]:
    """(the day of each return row, returns [T, A], Parkinson variance [A], source)."""
    hi = parse_day(end, "end date") if end is not None else None
    cols: dict[str, pd.Series] = {}
    known: list[str] = []
    for name in names:
        try:
            asset = price_data.resolve_asset(name)
        except InputError:
            continue
        close = price_data.load_daily(asset)["close"]
        close = close if hi is None else close.loc[close.index <= hi]
        if len(close) > 1:
            known.append(asset)
            cols[name] = close
    if not cols:
        raise InputError(f"no shipped prices for {', '.join(names)} up to {end}: give stored oracle history")
    last = max(pd.Timestamp(s.index[-1]) for s in cols.values())
    grid = pd.date_range(last - pd.Timedelta(days=float(days)), last, freq="D")
    out = np.full((len(grid) - 1, len(names)), np.nan)
    range_var = np.full(len(names), np.nan)
    year = last - pd.Timedelta(days=LONG_RUN_RANGE_DAYS)
    for j, name in enumerate(names):
        if name not in cols:
            continue
        out[:, j] = np.diff(np.log(cols[name].reindex(grid).to_numpy(dtype=np.float64)))  # NaN across a gap
        daily = price_data.load_daily(price_data.resolve_asset(name))
        daily = daily.loc[(daily.index > year) & (daily.index <= last)]
        if len(daily) > 2:
            ranges = np.log(daily["high"].to_numpy() / daily["low"].to_numpy())
            range_var[j] = float(np.mean(ranges**2)) / (4.0 * math.log(2.0))
    source = f"shipped daily prices to {last:%Y-%m-%d} ({', '.join(dict.fromkeys(known))})"
    return grid[1:], out, range_var, source


def market_state_from_history(
    symbols: Sequence[str],
    price_history: Mapping[str, Sequence[tuple[float, float]]],
    now: float,
    *,
    step_hours: float = HOURS_PER_DAY,
    liquidity: Liquidity | None = None,
) -> MarketState:
    """Log returns of the store's oracle prices (symbol -> ``[(unix_time, usd), ...]``) on a
    grid of ``step_hours`` ending at ``now``: each grid point takes the symbol's last price at
    or before it (carried forward), NaN before its first price. Prices after ``now`` are ignored."""
    names = _symbols(symbols)
    step_s = finite_number(step_hours, "step_hours") * 3600.0
    t_now = finite_number(now, "now")
    by_key = {str(k).upper(): v for k, v in price_history.items()}
    series: list[Array | None] = []  # per symbol: [n, 2] (time, price) sorted, or None
    first = t_now
    for name in names:
        rows = by_key.get(name.upper())
        if rows is None or len(rows) == 0:  # a list of pairs or an [n, 2] array (PriceWindow)
            series.append(None)
            continue
        arr = np.asarray(rows, dtype=np.float64).reshape(-1, 2)
        if not np.isfinite(arr).all() or (arr[:, 1] <= 0).any():
            raise InputError(f"stored price history for {name} has non-finite or non-positive values")
        arr = arr[arr[:, 0] <= t_now]
        if arr.size == 0:
            series.append(None)
            continue
        arr = arr[np.argsort(arr[:, 0], kind="stable")]
        series.append(arr)
        first = min(first, float(arr[0, 0]))
    n = math.floor((t_now - first) / step_s)
    grid = t_now - step_s * np.arange(n, -1, -1, dtype=np.float64)
    out = np.full((max(n, 0), len(names)), np.nan)
    for j, rows_j in enumerate(series):
        if rows_j is None or n < 1:
            continue
        pos = np.searchsorted(rows_j[:, 0], grid, side="right") - 1
        logp = np.where(pos >= 0, np.log(rows_j[np.clip(pos, 0, None), 1]), np.nan)
        out[:, j] = np.diff(logp)
    return MarketState(tuple(names), out, float(step_hours), liquidity, f"stored oracle prices ({n} steps)")


def market_state_for(
    symbols: Sequence[str],
    price_history: Mapping[str, Sequence[tuple[float, float]]] | None,
    now: float,
    *,
    liquidity: Liquidity | None = None,
) -> MarketState:
    """The monitor's market state at ``now``: the shipped daily prices up to ``now``'s day (the
    long history the residuals are drawn from: crashes and depegs), followed by the daily
    returns of the store's own oracle prices from the day they start (replacing shipped days
    they overlap), so the volatility state follows what the market is doing now. Without any
    shipped data for the symbols, the stored returns alone."""
    names = _symbols(symbols)
    t_now = finite_number(now, "now")
    end = pd.Timestamp(t_now, unit="s").strftime("%Y-%m-%d")
    stored = market_state_from_history(names, price_history, t_now) if price_history else None
    has_store = stored is not None and bool(np.isfinite(stored.log_returns).any())
    try:
        dates, rows, range_var, source = _shipped(names, end, 1461.0)
    except InputError:
        if stored is None or not has_store:
            raise
        return replace(stored, liquidity=liquidity)
    if stored is None or not has_store:
        return MarketState(tuple(names), rows, HOURS_PER_DAY, liquidity, source, range_var)
    store_rows = stored.log_returns
    first_row = int(np.flatnonzero(np.isfinite(store_rows).any(axis=1))[0])
    store_rows = store_rows[first_row:]
    store_start = pd.Timestamp(t_now - (store_rows.shape[0] - 1) * SECONDS_PER_DAY, unit="s")
    keep = np.asarray(dates < store_start.normalize())
    joined = np.concatenate([rows[keep], store_rows], axis=0)
    source = f"{source} + {store_rows.shape[0]} days of stored oracle prices"
    return MarketState(tuple(names), joined, HOURS_PER_DAY, liquidity, source, range_var)


# -- the model ----------------------------------------------------------------------------


def volatility_now(market: MarketState, cfg: PolicyConfig) -> Array:
    """``[A]`` today's per-step volatility (EWMA blended with the long run); NaN without data."""
    return _filter(market, cfg).sigma_now


@dataclass(frozen=True, slots=True)
class _Filtered:
    z: Array  # [T, A] standardised residuals (NaN where missing)
    sigma_now: Array  # [A] per step; NaN for an asset without data


def _filter(market: MarketState, cfg: PolicyConfig) -> _Filtered:
    r = np.asarray(market.log_returns, dtype=np.float64)
    steps_per_day = HOURS_PER_DAY / market.step_hours
    pool = round(cfg.pool_days * steps_per_day)
    r = r[-pool:] if r.shape[0] > pool else r
    a = r.shape[1]
    lam = cfg.ewma_lambda ** (market.step_hours / HOURS_PER_DAY)
    present = np.isfinite(r)
    sq = np.where(present, r * r, 0.0)
    counts = present.sum(axis=0)
    long_rows = round(cfg.long_run_days * steps_per_day)
    full_var = _winsorised_var(r)
    long_var = np.where(present[-long_rows:].any(axis=0), _winsorised_var(r[-long_rows:]), full_var)
    if market.range_var is not None:  # intraday ranges see swings that closes hide: the larger of the two,
        # at most twice the close-to-close sigma (spikes in exchange highs / lows of a peg are not moves)
        rv = np.asarray(market.range_var, dtype=np.float64)
        long_var = np.where(np.isfinite(rv), np.fmax(long_var, np.fmin(rv, 4.0 * long_var)), long_var)
    floor_var = 0.25 * full_var  # sigma_t >= half the long-run sigma
    # seed: mean square of the first SEED_RETURNS present returns of each asset
    seed = np.full(a, np.nan)
    for j in range(a):
        vals = r[present[:, j], j][:SEED_RETURNS]
        if vals.size:
            seed[j] = float(np.mean(vals * vals))
    ex_ante, var = ewma_ex_ante(sq, present, lam, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = np.sqrt(np.maximum(ex_ante, floor_var))
        # a scale of 0 means every return so far was 0 (a price held flat): its residual is 0
        z = np.where(present, np.where(denom > 0, r / np.where(denom > 0, denom, 1.0), 0.0), np.nan)
    ewma_var = np.maximum(var, floor_var)
    w = cfg.long_run_weight
    sigma_now = np.sqrt((1.0 - w) * ewma_var + w * long_var)
    sigma_now = np.where(counts > 0, sigma_now, np.nan)
    return _Filtered(z, sigma_now)


def ewma_ex_ante(sq: Array, present: NDArray[np.bool_], lam: float, seed: Array) -> tuple[Array, Array]:
    """The RiskMetrics recursion ``v <- lam * v + (1 - lam) * r^2`` per column, a missing return
    leaving ``v`` as it is: ``([T, A]`` the variance before each row, ``[A]`` after the last).
    Evaluated in closed form over chunks of :data:`EWMA_CHUNK` rows (``lam ** -count`` stays
    small), the same numbers as the loop to rounding."""
    t = sq.shape[0]
    ex = np.empty_like(sq)
    var = seed.astype(np.float64).copy()
    for s in range(0, t, EWMA_CHUNK):
        p = present[s : s + EWMA_CHUNK]
        count: IntArray = np.cumsum(p, axis=0, dtype=np.int64)  # present rows up to and including each row
        before: IntArray = count - p
        w = np.where(p, (1.0 - lam) * sq[s : s + EWMA_CHUNK], 0.0) * lam ** (-count.astype(np.float64))
        ex[s : s + EWMA_CHUNK] = lam**before * (var + np.cumsum(w, axis=0) - w)
        var = lam ** count[-1].astype(np.float64) * (var + w.sum(axis=0))
    return ex, var


def _winsorised_var(r: Array, k: float = WINSOR_MADS) -> Array:
    """Per column: the mean square of the returns clipped at ``k`` robust sigmas
    (``1.4826 * median |r|``), NaN ignored. A peg's rare breaks stay in the residuals (as the
    large ``z`` they were) instead of inflating the scale they would then be multiplied by."""
    present = np.isfinite(r)
    out = np.full(r.shape[1], np.nan)
    for j in range(r.shape[1]):
        col = r[present[:, j], j]
        if col.size:
            cap = k * 1.4826 * float(np.median(np.abs(col)))
            clipped = np.clip(col, -cap, cap) if cap > 0 else col
            out[j] = float(np.mean(clipped * clipped))
    return out


def _residual_pool(
    filtered: _Filtered, rng: np.random.Generator, symbols: Sequence[str], step_hours: float
) -> tuple[Array, Array, tuple[int, ...]]:
    """Complete residual rows and per-step sigmas: missing residuals refilled from the same
    asset's residuals in order (repeated; those dates lose their correlation). An asset without
    any data: a stablecoin (by symbol) takes the residuals and sigma of a stablecoin that has
    data, else :data:`PEG_PRIOR_SIGMA_DAILY`; any other asset the median sigma of the others;
    both with residuals of random dates of the others (seeded; uncorrelated) when no peer exists."""
    z = filtered.z.copy()
    sigma = filtered.sigma_now.copy()
    t, a = z.shape
    present = np.isfinite(z)
    empty = tuple(int(j) for j in np.flatnonzero(~present.any(axis=0))) if t else tuple(range(a))
    have = [j for j in range(a) if j not in empty]
    if not have or t < 2:
        raise InputError("no price history for any asset of the market: the policy needs returns to simulate")
    for j in have:
        miss = ~present[:, j]
        if miss.any():  # the asset's own residuals in their order, repeated: deterministic, its own tails
            z[miss, j] = np.resize(z[present[:, j], j], int(miss.sum()))
    stable = [s.upper() in STABLECOINS for s in symbols]
    pegged_peers = [j for j in have if stable[j] and sigma[j] > 0]
    donors = z[:, have]
    for j in empty:
        if stable[j] and pegged_peers:
            z[:, j], sigma[j] = z[:, pegged_peers[0]], sigma[pegged_peers[0]]  # co-moves with its peer
            continue
        z[:, j] = donors[rng.integers(0, t, t), rng.integers(0, len(have), t)]  # other dates: uncorrelated
        prior = PEG_PRIOR_SIGMA_DAILY * math.sqrt(step_hours / HOURS_PER_DAY)
        sigma[j] = prior if stable[j] else float(np.median(sigma[have]))
    return z, sigma, empty


@dataclass(frozen=True, slots=True)
class _Composition:
    coll_units: IntArray  # [P, A] collateral shares in grid units
    debt_units: IntArray  # [P, A]
    n_units: IntArray  # [P] units per side (the row's grid is 1 / n_units)
    util_mult: Array  # [P] effective-horizon multiplier from utilisation
    has_debt: NDArray[np.bool_]  # [P]

    def weights(self, rows: IntArray | slice = slice(None)) -> tuple[Array, Array]:
        n = self.n_units[rows].astype(np.float64)[:, None]
        return self.coll_units[rows] / n, self.debt_units[rows] / n

    def keys(self) -> IntArray:
        """``[P, 2A + 1]`` one row per class: units of both sides and the grid."""
        out: IntArray = np.concatenate([self.coll_units, self.debt_units, self.n_units[:, None]], axis=1)
        return out


def _grid_units(w: Array, n_units: IntArray) -> IntArray:
    """Largest-remainder rounding of each row of shares to integer units summing to ``n_units``."""
    units = w * n_units[:, None]
    base = np.floor(units).astype(np.int64)
    missing = n_units - base.sum(axis=1)
    order = np.argsort(-(units - base), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(w.shape[1]), w.shape).copy(), axis=1)
    out: IntArray = base + (ranks < missing[:, None]).astype(np.int64)
    return np.where(w.sum(axis=1, keepdims=True) > 0, out, 0)


def _composition(book: Book, market: MarketState, cfg: PolicyConfig) -> _Composition:
    """Shares of LT-weighted collateral and of debt, rounded to the class grid: the config's
    grid for two legs (one collateral, one debt), twice as coarse for each further leg (so a
    many-asset book does not make thousands of classes; the grid depends only on the position)."""
    weighted = book.collateral * book.lt
    w_tot = weighted.sum(axis=1, keepdims=True)
    d_tot = book.debt.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        wc = np.where(w_tot > 0, weighted / np.where(w_tot > 0, w_tot, 1.0), 0.0)
        wd = np.where(d_tot > 0, book.debt / np.where(d_tot > 0, d_tot, 1.0), 0.0)
    legs = (wc > 0).sum(axis=1) + (wd > 0).sum(axis=1)
    base_units = max(2, round(1.0 / cfg.composition_grid))
    n_units = np.maximum(2, base_units // (2 ** np.clip(legs - 2, 0, 8))).astype(np.int64)
    mult = np.ones(book.size)
    liq = market.liquidity
    if liq is not None:
        u = np.asarray(liq.utilisation, dtype=np.float64)
        c_tot = book.collateral.sum(axis=1)
        share = np.where(c_tot[:, None] > 0, book.collateral / np.where(c_tot > 0, c_tot, 1.0)[:, None], 0.0)
        known = np.isfinite(u)
        ex = np.clip((np.where(known, u, 0.0) - cfg.utilisation_knee) / (1.0 - cfg.utilisation_knee + 1e-12), 0, 1)
        raw = 1.0 + (share * ex[None, :]).sum(axis=1)
        mult = np.round(raw * 4.0) / 4.0  # quarter steps: few distinct horizons
    has_debt = (d_tot[:, 0] > 0) & (w_tot[:, 0] > 0)
    return _Composition(_grid_units(wc, n_units), _grid_units(wd, n_units), n_units, mult, has_debt)


def miss_costs(book: Book, market: MarketState, cfg: PolicyConfig) -> Array:
    """``[P]`` USD cost of a missed liquidation: the penalty ``repay * (bonus - 1)`` on what one
    liquidation takes, at most what the largest collateral covers, plus the same penalty again on
    the seized collateral beyond the known DEX depth. ``repay`` follows the book's close-factor
    rule: ``close_factor * debt`` (Aave 3.0-3.2 just below HF 1, and Aave 3.3+ when both
    reserves are worth >= 2,000 USD), the whole debt reserve for a smaller Aave 3.3+ position,
    the whole debt for Morpho Blue and Compound V3 (``Book.close_factor == "full"``)."""
    debt = book.debt.sum(axis=1)
    main = np.argmax(book.collateral, axis=1)
    rows = np.arange(book.size)
    bonus = np.maximum(book.bonus[rows, main], 1.0)
    main_value = book.collateral[rows, main]
    share = np.full(book.size, cfg.close_factor)
    rule = getattr(book, "close_factor", "v30")
    if rule == "full":  # Morpho Blue liquidations, Comet absorbs: the whole debt
        share[:] = 1.0
    elif rule == "v33":  # Aave 3.3+: the whole reserve debt unless both reserves are worth >= 2,000
        top_debt = book.debt.max(axis=1)
        small = (main_value < AAVE_MIN_BASE_MAX_CLOSE_FACTOR_USD) | (top_debt < AAVE_MIN_BASE_MAX_CLOSE_FACTOR_USD)
        share = np.where(small, top_debt / np.where(debt > 0, debt, 1.0), share)
    repay = np.minimum(share * debt, main_value / bonus)
    penalty = repay * (bonus - 1.0)
    if market.liquidity is not None:
        depth = np.asarray(market.liquidity.depth_usd, dtype=np.float64)[main]
        seized = repay * bonus
        beyond = np.where(np.isfinite(depth), np.clip(seized - np.nan_to_num(depth), 0.0, None), 0.0)
        penalty = penalty + beyond * (bonus - 1.0)
    out: Array = np.asarray(penalty, dtype=np.float64)
    return out


def _cascade_jumps(book: Book, market: MarketState) -> Array:
    """``[A]`` log price jump once an asset falls ``cascade_move``: the liquidatable debt sold
    through the depth at bonus slippage moves the price by ``(bonus - 1) * debt / depth``."""
    a = len(book.symbols)
    liq = market.liquidity
    if liq is None:
        return np.zeros(a)
    depth = np.asarray(liq.depth_usd, dtype=np.float64)
    debt = np.asarray(liq.liquidatable_debt_usd, dtype=np.float64)
    held = book.collateral > 0
    bonus = np.array([float(np.median(book.bonus[held[:, j], j])) if held[:, j].any() else 1.05 for j in range(a)])
    ok = np.isfinite(depth) & np.isfinite(debt) & (depth > 0)
    impact = np.where(ok, (bonus - 1.0) * np.where(ok, debt, 0.0) / np.where(ok, depth, 1.0), 0.0)
    out: Array = np.clip(impact, 0.0, 0.5)
    return out


@dataclass(frozen=True, slots=True)
class _Simulation:
    """Per class and distinct horizon: the stored curve ln-HF(p) and the one-day sigma."""

    curves: Array  # [K, H, G] ln HF at which P(HF<1 within horizon) = PROB_GRID
    vol_daily: Array  # [K]


def _simulate(
    wc: Array,
    wd: Array,
    horizons_steps: Array,
    z: Array,
    sigma: Array,
    jumps: Array,
    cascade_move: float,
    step_hours: float,
    cfg: PolicyConfig,
) -> _Simulation:
    """The drawdown sample of every class at every horizon (in steps), reduced to curves."""
    k_classes, a = wc.shape
    n = cfg.paths
    rng = np.random.default_rng(cfg.seed)
    t = z.shape[0]
    max_steps = math.ceil(float(horizons_steps.max()) - 1e-9)
    # long horizons on fine data (e.g. 96 h on hourly returns) are simulated on steps of `agg`
    # data steps (their residuals summed); the bridge still covers the minimum inside each step
    agg = max(1, math.ceil(max_steps / MAX_SIM_STEPS))
    sim_steps = math.ceil(max_steps / agg)
    data_steps = sim_steps * agg
    block = max(1, min(round(cfg.block_hours / step_hours), t))
    n_blocks = math.ceil(data_steps / block)
    windows = t - data_steps + 1
    if n_blocks == 1 and 0 < windows <= n:
        # the horizon fits in one block and history has no more windows than paths: take EVERY
        # window of history equally often (no sampling noise from which crash days were drawn);
        # the bridge draws still differ between the copies
        n = windows * max(1, n // windows)
        idx = (np.arange(n)[:, None] % windows) + np.arange(data_steps)[None, :]
    else:
        starts = rng.integers(0, t - block + 1, (n, n_blocks))
        idx = (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(n, -1)[:, :data_steps]
    groups = idx.reshape(n, sim_steps, agg)
    z_steps = [z[groups[:, k, :]].sum(axis=1) for k in range(sim_steps)]
    horizons_steps = horizons_steps / agg
    max_steps = sim_steps
    u = rng.random((n, max_steps))
    log_u = np.log(np.clip(u, 1e-300, 1.0))
    with np.errstate(invalid="ignore", divide="ignore"):  # a flat column (all 0) has no correlation
        corr = np.corrcoef(z, rowvar=False) if a > 1 else np.ones((1, 1))
    corr = np.nan_to_num(np.atleast_2d(corr))
    cov_step = corr * np.outer(sigma, sigma)
    w = wc - wd
    var_data = np.clip(np.einsum("ka,ab,kb->k", w, cov_step, w), 0.0, None)  # [K] var of ln HF per data step
    vol_daily = np.sqrt(var_data * HOURS_PER_DAY / step_hours)
    var_step = var_data * agg  # per simulated step
    down = np.log1p(-cascade_move) if cascade_move < 1 else -np.inf
    x = np.zeros((n, a))  # cumulative log price per path
    f32 = np.float32  # the per-class arrays: [K, N] float32 (ln HF to ~1e-7, far below any level step)
    lnr_prev = np.zeros((k_classes, n), dtype=f32)
    run_min = np.zeros((k_classes, n), dtype=f32)
    drawdowns = np.zeros((horizons_steps.size, k_classes, n), dtype=f32)
    wc32, wd32 = wc.astype(f32), wd.astype(f32)
    log_u32 = log_u.astype(f32)
    full = np.floor(horizons_steps + 1e-9).astype(np.int64)
    frac = horizons_steps - full
    frac = np.where(frac < 1e-9, 0.0, frac)
    var_col = var_step[:, None].astype(f32)

    def ln_ratio(xs: Array) -> FArray:
        xs = np.clip(xs, -LN_MULTIPLIER_BOUND, LN_MULTIPLIER_BOUND)  # beyond e^+-40 a price is no price
        m = np.exp(xs)
        if jumps.any():
            m = np.where(xs < down, m * np.exp(-jumps), m)
        mt = np.ascontiguousarray(m.T, dtype=f32)
        with np.errstate(divide="ignore", over="ignore", under="ignore"):
            out: FArray = np.log(_weighted(wc32, mt) / _weighted(wd32, mt))
        return out

    def low_of(x0: FArray, x1: FArray, var: FArray, lu: FArray) -> FArray:
        """min(x1, exact sample of the Brownian-bridge minimum between x0 and x1)."""
        diff = x1 - x0
        bridge = 0.5 * (x0 + x1 - np.sqrt(diff * diff - 2.0 * var * lu[None, :]))
        out: FArray = np.minimum(x1, bridge)
        return out

    for k in range(max_steps + 1):
        for h in np.flatnonzero(full == k):
            if frac[h] > 0 and k < max_steps:  # ends with a partial step after k full steps
                lnr = ln_ratio(x + z_steps[k] * sigma * math.sqrt(frac[h]))
                drawdowns[h] = -np.minimum(run_min, low_of(lnr_prev, lnr, var_col * f32(frac[h]), log_u32[:, k]))
            else:
                drawdowns[h] = -run_min
        if k == max_steps:
            break
        x = x + z_steps[k] * sigma
        lnr = ln_ratio(x)
        run_min = np.minimum(run_min, low_of(lnr_prev, lnr, var_col, log_u32[:, k]))
        lnr_prev = lnr
    np.clip(drawdowns, 0.0, math.log(MAX_LEVEL), out=drawdowns)
    curves = _curves(drawdowns, cfg.tail_share)  # [H, K, G]
    return _Simulation(np.transpose(curves, (1, 0, 2)), vol_daily)


def _weighted(w: FArray, m: FArray) -> FArray:
    """``w @ m`` for ``[K, A] x [A, N]``: a plain multiply-add over the few assets (steadier than
    a threaded BLAS call on such thin matrices when the machine is busy)."""
    if w.shape[1] > 32:
        out: FArray = w @ m
        return out
    acc: FArray = w[:, 0:1] * m[0]
    for a in range(1, w.shape[1]):
        acc += w[:, a : a + 1] * m[a]
    return acc


def _curves(y: FArray, tail_share: float) -> Array:
    """``[H, K, G]`` upper quantiles of the drawdowns ``y [H, K, N]`` at the probabilities of
    :data:`PROB_GRID`: empirical where at least ``tail_share * N`` paths lie beyond, a Hill
    (Pareto) tail beyond that, never below the empirical quantile / the largest drawdown."""
    n = y.shape[2]
    k_tail = max(10, round(tail_share * n))
    desc = -np.sort(-y, axis=2)  # descending along the paths
    ranks = np.clip(np.floor(PROB_GRID * n).astype(np.int64), 0, n - 1)
    empirical = desc[:, :, ranks]  # [H, K, G]: the value exceeded by a share p of the paths
    u = desc[:, :, k_tail - 1]  # threshold of the tail fit
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(desc[:, :, : k_tail - 1] / u[:, :, None])
        fin = np.isfinite(logs)
        hill = np.where(fin, logs, 0.0).sum(axis=2) / np.maximum(fin.sum(axis=2), 1)  # 1 / alpha
        inv_alpha = np.clip(hill, 0.0, 1.0)  # alpha >= 1
        scale = np.maximum(k_tail / (n * PROB_GRID), 1.0)[None, None, :]
        model = u[:, :, None] * scale ** inv_alpha[:, :, None]
    tail = (PROB_GRID * n < k_tail)[None, None, :] & (u[:, :, None] > 0)
    out = np.where(tail, np.maximum(model, empirical), empirical)
    out = np.minimum(np.nan_to_num(out, nan=0.0), math.log(MAX_LEVEL))
    result: Array = np.maximum.accumulate(out[:, :, ::-1], axis=2)[:, :, ::-1]  # non-increasing in p
    return result.astype(np.float64)


def _interp_level(curve: Array, p: Array) -> Array:
    """ln HF at probability ``p`` from curves ``[P, G]``: log-linear in p on the grid, linear to
    ln HF 0 at p = 1 above the grid's last point (0.5)."""
    lp = np.log(np.clip(p, PROB_GRID[0], 1.0))
    pos = np.clip(np.searchsorted(_LN_PROB_GRID, lp, side="right") - 1, 0, PROB_GRID.size - 2)
    x0, x1 = _LN_PROB_GRID[pos], _LN_PROB_GRID[pos + 1]
    rows = np.arange(curve.shape[0])
    y0, y1 = curve[rows, pos], curve[rows, pos + 1]
    t = np.clip((lp - x0) / (x1 - x0), 0.0, 1.0)
    inside = y0 + t * (y1 - y0)
    last = curve[:, -1]
    above = last * np.clip((1.0 - p) / (1.0 - PROB_GRID[-1]), 0.0, 1.0)
    out: Array = np.where(p > PROB_GRID[-1], above, inside)
    return out


def _interp_probability(curve: Array, ln_hf: Array) -> Array:
    """P(HF < 1) at ``ln_hf`` from curves ``[P, G]`` (non-increasing along G): the inverse of
    :func:`_interp_level`; 1 at or below HF 1, 0 beyond the curve's first point."""
    v = np.asarray(ln_hf, dtype=np.float64)
    count = (curve >= v[:, None]).sum(axis=1)  # a prefix: the grid points whose level is >= v
    j = np.clip(count - 1, 0, PROB_GRID.size - 2)
    rows = np.arange(curve.shape[0])
    c0, c1 = curve[rows, j], curve[rows, j + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(c0 > c1, (c0 - v) / np.where(c0 > c1, c0 - c1, 1.0), 0.0)
        inside = np.exp(_LN_PROB_GRID[j] + np.clip(t, 0.0, 1.0) * (_LN_PROB_GRID[j + 1] - _LN_PROB_GRID[j]))
        last = curve[:, -1]
        rel = np.where(last > 0, 1.0 - v / np.where(last > 0, last, 1.0), 1.0)
        beyond = PROB_GRID[-1] + (1.0 - PROB_GRID[-1]) * rel
    out = np.where(count == 0, 0.0, np.where(count >= PROB_GRID.size, beyond, inside))
    out = np.where(v <= 0.0, 1.0, np.where(np.isfinite(v), out, 0.0))
    result: Array = np.clip(out, 0.0, 1.0)
    return result


def probability_at(pl: PolicyLevels, hf: Array) -> Array:
    """``[P, 3]`` P(HF < 1 within each severity's horizon) at health factors ``hf [P]``."""
    h = np.asarray(hf, dtype=np.float64)
    with np.errstate(divide="ignore"):
        ln_hf = np.log(np.where(h > 0, h, 1e-300))
    out = np.column_stack([_interp_probability(pl.curves[:, s, :], ln_hf) for s in range(3)])
    return np.asarray(out, dtype=np.float64)


def position_levels(
    book: Book,
    market: MarketState,
    cfg: PolicyConfig,
    *,
    observe_hours: float = 0.0,
    hf: Array | None = None,
    emode: Sequence[str] | None = None,
) -> PolicyLevels:
    """The levels of every position of ``book`` under ``market`` (see the module doc).

    ``observe_hours`` is the time until the monitor looks again (a block live, the data step
    in a daily backtest), added to each severity's reaction time. ``hf`` (default: the book's
    own) is the current HF behind ``probability``; ``emode`` optional labels per position
    (e.g. ``"eMode 1"``) added to the class names. Deterministic for a given seed.
    """
    cfg.validate()
    market.validate()
    if tuple(s.upper() for s in market.symbols) != tuple(s.upper() for s in book.symbols):
        raise InputError(f"market state columns {market.symbols} do not match the book's assets {book.symbols}")
    observe = finite_number(observe_hours, "observe_hours")
    if observe < 0:
        raise InputError(f"observe_hours must be >= 0, got {observe_hours}")
    p_count = book.size
    current = book.health_factors() if hf is None else np.asarray(hf, dtype=np.float64)
    comp = _composition(book, market, cfg)
    miss = miss_costs(book, market, cfg)
    hard = cfg.hard_for(book.market, book.accounts)
    knobs = cfg.knobs_for(book.market, book.accounts)  # the global knobs, or a wallet's / route's own
    horizons = comp.util_mult[:, None] * knobs.reaction_hours + observe  # [P, 3] hours
    curves = np.zeros((p_count, 3, PROB_GRID.size))
    vol = np.zeros(p_count)
    live = np.flatnonzero(comp.has_debt)
    if live.size:
        _classes, first, inverse = np.unique(comp.keys()[live], axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        wc, wd = comp.weights(live[first])
        filtered = _filter(market, cfg)
        rng = np.random.default_rng([cfg.seed, 1])
        z, sigma, _empty = _residual_pool(filtered, rng, book.symbols, market.step_hours)
        distinct, h_index = np.unique(np.round(horizons[live] / market.step_hours, 9), return_inverse=True)
        h_index = h_index.reshape(len(live), 3)
        sim = _simulate(wc, wd, distinct, z, sigma, _cascade_jumps(book, market), cfg.cascade_move,
                        market.step_hours, cfg)  # fmt: skip
        for s in range(3):
            curves[live, s] = sim.curves[inverse, h_index[:, s], :]  # [L, G]
        vol[live] = sim.vol_daily[inverse]
    levels, binding = levels_for_costs(curves, miss, knobs.alarm_cost_usd, hard,
                                       bounds=(knobs.min_probability, knobs.max_probability))  # fmt: skip
    labels = _labels(book, comp, emode)
    pl = PolicyLevels(
        levels=levels, probability=np.zeros((p_count, 3)), reasons=(), classes=labels, horizons_hours=horizons,
        miss_cost_usd=miss, vol_daily=vol, curves=curves, hard=binding,
    )  # fmt: skip
    prob = probability_at(pl, current)
    prob[~comp.has_debt] = 0.0
    reasons = tuple(level_reason(pl, i, 1) if comp.has_debt[i] else f"{labels[i]}: no debt" for i in range(p_count))
    return replace(pl, probability=prob, reasons=reasons)


def levels_for_costs(
    curves: Array,
    miss_cost_usd: Array,
    alarm_cost_usd: Triple | Array,
    hard: Array | None = None,
    *,
    bounds: tuple[Triple | Array, Triple | Array] | None = None,
) -> tuple[Array, NDArray[np.bool_]]:
    """The levels (``[P, 3]``) and where a hard level binds (``[P, 3]``) from simulated curves
    (``PolicyLevels.curves``) and costs: severity ``s`` starts where
    ``P(HF < 1 within h_s) >= p_s``, ``p_s = clip(alarm_cost_s / miss_cost, min_s, max_s)`` with
    ``bounds = (min, max)`` per severity (``PolicyConfig.min_probability / max_probability``;
    None: unbounded, a position whose miss costs less than the alarm is then never alerted);
    then non-increasing from watch to critical, never below 1, never below ``hard``. The curves
    do not depend on the costs, so a backtest can evaluate other alarm costs (``alarm_cost_usd``
    may be ``[3]`` or ``[P, 3]``) without simulating again; :func:`position_levels` uses exactly
    this."""
    miss = np.asarray(miss_cost_usd, dtype=np.float64)
    alarm = np.broadcast_to(np.asarray(alarm_cost_usd, dtype=np.float64), (miss.size, 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        target = np.where(miss[:, None] > 0, alarm / np.where(miss > 0, miss, 1.0)[:, None], np.inf)
    if bounds is not None:  # [3] or [P, 3] (per-position knobs)
        lo, hi = (np.broadcast_to(np.asarray(b, dtype=np.float64), target.shape) for b in bounds)
        target = np.clip(target, lo, hi)
    levels = np.ones((miss.size, 3))
    for s in range(3):
        lv = np.exp(_interp_level(curves[:, s, :], np.minimum(target[:, s], 1.0)))
        levels[:, s] = np.where(target[:, s] >= 1.0, 1.0, lv)
    levels = np.minimum.accumulate(np.maximum(levels, 1.0), axis=1)  # watch >= warning >= critical >= 1
    floor = np.ones_like(levels) if hard is None else np.asarray(hard, dtype=np.float64)
    binding: NDArray[np.bool_] = (floor > levels) & (floor > 1.0)
    out: Array = np.minimum.accumulate(np.maximum(levels, floor), axis=1)
    return out, binding


def level_reason(pl: PolicyLevels, i: int, severity: int) -> str:
    """Plain words for position ``i``'s level of ``severity`` (0 watch, 1 warning, 2 critical):
    ``"SOL/USDC, 24 h: warn at 1.31 (vol 4.1 %/day)"``."""
    verb = ("watch", "warn", "critical")[severity]
    lvl = float(pl.levels[i, severity])
    hours = float(pl.horizons_hours[i, severity]) if pl.horizons_hours.size else 0.0
    why = "hard level" if pl.hard.size and bool(pl.hard[i, severity]) else f"vol {pl.vol_daily[i] * 100:.1f} %/day"
    return f"{pl.classes[i]}, {hours:.3g} h: {verb} at {lvl:.2f} ({why})"


def _labels(book: Book, comp: _Composition, emode: Sequence[str] | None) -> tuple[str, ...]:
    """``"WETH+WBTC/USDC"`` (largest share first) per position, once per composition class."""
    syms = book.symbols
    by_key: dict[bytes, str] = {}
    keys = comp.keys()
    out: list[str] = []
    for i in range(book.size):
        key = keys[i].tobytes()
        label = by_key.get(key)
        if label is None:
            c_order = [j for j in np.argsort(-comp.coll_units[i], kind="stable") if comp.coll_units[i, j] > 0]
            d_order = [j for j in np.argsort(-comp.debt_units[i], kind="stable") if comp.debt_units[i, j] > 0]
            label = f"{'+'.join(syms[j] for j in c_order) or '-'}/{'+'.join(syms[j] for j in d_order) or '-'}"
            by_key[key] = label
        out.append(f"{label} {emode[i]}" if emode is not None and emode[i] else label)
    return tuple(out)


# -- the cache: levels recomputed when composition or volatility moves -----------------------


@dataclass(slots=True)
class _Row:
    key: bytes
    debt: float
    levels: Array  # [3]
    curves: Array  # [3, G]
    reason: str
    label: str
    horizons: Array  # [3]
    miss: float
    vol: float
    hard: NDArray[np.bool_]


@dataclass(slots=True)
class _MarketEntry:
    symbols: tuple[str, ...]
    cfg: PolicyConfig
    sigma: Array
    computed_at: float
    observe_hours: float
    rows: dict[str, _Row]


@dataclass
class LevelCache:
    """Levels per (market, account), recomputed only when the position's composition (its
    rounded collateral / debt shares, utilisation class), its debt (by ``recompute_debt_change``)
    or the market's volatility state (any asset's sigma by ``recompute_vol_change``) moves, or
    ``recompute_after_s`` passed; the probability at the current HF is re-read every call.
    ``recomputed`` counts positions recomputed by the last call."""

    markets: dict[str, _MarketEntry] = field(default_factory=dict)
    recomputed: int = 0

    def levels_for(
        self,
        book: Book,
        market: MarketState,
        cfg: PolicyConfig,
        now: float,
        *,
        observe_hours: float = 0.0,
        hf: Array | None = None,
        emode: Sequence[str] | None = None,
    ) -> PolicyLevels:
        t_now = finite_number(now, "now")
        sigma = volatility_now(market, cfg)
        entry = self.markets.get(book.market)
        stale = (
            entry is None or entry.symbols != book.symbols or entry.cfg != cfg
            or entry.observe_hours != observe_hours or t_now - entry.computed_at >= cfg.recompute_after_s
            or _vol_moved(entry.sigma, sigma, cfg.recompute_vol_change)
        )  # fmt: skip
        if stale or entry is None:
            entry = _MarketEntry(book.symbols, cfg, sigma, t_now, observe_hours, {})
            self.markets[book.market] = entry
        comp = _composition(book, market, cfg)
        debt = book.debt.sum(axis=1)
        all_keys = comp.keys()
        keys = [all_keys[i].tobytes() + comp.util_mult[i].tobytes() for i in range(book.size)]
        todo = []
        for i, acc in enumerate(book.accounts):
            row = entry.rows.get(acc)
            moved = row is None or row.key != keys[i] or _debt_moved(row.debt, float(debt[i]), cfg)
            if moved:
                todo.append(i)
        if todo:
            sub = book.with_rows(np.asarray(todo, dtype=np.int64))
            fresh = position_levels(sub, market, cfg, observe_hours=observe_hours,
                                    emode=None if emode is None else [emode[i] for i in todo])  # fmt: skip
            for n, i in enumerate(todo):
                entry.rows[book.accounts[i]] = _Row(
                    keys[i], float(debt[i]), fresh.levels[n], fresh.curves[n], fresh.reasons[n], fresh.classes[n],
                    fresh.horizons_hours[n], float(fresh.miss_cost_usd[n]), float(fresh.vol_daily[n]), fresh.hard[n],
                )  # fmt: skip
        self.recomputed = len(todo)
        rows = [entry.rows[a] for a in book.accounts]
        pl = PolicyLevels(
            levels=np.array([r.levels for r in rows]).reshape(-1, 3),
            probability=np.zeros((len(rows), 3)),
            reasons=tuple(r.reason for r in rows),
            classes=tuple(r.label for r in rows),
            horizons_hours=np.array([r.horizons for r in rows]).reshape(-1, 3),
            miss_cost_usd=np.array([r.miss for r in rows], dtype=np.float64),
            vol_daily=np.array([r.vol for r in rows], dtype=np.float64),
            curves=np.array([r.curves for r in rows]).reshape(-1, 3, PROB_GRID.size),
            hard=np.array([r.hard for r in rows], dtype=bool).reshape(-1, 3),
        )
        current = book.health_factors() if hf is None else np.asarray(hf, dtype=np.float64)
        prob = probability_at(pl, current)
        prob[~comp.has_debt] = 0.0
        return replace(pl, probability=prob)


def _vol_moved(before: Array, after: Array, tolerance: float) -> bool:
    if before.shape != after.shape:
        return True
    ok = np.isfinite(before) & np.isfinite(after) & (before > 0) & (after > 0)
    if (np.isfinite(before) != np.isfinite(after)).any():
        return True
    if not ok.any():
        return False
    return bool((np.abs(np.log(after[ok] / before[ok])) > math.log1p(tolerance)).any())


def _debt_moved(before: float, after: float, cfg: PolicyConfig) -> bool:
    if before <= 0 or after <= 0:
        return (before > 0) != (after > 0)
    return abs(math.log(after / before)) > math.log1p(cfg.recompute_debt_change)


# -- internals ------------------------------------------------------------------------------


def _check_knobs(reaction: object, alarm: object, p_min: object, p_max: object) -> None:
    """The four per-severity knobs are consistent (positive, horizons not increasing towards
    critical, probabilities in (0, 1] with min <= max)."""
    for name, values in (("reaction_hours", reaction), ("alarm_cost_usd", alarm)):
        vals = _triple(values, name)
        if not all(v > 0 for v in vals):
            raise InputError(f"{name} must be > 0 for watch, warning, critical, got {vals}")
    r = _triple(reaction, "reaction_hours")
    if not r[0] >= r[1] >= r[2]:
        raise InputError(f"reaction_hours must not increase from watch to critical, got {r}")
    p_lo = _triple(p_min, "min_probability")
    p_hi = _triple(p_max, "max_probability")
    for name, p_vals in (("min_probability", p_lo), ("max_probability", p_hi)):
        if not all(0.0 < v <= 1.0 for v in p_vals):
            raise InputError(f"{name} must be in (0, 1] for watch, warning, critical, got {p_vals}")
    if not all(a <= b for a, b in zip(p_lo, p_hi, strict=True)):
        raise InputError(f"min_probability must not exceed max_probability, got {p_lo} and {p_hi}")


def _merge(base: Triple, layers: Sequence[OptTriple]) -> Triple:
    """``base`` with each layer's set values on top, later layers (more specific) winning."""
    out = list(base)
    for layer in layers:
        for s, value in enumerate(layer):
            if value is not None:
                out[s] = float(value)
    return out[0], out[1], out[2]


def _triple(values: object, what: str) -> Triple:
    if not isinstance(values, tuple | list) or len(values) != 3:
        raise InputError(f"{what} must have 3 values (watch, warning, critical), got {values!r}")
    a, b, c = (finite_number(v, what) for v in values)
    return a, b, c


def _symbols(symbols: Sequence[str]) -> list[str]:
    if isinstance(symbols, str) or not symbols:
        raise InputError(f"symbols must be a non-empty sequence of names, got {symbols!r}")
    return list(symbols)
