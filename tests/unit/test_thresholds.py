"""Severity mechanics and reference math: normal quantiles, the reflection formula, hysteresis, covariance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import settings
from numpy.typing import ArrayLike, NDArray

from monitor.errors import InputError
from monitor.risk.book import Book
from monitor.risk.thresholds import (
    SEVERITIES,
    Levels,
    ThresholdPolicy,
    covariance_for,
    norm_cdf,
    norm_ppf,
    raw_severity,
    step_severity,
)
from monitor.risk.volatility import asset_covariance

Array = NDArray[np.float64]
FAST = settings(max_examples=200, deadline=None)
DAY = 86400.0


def make_book(collateral: ArrayLike, debt: ArrayLike, lt: ArrayLike, symbols: tuple[str, ...]) -> Book:
    c = np.atleast_2d(np.asarray(collateral, dtype=np.float64))
    d = np.atleast_2d(np.asarray(debt, dtype=np.float64))
    n, a = c.shape
    lt_pa = np.broadcast_to(np.asarray(lt, dtype=np.float64), (n, a)).copy()
    return Book(
        "test", 1, tuple(f"0x{i:040x}" for i in range(n)), symbols, np.ones(a), c, d, lt_pa, lt_pa * 0.95,
        np.full((n, a), 1.05),
    )  # fmt: skip


# -- normal distribution -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "z"),
    [
        (0.5, 0.0),
        (0.975, 1.959963984540054),
        (0.995, 2.5758293035489004),
        (0.9995, 3.2905267314919255),
        (0.95, 1.6448536269514722),
        (0.8413447460685429, 1.0),
        (0.02275013194817921, -2.0),
        (0.01, -2.3263478740408408),
        (1e-10, -6.361340902404056),
    ],
)
def test_ppf_known_quantiles(p: float, z: float) -> None:
    assert float(norm_ppf(p)) == pytest.approx(z, abs=1e-9)


@pytest.mark.parametrize(
    ("x", "p"),
    [
        (0.0, 0.5),
        (1.0, 0.8413447460685429),
        (-1.96, 0.024997895148220435),
        (-5.0, 2.866515718791939e-07),
        (-10.0, 7.619853024160527e-24),
        (3.0, 0.9986501019683699),
    ],
)
def test_cdf_known_values(x: float, p: float) -> None:
    assert float(norm_cdf(x)) == pytest.approx(p, rel=1e-12)


def test_ppf_inverts_cdf_across_the_range() -> None:
    ps = np.concatenate([np.logspace(-300, -1, 1500), np.linspace(0.01, 0.99, 1999), 1 - np.logspace(-15, -2, 300)])
    back = norm_cdf(norm_ppf(ps))
    lower = ps <= 0.5
    assert np.max(np.abs(back[lower] / ps[lower] - 1)) < 1e-11
    assert np.max(np.abs(back - ps)) < 1e-15


def test_ppf_edges_and_errors() -> None:
    assert norm_ppf([0.0, 1.0]).tolist() == [-math.inf, math.inf]
    assert norm_ppf([[0.025, 0.975]]).shape == (1, 2)
    for bad in (-0.1, 1.1, math.nan):
        with pytest.raises(InputError):
            norm_ppf(bad)


# -- hysteresis parameters ------------------------------------------------------------------------


def test_hysteresis_validation() -> None:
    assert ThresholdPolicy().validate() == ThresholdPolicy()
    for policy in (ThresholdPolicy(exit_margin=-0.01), ThresholdPolicy(min_dwell_s=-1.0),
                   ThresholdPolicy(exit_margin=math.nan)):  # fmt: skip
        with pytest.raises(InputError):
            policy.validate()
        with pytest.raises(InputError):
            step_severity(np.array([0]), np.array([0.0]), np.array([1.2]), fixed_levels(), 0.0, policy)


def test_levels_from_the_policy_matrix() -> None:
    lv = Levels.from_matrix([[1.4, 1.2, 1.1], [1.01, 1.005, 1.001]])
    assert lv.warning.tolist() == [1.2, 1.005] and lv.enter()[:, 3].tolist() == [1.0, 1.0]
    assert raw_severity(np.array([1.15, 1.004]), lv).tolist() == [2, 2]
    with pytest.raises(InputError):
        Levels.from_matrix([[1.2, 1.1]])


# -- severities -----------------------------------------------------------------------------


def fixed_levels(n: int = 1) -> Levels:
    return Levels(np.full(n, 1.25), np.full(n, 1.10), np.full(n, 1.05))


def test_raw_severity_boundaries() -> None:
    hf = np.array([0.9999, 1.0, 1.05, 1.0500001, 1.10, 1.1000001, 1.25, 1.2500001, math.inf])
    sev = raw_severity(hf, fixed_levels(len(hf)))
    assert sev.tolist() == [4, 3, 3, 2, 2, 1, 1, 0, 0]
    assert [SEVERITIES[s] for s in sev[:3]] == ["liquidatable", "critical", "critical"]


def test_step_escalation_is_immediate() -> None:
    policy = ThresholdPolicy()
    sev, since = step_severity(np.array([0]), np.array([0.0]), np.array([1.04]), fixed_levels(), 10.0, policy)
    assert sev.tolist() == [3] and since.tolist() == [10.0]
    sev, since = step_severity(sev, since, np.array([0.99]), fixed_levels(), 11.0, policy)
    assert sev.tolist() == [4] and since.tolist() == [11.0]


def test_step_no_deescalation_within_dwell() -> None:
    policy = ThresholdPolicy()
    sev, since = step_severity(np.array([3]), np.array([0.0]), np.array([2.0]), fixed_levels(), 299.0, policy)
    assert sev.tolist() == [3] and since.tolist() == [0.0]


def test_step_no_deescalation_inside_exit_band() -> None:
    policy = ThresholdPolicy()  # critical enter 1.05 -> exit above 1.05 * 1.02 = 1.071
    sev, since = step_severity(np.array([3]), np.array([0.0]), np.array([1.07]), fixed_levels(), 10_000.0, policy)
    assert sev.tolist() == [3] and since.tolist() == [0.0]


def test_step_deescalation_after_dwell_above_band() -> None:
    policy = ThresholdPolicy()
    lv = fixed_levels(4)
    prev = np.array([3, 3, 3, 4])
    hf = np.array([1.072, 1.13, 3.0, 1.03])
    sev, since = step_severity(prev, np.zeros(4), hf, lv, 300.0, policy)
    # 1.072: above critical's band (1.071) but within warning's (1.122) -> warning;
    # 1.13: above warning's band too, within watch's (1.275) -> watch; 3.0 -> ok;
    # liquidatable at 1.03 (> 1.02 band) steps down to critical, not lower
    assert sev.tolist() == [2, 1, 0, 3]
    assert since.tolist() == [300.0] * 4


def test_step_keeps_state_and_validates() -> None:
    policy = ThresholdPolicy()
    sev, since = step_severity(np.array([2]), np.array([5.0]), np.array([1.09]), fixed_levels(), 1e6, policy)
    assert sev.tolist() == [2] and since.tolist() == [5.0]
    with pytest.raises(InputError):
        step_severity(np.array([5]), np.array([0.0]), np.array([1.2]), fixed_levels(), 0.0, policy)
    with pytest.raises(InputError):
        step_severity(np.array([1]), np.array([math.nan]), np.array([1.2]), fixed_levels(), 0.0, policy)


def simulate(
    seed: int, innovation: float, n_steps: int = 1000, dt: float = 12.0
) -> tuple[int, list[tuple[float, int, int]]]:
    """HF wandering around the warning level 1.10 (mean-reverting log deviation, one step per 12 s block).

    Returns the number of severity changes without memory, and the (time, from, to) transitions of
    :func:`step_severity`."""
    policy = ThresholdPolicy()
    rng = np.random.default_rng(seed)
    x = np.zeros(n_steps)
    for i in range(1, n_steps):
        x[i] = 0.9 * x[i - 1] + rng.normal(0.0, innovation)
    hf_path = 1.10 * np.exp(x)
    lv = fixed_levels()
    sev, since = raw_severity(hf_path[:1], lv), np.array([0.0])
    transitions: list[tuple[float, int, int]] = []
    for i in range(1, n_steps):
        new, since = step_severity(sev, since, hf_path[i : i + 1], lv, i * dt, policy)
        if new[0] != sev[0]:
            transitions.append((i * dt, int(sev[0]), int(new[0])))
        sev = new
    naive = int((np.diff(raw_severity(hf_path, lv)) != 0).sum())
    return naive, transitions


def deescalations_wait_out_the_dwell(transitions: list[tuple[float, int, int]], dwell: float) -> bool:
    last = -math.inf
    for t, old, new in transitions:
        if new < old and t - last < dwell:
            return False
        last = t
    return True


@pytest.mark.parametrize("seed", range(5))
def test_noisy_hf_around_a_level_at_most_one_transition_per_dwell(seed: int) -> None:
    """1,000 steps (40 dwell periods) of noise with sd ~1.15 %, about half the 2 % exit band."""
    dwell = ThresholdPolicy().min_dwell_s
    naive, transitions = simulate(seed, 0.005)
    periods = 999 * 12.0 / dwell
    assert naive > 100  # without memory the alert flaps constantly
    assert len(transitions) <= periods + 1
    assert deescalations_wait_out_the_dwell(transitions, dwell)


@pytest.mark.parametrize("seed", range(5))
def test_noise_wider_than_the_exit_band_is_still_bounded(seed: int) -> None:
    """With noise (sd ~2.3 %) wider than the exit band, re-escalation right after a de-escalation is
    possible (escalation is immediate), so the bound is one DE-escalation per dwell period."""
    dwell = ThresholdPolicy().min_dwell_s
    naive, transitions = simulate(seed, 0.01)
    periods = 999 * 12.0 / dwell
    downs = sum(1 for _, old, new in transitions if new < old)
    assert deescalations_wait_out_the_dwell(transitions, dwell)
    assert downs <= periods + 1
    assert len(transitions) <= 2 * (periods + 1)
    assert len(transitions) < naive / 2


def test_step_vectorised_matches_scalar_loop() -> None:
    rng = np.random.default_rng(2)
    policy = ThresholdPolicy()
    n = 50
    lv = Levels.from_matrix(np.sort(rng.uniform(1.0, 1.5, (n, 3)), axis=1)[:, ::-1])
    prev = rng.integers(0, 5, n)
    since = rng.uniform(0, 600, n)
    hf = rng.uniform(0.95, 1.6, n)
    sev, new_since = step_severity(prev, since, hf, lv, 600.0, policy)
    for i in range(n):
        one = Levels(lv.watch[i : i + 1], lv.warning[i : i + 1], lv.critical[i : i + 1])
        s1, t1 = step_severity(prev[i : i + 1], since[i : i + 1], hf[i : i + 1], one, 600.0, policy)
        assert (s1[0], t1[0]) == (sev[i], new_since[i])


# -- covariance for a book -----------------------------------------------------------------------


def ramp_history(days: int, daily_return: float, start_day: int = 19_000) -> list[tuple[float, float]]:
    """Irregular intraday updates whose last price each UTC day is exp(daily_return * k)."""
    rng = np.random.default_rng(days)
    rows: list[tuple[float, float]] = []
    for k in range(days + 1):
        base = (start_day + k) * DAY
        times = np.sort(rng.uniform(0, DAY - 1, 5))
        for t in times[:-1]:
            rows.append((base + t, math.exp(daily_return * k) * rng.uniform(0.9, 1.1)))
        rows.append((base + times[-1], math.exp(daily_return * k)))
    rng.shuffle(rows)  # order does not matter
    return rows


def test_covariance_from_store_history() -> None:
    history = {"weth": ramp_history(40, 0.01), "USDC": ramp_history(40, -0.002)}
    cov, source = covariance_for(["WETH", "USDC"], price_history=history, min_days=30)
    assert source == "store"
    # constant daily returns: the EWMA covariance is exactly r_i * r_j
    assert cov == pytest.approx(np.array([[1e-4, -2e-5], [-2e-5, 4e-6]]), rel=1e-9)


def test_covariance_store_carries_prices_over_days_without_updates() -> None:
    eth = ramp_history(40, 0.01)
    # USDC at 1.0 but not updated on days 10..14: those days carry 1.0 forward (zero returns)
    usdc = [(t, 1.0) for t, _ in ramp_history(40, 0.0) if not 10 <= int(t // DAY) - 19_000 <= 14]
    cov, source = covariance_for(["WETH", "USDC"], price_history={"WETH": eth, "USDC": usdc}, min_days=30)
    assert source == "store"
    assert cov[1, 1] == 0.0 and cov[0, 0] == pytest.approx(1e-4, rel=1e-9)


def test_covariance_short_store_history_falls_back() -> None:
    history = {"WETH": ramp_history(10, 0.01), "USDC": ramp_history(10, 0.0)}
    cov, source = covariance_for(["WETH", "USDC"], price_history=history, min_days=30, end="2023-06-30")
    assert source.startswith("shipped data (")
    assert "10 common days < 30" in source
    assert cov == pytest.approx(asset_covariance(["WETH", "USDC"], "2023-06-30"), rel=1e-12)
    # one symbol missing from the store also falls back
    _, source = covariance_for(["WETH", "USDC"], price_history={"WETH": ramp_history(40, 0.01)}, min_days=30)
    assert "no stored history for USDC" in source


def test_covariance_end_cuts_store_history() -> None:
    history = {"WETH": ramp_history(60, 0.01), "USDC": ramp_history(60, 0.0)}
    # 19_000 days after the epoch is 2022-01-08; ending on 2022-01-28 leaves 20 days
    _, source = covariance_for(["WETH", "USDC"], price_history=history, min_days=30, end="2022-01-28")
    assert source.startswith("shipped data") and "20 common days" in source


def test_covariance_unknown_symbol_gets_median_variance() -> None:
    cov, source = covariance_for(["WETH", "LINK", "USDC", "WBTC"], end="2023-03-31")
    known = asset_covariance(["WETH", "USDC", "WBTC"], "2023-03-31")
    assert "no data for LINK" in source and "zero correlation" in source
    assert cov[1, 1] == pytest.approx(float(np.median(np.diag(known))), rel=1e-12)
    assert cov[1, [0, 2, 3]].tolist() == [0.0, 0.0, 0.0] and cov[[0, 2, 3], 1].tolist() == [0.0, 0.0, 0.0]
    assert cov[np.ix_([0, 2, 3], [0, 2, 3])] == pytest.approx(known, rel=1e-12)
    with pytest.raises(InputError):
        covariance_for(["LINK", "GHO"])
    with pytest.raises(InputError):
        covariance_for([])


def test_covariance_store_rejects_bad_prices() -> None:
    with pytest.raises(InputError):
        covariance_for(["WETH"], price_history={"WETH": [(0.0, 1.0), (DAY, -1.0)]})
