"""A position book as numpy arrays: the float edge of the exact snapshot.

Rows are positions, columns are reserves. Values are USD at the snapshot's prices; the
risk parameters are the ones that apply to each position (eMode-aware, per Aave revision), as
fractions. Each book says how its protocol turns them into a health factor:

- ``lt_rounding == "bps_floor"``: Aave before 3.5 floors the collateral-weighted average LT to
  whole basis points (``GenericLogic``: ``avgLT = sum(value * LT_bps) / totalCollateral``);
- ``lt_rounding == "exact"``: HF = sum(c * LT) / debt (Aave 3.5+, Morpho Blue, Compound V3).

and which close-factor rule its liquidations follow (``close_factor``): ``"v30"`` (Aave 3.0-3.2:
50 %, 100 % below HF 0.95), ``"v33"`` (Aave 3.3+: the whole reserve debt unless both reserves of
the pair are worth >= 2,000 base units and HF > 0.95, then 50 % of the total debt) or
``"full"`` (Morpho Blue liquidations and Comet absorbs can take the whole debt).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from monitor.errors import InputError
from monitor.models import MarketSnapshot
from monitor.risk.health import V30, categories_by_id, counts_as_collateral, effective_params, rules_of

Array = NDArray[np.float64]
LtRounding = Literal["exact", "bps_floor"]
CloseFactor = Literal["v30", "v33", "full"]
AAVE_PROTOCOL = "aave_v3"


@dataclass(frozen=True, slots=True)
class Book:
    market: str
    block: int
    accounts: tuple[str, ...]
    symbols: tuple[str, ...]
    prices: Array  # [A] USD
    collateral: Array  # [P, A] USD value counted as collateral
    debt: Array  # [P, A] USD value of debt
    lt: Array  # [P, A] liquidation threshold that applies (fraction)
    ltv: Array  # [P, A] loan-to-value that applies (fraction)
    bonus: Array  # [P, A] liquidation bonus that applies (1.05 == +5 %)
    lt_rounding: LtRounding = "exact"  # "bps_floor": Aave < 3.5 floors the average LT to whole bps
    close_factor: CloseFactor = "v30"  # the liquidation close-factor rule (see the module docstring)

    @property
    def size(self) -> int:
        return len(self.accounts)

    def column(self, symbol: str) -> int:
        key = symbol.upper()
        for i, s in enumerate(self.symbols):
            if s.upper() == key:
                return i
        raise InputError(f"unknown asset {symbol!r} in market {self.market}; assets: {', '.join(self.symbols)}")

    def weighted_collateral(self) -> Array:
        return self.collateral * self.lt

    @property
    def floors_lt(self) -> bool:
        return self.lt_rounding == "bps_floor"

    def health_factors(self, multiplier: Array | None = None) -> Array:
        """HF per position (optionally under one price-multiplier vector), with the book's
        protocol rounding: Aave's floor of the average LT to whole bps where it applies."""
        m = np.ones(len(self.symbols)) if multiplier is None else np.asarray(multiplier, dtype=np.float64)
        coll = self.collateral * m
        return hf_of(weighted_of(coll, self.lt, floor=self.floors_lt), (self.debt * m).sum(axis=1))

    def with_rows(self, rows: NDArray[np.bool_] | NDArray[np.int64]) -> Book:
        return replace(
            self, accounts=tuple(np.asarray(self.accounts)[rows]), collateral=self.collateral[rows],
            debt=self.debt[rows], lt=self.lt[rows], ltv=self.ltv[rows], bonus=self.bonus[rows],
        )  # fmt: skip


def weighted_of(collateral: Array, lt: Array, *, floor: bool) -> Array:
    """sum(c * LT) over the last axis: with the bps floor of the average LT (Aave < 3.5) or exact."""
    if floor:
        return floored_weighted(collateral, lt)
    weighted: Array = (collateral * lt).sum(axis=-1)
    return weighted


def floored_weighted(collateral: Array, lt: Array) -> Array:
    """sum(c * LT) with avgLT floored to integer bps, as GenericLogic does
    (``avgLiquidationThreshold = sum(value * LT_bps) / totalCollateral``)."""
    total = collateral.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        avg_bps = np.floor((collateral * np.rint(lt * 1e4)).sum(axis=-1) / np.where(total > 0, total, 1.0) + 1e-9)
    weighted: Array = total * avg_bps / 1e4
    return weighted


