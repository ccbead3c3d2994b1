"""The threshold policy (monitor/risk/policy.py): filtered historical simulation, levels by cost."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import InputError
from monitor.risk.book import Book
from monitor.risk.policy import (
    PROB_GRID,
    LevelCache,
    Liquidity,
    MarketState,
    PolicyConfig,
    _curves,
    ewma_ex_ante,
    levels_for_costs,
    market_state_for,
    market_state_from_history,
    market_state_from_prices,
    miss_costs,
    position_levels,
    probability_at,
)
from monitor.risk.thresholds import norm_ppf

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ("SOL", "USDC", "DAI", "WETH", "WBTC")
DAY = 86_400.0
FAST = PolicyConfig(paths=1000)


def leg(coll: dict[str, float], debt: dict[str, float], lt: float, bonus: float) -> tuple[np.ndarray, ...]:
    c, d = np.zeros(len(SYMBOLS)), np.zeros(len(SYMBOLS))
    for s, v in coll.items():
        c[SYMBOLS.index(s)] = v
    for s, v in debt.items():
        d[SYMBOLS.index(s)] = v
    return c, d, np.full(len(SYMBOLS), lt), np.full(len(SYMBOLS), bonus)


def make_book(rows: list[tuple[np.ndarray, ...]], market: str = "m") -> Book:
    c, d, lt, bonus = (np.array([r[i] for r in rows]) for i in range(4))
    accounts = tuple(f"0x{i + 1:040x}" for i in range(len(rows)))
    return Book(market, 0, accounts, SYMBOLS, np.ones(len(SYMBOLS)), c, d, lt, lt * 0.95, bonus)


SOL_USDC = leg({"SOL": 100_000}, {"USDC": 60_000}, 0.75, 1.10)
STABLE_EMODE = leg({"USDC": 100_000}, {"DAI": 92_000}, 0.975, 1.01)
WETH_USDC = leg({"WETH": 100_000}, {"USDC": 60_000}, 0.83, 1.05)
WETH_LOOP = leg({"WETH": 100_000}, {"WETH": 85_000}, 0.93, 1.01)


def test_classes_get_very_different_levels_on_an_ordinary_day() -> None:
    """The acceptance of issue 10 with the default (shipped) policy; the config test repeats it
    with the shipped config.yaml."""
    book = make_book([SOL_USDC, STABLE_EMODE, WETH_USDC, WETH_LOOP])
    pl = position_levels(book, market_state_from_prices(SYMBOLS, "2023-06-15"), PolicyConfig(), observe_hours=0.003)
    warning = pl.levels[:, 1]
    assert warning[1] <= 1.03 and warning[0] >= 1.20
    assert warning[0] > warning[2] > warning[1]  # alt/stable > blue-chip/stable > stable/stable
    assert pl.levels[3].tolist() == [1.0, 1.0, 1.0]  # the same asset on both sides cancels exactly
    assert pl.classes == ("SOL/USDC", "USDC/DAI", "WETH/USDC", "WETH/WETH")
    assert pl.reasons[0].startswith("SOL/USDC, 48 h: warn at ") and "%/day" in pl.reasons[0]
    assert (np.diff(pl.levels, axis=1) <= 0).all() and (pl.levels >= 1.0).all()


def test_shipped_config_gives_the_acceptance_levels() -> None:
    """Issue 10 acceptance with the SHIPPED config.yaml's alerts.policy on 2023-06-15."""
    from monitor.config import load_config
    from monitor.config.alerts import policy_config

    cfg = policy_config(load_config(ROOT / "config.yaml", env={}).alerts)
    assert cfg.hard_levels is None and not cfg.market_levels and not cfg.account_levels  # no fixed floors
    book = make_book([SOL_USDC, STABLE_EMODE, WETH_USDC])
    market = market_state_from_prices(SYMBOLS, "2023-06-15")
    pl = position_levels(book, market, cfg, observe_hours=12 / 3600, emode=["", "eMode Stablecoins", ""])
    assert pl.levels[1, 1] <= 1.03 and pl.levels[0, 1] >= 1.20
    assert len({tuple(np.round(r, 3)) for r in pl.levels}) == 3  # every class its own levels
    assert pl.classes[1] == "USDC/DAI eMode Stablecoins"


