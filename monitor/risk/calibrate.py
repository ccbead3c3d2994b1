"""Liquidation-threshold calibration for ONE collateral asset: the curves LT -> bad debt.

For a collateral asset ``j`` of a :class:`~monitor.risk.book.Book`, every candidate
liquidation threshold ``LT'`` of a grid is stressed (a) under each NAMED historical crash, one
curve per crash, and (b) under Monte Carlo paths, reported apart. A liquidation happens a
``delay`` after the position becomes liquidatable, at the price THEN (the move over the delay),
and the seized collateral is sold into a constant-product market of the given depth, which moves
the price and liquidates more (a cascade, solved to its fixed point). The recommendation is the
highest ``LT'`` that passes both tests, with the constraint that binds named beside it; RiskDAO's
smart LTV is the reference. All amounts are USD at the book's prices.

Model
-----
1. **Re-parameterised book** (:func:`reparameterise`). The current ``LT_j`` and ``LTV_j`` are
   the medians over the holders of ``j``, ``gap = LT_j - LTV_j``; a candidate ``LT'`` comes with
   ``LTV' = max(0, LT' - gap)``. A holder keeps its borrow usage ``u = clip(D / sum(c * LTV), 0, 1)``
   and borrows ``u * sum(c * LTV')``, its debt scaled across its debt assets. Positions without
   ``j`` are left out: every curve is the bad debt of the holders of ``j``.

2. **Scenarios as paths** (:class:`StressPaths`, :func:`stress_paths`). A scenario gives each
   asset its LOW ``M`` (the deepest multiplier of the window against today) and its adverse
   move over the delay ``delta`` (a log size >= 0). Prices follow ``m(t) = M ** t``, t in [0, 1]
   (all assets together, log-linearly). A position is liquidated iff its HF is below 1 at the
   low; it becomes liquidatable at ``t*`` (HF(t*) = 1, a bracketed root) and is liquidated a
   delay later, at ``log m_e = t* log M - min(delta, (1 - t*) |log M|)`` per falling asset (the
   move over the delay, never past the low; rising assets likewise upwards).

   - *Named crashes*: every event of :data:`~monitor.risk.scenarios.HISTORICAL_EVENTS`; ``M`` =
     the lowest intraday low of the event window against the close before it; ``delta`` from
     the worst ``h``-day move of the window (close before -> lowest low), ``h = 1, 2, ...``,
     interpolated in sqrt(time) between whole days and ``delta(d < 24 h) = delta(1 day) *
     sqrt(d / 24 h)`` (the data are daily: a Brownian within-day path is the stated assumption;
     a 1 h delay on 2020-03-12 is ETH -10.8 % of its -43 % day). So 1 h and 24 h differ.
   - *Monte Carlo*: ``n_paths`` stationary-block-bootstrap paths of ``W = max(1, ceil(d / 24 h))``
     joint days (:func:`~monitor.risk.scenarios.monte_carlo_bootstrap_paths`; ``M`` = the path
     minimum with intraday lows), ``delta = |log M| * min(1, sqrt(d / W days))``.

3. **Bad debt** at the liquidation prices ``m_e``: ``max(0, D_e - C_e / bonus_avg)`` with
   ``C_e = sum(c m_e)``, ``D_e = sum(d m_e)``, ``bonus_avg`` the collateral-weighted bonus
   (1.05 == +5 %). The liquidator seizes ``min(C_e, D_e * bonus_avg)`` pro rata, so
   ``V = c_j m_e,j * min(1, D_e bonus_avg / C_e)`` of ``j`` is sold.

4. **Cascade.** Selling ``V_s`` (all liquidations of scenario ``s``) into a constant-product
   pool of USD depth ``L`` moves the price by ``phi_s = (L / (L + V_s)) ** 2`` (the marginal price
   after the sale). The low of ``j`` becomes ``M_j * phi_s``, which liquidates more positions, and
   each liquidation executes lower still by the impact of the sales before it: the positions of
   the scenario in trigger order, the ``k``-th at ``(L / (L + V_1 + ... + V_{k-1})) ** 2`` on top of the
   market's move over the delay (never below the deepened low; no replenishment of the depth
   during the crash, a conservative choice). More sold, lower price, more sold: ``phi`` is
   iterated from 1 to its fixed point (monotone); ``cascade=False`` has no price impact.

5. **Curves and recommendation** (:func:`calibrate`). Monte Carlo: mean, VaR95, VaR99, VaR at
   ``quantile`` and ES99 of the bad debt per ``LT'``. Crashes: each crash's bad debt per
   ``LT'``, apart. Weighting (stated): every named crash has weight 1 (``crash_weights``
   changes it; 0 drops a crash); the recommendation is the HIGHEST ``LT'`` with
   ``VaR_q(MC) <= tolerance x debt`` (1 % at q = 0.99) AND ``weight_k x crash_k <= crash_tolerance
   x debt`` for every crash (default 2 %): a crash is a scenario the parameter must survive,
   not one row among thousands of ordinary days. The explanation names the constraint that
   binds at the next grid point (a crash or Monte Carlo), the break-even LT of the binding
   crash's delay move ``exp(-delta_j) / bonus`` (a position triggered mid-crash is liquidated at
   ``exp(-delta)`` of its trigger price; it leaves bad debt iff ``LT' x bonus`` exceeds that), and
   warns when the recommendation sits at the sweep's edge.

6. **RiskDAO smart LTV** (:func:`smart_ltv`): ``LTV = exp(-c * sigma / sqrt(l / d)) - beta``,
   ``sigma`` the daily EWMA volatility scaled to the delay, ``d`` the debt borrowed against
   ``j`` (pro rata of weighted collateral), ``beta`` the bonus, and ``l`` the volume sellable
   within the bonus slippage (:func:`sellable_volume`): for a constant-product pool of USD
   depth ``L``, selling ``V`` returns ``V L / (L + V)``, an average slippage ``V / (L + V)``,
   so ``l = L * beta / (1 - beta)`` (5 % of 5e6 -> 263,158 USD), not the whole depth.

Everything here is pure numpy apart from the price reads of ``scenarios`` and
``volatility``; randomness only through an injected :class:`numpy.random.Generator`.
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
from monitor.risk.book import Array, Book
from monitor.risk.checks import finite_number
from monitor.risk.scenarios import (
    HISTORICAL_EVENTS,
    historical_moves,
    monte_carlo_bootstrap_paths,
    scenario_names,
)
from monitor.risk.stress import check_multipliers
from monitor.risk.volatility import asset_volatilities, scale_sigma

__all__ = [
    "DEFAULT_GRID",
    "PUBLISHED_LT_RANGES",
    "CalibrationPoint",
    "CalibrationResult",
    "CrashCurve",
    "StressPaths",
    "bad_debt_with_slippage",
    "calibrate",
    "delayed_bad_debt",
    "horizon_days",
    "reparameterise",
    "sellable_volume",
    "smart_ltv",
    "stress_paths",
]

DEFAULT_GRID: tuple[float, ...] = tuple(round(0.40 + 0.01 * i, 2) for i in range(56))  # 0.40 .. 0.95
HOURS_PER_DAY = 24.0
_CHUNK = 256  # scenarios per block: memory stays O(chunk x positions)
_ROOT_STEPS = 40  # bracketed root of HF(t) = 1 (Illinois false position; exact in one step for one moving asset)
_CASCADE_STEPS = 40
_CASCADE_TOL = 1e-4  # relative change of the price factor (0.01 %) at which the cascade stops
# Published risk-manager LTs for Aave V3 Ethereum collateral (Chaos Labs / Gauntlet / LlamaRisk
# recommendations as set 2023-2024: WETH 82.5-86 %, WBTC 75-80 %), for comparison in the report.
PUBLISHED_LT_RANGES: Mapping[str, tuple[float, float]] = {
    "WETH": (0.825, 0.86), "ETH": (0.825, 0.86), "WBTC": (0.75, 0.80), "BTC": (0.75, 0.80),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class CalibrationPoint:
    """Monte Carlo bad-debt statistics for one candidate LT (USD unless noted)."""

    lt: float
    ltv: float
    mean: float
    var95: float
    var99: float
    es99: float
    total_debt: float  # re-parameterised debt of the positions holding the asset
    liquidatable_mean: float  # mean NUMBER of liquidated positions per scenario
    var_q: float = math.nan  # VaR at the calibration's quantile (the recommendation's test)

    def fraction(self, value: float) -> float:
        """``value`` as a fraction of :attr:`total_debt` (0 without debt)."""
        return value / self.total_debt if self.total_debt > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "lt": self.lt,
            "ltv": self.ltv,
            "mean": self.mean,
            "var95": self.var95,
            "var99": self.var99,
            "es99": self.es99,
            "var_q": self.var_q,
            "total_debt": self.total_debt,
            "mean_fraction": self.fraction(self.mean),
            "var95_fraction": self.fraction(self.var95),
            "var99_fraction": self.fraction(self.var99),
            "es99_fraction": self.fraction(self.es99),
            "liquidatable_mean": self.liquidatable_mean,
        }


@dataclass(frozen=True, slots=True)
class CrashCurve:
    """One named crash across the LT grid: its bad debt (USD and fraction of debt) per point."""

    name: str
    weight: float
    low: float  # the calibrated asset's low in the crash (multiplier)
    delay_move: float  # its adverse log move over the delay
    bad_debt: tuple[float, ...]
    fraction: tuple[float, ...]
    liquidated: tuple[int, ...]
    sold_usd: tuple[float, ...]  # collateral of the asset sold into the market (at the fixed point)
    cascade: tuple[float, ...]  # the cascade's price factor phi at the fixed point

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "weight": self.weight, "low": self.low, "delay_move": self.delay_move,
            "move_over_delay": math.expm1(-self.delay_move), "bad_debt": list(self.bad_debt),
            "fraction": list(self.fraction), "liquidated": list(self.liquidated), "sold_usd": list(self.sold_usd),
            "cascade_price_factor": list(self.cascade),
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class CalibrationResult:
    asset: str
    current_lt: float
    current_ltv: float
    points: tuple[CalibrationPoint, ...]  # ascending LT: Monte Carlo
    recommended_lt: float | None
    recommended_ltv: float | None
    tolerance: float
    quantile: float
    smart_ltv: float
    sigma_delay: float
    scenarios: int  # Monte Carlo scenarios
    delay_hours: float
    liquidity_usd: float
    crashes: tuple[CrashCurve, ...] = ()
    crash_tolerance: float = 0.02
    sellable_usd: float = 0.0  # RiskDAO's l: volume sellable within the bonus slippage
    bonus: float = 0.0  # the asset's liquidation bonus (fraction)
    binding: str = ""  # "crash:<name>", "monte-carlo", "edge" or "" (nothing binds)
    explanation: str = ""
    at_edge: bool = False
    published_range: tuple[float, float] | None = None
    cascade: bool = True
    mc_sold_usd_mean: tuple[float, ...] = field(default=())

    def point(self, lt: float) -> CalibrationPoint:
        """The point of the grid nearest to ``lt``."""
        return min(self.points, key=lambda p: abs(p.lt - lt))

    def lts(self) -> tuple[float, ...]:
        return tuple(p.lt for p in self.points)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (floats, ints, strings, None, lists, dicts)."""
        current = self.point(self.current_lt)
        return {
            "asset": self.asset,
            "current_lt": self.current_lt,
            "current_ltv": self.current_ltv,
            "current": current.as_dict(),
            "recommended_lt": self.recommended_lt,
            "recommended_ltv": self.recommended_ltv,
            "binding": self.binding,
            "explanation": self.explanation,
            "at_edge": self.at_edge,
            "published_range": None if self.published_range is None else list(self.published_range),
            "tolerance": self.tolerance,
            "crash_tolerance": self.crash_tolerance,
            "quantile": self.quantile,
            "weighting": "every named crash must stay within crash_tolerance x debt (times its weight); "
            "Monte Carlo VaR at the quantile within tolerance x debt",
            "smart_ltv": self.smart_ltv,
            "smart_ltv_sellable_usd": self.sellable_usd,
            "bonus": self.bonus,
            "sigma_delay": self.sigma_delay,
            "scenarios": self.scenarios,
            "delay_hours": self.delay_hours,
            "liquidity_usd": self.liquidity_usd,
            "cascade": self.cascade,
            "lts": list(self.lts()),
            "points": [p.as_dict() for p in self.points],
            "crashes": [c.as_dict() for c in self.crashes],
            "mc_sold_usd_mean": list(self.mc_sold_usd_mean),
        }


