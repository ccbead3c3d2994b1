"""Exact Aave math per Pool revision: getUserAccountData and liquidationCall of 3.0, 3.2
(liquid eMode), 3.3 (close factor, dust, deficit), 3.5 (rounding) and 3.6 (LT-0 collateral inside
an eMode, LTV-zero bitmap); the stress book's rounding per protocol.

Known answers are worked by hand in the comments (integers, the Solidity's own rounding);
hypothesis checks directions of rounding against exact rationals. Pure Python, no devnet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.models import MAX_UINT256, RAY, WAD, AssetLeg, EModeCategory, MarketSnapshot, Position, Reserve
from monitor.protocols.aave_revisions import AaveRules, a_token_balance, rules_for, variable_debt_balance
from monitor.risk.book import CloseFactor, LtRounding, book_from_snapshot, synthetic_book
from monitor.risk.health import (
    V30,
    account_data,
    debt_value,
    effective_params,
    effective_price,
    rules_of,
    snapshot_account_data,
)
from monitor.risk.liquidation import (
    LEGACY_ERROR_CODES,
    REVERT_COLLATERAL,
    REVERT_DUST,
    REVERT_GRACE_PERIOD,
    REVERT_HF_NOT_BELOW,
    REVERT_RESERVE_PAUSED,
    after_repay,
    after_supply,
    exact_liquidation_price,
    exact_repay_to_target,
    exact_supply_to_target,
    liquidation_call_amounts,
    predict_liquidation_call,
    snapshot_liquidation_call,
)
from monitor.risk.stress import evaluate, position_outcomes
from monitor.wadray import (
    mul_div_ceil,
    percent_div_ceil,
    percent_div_floor,
    percent_mul,
    percent_mul_ceil,
    percent_mul_floor,
    ray_div_ceil,
    ray_div_floor,
    ray_mul,
    ray_mul_ceil,
    ray_mul_floor,
    wad_div,
)

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
R30, R32, R33, R35, R36, R37 = (rules_for(r) for r in (1, 5, 7, 9, 10, 11))
USD = 10**8
ZERO = "0x" + "0" * 40


def _reserve(
    symbol: str, rid: int, decimals: int, ltv: int, lt: int, price: int, *, emode: int = 0, bonus: int = 10_500,
    fee: int = 0, li: int = RAY, vi: int = RAY, paused: bool = False, grace: int = 0,
) -> Reserve:  # fmt: skip
    return Reserve(
        f"0x{rid + 1:040x}", symbol, decimals, rid, ltv, lt, bonus, emode, True, False, True, ZERO, ZERO, ZERO,
        li, vi, price, liquidation_protocol_fee=fee, paused=paused, liquidation_grace_period_until=grace,
    )  # fmt: skip


def _leg(r: Reserve, coll: int = 0, debt: int = 0, *, enabled: bool | None = None) -> AssetLeg:
    return AssetLeg(
        r.asset, r.symbol, coll, ray_mul(coll, r.liquidity_index), debt, ray_mul(debt, r.variable_borrow_index), 0,
        coll > 0 if enabled is None else enabled,
    )  # fmt: skip


def _bits(*, collateral: Sequence[int] = (), borrowing: Sequence[int] = ()) -> int:
    return sum(1 << (2 * i + 1) for i in collateral) | sum(1 << (2 * i) for i in borrowing)


def _position(legs: Sequence[AssetLeg], reserves: Sequence[Reserve], emode: int = 0) -> Position:
    cfg = 0
    for leg, r in zip(legs, reserves, strict=True):
        if leg.used_as_collateral:
            cfg |= 1 << (2 * r.reserve_id + 1)
        if leg.scaled_variable_debt or leg.stable_debt:
            cfg |= 1 << (2 * r.reserve_id)
    return Position("m", "0x" + "ab" * 20, 1, 0, 0, 0, 0, 0, 0, emode, cfg, tuple(legs))


E18, E6 = 10**18, 10**6
WETH = _reserve("WETH", 0, 18, 8_000, 8_250, 2_000 * USD, emode=1, fee=1_000)
USDC = _reserve("USDC", 1, 6, 7_500, 7_800, USD, emode=1, bonus=10_450)  # eMode bit set, NOT in the bitmap
DAI = _reserve("DAI", 2, 18, 7_500, 8_000, USD)
PT = _reserve("PT", 3, 18, 0, 0, USD)  # LT 0: collateral only inside category 2 (3.6)
RESERVES = (WETH, USDC, DAI, PT)
ETH_CAT = EModeCategory(1, 9_000, 9_300, 10_100, ZERO, "ETH", collateral_bitmap=0b0001, borrowable_bitmap=0b0111)
PT_CAT = EModeCategory(2, 8_500, 9_000, 10_300, ZERO, "PT", collateral_bitmap=0b1000, ltv_zero_bitmap=0b1000)
CATS = {1: ETH_CAT, 2: PT_CAT}


# -- wadray: the explicitly rounded helpers ----------------------------------------------------


def test_directed_rounding_helpers_known_answers() -> None:
    assert (ray_mul(3, RAY // 2), ray_mul_floor(3, RAY // 2), ray_mul_ceil(3, RAY // 2)) == (2, 1, 2)
    assert (ray_mul_floor(4, RAY // 2), ray_mul_ceil(4, RAY // 2)) == (2, 2)
    assert (ray_div_floor(1, 3 * RAY), ray_div_ceil(1, 3 * RAY)) == (0, 1)
    assert (percent_mul_floor(3, 5_000), percent_mul_ceil(3, 5_000)) == (1, 2)
    assert (percent_div_floor(1, 3), percent_div_ceil(1, 3)) == (3_333, 3_334)
    assert (mul_div_ceil(7, 3, 7), mul_div_ceil(7, 3, 5)) == (3, 5)


# -- getUserAccountData per revision ------------------------------------------------------------


def test_v30_floors_the_average_lt_v35_does_not() -> None:
    # 1 WETH (2,000 USD, LT 8,250) + 1,001 USDC (LT 7,800) against 2,000 DAI, no eMode.
    # sum(v x LT) = 2,000e8 x 8,250 + 1,001e8 x 7,800 = 2,430,780e12; total 3,001e8;
    # avgLT = 8,099.90 -> 8,099. 3.0: percentMul(3,001e8, 8,099) = 243,050,990,000 ->
    # HF = 243,050,990,000e18 / 2,000e8 = 1.21525495. 3.5: 2,430,780e12 wadDiv 2,000e8 / 1e4 = 1.21539.
    legs = (_leg(WETH, E18), _leg(USDC, 1_001 * E6), _leg(DAI, debt=2_000 * E18), _leg(PT))
    cfg = _bits(collateral=(0, 1), borrowing=(2,))
    v30 = account_data(legs, RESERVES, 0, cfg, CATS)
    v35 = account_data(legs, RESERVES, 0, cfg, CATS, rules=R35)
    assert (v30.total_collateral_base, v30.total_debt_base) == (3_001 * USD, 2_000 * USD)
    assert v30.current_liquidation_threshold == v35.current_liquidation_threshold == 8_099
    assert v30.health_factor == 1_215_254_950_000_000_000
    assert v35.health_factor == 1_215_390_000_000_000_000
    # 3.3 and 3.4 still floor; the default is 3.0
    assert account_data(legs, RESERVES, 0, cfg, CATS, rules=R33).health_factor == v30.health_factor
    assert account_data(legs, RESERVES, 0, cfg, CATS, rules=rules_for(8)).health_factor == v30.health_factor
    assert account_data(legs, RESERVES, 0, cfg, CATS, rules=V30) == v30


def test_v35_rounds_collateral_down_and_debt_up() -> None:
    # index 1.0000005: 1 USDC scaled -> 1,000,000.5 units: 3.0 half-up 1,000,001 (collateral and
    # debt), 3.5 collateral floor 1,000,000, debt ceil 1,000,001 and value mulDivCeil.
    usdc = replace(USDC, liquidity_index=RAY + RAY // 2_000_000, variable_borrow_index=RAY + RAY // 2_000_000)
    dai = replace(DAI, price=USD + 1)  # 1.00000001 USD: the debt value has a fraction
    reserves = (WETH, usdc, dai, PT)
    legs = (_leg(WETH), _leg(usdc, E6, E6), _leg(dai, debt=E18 // 3), _leg(PT))
    cfg = _bits(collateral=(1,), borrowing=(1, 2))
    assert a_token_balance(E6, usdc.liquidity_index, V30) == 1_000_001
    assert a_token_balance(E6, usdc.liquidity_index, R35) == 1_000_000
    assert variable_debt_balance(E6, usdc.variable_borrow_index, R35) == 1_000_001
    v30 = account_data(legs, reserves, 0, cfg, CATS)
    v35 = account_data(legs, reserves, 0, cfg, CATS, rules=R35)
    assert v30.total_collateral_base == 100_000_100 and v35.total_collateral_base == 100_000_000
    # debt: USDC 1,000,001 x 1e8 / 1e6 = 100,000,100 (exact); DAI 333,333,333,333,333,333 x
    # 100,000,001 / 1e18 = 33,333,333.66... -> 3.0 floor 33,333,333, 3.5 ceil 33,333,334
    assert v30.total_debt_base == 100_000_100 + 33_333_333
    assert v35.total_debt_base == 100_000_100 + 33_333_334


def test_liquid_emode_uses_the_bitmap_not_the_reserve_emode_bits() -> None:
    # USDC has eMode bits = 1 but is not in category 1's collateral bitmap.
    assert effective_params(USDC, 1, CATS, V30) == (9_000, 9_300, 10_100)
    assert effective_params(USDC, 1, CATS, R32) == (7_500, 7_800, 10_450)
    assert effective_params(WETH, 1, CATS, R32) == (9_000, 9_300, 10_100)
    # 1 WETH + 2,000 USDC against 3,000 DAI in eMode 1:
    # 3.0: both members: 4,000e8 x 9,300 -> HF = 3,720 / 3,000 = 1.24
    # 3.2: WETH 2,000 x 9,300 + USDC 2,000 x 7,800 = 3,420e8 x 1e4 / 4,000e8 -> 8,550; HF 1.14
    legs = (_leg(WETH, E18), _leg(USDC, 2_000 * E6), _leg(DAI, debt=3_000 * E18), _leg(PT))
    cfg = _bits(collateral=(0, 1), borrowing=(2,))
    assert account_data(legs, RESERVES, 1, cfg, CATS).health_factor == 124 * WAD // 100
    v32 = account_data(legs, RESERVES, 1, cfg, CATS, rules=R32)
    assert (v32.current_liquidation_threshold, v32.health_factor) == (8_550, 114 * WAD // 100)
    assert v32.ltv == (2_000 * 9_000 + 2_000 * 7_500) // 4_000


def test_emode_price_source_only_before_3_2() -> None:
    source = "0x" + "ee" * 20
    cats = {1: replace(ETH_CAT, price_source=source)}
    prices = {r.asset: r.price for r in RESERVES} | {source: 1_000 * USD}
    assert effective_price(WETH, 1, cats, prices, V30) == 1_000 * USD
    assert effective_price(WETH, 1, cats, prices, R32) == 2_000 * USD
    assert effective_price(DAI, 1, cats, prices, V30) == USD  # not a member


def test_v36_lt_zero_collateral_counts_only_inside_its_emode() -> None:
    # 1,000 PT (LT 0; in category 2's bitmap, category LT 9,000) against 800 USDC.
    legs = (_leg(WETH), _leg(USDC, debt=800 * E6), _leg(DAI), _leg(PT, 1_000 * E18))
    cfg = _bits(collateral=(3,), borrowing=(1,))
    in_emode = account_data(legs, RESERVES, 2, cfg, CATS, rules=R36)
    # 1,000e8 x 9,000 wadDiv 800e8 / 1e4 = 1.125
    assert in_emode.health_factor == 1_125 * WAD // 1_000
    assert in_emode.total_collateral_base == 1_000 * USD
    # LTV-zero bitmap: PT's LTV is 0 inside category 2 (not the category's 8,500)
    assert in_emode.ltv == 0 and in_emode.has_zero_ltv_collateral and in_emode.available_borrows_base == 0
    # outside the eMode it still counts in total collateral, with LT 0
    outside = account_data(legs, RESERVES, 0, cfg, CATS, rules=R36)
    assert (outside.total_collateral_base, outside.health_factor) == (1_000 * USD, 0)
    # before 3.6 an LT-0 reserve is no collateral at all, in or out of the eMode
    for rules in (R32, R35):
        before = account_data(legs, RESERVES, 2, cfg, CATS, rules=rules)
        assert (before.total_collateral_base, before.health_factor) == (0, 0)
    # without the LTV-zero bit, PT gets the category LTV (3.6), though its reserve LTV is 0
    cats = {2: replace(PT_CAT, ltv_zero_bitmap=0)}
    assert account_data(legs, RESERVES, 2, cfg, cats, rules=R36).ltv == 8_500
    assert account_data(legs, RESERVES, 2, cfg, cats, rules=R36).available_borrows_base == 850 * USD - 800 * USD


def test_no_debt_is_max_uint_and_empty_config_is_zero() -> None:
    legs = (_leg(WETH, E18), _leg(USDC), _leg(DAI), _leg(PT))
    for rules in (V30, R35, R36):
        assert account_data(legs, RESERVES, 0, _bits(collateral=(0,)), CATS, rules=rules).health_factor == MAX_UINT256
        empty = account_data(legs, RESERVES, 0, 0, CATS, rules=rules)
        assert (empty.total_collateral_base, empty.health_factor) == (0, MAX_UINT256)


# -- liquidationCall per revision ----------------------------------------------------------------

CHEAP_WETH = replace(WETH, price=1_800 * USD)
CHEAP = (CHEAP_WETH, USDC, DAI, PT)


def test_small_position_close_factor_3_0_half_3_3_whole() -> None:
    # 1 WETH at 1,800 USD (LT 8,250) against 1,500 USDC: HF = 1,485 / 1,500 = 0.99 > 0.95.
    pos = _position((_leg(CHEAP_WETH, E18), _leg(USDC, debt=1_500 * E6), _leg(DAI), _leg(PT)), CHEAP)
    v30 = predict_liquidation_call(pos, CHEAP, CATS, "WETH", "USDC")
    # 3.0: 50 % = 750 USDC; 750e6 x 1e8 x 1e18 / (1,800e8 x 1e6) = 416,666,666,666,666,666;
    # percentMul(., 10,500) = 437,499,999,999,999,999
    assert (v30.close_factor_bps, v30.max_liquidatable_debt, v30.debt_repaid) == (5_000, 750 * E6, 750 * E6)
    # fee 10 % of the bonus part: 437,499,999,999,999,999 - percentDiv(., 10,500) =
    # 437,499,999,999,999,999 - 416,666,666,666,666,666 = 20,833,333,333,333,333 -> 2,083,333,333,333,333
    assert v30.protocol_fee == 2_083_333_333_333_333
    assert v30.collateral_to_liquidator == 437_499_999_999_999_999 - 2_083_333_333_333_333
    # 3.3: collateral worth 1,800 < 2,000 USD: the whole 1,500 USDC; 833,333,333,333,333,333 x
    # 1.05 -> 875,000,000,000,000,000; bonus part 875e15 - 833,333,333,333,333,333 =
    # 41,666,666,666,666,667 -> fee 4,166,666,666,666,667
    v33 = predict_liquidation_call(pos, CHEAP, CATS, "WETH", "USDC", rules=R33)
    assert v33.ok and (v33.close_factor_bps, v33.debt_repaid) == (10_000, 1_500 * E6)
    assert v33.protocol_fee == 4_166_666_666_666_667
    assert v33.collateral_to_liquidator == 875 * 10**15 - 4_166_666_666_666_667
    assert not v33.deficit and not v33.no_collateral_left
    # the older interface agrees
    assert liquidation_call_amounts(pos, CHEAP, CATS, "WETH", "USDC", MAX_UINT256).debt_repaid == 750 * E6


def test_v33_half_of_the_total_debt_when_both_reserves_are_large() -> None:
    # 10 WETH (20,000 USD) against 12,000 USDC + 5,000 DAI: HF = 16,500 / 17,000 = 0.9706 > 0.95.
    pos = _position((_leg(WETH, 10 * E18), _leg(USDC, debt=12_000 * E6), _leg(DAI, debt=5_000 * E18), _leg(PT)),
                    RESERVES)  # fmt: skip
    low = None
    assert predict_liquidation_call(pos, RESERVES, CATS, "WETH", "USDC").health_factor == 16_500 * WAD // 17_000
    # at 1,900 USD per WETH (HF 0.922 < 0.95) the 50 % rule no longer applies
    crash = {r.asset: r.price for r in RESERVES} | {WETH.asset: 1_900 * USD}
    assert predict_liquidation_call(pos, RESERVES, CATS, "WETH", "USDC", rules=R33, prices=crash).debt_repaid == (
        12_000 * E6
    )  # fmt: skip
    v33 = predict_liquidation_call(pos, RESERVES, CATS, "WETH", "USDC", rules=R33, prices=low)
    # 50 % of the TOTAL debt: 8,500 USD < 12,000 USD of USDC -> 8,500 USDC (3.0: 50 % of 12,000)
    assert (v33.close_factor_bps, v33.max_liquidatable_debt, v33.debt_repaid) == (5_000, 8_500 * E6, 8_500 * E6)
    v30 = predict_liquidation_call(pos, RESERVES, CATS, "WETH", "USDC", prices=low)
    assert v30.max_liquidatable_debt == 6_000 * E6
    # DAI (5,000 USD <= 8,500): the whole DAI debt
    dai = predict_liquidation_call(pos, RESERVES, CATS, "WETH", "DAI", rules=R33, prices=low)
    assert (dai.close_factor_bps, dai.debt_repaid) == (10_000, 5_000 * E18)
    # 9,000 of the 9,500 USDC of a smaller debt would leave 500 USD: MustNotLeaveDust
    small = _position((_leg(WETH, 10 * E18), _leg(USDC, debt=9_000 * E6), _leg(DAI, debt=8_000 * E18), _leg(PT)),
                      RESERVES)  # fmt: skip
    assert predict_liquidation_call(small, RESERVES, CATS, "WETH", "USDC", rules=R33).revert == REVERT_DUST


def test_v33_dust_revert_is_predicted_not_raised() -> None:
    # 1.25 WETH at 1,800 (2,250 USD) against 2,000 USDC: HF 0.928 < 0.95 -> 100 %.
    pos = _position((_leg(CHEAP_WETH, 125 * E18 // 100), _leg(USDC, debt=2_000 * E6), _leg(DAI), _leg(PT)), CHEAP)
    # repaying 1,500 leaves 500 USD of debt (< MIN_LEFTOVER_BASE 1,000 USD): MustNotLeaveDust
    dust = predict_liquidation_call(pos, CHEAP, CATS, "WETH", "USDC", 1_500 * E6, rules=R33)
    assert dust.revert == REVERT_DUST and dust.legacy_revert == "103" and dust.debt_repaid == 0
    assert predict_liquidation_call(pos, CHEAP, CATS, "WETH", "USDC", 1_500 * E6).ok  # 3.0 has no dust rule
    full = predict_liquidation_call(pos, CHEAP, CATS, "WETH", "USDC", rules=R33)
    assert full.ok and full.debt_repaid == 2_000 * E6
    with pytest.raises(Exception, match="MustNotLeaveDust"):
        liquidation_call_amounts(pos, CHEAP, CATS, "WETH", "USDC", 1_500 * E6, rules=R33)


@pytest.mark.parametrize(("rules", "needed"), [(R33, 952_380_952), (R35, 952_380_953), (R36, 952_380_953)])
def test_bad_debt_is_burnt_into_the_deficit(rules: AaveRules, needed: int) -> None:
    # 1 WETH at 1,000 USD against 1,500 USDC + 100 DAI: all the collateral is seized for
    # percentDiv(1,000e6, 10,500) = 952,380,952.38 USDC (3.5+: percentDivCeil -> ...953);
    # the rest of the USDC and all the DAI become deficit.
    weth = replace(WETH, price=1_000 * USD)
    reserves = (weth, USDC, DAI, PT)
    pos = _position((_leg(weth, E18), _leg(USDC, debt=1_500 * E6), _leg(DAI, debt=100 * E18), _leg(PT)), reserves)
    out = predict_liquidation_call(pos, reserves, CATS, "WETH", "USDC", rules=rules)
    assert out.ok and out.no_collateral_left and out.collateral_disabled
    assert out.debt_repaid == needed
    assert out.deficit == {USDC.asset: 1_500 * E6 - needed, DAI.asset: 100 * E18}
    # fee: 1e18 - percentDiv(1e18, 10,500) = 47,619,047,619,047,619 -> 10 % -> 4,761,904,761,904,762
    assert out.protocol_fee == 4_761_904_761_904_762
    assert out.collateral_to_liquidator == E18 - 4_761_904_761_904_762
    assert not predict_liquidation_call(pos, reserves, CATS, "WETH", "USDC").deficit  # 3.0: no deficit


def test_emode_bonus_only_for_collateral_in_the_bitmap() -> None:
    weth = replace(WETH, price=1_000 * USD, liquidation_protocol_fee=0)
    reserves = (weth, USDC, DAI, PT)
    # 3.0 (both members, LT 9,300): 3,720 / 3,900 = 0.954; 3.2: (930 + 2,340) / 3,900 = 0.838
    legs = (_leg(weth, E18), _leg(USDC, 3_000 * E6), _leg(DAI, debt=3_900 * E18), _leg(PT))
    pos = _position(legs, reserves, emode=1)
    # 3.2: USDC is not in the bitmap -> its own bonus 10,450; WETH is -> the category's 10,100
    usdc = predict_liquidation_call(pos, reserves, CATS, "USDC", "DAI", 100 * E18, rules=R32)
    assert usdc.collateral_to_liquidator == 104_500_000  # 100 DAI x 1.045 in USDC units
    usdc30 = predict_liquidation_call(pos, reserves, CATS, "USDC", "DAI", 100 * E18)
    assert usdc30.collateral_to_liquidator == 101_000_000  # 3.0: eMode bits -> category bonus
    weth32 = predict_liquidation_call(pos, reserves, CATS, "WETH", "DAI", 100 * E18, rules=R32)
    assert weth32.collateral_to_liquidator == 101 * 10**15  # 100 DAI x 1.01 / 1,000


def test_reverts_paused_grace_healthy_and_lt_zero_collateral() -> None:
    pos = _position((_leg(CHEAP_WETH, E18), _leg(USDC, debt=1_500 * E6), _leg(DAI), _leg(PT)), CHEAP)
    paused = (CHEAP_WETH, replace(USDC, paused=True), DAI, PT)
    assert predict_liquidation_call(pos, paused, CATS, "WETH", "USDC", rules=R36).revert == REVERT_RESERVE_PAUSED
    grace = (replace(CHEAP_WETH, liquidation_grace_period_until=1_000), USDC, DAI, PT)
    assert predict_liquidation_call(pos, grace, CATS, "WETH", "USDC", rules=R36, timestamp=1_000).revert == (
        REVERT_GRACE_PERIOD
    )  # fmt: skip
    assert predict_liquidation_call(pos, grace, CATS, "WETH", "USDC", rules=R36, timestamp=1_001).ok
    assert predict_liquidation_call(pos, grace, CATS, "WETH", "USDC", rules=R36).revert == REVERT_GRACE_PERIOD
    assert predict_liquidation_call(pos, grace, CATS, "WETH", "USDC").ok  # 3.0 has no grace period
    healthy = predict_liquidation_call(pos, RESERVES, CATS, "WETH", "USDC", rules=R36)  # WETH at 2,000: HF 1.1
    assert healthy.revert == REVERT_HF_NOT_BELOW and LEGACY_ERROR_CODES[REVERT_HF_NOT_BELOW] == "45"
    # PT (LT 0) as collateral inside category 2: liquidatable from 3.6 only
    pt_pos = _position((_leg(WETH), _leg(USDC, debt=800 * E6), _leg(DAI), _leg(PT, 1_000 * E18)), RESERVES, 2)
    # 3.5: PT is no collateral (HF 0), and liquidating it reverts CollateralCannotBeLiquidated
    assert predict_liquidation_call(pt_pos, RESERVES, CATS, "PT", "USDC", rules=R35).revert == REVERT_COLLATERAL
    low = {r.asset: r.price for r in RESERVES} | {PT.asset: USD * 8 // 10}  # HF 800 x 0.9 / 800 = 0.9
    pt36 = predict_liquidation_call(pt_pos, RESERVES, CATS, "PT", "USDC", rules=R36, prices=low)
    # 800 USDC x 1.03 > 800 USD of PT: all of it, for percentDivCeil(800e6, 10,300) = 776,699,030 USDC
    assert pt36.ok and pt36.collateral_to_liquidator == 1_000 * E18 and pt36.debt_repaid == 776_699_030
    assert pt36.deficit == {USDC.asset: 800 * E6 - 776_699_030}
    assert predict_liquidation_call(pt_pos, RESERVES, CATS, "PT", "USDC", rules=R36).revert == REVERT_HF_NOT_BELOW


def test_v37_directed_rounding_of_the_bonus() -> None:
    # the whole 1,500 USDC: base 833,333,333,333,333,333 x 10,450 / 1e4 = 870,833,333,333,333,332.98:
    # percentMul half-up ...333 (3.6), percentMulFloor ...332 (3.7)
    usdc = replace(USDC, liquidation_protocol_fee=0)
    weth = replace(CHEAP_WETH, liquidation_bonus=10_450, liquidation_protocol_fee=0)
    reserves = (weth, usdc, DAI, PT)
    pos = _position((_leg(weth, E18), _leg(usdc, debt=1_500 * E6), _leg(DAI), _leg(PT)), reserves)
    v36 = predict_liquidation_call(pos, reserves, CATS, "WETH", "USDC", rules=R36)
    v37 = predict_liquidation_call(pos, reserves, CATS, "WETH", "USDC", rules=R37)
    assert v36.collateral_to_liquidator == 870_833_333_333_333_333
    assert v37.collateral_to_liquidator == 870_833_333_333_333_332


# -- exact targets ------------------------------------------------------------------------------


@pytest.mark.parametrize("rules", [V30, R33, R35, R36])
def test_exact_targets_are_minimal(rules: AaveRules) -> None:
    pos = _position((_leg(CHEAP_WETH, E18), _leg(USDC, debt=1_500 * E6), _leg(DAI), _leg(PT)), CHEAP)

    def hf(p: Position) -> int:
        return account_data(p.legs, CHEAP, 0, p.user_configuration, CATS, rules=rules).health_factor

    target = 12 * WAD // 10
    repay = exact_repay_to_target(pos, CHEAP, CATS, "USDC", target, rules=rules)
    assert repay is not None and 0 < repay < 1_500 * E6
    assert hf(after_repay(pos, CHEAP, "USDC", repay, rules)) >= target
    assert hf(after_repay(pos, CHEAP, "USDC", repay - 1, rules)) < target
    add = exact_supply_to_target(pos, CHEAP, CATS, "WETH", target, rules=rules)
    assert add is not None and add > 0
    assert hf(after_supply(pos, CHEAP, "WETH", add, rules)) >= target
    assert hf(after_supply(pos, CHEAP, "WETH", add - 1, rules)) < target
    assert exact_supply_to_target(pos, CHEAP, CATS, "PT", target, rules=rules) is None  # LT 0 outside eMode
    # the price of WETH at which the position becomes liquidatable: HF(p) < 1 <= HF(p + 1)
    found = exact_liquidation_price(pos, CHEAP, CATS, "WETH", rules=rules)
    assert found is not None
    price, direction = found
    assert direction == -1
    prices = {r.asset: r.price for r in CHEAP}
    assert account_data(pos.legs, CHEAP, 0, pos.user_configuration, CATS, prices | {WETH.asset: price},
                        rules).health_factor < WAD  # fmt: skip
    assert account_data(pos.legs, CHEAP, 0, pos.user_configuration, CATS, prices | {WETH.asset: price + 1},
                        rules).health_factor >= WAD  # fmt: skip
    # 1,500 / 0.825 = 1,818.18 USD
    assert 1_818 * USD < price < 1_819 * USD
    # a debt asset's liquidation price is a rise
    usdc_price = exact_liquidation_price(pos, CHEAP, CATS, "USDC", rules=rules)
    assert usdc_price is not None and usdc_price[1] == 1 and usdc_price[0] < USD


# -- properties: directions of rounding against exact rationals ---------------------------------

indexes = st.integers(RAY, 3 * RAY)
amounts = st.integers(0, 10**30)


@FAST
@given(amounts, indexes, st.integers(1, 10**12), st.sampled_from([6, 8, 18]))
def test_v35_collateral_never_above_and_debt_never_below_the_exact_rational(
    scaled: int, index: int, price: int, decimals: int
) -> None:
    unit = 10**decimals
    exact = Fraction(scaled * index, RAY) * price / unit
    coll = a_token_balance(scaled, index, R35) * price // unit
    debt = debt_value(variable_debt_balance(scaled, index, R35), price, unit, R35)
    assert coll <= exact <= debt
    assert exact - coll < Fraction(price, unit) + 1  # at most one token unit's worth + one base unit
    assert debt - exact < Fraction(price, unit) + 1
    # 3.0 rounds both half-up: within half a token unit of the rational either way
    half = ray_mul(scaled, index)
    assert abs(half - Fraction(scaled * index, RAY)) <= Fraction(1, 2)


def _random_position(seed: int) -> tuple[Position, tuple[Reserve, ...]]:
    rng = np.random.default_rng(seed)
    reserves = tuple(
        replace(r, liquidity_index=int(RAY * (1 + rng.random() * 0.3)),
                variable_borrow_index=int(RAY * (1 + rng.random() * 0.5)))
        for r in RESERVES
    )  # fmt: skip
    legs = []
    for r in reserves:
        unit = 10**r.decimals
        coll = int(rng.integers(0, 10**6)) * unit // 100 if rng.random() < 0.6 else 0
        debt = int(rng.integers(0, 10**5)) * unit // 100 if rng.random() < 0.4 else 0
        legs.append(_leg(r, coll, debt))
    return _position(legs, reserves, int(rng.integers(0, 3))), reserves


@FAST
@given(st.integers(0, 2**32 - 1))
def test_v35_hf_never_above_the_exact_rational_and_floor_only_before_3_5(seed: int) -> None:
    pos, reserves = _random_position(seed)
    v35 = account_data(pos.legs, reserves, pos.emode_category, pos.user_configuration, CATS, rules=R35)
    if v35.total_debt_base == 0:
        assert v35.health_factor == MAX_UINT256
        return
    # the exact rational HF of the unrounded balances, with the 3.2+ parameters
    num, den = Fraction(0), Fraction(0)
    for leg, r in zip(pos.legs, reserves, strict=True):
        unit = 10**r.decimals
        if leg.used_as_collateral and r.liquidation_threshold:
            _ltv, lt, _b = effective_params(r, pos.emode_category, CATS, R35)
            num += Fraction(leg.scaled_collateral * r.liquidity_index, RAY) * r.price / unit * lt / 10_000
        den += Fraction(leg.scaled_variable_debt * r.variable_borrow_index, RAY) * r.price / unit
    assert v35.health_factor <= num / den * WAD + 1
    # the pre-3.5 formula (average LT floored to bps) on 3.5's own values never gives more than
    # 3.5's sum(value x LT), beyond its two half-up roundings
    floored = wad_div(percent_mul(v35.total_collateral_base, v35.current_liquidation_threshold), v35.total_debt_base)
    assert floored <= v35.health_factor + WAD // (2 * v35.total_debt_base) + 2


@FAST
@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 7, 9, 10]))
def test_liquidation_outcome_invariants(seed: int, revision: int) -> None:
    rules = rules_for(revision)
    pos, reserves = _random_position(seed)
    rng = np.random.default_rng(seed + 1)
    shock = {r.asset: max(1, int(r.price * rng.uniform(0.2, 1.2))) for r in reserves}
    colls = [i for i, leg in enumerate(pos.legs) if leg.used_as_collateral]
    debts = [i for i, leg in enumerate(pos.legs) if leg.scaled_variable_debt]
    if not colls or not debts:
        return
    c, d = reserves[colls[0]], reserves[debts[0]]
    out = predict_liquidation_call(pos, reserves, CATS, c.symbol, d.symbol, rules=rules, prices=shock, timestamp=10)
    hf = account_data(pos.legs, reserves, pos.emode_category, pos.user_configuration, CATS, shock, rules).health_factor
    assert (out.revert == REVERT_HF_NOT_BELOW) == (hf >= WAD) or out.revert == REVERT_COLLATERAL
    if not out.ok:
        assert out.debt_repaid == out.collateral_to_liquidator == out.protocol_fee == 0 and not out.deficit
        return
    balance = a_token_balance(pos.legs[colls[0]].scaled_collateral, c.liquidity_index, rules)
    owed = variable_debt_balance(pos.legs[debts[0]].scaled_variable_debt, d.variable_borrow_index, rules)
    assert 0 <= out.debt_repaid <= out.max_liquidatable_debt <= owed
    assert out.collateral_to_liquidator + out.protocol_fee <= balance
    assert out.protocol_fee <= out.collateral_to_liquidator or c.liquidation_protocol_fee > 5_000
    if out.deficit:
        assert rules.deficit and out.no_collateral_left
        assert sum(out.deficit.values()) > 0
    if not rules.deficit:
        assert not out.deficit


# -- the stress book's rounding per protocol ---------------------------------------------------


def _snapshot(
    protocol: str, revision: int, positions: Sequence[Position], reserves: Sequence[Reserve]
) -> MarketSnapshot:
    return MarketSnapshot("m", protocol, 1, 1, "0x" + "00" * 32, 1_000, USD, tuple(reserves), (ETH_CAT, PT_CAT),
                          tuple(positions), revision=revision)  # fmt: skip


def _with_totals(pos: Position, reserves: Sequence[Reserve], rules: AaveRules) -> Position:
    data = account_data(pos.legs, reserves, pos.emode_category, pos.user_configuration, CATS, rules=rules)
    return replace(pos, health_factor=data.health_factor, total_collateral_base=data.total_collateral_base,
                   total_debt_base=data.total_debt_base)  # fmt: skip


def test_book_floors_only_aave_before_3_5() -> None:
    # the 6,999.8 bps tie: HF floored 0.99991, exact 1.0000357 (14,000.5 / 14,000)
    low = _reserve("LOW", 0, 18, 4_000, 5_000, 10_001 * USD)
    high = _reserve("HIGH", 1, 18, 8_000, 9_000, 10_000 * USD)
    stb = _reserve("STB", 2, 18, 8_000, 8_500, USD)
    reserves = (low, high, stb)
    pos = _position((_leg(low, E18), _leg(high, E18), _leg(stb, debt=14_000 * E18)), reserves)
    verdicts = {}
    for protocol, revision in (("aave_v3", 1), ("aave_v3", 8), ("aave_v3", 9), ("aave_v3", 10),
                               ("compound_v3", 0), ("morpho_blue", 0)):  # fmt: skip
        snap = _snapshot(protocol, revision, [_with_totals(pos, reserves, rules_for(revision or 1))], reserves)
        book = book_from_snapshot(snap)
        floors = protocol == "aave_v3" and revision < 9
        assert book.lt_rounding == ("bps_floor" if floors else "exact")
        verdicts[protocol, revision] = bool(position_outcomes(book, np.ones(3)).liquidatable[0])
        if protocol == "aave_v3":
            exact = snapshot_account_data(snap, snap.positions[0]).health_factor
            assert (exact < WAD) == verdicts[protocol, revision]
            assert book.health_factors()[0] == pytest.approx(exact / WAD, rel=1e-12)
    assert verdicts == {("aave_v3", 1): True, ("aave_v3", 8): True, ("aave_v3", 9): False, ("aave_v3", 10): False,
                        ("compound_v3", 0): False, ("morpho_blue", 0): False}  # fmt: skip
    held = [_with_totals(pos, reserves, V30)]
    assert book_from_snapshot(_snapshot("aave_v3", 7, held, reserves)).close_factor == "v33"
    assert book_from_snapshot(_snapshot("aave_v3", 1, held, reserves)).close_factor == "v30"
    assert book_from_snapshot(_snapshot("morpho_blue", 0, held, reserves)).close_factor == "full"


def test_book_uses_liquid_emode_and_lt_zero_collateral_per_revision() -> None:
    legs = (_leg(WETH, E18), _leg(USDC, 2_000 * E6), _leg(DAI, debt=3_000 * E18), _leg(PT, 500 * E18))
    pos = _position(legs, RESERVES, emode=1)
    b30 = book_from_snapshot(_snapshot("aave_v3", 1, [_with_totals(pos, RESERVES, V30)], RESERVES))
    b32 = book_from_snapshot(_snapshot("aave_v3", 5, [_with_totals(pos, RESERVES, R32)], RESERVES))
    assert b30.lt[0, 1] == pytest.approx(0.93) and b32.lt[0, 1] == pytest.approx(0.78)
    assert b30.collateral[0, 3] == 0.0  # PT: LT 0 -> no collateral before 3.6
    pt = _position(legs, RESERVES, emode=2)
    b36 = book_from_snapshot(_snapshot("aave_v3", 10, [_with_totals(pt, RESERVES, R36)], RESERVES))
    assert b36.collateral[0, 3] == pytest.approx(500.0) and b36.lt[0, 3] == pytest.approx(0.90)
    for book, revision, p in ((b30, 1, pos), (b32, 5, pos), (b36, 10, pt)):
        snap = _snapshot("aave_v3", revision, [p], RESERVES)
        exact = snapshot_account_data(snap, p).health_factor
        assert book.health_factors()[0] == pytest.approx(exact / WAD, rel=1e-9)


def test_snapshot_helpers_use_the_snapshot_revision() -> None:
    pos = _position((_leg(CHEAP_WETH, E18), _leg(USDC, debt=1_500 * E6), _leg(DAI), _leg(PT)), CHEAP)
    old, new = _snapshot("aave_v3", 1, [pos], CHEAP), _snapshot("aave_v3", 10, [pos], CHEAP)
    assert rules_of(old) == V30 and rules_of(new).version == "3.6"
    assert rules_of(_snapshot("aave_v3", 0, [pos], CHEAP)) == V30
    assert snapshot_liquidation_call(old, pos, "WETH", "USDC").debt_repaid == 750 * E6
    assert snapshot_liquidation_call(new, pos, "WETH", "USDC").debt_repaid == 1_500 * E6


@FAST
@given(st.integers(1, 200), st.integers(0, 2**32 - 1), st.sampled_from(["exact", "bps_floor"]),
       st.sampled_from(["v30", "v33", "full"]), st.sampled_from([np.float32, np.float64]))  # fmt: skip
def test_evaluate_decides_like_position_outcomes_for_each_rounding_and_close_factor(
    n: int, seed: int, rounding: LtRounding, close: CloseFactor, dtype: type[np.floating[Any]]
) -> None:
    """The float32 screen never loses a pair: with either rounding, evaluate's verdicts and
    totals are position_outcomes' up to float64 ties (|HF - 1| < 1e-12)."""
    rng = np.random.default_rng(seed)
    book = synthetic_book(n, ("WETH", "WBTC", "USDC", "PT"), (2_000.0, 60_000.0, 1.0, 1.0), (0.83, 0.78, 0.78, 0.0),
                          rng, hf_range=(0.95, 1.1), lt_rounding=rounding, close_factor=close)  # fmt: skip
    m = np.exp(rng.normal(0.0, 0.03, (6, 4)))
    out = evaluate(book, m, chunk=4, dtype=dtype)
    for i in range(m.shape[0]):
        po = position_outcomes(book, m[i])
        tie = np.abs(po.hf_after - 1.0) < 1e-12
        assert out.liquidatable[i] - po.liquidatable[~tie].sum() in range(int(tie.sum()) + 1)
        if not tie.any():
            assert out.debt_at_risk[i] == pytest.approx(po.debt_at_risk.sum(), rel=1e-9, abs=1e-9)
            assert out.collateral_seized[i] == pytest.approx(po.collateral_seized.sum(), rel=1e-9, abs=1e-9)
            assert out.bad_debt[i] == pytest.approx(po.bad_debt.sum(), rel=1e-9, abs=1e-9)