def gaussian_market(sigma_daily: float, days: int = 1500, seed: int = 3, step_hours: float = 24.0) -> MarketState:
    """One asset against a constant stablecoin, iid normal returns at ``step_hours``."""
    rng = np.random.default_rng(seed)
    steps = round(days * 24 / step_hours)
    r = np.zeros((steps, len(SYMBOLS)))
    r[:, 0] = rng.normal(0.0, sigma_daily * math.sqrt(step_hours / 24.0), steps)
    r[:, 1:] = rng.normal(0.0, 1e-6, (steps, len(SYMBOLS) - 1))
    return MarketState(SYMBOLS, r, step_hours)


@pytest.mark.parametrize(("hours", "step"), [(1.0, 24.0), (24.0, 24.0), (72.0, 24.0), (4.0, 1.0), (100.0, 1.0)])
def test_simulation_matches_the_reflection_formula_on_gaussian_returns(hours: float, step: float) -> None:
    """With iid normal returns the filtered simulation (bootstrap + Brownian-bridge minimum,
    daily or hourly data, steps coarsened past 48) must give the continuous-time answer
    P(min ln HF <= 0) = 2 Phi(-ln HF / (sigma sqrt h))."""
    sigma = 0.04
    book = make_book([leg({"SOL": 100_000}, {"USDC": 50_000}, 0.8, 1.05)])
    cfg = PolicyConfig(reaction_hours=(hours, hours, hours), long_run_weight=1.0, paths=20_000, block_hours=24.0)
    pl = position_levels(book, gaussian_market(sigma, days=1500 if step == 24.0 else 400, step_hours=step), cfg)
    today = float(pl.vol_daily[0])  # the sample's long-run sigma (the model's scale), ~ sigma
    assert today == pytest.approx(sigma, rel=0.1)
    for p in (0.2, 0.05, 0.01):
        z = float(-norm_ppf(p / 2.0))
        expected = today * math.sqrt(hours / 24.0) * z
        got = float(np.interp(math.log(p), np.log(PROB_GRID), pl.curves[0, 1]))
        assert got == pytest.approx(expected, rel=0.08), (p, got, expected)


def test_probability_at_the_level_is_the_cost_ratio_and_levels_invert_probabilities() -> None:
    book = make_book([SOL_USDC, WETH_USDC, leg({"WETH": 300_000}, {"USDC": 200_000}, 0.83, 1.05)])
    cfg = FAST
    pl = position_levels(book, market_state_from_prices(SYMBOLS, "2022-06-01"), cfg)
    raw = np.asarray(cfg.alarm_cost_usd)[None, :] / miss_costs(book, market_state_from_prices(SYMBOLS), cfg)[:, None]
    target = np.clip(raw, np.asarray(cfg.min_probability), np.asarray(cfg.max_probability))  # the bounded target
    # P(HF < 1) just above each level is at most the cost ratio, just below at least it
    above = np.column_stack([probability_at(pl, pl.levels[:, s] * 1.001)[:, s] for s in range(3)])
    below = np.column_stack([probability_at(pl, pl.levels[:, s] / 1.001)[:, s] for s in range(3)])
    assert (above <= target * 1.001).all() and (below >= target * 0.999).all()
    # a bigger position (higher miss cost) is warned earlier: higher levels, same class (strictly
    # where the probability bounds do not bind: both sit at the warning minimum with the defaults)
    assert (pl.levels[2] >= pl.levels[1]).all()
    unbounded = replace(cfg, min_probability=(1e-9, 1e-9, 1e-9), max_probability=(1.0, 1.0, 1.0))
    pu = position_levels(book, market_state_from_prices(SYMBOLS, "2022-06-01"), unbounded)
    assert (pu.levels[2] >= pu.levels[1]).all() and pu.levels[2, 1] > pu.levels[1, 1]
    assert pl.classes[1] == pl.classes[2]
    # probability decreases with HF
    hf = np.linspace(1.0, 2.0, 30)
    p = np.array([probability_at(pl.rows([0]), np.array([h]))[0, 1] for h in hf])
    assert p[0] == 1.0 and (np.diff(p) <= 1e-12).all()