# -- stress paths ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StressPaths:
    """Scenario rows over the assets of a book: each asset's low and its adverse move over the delay."""

    low: Array  # [S, A] deepest multiplier of the scenario window against today (> 0)
    delay_move: Array  # [S, A] |log move| over the liquidation delay (>= 0, <= |log low|)
    labels: tuple[str, ...]  # "crash:<event>" or "monte-carlo" (or the caller's)

    def __post_init__(self) -> None:
        low = np.asarray(self.low, dtype=np.float64)
        move = np.asarray(self.delay_move, dtype=np.float64)
        if low.ndim != 2 or move.shape != low.shape:
            raise InputError(f"low and delay_move must be [S, A] arrays of one shape, got {low.shape}, {move.shape}")
        if not (np.all(np.isfinite(low)) and np.all(low > 0)):
            raise InputError("scenario lows must be finite and > 0")
        if not (np.all(np.isfinite(move)) and np.all(move >= 0)):
            raise InputError("delay moves must be finite and >= 0 (a log size)")
        if len(self.labels) != low.shape[0]:
            raise InputError(f"{len(self.labels)} labels for {low.shape[0]} scenario rows")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "delay_move", np.minimum(move, np.abs(np.log(low))))

    @property
    def size(self) -> int:
        return int(self.low.shape[0])

    def rows(self, mask: NDArray[np.bool_]) -> StressPaths:
        return StressPaths(self.low[mask], self.delay_move[mask], tuple(np.asarray(self.labels)[mask]))


