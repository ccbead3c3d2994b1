"""Liquidation math per Aave Pool revision: what a ``liquidationCall`` does (exact integers, as
each revision's ``LiquidationLogic`` computes it, reverts predicted rather than raised), the
exact repay / add-collateral amounts and liquidation prices of one position, and the vectorised
float versions over a ``Book`` (liquidation prices, repay / add amounts to a target HF).

Revisions (``AaveRules``):
- 3.0 - 3.2 (``close_factor == "v30"``): at most 50 % of the debt reserve's debt, 100 % when
  HF <= 0.95; eMode bonus by the reserve-config eMode bits (3.2: the collateral bitmap); before
  3.2 the eMode price source prices the collateral (member) and the debt (any, when set);
- 3.3+ (``"v33"``): the whole debt of the reserve, unless the collateral AND the debt position in
  the pair are each worth >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD in base and HF > 0.95: then at
  most 50 % of the user's TOTAL debt in base (converted back to the debt asset); a liquidation
  that leaves less than MIN_LEFTOVER_BASE of debt or collateral reverts ``MustNotLeaveDust``;
  when the seized collateral is all the user's collateral, the rest of every debt is burnt into
  the reserves' deficits (``DeficitCreated``);
- 3.5+ rounding: collateral balance floor, debt ceil, debt value ``mulDivCeil``, the debt needed
  for the whole collateral ``percentDivCeil``, scaled amounts ``rayDivCeil`` / ``rayDivFloor``;
- 3.7 (``liquidation_rounding == "directed"``): ``percentMulFloor`` bonus, ``percentDivFloor``
  bonus base, ``percentMulCeil`` fee, and "no collateral left" from the scaled amounts consumed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from monitor.errors import InputError
from monitor.models import MAX_UINT256, WAD, AssetLeg, EModeCategory, MarketSnapshot, Position, Reserve
from monitor.protocols.aave_revisions import AaveRules, a_token_balance, variable_debt_balance
from monitor.risk.book import Array, Book
from monitor.risk.health import (
    V30,
    categories_by_id,
    collateral_value,
    debt_value,
    effective_params,
    in_emode_category,
    position_account_data,
    reserve_debt,
    rules_of,
)
from monitor.wadray import (
    percent_div,
    percent_div_ceil,
    percent_div_floor,
    percent_mul,
    percent_mul_ceil,
    percent_mul_floor,
    ray_div,
    ray_div_ceil,
    ray_div_floor,
    ray_mul,
    ray_mul_floor,
)

CLOSE_FACTOR_HF_THRESHOLD_WAD = 95 * WAD // 100
DEFAULT_CLOSE_FACTOR_BPS = 5_000
MAX_CLOSE_FACTOR_BPS = 10_000

# Revert reasons by their 3.4+ custom-error names; LEGACY_ERROR_CODES gives the string code
# that ``require(..., Errors.X)`` reverts with before 3.4 (core-v3 / v3.3.0 Errors.sol).
REVERT_RESERVE_INACTIVE = "ReserveInactive"
REVERT_RESERVE_PAUSED = "ReservePaused"
REVERT_GRACE_PERIOD = "LiquidationGraceSentinelCheckFailed"
REVERT_HF_NOT_BELOW = "HealthFactorNotBelowThreshold"
REVERT_COLLATERAL = "CollateralCannotBeLiquidated"
REVERT_NOT_BORROWED = "SpecifiedCurrencyNotBorrowedByUser"
REVERT_DUST = "MustNotLeaveDust"
LEGACY_ERROR_CODES: dict[str, str] = {
    REVERT_RESERVE_INACTIVE: "27",
    REVERT_RESERVE_PAUSED: "29",
    REVERT_HF_NOT_BELOW: "45",
    REVERT_COLLATERAL: "46",
    REVERT_NOT_BORROWED: "47",
    REVERT_GRACE_PERIOD: "97",
    REVERT_DUST: "103",
}


@dataclass(frozen=True, slots=True)
class LiquidationAmounts:
    collateral_to_liquidator: int  # underlying collateral units the liquidator receives
    debt_repaid: int  # debt units the liquidator pays
    protocol_fee: int  # collateral units to the treasury
    close_factor_bps: int


@dataclass(frozen=True, slots=True)
class LiquidationOutcome:
    """What ``Pool.liquidationCall(collateral, debt, user, debtToCover, false)`` does.

    ``revert`` is None on success, else the custom-error name (``LEGACY_ERROR_CODES`` maps it to
    the pre-3.4 string code) and every amount is 0.
    """

    revert: str | None
    debt_repaid: int = 0  # debt-asset units the liquidator pays (actualDebtToLiquidate)
    collateral_to_liquidator: int = 0  # collateral underlying units sent to the liquidator
    protocol_fee: int = 0  # collateral units (aTokens) sent to the treasury
    protocol_fee_scaled: int = 0  # the treasury's scaled aToken balance increase
    deficit: Mapping[str, int] = field(default_factory=dict)  # debt asset address -> deficit created
    max_liquidatable_debt: int = 0  # the close-factor cap in debt units
    close_factor_bps: int = 0  # 5000 when the 50 % rule applied, else 10000
    health_factor: int = 0  # HF the Pool saw (WAD)
    collateral_disabled: bool = False  # the user's collateral bit for the reserve is cleared
    no_collateral_left: bool = False  # 3.3+: the seized collateral was all the user's collateral

    @property
    def ok(self) -> bool:
        return self.revert is None

    @property
    def legacy_revert(self) -> str | None:
        """The revert string before 3.4 (e.g. "103" for MustNotLeaveDust)."""
        return None if self.revert is None else LEGACY_ERROR_CODES.get(self.revert, self.revert)


def _lookup(reserves: Sequence[Reserve], key: str) -> int:
    k = key.lower()
    for i, r in enumerate(reserves):
        if r.symbol.lower() == k or r.asset.lower() == k:
            return i
    raise InputError(f"unknown asset {key!r}; assets: {', '.join(r.symbol for r in reserves)}")


def _liquidation_price(
    reserve: Reserve, user_emode: int, categories: Mapping[int, EModeCategory], prices: Mapping[str, int],
    rules: AaveRules, *, collateral: bool,
) -> int:  # fmt: skip
    """3.0 / 3.1 ``_getConfigurationData``: the eMode price source prices the collateral when it
    is a member, and the DEBT whenever the user's category has a source; else the oracle."""
    if rules.emode_price_source and user_emode and user_emode in categories:
        source = categories[user_emode].price_source
        member = in_emode_category(reserve, user_emode, categories, rules)
        if int(source, 16) != 0 and source in prices and (member or not collateral):
            return prices[source]
    return prices[reserve.asset]