def test_deterministic_and_the_same_for_a_position_alone_or_in_a_book() -> None:
    book = make_book([SOL_USDC, STABLE_EMODE, WETH_USDC, WETH_LOOP])
    market = market_state_from_prices(SYMBOLS, "2022-11-07")
    a = position_levels(book, market, FAST)
    b = position_levels(book, market, FAST)
    assert np.array_equal(a.levels, b.levels) and a.reasons == b.reasons
    alone = position_levels(book.with_rows(np.array([2])), market, FAST)
    assert np.array_equal(alone.levels[0], a.levels[2])
    other_seed = position_levels(book, market, replace(FAST, seed=1))
    assert not np.array_equal(other_seed.levels[0], a.levels[0])
    shipped = PolicyConfig()  # seed noise at the shipped number of paths is small
    one, two = (position_levels(book, market, replace(shipped, seed=s)).levels for s in (shipped.seed, 1))
    assert not np.array_equal(one, two) and np.allclose(one, two, rtol=0.05)


def test_no_lookahead_in_the_market_state() -> None:
    market = market_state_from_prices(("WETH", "USDC"), "2022-11-07")
    from monitor import price_data

    eth = price_data.load_daily("ETH")["close"]
    last = float(np.log(eth.loc["2022-11-07"] / eth.loc["2022-11-06"]))
    assert market.log_returns[-1, 0] == pytest.approx(last)
    assert market.source.startswith("shipped daily prices to 2022-11-07")
    before = market_state_from_prices(("SOL", "WETH"), "2020-06-01")
    assert np.isnan(before.log_returns[:, 0]).all() and np.isfinite(before.log_returns[:, 1]).mean() > 0.95
    # SOL has no data before 2021: it takes the others' residuals and their median volatility
    book = make_book([SOL_USDC])
    coll = np.array([[100_000.0, 0.0]])
    debt = np.array([[0.0, 50_000.0]])  # SOL against WETH
    sub = Book("m", 0, book.accounts, ("SOL", "WETH"), np.ones(2), coll, debt, book.lt[:, :2], book.ltv[:, :2],
               book.bonus[:, :2])  # fmt: skip
    assert position_levels(sub, before, FAST).levels[0, 1] > 1.05


def test_market_state_from_store_history_carries_prices_forward_and_ignores_the_future() -> None:
    now = 20_000 * DAY
    eth = [(now - k * DAY - 3600.0, 2000.0 * math.exp(-0.01 * k)) for k in range(60)]
    eth.append((now + DAY, 1.0))  # after the decision time: ignored
    usdc = [(now - 50 * DAY, 1.0)]  # one update, carried forward
    state = market_state_from_history(("WETH", "USDC"), {"weth": eth, "USDC": usdc}, now)
    assert state.step_hours == 24.0 and state.log_returns.shape[1] == 2
    assert np.allclose(state.log_returns[-50:, 0], 0.01)
    assert np.nanmax(np.abs(state.log_returns[:, 1])) == 0.0
    assert np.isnan(state.log_returns[0, 1])  # before USDC's first price
    # the monitor's state: the shipped history, then the store's own days (the volatility now)
    picked = market_state_for(("WETH", "USDC"), {"WETH": eth, "USDC": usdc}, now)
    assert picked.source.startswith("shipped daily prices to 2023-08-29") and "+ 59 days of stored" in picked.source
    assert np.array_equal(picked.log_returns[-50:], state.log_returns[-50:], equal_nan=True)
    assert picked.log_returns.shape[0] > 1000
    alone = market_state_for(("WETH", "USDC"), None, now)
    assert alone.source.startswith("shipped daily prices") and "stored" not in alone.source
    # a replay in 2022 with a store from then: the shipped days the store covers are replaced
    t22 = float(np.datetime64("2022-06-30T00:00:00").astype("datetime64[s]").astype(np.int64))
    recent = {"WETH": [(t22 - k * DAY, 1000.0 * (1 + 0.001 * k)) for k in range(20)], "USDC": [(t22 - 19 * DAY, 1.0)]}
    replay = market_state_for(("WETH", "USDC"), recent, t22)
    full = market_state_from_prices(("WETH", "USDC"), "2022-06-30")
    assert replay.log_returns.shape == full.log_returns.shape  # the 19 stored days replace shipped ones
    assert np.allclose(replay.log_returns[-18:, 0], -math.log1p(0.001) + 0.0, atol=2e-5)
    unknown = market_state_for(("GHO", "WETH"), {"GHO": usdc, "WETH": eth}, now)
    assert np.isnan(unknown.log_returns[:-60, 0]).all() and (unknown.log_returns[-40:, 0] == 0.0).all()


