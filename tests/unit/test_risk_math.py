"""Risk math: hand-computed answers, Aave's integer rounding, and properties of the float engine.

Covers ``monitor.risk.health`` (exact ``getUserAccountData``), ``monitor.risk.book`` (HF with the
avg-LT bps floor), ``monitor.risk.stress`` (the float32 screen in ``evaluate`` against the
per-position ``position_outcomes``) and ``monitor.risk.liquidation`` (liquidation prices,
repay / add-collateral amounts). Pure numpy, no devnet; the whole file runs in a few seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from numpy.typing import ArrayLike, NDArray

from monitor.errors import InputError
from monitor.models import MAX_UINT256, RAY, WAD, AssetLeg, EModeCategory, Reserve
from monitor.risk.book import Book, LtRounding, floored_weighted, hf_of, synthetic_book
from monitor.risk.health import account_data
from monitor.risk.liquidation import (
    add_collateral_to_target,
    liquidation_direction,
    liquidation_multipliers,
    liquidation_prices,
    repay_to_target,
)
from monitor.risk.stress import evaluate, health_factors, position_outcomes
from monitor.wadray import percent_div, percent_mul, ray_mul, wad_div

Array = NDArray[np.float64]

# The float screen in evaluate() omits the avg-LT floor to whole bps (relative HF error below
# 1/avgLT_bps <= 1.3e-4 for LT >= 0.75) and runs in float32: positions this close to HF == 1
# may be classed either way.
TIE = 2e-4
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SYMBOLS5 = ("WETH", "WBTC", "LINK", "USDC", "DAI")
PRICES5 = (2000.0, 60000.0, 15.0, 1.0, 1.0)
LTS5 = (0.83, 0.78, 0.68, 0.78, 0.77)


def make_book(
    collateral: ArrayLike,
    debt: ArrayLike,
    lt: ArrayLike,
    *,
    symbols: Sequence[str] | None = None,
    prices: Sequence[float] | None = None,
    bonus: Sequence[float] | float = 1.05,
    lt_rounding: LtRounding = "bps_floor",
) -> Book:
    """A Book from USD values per (position, asset) and per-asset LT / bonus (an Aave 3.0 book
    by default: the average LT floored to whole bps)."""
    c = np.asarray(collateral, dtype=np.float64)
    d = np.asarray(debt, dtype=np.float64)
    n, a = c.shape
    names = tuple(symbols) if symbols is not None else tuple(f"A{j}" for j in range(a))
    px = np.asarray(prices if prices is not None else np.ones(a), dtype=np.float64)
    lt_pa = np.broadcast_to(np.asarray(lt, dtype=np.float64), (n, a)).copy()
    bonus_pa = np.broadcast_to(np.asarray(bonus, dtype=np.float64), (n, a)).copy()
    return Book(
        "test", 1, tuple(f"0x{i:040x}" for i in range(n)), names, px, c, d, lt_pa, lt_pa * 0.95, bonus_pa,
        lt_rounding,
    )  # fmt: skip


def unfloored_hf(book: Book, m: Array) -> Array:
    """HF = sum(c * m * LT) / sum(d * m), without Aave's avg-LT floor."""
    return hf_of((book.collateral * m * book.lt).sum(axis=1), (book.debt * m).sum(axis=1))


# -- known answers: liquidation prices and target amounts ------------------------------


def eth_usdc_book() -> Book:
    """Position 0: 10 ETH at 2000 USD (20,000 USD, LT 0.8) against 12,000 USD of USDC (HF 4/3).
    Position 1: same collateral, no debt. Position 2: 1,000 USD of USDC collateral, 900 USD of
    ETH debt (USDC LT 0.75: HF 0.75 * 1000 / 900 = 0.8333, already liquidatable)."""
    return make_book(
        [[20_000.0, 0.0], [20_000.0, 0.0], [0.0, 1_000.0]],
        [[0.0, 12_000.0], [0.0, 0.0], [900.0, 0.0]],
        [0.8, 0.75],
        symbols=("WETH", "USDC"),
        prices=(2000.0, 1.0),
    )


