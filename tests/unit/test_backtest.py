"""Alert-rule backtest: hand-made paths with known answers, no lookahead, rule orderings, errors."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pytest

from monitor.errors import InputError
from monitor.risk import backtest as bt
from monitor.risk.backtest import (
    DEFAULT_TOLERANCES,
    PERIODS,
    TABLE_HEADERS,
    BacktestResult,
    backtest,
    backtest_many,
)
from monitor.risk.book import Book, synthetic_book
from monitor.risk.scenarios import HISTORICAL_EVENTS
from monitor.risk.thresholds import log_hf_sigma, threshold_hf
from monitor.risk.volatility import ewma_covariance

SEED = 10  # seed returns in the hand-made tests (the module default is 60)
START = SEED + 1  # first row with SEED returns before it


def _book(collateral: list[list[float]], debt: list[list[float]], symbols: tuple[str, ...], lt: float = 0.8) -> Book:
    c = np.asarray(collateral, dtype=np.float64)
    d = np.asarray(debt, dtype=np.float64)
    n, a = c.shape
    return Book(
        "test", 0, tuple(f"0x{i:040x}" for i in range(n)), symbols, np.ones(a), c, d,
        np.full((n, a), lt), np.full((n, a), lt - 0.05), np.full((n, a), 1.05),
    )  # fmt: skip


def _path(eth_window: list[float], seed_move: float = 0.03) -> np.ndarray:
    """ETH closes (column 0) and a USDC column at 1.0: rows 0..SEED of ETH alternating by
    +-seed_move in log terms, the start close 100 at row START, then ``100 * eth_window``."""
    seed = 100.0 * np.exp(seed_move * ((START - np.arange(START)) % 2))  # ..., 100, 100 e^c; every |return| = c
    eth = np.concatenate([seed, [100.0], 100.0 * np.asarray(eth_window)])
    return np.column_stack([eth, np.ones_like(eth)])


ETH_USDC = _book([[1000.0, 0.0]], [[0.0, 640.0]], ("WETH", "USDC"))  # HF 1.25, long ETH


def _run(
    book: Book, closes: np.ndarray, lows: np.ndarray, highs: np.ndarray | None = None, **kw: Any
) -> BacktestResult:
    kw.setdefault("seed_days", SEED)
    kw.setdefault("window_days", closes.shape[0] - START - 1)
    kw.setdefault("starts", [START])
    return bt._run(book, closes, lows, highs, **kw)


def _rule(result: BacktestResult, name: str) -> bt.RuleResult:
    return next(r for r in result.rules if r.rule == name)


# -- a one-position path with known answers -------------------------------------------


def test_one_position_known_liquidation_and_lead_times() -> None:
    # HF = 1.25 * ETH multiplier: closes 1.1875, 1.125, 1.075, then a low of 0.79 -> HF 0.9875 on day 4
    closes = _path([0.95, 0.90, 0.86, 0.88, 0.90])
    lows = closes * 0.99
    lows[START + 4, 0] = 100.0 * 0.79
    result = _run(ETH_USDC, closes, lows, fixed_levels=(1.1, 1.2, 1.3), tolerances=(0.5,))
    assert (result.starts, result.positions) == (1, 1)
    assert result.position_days == 4  # days 1..4, liquidated on day 4
    for name, lead in (("HF <= 1.1", 1.0), ("HF <= 1.2", 3.0), ("HF <= 1.3", 4.0)):
        r = _rule(result, name)
        assert (r.liquidations, r.warned, r.misses, r.false_alarms) == (1, 1, 0, 0)
        assert r.recall == 1.0
        assert r.median_lead_days == lead and r.p10_lead_days == lead
        assert r.cost == 0.0


def test_warning_on_the_liquidation_day_does_not_count() -> None:
    # the close of day 3 is the first at HF <= 1.1 and the low of day 3 already liquidates
    closes = _path([0.95, 0.90, 0.86, 0.90])
    lows = closes * 0.999
    lows[START + 3, 0] = 100.0 * 0.79
    r = _rule(_run(ETH_USDC, closes, lows, fixed_levels=(1.1,), tolerances=(0.5,)), "HF <= 1.1")
    assert (r.liquidations, r.warned, r.misses, r.false_alarms) == (1, 0, 1, 0)
    assert r.median_lead_days is None and r.p10_lead_days is None
    assert r.cost == 50.0


def test_false_alarm_when_the_position_survives_the_window() -> None:
    closes = _path([0.95, 0.91, 0.95, 1.0, 1.05])  # HF dips to 1.1375 and recovers
    lows = closes * 0.995
    result = _run(ETH_USDC, closes, lows, fixed_levels=(1.1, 1.2), tolerances=(0.5,), false_alarm_cost=2.0)
    r11, r12 = _rule(result, "HF <= 1.1"), _rule(result, "HF <= 1.2")
    assert (r11.liquidations, r11.warned, r11.false_alarms, r11.cost) == (0, 0, 0, 0.0)
    assert (r12.liquidations, r12.warned, r12.false_alarms, r12.cost) == (0, 0, 1, 2.0)
    assert math.isnan(r12.recall)
    assert result.position_days == 5
    assert r12.false_alarms_per_1000_position_days == pytest.approx(200.0)


def test_debt_in_a_volatile_asset_is_liquidated_at_the_high() -> None:
    # USDC collateral 1000 (LT 0.8), 1 WETH-worth 640 of debt: HF = 1.25 / ETH multiplier
    short = _book([[0.0, 1000.0]], [[640.0, 0.0]], ("WETH", "USDC"))
    closes = _path([1.05, 1.06, 1.04])
    lows = closes * 0.99
    highs = closes * 1.01
    highs[START + 2, 0] = 100.0 * 1.3  # HF 0.96 at the high of day 2, never below 1 at a close or low
    r = _rule(_run(short, closes, lows, highs, fixed_levels=(1.2,), tolerances=(0.5,)), "HF <= 1.2")
    assert (r.liquidations, r.warned) == (1, 1)
    assert r.median_lead_days == 1.0  # warned at the close of day 1 (HF 1.25 / 1.05 = 1.19)
    lows_only = _rule(_run(short, closes, lows, None, fixed_levels=(1.2,), tolerances=(0.5,)), "HF <= 1.2")
    assert lows_only.liquidations == 0


def test_optimized_threshold_matches_a_straight_loop() -> None:
    """The vectorised engine against a per-day reference: EWMA from returns up to t-1,
    log_hf_sigma of the moved book, threshold_hf, first close at or under it."""
    rng = np.random.default_rng(3)
    symbols = ("WETH", "WBTC", "USDC")
    book = synthetic_book(40, symbols, [2000.0, 30000.0, 1.0], [0.83, 0.78, 0.8], rng, hf_range=(1.05, 1.6))
    seed, window = 30, 14  # a seed >= 30 returns: ewma_covariance seeds on the first 30
    s = seed + 1
    n_rows = s + window + 1
    log_ret = rng.normal(0.0, [0.05, 0.04, 0.002], (n_rows, 3))
    closes = 100.0 * np.exp(np.cumsum(log_ret, axis=0))
    lows = closes * np.exp(-np.abs(rng.normal(0.0, 0.03, closes.shape)))
    highs = closes * np.exp(np.abs(rng.normal(0.0, 0.03, closes.shape)))
    tols = (0.2, 0.01)
    rep = bt._replay(
        book, closes, lows, highs, starts=[s], tolerances=tols, fixed_levels=(1.1,), window_days=window,
        seed_days=seed, horizon_hours=24.0,
    )  # fmt: skip
    rets = np.diff(np.log(closes), axis=0)
    for p in range(book.size):
        one = book.with_rows(np.array([p]))
        liq = window + 1
        for d in range(1, window + 1):
            worst = min(
                float(one.health_factors(px[s + d] / closes[s])[0]) for px in (lows, highs, closes)
            )  # fmt: skip
            if worst < 1.0:
                liq = d
                break
        assert rep.liq_day[0, p] == liq
        for i, tol in enumerate(tols):
            expected = window + 1
            for t in range(0, min(liq, window + 1)):
                m = closes[s + t] / closes[s]
                cov = ewma_covariance(rets[s - seed - 1 : s + t - 1], 0.94)  # returns into rows s-seed .. s+t-1
                moved = Book(
                    one.market, 0, one.accounts, one.symbols, one.prices * m, one.collateral * m, one.debt * m,
                    one.lt, one.ltv, one.bonus,
                )  # fmt: skip
                level = float(threshold_hf(log_hf_sigma(moved, cov), 24.0, tol)[0])
                if float(one.health_factors(m)[0]) <= level:
                    expected = t
                    break
            assert rep.first_warn[1 + i, 0, p] == expected, (p, tol)


# -- properties -----------------------------------------------------------------------


def _random_market(seed: int, n_rows: int = 90) -> tuple[Book, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    symbols = ("WETH", "WBTC", "USDC", "SOL")
    book = synthetic_book(
        300, symbols, [2000.0, 30000.0, 1.0, 20.0], [0.83, 0.78, 0.8, 0.65], rng, hf_range=(1.02, 1.6)
    )
    vol = np.array([0.05, 0.04, 0.003, 0.07])
    jumps = rng.standard_t(3, (n_rows, 4)) * vol / math.sqrt(3.0)
    closes = 50.0 * np.exp(np.cumsum(jumps, axis=0))
    lows = closes * np.exp(-np.abs(rng.normal(0.0, vol, closes.shape)))
    highs = closes * np.exp(np.abs(rng.normal(0.0, vol, closes.shape)))
    return book, closes, lows, highs


@pytest.mark.parametrize("t", [0, 1, 5, 12])
def test_no_lookahead(t: int) -> None:
    """Changing every price after the close of day t changes no decision made up to day t."""
    book, closes, lows, highs = _random_market(11)
    starts, window = [START, START + 7, START + 20], 20
    kw: dict[str, Any] = {"starts": starts, "window_days": window, "seed_days": SEED, "fixed_levels": (1.1, 1.2)}
    base = bt._replay(book, closes, lows, highs, **kw)
    rng = np.random.default_rng(99)
    changed_any = False
    for k, s in enumerate(starts):
        later = slice(s + t + 1, None)  # every row after the close of day t of start k
        factor = np.exp(rng.normal(0.0, 0.3, closes[later].shape))
        c2, lo2, hi2 = closes.copy(), lows.copy(), highs.copy()
        c2[later], lo2[later], hi2[later] = closes[later] * factor, lows[later] * factor, highs[later] * factor
        other = bt._replay(book, c2, lo2, hi2, **kw)
        cap = t + 1  # decisions "after day t" are all alike once capped
        for j in range(k + 1):  # start k and the earlier starts (whose day t is at or before row s + t)
            assert np.array_equal(np.minimum(base.liq_day[j], cap), np.minimum(other.liq_day[j], cap))
            assert np.array_equal(np.minimum(base.first_warn[:, j], cap), np.minimum(other.first_warn[:, j], cap))
        changed_any |= not np.array_equal(base.first_warn, other.first_warn)
    assert changed_any  # the perturbation does matter later on


def test_higher_fixed_level_has_more_recall_and_more_false_alarms() -> None:
    book, closes, lows, highs = _random_market(5)
    result = bt._run(
        book, closes, lows, highs, starts=list(range(START, 60, 5)), window_days=25, seed_days=SEED,
        fixed_levels=(1.1, 1.2),
    )  # fmt: skip
    r11, r12 = _rule(result, "HF <= 1.1"), _rule(result, "HF <= 1.2")
    assert r11.liquidations == r12.liquidations > 0
    assert r12.recall >= r11.recall
    assert r12.false_alarms > r11.false_alarms
    for r in result.rules:
        assert r.warned + r.misses == r.liquidations
        if r.warned:
            assert r.p10_lead_days is not None and r.p10_lead_days >= 1.0


def test_lead_times_are_at_least_one_day() -> None:
    book, closes, lows, highs = _random_market(8)
    rep = bt._replay(book, closes, lows, highs, starts=list(range(START, 60, 3)), window_days=25, seed_days=SEED)
    liquidated = rep.liq_day <= rep.window
    warned = rep.first_warn <= rep.window
    assert liquidated.any() and (warned & liquidated).any()
    both = warned & liquidated[None]
    assert ((rep.liq_day[None] - rep.first_warn)[both] >= 1).all()
    assert (rep.first_warn[warned] >= 0).all()


def test_tiny_tolerance_warns_on_everything_and_a_huge_one_falls_to_the_floor() -> None:
    book, closes, lows, highs = _random_market(21)
    kw: dict[str, Any] = {"starts": list(range(START, 60, 4)), "window_days": 25, "seed_days": SEED}
    tiny = bt._run(book, closes, lows, highs, tolerances=(1e-12,), **kw)
    assert tiny.rules[-1].liquidations > 0
    assert tiny.rules[-1].recall == 1.0
    assert tiny.rules[-1].median_lead_days is not None
    # tolerance -> 1: threshold -> 1, so the rule is exactly the fixed rule at the floor
    huge = bt._replay(book, closes, lows, highs, tolerances=(1 - 1e-9,), fixed_levels=(1.05,), floor_hf=1.05, **kw)
    assert np.array_equal(huge.first_warn[1], huge.first_warn[0])
    bare = bt._run(book, closes, lows, highs, tolerances=(1 - 1e-9,), **kw)
    assert bare.rules[-1].warned == 0 and bare.rules[-1].false_alarms == 0


def test_frontier_is_monotone_and_best_has_lowest_cost() -> None:
    book, closes, lows, highs = _random_market(2)
    result = bt._run(book, closes, lows, highs, starts=list(range(START, 60, 4)), window_days=25, seed_days=SEED)
    assert [tol for tol, _ in result.frontier] == list(DEFAULT_TOLERANCES)
    frontier = [r for _, r in result.frontier]  # tolerance decreasing: more warnings
    for a, b in itertools.pairwise(frontier):
        assert b.warned >= a.warned and b.false_alarms >= a.false_alarms
    best = min(r.cost for r in frontier)
    assert result.rules[-1].cost == best
    assert dict(result.frontier)[result.best_tolerance] == result.rules[-1]
    for r in frontier:
        assert r.cost == 50.0 * r.misses + 1.0 * r.false_alarms


# -- real data ------------------------------------------------------------------------


def test_periods_are_the_padded_crash_windows_and_the_whole_record() -> None:
    assert list(PERIODS) == [*HISTORICAL_EVENTS, "all"]
    assert PERIODS["2020-03-12"] == ("2020-02-07", "2020-03-16")
    assert PERIODS["all"] == ("2020-01-01", "2023-08-29")


@pytest.fixture(scope="module")
def small_book() -> Book:
    return synthetic_book(
        150, ["WETH", "WBTC", "USDC", "DAI", "SOL"], [2000, 30000, 1, 1, 20], [0.83, 0.78, 0.80, 0.77, 0.65],
        np.random.default_rng(7), hf_range=(1.05, 2.0),
    )  # fmt: skip


def test_real_crash_period(small_book: Book) -> None:
    result = backtest(small_book, "2022-05-terra")
    assert result.starts == 7  # 2022-04-05 .. 2022-05-18 every 7 days
    assert result.positions == 150
    assert not any(note.split(":")[0] in small_book.symbols for note in result.notes)  # all data present
    r11, r12 = result.rules[0], result.rules[1]
    assert r11.rule == "HF <= 1.1" and r12.rule == "HF <= 1.2"
    assert r11.liquidations > 0
    assert r12.recall >= r11.recall and r12.false_alarms >= r11.false_alarms
    assert result.rules[-1].rule.startswith("optimized tol=")
    rows = result.table_rows()
    assert len(rows) == 3 and all(len(row) == len(TABLE_HEADERS) for row in rows)
    data = json.loads(json.dumps(result.as_dict()))
    assert data["period"] == "2022-05-terra" and len(data["frontier"]) == len(DEFAULT_TOLERANCES)


def test_assets_without_data_are_held_constant(small_book: Book) -> None:
    (result,) = backtest_many(small_book, ["2020-03-12"], tolerances=(0.01,))
    assert any(note.startswith("USDC:") for note in result.notes)
    assert any(note.startswith("SOL:") for note in result.notes)
    unknown = Book(
        "t", 0, ("a",), ("WETH", "LINK"), np.ones(2), np.array([[0.0, 1000.0]]), np.array([[500.0, 0.0]]),
        np.full((1, 2), 0.8), np.full((1, 2), 0.75), np.full((1, 2), 1.05),
    )  # fmt: skip  # LINK collateral (no data, constant) against WETH debt
    res = backtest(unknown, "2021-05-19", tolerances=(0.01,))
    assert any(note.startswith("LINK:") for note in res.notes)


# -- errors ---------------------------------------------------------------------------


def test_errors(small_book: Book) -> None:
    with pytest.raises(InputError, match="unknown backtest period"):
        backtest(small_book, "2019-crash")
    with pytest.raises(InputError, match="unknown backtest period"):
        backtest_many(small_book, ["all", "nope"])
    bad_costs: list[dict[str, Any]] = [
        {"miss_cost": -1.0},
        {"false_alarm_cost": math.nan},
        {"miss_cost": 0.0, "false_alarm_cost": 0.0},
    ]
    for kw in bad_costs:
        with pytest.raises(InputError, match="cost"):
            backtest(small_book, "2022-11-ftx", **kw)
    empty = small_book.with_rows(np.zeros(small_book.size, dtype=bool))
    with pytest.raises(InputError, match="empty"):
        backtest(empty, "2022-11-ftx")
    no_debt = Book(
        "t", 0, ("a",), ("WETH",), np.ones(1), np.ones((1, 1)), np.zeros((1, 1)),
        np.full((1, 1), 0.8), np.full((1, 1), 0.75), np.full((1, 1), 1.05),
    )  # fmt: skip
    with pytest.raises(InputError, match="no position with debt"):
        backtest(no_debt, "2022-11-ftx")
    with pytest.raises(InputError, match="tolerance"):
        backtest(small_book, "2022-11-ftx", tolerances=(0.0,))
    with pytest.raises(InputError, match="tolerances"):
        backtest(small_book, "2022-11-ftx", tolerances=())
    with pytest.raises(InputError, match="step_days"):
        backtest(small_book, "2022-11-ftx", step_days=0)
    with pytest.raises(InputError, match="full"):
        backtest(small_book, "all", window_days=5000)
    with pytest.raises(InputError, match="horizon_hours"):
        backtest(small_book, "2022-11-ftx", horizon_hours=0.0)


def test_volatility_floor_only_adds_warnings() -> None:
    """A long-run volatility floor can only raise optimized thresholds: at every tolerance the
    floored rule warns on at least the liquidations the unfloored one warned on."""
    import numpy as np

    from monitor.risk.backtest import backtest
    from monitor.risk.book import synthetic_book

    book = synthetic_book(300, ["WETH", "WBTC", "USDC"], [2000, 30000, 1], [0.83, 0.78, 0.80],
                          np.random.default_rng(3), hf_range=(1.05, 2.0))  # fmt: skip
    plain = backtest(book, "2022-11-ftx", vol_floor=0.0)
    floored = backtest(book, "2022-11-ftx", vol_floor=1.0)
    for (tol_a, a), (tol_b, b) in zip(plain.frontier, floored.frontier, strict=True):
        assert tol_a == tol_b
        assert b.warned >= a.warned and b.liquidations == a.liquidations
