"""Liquidation-threshold calibration for ONE collateral asset: the curve LT -> bad debt.

For a collateral asset ``j`` of a :class:`~monitor.risk.book.Book`, every candidate
liquidation threshold ``LT'`` of a grid is stressed under a set of price scenarios with a
liquidation delay and a slippage model; the highest ``LT'`` whose bad-debt VaR stays within
a tolerance is recommended and compared with the current value and with RiskDAO's
"smart LTV". All amounts are USD at the book's prices.

Model
-----
1. **Re-parameterised book** (:func:`reparameterise`). The current ``LT_j`` and ``LTV_j`` are
   the medians of the book's (eMode-aware) parameters over the positions holding ``j`` as
   collateral, and ``gap = LT_j - LTV_j``. A candidate ``LT'`` comes with
   ``LTV' = max(0, LT' - gap)``. A position holding ``j`` keeps its *borrow usage*

       u = D / sum_k(c_k * LTV_k)        (current parameters; clipped to [0, 1];
                                          u = 1 if it has debt but no borrowing power)

   and borrows ``D' = u * sum_k(c_k * LTV'_k)``, where ``LTV'`` is its LTV row with column
   ``j`` set to ``LTV'``; its debt is scaled proportionally across its debt assets, and its
   ``LT`` column ``j`` becomes ``LT'`` (for every holder, eMode included: the candidate is
   the asset's parameter). Positions without collateral in ``j`` do not change, so the
   sweep leaves them out: every curve is the bad debt *of the positions holding j* (all of
   their bad debt, whichever asset's move caused it). The point at the current LT is not
   exactly today's book: a position that borrows beyond its LTV (possible after prices
   moved) is pulled back to ``u = 1``, and one whose ``j`` parameters differ from the
   medians (eMode) gets the medians.

2. **Liquidation delay** (:func:`stress_multipliers`). Liquidators act ``delay_hours``
   after the move starts, so the price they liquidate at is the price after a move over
   the delay. The stress set is built at a horizon of ``h = max(1, ceil(delay / 24))``
   days (the shipped prices are daily, so any delay up to 24 h uses one-day moves, a
   conservative choice for short delays): the worst ``h``-day window of each named
   historical event (``historical_scenario(name, h)``; an asset without data in an event
   keeps multiplier 1) plus ``n_paths`` stationary-block-bootstrap paths of ``h`` days
   (``monte_carlo_bootstrap``, terminal multipliers; assets without price data keep 1).
   Each row carries a label (``"historical:2020-03-12 1d"``, ``"bootstrap"``) so results
   can be reported per source.

3. **Liquidatable** positions in scenario ``s`` (multipliers ``m``) are those with
   ``sum_k(c_k m_k LT_k) < sum_k(d_k m_k)`` (HF < 1, without Aave's floor of the average LT
   to whole bps, as in :func:`monitor.risk.stress.evaluate`).

4. **Slippage**. The seized ``j`` collateral of scenario ``s`` is sold into a
   constant-product market of USD depth ``L = liquidity_usd``: selling ``V`` USD yields
   ``V * L / (L + V)``, a factor ``f_s = L / (L + V_s)`` where ``V_s`` is the total shocked
   ``j`` collateral of the scenario's liquidatable positions (all of it is assumed sold).
   Each liquidatable position's ``j`` collateral counts at ``f_s`` of its shocked value:

       C_eff = sum_k(c_k m_k) - (1 - f_s) * c_j m_j

5. **Bad debt** of a liquidatable position, as in :mod:`monitor.risk.stress`, is the debt
   left once liquidators have taken all its collateral at its bonus,
   ``max(0, D_s - C_eff / bonus_avg)`` with ``D_s = sum_k(d_k m_k)`` and ``bonus_avg`` the
   shocked-collateral-weighted liquidation bonus (1.05 == +5 %); non-liquidatable positions
   add none. Per scenario the bad debt is the sum over positions.

6. **Curve and recommendation** (:func:`calibrate`). For each ``LT'`` of the grid (default
   0.40..0.95 step 0.01, or the user's grid; the current LT is always added): mean, VaR95,
   VaR99 (``np.quantile`` across scenarios) and ES99 (mean of the worst
   ``ceil(1 % x S)`` scenarios: a tail average that, unlike "mean of the scenarios at or
   above VaR99", does not fall back to the overall mean when VaR99 is 0)
   of the bad debt, in USD and as a fraction of the re-parameterised total debt ``sum D'``
   of the positions holding ``j``. The recommendation is the HIGHEST ``LT'`` with
   ``VaR_q <= tolerance * sum D'`` (``q = 0.99``, ``tolerance = 1 %`` by default), or
   ``None`` ("highest", not "first failure", because the curve can dip; see below).

   *Monotonicity.* ``D'`` grows with ``LT'``, and a liquidatable position's bad debt
   ``D' - C_eff / bonus_avg`` with it. Without slippage (``L -> inf``) and with
   ``max(LT) x bonus_avg <= 1`` (with one bonus for all assets this is Aave's own rule
   ``LT x bonus <= 1``; the default grid stops at 0.95) a position with bad debt cannot
   stop being liquidatable as ``LT'`` rises (that would need
   ``C / bonus_avg < D' <= weighted collateral <= max(LT) x C``), so each scenario's bad
   debt is non-decreasing in ``LT'``. With shallow liquidity it can dip: a position with
   ``u < 1`` whose OTHER collateral crashed can be lifted above HF 1 by a higher ``LT'``
   (it gains ``c_j m_j dLT`` of weighted collateral for ``u c_j dLTV`` of debt), which takes
   its ``j`` collateral out of the sold volume ``V_s`` and lowers everyone's slippage.

7. **RiskDAO smart LTV** (:func:`smart_ltv`), the reference:

       LTV = exp(-c * sigma / sqrt(l / d)) - beta,   clipped to [0, 1]

   ``sigma``: the asset's daily EWMA volatility (``asset_volatilities``) scaled to the
   delay by the square root of time (``scale_sigma``); ``l = liquidity_usd``; ``d``: the
   debt borrowed against the asset, each holder's debt attributed pro rata to the asset's
   share of its weighted collateral ``c_j LT_j / sum_k(c_k LT_k)``; ``beta``: the asset's
   liquidation bonus minus 1 (median over holders). ``c`` is the confidence multiplier:
   ``c = 2`` (default) asks the collateral to survive a two-sigma adverse move over the
   delay (about 97.7 % one-sided under a normal approximation), worsened by the
   ``sqrt(d / l)`` liquidity penalty; RiskDAO leave ``c`` to the protocol's risk appetite.

Everything here is pure numpy apart from the price reads of ``scenarios`` and
``volatility``; randomness only through an injected :class:`numpy.random.Generator`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor import price_data
from monitor.errors import InputError
from monitor.risk.book import Array, Book
from monitor.risk.checks import finite_number
from monitor.risk.scenarios import historical_scenario, monte_carlo_bootstrap, scenario_names
from monitor.risk.stress import check_multipliers
from monitor.risk.volatility import asset_volatilities, scale_sigma

__all__ = [
    "DEFAULT_GRID",
    "CalibrationPoint",
    "CalibrationResult",
    "bad_debt_with_slippage",
    "calibrate",
    "horizon_days",
    "reparameterise",
    "smart_ltv",
    "stress_multipliers",
]

DEFAULT_GRID: tuple[float, ...] = tuple(round(0.40 + 0.01 * i, 2) for i in range(56))  # 0.40 .. 0.95
HOURS_PER_DAY = 24.0
_CHUNK = 256  # scenarios per block: memory stays O(chunk x positions)
_SCREEN_MARGIN = 1e-9  # relative slack of the "ever liquidatable" screen


@dataclass(frozen=True, slots=True)
class CalibrationPoint:
    """Bad-debt statistics across scenarios for one candidate LT (USD unless noted)."""

    lt: float
    ltv: float
    mean: float
    var95: float
    var99: float
    es99: float
    total_debt: float  # re-parameterised debt of the positions holding the asset
    liquidatable_mean: float  # mean NUMBER of liquidatable positions per scenario
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
class CalibrationResult:
    asset: str
    current_lt: float
    current_ltv: float
    points: tuple[CalibrationPoint, ...]  # ascending LT
    recommended_lt: float | None
    recommended_ltv: float | None
    tolerance: float
    quantile: float
    smart_ltv: float
    sigma_delay: float
    scenarios: int
    delay_hours: float
    liquidity_usd: float
    # per scenario source (row label): its number of scenarios and mean bad debt at each point
    by_source: tuple[tuple[str, int, tuple[float, ...]], ...] = ()

    def point(self, lt: float) -> CalibrationPoint:
        """The point of the grid nearest to ``lt``."""
        return min(self.points, key=lambda p: abs(p.lt - lt))

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
            "tolerance": self.tolerance,
            "quantile": self.quantile,
            "smart_ltv": self.smart_ltv,
            "sigma_delay": self.sigma_delay,
            "scenarios": self.scenarios,
            "delay_hours": self.delay_hours,
            "liquidity_usd": self.liquidity_usd,
            "points": [p.as_dict() for p in self.points],
            "by_source": [
                {"source": label, "scenarios": n, "mean_bad_debt": list(means)} for label, n, means in self.by_source
            ],
        }


# -- stress set ---------------------------------------------------------------------


def stress_multipliers(
    symbols: Sequence[str], *, delay_hours: float, n_paths: int, rng: np.random.Generator
) -> tuple[Array, list[str]]:
    """``[S, A]`` price multipliers over the liquidation delay and one label per row.

    Rows: every named historical event's worst ``h``-day window
    (``"historical:<event> <h>d"``), then ``n_paths`` bootstrap paths (``"bootstrap"``),
    with ``h = max(1, ceil(delay_hours / 24))``. Columns follow ``symbols``; a symbol
    without price data (or without data in an event) keeps multiplier 1.
    ``n_paths = 0`` gives the historical rows only.
    """
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
    horizon = horizon_days(delay)
    rows: list[Array] = []
    labels: list[str] = []
    for name in scenario_names():
        scenario = historical_scenario(name, horizon)
        rows.append(scenario.vector(names))
        labels.append(f"historical:{scenario.name}")
    hist = np.vstack(rows)
    if n_paths == 0:
        return hist, labels
    with_data = [i for i, s in enumerate(names) if _has_price_data(s)]
    if not with_data:
        raise InputError(
            f"no price data for any of {', '.join(names)}: cannot bootstrap; "
            f"known assets: {', '.join(price_data.ASSETS)} (pass multipliers explicitly)"
        )
    boot = np.ones((int(n_paths), len(names)), dtype=np.float64)
    boot[:, with_data] = monte_carlo_bootstrap([names[i] for i in with_data], horizon, int(n_paths), rng)
    return np.vstack([hist, boot]), labels + ["bootstrap"] * int(n_paths)


def horizon_days(delay_hours: float) -> int:
    """Stress horizon in whole days for a liquidation delay: ``max(1, ceil(delay / 24))``."""
    return max(1, math.ceil(_check_delay(delay_hours) / HOURS_PER_DAY - 1e-12))


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
    """Bad debt ``[S]`` per scenario row, with asset ``column`` sold into depth ``liquidity_usd``.

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

    ``sigma``: volatility over the liquidation delay (a fraction); ``liquidity_usd``: the
    market depth ``l`` (> 0); ``debt_usd``: the debt ``d`` borrowed against the asset
    (>= 0; 0 gives ``1 - bonus``); ``bonus``: the liquidation incentive as a FRACTION
    (0.05 for +5 %, not 1.05); ``c``: the confidence multiplier (> 0).
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


