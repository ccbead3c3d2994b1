"""Backtest mechanics: episode counting, lead-window credit, day-0 exclusion, hysteresis,
adverse intraday points, reactions, non-overlapping windows, walk-forward folds, no lookahead."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from monitor.errors import InputError
from monitor.risk import backtest as bt
from monitor.risk import backtest_data as bd
from monitor.risk.backtest_book import realistic_book
from monitor.risk.book import Book
from monitor.risk.episodes import NO_LIQUIDATION, score_episodes
from monitor.risk.policy import MarketState, PolicyConfig, position_levels
from monitor.risk.scenarios import HISTORICAL_EVENTS
from monitor.risk.thresholds import SEVERITIES

WARNING = SEVERITIES.index("warning")
FAST = PolicyConfig(paths=300)


def _book(collateral: list[list[float]], debt: list[list[float]], symbols: tuple[str, ...], lt: float = 0.8) -> Book:
    c = np.asarray(collateral, dtype=np.float64)
    d = np.asarray(debt, dtype=np.float64)
    n, a = c.shape
    return Book(
        "test", 0, tuple(f"0x{i:040x}" for i in range(n)), symbols, np.ones(a), c, d,
        np.full((n, a), lt), np.full((n, a), lt - 0.05), np.full((n, a), 1.05),
    )  # fmt: skip


ETH_USDC = _book([[1000.0, 0.0]], [[0.0, 640.0]], ("WETH", "USDC"))  # HF 1.25, long ETH


def _mult(eth: list[float]) -> np.ndarray:
    """Multipliers [X+1, 2]: row 0 = 1, then the ETH path; USDC stays 1."""
    e = np.concatenate([[1.0], np.asarray(eth, dtype=np.float64)])
    return np.column_stack([e, np.ones_like(e)])


def _replay(
    book: Book, close: np.ndarray, low: np.ndarray | None = None, high: np.ndarray | None = None, **kw: object
) -> bt.WindowReplay:
    args: dict[str, object] = {
        "fixed_levels": (1.2,), "window_bars": close.shape[0] - 1, "step_hours": 24.0,
        "severity_rank": WARNING, "exit_margin": 0.02, "min_dwell_s": 0.0,
    }  # fmt: skip
    args.update(kw)
    return bt.replay_window(book, close, close if low is None else low, close if high is None else high, **args)  # type: ignore[arg-type]


# -- episode scoring -------------------------------------------------------------------------


def _began(t_n: int, starts: list[list[int]]) -> np.ndarray:
    b = np.zeros((t_n + 1, 1, len(starts)), dtype=bool)
    for p, ts in enumerate(starts):
        for t in ts:
            b[t, 0, p] = True
    return b


def test_credit_only_for_an_episode_that_begins_within_the_lead_window() -> None:
    # p0: episode at 5, liquidated at 7 (lead 2 <= 3): warned
    # p1: episode at 2, liquidated at 9 (7 bars later > 3): a miss AND a false alarm
    # p2: episode at 8, never liquidated: a false alarm
    # p3: episodes at 2 and 6, liquidated at 8: the one at 6 credits (lead 2), the one at 2 is a false alarm
    began = _began(10, [[5], [2], [8], [2, 6]])
    liq = np.array([[7, 9, NO_LIQUIDATION, 8]])
    sc = score_episodes(began, liq, 10, 3)
    assert sc.liquidated.tolist() == [[True, True, False, True]]
    assert sc.warned.tolist() == [[True, False, False, True]]
    assert sc.lead_bars[0, 0] == 2.0 and np.isnan(sc.lead_bars[0, 1]) and sc.lead_bars[0, 3] == 2.0
    assert sc.false_alarms.tolist() == [[0, 1, 1, 1]]
    assert sc.true_alarms.tolist() == [[1, 0, 0, 1]]


def test_the_earliest_episode_in_the_lead_window_sets_the_lead() -> None:
    sc = score_episodes(_began(10, [[4, 6]]), np.array([[7]]), 10, 3)
    assert sc.warned[0, 0] and sc.lead_bars[0, 0] == 3.0
    assert sc.false_alarms[0, 0] == 0 and sc.true_alarms[0, 0] == 2


def test_an_episode_open_at_the_window_start_earns_no_credit_but_is_an_alarm() -> None:
    # p0: opened in warning, liquidated at 2: no credit (a miss), neither credit nor false alarm
    # p1: opened in warning, never liquidated: a false alarm
    # p2: opened in warning, liquidated at 6 (> 3 bars after the start): miss and false alarm
    sc = score_episodes(_began(10, [[0], [0], [0]]), np.array([[2, NO_LIQUIDATION, 6]]), 10, 3)
    assert sc.warned.tolist() == [[False, False, False]]
    assert sc.open_at_start.tolist() == [[True, True, True]]
    assert sc.false_alarms.tolist() == [[0, 1, 1]]
    assert sc.neutral.tolist() == [[1, 0, 0]]


def test_a_liquidation_in_the_tail_resolves_an_episode_as_neutral() -> None:
    sc = score_episodes(_began(10, [[9]]), np.array([[11]]), 10, 3)
    assert not sc.liquidated[0, 0] and not sc.warned[0, 0]
    assert (sc.false_alarms[0, 0], sc.true_alarms[0, 0], sc.neutral[0, 0]) == (0, 0, 1)


def test_a_warning_at_the_liquidation_bar_close_is_too_late() -> None:
    # the episode begins at the close of bar 4 and bar 4's low liquidated: no credit
    sc = score_episodes(_began(10, [[4]]), np.array([[4]]), 10, 3)
    assert not sc.warned[0, 0] and sc.false_alarms[0, 0] == 1


# -- the replay ------------------------------------------------------------------------------


def test_hysteresis_makes_one_episode_while_hf_stays_in_the_exit_band() -> None:
    # HF = 1.25 x ETH: 1.1875 (enter 1.2) -> 1.21875 (inside 1.2 x 1.02 = 1.224) -> 1.1875 -> 1.25 (out) -> 1.1875
    rep = _replay(ETH_USDC, _mult([0.95, 0.975, 0.95, 1.0, 0.95, 1.0]))
    assert np.flatnonzero(rep.began[:, 0, 0]).tolist() == [1, 5]
    no_margin = _replay(ETH_USDC, _mult([0.95, 0.975, 0.95, 1.0, 0.95, 1.0]), exit_margin=0.0)
    assert np.flatnonzero(no_margin.began[:, 0, 0]).tolist() == [1, 3, 5]


def test_dwell_keeps_the_episode_until_it_has_lasted() -> None:
    path = _mult([0.95, 1.0, 0.95, 1.0, 1.0, 0.95])
    quick = _replay(ETH_USDC, path, min_dwell_s=0.0)
    slow = _replay(ETH_USDC, path, min_dwell_s=3 * 86400.0)  # 3 days at the level before leaving it
    assert np.flatnonzero(quick.began[:, 0, 0]).tolist() == [1, 3, 6]
    assert np.flatnonzero(slow.began[:, 0, 0]).tolist() == [1, 6]


def test_a_fixed_rule_re_arms_at_its_critical_step_and_the_escalation_is_a_notification() -> None:
    # fixed 1.20 with step 0.5: critical at 1.10. HF = 1.25 x ETH: 1.1875 (warning) on day 1 ->
    # 1.09 (critical, day 4: a new notification, the daemon's severity_up) -> liquidated on day 6
    path = _mult([0.95, 0.95, 0.95, 0.872, 0.872, 0.78, 0.78])
    rep = _replay(ETH_USDC, path, fixed_critical_step=0.5)
    assert np.flatnonzero(rep.began[:, 0, 0]).tolist() == [1, 4] and rep.liq_bar[0, 0] == 6
    assert rep.severity[1, 0, 0] == WARNING and rep.severity[4, 0, 0] == SEVERITIES.index("critical")
    once = _replay(ETH_USDC, path, fixed_critical_step=0.5, rearm=False)  # episode starts only
    assert np.flatnonzero(once.began[:, 0, 0]).tolist() == [1]
    single = _replay(ETH_USDC, path, fixed_critical_step=1.0)  # one level: straight to critical, no re-arm
    assert np.flatnonzero(single.began[:, 0, 0]).tolist() == [1]
    # per-notification counting: the re-arm on day 4 is within the 3-day lead window and credited
    # (lead 2 days); the first message (5 days before) is then a false alarm; episode counting
    # misses the liquidation and counts the same one false alarm
    sc = score_episodes(rep.began, rep.liq_bar, 7, 3)
    assert sc.warned[0, 0] and sc.lead_bars[0, 0] == 2 and sc.false_alarms[0, 0] == 1
    sc_once = score_episodes(once.began, once.liq_bar, 7, 3)
    assert not sc_once.warned[0, 0] and sc_once.false_alarms[0, 0] == 1


def test_liquidation_at_the_low_and_debt_in_a_volatile_asset_at_the_high() -> None:
    close = _mult([0.95, 0.90, 0.86, 0.88])
    low = close.copy()
    low[3, 0] = 0.79  # HF 0.9875 at the low of bar 3
    rep = _replay(ETH_USDC, close, low)
    assert rep.liq_bar[0, 0] == 3
    assert rep.debt_at_liq[0, 0] == pytest.approx(640.0)
    short = _book([[0.0, 1000.0]], [[640.0, 0.0]], ("WETH", "USDC"))  # HF 1.25 / ETH
    c2 = _mult([1.05, 1.06, 1.04])
    high = c2.copy()
    high[2, 0] = 1.3
    assert _replay(short, c2, c2, high).liq_bar[0, 0] == 2
    assert _replay(short, c2).liq_bar[0, 0] == NO_LIQUIDATION


def test_a_reacting_user_restores_the_hf_and_is_not_liquidated() -> None:
    # warned at close 1 (HF 1.1875 <= 1.2), restores HF 1.25 at close 2; then ETH -22 % from the start
    path = _mult([0.95, 0.94, 0.9, 0.78, 0.79])  # restored x 1.25 / (1.25 x 0.94): HF 1.037 at 0.78
    plain = _replay(ETH_USDC, path)
    reacts = _replay(ETH_USDC, path, reacts=np.array([True]), react_bars=1)
    assert plain.liq_bar[0, 0] == 4
    assert reacts.liq_bar[0, 0] == NO_LIQUIDATION


# -- windows and folds -----------------------------------------------------------------------


def test_windows_do_not_overlap_and_folds_never_fit_on_their_test_period() -> None:
    px = bd.shipped_daily()
    s = bt.Settings()
    plan = bt.plan_windows(px, s)
    gaps = np.diff(plan.starts)
    assert (gaps == plan.window_bars).all()  # consecutive windows share no bar
    assert plan.window_bars == 30 and plan.lead_bars == 3
    assert px.day(plan.test[0]).startswith("2020-01-01")
    tested: set[str] = set()
    for fold in plan.folds:
        first_test = min(fold["test"])
        assert fold["train"], "every fold of 2020-2023 has a past to fit on"
        assert all(b + plan.window_bars + plan.lead_bars <= first_test for b in fold["train"])
        assert not set(fold["train"]) & set(fold["test"])
        for name in fold["crashes"]:
            tested.add(name)
            ev = HISTORICAL_EVENTS[name]
            lo = int(pd.Timestamp(ev.start).timestamp())
            for b in fold["train"]:
                assert int(px.times[b + plan.window_bars + plan.lead_bars]) < lo  # the crash is after the fit
    assert tested == set(HISTORICAL_EVENTS)  # every named crash is tested out of sample


def test_settings_and_plan_errors_name_the_value() -> None:
    px = bd.shipped_daily()
    with pytest.raises(InputError, match="window-days"):
        bt.Settings(window_days=0).validate()
    with pytest.raises(InputError, match="severity"):
        bt.Settings(severity="loud").validate()
    with pytest.raises(InputError, match="after the end of the prices"):
        bt.plan_windows(px, bt.Settings(test_start="2030-01-01"))


def test_bootstrap_weights_draw_every_window_count_once_per_replicate() -> None:
    w = bt._bootstrap_weights(10, 3, 50, np.random.default_rng(1))
    assert w.shape == (50, 10) and (w.sum(axis=1) == 10).all()
    assert not (w == 1).all()


def test_frontier_interpolates_between_efficient_points_only() -> None:
    # (0.45, 120) and (0.15, 400) are dominated; the frontier is (0, 0), (0.1, 10), (0.3, 30), (0.5, 100)
    recalls = np.array([0.0, 0.1, 0.3, 0.5, 0.45, 0.15])
    fas = np.array([0.0, 10.0, 30.0, 100.0, 120.0, 400.0])
    assert bt.frontier_at(recalls, fas, 0.2) == pytest.approx(20.0)
    assert bt.frontier_at(recalls, fas, 0.4) == pytest.approx(65.0)
    assert bt.frontier_at(recalls, fas, 0.5) == pytest.approx(100.0)
    assert bt.frontier_at(recalls, fas, 0.05) == pytest.approx(5.0)
    assert bt.frontier_at(recalls[1:], fas[1:], 0.05) == pytest.approx(10.0)  # below the lowest point: its count
    assert np.isnan(bt.frontier_at(recalls, fas, 0.6))


# -- the policy in the backtest ------------------------------------------------------------


def _window_inputs(px: bd.PriceSet, b: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    base = px.close[b]
    return px.close[b : hi + 1] / base, px.low[b : hi + 1] / base, px.high[b : hi + 1] / base


def test_cost_multiple_levels_equal_a_direct_policy_call() -> None:
    cb = realistic_book(120, seed=3)
    px = bd.book_prices(bd.shipped_daily(), cb.book.symbols).prices
    b = px.index_at(pd.Timestamp("2022-06-01"))
    market = MarketState(px.symbols, bd.log_returns(px.close)[b - 400 : b], 24.0)
    rows = np.flatnonzero(np.isfinite(px.close[b]) | True)
    book = cb.book.with_rows(rows)
    pl = position_levels(book, market, FAST, observe_hours=24.0)
    hard = FAST.hard_for(book.market, book.accounts)
    assert np.array_equal(bt.levels_at_cost_multiple(pl, FAST, 1.0, hard), pl.levels)
    for k in (0.1, 4.0):
        direct = position_levels(book, market, bt.scaled_config(FAST, k), observe_hours=24.0).levels
        np.testing.assert_allclose(bt.levels_at_cost_multiple(pl, FAST, k, hard), direct, rtol=0, atol=1e-12)


def test_no_lookahead_later_prices_change_no_decision_up_to_t() -> None:
    cb = realistic_book(60, seed=5)
    px = bd.book_prices(bd.shipped_daily(), cb.book.symbols).prices
    b = px.index_at(pd.Timestamp("2022-05-01"))  # Terra/LUNA inside the window
    t_w, tail, t0 = 20, 3, 9
    hi = b + t_w + tail
    book = cb.book
    ok = np.isfinite(px.close[b - 400 : hi + 1]).all(axis=0)
    assert ok.all()

    def run(p: bd.PriceSet) -> bt.WindowReplay:
        fn = bt._policy_fn(FAST, (1.0, 5.0), bd.log_returns(p.close), b, 400, p, 24.0)
        m_c, m_l, m_h = _window_inputs(p, b, hi)
        return bt.replay_window(
            book, m_c, m_l, m_h, fixed_levels=(1.1, 1.3), policy=fn, n_policy=2, window_bars=t_w, step_hours=24.0,
            severity_rank=WARNING, exit_margin=FAST.exit_margin, min_dwell_s=FAST.min_dwell_s,
        )  # fmt: skip

    before = run(px)
    rng = np.random.default_rng(0)
    shock = np.ones_like(px.close)
    shock[b + t0 + 1 :] = np.exp(rng.normal(0.0, 0.3, shock[b + t0 + 1 :].shape))
    changed = replace(px, close=px.close * shock, low=px.low * shock * 0.9, high=px.high * shock * 1.1)
    after = run(changed)
    assert np.array_equal(before.severity[: t0 + 1], after.severity[: t0 + 1])
    assert np.array_equal(before.began[: t0 + 1], after.began[: t0 + 1])
    early = before.liq_bar <= t0
    assert np.array_equal(before.liq_bar[early], after.liq_bar[early])
    assert (after.liq_bar[~early] > t0).all()
    assert not np.array_equal(before.severity, after.severity)  # the later prices did matter
