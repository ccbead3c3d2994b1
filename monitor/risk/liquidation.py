"""Liquidation math: what a ``liquidationCall`` seizes (exact integers, as Aave V3.0.x
``LiquidationLogic`` computes it), the price at which a position becomes liquidatable,
and the repay / add-collateral amounts that restore a target health factor (vectorised).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from monitor.errors import InputError
from monitor.models import WAD, EModeCategory, Position, Reserve
from monitor.risk.book import Array, Book
from monitor.risk.health import effective_params, effective_price, position_account_data
from monitor.wadray import percent_div, percent_mul, ray_mul

CLOSE_FACTOR_HF_THRESHOLD_WAD = 95 * WAD // 100
DEFAULT_CLOSE_FACTOR_BPS = 5_000
MAX_CLOSE_FACTOR_BPS = 10_000


@dataclass(frozen=True, slots=True)
class LiquidationAmounts:
    collateral_to_liquidator: int  # underlying collateral units the liquidator receives
    debt_repaid: int  # debt units the liquidator pays
    protocol_fee: int  # collateral units to the treasury
    close_factor_bps: int


def liquidation_call_amounts(
    position: Position,
    reserves: Sequence[Reserve],
    categories: Mapping[int, EModeCategory],
    collateral_symbol: str,
    debt_symbol: str,
    debt_to_cover: int,
    *,
    prices: Mapping[str, int] | None = None,
    protocol_fee_bps: int = 0,
) -> LiquidationAmounts:
    """Predict ``Pool.liquidationCall(collateral, debt, user, debtToCover, false)``."""
    by_symbol = {r.symbol.upper(): (i, r) for i, r in enumerate(reserves)}
    try:
        ci, collateral = by_symbol[collateral_symbol.upper()]
        di, debt = by_symbol[debt_symbol.upper()]
    except KeyError as exc:
        raise InputError(f"unknown asset {exc.args[0]!r}; assets: {', '.join(by_symbol)}") from None
    price_map = prices if prices is not None else {r.asset: r.price for r in reserves}
    hf = position_account_data(position, reserves, categories, price_map).health_factor
    if hf >= WAD:
        raise InputError(f"{position.account} has HF {hf / WAD:.6f} >= 1: not liquidatable")
    debt_leg, collateral_leg = position.legs[di], position.legs[ci]
    user_debt = ray_mul(debt_leg.scaled_variable_debt, debt.variable_borrow_index) + debt_leg.stable_debt
    close_factor = DEFAULT_CLOSE_FACTOR_BPS if hf > CLOSE_FACTOR_HF_THRESHOLD_WAD else MAX_CLOSE_FACTOR_BPS
    actual_debt = min(debt_to_cover, percent_mul(user_debt, close_factor))
    user_collateral = ray_mul(collateral_leg.scaled_collateral, collateral.liquidity_index)
    _ltv, _lt, bonus = effective_params(collateral, position.emode_category, categories)
    collateral_price = effective_price(collateral, position.emode_category, categories, price_map)
    debt_price = effective_price(debt, position.emode_category, categories, price_map)
    collateral_unit, debt_unit = 10**collateral.decimals, 10**debt.decimals
    base_collateral = (debt_price * actual_debt * collateral_unit) // (collateral_price * debt_unit)
    max_collateral = percent_mul(base_collateral, bonus)
    if max_collateral > user_collateral:
        amount = user_collateral
        debt_needed = percent_div((collateral_price * amount * debt_unit) // (debt_price * collateral_unit), bonus)
    else:
        amount, debt_needed = max_collateral, actual_debt
    fee = 0
    if protocol_fee_bps:
        bonus_collateral = amount - percent_div(amount, bonus)
        fee = percent_mul(bonus_collateral, protocol_fee_bps)
    return LiquidationAmounts(amount - fee, debt_needed, fee, close_factor)


def liquidation_multipliers(book: Book) -> Array:
    """[P, A] price multiplier of each asset at which HF reaches 1 with all else fixed.

    HF(x) = (W - w_a + w_a x) / (D - d_a + d_a x) = 1  =>  x = (D - W + w_a - d_a) / (w_a - d_a).
    NaN where no positive price does it (the asset does not move the HF, the position has
    no debt, or the move would need a negative price).
    """
    w_a = book.collateral * book.lt
    d_a = book.debt
    w = w_a.sum(axis=1, keepdims=True)
    d = d_a.sum(axis=1, keepdims=True)
    slope = w_a - d_a
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (d - w + slope) / slope
    valid = (slope != 0) & (x > 0) & np.isfinite(x) & (d > 0)
    return np.where(valid, x, np.nan)


def liquidation_direction(book: Book) -> Array:
    """[P, A] -1 where the position is liquidated when the asset's price FALLS to its
    liquidation price (net collateral in it), +1 where when it RISES (net debt), 0 otherwise."""
    slope = book.collateral * book.lt - book.debt
    direction: Array = -np.sign(slope)
    return direction


def liquidation_prices(book: Book) -> tuple[Array, Array]:
    """([P, A] USD liquidation prices, [P, A] distance in % from the current price)."""
    x = liquidation_multipliers(book)
    return x * book.prices, (x - 1.0) * 100.0


def repay_to_target(book: Book, target_hf: float) -> Array:
    """[P] USD of debt to repay so HF reaches ``target_hf`` (0 when already there)."""
    _check_target(target_hf)
    w = (book.collateral * book.lt).sum(axis=1)
    d = book.debt.sum(axis=1)
    repay: Array = np.clip(d - w / target_hf, 0.0, d)
    return repay


def add_collateral_to_target(book: Book, target_hf: float, symbol: str) -> Array:
    """[P] USD of ``symbol`` to supply as collateral so HF reaches ``target_hf``."""
    _check_target(target_hf)
    j = book.column(symbol)
    w = (book.collateral * book.lt).sum(axis=1)
    d = book.debt.sum(axis=1)
    lt = book.lt[:, j]
    short = target_hf * d - w  # weighted collateral missing to reach the target
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(short <= 0, 0.0, np.where(lt > 0, short / np.where(lt > 0, lt, 1.0), np.inf))
    result: Array = need
    return result


def _check_target(target_hf: float) -> None:
    if not (np.isfinite(target_hf) and target_hf > 0):
        raise InputError(f"target health factor must be a positive number, got {target_hf}")
