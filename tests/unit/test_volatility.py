"""Volatility estimators: hand-computed answers, properties, and the shipped prices."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import price_data
from monitor.errors import InputError
from monitor.risk.volatility import (
    asset_covariance,
    asset_volatilities,
    correlation_from_covariance,
    ewma_covariance,
    ewma_volatility,
    joint_log_returns,
    parkinson_volatility,
    scale_sigma,
)

# daily log returns: zero, or between 1e-12 and 0.5 in size (squares of smaller ones are
# subnormal floats, where relative precision is gone; no price moves by 1e-150)
returns_lists = st.lists(
    st.floats(min_value=-0.5, max_value=0.5, allow_nan=False, allow_infinity=False).filter(
        lambda x: x == 0 or abs(x) >= 1e-12
    ),
    min_size=1,
    max_size=80,
)
lambdas = st.floats(min_value=0.5, max_value=0.999)


def _reference_ewma_var(r: list[float], lam: float) -> float:
    """Straight loop: zero-mean seed over the first 30 returns, then every return."""
    seed = r[: min(30, len(r))]
    var = sum(x * x for x in seed) / len(seed)
    for x in r:
        var = lam * var + (1 - lam) * x * x
    return var


# -- EWMA ---------------------------------------------------------------------------


@pytest.mark.parametrize("c", [0.01, -0.03, 0.0, 0.25])
@pytest.mark.parametrize("n", [1, 5, 30, 31, 400])
def test_ewma_constant_return_is_its_absolute_value(c: float, n: int) -> None:
    assert ewma_volatility(np.full(n, c)) == pytest.approx(abs(c), rel=1e-12, abs=1e-15)


def test_ewma_three_value_hand_example() -> None:
    # seed = (0.01^2 + 0.02^2 + 0.03^2) / 3 = 0.0014 / 3
    # s1 = 0.9 * 0.0014/3 + 0.1 * 0.0001 = 0.00043
    # s2 = 0.9 * 0.00043  + 0.1 * 0.0004 = 0.000427
    # s3 = 0.9 * 0.000427 + 0.1 * 0.0009 = 0.0004743
    assert ewma_volatility(np.array([0.01, -0.02, 0.03]), lam=0.9) == pytest.approx(math.sqrt(0.0004743), rel=1e-12)


def test_ewma_seed_uses_first_30_returns_only() -> None:
    r = [0.01] * 30 + [0.05] * 10
    expected = 0.01**2 * 0.94**40 + sum(0.06 * 0.94 ** (39 - t) * r[t] ** 2 for t in range(40))
    assert ewma_volatility(np.array(r)) == pytest.approx(math.sqrt(expected), rel=1e-12)
    assert ewma_volatility(np.array(r)) ** 2 == pytest.approx(_reference_ewma_var(r, 0.94), rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(r=returns_lists, lam=lambdas)
def test_ewma_matches_loop_and_is_bounded_by_the_squares(r: list[float], lam: float) -> None:
    sigma = ewma_volatility(np.array(r), lam)
    assert sigma**2 == pytest.approx(_reference_ewma_var(r, lam), rel=1e-9, abs=1e-300)
    # the weights sum to one, so sigma^2 is a convex combination of the squared returns
    squares = [x * x for x in r]
    assert min(squares) * (1 - 1e-9) - 1e-300 <= sigma**2 <= max(squares) * (1 + 1e-9) + 1e-300


@settings(max_examples=100, deadline=None)
@given(r=returns_lists, k=st.floats(min_value=-100, max_value=100).filter(lambda k: abs(k) > 1e-3))
def test_ewma_scales_with_the_returns(r: list[float], k: float) -> None:
    base = ewma_volatility(np.array(r))
    assert ewma_volatility(k * np.array(r)) == pytest.approx(abs(k) * base, rel=1e-9, abs=1e-300)


def test_ewma_covariance_hand_example_and_diagonal() -> None:
    r = np.array([[0.01, 0.02], [-0.02, -0.01], [0.03, 0.0]])
    lam = 0.8
    cov = r.T @ r / 3
    for row in r:
        cov = lam * cov + (1 - lam) * np.outer(row, row)
    got = ewma_covariance(r, lam)
    np.testing.assert_allclose(got, cov, rtol=1e-12)
    assert got[0, 0] == pytest.approx(ewma_volatility(r[:, 0], lam) ** 2, rel=1e-12)
    assert got[1, 1] == pytest.approx(ewma_volatility(r[:, 1], lam) ** 2, rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(
    data=st.lists(
        st.tuples(*(st.floats(min_value=-0.3, max_value=0.3) for _ in range(3))),
        min_size=1,
        max_size=60,
    ),
    lam=lambdas,
)
def test_ewma_covariance_is_symmetric_psd(data: list[tuple[float, float, float]], lam: float) -> None:
    cov = ewma_covariance(np.array(data), lam)
    assert cov.shape == (3, 3)
    np.testing.assert_array_equal(cov, cov.T)
    assert np.linalg.eigvalsh(cov).min() >= -1e-12 * max(1.0, float(np.trace(cov)))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([],), "empty"),
        (([0.1, math.nan],), "NaN"),
        (([[0.1, 0.2]],), "1-dimensional"),
        (([0.1], 1.0), r"\(0, 1\)"),
        (([0.1], 0.0), r"\(0, 1\)"),
        (([0.1], math.nan), "finite"),
    ],
)
def test_ewma_rejects_bad_input(args: tuple[object, ...], match: str) -> None:
    with pytest.raises(InputError, match=match):
        ewma_volatility(*args)  # type: ignore[arg-type]


def test_correlation_from_covariance() -> None:
    corr = correlation_from_covariance(np.array([[4.0, 2.0], [2.0, 9.0]]))
    np.testing.assert_allclose(corr, [[1.0, 1.0 / 3.0], [1.0 / 3.0, 1.0]], rtol=1e-12)
    with pytest.raises(InputError, match="zero or negative variance"):
        correlation_from_covariance(np.array([[0.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(InputError, match="square"):
        correlation_from_covariance(np.ones((2, 3)))
    with pytest.raises(InputError, match="symmetric"):
        correlation_from_covariance(np.array([[1.0, 0.5], [0.1, 1.0]]))


# -- Parkinson, scaling -------------------------------------------------------------


def test_parkinson_hand_example() -> None:
    expected = math.sqrt((math.log(1.1) ** 2 + math.log(1.05) ** 2) / 2 / (4 * math.log(2)))
    assert parkinson_volatility(np.array([110.0, 105.0]), np.array([100.0, 100.0])) == pytest.approx(expected)
    # a constant range ln(H/L) = 0.02 gives 0.02 / sqrt(4 ln 2) = 0.0120112...
    high = 50.0 * np.exp(np.full(10, 0.02))
    assert parkinson_volatility(high, np.full(10, 50.0)) == pytest.approx(0.02 / math.sqrt(4 * math.log(2)))
    assert parkinson_volatility(np.array([3.0]), np.array([3.0])) == 0.0


def test_parkinson_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="below low"):
        parkinson_volatility(np.array([1.0, 0.9]), np.array([0.95, 0.95]))
    with pytest.raises(InputError, match="same length"):
        parkinson_volatility(np.array([1.0, 1.1]), np.array([0.9]))
    with pytest.raises(InputError, match="positive"):
        parkinson_volatility(np.array([1.0]), np.array([0.0]))


def test_parkinson_on_eth_2022_is_close_to_close_to_close_sigma() -> None:
    eth = price_data.load_daily("ETH").loc["2022-01-01":"2022-12-31"]
    park = parkinson_volatility(eth["high"].to_numpy(), eth["low"].to_numpy())
    close_sd = float(np.std(price_data.log_returns("ETH", "2022-01-01", "2022-12-31").to_numpy()))
    assert 0.02 < park < 0.06
    assert 0.5 < park / close_sd < 1.5


def test_scale_sigma() -> None:
    assert scale_sigma(0.04, 24) == pytest.approx(0.04)
    assert scale_sigma(0.04, 6) == pytest.approx(0.02)
    assert scale_sigma(0.04, 24 * 4) == pytest.approx(0.08)
    assert scale_sigma(0.04, 0) == 0.0
    with pytest.raises(InputError):
        scale_sigma(0.04, -1)
    with pytest.raises(InputError):
        scale_sigma(-0.04, 1)
    with pytest.raises(InputError):
        scale_sigma(0.04, math.inf)


# -- shipped data -------------------------------------------------------------------


def test_eth_volatility_over_2022_is_a_few_percent_a_day() -> None:
    vols = asset_volatilities(["ETH"], end="2022-12-31", window_days=365)
    assert 0.02 < vols["ETH"] < 0.06
    sample = float(np.std(price_data.log_returns("ETH", "2022-01-01", "2022-12-31").to_numpy(), ddof=1))
    assert 0.02 < sample < 0.06


def test_asset_volatilities_keys_and_orders_of_magnitude() -> None:
    vols = asset_volatilities(["WETH", "BTC", "USDC", "SOL"])
    assert list(vols) == ["WETH", "BTC", "USDC", "SOL"]
    assert vols["WETH"] == pytest.approx(asset_volatilities(["ETH"])["ETH"])
    assert vols["USDC"] < 0.005
    assert 0.005 < vols["BTC"] < 0.08
    assert vols["SOL"] > vols["USDC"] * 10


def test_asset_volatilities_matches_ewma_of_log_returns() -> None:
    r = price_data.log_returns("BTC", "2021-06-30", "2022-06-30").to_numpy()
    assert asset_volatilities(["BTC"], end="2022-06-30", window_days=365)["BTC"] == pytest.approx(ewma_volatility(r))


def test_asset_volatilities_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="unknown asset"):
        asset_volatilities(["DOGE"])
    with pytest.raises(InputError, match="string"):
        asset_volatilities("ETH")
    with pytest.raises(InputError, match="not enough"):
        asset_volatilities(["USDC"], end="2020-06-30")
    with pytest.raises(InputError, match="window_days"):
        asset_volatilities(["ETH"], window_days=1)


def test_joint_log_returns_and_covariance() -> None:
    r = joint_log_returns(["WETH", "BTC", "ETH"], "2022-01-01", "2022-12-31")
    assert r.shape == (364, 3)
    np.testing.assert_array_equal(r[:, 0], r[:, 2])
    np.testing.assert_allclose(r[:, 0], price_data.log_returns("ETH", "2022-01-01", "2022-12-31").to_numpy())
    cov = asset_covariance(["ETH", "BTC", "USDC"], end="2022-12-31")
    corr = correlation_from_covariance(cov)
    assert corr[0, 1] > 0.5
    assert cov[2, 2] < cov[1, 1] / 100