def stress_paths(symbols: Sequence[str], *, delay_hours: float, n_paths: int, rng: np.random.Generator) -> StressPaths:
    """The named crashes (labels ``"crash:<event>"``, oldest first) then ``n_paths`` Monte Carlo
    paths (``"monte-carlo"``) over the liquidation delay; see the module docstring, point 2.
    Columns follow ``symbols``; a symbol without price data keeps low 1 and no move."""
    if isinstance(symbols, str):
        raise InputError(f"symbols must be a sequence of names, got the string {symbols!r}")
    names = list(symbols)
    if not names:
        raise InputError("no asset symbols given")
    delay = _check_delay(delay_hours)
    if isinstance(n_paths, bool) or not isinstance(n_paths, int | np.integer) or n_paths < 0:
        raise InputError(f"n_paths must be an integer >= 0, got {n_paths!r}")
    if not isinstance(rng, np.random.Generator):
        raise InputError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}"
        )
    data = [_data_name(s) for s in names]
    lows, moves, labels = [], [], []
    for event in scenario_names():
        low, move = _crash_row(event, data, delay)
        lows.append(low)
        moves.append(move)
        labels.append(f"crash:{event}")
    low_arr, move_arr = np.vstack(lows), np.vstack(moves)
    if n_paths:
        with_data = [i for i, d in enumerate(data) if d is not None]
        if not with_data:
            raise InputError(
                f"no price data for any of {', '.join(names)}: cannot bootstrap; "
                f"known assets: {', '.join(price_data.ASSETS)} (pass scenarios explicitly)"
            )
        w = horizon_days(delay)
        mc_low = np.ones((int(n_paths), len(names)))
        _, minimum = monte_carlo_bootstrap_paths([names[i] for i in with_data], w, int(n_paths), rng)
        mc_low[:, with_data] = minimum
        rho = min(1.0, math.sqrt(delay / (HOURS_PER_DAY * w)))
        low_arr = np.vstack([low_arr, mc_low])
        move_arr = np.vstack([move_arr, np.abs(np.log(mc_low)) * rho])
        labels += ["monte-carlo"] * int(n_paths)
    return StressPaths(low_arr, move_arr, tuple(labels))


def delay_move_from_days(worst_by_days: Sequence[float], delay_hours: float) -> float:
    """The adverse log move over ``delay_hours`` from the worst whole-day moves ``[1 day, 2 days, ...]``
    (log sizes >= 0): sqrt-time below one day, interpolated in sqrt(time) between whole days, the
    last value beyond them."""
    delay = _check_delay(delay_hours)
    days = delay / HOURS_PER_DAY
    values = [0.0, *(max(0.0, float(v)) for v in worst_by_days)]
    if len(values) < 2:
        raise InputError("worst_by_days needs at least the worst 1-day move")
    if days >= len(values) - 1:
        return values[-1]
    lo = math.floor(days)
    hi = lo + 1
    if lo == 0:
        return values[1] * math.sqrt(days)
    frac = (math.sqrt(days) - math.sqrt(lo)) / (math.sqrt(hi) - math.sqrt(lo))
    return values[lo] + (values[hi] - values[lo]) * frac


def _crash_row(event: str, data: Sequence[str | None], delay: float) -> tuple[Array, Array]:
    spec = HISTORICAL_EVENTS[event]
    window = (pd.Timestamp(spec.end) - pd.Timestamp(spec.start)).days + 1
    full = historical_moves(event, window)
    need = min(window, max(1, math.ceil(delay / HOURS_PER_DAY - 1e-12)) + 1)
    by_days = [historical_moves(event, h) for h in range(1, need + 1)]
    low = np.ones(len(data))
    move = np.zeros(len(data))
    for i, name in enumerate(data):
        if name is None or name not in full:
            continue
        m = full[name].multiplier
        low[i] = m
        if m < 1.0:
            worst = [abs(math.log(min(1.0, moves[name].multiplier))) for moves in by_days if name in moves]
            move[i] = min(abs(math.log(m)), delay_move_from_days(worst, delay))
    return low, move


def horizon_days(delay_hours: float) -> int:
    """Monte Carlo window in whole days for a liquidation delay: ``max(1, ceil(delay / 24))``."""
    return max(1, math.ceil(_check_delay(delay_hours) / HOURS_PER_DAY - 1e-12))


