"""LT calibration: re-parameterisation, slippage, the LT -> bad-debt curve, the recommendation, smart LTV."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from monitor.errors import InputError
from monitor.risk.book import Book, synthetic_book
from monitor.risk.calibrate import (
    DEFAULT_GRID,
    bad_debt_with_slippage,
    calibrate,
    reparameterise,
    smart_ltv,
    stress_multipliers,
)
from monitor.risk.scenarios import scenario_names

SYMBOLS = ("WETH", "WBTC", "USDC", "SOL")
PRICES = (3000.0, 60000.0, 1.0, 150.0)
LTS = (0.83, 0.78, 0.78, 0.70)
DEEP = 1e15  # liquidity so deep that slippage is nil


def _book(seed: int, n: int = 300) -> Book:
    return synthetic_book(n, SYMBOLS, PRICES, LTS, np.random.default_rng(seed))


def _shocks(seed: int, n: int = 400, sd: float = 0.12) -> np.ndarray:
    """Random multipliers; USDC (column 2) stays near 1."""
    rng = np.random.default_rng(1000 + seed)
    m = np.exp(rng.normal(0.0, sd, (n, len(SYMBOLS))))
    m[:, 2] = np.exp(rng.normal(0.0, 0.005, n))
    return m


def _single(debt: float = 60.0, lt: float = 0.80, ltv: float = 0.75, bonus: float = 1.05) -> Book:
    """One position: 100 USD of J as collateral, ``debt`` USD of USDC borrowed."""
    return Book(
        "test", 1, ("0x" + "11" * 20,), ("J", "USDC"), np.array([10.0, 1.0]),
        np.array([[100.0, 0.0]]), np.array([[0.0, debt]]),
        np.array([[lt, 0.78]]), np.array([[ltv, 0.70]]), np.array([[bonus, 1.04]]),
    )  # fmt: skip


def _curve(result: object, field: str) -> np.ndarray:
    return np.array([getattr(p, field) for p in result.points])  # type: ignore[attr-defined]


# -- re-parameterisation ------------------------------------------------------------


def test_reparameterise_keeps_usage_and_scales_debt() -> None:
    book = _single(debt=60.0)  # u = 60 / (100 * 0.75) = 0.8
    new = reparameterise(book, 0, 0.85, 0.80)
    assert new.debt[0].tolist() == pytest.approx([0.0, 0.8 * 100.0 * 0.80])
    assert new.lt[0].tolist() == [0.85, 0.78]
    assert new.ltv[0].tolist() == [0.80, 0.70]
    np.testing.assert_array_equal(new.collateral, book.collateral)
    # usage above 1 is clipped: 80 USD borrowed against 75 of borrowing power borrows at LTV'
    assert reparameterise(_single(debt=80.0), 0, 0.85, 0.80).debt[0, 1] == pytest.approx(80.0)


def test_reparameterise_leaves_other_positions_alone() -> None:
    book = _book(3)
    j = book.column("SOL")
    new = reparameterise(book, j, 0.90, 0.85)
    others = book.collateral[:, j] == 0
    assert others.any()
    np.testing.assert_array_equal(new.debt[others], book.debt[others])
    np.testing.assert_array_equal(new.lt[others], book.lt[others])
    holders = ~others
    assert np.all(new.lt[holders, j] == 0.90)
    # debt is scaled, never re-allocated across debt assets
    assert np.all((new.debt[holders] > 0) == (book.debt[holders] > 0))


# -- known answer ---------------------------------------------------------------------


def test_single_position_known_answer() -> None:
    """100 USD of J, LT' 0.85 / LTV' 0.80, u = 0.8 -> debt 64; J -50 %, depth 50 USD.

    Liquidatable: 50 x 0.85 = 42.5 < 64. Selling 50 USD into 50 USD of depth yields 25 USD,
    so bad debt = 64 - 25 / 1.05 = 40.190476...; with no slippage 64 - 50 / 1.05.
    """
    book = _single(debt=60.0)
    shock = np.array([[0.5, 1.0]])
    expected = 64.0 - 25.0 / 1.05
    new = reparameterise(book, 0, 0.85, 0.80)
    assert bad_debt_with_slippage(new, 0, shock, 50.0)[0] == pytest.approx(expected, rel=1e-12)
    assert bad_debt_with_slippage(new, 0, shock, DEEP)[0] == pytest.approx(64.0 - 50.0 / 1.05, rel=1e-9)
    result = calibrate(book, "J", multipliers=shock, liquidity_usd=50.0, grid=[0.85], sigma_daily=0.05)
    point = result.point(0.85)
    assert point.lt == 0.85
    assert point.ltv == pytest.approx(0.80)
    assert point.total_debt == pytest.approx(64.0)
    assert point.mean == pytest.approx(expected, rel=1e-12)
    assert point.var99 == pytest.approx(expected, rel=1e-12)
    assert point.es99 == pytest.approx(expected, rel=1e-12)
    assert point.liquidatable_mean == 1.0
    assert point.as_dict()["mean_fraction"] == pytest.approx(expected / 64.0)
    # the current LT is always on the curve: at 0.80 debt is 60, 50 x 0.8 = 40 < 60
    assert [p.lt for p in result.points] == [0.80, 0.85]
    assert result.point(0.80).mean == pytest.approx(60.0 - 25.0 / 1.05)


def test_not_liquidatable_means_no_bad_debt() -> None:
    """J -20 %: 80 x 0.85 = 68 >= 64, so nothing is liquidated, whatever the slippage."""
    new = reparameterise(_single(debt=60.0), 0, 0.85, 0.80)
    assert bad_debt_with_slippage(new, 0, np.array([[0.8, 1.0]]), 1.0)[0] == 0.0


def test_slippage_volume_is_shared_by_the_scenario() -> None:
    """Two identical positions: V = 100, depth 100 -> factor 1/2 for both."""
    one = _single(debt=60.0)
    two = Book(
        "test", 1, ("0xa", "0xb"), one.symbols, one.prices,
        np.vstack([one.collateral] * 2), np.vstack([one.debt] * 2), np.vstack([one.lt] * 2),
        np.vstack([one.ltv] * 2), np.vstack([one.bonus] * 2),
    )  # fmt: skip
    bad = bad_debt_with_slippage(two, 0, np.array([[0.5, 1.0], [1.0, 1.0]]), 100.0)
    assert bad.tolist() == pytest.approx([2 * (60.0 - 25.0 / 1.05), 0.0])


# -- properties -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("symbol", ["WETH", "USDC", "SOL"])
def test_bad_debt_non_decreasing_in_lt(seed: int, symbol: str) -> None:
    book = _book(seed)
    result = calibrate(book, symbol, multipliers=_shocks(seed), liquidity_usd=1e7, sigma_daily=0.04)
    for field in ("mean", "var95", "var99", "es99", "total_debt"):
        curve = _curve(result, field)
        assert np.all(np.diff(curve) >= -1e-9 * max(1.0, float(curve.max()))), field
    assert _curve(result, "var99")[-1] > 0.0  # the property is not vacuous


@pytest.mark.parametrize("seed", [4, 5])
def test_every_scenario_non_decreasing_in_lt_without_slippage(seed: int) -> None:
    """With deep liquidity and LT x bonus <= 1 the property holds scenario by scenario."""
    book = _book(seed)
    j = book.column("WETH")
    m = _shocks(seed, n=200)
    gap = 0.83 - 0.83 * 0.95
    rows = np.array([bad_debt_with_slippage(reparameterise(book, j, lt, lt - gap), j, m, DEEP) for lt in DEFAULT_GRID])
    assert np.all(np.diff(rows, axis=0) >= -1e-9)


def test_sweep_matches_the_reference_path() -> None:
    """The factored sweep equals re-parameterising the holders and evaluating them directly."""
    book = _book(6, n=400)
    m = _shocks(6, n=300, sd=0.15)
    for symbol, liquidity in (("WETH", 1e6), ("USDC", 3e5), ("SOL", 1e5)):
        j = book.column(symbol)
        holders = book.with_rows(book.collateral[:, j] > 0)
        result = calibrate(book, symbol, multipliers=m, liquidity_usd=liquidity, sigma_daily=0.04)
        gap = result.current_lt - result.current_ltv
        for p in result.points[::5]:
            ref = bad_debt_with_slippage(reparameterise(holders, j, p.lt, max(0.0, p.lt - gap)), j, m, liquidity)
            assert p.mean == pytest.approx(float(ref.mean()), rel=1e-9, abs=1e-9)
            assert p.var99 == pytest.approx(float(np.quantile(ref, 0.99)), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_more_liquidity_never_more_bad_debt(seed: int) -> None:
    book = _book(seed)
    j = book.column("WETH")
    m = _shocks(seed)
    new = reparameterise(book, j, 0.90, 0.85)
    depths = [1e4, 1e5, 1e6, 1e7, DEEP]
    per_depth = np.array([bad_debt_with_slippage(new, j, m, depth) for depth in depths])
    assert np.all(np.diff(per_depth, axis=0) <= 1e-9)
    assert per_depth[0].sum() > per_depth[-1].sum()
    curves = [
        calibrate(book, "WETH", multipliers=m, liquidity_usd=d, sigma_daily=0.04, grid=[0.6, 0.8, 0.9]) for d in depths
    ]
    for field in ("mean", "var95", "var99", "es99"):
        stacked = np.array([_curve(r, field) for r in curves])
        assert np.all(np.diff(stacked, axis=0) <= 1e-9), field


def test_zero_shock_zero_bad_debt() -> None:
    book = _book(7)
    ones = np.ones((5, len(SYMBOLS)))
    for symbol in ("WETH", "USDC"):
        result = calibrate(book, symbol, multipliers=ones, liquidity_usd=1.0, sigma_daily=0.04)
        for p in result.points:
            assert (p.mean, p.var95, p.var99, p.es99, p.liquidatable_mean) == (0.0, 0.0, 0.0, 0.0, 0.0)
        assert result.recommended_lt == max(DEFAULT_GRID)


# -- recommendation -------------------------------------------------------------------


def test_recommendation_is_highest_lt_within_tolerance() -> None:
    """u = 1 (debt 75 = 100 x LTV 0.75), gap 0.05, J -10 % in every scenario, no slippage.

    D' = 100 (LT' - 0.05); liquidatable iff 90 LT' < D' (LT' > 0.5); bad debt
    D' - 90 / 1.05 > 0 iff LT' > 0.9071. LT' 0.91: 0.2857 <= 1 % x 86; 0.92: 1.2857 > 0.87.
    """
    book = _single(debt=75.0)
    m = np.tile([0.9, 1.0], (20, 1))
    result = calibrate(book, "J", multipliers=m, liquidity_usd=DEEP, tolerance=0.01, sigma_daily=0.05)
    assert result.recommended_lt == 0.91
    assert result.recommended_ltv == pytest.approx(0.86)
    assert result.point(0.91).var99 == pytest.approx(86.0 - 90.0 / 1.05, rel=1e-9)
    assert result.point(0.90).var99 == 0.0
    assert result.current_lt == 0.80
    assert result.current_ltv == 0.75
    tighter = calibrate(book, "J", multipliers=m, liquidity_usd=DEEP, tolerance=0.001, sigma_daily=0.05)
    assert tighter.recommended_lt == 0.90
    looser = calibrate(book, "J", multipliers=m, liquidity_usd=DEEP, tolerance=0.05, sigma_daily=0.05)
    assert looser.recommended_lt == 0.95  # 4.2857 <= 5 % x 90


def test_recommendation_uses_the_requested_quantile() -> None:
    """98 calm scenarios and 2 at J -10 %: VaR95 is 0 everywhere, VaR99 is not."""
    book = _single(debt=75.0)
    m = np.vstack([np.tile([1.0, 1.0], (98, 1)), np.tile([0.9, 1.0], (2, 1))])
    kwargs = {"multipliers": m, "liquidity_usd": DEEP, "tolerance": 0.001, "sigma_daily": 0.05}
    assert calibrate(book, "J", quantile=0.95, **kwargs).recommended_lt == 0.95  # type: ignore[arg-type]
    assert calibrate(book, "J", quantile=0.995, **kwargs).recommended_lt == 0.90  # type: ignore[arg-type]


def test_no_recommendation_when_nothing_qualifies() -> None:
    book = _single(debt=75.0)
    m = np.tile([0.5, 1.0], (10, 1))  # every LT' >= 0.53 leaves bad debt above 1 %
    result = calibrate(book, "J", multipliers=m, liquidity_usd=1e6, grid=[0.6, 0.7, 0.9], sigma_daily=0.05)
    assert result.recommended_lt is None
    assert result.recommended_ltv is None
    assert [p.lt for p in result.points] == [0.6, 0.7, 0.8, 0.9]
    data = result.as_dict()
    assert data["recommended_lt"] is None
    json.dumps(data, allow_nan=False)


# -- smart LTV --------------------------------------------------------------------------


def test_smart_ltv_known_answers() -> None:
    assert smart_ltv(0.05, 1e6, 1e6, 0.05) == pytest.approx(math.exp(-0.1) - 0.05)
    assert smart_ltv(0.10, 4e6, 1e6, 0.05) == pytest.approx(math.exp(-0.1) - 0.05)  # sqrt(l/d) = 2
    assert smart_ltv(0.05, 1e6, 1e6, 0.05, c=3.0) == pytest.approx(math.exp(-0.15) - 0.05)
    assert smart_ltv(0.05, 1e6, 0.0, 0.05) == pytest.approx(0.95)  # no debt: only the bonus
    assert smart_ltv(0.0, 1e6, 1e6, 0.0) == 1.0
    assert smart_ltv(3.0, 1e6, 1e8, 0.05) == 0.0  # clipped


def test_smart_ltv_monotone() -> None:
    sigmas = [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5]
    by_sigma = [smart_ltv(s, 1e6, 5e6, 0.05) for s in sigmas]
    assert all(a > b for a, b in itertools.pairwise(by_sigma))
    depths = [1e4, 1e5, 1e6, 1e7, 1e8, 1e9]
    by_depth = [smart_ltv(0.05, d, 5e6, 0.05) for d in depths]
    assert all(a <= b for a, b in itertools.pairwise(by_depth))
    assert by_depth[0] < by_depth[-1]


def test_calibrate_reports_smart_ltv_and_sigma() -> None:
    book = _single(debt=60.0)
    result = calibrate(
        book, "J", multipliers=np.ones((3, 2)), delay_hours=6.0, liquidity_usd=240.0, sigma_daily=0.05, c=2.0
    )
    assert result.sigma_delay == pytest.approx(0.025)  # 0.05 x sqrt(6 / 24)
    # all of the position's debt is borrowed against J: d = 60
    assert result.smart_ltv == pytest.approx(math.exp(-2.0 * 0.025 / math.sqrt(240.0 / 60.0)) - 0.05)


# -- stress set and end to end ------------------------------------------------------------


def test_stress_multipliers_rows_and_labels() -> None:
    symbols = ["WETH", "USDC", "LINK"]
    m, labels = stress_multipliers(symbols, delay_hours=1.0, n_paths=50, rng=np.random.default_rng(0))
    names = scenario_names()
    assert m.shape == (len(names) + 50, 3)
    assert labels[: len(names)] == [f"historical:{name} 1d" for name in names]
    assert labels[len(names) :] == ["bootstrap"] * 50
    assert np.all(m[:, 2] == 1.0)  # no price data for LINK
    assert np.all(np.isfinite(m)) and np.all(m > 0)
    assert m[0, 0] < 0.7  # Black Thursday, ETH
    again, _ = stress_multipliers(symbols, delay_hours=1.0, n_paths=50, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(m, again)
    longer, labels2 = stress_multipliers(symbols, delay_hours=30.0, n_paths=0, rng=np.random.default_rng(0))
    assert longer.shape == (len(names), 3)
    assert labels2[0] == f"historical:{names[0]} 2d"
    assert stress_multipliers(symbols, delay_hours=24.0, n_paths=0, rng=np.random.default_rng(0))[1][0].endswith(" 1d")
    assert stress_multipliers(symbols, delay_hours=0.0, n_paths=0, rng=np.random.default_rng(0))[1][0].endswith(" 1d")


def test_calibrate_end_to_end_with_the_built_in_stress_set() -> None:
    book = _book(8, n=400)
    runs = [
        calibrate(book, "WETH", delay_hours=2.0, liquidity_usd=2e6, n_paths=200, rng=np.random.default_rng(5))
        for _ in range(2)
    ]
    result = runs[0]
    assert result.as_dict() == runs[1].as_dict()
    assert result.scenarios == len(scenario_names()) + 200
    assert result.asset == "WETH"
    assert result.current_lt == pytest.approx(0.83)
    assert result.current_ltv == pytest.approx(0.83 * 0.95)
    assert len(result.points) == len(DEFAULT_GRID)  # the current LT 0.83 is on the default grid
    assert 0.0 < result.sigma_delay < 0.05
    assert 0.0 < result.smart_ltv < 1.0
    sources = {label: n for label, n, _ in result.by_source}
    assert sources["bootstrap"] == 200
    assert sum(sources.values()) == result.scenarios
    assert all(len(means) == len(result.points) for _, _, means in result.by_source)
    data = json.loads(json.dumps(result.as_dict(), allow_nan=False))
    assert data["points"][0]["lt"] == 0.40
    assert data["current"]["lt"] == pytest.approx(0.83)


# -- errors ---------------------------------------------------------------------------------


def test_input_errors() -> None:
    book = _single()
    ok = {"multipliers": np.ones((2, 2)), "sigma_daily": 0.05}
    with pytest.raises(InputError, match=r"unknown asset 'NOPE'.*J, USDC"):
        calibrate(book, "NOPE", **ok)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="no position uses USDC as collateral"):
        calibrate(book, "USDC", **ok)  # type: ignore[arg-type]
    for bad in (0.0, -1.0, math.inf):
        with pytest.raises(InputError, match="liquidity_usd"):
            calibrate(book, "J", liquidity_usd=bad, **ok)  # type: ignore[arg-type]
    for bad in (0.0, 1.0, 1.5, -0.01):
        with pytest.raises(InputError, match="tolerance"):
            calibrate(book, "J", tolerance=bad, **ok)  # type: ignore[arg-type]
    for bad in (0.5, 1.0, 0.2):
        with pytest.raises(InputError, match="quantile"):
            calibrate(book, "J", quantile=bad, **ok)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="delay_hours"):
        calibrate(book, "J", delay_hours=-1.0, **ok)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="grid is empty"):
        calibrate(book, "J", grid=[], **ok)  # type: ignore[arg-type]
    for bad in (0.0, 1.0, 1.2, -0.3, math.nan):
        with pytest.raises(InputError, match="grid LT"):
            calibrate(book, "J", grid=[0.5, bad], **ok)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="asset multipliers"):
        calibrate(book, "J", multipliers=np.ones((2, 3)), sigma_daily=0.05)
    with pytest.raises(InputError, match="labels"):
        calibrate(book, "J", multipliers=np.ones((2, 2)), labels=["a"], sigma_daily=0.05)


def test_input_errors_of_the_building_blocks() -> None:
    book = _single()
    with pytest.raises(InputError, match="ltv must be in"):
        reparameterise(book, 0, 0.8, 0.85)
    with pytest.raises(InputError, match="lt must be"):
        reparameterise(book, 0, 1.0, 0.5)
    with pytest.raises(InputError, match="column"):
        reparameterise(book, 2, 0.8, 0.7)
    with pytest.raises(InputError, match="liquidity_usd"):
        bad_debt_with_slippage(book, 0, np.ones((1, 2)), 0.0)
    with pytest.raises(InputError, match="as a fraction"):
        smart_ltv(0.05, 1e6, 1e6, 1.05)
    with pytest.raises(InputError, match="sigma"):
        smart_ltv(-0.1, 1e6, 1e6, 0.05)
    with pytest.raises(InputError, match="debt_usd"):
        smart_ltv(0.05, 1e6, -1.0, 0.05)
    with pytest.raises(InputError, match="liquidity_usd"):
        smart_ltv(0.05, 0.0, 1.0, 0.05)
    with pytest.raises(InputError, match="confidence"):
        smart_ltv(0.05, 1e6, 1e6, 0.05, c=0.0)
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="delay_hours"):
        stress_multipliers(["WETH"], delay_hours=-2.0, n_paths=10, rng=rng)
    with pytest.raises(InputError, match="n_paths"):
        stress_multipliers(["WETH"], delay_hours=1.0, n_paths=-1, rng=rng)
    with pytest.raises(InputError, match="no price data"):
        stress_multipliers(["LINK"], delay_hours=1.0, n_paths=10, rng=rng)
    with pytest.raises(InputError, match="Generator"):
        stress_multipliers(["WETH"], delay_hours=1.0, n_paths=10, rng=0)  # type: ignore[arg-type]
