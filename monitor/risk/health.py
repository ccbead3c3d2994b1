"""Exact Aave V3 health factors from per-reserve data, with the protocol's integer rounding.

Mirrors ``GenericLogic.calculateUserAccountData`` (Aave V3.0.x):
- a reserve counts as collateral when its liquidation threshold is non-zero and the user's
  configuration bit says so; its value is ``rayMul(scaled, normalizedIncome) * price / unit``
  (floor division);
- debt is ``(rayMul(scaledVariable, normalizedDebt) + stableBalance) * price / unit``;
- in an active eMode category, member reserves use the category's LTV / LT (and its price
  source, when set);
- ``avgLT = sum(value_i * LT_i) / totalCollateral`` (floor) and
  ``HF = percentMul(totalCollateral, avgLT) wadDiv totalDebt`` (both half-up);
  no debt gives ``type(uint256).max``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from monitor.models import MAX_UINT256, AssetLeg, EModeCategory, Position, Reserve
from monitor.wadray import percent_mul, ray_mul, wad_div


@dataclass(frozen=True, slots=True)
class AccountData:
    """What ``Pool.getUserAccountData`` returns, recomputed."""

    total_collateral_base: int
    total_debt_base: int
    current_liquidation_threshold: int
    ltv: int
    health_factor: int


def effective_params(
    reserve: Reserve, user_emode: int, categories: Mapping[int, EModeCategory]
) -> tuple[int, int, int]:
    """(LTV, LT, bonus) that apply to ``reserve`` for a user in eMode ``user_emode``."""
    category = categories.get(user_emode) if user_emode else None
    if category is not None and reserve.emode_category == user_emode:
        return category.ltv, category.liquidation_threshold, category.liquidation_bonus
    return reserve.ltv, reserve.liquidation_threshold, reserve.liquidation_bonus


def effective_price(
    reserve: Reserve,
    user_emode: int,
    categories: Mapping[int, EModeCategory],
    prices: Mapping[str, int],
) -> int:
    """The price the protocol uses: the eMode price source's if set, else the oracle's.

    ``prices`` maps asset address -> price and may hold extra keys for price sources.
    """
    category = categories.get(user_emode) if user_emode else None
    if (
        category is not None
        and reserve.emode_category == user_emode
        and int(category.price_source, 16) != 0
        and category.price_source in prices
    ):
        return prices[category.price_source]
    return prices[reserve.asset]


def account_data(
    legs: Sequence[AssetLeg],
    reserves: Sequence[Reserve],
    user_emode: int,
    user_configuration: int,
    categories: Mapping[int, EModeCategory],
    prices: Mapping[str, int] | None = None,
) -> AccountData:
    """Recompute ``getUserAccountData`` exactly; ``prices`` overrides reserve prices
    (asset address -> base-currency price) for what-if questions."""
    price_map = prices if prices is not None else {r.asset: r.price for r in reserves}
    total_collateral = total_debt = weighted_ltv = weighted_lt = 0
    for leg, reserve in zip(legs, reserves, strict=True):
        price = effective_price(reserve, user_emode, categories, price_map)
        unit = 10**reserve.decimals
        ltv, lt, _bonus = effective_params(reserve, user_emode, categories)
        collateral_bit = (user_configuration >> (2 * reserve.reserve_id + 1)) & 1
        borrow_bit = (user_configuration >> (2 * reserve.reserve_id)) & 1
        if reserve.liquidation_threshold != 0 and collateral_bit:
            value = ray_mul(leg.scaled_collateral, reserve.liquidity_index) * price // unit
            total_collateral += value
            if reserve.ltv != 0:
                weighted_ltv += value * ltv
            weighted_lt += value * lt
        if borrow_bit:
            variable = (
                ray_mul(leg.scaled_variable_debt, reserve.variable_borrow_index) if leg.scaled_variable_debt else 0
            )
            total_debt += (variable + leg.stable_debt) * price // unit
    avg_ltv = weighted_ltv // total_collateral if total_collateral else 0
    avg_lt = weighted_lt // total_collateral if total_collateral else 0
    hf = MAX_UINT256 if total_debt == 0 else wad_div(percent_mul(total_collateral, avg_lt), total_debt)
    return AccountData(total_collateral, total_debt, avg_lt, avg_ltv, hf)


def position_account_data(
    position: Position,
    reserves: Sequence[Reserve],
    categories: Mapping[int, EModeCategory],
    prices: Mapping[str, int] | None = None,
) -> AccountData:
    return account_data(
        position.legs, reserves, position.emode_category, position.user_configuration, categories, prices
    )


def categories_by_id(categories: Sequence[EModeCategory]) -> dict[int, EModeCategory]:
    return {c.id: c for c in categories}