def sellable_volume(depth_usd: float, slippage: float) -> float:
    """USD sellable into a constant-product pool of USD depth ``depth_usd`` at an average
    slippage of at most ``slippage`` (a fraction): ``L * s / (1 - s)``.

    Selling ``V`` (USD at the pre-trade price) into reserves ``(x, y = L)`` returns
    ``y - k / (x + V / p) = V L / (L + V)``, an average price ``L / (L + V)`` of the spot, so the
    slippage ``V / (L + V) <= s`` iff ``V <= L s / (1 - s)``.
    """
    depth = _check_liquidity(depth_usd)
    s = finite_number(slippage, "slippage")
    if not 0.0 <= s < 1.0:
        raise InputError(f"slippage must be a fraction in [0, 1) (0.05 for 5 %), got {slippage!r}")
    return depth * s / (1.0 - s)


# -- model --------------------------------------------------------------------------


def reparameterise(book: Book, column: int, lt: float, ltv: float) -> Book:
    """The book with asset ``column``'s LT set to ``lt`` and LTV to ``ltv`` for its holders.

    A position with collateral in ``column`` keeps its borrow usage
    ``u = clip(D / sum(c * LTV), 0, 1)`` (current LTVs) and borrows ``u * sum(c * LTV')``
    under the new LTV row, its debt scaled proportionally across its debt assets. Other
    positions are returned unchanged. See the module docstring.
    """
    j = _check_column(book, column)
    lt_new, ltv_new = _check_lt(lt, "lt"), finite_number(ltv, "ltv")
    if not 0.0 <= ltv_new <= lt_new:
        raise InputError(f"ltv must be in [0, lt] = [0, {lt_new}], got {ltv}")
    holders = book.collateral[:, j] > 0
    cap = (book.collateral * book.ltv).sum(axis=1)
    debt_total = book.debt.sum(axis=1)
    u = _usage(debt_total, cap)
    new_ltv_row = book.ltv.copy()
    new_ltv_row[holders, j] = ltv_new
    new_cap = (book.collateral * new_ltv_row).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(debt_total > 0, u * new_cap / np.where(debt_total > 0, debt_total, 1.0), 0.0)
    debt = np.where(holders[:, None], book.debt * scale[:, None], book.debt)
    new_lt = book.lt.copy()
    new_lt[holders, j] = lt_new
    # the protocol's rounding and close-factor rule stay the book's own
    return replace(book, debt=debt, lt=new_lt, ltv=new_ltv_row)


def bad_debt_with_slippage(book: Book, column: int, multipliers: Array, liquidity_usd: float) -> Array:
    """Bad debt ``[S]`` per scenario row, with asset ``column`` sold into depth ``liquidity_usd``:
    the INSTANTANEOUS model (liquidated at the scenario's prices, no delay, no cascade), kept for
    comparison with :func:`delayed_bad_debt`, which :func:`calibrate` uses.

    Liquidatable: ``sum(c m LT) < sum(d m)``. The scenario's slippage factor is
    ``L / (L + V)`` with ``V`` the shocked ``column`` collateral of its liquidatable
    positions; each of them counts that collateral at the factor, and its bad debt is
    ``max(0, D - C_eff / bonus_avg)``. Float64 throughout.
    """
    j = _check_column(book, column)
    liquidity = _check_liquidity(liquidity_usd)
    m = check_multipliers(book, multipliers)
    s = m.shape[0]
    wc_t = (book.collateral * book.lt).T
    d_t, c_t, cb_t = book.debt.T, book.collateral.T, (book.collateral * book.bonus).T
    c_j = book.collateral[:, j]
    bad = np.zeros(s)
    for lo in range(0, s, _CHUNK):
        mc = m[lo : lo + _CHUNK]
        debt = mc @ d_t
        si, pi = np.nonzero(mc @ wc_t < debt)
        if si.size == 0:
            continue
        coll = (mc @ c_t)[si, pi]
        bonus_sum = (mc @ cb_t)[si, pi]
        coll_j = mc[si, j] * c_j[pi]
        bad[lo : lo + mc.shape[0]] = _liquidation_bad_debt(
            si, mc.shape[0], debt[si, pi], coll, coll_j, bonus_sum, liquidity
        )
    return bad


def smart_ltv(sigma: float, liquidity_usd: float, debt_usd: float, bonus: float, c: float = 2.0) -> float:
    """RiskDAO smart LTV ``exp(-c * sigma / sqrt(l / d)) - bonus``, clipped to [0, 1].

    ``sigma``: volatility over the liquidation delay (a fraction); ``liquidity_usd``: ``l``, the
    volume sellable within the bonus slippage (> 0; :func:`sellable_volume`, NOT the whole depth);
    ``debt_usd``: the debt ``d`` borrowed against the asset (>= 0; 0 gives ``1 - bonus``);
    ``bonus``: the liquidation incentive as a FRACTION (0.05 for +5 %, not 1.05);
    ``c``: the confidence multiplier (> 0).
    """
    sig = finite_number(sigma, "sigma")
    if sig < 0:
        raise InputError(f"sigma must be >= 0, got {sigma}")
    liquidity = _check_liquidity(liquidity_usd)
    debt = finite_number(debt_usd, "debt_usd")
    if debt < 0:
        raise InputError(f"debt_usd must be >= 0, got {debt_usd}")
    beta = finite_number(bonus, "bonus")
    if not 0.0 <= beta < 1.0:
        raise InputError(
            f"bonus must be the liquidation incentive as a fraction in [0, 1) (0.05 for +5 %), got {bonus}"
        )
    conf = finite_number(c, "c")
    if conf <= 0:
        raise InputError(f"confidence multiplier c must be > 0, got {c}")
    value = math.exp(-conf * sig * math.sqrt(debt / liquidity)) - beta
    return min(1.0, max(0.0, value))


@dataclass(frozen=True, slots=True)
class DelayedOutcome:
    """Per scenario row: bad debt (USD), liquidated positions, collateral of the asset sold (USD)
    and the cascade's price factor ``phi`` at the fixed point."""

    bad_debt: Array
    liquidated: NDArray[np.int64]
    sold_usd: Array
    phi: Array