def test_hard_levels_bind_only_where_set() -> None:
    book = make_book([STABLE_EMODE, SOL_USDC])
    market = market_state_from_prices(SYMBOLS, "2023-06-15")
    free = position_levels(book, market, FAST)
    assert not free.hard.any()
    cfg = replace(FAST, hard_levels=(1.25, 1.10, 1.05), account_levels=((book.accounts[1], (3.0, 2.0, 1.5)),))
    pl = position_levels(book, market, cfg)
    assert pl.levels[0].tolist() == [1.25, 1.10, 1.05] and pl.hard[0].all()
    assert pl.levels[1].tolist() == [3.0, 2.0, 1.5]
    assert "(hard level)" in pl.reasons[0]


def test_liquidity_raises_levels_where_observable() -> None:
    book = make_book([SOL_USDC])
    base = market_state_from_prices(SYMBOLS, "2023-06-15")
    nan = np.full(len(SYMBOLS), np.nan)
    plain = position_levels(book, base, FAST).levels[0]
    thin = Liquidity(np.array([10_000.0, *nan[1:]]), nan, nan)  # less depth than a liquidation seizes
    assert miss_costs(book, replace(base, liquidity=thin), FAST)[0] > miss_costs(book, base, FAST)[0]
    thin_levels = position_levels(book, replace(base, liquidity=thin), FAST).levels[0]
    assert (thin_levels >= plain).all()  # strictly only where the probability bounds do not bind:
    unbounded = replace(FAST, min_probability=(1e-9, 1e-9, 1e-9), max_probability=(1.0, 1.0, 1.0))
    plain_u = position_levels(book, base, unbounded).levels[0]
    assert (position_levels(book, replace(base, liquidity=thin), unbounded).levels[0] > plain_u).all()
    cascade = Liquidity(np.array([1e6, *nan[1:]]), np.array([5e6, *nan[1:]]), nan)  # 5x the depth within 10 %
    assert (position_levels(book, replace(base, liquidity=cascade), FAST).levels[0] >= plain).all()
    assert position_levels(book, replace(base, liquidity=cascade), FAST).levels[0, 0] > plain[0]
    full = Liquidity(nan, nan, np.array([1.0, *nan[1:]]))  # 100 % utilised: twice the horizon
    pl = position_levels(book, replace(base, liquidity=full), FAST)
    assert pl.horizons_hours[0].tolist() == [336.0, 96.0, 8.0] and (pl.levels[0] > plain).all()


def test_tail_model_never_below_the_simulated_evidence() -> None:
    rng = np.random.default_rng(0)
    y = rng.pareto(3.0, (1, 2, 2000)).astype(np.float32) * 0.05
    y[0, 1] = 0.0  # a class without any drawdown
    curves = _curves(y, 0.02)
    desc = -np.sort(-y, axis=2)
    ranks = np.clip(np.floor(PROB_GRID * 2000).astype(int), 0, 1999)
    assert (curves[0, 0] >= desc[0, 0, ranks] - 1e-7).all()
    assert curves[0, 0, 0] >= desc[0, 0, 0] and curves[0, 0, 0] > desc[0, 0, 0]  # extrapolated past the max
    assert (np.diff(curves[0, 0]) <= 1e-12).all() and (curves[0, 1] == 0.0).all()