def predict_liquidation_call(
    position: Position,
    reserves: Sequence[Reserve],
    categories: Mapping[int, EModeCategory],
    collateral_asset: str,
    debt_asset: str,
    debt_to_cover: int = MAX_UINT256,
    *,
    rules: AaveRules = V30,
    prices: Mapping[str, int] | None = None,
    timestamp: int | None = None,
    protocol_fee_bps: int | None = None,
) -> LiquidationOutcome:
    """Predict ``liquidationCall(collateral, debt, user, debtToCover, receiveAToken=false)``.

    ``collateral_asset`` / ``debt_asset`` are symbols or addresses; ``prices`` overrides oracle
    prices (asset -> base price); ``timestamp`` is the block time of the call (grace periods:
    without it a set grace period is taken as still running); ``protocol_fee_bps`` overrides the
    reserve's liquidation protocol fee. The indexes are the snapshot's (the call is assumed in a
    block with the same timestamp, as on a devnet with pinned time). The price oracle sentinel
    (L2s) is not modelled.
    """
    ci, di = _lookup(reserves, collateral_asset), _lookup(reserves, debt_asset)
    coll_r, debt_r = reserves[ci], reserves[di]
    coll_leg, debt_leg = position.legs[ci], position.legs[di]
    price_map = prices if prices is not None else {r.asset: r.price for r in reserves}
    data = position_account_data(position, reserves, categories, price_map, rules)
    hf = data.health_factor
    user_coll = a_token_balance(coll_leg.scaled_collateral, coll_r.liquidity_index, rules)
    user_debt = reserve_debt(debt_leg, debt_r, rules)
    cfg = position.user_configuration
    # ValidationLogic.validateLiquidationCall, in its order
    if not (coll_r.active and debt_r.active):
        return LiquidationOutcome(REVERT_RESERVE_INACTIVE, health_factor=hf)
    if coll_r.paused or debt_r.paused:
        return LiquidationOutcome(REVERT_RESERVE_PAUSED, health_factor=hf)
    if rules.grace_period:
        for r in (coll_r, debt_r):
            running = r.liquidation_grace_period_until != 0 if timestamp is None else (
                not r.liquidation_grace_period_until < timestamp
            )  # fmt: skip
            if running:
                return LiquidationOutcome(REVERT_GRACE_PERIOD, health_factor=hf)
    if hf >= WAD:
        return LiquidationOutcome(REVERT_HF_NOT_BELOW, health_factor=hf)
    coll_bit = (cfg >> (2 * coll_r.reserve_id + 1)) & 1
    if not coll_bit or not (rules.zero_lt_collateral or coll_r.liquidation_threshold != 0):
        return LiquidationOutcome(REVERT_COLLATERAL, health_factor=hf)
    if user_debt == 0:
        return LiquidationOutcome(REVERT_NOT_BORROWED, health_factor=hf)

    _ltv, _lt, bonus = effective_params(coll_r, position.emode_category, categories, rules)
    coll_price = _liquidation_price(coll_r, position.emode_category, categories, price_map, rules, collateral=True)
    debt_price = _liquidation_price(debt_r, position.emode_category, categories, price_map, rules, collateral=False)
    coll_unit, debt_unit = 10**coll_r.decimals, 10**debt_r.decimals

    # the close factor
    if rules.close_factor == "v30":
        close = DEFAULT_CLOSE_FACTOR_BPS if hf > rules.close_factor_hf_threshold else MAX_CLOSE_FACTOR_BPS
        max_debt = percent_mul(user_debt, close)
    else:
        close, max_debt = MAX_CLOSE_FACTOR_BPS, user_debt
        debt_base = debt_value(user_debt, debt_price, debt_unit, rules)
        coll_base = collateral_value(user_coll, coll_price, coll_unit)
        threshold = rules.min_base_max_close_factor_threshold
        if coll_base >= threshold and debt_base >= threshold and hf > rules.close_factor_hf_threshold:
            half_total = percent_mul(data.total_debt_base, rules.default_close_factor)
            if debt_base > half_total:
                close, max_debt = DEFAULT_CLOSE_FACTOR_BPS, half_total * debt_unit // debt_price
    actual_debt = min(debt_to_cover, max_debt)

    # _calculateAvailableCollateralToLiquidate
    fee_bps = coll_r.liquidation_protocol_fee if protocol_fee_bps is None else protocol_fee_bps
    directed = rules.liquidation_rounding == "directed"
    base_collateral = (debt_price * actual_debt * coll_unit) // (coll_price * debt_unit)
    max_collateral = percent_mul_floor(base_collateral, bonus) if directed else percent_mul(base_collateral, bonus)
    if max_collateral > user_coll:
        amount = user_coll
        value = (coll_price * amount * debt_unit) // (debt_price * coll_unit)
        if rules.rounding == "v35" or directed:
            debt_needed = percent_div_ceil(value, bonus)
        else:
            debt_needed = percent_div(value, bonus)
    else:
        amount, debt_needed = max_collateral, actual_debt
    seized_base = amount * coll_price // coll_unit  # collateralToLiquidateInBaseCurrency (before the fee)
    fee = 0
    if fee_bps:
        bonus_base = percent_div_floor(amount, bonus) if directed else percent_div(amount, bonus)
        fee = percent_mul_ceil(amount - bonus_base, fee_bps) if directed else percent_mul(amount - bonus_base, fee_bps)
        amount -= fee
    actual_debt = debt_needed

    # 3.3+: the dust rule
    if rules.close_factor == "v33" and actual_debt < user_debt and amount + fee < user_coll:
        debt_left = debt_value(user_debt - actual_debt, debt_price, debt_unit, rules)
        coll_left = collateral_value(user_coll - amount - fee, coll_price, coll_unit)
        if debt_left < rules.min_leftover_base or coll_left < rules.min_leftover_base:
            return LiquidationOutcome(
                REVERT_DUST, max_liquidatable_debt=max_debt, close_factor_bps=close, health_factor=hf
            )  # fmt: skip

    # scaled amounts: the collateral burnt from the user, the fee moved to the treasury
    index = coll_r.liquidity_index
    scaled_user = coll_leg.scaled_collateral
    burn_scaled = ray_div_ceil(amount, index) if rules.rounding == "v35" or directed else ray_div(amount, index)
    left_scaled = scaled_user - burn_scaled
    fee_scaled = 0
    if fee:
        if rules.rounding == "v35" or directed:
            fee_scaled = ray_div_ceil(fee, index)
            if fee_scaled > left_scaled:
                fee_scaled, fee = left_scaled, ray_mul_floor(left_scaled, index)
        else:
            if ray_div(fee, index) > left_scaled:
                fee = ray_mul(left_scaled, index)
            fee_scaled = ray_div(fee, index)

    if directed:  # 3.7: what was consumed, from the scaled amounts
        consumed = min(burn_scaled + (ray_div_ceil(fee, index) if fee else 0), scaled_user)
        no_collateral_left = collateral_value(ray_mul_floor(consumed, index), coll_price, coll_unit) == (
            data.total_collateral_base
        )  # fmt: skip
        disabled = consumed == scaled_user or no_collateral_left
    else:
        no_collateral_left = rules.deficit and data.total_collateral_base == seized_base
        disabled = amount + fee == user_coll

    deficit: dict[str, int] = {}
    if rules.deficit and no_collateral_left:
        if user_debt - actual_debt:
            deficit[debt_r.asset] = user_debt - actual_debt
        debt_cleared = True  # the whole reserve debt is burnt (rayDiv of the balance == scaled)
        for j, (leg, r) in enumerate(zip(position.legs, reserves, strict=True)):
            if j == di and debt_cleared:
                continue
            if (cfg >> (2 * r.reserve_id)) & 1 and r.active:
                owed = variable_debt_balance(leg.scaled_variable_debt, r.variable_borrow_index, rules)
                if owed:
                    deficit[r.asset] = deficit.get(r.asset, 0) + owed
    return LiquidationOutcome(
        None,
        debt_repaid=actual_debt,
        collateral_to_liquidator=amount,
        protocol_fee=fee,
        protocol_fee_scaled=fee_scaled,
        deficit=deficit,
        max_liquidatable_debt=max_debt,
        close_factor_bps=close,
        health_factor=hf,
        collateral_disabled=disabled,
        no_collateral_left=no_collateral_left,
    )