def delayed_bad_debt(
    book: Book,
    column: int,
    paths: StressPaths,
    liquidity_usd: float,
    *,
    cascade: bool = True,
    phi_start: Array | None = None,
) -> DelayedOutcome:
    """Bad debt of ``book`` per scenario of ``paths``, liquidated a delay after the trigger, the
    seized ``column`` collateral sold into depth ``liquidity_usd`` with the cascade solved to its
    fixed point (module docstring, points 2-4). Float64; the book as given (no re-parameterising).

    ``phi_start`` (per scenario, default 1) starts the fixed-point iteration: the iteration falls
    monotonically from any start above the fixed point, so the answer of a book that sells less
    (e.g. the next lower LT of a sweep) is a valid, faster start."""
    j = _check_column(book, column)
    liquidity = _check_liquidity(liquidity_usd)
    if not isinstance(paths, StressPaths):
        raise InputError(f"paths must be StressPaths (see stress_paths), got {type(paths).__name__}")
    if paths.low.shape[1] != len(book.symbols):
        raise InputError(f"paths have {paths.low.shape[1]} asset columns, the book {len(book.symbols)}")
    rows = book.debt.sum(axis=1) > 0
    # only the assets the positions hold or owe take part (a market's other reserves cost time only)
    used = (book.collateral[rows] > 0).any(axis=0) | (book.debt[rows] > 0).any(axis=0)
    used[j] = True
    cols = np.flatnonzero(used)
    j = int(np.searchsorted(cols, j))
    w, d = (book.collateral * book.lt)[np.ix_(rows, cols)], book.debt[np.ix_(rows, cols)]
    c, cb = book.collateral[np.ix_(rows, cols)], (book.collateral * book.bonus)[np.ix_(rows, cols)]
    s = paths.size
    ell0, delta = np.log(paths.low[:, cols]), paths.delay_move[:, cols]
    phi = (
        np.ones(s)
        if phi_start is None or not cascade
        else np.clip(np.asarray(phi_start, dtype=np.float64), 1e-12, 1.0).copy()
    )
    if phi.shape != (s,):
        raise InputError(f"phi_start must have one value per scenario ({s}), got shape {phi.shape}")
    depth = liquidity if cascade else math.inf
    bad, sold = np.zeros(s), np.zeros(s)
    count = np.zeros(s, dtype=np.int64)
    active = np.ones(s, dtype=bool)
    for _ in range(_CASCADE_STEPS if cascade else 1):
        todo = np.flatnonzero(active)
        if todo.size == 0:
            break
        for lo in range(0, todo.size, _CHUNK):
            idx = todo[lo : lo + _CHUNK]
            ell = ell0[idx].copy()
            ell[:, j] += np.log(phi[idx])
            bad[idx], count[idx], sold[idx] = _delayed_outcome(ell, delta[idx], w, d, c, cb, j, depth)
        if not cascade:
            break
        # plain iteration phi <- F(V(phi)): from any start above the fixed point it falls monotonically to it
        new_phi = (liquidity / (liquidity + sold)) ** 2
        active = np.abs(new_phi - phi) > _CASCADE_TOL * phi
        phi = np.where(active, new_phi, phi)
    return DelayedOutcome(bad, count, sold, phi)


def _delayed_outcome(
    ell: Array, delta: Array, w: Array, d: Array, c: Array, cb: Array, j: int, depth: float
) -> tuple[Array, NDArray[np.int64], Array]:
    n = ell.shape[0]
    e1 = np.exp(ell)
    weighted1, debt1 = e1 @ w.T, e1 @ d.T  # [n, P] at the lows
    si, pi = np.nonzero(weighted1 < debt1)
    if si.size == 0:
        return np.zeros(n), np.zeros(n, dtype=np.int64), np.zeros(n)
    lk, wk, dk = ell[si], w[pi], d[pi]
    t_star = _trigger_time(lk, wk, dk, weighted1[si, pi], debt1[si, pi])
    move = delta[si]
    left, sold_j = _execute(t_star, lk, move, c[pi], dk, cb[pi], j)
    if math.isfinite(depth):
        # the sales of the positions triggered before this one (same scenario) push its price down further
        order = np.lexsort((t_star, si))
        sorted_sold = sold_j[order]
        excl = np.cumsum(sorted_sold) - sorted_sold
        first = np.searchsorted(si[order], si[order], side="left")
        impact = np.empty_like(excl)
        impact[order] = 2.0 * np.log1p((excl - excl[first]) / depth)
        move = move.copy()
        move[:, j] += impact
        left, sold_j = _execute(t_star, lk, move, c[pi], dk, cb[pi], j)
    bad = np.bincount(si, weights=left, minlength=n).astype(np.float64, copy=False)
    sold = np.bincount(si, weights=sold_j, minlength=n).astype(np.float64, copy=False)
    return bad, np.bincount(si, minlength=n).astype(np.int64, copy=False), sold


def _execute(t_star: Array, ell: Array, move: Array, c: Array, d: Array, cb: Array, j: int) -> tuple[Array, Array]:
    """Bad debt and sold ``j`` collateral of pairs liquidated ``move`` after their trigger ``t_star``."""
    x = t_star[:, None] * ell + np.sign(ell) * np.minimum(move, (1.0 - t_star)[:, None] * np.abs(ell))
    ex = np.exp(x)
    coll = (c * ex).sum(axis=1)
    debt = (d * ex).sum(axis=1)
    bonus_sum = (cb * ex).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        recovered = np.where(bonus_sum > 0, coll * coll / np.where(bonus_sum > 0, bonus_sum, 1.0), 0.0)
        seized = np.where(coll > 0, np.minimum(1.0, debt * bonus_sum / np.where(coll > 0, coll * coll, 1.0)), 0.0)
    left: Array = np.maximum(0.0, debt - recovered)
    sold: Array = c[:, j] * ex[:, j] * seized
    return left, sold


