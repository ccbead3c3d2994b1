"""Scenario evaluation: health factors and liquidation outcomes under price multipliers.

For a multiplier matrix ``M`` [S, A] (one row per scenario), the shocked weighted collateral
and debt of every position are two matrix products, ``M @ (C*LT).T`` and ``M @ D.T``, so
100,000 positions x 1,000 scenarios is a few BLAS calls, evaluated in scenario chunks.

HF follows the book's protocol rounding (``Book.lt_rounding``): Aave before 3.5 floors the
average LT to whole bps, Aave 3.5+, Morpho Blue and Compound V3 do not.

Outcome model per liquidatable position (HF < 1 after the shock), in USD:
- debt at risk: its whole debt;
- one liquidation call repays what the book's close-factor rule allows (``Book.close_factor``):
  "v30" (Aave 3.0-3.2) ``50 % x debt``, or 100 % when HF < 0.95 (CLOSE_FACTOR_HF_THRESHOLD);
  "v33" (Aave 3.3+) the largest debt reserve whole, or ``min(it, 50 % x total debt)`` when that
  reserve and the largest collateral are each >= 2,000 USD and HF > 0.95; "full" (Morpho, Comet)
  the whole debt; it seizes ``repaid x bonus`` of the largest collateral, capped by its value;
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
MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD_USD = 2_000.0  # Aave 3.3+: 2000e8 base units
BPS = 1e-4


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
    """[S, P] health factors under each scenario row, with the book's rounding (Aave < 3.5:
    the average LT floored to whole bps, as ``Book.health_factors``)."""
    m = check_multipliers(book, multipliers)
    weighted = m @ book.weighted_collateral().T
    if book.floors_lt:
        total = m @ book.collateral.T
        bps = m @ (book.collateral * np.rint(book.lt * 1e4)).T
        with np.errstate(divide="ignore", invalid="ignore"):
            avg_bps = np.floor(bps / np.where(total > 0, total, 1.0) + 1e-9)
        weighted = total * avg_bps * BPS
    return hf_of(weighted, m @ book.debt.T)


def repaid_by_one_call(book: Book, hf: Array, total_debt: Array, main_debt: Array, main_collateral: Array) -> Array:
    """USD one liquidation call repays under the book's close-factor rule (module docstring)."""
    if book.close_factor == "full":
        return total_debt
    if book.close_factor == "v33":
        big = (
            (main_collateral >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD_USD)
            & (main_debt >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD_USD)
            & (hf > CLOSE_FACTOR_HF_THRESHOLD)
        )
        repaid: Array = np.where(big, np.minimum(main_debt, DEFAULT_CLOSE_FACTOR * total_debt), main_debt)
        return repaid
    close = np.where(hf < CLOSE_FACTOR_HF_THRESHOLD, 1.0, DEFAULT_CLOSE_FACTOR)
    v30: Array = close * total_debt
    return v30