def snapshot_liquidation_call(
    snapshot: MarketSnapshot,
    position: Position,
    collateral_asset: str,
    debt_asset: str,
    debt_to_cover: int = MAX_UINT256,
    *,
    prices: Mapping[str, int] | None = None,
    timestamp: int | None = None,
) -> LiquidationOutcome:
    """``predict_liquidation_call`` with the snapshot's reserves, categories and revision;
    ``timestamp`` defaults to the snapshot's block time."""
    return predict_liquidation_call(
        position, snapshot.reserves, categories_by_id(snapshot.emode_categories), collateral_asset, debt_asset,
        debt_to_cover, rules=rules_of(snapshot), prices=prices,
        timestamp=snapshot.timestamp if timestamp is None else timestamp,
    )  # fmt: skip


def liquidation_call_amounts(
    position: Position,
    reserves: Sequence[Reserve],
    categories: Mapping[int, EModeCategory],
    collateral_symbol: str,
    debt_symbol: str,
    debt_to_cover: int,
    *,
    prices: Mapping[str, int] | None = None,
    protocol_fee_bps: int | None = None,
    rules: AaveRules = V30,
    timestamp: int | None = None,
) -> LiquidationAmounts:
    """``predict_liquidation_call`` that raises on a predicted revert (the older interface)."""
    out = predict_liquidation_call(
        position, reserves, categories, collateral_symbol, debt_symbol, debt_to_cover,
        rules=rules, prices=prices, timestamp=timestamp, protocol_fee_bps=protocol_fee_bps,
    )  # fmt: skip
    if out.revert is not None:
        raise InputError(
            f"liquidationCall({collateral_symbol}, {debt_symbol}) of {position.account} would revert with "
            f"{out.revert} (HF {out.health_factor / WAD:.6f})"
        )
    return LiquidationAmounts(out.collateral_to_liquidator, out.debt_repaid, out.protocol_fee, out.close_factor_bps)


