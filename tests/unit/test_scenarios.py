"""Stress scenarios: known answers from the shipped Yahoo Finance prices, parsing, Monte Carlo."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import price_data
from monitor.errors import InputError
from monitor.risk import scenarios
from monitor.risk.scenarios import (
    HISTORICAL_EVENTS,
    Scenario,
    correlated_scenario,
    historical_moves,
    historical_scenario,
    monte_carlo_bootstrap,
    monte_carlo_bootstrap_paths,
    monte_carlo_gbm,
    parse_shock,
    scenario_names,
    shock_scenario,
)
from monitor.risk.volatility import asset_covariance, ewma_covariance, joint_log_returns

STABLES = ("USDC", "DAI", "USDT")

# -- Scenario -----------------------------------------------------------------------


def test_scenario_lookup_aliases_and_defaults() -> None:
    s = Scenario("t", "test", {"weth": 0.6, "BTC": 0.8, "LINK": 0.5}, "shock")
    assert dict(s.multipliers) == {"BTC": 0.8, "ETH": 0.6, "LINK": 0.5}
    assert s.multiplier_for("WETH") == 0.6
    assert s.multiplier_for("eth") == 0.6
    assert s.multiplier_for(" wbtc ") == 0.8
    assert s.multiplier_for("link") == 0.5
    assert s.multiplier_for("USDC") == 1.0
    assert s.multiplier_for("NOPE") == 1.0
    vec = s.vector(["USDC", "WETH", "WBTC", "ETH"])
    assert vec.dtype == np.float64
    np.testing.assert_array_equal(vec, [1.0, 0.6, 0.8, 0.6])
    assert s.vector([]).shape == (0,)


def test_scenario_is_immutable_and_validated() -> None:
    s = Scenario("t", "test", {"ETH": 0.5}, "historical")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.multipliers["ETH"] = 2.0  # type: ignore[index]
    assert hash(s) == hash(Scenario("t", "test", {"ETH": 0.5}, "historical"))
    assert s == Scenario("t", "test", {"eth": 0.5}, "historical")
    with pytest.raises(InputError, match="source"):
        Scenario("t", "test", {}, "guess")
    for bad in (0.0, -0.5, math.nan, math.inf):
        with pytest.raises(InputError, match="finite and > 0"):
            Scenario("t", "test", {"ETH": bad}, "shock")
    with pytest.raises(InputError, match="conflicting"):
        Scenario("t", "test", {"ETH": 0.5, "WETH": 0.6}, "shock")
    with pytest.raises(InputError, match="string"):
        s.vector("ETH")


# -- parse_shock / shock_scenario -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "symbol", "mult"),
    [
        ("WETH=-30%", "WETH", 0.70),
        ("ETH=-0.3", "ETH", 0.70),
        ("eth=+10%", "ETH", 1.10),
        ("WBTC=10%", "WBTC", 1.10),
        (" ETH = -42 % ", "ETH", 0.58),
        ("ETH=\u221225%", "ETH", 0.75),  # unicode minus sign
        ("USDC=-0.5%", "USDC", 0.995),
        ("ETH=0", "ETH", 1.0),
        ("ETH=1", "ETH", 2.0),
        ("ETH=.25", "ETH", 1.25),
        ("ETH=-99.9%", "ETH", 0.001),
        ("ETH=+250%", "ETH", 3.5),
        ("LINK=-50%", "LINK", 0.5),
    ],
)
def test_parse_shock_accepts(text: str, symbol: str, mult: float) -> None:
    got_symbol, got_mult = parse_shock(text)
    assert got_symbol == symbol
    assert got_mult == pytest.approx(mult, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("ETH", "exactly one '='"),
        ("ETH-30%", "exactly one '='"),
        ("ETH==-3%", "exactly one '='"),
        ("ETH=", "no change"),
        ("ETH=%", "no change"),
        ("=-30%", "no asset"),
        ("ETH=abc", "not a number"),
        ("ETH=-30%%", "not a number"),
        ("ETH=nan", "not a number"),
        ("ETH=inf%", "not a number"),
        ("ETH=1e999", "finite"),
        ("E TH=-3%", "not an asset symbol"),
        ("ETH=-100%", "-100 % or deeper would make the price zero or negative"),
        ("ETH=-150%", "-100 % or deeper would make the price zero or negative"),
        ("ETH=-1", "-100 % or deeper would make the price zero or negative"),
        ("ETH=-30", "write -30% for percent"),
        ("ETH=30", r"must be in \[-1, 1\]"),
    ],
)
def test_parse_shock_rejects(text: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        parse_shock(text)


def test_parse_shock_rejects_non_string() -> None:
    with pytest.raises(InputError):
        parse_shock(0.3)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(pct=st.floats(min_value=-99.99, max_value=1000.0), sym=st.sampled_from(["weth", "WBTC", "usdc", "Link"]))
def test_parse_shock_percent_property(pct: float, sym: str) -> None:
    symbol, mult = parse_shock(f"{sym}={pct!r}%")
    assert symbol == sym.upper()
    assert mult == pytest.approx(1.0 + pct / 100.0, rel=1e-12, abs=1e-15)
    assert mult > 0


@settings(max_examples=200, deadline=None)
@given(frac=st.floats(min_value=-0.9999, max_value=1.0))
def test_parse_shock_fraction_property(frac: float) -> None:
    assert parse_shock(f"ETH={frac!r}")[1] == pytest.approx(1.0 + frac, rel=1e-12, abs=1e-15)


def test_shock_scenario() -> None:
    s = shock_scenario(["WETH=-30%", "WBTC=-20%", "LINK=-0.5"])
    assert s.source == "shock"
    assert dict(s.multipliers) == pytest.approx({"ETH": 0.7, "BTC": 0.8, "LINK": 0.5})
    assert s.multiplier_for("WETH") == pytest.approx(0.7)
    assert s.multiplier_for("USDC") == 1.0
    assert "WETH=-30%" in s.name
    np.testing.assert_allclose(s.vector(["WETH", "USDC", "WBTC"]), [0.7, 1.0, 0.8])
    assert shock_scenario("ETH=+10%").multiplier_for("ETH") == pytest.approx(1.1)


def test_shock_scenario_rejects_duplicates_and_empty() -> None:
    with pytest.raises(InputError, match="shocked twice"):
        shock_scenario(["WETH=-30%", "ETH=-10%"])
    with pytest.raises(InputError, match="shocked twice"):
        shock_scenario(["eth=-30%", "ETH=-30%"])
    with pytest.raises(InputError, match="no shock"):
        shock_scenario([])
    with pytest.raises(InputError, match="-100 %"):
        shock_scenario(["ETH=-30%", "BTC=-100%"])


# -- historical ----------------------------------------------------------------------


def test_event_catalogue() -> None:
    names = scenario_names()
    for name, start, end in [
        ("2020-03-12", "2020-03-08", "2020-03-16"),
        ("2021-05-19", "2021-05-12", "2021-05-23"),
        ("2022-05-terra", "2022-05-05", "2022-05-18"),
        ("2022-11-ftx", "2022-11-05", "2022-11-14"),
        ("2023-03-usdc-depeg", "2023-03-09", "2023-03-15"),
    ]:
        assert name in names
        event = HISTORICAL_EVENTS[name]
        assert (event.start, event.end) == (start, end)
        assert event.description
        ev_start, ev_end, _ = event  # a plain (start, end, description) tuple
        assert ev_start <= ev_end


def test_black_thursday_eth_known_answers() -> None:
    # 1 day: low of 2020-03-12 / close of 2020-03-11
    one = historical_scenario("2020-03-12", horizon_days=1)
    assert one.multiplier_for("WETH") == pytest.approx(111.210709 / 194.868530, rel=1e-6)
    assert one.multiplier_for("ETH") == pytest.approx(0.5707, abs=1e-4)
    # 2 days: the 2020-03-13 low 95.184303 joins the same window
    two = historical_scenario("2020-03-12", horizon_days=2)
    assert two.multiplier_for("ETH") == pytest.approx(95.184303 / 194.868530, rel=1e-6)
    assert two.multiplier_for("ETH") == pytest.approx(0.4885, abs=1e-4)
    # 3 days: the window 03-11..03-13 from the 03-10 close (200.767242) is worse still
    three = historical_scenario("2020-03-12", horizon_days=3)
    assert three.multiplier_for("ETH") == pytest.approx(95.184303 / 200.767242, rel=1e-6)
    move = historical_moves("2020-03-12", 3)["ETH"]
    assert (move.reference_date, move.window_start, move.window_end, move.low_date) == (
        "2020-03-10",
        "2020-03-11",
        "2020-03-13",
        "2020-03-13",
    )
    assert move.low == pytest.approx(95.184303)
    assert move.reference_price == pytest.approx(200.767242)


def test_black_thursday_leaves_out_assets_without_data() -> None:
    s = historical_scenario("2020-03-12")
    assert s.source == "historical"
    assert set(s.multipliers) == {"BTC", "ETH"}
    for asset in ("USDC", "DAI", "USDT", "SOL"):
        assert s.multiplier_for(asset) == 1.0
    assert "No price data in the window (left unchanged): DAI, SOL, USDC, USDT" in s.description
    assert "2020-03-11..2020-03-13" in s.description  # the worst ETH window's dates
    assert "2020-03-12" in s.name


def test_usdc_depeg_known_answer() -> None:
    usdc = historical_moves("2023-03-usdc-depeg", 1)["USDC"]
    prev_close = float(price_data.load_daily("USDC").loc["2023-03-10", "close"])
    assert usdc.multiplier == pytest.approx(0.8774 / prev_close, rel=1e-9)
    assert usdc.low_date == "2023-03-11"
    assert usdc.reference_date == "2023-03-10"
    s = historical_scenario("2023-03-usdc-depeg", 1)
    assert s.multiplier_for("USDC") == pytest.approx(0.8779, abs=1e-4)
    assert s.multiplier_for("DAI") < 0.91  # DAI was mostly backed by USDC
    assert s.multiplier_for("USDT") > 0.99


def test_ftx_eth_known_answers() -> None:
    close_nov7 = 1568.591309
    # one day: the 11-08 low (1259.44) from the 11-07 close is worse than 11-09's 1083.29 from 1332.84
    assert historical_scenario("2022-11-ftx", 1).multiplier_for("ETH") == pytest.approx(1259.443115 / close_nov7)
    nov9_move = 1083.285645 / 1332.835571
    assert historical_scenario("2022-11-ftx", 1).multiplier_for("ETH") < nov9_move
    # two days: 11-08..11-09 reaches the 1083.29 low
    two = historical_moves("2022-11-ftx", 2)["ETH"]
    assert two.multiplier == pytest.approx(1083.285645 / close_nov7)
    assert (two.reference_date, two.low_date) == ("2022-11-07", "2022-11-09")
    three = historical_moves("2022-11-ftx", 3)["ETH"]
    assert three.low == pytest.approx(1083.285645)
    assert three.reference_date == "2022-11-06"


def test_horizon_longer_than_the_event_uses_the_whole_window() -> None:
    eth = price_data.load_daily("ETH")
    expected = float(eth.loc["2020-03-08":"2020-03-16", "low"].min()) / float(eth.loc["2020-03-07", "close"])
    for h in (9, 30):
        assert historical_scenario("2020-03-12", h).multiplier_for("ETH") == pytest.approx(expected)


@pytest.mark.parametrize("name", list(HISTORICAL_EVENTS))
def test_historical_scenarios_are_sane(name: str) -> None:
    one = historical_scenario(name, 1)
    three = historical_scenario(name, 3)
    assert set(one.multipliers) == set(three.multipliers)
    assert {"ETH", "BTC"} <= set(one.multipliers)
    for asset in one.multipliers:
        assert 0.2 < three.multipliers[asset] <= one.multipliers[asset] < 1.05
    for asset in set(one.multipliers) & {"ETH", "BTC", "SOL"}:
        assert one.multipliers[asset] < 0.95  # every event hit the volatile assets
    for asset in set(one.multipliers) & {"USDT", "DAI"}:
        assert one.multipliers[asset] > 0.85


def test_historical_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="2022-11-ftx"):
        historical_scenario("2008-lehman")
    for bad in (0, -1, True, 1.5):
        with pytest.raises(InputError, match="horizon_days"):
            historical_scenario("2022-11-ftx", bad)  # type: ignore[arg-type]


# -- correlated ----------------------------------------------------------------------


def test_correlated_scenario_betas() -> None:
    s = correlated_scenario("WETH", -0.3, ["BTC", "USDC", "DAI", "USDT", "SOL"])
    assert s.source == "correlated"
    assert s.multiplier_for("ETH") == pytest.approx(0.7)
    beta_btc = math.log(s.multiplier_for("BTC")) / math.log(0.7)
    assert 0.3 < beta_btc < 1.2
    assert s.multiplier_for("SOL") < 0.85
    for stable in STABLES:
        assert abs(math.log(s.multiplier_for(stable))) < 0.01
    # beta = cov(i, ETH) / var(ETH) of the EWMA covariance over the same window
    cov = asset_covariance(["ETH", "BTC"])
    assert beta_btc == pytest.approx(cov[1, 0] / cov[0, 0], rel=1e-9)


def test_correlated_scenario_in_the_past_and_upward() -> None:
    s = correlated_scenario("ETH", 0.2, ["BTC"], end="2020-03-11", lookback_days=180)
    assert s.multiplier_for("ETH") == pytest.approx(1.2)
    assert 1.0 < s.multiplier_for("BTC") < 1.2
    r = joint_log_returns(["ETH", "BTC"], "2019-09-13", "2020-03-11")
    cov = ewma_covariance(r)
    assert math.log(s.multiplier_for("BTC")) == pytest.approx(cov[1, 0] / cov[0, 0] * math.log(1.2), rel=1e-9)
    # the main asset is included even if not listed, and listed only once
    only = correlated_scenario("ETH", -0.3, ["ETH", "WETH"])
    assert dict(only.multipliers) == pytest.approx({"ETH": 0.7})


def test_correlated_scenario_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="-100 %"):
        correlated_scenario("ETH", -1.0, ["BTC"])
    with pytest.raises(InputError, match="finite"):
        correlated_scenario("ETH", math.nan, ["BTC"])
    with pytest.raises(InputError, match="unknown asset"):
        correlated_scenario("ETH", -0.3, ["DOGE"])
    with pytest.raises(InputError, match="string"):
        correlated_scenario("ETH", -0.3, "BTC")
    with pytest.raises(InputError):
        correlated_scenario("ETH", -0.3, ["USDC"], end="2020-06-30")  # no USDC data before 2021


# -- Monte Carlo: bootstrap -------------------------------------------------------------


def test_bootstrap_shape_and_reproducibility() -> None:
    assets = ["WETH", "BTC", "USDC"]
    a = monte_carlo_bootstrap(assets, 10, 500, np.random.default_rng(42))
    b = monte_carlo_bootstrap(assets, 10, 500, np.random.default_rng(42))
    c = monte_carlo_bootstrap(assets, 10, 500, np.random.default_rng(43))
    assert a.shape == (500, 3)
    assert a.dtype == np.float64
    assert np.all(a > 0) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bootstrap_keeps_joint_dates() -> None:
    terminal = monte_carlo_bootstrap(["ETH", "BTC", "USDC"], 10, 5000, np.random.default_rng(7))
    logs = np.log(terminal)
    assert np.corrcoef(logs[:, 0], logs[:, 1])[0, 1] > 0.5
    assert abs(np.corrcoef(logs[:, 0], logs[:, 2])[0, 1]) < 0.3
    assert np.std(logs[:, 2]) < 0.02


def test_bootstrap_one_day_draws_whole_historical_days() -> None:
    start, end = "2022-11-01", "2022-11-20"
    terminal, minimum = monte_carlo_bootstrap_paths(
        ["ETH", "SOL"], 1, 400, np.random.default_rng(0), block_days=1, start=start, end=end
    )
    closes = price_data.load_closes(["ETH", "SOL"], start, end).to_numpy()
    day_mult = closes[1:] / closes[:-1]
    lows = np.column_stack([price_data.load_daily(a).loc[start:end, "low"].to_numpy()[1:] for a in ("ETH", "SOL")])
    low_mult = lows / closes[:-1]
    for row_t, row_m in zip(terminal, minimum, strict=True):
        hits = np.flatnonzero(np.all(np.isclose(day_mult, row_t, rtol=1e-12), axis=1))
        assert hits.size >= 1  # the same historical day for both assets
        np.testing.assert_allclose(row_m, np.minimum(1.0, np.minimum(low_mult[hits[0]], row_t)), rtol=1e-12)
    # 400 draws of 19 days: the worst FTX day, 2022-11-08 (ETH low 1259.44 / close 1568.59), is drawn
    assert minimum[:, 0].min() == pytest.approx(low_mult[:, 0].min())
    assert minimum[:, 0].min() == pytest.approx(1259.443115 / 1568.591309, rel=1e-6)


def test_bootstrap_long_blocks_are_consecutive_days() -> None:
    start, end = "2022-01-01", "2022-12-31"
    h = 7
    terminal = monte_carlo_bootstrap(["BTC"], h, 200, np.random.default_rng(1), block_days=10**9, start=start, end=end)
    r = joint_log_returns(["BTC"], start, end)[:, 0]
    wrapped = np.concatenate([r, r[: h - 1]])
    sums = np.convolve(wrapped, np.ones(h), mode="valid")[: r.size]
    for value in np.log(terminal[:, 0]):
        assert np.min(np.abs(sums - value)) < 1e-9


def test_bootstrap_minimum_is_below_start_and_terminal() -> None:
    terminal, minimum = monte_carlo_bootstrap_paths(["ETH", "DAI"], 30, 2000, np.random.default_rng(3))
    assert terminal.shape == minimum.shape == (2000, 2)
    assert np.all(minimum <= 1.0)
    assert np.all(minimum <= terminal * (1 + 1e-12))
    assert np.all(minimum > 0)
    assert np.median(minimum[:, 0]) < np.median(terminal[:, 0])
    np.testing.assert_array_equal(terminal, monte_carlo_bootstrap(["ETH", "DAI"], 30, 2000, np.random.default_rng(3)))


def test_bootstrap_rejects_bad_input() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="horizon_days"):
        monte_carlo_bootstrap(["ETH"], 0, 10, rng)
    with pytest.raises(InputError, match="n_paths"):
        monte_carlo_bootstrap(["ETH"], 1, 0, rng)
    with pytest.raises(InputError, match="block_days"):
        monte_carlo_bootstrap(["ETH"], 1, 10, rng, block_days=0)
    with pytest.raises(InputError, match="Generator"):
        monte_carlo_bootstrap(["ETH"], 1, 10, 42)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="no assets"):
        monte_carlo_bootstrap([], 1, 10, rng)
    with pytest.raises(InputError, match="not enough joint price data"):
        monte_carlo_bootstrap(["ETH", "USDC"], 1, 10, rng, end="2020-12-31")


# -- Monte Carlo: GBM ---------------------------------------------------------------------


def test_gbm_is_driftless_and_matches_the_covariance() -> None:
    assets = ["ETH", "BTC", "USDC"]
    h = 10.0
    n = 20_000
    m = monte_carlo_gbm(assets, h, n, np.random.default_rng(11))
    assert m.shape == (n, 3)
    assert np.all(m > 0)
    cov = asset_covariance(assets)
    sigma = np.sqrt(np.diag(cov))
    # E[m] = 1: the standard error of the mean is sd(m) / sqrt(n)
    se = m.std(axis=0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(m.mean(axis=0) - 1.0) < 4 * se)
    logs = np.log(m)
    np.testing.assert_allclose(logs.std(axis=0, ddof=1), sigma * math.sqrt(h), rtol=0.03)
    np.testing.assert_allclose(logs.mean(axis=0), -0.5 * sigma**2 * h, atol=4 * float(sigma.max()) * math.sqrt(h / n))
    corr = np.corrcoef(logs.T)
    assert corr[0, 1] == pytest.approx(cov[0, 1] / (sigma[0] * sigma[1]), abs=0.03)


def test_gbm_reproducible_fractional_and_zero_horizon() -> None:
    a = monte_carlo_gbm(["WETH", "ETH", "SOL"], 0.5, 100, np.random.default_rng(5), end="2022-06-30")
    b = monte_carlo_gbm(["WETH", "ETH", "SOL"], 0.5, 100, np.random.default_rng(5), end="2022-06-30")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[:, 0], a[:, 1])  # the same asset twice is the same column
    zero = monte_carlo_gbm(["ETH", "BTC"], 0.0, 10, np.random.default_rng(5))
    np.testing.assert_array_equal(zero, np.ones((10, 2)))


def test_gbm_rejects_bad_input() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="horizon_days"):
        monte_carlo_gbm(["ETH"], -1.0, 10, rng)
    with pytest.raises(InputError, match="n_paths"):
        monte_carlo_gbm(["ETH"], 1.0, 0, rng)
    with pytest.raises(InputError, match="lam"):
        monte_carlo_gbm(["ETH"], 1.0, 10, rng, lam=1.5)
    with pytest.raises(InputError, match="Generator"):
        monte_carlo_gbm(["ETH"], 1.0, 10, np.random.RandomState(0))  # type: ignore[arg-type]


def test_cholesky_jitter_handles_a_singular_covariance() -> None:
    chol = scenarios._cholesky(np.array([[1e-4, 1e-4], [1e-4, 1e-4]]))
    np.testing.assert_allclose(chol @ chol.T, [[1e-4, 1e-4], [1e-4, 1e-4]], atol=1e-12)
