"""Scenario evaluation: health factors and liquidation outcomes under price multipliers.

For a multiplier matrix ``M`` [S, A] (one row per scenario), the shocked weighted collateral
and debt of every position are two matrix products, ``M @ (C*LT).T`` and ``M @ D.T``, so
100,000 positions x 1,000 scenarios is a few BLAS calls, evaluated in scenario chunks.

Outcome model per liquidatable position (HF < 1 after the shock), in USD:
- debt at risk: its whole debt;
- one liquidation call repays ``close_factor x debt`` (50 %, or 100 % when HF < 0.95,
  Aave's CLOSE_FACTOR_HF_THRESHOLD) and seizes ``repaid x bonus`` of its largest
  collateral, capped by that collateral's value;
- bad debt: the debt left once liquidators have taken all collateral at its bonus,
  ``max(0, debt - collateral / bonus)`` with the collateral-weighted bonus.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.errors import InputError
from monitor.risk.book import Array, Book, hf_of

CLOSE_FACTOR_HF_THRESHOLD = 0.95
DEFAULT_CLOSE_FACTOR = 0.5


@dataclass(frozen=True, slots=True)
class PositionOutcomes:
    """One scenario, per position."""

    hf_before: Array
    hf_after: Array
    liquidatable: NDArray[np.bool_]
    debt_at_risk: Array
    collateral_seized: Array
    bad_debt: Array


@dataclass(frozen=True, slots=True)
class ScenarioOutcomes:
    """Many scenarios, per scenario (portfolio totals)."""

    liquidatable: NDArray[np.int64]
    debt_at_risk: Array
    collateral_seized: Array
    bad_debt: Array

    def var(self, q: float) -> float:
        """Value at risk of bad debt: its q-quantile across scenarios (q=0.95, 0.99)."""
        return float(np.quantile(self.bad_debt, q))

    def expected_shortfall(self, q: float) -> float:
        cut = self.var(q)
        tail = self.bad_debt[self.bad_debt >= cut]
        return float(tail.mean()) if tail.size else cut


def check_multipliers(book: Book, multipliers: Array) -> Array:
    m = np.atleast_2d(np.asarray(multipliers, dtype=np.float64))
    if m.shape[1] != len(book.symbols):
        raise InputError(f"scenario has {m.shape[1]} asset multipliers, market has {len(book.symbols)} assets")
    if not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise InputError("price multipliers must be finite and > 0 (a shock of -100 % or deeper is not a price)")
    return m


def health_factors(book: Book, multipliers: Array) -> Array:
    """[S, P] health factors under each scenario row (without Aave's avg-LT bps floor;
    ``Book.health_factors`` applies it for one scenario)."""
    m = check_multipliers(book, multipliers)
    return hf_of(m @ book.weighted_collateral().T, m @ book.debt.T)


def position_outcomes(book: Book, multiplier: Array) -> PositionOutcomes:
    """Outcomes of ONE scenario (a vector of multipliers) for every position."""
    m = check_multipliers(book, multiplier)[0]
    coll = book.collateral * m
    debt = book.debt * m
    total_c, total_d = coll.sum(axis=1), debt.sum(axis=1)
    hf_after = book.health_factors(m)
    liq = hf_after < 1.0
    close = np.where(hf_after < CLOSE_FACTOR_HF_THRESHOLD, 1.0, DEFAULT_CLOSE_FACTOR)
    main = np.argmax(coll, axis=1)  # liquidators take the largest collateral
    rows = np.arange(book.size)
    seized = np.minimum(close * total_d * book.bonus[rows, main], coll[rows, main])
    avg_bonus = _avg_bonus(book, coll, total_c)
    bad = np.maximum(0.0, total_d - total_c / avg_bonus)
    return PositionOutcomes(
        hf_before=book.health_factors(),
        hf_after=hf_after,
        liquidatable=liq,
        debt_at_risk=np.where(liq, total_d, 0.0),
        collateral_seized=np.where(liq, seized, 0.0),
        bad_debt=np.where(liq, bad, 0.0),
    )


def _avg_bonus(book: Book, coll: Array, total_c: Array) -> Array:
    with np.errstate(divide="ignore", invalid="ignore"):
        avg = (coll * book.bonus).sum(axis=-1) / np.where(total_c > 0, total_c, 1.0)
    return np.where(total_c > 0, avg, 1.0)


def evaluate(
    book: Book, multipliers: Array, *, chunk: int = 128, dtype: type[np.floating[Any]] = np.float32
) -> ScenarioOutcomes:
    """Portfolio outcomes of every scenario row; memory stays O(chunk x positions).

    Only two dense products per chunk are needed to find who is liquidatable
    (``weighted < debt`` is HF < 1 without a division); the outcome arithmetic then runs
    on the liquidatable (scenario, position) pairs only. This screen omits Aave's floor of
    the average liquidation threshold to whole bps (a relative HF error below 1.3e-4), so
    a position that close to HF == 1 may be classed either way; ``position_outcomes`` and
    the exact integer engine include it. ``dtype`` float32 halves the
    memory traffic of the dense part; pass float64 when a tie at HF == 1 matters.
    """
    m = check_multipliers(book, multipliers)
    s = m.shape[0]
    wc: NDArray[np.floating[Any]] = book.weighted_collateral().T.astype(dtype)  # [A, P]
    d_t: NDArray[np.floating[Any]] = book.debt.T.astype(dtype)
    count = np.zeros(s, dtype=np.int64)
    at_risk, seized, bad = np.zeros(s), np.zeros(s), np.zeros(s)
    for lo in range(0, s, chunk):
        mc = m[lo : lo + chunk]
        mc_d: NDArray[np.floating[Any]] = mc.astype(dtype)
        liq = (mc_d @ wc) < (mc_d @ d_t)
        si, pi = np.nonzero(liq)
        if si.size == 0:
            continue
        ms = mc[si]  # [k, A] float64 from here on: k liquidatable pairs
        shocked = ms * book.collateral[pi]
        coll = shocked.sum(axis=1)
        debt = (ms * book.debt[pi]).sum(axis=1)
        weighted = (ms * book.collateral[pi] * book.lt[pi]).sum(axis=1)
        bonus_avg = (ms * book.collateral[pi] * book.bonus[pi]).sum(axis=1) / np.where(coll > 0, coll, 1.0)
        bonus_avg = np.where(coll > 0, bonus_avg, 1.0)
        close = np.where(weighted < CLOSE_FACTOR_HF_THRESHOLD * debt, 1.0, DEFAULT_CLOSE_FACTOR)
        pairs = np.arange(si.size)
        main = np.argmax(shocked, axis=1)  # liquidators take the largest collateral after the shock
        take = np.minimum(close * debt * book.bonus[pi, main], shocked[pairs, main])
        left = np.maximum(0.0, debt - coll / bonus_avg)
        n = mc.shape[0]
        count[lo : lo + n] = np.bincount(si, minlength=n)
        at_risk[lo : lo + n] = np.bincount(si, weights=debt, minlength=n)
        seized[lo : lo + n] = np.bincount(si, weights=take, minlength=n)
        bad[lo : lo + n] = np.bincount(si, weights=left, minlength=n)
    return ScenarioOutcomes(count, at_risk, seized, bad)