def _trigger_time(ell: Array, w: Array, d: Array, weighted1: Array, debt1: Array) -> Array:
    """``t*`` in [0, 1] with ``sum(w e^{t ell}) = sum(d e^{t ell})`` per pair (liquidatable at t = 1);
    0 for a pair already liquidatable today. Illinois false position on the log ratio, which is
    exactly linear (one step) when one asset moves; to |log HF| < 1e-10."""
    with np.errstate(divide="ignore", invalid="ignore"):
        f0 = np.log(w.sum(axis=1)) - np.log(d.sum(axis=1))
        f1 = np.log(weighted1) - np.log(debt1)
    out = np.zeros(f0.size)
    idx = np.flatnonzero(f0 > 0)  # the others are liquidatable already (or have no weighted collateral)
    a, b = np.zeros(idx.size), np.ones(idx.size)
    fa, fb = f0[idx], f1[idx]
    for _ in range(_ROOT_STEPS):
        live = np.abs(fb) > 1e-10
        if not live.any():
            break
        if not live.all():
            out[idx[~live]] = b[~live]
            idx, a, b, fa, fb = idx[live], a[live], b[live], fa[live], fb[live]
        t = (a * fb - b * fa) / (fb - fa)  # fa and fb of opposite signs: a bracket
        et = np.exp(t[:, None] * ell[idx])
        with np.errstate(divide="ignore", invalid="ignore"):
            ft = np.log((w[idx] * et).sum(axis=1)) - np.log((d[idx] * et).sum(axis=1))
        ft = np.where(np.isfinite(ft), ft, -1.0)
        flip = ft * fb < 0
        a = np.where(flip, b, a)
        fa = np.where(flip, fb, fa * 0.5)
        b, fb = t, ft
    out[idx] = b
    return np.clip(out, 0.0, 1.0)


# -- calibration --------------------------------------------------------------------


def calibrate(
    book: Book,
    symbol: str,
    *,
    paths: StressPaths | None = None,
    multipliers: Array | None = None,
    labels: Sequence[str] | None = None,
    delay_hours: float = 1.0,
    liquidity_usd: float = 5e6,
    tolerance: float = 0.01,
    crash_tolerance: float = 0.02,
    quantile: float = 0.99,
    grid: Sequence[float] | None = None,
    n_paths: int = 2000,
    rng: np.random.Generator | None = None,
    c: float = 2.0,
    sigma_daily: float | None = None,
    crash_weights: Mapping[str, float] | None = None,
    cascade: bool = True,
) -> CalibrationResult:
    """Sweep ``symbol``'s liquidation threshold and recommend one (see the module docstring).

    The scenarios are :func:`stress_paths` (the named crashes and ``n_paths`` Monte Carlo paths,
    ``rng`` drives the bootstrap: pass a seeded generator for reproducible output), or ``paths``,
    or ``multipliers`` ``[S, A]`` taken as one-day lows (``delta = |log low| * sqrt(delay / 24 h)``),
    each row labelled by ``labels`` (``"crash:<name>"`` rows are crashes, the others Monte Carlo;
    default all Monte Carlo). ``crash_weights`` (by event name) scale each crash's bad debt in its
    test (default 1). ``sigma_daily`` overrides the asset's EWMA daily volatility.
    """
    j = book.column(symbol)
    asset = book.symbols[j]
    liquidity = _check_liquidity(liquidity_usd)
    tol = _fraction(tolerance, "tolerance")
    crash_tol = _fraction(crash_tolerance, "crash_tolerance")
    q = finite_number(quantile, "quantile")
    if not 0.5 < q < 1.0:
        raise InputError(f"quantile must be in (0.5, 1) (0.99 for VaR99), got {quantile}")
    delay = _check_delay(delay_hours)
    holders = book.collateral[:, j] > 0
    if not holders.any():
        raise InputError(f"no position uses {asset} as collateral in market {book.market}: nothing to calibrate")
    sub = book.with_rows(holders)
    current_lt = float(np.median(sub.lt[:, j]))
    current_ltv = float(np.median(sub.ltv[:, j]))
    gap = current_lt - current_ltv
    lts = _grid(grid, current_lt)
    ltvs = np.maximum(0.0, lts - gap)

    scen = _scenarios(book, paths, multipliers, labels, delay, n_paths, rng)
    label_arr = np.asarray(scen.labels)
    is_crash = np.char.startswith(label_arr.astype(str), "crash:")
    weights = _crash_weights(crash_weights, [str(x)[6:] for x in label_arr[is_crash]])

    sigma_day = asset_volatilities([asset])[asset] if sigma_daily is None else finite_number(sigma_daily, "sigma_daily")
    sigma_delay = scale_sigma(sigma_day, delay)
    bonus_j = min(0.999, max(0.0, float(np.median(sub.bonus[:, j])) - 1.0))
    sellable = sellable_volume(liquidity, bonus_j)
    reference = smart_ltv(sigma_delay, sellable, _debt_against(sub, j), bonus_j, c)

    g_n, s_n = lts.size, scen.size
    bad = np.zeros((g_n, s_n))
    count = np.zeros((g_n, s_n), dtype=np.int64)
    sold = np.zeros((g_n, s_n))
    phi = np.ones((g_n, s_n))
    total = np.zeros(g_n)
    for g in range(g_n):
        rebook = reparameterise(sub, j, float(lts[g]), float(ltvs[g]))
        total[g] = float(rebook.debt.sum())
        out = delayed_bad_debt(rebook, j, scen, liquidity, cascade=cascade, phi_start=phi[g - 1] if g else None)
        bad[g], count[g], sold[g], phi[g] = out.bad_debt, out.liquidated, out.sold_usd, out.phi

    mc = ~is_crash
    mc_bad = bad[:, mc] if mc.any() else np.zeros((g_n, 1))
    var95, var99 = np.quantile(mc_bad, 0.95, axis=1), np.quantile(mc_bad, 0.99, axis=1)
    var_q = np.quantile(mc_bad, q, axis=1)
    es99 = _expected_shortfall(mc_bad, 0.99)
    mc_count = count[:, mc] if mc.any() else np.zeros((g_n, 1))
    points = tuple(
        CalibrationPoint(
            lt=float(lts[g]), ltv=float(ltvs[g]), mean=float(mc_bad[g].mean()), var95=float(var95[g]),
            var99=float(var99[g]), es99=float(es99[g]), total_debt=float(total[g]),
            liquidatable_mean=float(mc_count[g].mean()), var_q=float(var_q[g]),
        )
        for g in range(g_n)
    )  # fmt: skip
    crash_rows = np.flatnonzero(is_crash)
    crashes = tuple(
        CrashCurve(
            name=str(label_arr[r])[6:], weight=weights[str(label_arr[r])[6:]], low=float(scen.low[r, j]),
            delay_move=float(scen.delay_move[r, j]), bad_debt=tuple(float(x) for x in bad[:, r]),
            fraction=tuple(float(bad[g, r] / total[g]) if total[g] > 0 else 0.0 for g in range(g_n)),
            liquidated=tuple(int(x) for x in count[:, r]), sold_usd=tuple(float(x) for x in sold[:, r]),
            cascade=tuple(float(x) for x in phi[:, r]),
        )
        for r in crash_rows
    )  # fmt: skip
    mc_ok = var_q <= tol * total + 1e-9
    crash_fail = {cc.name: [cc.weight * cc.bad_debt[g] > crash_tol * total[g] + 1e-9 for g in range(g_n)]
                  for cc in crashes}  # fmt: skip
    ok = [bool(mc_ok[g]) and not any(f[g] for f in crash_fail.values()) for g in range(g_n)]
    best = max((g for g in range(g_n) if ok[g]), default=None)
    published = PUBLISHED_LT_RANGES.get(asset.upper())
    binding, explanation, at_edge = _explain(
        asset, lts, ltvs, best, mc_ok, crash_fail, crashes, points, tol, crash_tol, q, delay, bonus_j, published,
        cascade, liquidity,
    )  # fmt: skip
    return CalibrationResult(
        asset=asset, current_lt=current_lt, current_ltv=current_ltv, points=points,
        recommended_lt=None if best is None else float(lts[best]),
        recommended_ltv=None if best is None else float(ltvs[best]),
        tolerance=tol, quantile=q, smart_ltv=reference, sigma_delay=sigma_delay, scenarios=int(mc.sum()),
        delay_hours=delay, liquidity_usd=liquidity, crashes=crashes, crash_tolerance=crash_tol,
        sellable_usd=sellable, bonus=bonus_j, binding=binding, explanation=explanation, at_edge=at_edge,
        published_range=published, cascade=cascade,
        mc_sold_usd_mean=tuple(float(x) for x in (sold[:, mc].mean(axis=1) if mc.any() else np.zeros(g_n))),
    )  # fmt: skip