@settings(max_examples=25, deadline=None)
@given(
    share=st.floats(min_value=0.0, max_value=1.0),
    debt_share=st.floats(min_value=0.0, max_value=1.0),
    scale=st.floats(min_value=0.01, max_value=100.0),
)
def test_levels_ordered_and_at_least_one(share: float, debt_share: float, scale: float) -> None:
    row = leg({"WETH": 1e5 * share * scale + 1.0, "SOL": 1e5 * (1 - share) * scale},
              {"USDC": 5e4 * debt_share * scale + 1.0, "WBTC": 5e4 * (1 - debt_share) * scale}, 0.8, 1.05)  # fmt: skip
    pl = position_levels(make_book([row]), market_state_from_prices(SYMBOLS, "2022-06-01"), FAST)
    assert (pl.levels >= 1.0).all() and (np.diff(pl.levels, axis=1) <= 0).all()
    assert ((pl.probability >= 0) & (pl.probability <= 1)).all()


def test_cache_recomputes_on_composition_debt_or_volatility_moves_only() -> None:
    book = make_book([SOL_USDC, STABLE_EMODE, WETH_USDC])
    market = market_state_from_prices(SYMBOLS, "2023-06-15")
    cache = LevelCache()
    first = cache.levels_for(book, market, FAST, now=0.0)
    assert cache.recomputed == 3
    again = cache.levels_for(book, market, FAST, now=12.0)
    assert cache.recomputed == 0 and np.array_equal(again.levels, first.levels)
    direct = position_levels(book, market, FAST)
    assert np.array_equal(first.levels, direct.levels) and first.reasons == direct.reasons
    # a price move changes HF (probability follows at once) but not the composition: no recompute
    moved = replace(book, collateral=book.collateral * 0.97)
    after = cache.levels_for(moved, market, FAST, now=24.0)
    assert cache.recomputed == 0 and (after.probability[0] >= first.probability[0]).all()
    # one position changes its mix: only it is recomputed
    mixed = replace(book, collateral=book.collateral.copy())
    mixed.collateral[2, SYMBOLS.index("WBTC")] = 100_000.0
    cache.levels_for(mixed, market, FAST, now=36.0)
    assert cache.recomputed == 1
    # the volatility state moves (a crash day enters the EWMA): everything is recomputed
    cache.levels_for(mixed, market_state_from_prices(SYMBOLS, "2023-06-16"), FAST, now=48.0)
    assert cache.recomputed == 0
    cache.levels_for(mixed, market_state_from_prices(SYMBOLS, "2022-11-10"), FAST, now=60.0)
    assert cache.recomputed == 3
    cache.levels_for(mixed, market_state_from_prices(SYMBOLS, "2022-11-10"), FAST, now=60.0 + 86_400)
    assert cache.recomputed == 3  # recompute_after_s


def test_validation_names_the_field() -> None:
    for bad, needle in [
        (replace(FAST, reaction_hours=(1.0, 24.0, 4.0)), "reaction_hours"),
        (replace(FAST, alarm_cost_usd=(1.0, 0.0, 1.0)), "alarm_cost_usd"),
        (replace(FAST, hard_levels=(1.0, 1.2, 1.1)), "hard_levels"),
        (replace(FAST, paths=10), "paths"),
        (replace(FAST, ewma_lambda=1.0), "ewma_lambda"),
    ]:
        with pytest.raises(InputError, match=needle):
            bad.validate()
    book = make_book([SOL_USDC])
    with pytest.raises(InputError, match="do not match"):
        position_levels(book, market_state_from_prices(("WETH", "USDC")), FAST)
    with pytest.raises(InputError, match="observe_hours"):
        position_levels(book, market_state_from_prices(SYMBOLS), FAST, observe_hours=-1.0)