def test_single_collateral_single_debt_liquidation_price() -> None:
    book = eth_usdc_book()
    price, distance = liquidation_prices(book)
    # debt / (collateral amount x LT) = 12,000 / (10 x 0.8) = 1,500 USD, -25 %
    assert price[0, 0] == pytest.approx(1500.0, rel=1e-12)
    assert distance[0, 0] == pytest.approx(-25.0, rel=1e-12)
    # USDC (the debt asset) would have to rise to 16,000 / 12,000 = 1.3333 USD, +33.33 %
    assert price[0, 1] == pytest.approx(16_000.0 / 12_000.0, rel=1e-12)
    assert distance[0, 1] == pytest.approx(100.0 / 3.0, rel=1e-12)
    # no debt: no liquidation price at all
    assert np.isnan(price[1]).all()
    # already below 1: ETH (its debt) must FALL to 0.75 * 1000 / 900 x 2000 for HF to come back to 1
    assert price[2, 0] == pytest.approx(2000.0 * 750.0 / 900.0, rel=1e-12)
    assert price[2, 1] == pytest.approx(900.0 / 750.0, rel=1e-12)
    np.testing.assert_array_equal(liquidation_direction(book)[0], [-1.0, 1.0])
    np.testing.assert_array_equal(liquidation_direction(book)[2], [1.0, -1.0])
    # at the liquidation multiplier the (unfloored) HF is exactly 1
    x = liquidation_multipliers(book)
    m = np.array([x[0, 0], 1.0])
    assert unfloored_hf(book, m)[0] == pytest.approx(1.0, rel=1e-12)


def test_repay_to_target_known_answers() -> None:
    book = eth_usdc_book()
    # position 0: W = 16,000, D = 12,000. Target 1.5: D - W / 1.5 = 12,000 - 10,666.67 = 1,333.33
    repay = repay_to_target(book, 1.5)
    assert repay[0] == pytest.approx(12_000.0 - 16_000.0 / 1.5, rel=1e-12)
    assert repay[0] == pytest.approx(4_000.0 / 3.0, rel=1e-12)
    assert repay[1] == 0.0  # no debt
    # position 2: W = 750, D = 900: 900 - 500 = 400 to reach 1.5
    assert repay[2] == pytest.approx(400.0, rel=1e-12)
    # already above target: nothing
    assert repay_to_target(book, 1.2)[0] == 0.0
    # unreachable without repaying everything is clipped to the whole debt
    assert repay_to_target(make_book([[0.0]], [[50.0]], [0.8]), 1.1)[0] == 50.0
    # after repaying, the HF is the target
    assert 16_000.0 / (12_000.0 - repay[0]) == pytest.approx(1.5, rel=1e-12)


def test_add_collateral_to_target_known_answers() -> None:
    book = eth_usdc_book()
    # target 1.5 needs W = 18,000: 2,000 more weighted = 2,000 / 0.8 = 2,500 USD of WETH
    assert add_collateral_to_target(book, 1.5, "WETH")[0] == pytest.approx(2_500.0, rel=1e-12)
    # ... or 2,000 / 0.75 = 2,666.67 USD of USDC
    assert add_collateral_to_target(book, 1.5, "usdc")[0] == pytest.approx(8_000.0 / 3.0, rel=1e-12)
    # position 2: W = 750, D = 900 -> 1.5 x 900 - 750 = 600 weighted = 800 USD of USDC
    assert add_collateral_to_target(book, 1.5, "USDC")[2] == pytest.approx(800.0, rel=1e-12)
    assert add_collateral_to_target(book, 1.5, "WETH")[1] == 0.0  # no debt
    assert add_collateral_to_target(book, 1.2, "WETH")[0] == 0.0  # already above target


def test_add_collateral_of_a_zero_lt_asset_is_infinite_when_needed() -> None:
    book = make_book([[1_000.0, 0.0]], [[0.0, 900.0]], [0.8, 0.0])
    assert add_collateral_to_target(book, 1.5, "A1")[0] == np.inf


def test_add_collateral_of_a_zero_lt_asset_is_zero_when_already_at_target() -> None:
    book = make_book([[1_000.0, 0.0]], [[0.0, 100.0]], [0.8, 0.0])  # HF 8
    assert add_collateral_to_target(book, 1.5, "A1")[0] == 0.0


# -- known answers: Aave's integer helpers ---------------------------------------------


def test_percent_mul_half_up() -> None:
    assert percent_mul(10_001, 5_000) == 5_001  # 5000.5 -> 5001
    assert percent_mul(10_000, 5_000) == 5_000
    assert percent_mul(9_999, 5_000) == 5_000  # 4999.5 -> 5000
    assert percent_mul(1, 5_000) == 1  # 0.5 -> 1
    assert percent_mul(1, 4_999) == 0  # 0.4999 -> 0
    assert percent_mul(3, 8_333) == 2  # 2.4999 -> 2
    assert percent_mul(3, 8_334) == 3  # 2.5002 -> 3
    assert percent_mul(0, 9_999) == 0
    assert percent_mul(12_345, 10_000) == 12_345