def _scenarios(
    book: Book,
    paths: StressPaths | None,
    multipliers: Array | None,
    labels: Sequence[str] | None,
    delay: float,
    n_paths: int,
    rng: np.random.Generator | None,
) -> StressPaths:
    if paths is not None and multipliers is not None:
        raise InputError("give paths or multipliers, not both")
    if labels is not None and multipliers is None:
        raise InputError("labels name the rows of given multipliers; pass multipliers too")
    if paths is not None:
        if not isinstance(paths, StressPaths):
            raise InputError(f"paths must be StressPaths (see stress_paths), got {type(paths).__name__}")
        if paths.low.shape[1] != len(book.symbols):
            raise InputError(f"paths have {paths.low.shape[1]} asset columns, the book {len(book.symbols)}")
        return paths
    if multipliers is not None:
        m = check_multipliers(book, multipliers)
        row_labels = ["given"] * m.shape[0] if labels is None else [str(x) for x in labels]
        if len(row_labels) != m.shape[0]:
            raise InputError(f"{len(row_labels)} labels for {m.shape[0]} scenario rows")
        rho = min(1.0, math.sqrt(delay / HOURS_PER_DAY))
        return StressPaths(m, np.abs(np.log(m)) * rho, tuple(row_labels))
    gen = np.random.default_rng() if rng is None else rng
    return stress_paths(book.symbols, delay_hours=delay, n_paths=n_paths, rng=gen)


def _explain(
    asset: str,
    lts: Array,
    ltvs: Array,
    best: int | None,
    mc_ok: NDArray[np.bool_],
    crash_fail: Mapping[str, list[bool]],
    crashes: Sequence[CrashCurve],
    points: Sequence[CalibrationPoint],
    tol: float,
    crash_tol: float,
    q: float,
    delay: float,
    bonus: float,
    published: tuple[float, float] | None,
    cascade: bool,
    liquidity: float,
) -> tuple[str, str, bool]:
    """(binding constraint, the sentence printed beside the recommendation, at the sweep's edge)."""
    g_n = lts.size
    by_name = {cc.name: cc for cc in crashes}
    nxt = 0 if best is None else best + 1
    parts: list[str] = []
    binding = ""
    at_edge = best is not None and best == g_n - 1
    if at_edge:
        binding = "edge"
        parts.append(
            f"at the top of the sweep ({lts[-1]:.0%}): no crash and no Monte Carlo VaR binds up to there, "
            "so the stress set does not bound the LT; widen the grid or tighten the tolerances"
        )
    elif nxt < g_n:
        failing = [name for name, f in crash_fail.items() if f[nxt]]
        where = f"at LT {lts[nxt]:.0%}" if best is not None else f"even at the lowest LT {lts[0]:.0%}"
        if failing:
            worst = max(failing, key=lambda n: by_name[n].weight * by_name[n].fraction[nxt])
            cc = by_name[worst]
            binding = f"crash:{worst}"
            breakeven = math.exp(-cc.delay_move) / (1.0 + bonus)
            parts.append(
                f"{where} the {worst} crash binds: bad debt {cc.fraction[nxt]:.1%} of debt > {crash_tol:.1%}"
                f" ({asset} low {cc.low - 1:+.0%}; {math.expm1(-cc.delay_move):+.1%} over the {delay:g} h delay"
                f" after a position is triggered, so a position triggered mid-crash leaves bad debt above"
                f" LT exp(-move) / bonus = {breakeven:.1%}"
                + (f"; the cascade sold {cc.sold_usd[nxt]:,.0f} USD into {liquidity:,.0f} USD of depth,"
                   f" price x{cc.cascade[nxt]:.3f}" if cascade and cc.sold_usd[nxt] > 0 else "")
                + ")"
            )  # fmt: skip
            others = [n for n in failing if n != worst]
            if others:
                parts.append(f"also failing there: {', '.join(others)}")
        if not mc_ok[nxt]:
            p = points[nxt]
            if not binding:
                binding = "monte-carlo"
            parts.append(f"{where} Monte Carlo VaR{q * 100:g} is {p.fraction(p.var_q):.2%} of debt > {tol:.1%}")
    if best is None:
        head = "no LT of the sweep passes"
    else:
        head = f"LT {lts[best]:.0%} / LTV {ltvs[best]:.0%}: the highest LT within both tests"
    text = head + ("; " + "; ".join(parts) if parts else "")
    if published is not None and best is not None:
        lo, hi = published
        inside = lo - 1e-9 <= lts[best] <= hi + 1e-9
        text += f". Published risk-manager range for {asset}: {lo:.1%}-{hi:.1%}"
        if inside:
            text += " (inside)"
        elif lts[best] > hi:
            text += (
                " (above it: the shipped prices, the delay and the given depth support more; a published figure"
                " also prices what they do not hold, e.g. a wrapped asset's peg or depth that thins in a crash;"
                " a smaller --liquidity-usd or a longer --delay-hours moves this down)"
            )
        else:
            text += (
                f" (below it: {binding.removeprefix('crash:') or 'the stress set'} binds at this delay and depth;"
                " a deeper market (--liquidity-usd) or a shorter delay moves this up)"
            )
    return binding, text, at_edge