# -- exact targets for one position (integers, per revision) ---------------------------------

_PRICE_CEILING = 2**128


def _replace_leg(position: Position, i: int, leg: AssetLeg, configuration: int) -> Position:
    legs = list(position.legs)
    legs[i] = leg
    return replace(position, legs=tuple(legs), user_configuration=configuration)


def _hf(position: Position, reserves: Sequence[Reserve], categories: Mapping[int, EModeCategory],
        prices: Mapping[str, int] | None, rules: AaveRules) -> int:  # fmt: skip
    return position_account_data(position, reserves, categories, prices, rules).health_factor


def after_repay(position: Position, reserves: Sequence[Reserve], debt_asset: str, amount: int,
                rules: AaveRules = V30) -> Position:  # fmt: skip
    """The position after ``Pool.repay(debt_asset, amount, variable)``: the scaled debt falls by
    ``rayDiv(amount, index)`` (3.5+: ``rayDivFloor``); a full repay clears the borrowing bit."""
    i = _lookup(reserves, debt_asset)
    r, leg = reserves[i], position.legs[i]
    owed = variable_debt_balance(leg.scaled_variable_debt, r.variable_borrow_index, rules)
    amount = min(amount, owed)
    burn = ray_div_floor(amount, r.variable_borrow_index) if rules.rounding == "v35" else ray_div(
        amount, r.variable_borrow_index
    )  # fmt: skip
    scaled = 0 if amount == owed else max(0, leg.scaled_variable_debt - burn)
    variable = variable_debt_balance(scaled, r.variable_borrow_index, rules)
    cfg = position.user_configuration
    if scaled == 0 and leg.stable_debt == 0:
        cfg &= ~(1 << (2 * r.reserve_id))
    return _replace_leg(position, i, replace(leg, scaled_variable_debt=scaled, variable_debt=variable), cfg)