def realistic_book(n: int, seed: int = 2) -> Book:
    """Stable eMode, loops, blue-chip/stable, alt/stable and multi-collateral, heavy-tailed sizes."""
    rng = np.random.default_rng(seed)
    a = len(SYMBOLS)
    c, d = np.zeros((n, a)), np.zeros((n, a))
    size = np.exp(rng.normal(9.0, 1.5, n))
    kind = rng.random(n)
    for i in range(n):
        if kind[i] < 0.2:
            c[i, 1], d[i, 2] = size[i], size[i] * 0.9
        elif kind[i] < 0.3:
            c[i, 3], d[i, 3] = size[i], size[i] * 0.85
        elif kind[i] < 0.6:
            c[i, rng.integers(3, 5)], d[i, rng.integers(1, 3)] = size[i], size[i] * 0.5
        elif kind[i] < 0.75:
            c[i, 0], d[i, 1] = size[i], size[i] * 0.4
        else:
            picks = rng.choice([0, 1, 2, 3, 4], int(rng.integers(2, 4)), replace=False)
            c[i, picks] = size[i] * rng.dirichlet(np.ones(picks.size))
            d[i, rng.integers(1, 3)] = size[i] * 0.5
    lt = np.full((n, a), 0.8)
    return Book("m", 0, tuple(f"0x{i:040x}" for i in range(n)), SYMBOLS, np.ones(a), c, d, lt, lt * 0.9,
                np.full((n, a), 1.05))  # fmt: skip


def test_two_thousand_positions_in_one_call_are_fast() -> None:
    """The backtest calls the policy for ~2,000 positions at many dates (0.1 s measured on one
    core; the bound leaves room for a loaded CI machine)."""
    book = realistic_book(2000)
    market = market_state_from_prices(SYMBOLS, "2022-06-10")
    position_levels(book, market, PolicyConfig())  # warm
    start = time.perf_counter()
    pl = position_levels(book, market, PolicyConfig(), observe_hours=24.0)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, elapsed
    assert pl.size == 2000 and len(set(pl.classes)) > 20
    # the daemon's block: levels from the cache, only P(HF < 1) at the new HF recomputed (~12 ms measured)
    cache = LevelCache()
    cache.levels_for(book, market, PolicyConfig(), now=0.0)
    start = time.perf_counter()
    cache.levels_for(book, market, PolicyConfig(), now=12.0)
    assert cache.recomputed == 0 and time.perf_counter() - start < 0.25


def test_miss_cost_follows_the_protocols_close_factor_rule() -> None:
    big, small = SOL_USDC, leg({"SOL": 1_500}, {"USDC": 900}, 0.75, 1.10)
    book = make_book([big, small])
    market = market_state_from_prices(SYMBOLS)
    half = miss_costs(book, market, FAST)  # Aave 3.0-3.2: 50 % of the debt
    assert half.tolist() == pytest.approx([0.5 * 60_000 * 0.10, 0.5 * 900 * 0.10])
    v33 = miss_costs(replace(book, close_factor="v33"), market, FAST)  # small positions: the whole reserve debt
    assert v33.tolist() == pytest.approx([0.5 * 60_000 * 0.10, 900 * 0.10])
    full = miss_costs(replace(book, close_factor="full"), market, FAST)  # Morpho / Comet
    assert full.tolist() == pytest.approx([60_000 * 0.10, 900 * 0.10])
    levels = position_levels(replace(book, close_factor="full"), market, FAST).levels
    assert (levels[0] >= position_levels(book, market, FAST).levels[0]).all()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 700), lam=st.sampled_from([0.94, 0.9974]))
def test_ewma_closed_form_equals_the_recursion(seed: int, rows: int, lam: float) -> None:
    rng = np.random.default_rng(seed)
    r = rng.standard_t(3, (rows, 3)) * 0.03
    present = rng.random((rows, 3)) > 0.2
    sq = np.where(present, r * r, 0.0)
    start = rng.uniform(1e-4, 1e-2, 3)
    ex, last = ewma_ex_ante(sq, present, lam, start)
    var = start.copy()
    for i in range(rows):
        assert np.allclose(ex[i], var, rtol=1e-9)
        var = np.where(present[i], lam * var + (1 - lam) * sq[i], var)
    assert np.allclose(last, var, rtol=1e-9)