# -- calibration --------------------------------------------------------------------


def calibrate(
    book: Book,
    symbol: str,
    *,
    multipliers: Array | None = None,
    delay_hours: float = 1.0,
    liquidity_usd: float = 5e6,
    tolerance: float = 0.01,
    quantile: float = 0.99,
    grid: Sequence[float] | None = None,
    n_paths: int = 2000,
    rng: np.random.Generator | None = None,
    c: float = 2.0,
    labels: Sequence[str] | None = None,
    sigma_daily: float | None = None,
) -> CalibrationResult:
    """Sweep ``symbol``'s liquidation threshold and recommend one (see the module docstring).

    ``multipliers`` ``[S, A]`` (columns = ``book.symbols``) replaces the built-in stress
    set of :func:`stress_multipliers` (then ``delay_hours`` only scales sigma, and
    ``labels``, one per row, name the sources; default ``"given"``). ``rng`` drives the
    bootstrap (default: a fresh unseeded generator; pass a seeded one for reproducible
    output). ``sigma_daily`` overrides the asset's EWMA daily volatility (needed for an
    asset without shipped prices).
    """
    j = book.column(symbol)
    asset = book.symbols[j]
    liquidity = _check_liquidity(liquidity_usd)
    tol = finite_number(tolerance, "tolerance")
    if not 0.0 < tol < 1.0:
        raise InputError(f"tolerance must be in (0, 1) (a fraction of total debt, 0.01 == 1 %), got {tolerance}")
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

    if labels is not None and multipliers is None:
        raise InputError("labels name the rows of given multipliers; pass multipliers too")
    if multipliers is None:
        gen = np.random.default_rng() if rng is None else rng
        m, row_labels = stress_multipliers(book.symbols, delay_hours=delay, n_paths=n_paths, rng=gen)
    else:
        m = check_multipliers(book, multipliers)
        row_labels = ["given"] * m.shape[0] if labels is None else [str(x) for x in labels]
    if len(row_labels) != m.shape[0]:
        raise InputError(f"{len(row_labels)} labels for {m.shape[0]} scenario rows")

    sigma_day = asset_volatilities([asset])[asset] if sigma_daily is None else finite_number(sigma_daily, "sigma_daily")
    sigma_delay = scale_sigma(sigma_day, delay)
    bonus_j = max(0.0, float(np.median(sub.bonus[:, j])) - 1.0)
    reference = smart_ltv(sigma_delay, liquidity, _debt_against(sub, j), min(bonus_j, 0.999), c)

    bad, count, total = _sweep(sub, j, m, lts, ltvs, liquidity)
    var95 = np.quantile(bad, 0.95, axis=1)
    var99 = np.quantile(bad, 0.99, axis=1)
    var_q = np.quantile(bad, q, axis=1)
    es99 = _expected_shortfall(bad, 0.99)
    points = tuple(
        CalibrationPoint(
            lt=float(lts[g]),
            ltv=float(ltvs[g]),
            mean=float(bad[g].mean()),
            var95=float(var95[g]),
            var99=float(var99[g]),
            es99=float(es99[g]),
            total_debt=float(total[g]),
            liquidatable_mean=float(count[g].mean()),
            var_q=float(var_q[g]),
        )
        for g in range(lts.size)
    )
    ok = [g for g in range(lts.size) if var_q[g] <= tol * total[g]]
    best = max(ok) if ok else None
    label_arr = np.asarray(row_labels)
    by_source = tuple(
        (label, int(np.count_nonzero(label_arr == label)), tuple(float(x) for x in bad[:, label_arr == label].mean(1)))
        for label in dict.fromkeys(row_labels)
    )
    return CalibrationResult(
        asset=asset,
        current_lt=current_lt,
        current_ltv=current_ltv,
        points=points,
        recommended_lt=None if best is None else float(lts[best]),
        recommended_ltv=None if best is None else float(ltvs[best]),
        tolerance=tol,
        quantile=q,
        smart_ltv=reference,
        sigma_delay=sigma_delay,
        scenarios=int(m.shape[0]),
        delay_hours=delay,
        liquidity_usd=liquidity,
        by_source=by_source,
    )