def _crash_weights(given: Mapping[str, float] | None, names: Sequence[str]) -> dict[str, float]:
    out = {n: 1.0 for n in names}
    if given is None:
        return out
    if not isinstance(given, Mapping):
        raise InputError(f"crash_weights must be a mapping event -> weight, got {type(given).__name__}")
    for name, value in given.items():
        if name not in out:
            raise InputError(f"crash_weights: unknown crash {name!r}; crashes: {', '.join(names) or 'none'}")
        v = finite_number(value, f"crash_weights[{name!r}]")
        if v < 0:
            raise InputError(f"crash_weights[{name!r}] must be >= 0, got {value!r}")
        out[name] = v
    return out


def _fraction(value: float, what: str) -> float:
    out = finite_number(value, what)
    if not 0.0 < out < 1.0:
        raise InputError(f"{what} must be in (0, 1) (a fraction of total debt, 0.01 == 1 %), got {value!r}")
    return out


def _data_name(symbol: str) -> str | None:
    try:
        return price_data.resolve_asset(symbol)
    except InputError:
        return None


def _expected_shortfall(bad: Array, q: float) -> Array:
    """Mean of the worst ``max(1, ceil((1 - q) * S))`` scenarios of each row of ``bad`` [G, S]."""
    k = max(1, math.ceil((1.0 - q) * bad.shape[1] - 1e-9))
    worst = -np.partition(-bad, k - 1, axis=1)[:, :k]
    out: Array = worst.mean(axis=1)
    return out


def _liquidation_bad_debt(
    si: NDArray[np.intp], n: int, debt: Array, coll: Array, coll_j: Array, bonus_sum: Array, liquidity: float
) -> Array:
    """Per-scenario bad debt ``[n]`` of liquidatable pairs (scenario index ``si``)."""
    sold = np.bincount(si, weights=coll_j, minlength=n)
    factor = liquidity / (liquidity + sold)
    c_eff = coll - coll_j * (1.0 - factor[si])
    # C_eff / bonus_avg with bonus_avg = bonus_sum / coll (coll > 0: every pair holds collateral)
    with np.errstate(divide="ignore", invalid="ignore"):
        recovered = np.where(bonus_sum > 0, c_eff * coll / np.where(bonus_sum > 0, bonus_sum, 1.0), 0.0)
    left = np.maximum(0.0, debt - recovered)
    out: Array = np.bincount(si, weights=left, minlength=n).astype(np.float64, copy=False)
    return out


def _debt_against(book: Book, j: int) -> float:
    """Debt attributed to asset ``j``: each position's debt x ``c_j LT_j / sum(c LT)``
    (collateral-value share if the position has no weighted collateral)."""
    weighted = book.collateral * book.lt
    base = np.where(weighted.sum(axis=1, keepdims=True) > 0, weighted, book.collateral)
    totals = base.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(totals > 0, base[:, j] / np.where(totals > 0, totals, 1.0), 0.0)
    return float((book.debt.sum(axis=1) * share).sum())


def _usage(debt: Array, cap: Array) -> Array:
    """Borrow usage ``clip(D / cap, 0, 1)``; 1 with debt but no borrowing power, 0 without debt."""
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where(cap > 0, debt / np.where(cap > 0, cap, 1.0), np.where(debt > 0, 1.0, 0.0))
    out: Array = np.clip(u, 0.0, 1.0)
    return out


def _grid(grid: Sequence[float] | None, current_lt: float) -> Array:
    if grid is None:
        values = list(DEFAULT_GRID)
    else:
        if isinstance(grid, str):
            raise InputError(f"grid must be a sequence of LT fractions, got the string {grid!r}")
        values = [_check_lt(v, "grid LT") for v in grid]
        if not values:
            raise InputError("the LT grid is empty; give at least one LT in (0, 1), e.g. 0.80")
    if 0.0 < current_lt < 1.0:
        values.append(round(current_lt, 6))
    return np.unique(np.round(np.asarray(values, dtype=np.float64), 6))


def _check_column(book: Book, column: int) -> int:
    if isinstance(column, bool) or not isinstance(column, int | np.integer):
        raise InputError(f"column must be an integer index, got {column!r}")
    if not 0 <= column < len(book.symbols):
        raise InputError(f"column {column} out of range for {len(book.symbols)} assets ({', '.join(book.symbols)})")
    return int(column)


def _check_lt(value: float, what: str) -> float:
    out = finite_number(value, what)
    if not 0.0 < out < 1.0:
        raise InputError(f"{what} must be a fraction in (0, 1) (0.80 for 80 %), got {value!r}")
    return out


def _check_liquidity(value: float) -> float:
    out = finite_number(value, "liquidity_usd")
    if out <= 0:
        raise InputError(f"liquidity_usd (market depth in USD) must be > 0, got {value!r}")
    return out


def _check_delay(value: float) -> float:
    out = finite_number(value, "delay_hours")
    if out < 0:
        raise InputError(f"delay_hours must be >= 0, got {value!r}")
    return out