def test_stablecoins_without_history_are_not_modelled_as_volatile() -> None:
    """Before 2021 the shipped data has no USDC or DAI: they follow the peg prior, not ETH."""
    book = make_book([STABLE_EMODE, WETH_USDC])
    market = market_state_from_prices(SYMBOLS, "2020-03-11")
    assert np.isnan(market.log_returns[:, 1:3]).all()
    pl = position_levels(book, market, FAST)
    assert pl.levels[0, 1] <= 1.03 and pl.vol_daily[0] < 0.01
    # a stablecoin held at exactly 1 (zero returns, as a backtest fills it) is flat, not missing
    flat = replace(market, log_returns=np.where(np.isnan(market.log_returns), 0.0, market.log_returns))
    held = position_levels(book, flat, FAST)
    assert held.levels[0].tolist() == [1.0, 1.0, 1.0] and held.vol_daily[0] == 0.0
    assert held.levels[1, 1] == pytest.approx(pl.levels[1, 1], rel=0.05)


def test_levels_for_other_costs_come_from_the_same_curves() -> None:
    """What a backtest does at several alarm-cost settings equals a direct call with those costs."""
    book = make_book([SOL_USDC, STABLE_EMODE, WETH_USDC, WETH_LOOP])
    market = market_state_from_prices(SYMBOLS, "2022-11-07")
    pl = position_levels(book, market, FAST)
    for k in (0.1, 3.0):
        cheap = replace(FAST, alarm_cost_usd=tuple(k * c for c in FAST.alarm_cost_usd))  # type: ignore[arg-type]
        direct = position_levels(book, market, cheap).levels
        bounds = (FAST.min_probability, FAST.max_probability)
        levels, binding = levels_for_costs(pl.curves, pl.miss_cost_usd, cheap.alarm_cost_usd, bounds=bounds)
        assert np.array_equal(levels, direct) and not binding.any()
    cheaper = levels_for_costs(pl.curves, pl.miss_cost_usd, np.asarray(FAST.alarm_cost_usd) * 0.1)[0]
    assert (cheaper >= pl.levels).all() and (cheaper[:3, 1] > pl.levels[:3, 1]).all()  # cheaper alarms: earlier


def test_probability_targets_are_bounded_whatever_the_size() -> None:
    """p_s = clip(alarm_cost_s / miss_cost, min_probability_s, max_probability_s): a position whose
    penalty is below one alarm's cost is still alerted (at max_probability), a huge one is not
    alerted on less than min_probability; between the bounds the level follows the size."""
    sizes = (200.0, 6_000.0, 60_000.0, 6_000_000.0)  # debt USD, same composition (HF ~1.37)
    book = make_book([leg({"WETH": d / 0.6}, {"USDC": d}, 0.83, 1.05) for d in sizes])
    market = market_state_from_prices(SYMBOLS, "2022-06-01")
    pl = position_levels(book, market, FAST)
    miss = pl.miss_cost_usd
    assert miss[0] < FAST.alarm_cost_usd[1] < miss[-1]
    unbounded = levels_for_costs(pl.curves, miss, FAST.alarm_cost_usd)[0]
    assert (unbounded[0, 1:] == 1.0).all()  # unbounded: the small position is never warned (penalty $5 < $10)
    lo, hi = np.asarray(FAST.min_probability), np.asarray(FAST.max_probability)
    prob = np.column_stack([probability_at(pl, pl.levels[:, s])[:, s] for s in range(3)])  # P at each level
    assert (pl.levels[0] > 1.0).all()
    np.testing.assert_allclose(prob[0, 1:], hi[1:], rtol=0.02)  # the small one: warned at max_probability
    np.testing.assert_allclose(prob[3], lo, rtol=0.02)  # the huge one: never on less than min_probability
    assert (pl.levels[3] < unbounded[3]).all()
    assert (np.diff(pl.levels[:, 1]) >= 0).all() and pl.levels[2, 1] > pl.levels[1, 1]  # bigger: earlier
    assert (prob >= lo * 0.98).all() and (prob <= hi * 1.02).all()

def test_probability_bounds_are_validated() -> None:
    with pytest.raises(InputError, match="min_probability"):
        replace(FAST, min_probability=(0.0, 0.01, 0.01)).validate()
    with pytest.raises(InputError, match="max_probability"):
        replace(FAST, max_probability=(0.5, 1.5, 0.2)).validate()
    with pytest.raises(InputError, match="must not exceed"):
        replace(FAST, min_probability=(0.6, 0.01, 0.01)).validate()