def _sweep(
    sub: Book, j: int, m: Array, lts: Array, ltvs: Array, liquidity: float
) -> tuple[Array, NDArray[np.int64], Array]:
    """Bad debt ``[G, S]``, liquidatable counts ``[G, S]`` and total debt ``[G]`` of the
    holders of ``j`` re-parameterised at each ``(lts[g], ltvs[g])``.

    Same arithmetic as ``bad_debt_with_slippage(reparameterise(...))`` but factored so each
    candidate costs only 1-D work: with ``R = m @ (d / D)`` (the shocked debt per unit of
    debt), the shocked weighted collateral is ``W_other + c_j m_j LT'`` and the shocked
    debt ``R * u * (K_other + c_j LTV')``, both affine in the candidate. Per scenario
    block, pairs (scenario, position) liquidatable at neither end of the grid are dropped:
    ``debt - weighted`` is convex in ``LT'`` (``LTV'`` is clipped at 0), so a pair
    liquidatable anywhere in the grid is liquidatable at its lowest or highest value.
    """
    has_debt = sub.debt.sum(axis=1) > 0
    book = sub.with_rows(has_debt)
    s, g_n = m.shape[0], lts.size
    bad = np.zeros((g_n, s))
    count = np.zeros((g_n, s), dtype=np.int64)
    c = book.collateral
    c_j = c[:, j]
    d_total = book.debt.sum(axis=1)
    cap = (c * book.ltv).sum(axis=1)
    u = _usage(d_total, cap)
    k_other = cap - c_j * book.ltv[:, j]
    total = np.array([float((u * (k_other + c_j * v)).sum()) for v in ltvs])
    if book.size == 0:
        return bad, count, total
    w_other = c * book.lt
    w_other[:, j] = 0.0
    w_t = w_other.T
    share_t = (book.debt / d_total[:, None]).T
    c_t, cb_t = c.T, (c * book.bonus).T
    lo_lt, hi_lt = float(lts.min()), float(lts.max())
    lo_ltv, hi_ltv = float(ltvs[np.argmin(lts)]), float(ltvs[np.argmax(lts)])
    uk, uc = u * k_other, u * c_j
    for lo in range(0, s, _CHUNK):
        mc = m[lo : lo + _CHUNK]
        n = mc.shape[0]
        w = mc @ w_t  # [n, P] other collateral, weighted
        r = mc @ share_t  # [n, P] shocked debt per unit of debt
        cj = mc[:, j : j + 1] * c_j  # [n, P] shocked j collateral
        ever = (w + cj * lo_lt) < r * (uk + uc * lo_ltv) * (1.0 + _SCREEN_MARGIN)
        ever |= (w + cj * hi_lt) < r * (uk + uc * hi_ltv) * (1.0 + _SCREEN_MARGIN)
        si, pi = np.nonzero(ever)
        if si.size == 0:
            continue
        w_k, r_k, cj_k = w[si, pi], r[si, pi], cj[si, pi]
        coll_k = (mc @ c_t)[si, pi]
        bsum_k = (mc @ cb_t)[si, pi]
        a_k, b_k = r_k * uk[pi], r_k * uc[pi]  # shocked debt = a + b * LTV'
        del w, r, cj, ever
        for g in range(g_n):
            debt_k = a_k + b_k * ltvs[g]
            liq = (w_k + cj_k * lts[g]) < debt_k
            if not liq.any():
                continue
            sl = si[liq]
            bad[g, lo : lo + n] = _liquidation_bad_debt(
                sl, n, debt_k[liq], coll_k[liq], cj_k[liq], bsum_k[liq], liquidity
            )
            count[g, lo : lo + n] = np.bincount(sl, minlength=n)
    return bad, count, total


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


def _has_price_data(symbol: str) -> bool:
    try:
        price_data.resolve_asset(symbol)
    except InputError:
        return False
    return True


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