def position_outcomes(book: Book, multiplier: Array) -> PositionOutcomes:
    """Outcomes of ONE scenario (a vector of multipliers) for every position."""
    m = check_multipliers(book, multiplier)[0]
    coll = book.collateral * m
    debt = book.debt * m
    total_c, total_d = coll.sum(axis=1), debt.sum(axis=1)
    hf_after = book.health_factors(m)
    liq = hf_after < 1.0
    main = np.argmax(coll, axis=1)  # liquidators take the largest collateral
    rows = np.arange(book.size)
    main_debt = debt.max(axis=1)
    repaid = repaid_by_one_call(book, hf_after, total_d, main_debt, coll[rows, main])
    seized = np.minimum(repaid * book.bonus[rows, main], coll[rows, main])
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

    Two dense products per chunk screen who may be liquidatable (``weighted < debt`` is HF < 1
    without a division), with a margin covering the float32 error and, for books that floor the
    average LT (Aave < 3.5), the floor (less than a share ``1 / min LT_bps`` of the position's
    weighted collateral; a third product only for positions holding collateral with LT < 2 bps).
    The candidates are then decided in float64 with the book's own rounding, as
    ``position_outcomes`` does, and the outcome arithmetic runs on the liquidatable
    (scenario, position) pairs only. ``dtype`` float32 halves the memory traffic of the screen.
    """
    m = check_multipliers(book, multipliers)
    s = m.shape[0]
    d_t: NDArray[np.floating[Any]] = book.debt.T.astype(dtype)
    lt_bps = np.rint(book.lt * 1e4)
    slack = 1e-5 if np.dtype(dtype).itemsize < 8 else 1e-12  # relative float error of the screen
    # The floor lowers sum(c * LT) by less than a factor 1 - 1/avgLT_bps, and avgLT_bps >= the
    # smallest LT_bps among the position's collaterals: screen sum(c * LT) x (1 - 1/that) < debt
    # (the factor folded into the weighted matrix, so the screen stays two products). Where a
    # collateral has LT < 2 bps that bound is useless: those positions get a third product.
    held = book.collateral > 0
    min_bps = np.where(held, lt_bps, np.inf).min(axis=1) if book.floors_lt else np.full(book.size, np.inf)
    loose = min_bps < 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        keep_share = np.where(loose | ~np.isfinite(min_bps), 1.0, 1.0 - 1.0 / min_bps)
    wc: NDArray[np.floating[Any]] = (book.weighted_collateral() * (keep_share / (1 + slack))[:, None]).T.astype(dtype)
    c_t: NDArray[np.floating[Any]] | None = None
    if book.floors_lt and loose.any():
        c_t = np.where(loose[:, None], book.collateral, 0.0).T.astype(dtype)
    count = np.zeros(s, dtype=np.int64)
    at_risk, seized, bad = np.zeros(s), np.zeros(s), np.zeros(s)
    for lo in range(0, s, chunk):
        mc = m[lo : lo + chunk]
        mc_d: NDArray[np.floating[Any]] = mc.astype(dtype)
        w_s, bound = mc_d @ wc, mc_d @ d_t
        if c_t is not None:  # floor <= total collateral x 1e-4 for the loose positions
            bound = bound + (mc_d @ c_t) * (BPS * (1 + slack))
        si, pi = np.nonzero(w_s < bound)
        if si.size == 0:
            continue
        ms = mc[si]  # [k, A] float64 from here on: k candidate pairs
        shocked = ms * book.collateral[pi]
        coll = shocked.sum(axis=1)
        debt_legs = ms * book.debt[pi]
        debt = debt_legs.sum(axis=1)
        if book.floors_lt:
            with np.errstate(divide="ignore", invalid="ignore"):
                avg_bps = np.floor((shocked * lt_bps[pi]).sum(axis=1) / np.where(coll > 0, coll, 1.0) + 1e-9)
            weighted = coll * avg_bps * BPS
        else:
            weighted = (shocked * book.lt[pi]).sum(axis=1)
        keep = weighted < debt  # the float64 decision, with the book's rounding
        si, pi, ms, shocked, coll, debt_legs, debt, weighted = (
            si[keep],
            pi[keep],
            ms[keep],
            shocked[keep],
            coll[keep],
            debt_legs[keep],
            debt[keep],
            weighted[keep],
        )
        if si.size == 0:
            continue
        bonus_avg = (shocked * book.bonus[pi]).sum(axis=1) / np.where(coll > 0, coll, 1.0)
        bonus_avg = np.where(coll > 0, bonus_avg, 1.0)
        pairs = np.arange(si.size)
        main = np.argmax(shocked, axis=1)  # liquidators take the largest collateral after the shock
        hf_pairs = weighted / np.where(debt > 0, debt, 1.0)
        repaid = repaid_by_one_call(book, hf_pairs, debt, debt_legs.max(axis=1), shocked[pairs, main])
        take = np.minimum(repaid * book.bonus[pi, main], shocked[pairs, main])
        left = np.maximum(0.0, debt - coll / bonus_avg)
        n = mc.shape[0]
        count[lo : lo + n] = np.bincount(si, minlength=n)
        at_risk[lo : lo + n] = np.bincount(si, weights=debt, minlength=n)
        seized[lo : lo + n] = np.bincount(si, weights=take, minlength=n)
        bad[lo : lo + n] = np.bincount(si, weights=left, minlength=n)
    return ScenarioOutcomes(count, at_risk, seized, bad)