def after_supply(position: Position, reserves: Sequence[Reserve], asset: str, amount: int,
                 rules: AaveRules = V30) -> Position:  # fmt: skip
    """The position after ``Pool.supply(asset, amount)`` with the reserve enabled as collateral:
    the scaled balance grows by ``rayDiv(amount, index)`` (3.5+: ``rayDivFloor``)."""
    i = _lookup(reserves, asset)
    r, leg = reserves[i], position.legs[i]
    mint = ray_div_floor(amount, r.liquidity_index) if rules.rounding == "v35" else ray_div(amount, r.liquidity_index)
    scaled = leg.scaled_collateral + mint
    cfg = position.user_configuration | (1 << (2 * r.reserve_id + 1))
    new_leg = replace(leg, scaled_collateral=scaled, collateral=a_token_balance(scaled, r.liquidity_index, rules),
                      used_as_collateral=True)  # fmt: skip
    return _replace_leg(position, i, new_leg, cfg)


def _plateau(reserve: Reserve) -> int:
    """Units of ``reserve`` worth about one base-currency unit: amounts closer than this often
    give the same HF (values are floored to base units), so a search steps by it first."""
    return max(1, int(10**reserve.decimals) // max(1, reserve.price))


def first_true(pred: Callable[[int], bool], lo: int, hi: int, guess: int | None = None, step: int = 1) -> int:
    """The smallest ``x`` in ``(lo, hi]`` with ``pred(x)``, for a ``pred`` false at ``lo``, true at
    ``hi`` and monotone between (false ... false true ... true). Without ``guess``: bisection
    (~log2(hi - lo) calls). With a ``guess`` near the answer (a closed-form estimate): galloping
    out from it, then bisection inside the bracket found: a few calls when the guess is close,
    never wrong when it is not (the same answer as bisection). ``step``: the first gallop step,
    e.g. the amount worth one base-currency unit (the width of one HF plateau)."""
    if guess is not None and lo < guess < hi:
        step = max(1, step)
        if pred(guess):
            hi = guess
            while hi - step > lo and pred(hi - step):
                hi, step = hi - step, step * 2
            lo = max(lo, hi - step)
        else:
            lo = guess
            while lo + step < hi and not pred(lo + step):
                lo, step = lo + step, step * 2
            hi = min(hi, lo + step)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid
    return hi


def on_grid(enough: Callable[[int], bool], hi: int, guess: int | None, step: int, quantum: int) -> int:
    """The smallest amount in ``(0, hi]`` for which ``enough`` holds (false at 0, true at ``hi``,
    monotone), rounded UP to a multiple of ``quantum`` (capped at ``hi``): the search runs on that
    grid, so a coarse quantum (the precision shown to a person) takes a few evaluations."""
    if quantum <= 1:
        return first_true(enough, 0, hi, guess, step)
    top = -(-hi // quantum)
    k = first_true(lambda j: enough(min(j * quantum, hi)), 0, top, None if guess is None else guess // quantum)
    return min(k * quantum, hi)


def exact_repay_to_target(
    position: Position, reserves: Sequence[Reserve], categories: Mapping[int, EModeCategory], debt_asset: str,
    target_hf: int, *, rules: AaveRules = V30, prices: Mapping[str, int] | None = None, guess: int | None = None,
    quantum: int = 1,
) -> int | None:  # fmt: skip
    """The smallest repay of ``debt_asset`` (its smallest units) after which the recomputed HF
    is >= ``target_hf`` (WAD); 0 when already there; None when repaying all of it is not enough.
    ``guess``: an estimate of the answer (e.g. the closed form) that makes the search a few steps.
    ``quantum``: the answer rounded UP to a multiple of it (at most the whole debt): exact at that
    precision (e.g. the decimals a message shows) in a few HF evaluations."""
    if _hf(position, reserves, categories, prices, rules) >= target_hf:
        return 0
    i = _lookup(reserves, debt_asset)
    owed = variable_debt_balance(position.legs[i].scaled_variable_debt, reserves[i].variable_borrow_index, rules)
    if (
        owed == 0
        or _hf(after_repay(position, reserves, debt_asset, owed, rules), reserves, categories, prices, rules)
        < target_hf
    ):
        return None
    def enough(amount: int) -> bool:
        return _hf(after_repay(position, reserves, debt_asset, amount, rules), reserves, categories, prices, rules) >= (
            target_hf
        )

    return on_grid(enough, owed, guess, _plateau(reserves[i]), quantum)  # HF(0) < target <= HF(owed)


def exact_supply_to_target(
    position: Position, reserves: Sequence[Reserve], categories: Mapping[int, EModeCategory], asset: str,
    target_hf: int, *, rules: AaveRules = V30, prices: Mapping[str, int] | None = None, guess: int | None = None,
    quantum: int = 1,
) -> int | None:  # fmt: skip
    """The smallest supply of ``asset`` as collateral (its smallest units) after which the HF is
    >= ``target_hf`` (WAD); 0 when already there; None when no amount does it (LT 0 for the user).
    ``guess``: an estimate of the answer that makes the search a few steps; ``quantum``: the answer
    rounded UP to a multiple of it (exact at that precision)."""
    if _hf(position, reserves, categories, prices, rules) >= target_hf:
        return 0
    i = _lookup(reserves, asset)
    _ltv, lt, _bonus = effective_params(reserves[i], position.emode_category, categories, rules)
    if lt == 0:
        return None
    def enough(amount: int) -> bool:
        return _hf(after_supply(position, reserves, asset, amount, rules), reserves, categories, prices, rules) >= (
            target_hf
        )

    hi: int = max(10 ** reserves[i].decimals, 2 * guess if guess else 0)
    while not enough(hi):
        hi *= 2
        if hi > _PRICE_CEILING:
            return None
    return on_grid(enough, hi, guess, _plateau(reserves[i]), quantum)


def exact_liquidation_price(
    position: Position,
    reserves: Sequence[Reserve],
    categories: Mapping[int, EModeCategory],
    asset: str,
    *,
    rules: AaveRules = V30,
    prices: Mapping[str, int] | None = None,
    guess: int | None = None,
) -> tuple[int, int] | None:
    """(price, direction) of ``asset`` in base units at which the recomputed HF first falls below
    1 with every other price fixed: direction -1 when the position is liquidatable at that price
    and BELOW (the asset is net collateral; the price is the highest such), +1 when at that price
    and ABOVE (net debt; the lowest such). None when no price in (0, 2**128) makes HF < 1.
    ``guess``: an estimate of that price (the linear closed form) that makes the search a few steps."""
    i = _lookup(reserves, asset)
    base = dict(prices) if prices is not None else {r.asset: r.price for r in reserves}
    key = reserves[i].asset

    def liquidatable(p: int) -> bool:
        base[key] = p
        return _hf(position, reserves, categories, base, rules) < WAD

    low, high = liquidatable(0), liquidatable(_PRICE_CEILING)
    if low == high:
        return None
    hi = first_true(lambda p: liquidatable(p) != low, 0, _PRICE_CEILING, guess)  # the first price of the other side
    return (hi - 1, -1) if low else (hi, 1)


# -- vectorised over a Book (floats at the numpy edge) ----------------------------------------


def liquidation_multipliers(book: Book) -> Array:
    """[P, A] price multiplier of each asset at which HF reaches 1 with all else fixed.

    HF(x) = (W - w_a + w_a x) / (D - d_a + d_a x) = 1  =>  x = (D - W + w_a - d_a) / (w_a - d_a).
    NaN where no positive price does it (the asset does not move the HF, the position has
    no debt, or the move would need a negative price). Exact for protocols without a floor of
    the average LT (``book.lt_rounding == "exact"``); within Aave's bps floor (one bps of the average LT)
    before 3.5.
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


def main_debt_column(book: Book) -> np.ndarray:
    """[P] column of each position's largest debt (in USD)."""
    cols: np.ndarray = np.argmax(book.debt, axis=1)
    return cols


def main_collateral_column(book: Book) -> np.ndarray:
    """[P] column of each position's largest collateral (in USD)."""
    cols: np.ndarray = np.argmax(book.collateral, axis=1)
    return cols


def usd_to_tokens(book: Book, usd: Array, columns: np.ndarray) -> Array:
    """[P] ``usd`` of each position's asset ``columns[i]`` in whole tokens (at the book's prices)."""
    px = book.prices[np.asarray(columns, dtype=int)]
    with np.errstate(divide="ignore", invalid="ignore"):
        tokens: Array = np.where(px > 0, usd / np.where(px > 0, px, 1.0), np.nan)
    return tokens


def repay_to_target_tokens(book: Book, target_hf: float) -> tuple[Array, Array, np.ndarray]:
    """([P] USD, [P] tokens, [P] column) of the main debt to repay so HF reaches ``target_hf``,
    for messages such as "repay 1,250.00 USDC"; a repay larger than that debt is capped by it
    in USD and its token amount is the whole main debt."""
    usd = repay_to_target(book, target_hf)
    cols = main_debt_column(book)
    rows = np.arange(book.size)
    usd_main = np.minimum(usd, book.debt[rows, cols])
    return usd, usd_to_tokens(book, usd_main, cols), cols


def add_collateral_to_target_tokens(book: Book, target_hf: float) -> tuple[Array, Array, np.ndarray]:
    """([P] USD, [P] tokens, [P] column) of the main collateral to add so HF reaches ``target_hf``
    (e.g. "or add 0.84 WETH"); inf where that collateral has LT 0 for the user."""
    cols = main_collateral_column(book)
    rows = np.arange(book.size)
    w = (book.collateral * book.lt).sum(axis=1)
    d = book.debt.sum(axis=1)
    lt = book.lt[rows, cols]
    _check_target(target_hf)
    short = target_hf * d - w
    with np.errstate(divide="ignore", invalid="ignore"):
        usd = np.where(short <= 0, 0.0, np.where(lt > 0, short / np.where(lt > 0, lt, 1.0), np.inf))
    return usd, usd_to_tokens(book, usd, cols), cols


def _check_target(target_hf: float) -> None:
    if not (np.isfinite(target_hf) and target_hf > 0):
        raise InputError(f"target health factor must be a positive number, got {target_hf}")