def test_percent_div_half_up() -> None:
    assert percent_div(1, 20_000) == 1  # 0.5 -> 1
    assert percent_div(3, 20_000) == 2  # 1.5 -> 2
    assert percent_div(10_500, 10_500) == 10_000
    assert percent_div(100, 10_500) == 95  # 95.238 -> 95
    assert percent_div(1, 3) == 3_333  # 3333.33 -> 3333
    assert percent_div(2, 3) == 6_667  # 6666.67 -> 6667


def test_wad_div_half_up() -> None:
    assert wad_div(1, 3) == 333_333_333_333_333_333  # ...333.33 -> down
    assert wad_div(2, 3) == 666_666_666_666_666_667  # ...666.67 -> up
    assert wad_div(1, 2 * WAD) == 1  # 0.5 wei -> 1
    assert wad_div(1, 2 * WAD + 2) == 0  # 0.4999... wei -> 0
    assert wad_div(7, 7) == WAD
    assert wad_div(3 * WAD, 2 * WAD) == 3 * WAD // 2


def test_ray_mul_half_up() -> None:
    assert ray_mul(RAY // 2, 1) == 1  # 0.5 -> 1
    assert ray_mul(RAY // 2 - 1, 1) == 0
    assert ray_mul(3, RAY // 2) == 2  # 1.5 -> 2
    assert ray_mul(10 * WAD, 11 * RAY // 10) == 11 * WAD
    assert ray_mul(RAY, RAY) == RAY
    assert ray_mul(123_456_789, 1_000_000_000_000_000_000_000_000_123) == 123_456_789  # +1.2e-19 rounds off


# -- known answers: exact getUserAccountData -------------------------------------------

ZERO_ADDRESS = "0x" + "0" * 40


def _reserve(
    symbol: str, reserve_id: int, decimals: int, ltv: int, lt: int, emode: int, price: int, *,
    liquidity_index: int = RAY, variable_borrow_index: int = RAY, bonus: int = 10_500,
) -> Reserve:  # fmt: skip
    asset = f"0x{reserve_id + 1:040x}"
    return Reserve(
        asset, symbol, decimals, reserve_id, ltv, lt, bonus, emode, True, False, True,
        ZERO_ADDRESS, ZERO_ADDRESS, ZERO_ADDRESS, liquidity_index, variable_borrow_index, price,
    )  # fmt: skip


def _leg(reserve: Reserve, scaled_collateral: int = 0, scaled_debt: int = 0, stable: int = 0) -> AssetLeg:
    return AssetLeg(
        reserve.asset, reserve.symbol, scaled_collateral, ray_mul(scaled_collateral, reserve.liquidity_index),
        scaled_debt, ray_mul(scaled_debt, reserve.variable_borrow_index), stable, scaled_collateral > 0,
    )  # fmt: skip


USD = 10**8  # base currency unit
WETH = _reserve("WETH", 0, 18, 8_000, 8_250, 1, 2_000 * USD, liquidity_index=11 * RAY // 10)
USDC = _reserve("USDC", 1, 6, 7_500, 7_800, 0, 1 * USD)
XYZ = _reserve("XYZ", 2, 18, 0, 0, 0, 10 * USD)  # LT 0: never collateral
DAI = _reserve("DAI", 3, 18, 7_500, 8_000, 0, 1 * USD, variable_borrow_index=105 * RAY // 100)
RESERVES = (WETH, USDC, XYZ, DAI)
ETH_CATEGORY = EModeCategory(1, 9_000, 9_300, 10_100, ZERO_ADDRESS, "ETH correlated")
CATEGORIES = {1: ETH_CATEGORY}
LEGS = (
    _leg(WETH, scaled_collateral=10 * 10**18),  # 10 x 1.1 = 11 WETH = 22,000 USD
    _leg(USDC, scaled_collateral=5_000 * 10**6),  # 5,000 USD
    _leg(XYZ, scaled_collateral=100 * 10**18),  # 1,000 USD, bit on, but LT 0
    _leg(DAI, scaled_collateral=3_000 * 10**18, scaled_debt=10_000 * 10**18),  # bit off; debt 10,500 USD
)


def _bits(*, collateral: Sequence[int] = (), borrowing: Sequence[int] = ()) -> int:
    return sum(1 << (2 * i + 1) for i in collateral) | sum(1 << (2 * i) for i in borrowing)


CONFIG = _bits(collateral=(0, 1, 2), borrowing=(3,))  # DAI's collateral bit off


def test_account_data_emode_member_only_and_avg_lt_floor() -> None:
    data = account_data(LEGS, RESERVES, 1, CONFIG, CATEGORIES)
    # collateral: WETH 22,000 + USDC 5,000 (XYZ has LT 0, DAI's bit is off)
    assert data.total_collateral_base == 27_000 * USD
    assert data.total_debt_base == 10_500 * USD  # 10,000 scaled x 1.05
    # eMode 1: WETH (member) at the category's 93 %, USDC (not a member) at its own 78 %:
    # (22,000 x 9,300 + 5,000 x 7,800) / 27,000 = 9,022.2 -> 9,022 (floor)
    assert data.current_liquidation_threshold == 9_022
    assert data.ltv == 8_722  # (22,000 x 9,000 + 5,000 x 7,500) / 27,000 = 8,722.2
    # percentMul(27,000e8, 9,022) = 24,359.4e8; wadDiv by 10,500e8 = 2.3199428571428571428|57 -> ...143
    assert data.health_factor == 2_319_942_857_142_857_143
    # without the floor it would be exactly 24,360 / 10,500 = 2.32
    assert data.health_factor != 232 * WAD // 100


def test_account_data_without_emode_uses_reserve_parameters() -> None:
    data = account_data(LEGS, RESERVES, 0, CONFIG, CATEGORIES)
    assert data.total_collateral_base == 27_000 * USD
    # (22,000 x 8,250 + 5,000 x 7,800) / 27,000 = 8,166.67 -> 8,166
    assert data.current_liquidation_threshold == 8_166
    assert data.ltv == 7_907  # (22,000 x 8,000 + 5,000 x 7,500) / 27,000 = 7,907.4
    # 27,000e8 x 0.8166 = 22,048.2e8; / 10,500e8 = 2.099828571428571428|57 -> ...429
    assert data.health_factor == 2_099_828_571_428_571_429


def test_account_data_collateral_bit_and_zero_lt() -> None:
    # DAI's bit on: its 3,000 USD now count, at LT 80 %
    with_dai = account_data(LEGS, RESERVES, 1, CONFIG | _bits(collateral=(3,)), CATEGORIES)
    assert with_dai.total_collateral_base == 30_000 * USD
    # XYZ's bit off changes nothing: LT 0 never counts
    without_xyz = account_data(LEGS, RESERVES, 1, CONFIG & ~_bits(collateral=(2,)), CATEGORIES)
    assert without_xyz == account_data(LEGS, RESERVES, 1, CONFIG, CATEGORIES)
    # a borrowing bit without debt adds nothing; a debt without its bit is not counted
    assert account_data(LEGS, RESERVES, 1, CONFIG | _bits(borrowing=(0,)), CATEGORIES).total_debt_base == 10_500 * USD
    assert account_data(LEGS, RESERVES, 1, _bits(collateral=(0,)), CATEGORIES).total_debt_base == 0


def test_account_data_no_debt_is_max_uint() -> None:
    data = account_data(LEGS, RESERVES, 1, _bits(collateral=(0, 1)), CATEGORIES)
    assert data.total_debt_base == 0
    assert data.health_factor == MAX_UINT256
    empty = account_data(LEGS, RESERVES, 0, 0, CATEGORIES)
    assert (empty.total_collateral_base, empty.current_liquidation_threshold, empty.ltv) == (0, 0, 0)
    assert empty.health_factor == MAX_UINT256


def test_account_data_emode_price_source() -> None:
    source = "0x" + "e" * 40
    cats = {1: EModeCategory(1, 9_000, 9_300, 10_100, source, "with oracle")}
    prices = {r.asset: r.price for r in RESERVES} | {source: 1_000 * USD}
    data = account_data(LEGS, RESERVES, 1, CONFIG, cats, prices)
    assert data.total_collateral_base == (11_000 + 5_000) * USD  # WETH at the category's price
    assert account_data(LEGS, RESERVES, 0, CONFIG, cats, prices).total_collateral_base == 27_000 * USD


def test_avg_lt_floor_makes_a_lower_collateral_price_raise_the_hf() -> None:
    """Aave's floor of avgLT is not monotone: dropping the price of a low-LT collateral can
    lift avgLT over a whole bps and raise the HF. Float properties below allow for it."""
    low = _reserve("LOW", 0, 18, 4_000, 5_000, 0, 10_001 * USD)
    high = _reserve("HIGH", 1, 18, 8_000, 9_000, 0, 10_000 * USD)
    stable = _reserve("STB", 2, 18, 8_000, 8_500, 0, 10_000 * USD)
    reserves = (low, high, stable)
    legs = (_leg(low, 10**18), _leg(high, 10**18), _leg(stable, scaled_debt=10**18))
    config = _bits(collateral=(0, 1), borrowing=(2,))
    before = account_data(legs, reserves, 0, config, {})
    # (10,001 x 5,000 + 10,000 x 9,000) / 20,001 = 6,999.8 -> 6,999; 20,001 x 0.6999 / 10,000
    assert before.current_liquidation_threshold == 6_999
    assert before.health_factor == 1_399_869_990_000_000_000
    lower = {r.asset: r.price for r in reserves} | {low.asset: 10_000 * USD}
    after = account_data(legs, reserves, 0, config, {}, lower)
    assert after.current_liquidation_threshold == 7_000
    assert after.health_factor == 14 * WAD // 10 > before.health_factor
    # the float engine's floor reproduces both
    book = make_book([[10_001.0, 10_000.0, 0.0]], [[0.0, 0.0, 10_000.0]], [0.5, 0.9, 0.85])
    assert book.health_factors()[0] == pytest.approx(1.39986999, rel=1e-12)
    assert book.health_factors(np.array([10_000 / 10_001, 1.0, 1.0]))[0] == pytest.approx(1.4, rel=1e-12)


def test_book_floor_matches_exact_engine() -> None:
    # the hand-built position as a Book (eMode LT for WETH, USDC at its own)
    book = make_book([[22_000.0, 5_000.0, 0.0]], [[0.0, 0.0, 10_500.0]], [0.93, 0.78, 0.80])
    exact = account_data(LEGS, RESERVES, 1, CONFIG, CATEGORIES).health_factor / WAD
    assert book.health_factors()[0] == pytest.approx(exact, rel=1e-15)
    assert unfloored_hf(book, np.ones(3))[0] == pytest.approx(2.32, rel=1e-15)


# -- properties of the float engine ----------------------------------------------------


@st.composite
def split_books(draw: st.DrawFn) -> tuple[Book, NDArray[np.bool_]]:
    """Books where each asset is ONLY collateral or ONLY debt (an asset held on both sides
    moves both sums, so a lower price can raise or lower the HF: (a) needs a split)."""
    a = draw(st.integers(2, 6))
    n = draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    is_coll = rng.random(a) < 0.5
    is_coll[0], is_coll[-1] = True, False
    coll = np.where(is_coll & (rng.random((n, a)) < 0.7), rng.lognormal(8.0, 2.0, (n, a)), 0.0)
    debt = np.where(~is_coll & (rng.random((n, a)) < 0.7), rng.lognormal(8.0, 2.0, (n, a)), 0.0)
    lt = np.round(rng.uniform(0.0, 0.95, a), 4)
    return make_book(coll, debt, lt), is_coll


@FAST
@given(split_books(), st.integers(0, 2**32 - 1))
def test_deeper_shock_never_makes_a_position_healthier(case: tuple[Book, NDArray[np.bool_]], seed: int) -> None:
    book, is_coll = case
    rng = np.random.default_rng(seed)
    a = len(book.symbols)
    m1 = np.exp(rng.normal(0.0, 0.5, a))
    deeper = rng.uniform(0.0, 1.0, a) * (rng.random(a) < 0.7)  # some assets not moved at all
    m2 = np.where(is_coll, m1 * (1.0 - 0.9 * deeper), m1 * (1.0 + 3.0 * deeper))
    h1, h2 = unfloored_hf(book, m1), unfloored_hf(book, m2)
    finite = np.isfinite(h1)
    assert np.all(h2[finite] <= h1[finite] * (1 + 1e-12))
    assert np.all(np.isinf(h2) == np.isinf(h1))  # no debt stays no debt
    # with Aave's bps floor a lower price can lift avgLT by one bps (see the exact example):
    # f2 <= h2 <= h1 and the floor takes at most one bps of the total collateral from h1
    f1, f2 = book.health_factors(m1), book.health_factors(m2)
    one_bps = (book.collateral * m1).sum(axis=1) * 1e-4 / np.where(finite, (book.debt * m1).sum(axis=1), 1.0)
    assert np.all(f2[finite] <= (f1[finite] + one_bps[finite]) * (1 + 1e-12))
    # the stress engine's [S, P] HFs (with the book's floor) agree with the per-vector ones
    np.testing.assert_allclose(health_factors(book, np.vstack([m1, m2])), np.vstack([f1, f2]), rtol=1e-12)
    exact = replace(book, lt_rounding="exact")
    np.testing.assert_allclose(health_factors(exact, np.vstack([m1, m2])), np.vstack([h1, h2]), rtol=1e-12)


@st.composite
def synthetic_books(draw: st.DrawFn, hf_low: float = 0.9, hf_high: float = 2.0) -> Book:
    n = draw(st.integers(1, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    lo = draw(st.floats(hf_low, hf_high - 0.01))
    hi = draw(st.floats(lo + 0.005, hf_high))
    return synthetic_book(n, SYMBOLS5, PRICES5, LTS5, np.random.default_rng(seed), hf_range=(lo, hi))


@FAST
@given(synthetic_books(), st.floats(0.05, 20.0), st.integers(0, 4))
def test_hf_is_homogeneous_in_prices(book: Book, k: float, flip: int) -> None:
    a = len(book.symbols)
    ones = np.ones(a)
    # all prices x k: HF unchanged
    hf = book.health_factors()
    hf_k = book.health_factors(np.full(a, k))
    finite = np.isfinite(hf)
    np.testing.assert_allclose(hf_k[finite], hf[finite], rtol=1e-9)
    assert np.all(np.isinf(hf_k) == ~finite)
    np.testing.assert_allclose(unfloored_hf(book, np.full(a, k)), unfloored_hf(book, ones), rtol=1e-12)
    # collateral only x k: HF x k (exactly without the floor; avgLT is unchanged, so also with it)
    coll_k = floored_weighted(book.collateral * k, book.lt)
    np.testing.assert_allclose(hf_of(coll_k, book.debt.sum(axis=1)), k * hf, rtol=TIE)
    w_k = (book.collateral * k * book.lt).sum(axis=1)
    np.testing.assert_allclose(hf_of(w_k, book.debt.sum(axis=1)), k * unfloored_hf(book, ones), rtol=1e-12)
    # a multiplier vector scaled by k gives the same HF as the vector itself
    m = np.linspace(0.5, 1.5, a)[np.roll(np.arange(a), flip)]
    np.testing.assert_allclose(book.health_factors(m * k), book.health_factors(m), rtol=1e-9)


def _multipliers(seed: int, s: int, a: int, sigma: float) -> Array:
    rng = np.random.default_rng(seed)
    return np.exp(rng.normal(-0.02, sigma, (s, a)))


@FAST
@given(
    synthetic_books(), st.integers(0, 2**32 - 1), st.integers(1, 12), st.floats(0.0, 0.3),
    st.sampled_from([np.float32, np.float64]), st.integers(1, 7),
)  # fmt: skip
def test_evaluate_totals_equal_sum_of_position_outcomes(
    book: Book, seed: int, s: int, sigma: float, dtype: type[np.floating[Any]], chunk: int
) -> None:
    m = _multipliers(seed, s, len(book.symbols), sigma)
    out = evaluate(book, m, chunk=chunk, dtype=dtype)
    assert out.liquidatable.shape == out.debt_at_risk.shape == out.bad_debt.shape == (s,)
    per = [position_outcomes(book, m[i]) for i in range(s)]
    tie = np.zeros(book.size, dtype=bool)
    for i, po in enumerate(per):
        near = np.abs(po.hf_after - 1.0) < TIE
        tie |= near
        sure = po.liquidatable & ~near
        # evaluate may class each near-tie either way, nothing else
        assert sure.sum() <= out.liquidatable[i] <= sure.sum() + near.sum()
        lo = po.debt_at_risk[sure].sum()
        hi = lo + (np.where(near, (book.debt * m[i]).sum(axis=1), 0.0)).sum()
        assert lo * (1 - 1e-9) - 1e-6 <= out.debt_at_risk[i] <= hi * (1 + 1e-9) + 1e-6
        if not near.any():
            assert out.liquidatable[i] == po.liquidatable.sum()
            assert out.debt_at_risk[i] == pytest.approx(po.debt_at_risk.sum(), rel=1e-6, abs=1e-6)
            assert out.bad_debt[i] == pytest.approx(po.bad_debt.sum(), rel=1e-6, abs=1e-6)
    # on the agreeing set (no near-tie in any scenario): equal counts, debt within 1e-6
    keep = ~tie
    assume(keep.any())
    sub = book.with_rows(keep)
    out_sub = evaluate(sub, m, chunk=chunk, dtype=dtype)
    for i, po in enumerate(per):
        assert out_sub.liquidatable[i] == po.liquidatable[keep].sum()
        assert out_sub.debt_at_risk[i] == pytest.approx(po.debt_at_risk[keep].sum(), rel=1e-6, abs=1e-6)
        assert out_sub.bad_debt[i] == pytest.approx(po.bad_debt[keep].sum(), rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_floor_tie_is_liquidatable_only_where_the_protocol_floors(dtype: type[np.floating[Any]]) -> None:
    # avgLT = (10,001 x 5,000 + 10,000 x 9,000) / 20,001 = 6,999.8 bps. Debt 14,000: unfloored
    # HF = 14,000.5 / 14,000 > 1; floored 13,998.7 / 14,000 < 1. Aave < 3.5 liquidates it; Aave
    # 3.5+, Morpho and Comet (exact books) do not; evaluate and position_outcomes agree on both.
    book = make_book([[10_001.0, 10_000.0, 0.0]], [[0.0, 0.0, 14_000.0]], [0.5, 0.9, 0.85])
    assert book.health_factors()[0] < 1.0 < unfloored_hf(book, np.ones(3))[0]
    assert position_outcomes(book, np.ones(3)).liquidatable[0]
    assert evaluate(book, np.ones((1, 3)), dtype=dtype).liquidatable[0] == 1
    assert health_factors(book, np.ones((1, 3)))[0, 0] < 1.0
    exact = replace(book, lt_rounding="exact")
    assert exact.health_factors()[0] == pytest.approx(14_000.5 / 14_000, rel=1e-14)
    assert not position_outcomes(exact, np.ones(3)).liquidatable[0]
    assert evaluate(exact, np.ones((1, 3)), dtype=dtype).liquidatable[0] == 0
    assert health_factors(exact, np.ones((1, 3)))[0, 0] > 1.0


@FAST
@given(synthetic_books(0.5, 3.0), st.integers(0, 2**32 - 1), st.integers(1, 10), st.floats(0.0, 0.6))
def test_bad_debt_at_most_debt_at_risk_and_seized_non_negative(book: Book, seed: int, s: int, sigma: float) -> None:
    m = _multipliers(seed, s, len(book.symbols), sigma)
    out = evaluate(book, m)
    assert np.all(out.bad_debt >= 0.0)
    assert np.all(out.bad_debt <= out.debt_at_risk * (1 + 1e-12))
    assert np.all(out.collateral_seized >= 0.0)
    assert np.all(out.liquidatable >= 0) and np.all(out.liquidatable <= book.size)
    assert np.all((out.liquidatable == 0) == (out.debt_at_risk == 0.0))
    for i in range(s):
        po = position_outcomes(book, m[i])
        coll = (book.collateral * m[i]).sum(axis=1)
        assert np.all(po.bad_debt >= 0.0)
        assert np.all(po.bad_debt <= po.debt_at_risk * (1 + 1e-12))
        assert np.all(po.collateral_seized >= 0.0)
        assert np.all(po.collateral_seized <= coll * (1 + 1e-12))
        assert np.all(po.debt_at_risk[~po.liquidatable] == 0.0)
    assert out.var(0.5) <= out.var(0.99) <= out.bad_debt.max() * (1 + 1e-12)
    # (equal values: quantile interpolation and the mean can differ in the last ulp)
    assert out.expected_shortfall(0.95) >= out.var(0.95) * (1 - 1e-12)


def test_evaluate_seized_equals_position_outcomes_when_the_shock_reorders_collateral() -> None:
    # A = 10,000, B = 9,000 (LT 0.8), debt 14,000 of C. A x 0.5: A = 5,000 < B = 9,000,
    # HF = 0.8 x 14,000 / 14,000 = 0.8 < 0.95 -> close factor 100 %, want 14,700: capped by B = 9,000
    book = make_book([[10_000.0, 9_000.0, 0.0]], [[0.0, 0.0, 14_000.0]], [0.8, 0.8, 0.8])
    m = np.array([0.5, 1.0, 1.0])
    assert position_outcomes(book, m).collateral_seized[0] == pytest.approx(9_000.0)
    assert evaluate(book, m[None, :]).collateral_seized[0] == pytest.approx(9_000.0)  # gets 5,000


# -- exact engine: scaling every price by an integer -----------------------------------


@st.composite
def exact_positions(draw: st.DrawFn) -> tuple[tuple[AssetLeg, ...], tuple[Reserve, ...], int, dict[int, EModeCategory]]:
    a = draw(st.integers(1, 5))
    reserves: list[Reserve] = []
    legs: list[AssetLeg] = []
    config = 0
    for i in range(a):
        decimals = draw(st.sampled_from([6, 8, 18]))
        lt = draw(st.one_of(st.just(0), st.integers(1_000, 9_500)))  # 0 (not collateral) or 10-95 %
        r = _reserve(
            f"T{i}", i, decimals, min(lt, draw(st.integers(0, 9_000))), lt, draw(st.integers(0, 1)),
            draw(st.integers(USD // 100, 100_000 * USD)),
            liquidity_index=draw(st.integers(RAY, 2 * RAY)), variable_borrow_index=draw(st.integers(RAY, 2 * RAY)),
        )  # fmt: skip
        unit = 10**decimals
        coll = draw(st.integers(0, 10**6)) * unit // 100  # 0.01 to 10,000 tokens: >= 1e4 base units
        debt = draw(st.integers(0, 10**6)) * unit // 100
        reserves.append(r)
        legs.append(_leg(r, coll, debt))
        config |= _bits(collateral=[i] if coll and draw(st.booleans()) else [], borrowing=[i] if debt else [])
    cats = {1: EModeCategory(1, 9_000, 9_700, 10_100, ZERO_ADDRESS, "e")}
    return tuple(legs), tuple(reserves), config, cats


@FAST
@given(exact_positions(), st.integers(2, 1_000), st.integers(0, 1))
def test_exact_account_data_scales_with_an_integer_price_factor(
    case: tuple[tuple[AssetLeg, ...], tuple[Reserve, ...], int, dict[int, EModeCategory]], k: int, emode: int
) -> None:
    legs, reserves, config, cats = case
    base = account_data(legs, reserves, emode, config, cats)
    scaled = account_data(legs, reserves, emode, config, cats, {r.asset: r.price * k for r in reserves})
    n = len(reserves)
    # floor(k x) - k floor(x) is in [0, k) per reserve
    assert k * base.total_collateral_base <= scaled.total_collateral_base < k * base.total_collateral_base + n * k
    assert k * base.total_debt_base <= scaled.total_debt_base < k * base.total_debt_base + n * k
    if base.total_debt_base == 0:
        assert base.health_factor == scaled.health_factor == MAX_UINT256
        return
    assert scaled.health_factor != MAX_UINT256
    # avgLT can only move by the floor of a ratio that changed by the rounding: at most 1 bps
    assert abs(scaled.current_liquidation_threshold - base.current_liquidation_threshold) <= 1
    if base.total_collateral_base == 0:
        assert base.health_factor == scaled.health_factor == 0
        return
    # relative rounding: k-scaled values are off by < n*k (<= n / value), percentMul by 0.5 unit,
    # wadDiv by 0.5 wei, on each side; a 1 bps move of avgLT adds 1 / avgLT
    c, d, lt_bps = base.total_collateral_base, base.total_debt_base, base.current_liquidation_threshold
    tol = n / c + n / d + 2e4 / (c * lt_bps) + 2.0 / base.health_factor + 1e-12
    if scaled.current_liquidation_threshold != lt_bps:
        tol += 1.0 / min(lt_bps, scaled.current_liquidation_threshold)
    rel = abs(scaled.health_factor - base.health_factor) / base.health_factor
    assert rel <= tol
    assert rel <= 1.1e-3 + (1.0 / lt_bps if scaled.current_liquidation_threshold != lt_bps else 0.0)


# -- input errors ----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan"), float("inf"), -float("inf")])
def test_non_positive_or_non_finite_multipliers_are_input_errors(bad: float) -> None:
    book = eth_usdc_book()
    m = np.array([[1.0, 1.0], [0.9, bad]])
    with pytest.raises(InputError, match="finite and > 0"):
        evaluate(book, m)
    with pytest.raises(InputError):
        health_factors(book, m)
    with pytest.raises(InputError):
        position_outcomes(book, m[1])


@pytest.mark.parametrize("width", [1, 3, 5])
def test_wrong_multiplier_width_is_an_input_error(width: int) -> None:
    book = eth_usdc_book()
    with pytest.raises(InputError, match=f"{width} asset multipliers, market has 2 assets"):
        evaluate(book, np.ones((4, width)))
    with pytest.raises(InputError):
        health_factors(book, np.ones((1, width)))
    with pytest.raises(InputError):
        position_outcomes(book, np.ones(width))


def test_unknown_symbol_names_the_assets() -> None:
    book = eth_usdc_book()
    assert book.column("weth") == 0 and book.column("USDC") == 1
    with pytest.raises(InputError, match=r"unknown asset 'WBTC'.*assets: WETH, USDC"):
        book.column("WBTC")
    with pytest.raises(InputError, match="assets: WETH, USDC"):
        add_collateral_to_target(book, 1.5, "WBTC")


@pytest.mark.parametrize("target", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_target_hf_is_an_input_error(target: float) -> None:
    book = eth_usdc_book()
    with pytest.raises(InputError, match="target health factor"):
        repay_to_target(book, target)
    with pytest.raises(InputError, match="target health factor"):
        add_collateral_to_target(book, target, "WETH")