def hf_of(weighted: Array, debt: Array) -> Array:
    """weighted collateral / debt, +inf without debt."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(debt > 0, weighted / np.where(debt > 0, debt, 1.0), np.inf)


def book_from_snapshot(snapshot: MarketSnapshot) -> Book:
    """Positions with any collateral or debt, as arrays (empty accounts are left out).

    Aave snapshots take the LT / LTV / bonus of their Pool revision (liquid eMode bitmaps from
    3.2, LT-0 collateral inside an eMode from 3.6), the bps floor of the average LT before 3.5 and
    the revision's close factor; other protocols' books are exact (no floor), close factor "full".
    """
    held = [p for p in snapshot.positions if p.total_collateral_base or p.total_debt_base]
    if not held:
        raise InputError(
            f"market {snapshot.market} has no positions with collateral or debt at block {snapshot.block}: "
            "nothing to stress (scan a market with borrowers, or check the watchlist)"
        )
    reserves = snapshot.reserves
    cats = categories_by_id(snapshot.emode_categories)
    aave = snapshot.protocol == AAVE_PROTOCOL
    rules = rules_of(snapshot) if aave else V30
    unit = float(snapshot.base_currency_unit)
    n, a = len(held), len(reserves)
    collateral, debt = np.zeros((n, a)), np.zeros((n, a))
    lt, ltv, bonus = np.zeros((n, a)), np.zeros((n, a)), np.ones((n, a))
    prices = np.array([r.price / unit for r in reserves])
    units = [10**r.decimals for r in reserves]
    counts = [bool(counts_as_collateral(r, rules) if aave else r.liquidation_threshold) for r in reserves]
    by_emode: dict[int, tuple[NDArray[np.float64], ...]] = {}  # the parameters depend on the eMode only
    for i, pos in enumerate(held):
        params = by_emode.get(pos.emode_category)
        if params is None:
            e = [effective_params(r, pos.emode_category, cats, rules) for r in reserves]
            params = tuple(np.array([x[k] / 1e4 for x in e]) for k in (1, 0, 2))
            by_emode[pos.emode_category] = params
        lt[i], ltv[i], bonus[i] = params
        if len(pos.legs) != a:
            raise ValueError(f"{pos.account}: {len(pos.legs)} legs for {a} reserves")
        for j, leg in enumerate(pos.legs):
            if leg.collateral and leg.used_as_collateral and counts[j]:
                collateral[i, j] = leg.collateral / units[j] * prices[j]
            if leg.variable_debt or leg.stable_debt:
                debt[i, j] = leg.debt / units[j] * prices[j]
    return Book(
        snapshot.market, snapshot.block, tuple(p.account for p in held),
        tuple(r.symbol for r in reserves), prices, collateral, debt, lt, ltv, bonus,
        lt_rounding="bps_floor" if aave and rules.rounding == "v30" else "exact",
        close_factor=rules.close_factor if aave else "full",
    )  # fmt: skip


def synthetic_book(
    n: int,
    symbols: Sequence[str],
    prices: Sequence[float],
    lts: Sequence[float],
    rng: np.random.Generator,
    *,
    bonus: float = 1.05,
    hf_range: tuple[float, float] = (1.02, 3.0),
    lt_rounding: LtRounding = "bps_floor",
    close_factor: CloseFactor = "v30",
) -> Book:
    """``n`` random positions: 1-3 collaterals, one debt asset, HF in ``hf_range``; an Aave 3.0
    book by default (bps floor, 3.0 close factor), as the backtest and the benchmarks use."""
    a = len(symbols)
    lt_row = np.asarray(lts, dtype=np.float64)
    mask = rng.random((n, a)) < 0.45
    mask[np.arange(n), rng.integers(0, a, n)] = True
    collateral = np.where(mask, rng.lognormal(9.5, 1.2, (n, a)), 0.0)
    weighted = (collateral * lt_row).sum(axis=1)
    target = rng.uniform(hf_range[0], hf_range[1], n)
    debt_col = rng.integers(0, a, n)
    debt = np.zeros((n, a))
    debt[np.arange(n), debt_col] = weighted / target
    lt = np.broadcast_to(lt_row, (n, a)).copy()
    return Book(
        "synthetic", 0, tuple(f"0x{i:040x}" for i in range(n)), tuple(symbols), np.asarray(prices, dtype=np.float64),
        collateral, debt, lt, lt * 0.95, np.full((n, a), bonus), lt_rounding, close_factor,
    )  # fmt: skip
