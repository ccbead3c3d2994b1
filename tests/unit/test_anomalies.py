"""Oracle anomalies: stale feeds, jumps (function and adaptive detector), divergence."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from monitor import price_data
from monitor.errors import InputError
from monitor.risk.anomalies import Anomaly, JumpDetector, divergence, jumps, stale_feeds
from monitor.risk.volatility import ewma_volatility

DAY = 86400.0


# -- stale feeds ------------------------------------------------------------------------------


def test_stale_boundary_and_severities() -> None:
    updated = {"ETH": 1_000.0}
    assert stale_feeds(updated, 1_000.0 + 3600 + 300, 3600.0) == []  # exactly heartbeat + margin: fine
    (warn,) = stale_feeds(updated, 1_000.0 + 3901, 3600.0)
    assert (warn.kind, warn.asset, warn.severity, warn.value) == ("stale", "ETH", "warning", 3901.0)
    assert stale_feeds(updated, 1_000.0 + 7800, 3600.0)[0].severity == "warning"  # 2x is still warning
    (crit,) = stale_feeds(updated, 1_000.0 + 7801, 3600.0)
    assert crit.severity == "critical" and "2.2 h" in crit.detail


def test_stale_per_feed_heartbeats() -> None:
    updated = {"ETH": 0.0, "USDC": 0.0}
    found = stale_feeds(updated, 5_000.0, {"ETH": 3600.0, "USDC": 86400.0}, margin_s=0.0)
    assert [(a.asset, a.severity) for a in found] == [("ETH", "warning")]
    assert stale_feeds({"ETH": 10_000.0}, 5_000.0, 3600.0) == []  # updated "in the future": clock skew, not stale
    with pytest.raises(InputError):
        stale_feeds(updated, 5_000.0, {"ETH": 3600.0})
    with pytest.raises(InputError):
        stale_feeds({"ETH": math.nan}, 5_000.0, 3600.0)
    with pytest.raises(InputError):
        stale_feeds(updated, 5_000.0, -1.0)


# -- jumps -------------------------------------------------------------------------------------


def test_jump_known_answer() -> None:
    # |ln 0.97| / (0.02 * sqrt(1/24)) = 0.0304592 / 0.00408248 = 7.4609
    (a,) = jumps({"ETH": 100.0}, {"ETH": 97.0}, 3600.0, {"ETH": 0.02})
    assert (a.kind, a.asset, a.severity) == ("jump", "ETH", "warning")
    assert a.value == pytest.approx(abs(math.log(0.97)) / (0.02 * math.sqrt(1 / 24)), rel=1e-12)
    assert a.value == pytest.approx(7.4609, abs=1e-4)
    (c,) = jumps({"ETH": 100.0}, {"ETH": 95.0}, 3600.0, {"ETH": 0.02})
    assert c.severity == "critical"  # z = 12.56
    assert jumps({"ETH": 100.0}, {"ETH": 98.0}, 3600.0, {"ETH": 0.02}) == []  # z = 4.95


def test_jump_time_floor_sigma_floor_and_unmatched_assets() -> None:
    a = jumps({"ETH": 100.0}, {"ETH": 99.0}, 1.0, {"ETH": 0.02})
    b = jumps({"ETH": 100.0}, {"ETH": 99.0}, 60.0, {"ETH": 0.02})
    assert [x.value for x in a] == [x.value for x in b]  # dt below 60 s counts as 60 s
    assert "in 1 s" in a[0].detail
    # sigma 0 is floored at min_sigma 1e-4: 1 bp in a day is z = 1
    assert jumps({"USDC": 1.0}, {"USDC": 0.9999}, DAY, {"USDC": 0.0}) == []
    (d,) = jumps({"USDC": 1.0}, {"USDC": 0.999}, DAY, {"USDC": 0.0})
    assert d.value == pytest.approx(abs(math.log(0.999)) / 1e-4, rel=1e-12) and d.severity == "critical"
    assert jumps({"ETH": 100.0}, {"BTC": 10.0}, 60.0, {}) == []


def test_jump_rejects_bad_input() -> None:
    for bad in (-1.0, 0.0, math.nan, math.inf):
        with pytest.raises(InputError):
            jumps({"ETH": 100.0}, {"ETH": bad}, 60.0, {"ETH": 0.02})
    with pytest.raises(InputError):
        jumps({"ETH": 100.0}, {"ETH": 99.0}, 60.0, {})
    with pytest.raises(InputError):
        jumps({"ETH": 100.0}, {"ETH": 99.0}, -5.0, {"ETH": 0.02})
    with pytest.raises(InputError):
        jumps({"ETH": 100.0}, {"ETH": 99.0}, 60.0, {"ETH": 0.02}, z_warning=10.0, z_critical=6.0)


def test_usdc_depeg_day_fires_against_calm_vol() -> None:
    calm = ewma_volatility(price_data.log_returns("USDC", "2022-03-01", "2023-03-09").to_numpy())
    assert calm < 5e-4
    closes = price_data.load_daily("USDC")["close"]
    prev, price = float(closes.loc["2023-03-10"]), float(closes.loc["2023-03-11"])  # 0.9995 -> 0.9715
    (a,) = jumps({"USDC": prev}, {"USDC": price}, DAY, {"USDC": calm})
    assert a.severity == "critical" and a.value > 100


def test_detector_over_real_usdc_closes() -> None:
    sigma = ewma_volatility(price_data.log_returns("USDC", "2022-01-01", "2022-12-31").to_numpy())
    det = JumpDetector({"USDC": sigma})
    closes = price_data.load_daily("USDC").loc["2023-01-01":"2023-03-11", "close"]
    fired: dict[str, list[Anomaly]] = {}
    for ts, value in closes.items():
        found = det.observe({"USDC": float(value)}, pd.Timestamp(ts).timestamp())
        if found:
            fired[pd.Timestamp(ts).strftime("%Y-%m-%d")] = found
    assert list(fired) == ["2023-03-11"]  # two calm months, then the SVB weekend
    assert fired["2023-03-11"][0].severity == "critical"


# -- the adaptive detector ---------------------------------------------------------------------------


def gbm(rng: np.random.Generator, n: int, sigma_daily: float, dt: float, p0: float = 2000.0) -> np.ndarray:
    steps = rng.normal(-0.5 * sigma_daily**2 * dt / DAY, sigma_daily * math.sqrt(dt / DAY), n)
    return np.asarray(p0 * np.exp(np.cumsum(steps)))


def test_detector_quiet_on_gbm_noise_and_fires_on_a_crash() -> None:
    rng = np.random.default_rng(42)
    det = JumpDetector({"ETH": 0.03})
    dt = 300.0
    path = gbm(rng, 2000, 0.03, dt)
    alerts = [a for i, p in enumerate(path) for a in det.observe({"ETH": float(p)}, i * dt)]
    assert alerts == []
    assert det.sigma_daily()["ETH"] == pytest.approx(0.03, rel=0.25)
    (crash,) = det.observe({"ETH": float(path[-1]) * 0.7}, 2000 * dt)
    assert crash.severity == "critical" and crash.value > 30 and "-30.00%" in crash.detail
    # the new level is the reference: the next ordinary tick is quiet
    assert det.observe({"ETH": float(path[-1]) * 0.7 * 1.001}, 2001 * dt) == []


def test_detector_false_positive_rate_over_many_assets() -> None:
    rng = np.random.default_rng(7)
    sigmas = {f"A{i}": s for i, s in enumerate((0.001, 0.01, 0.03, 0.08))}
    det = JumpDetector(sigmas)
    paths = {a: gbm(rng, 2000, s, 60.0, 1.0) for a, s in sigmas.items()}
    alerts = [a for i in range(2000) for a in det.observe({k: float(v[i]) for k, v in paths.items()}, i * 60.0)]
    assert len(alerts) <= 1  # 8,000 draws at 6 sigma: expected ~1.6e-5 false positives


def test_detector_adapts_to_a_volatile_regime() -> None:
    rng = np.random.default_rng(1)
    det = JumpDetector({"ETH": 0.01})
    # a 1.5 % move in one hour is 7.3 sigma at 1 %/day ...
    calm = det.observe({"ETH": 100.0}, 0.0) + det.observe({"ETH": 98.5}, 3600.0)
    assert [a.severity for a in calm] == ["warning"]
    # ... but after two weeks at 5 %/day the detector has learned the new volatility
    path = gbm(rng, 14 * 24, 0.05, 3600.0, 98.5)
    for i, p in enumerate(path, start=2):
        det.observe({"ETH": float(p)}, i * 3600.0)
    assert det.sigma_daily()["ETH"] > 0.03
    t = (len(path) + 2) * 3600.0
    assert det.observe({"ETH": float(path[-1]) * 0.985}, t) == []


def test_detector_rejects_bad_input() -> None:
    det = JumpDetector({"ETH": 0.03})
    det.observe({"ETH": 2000.0}, 100.0)
    with pytest.raises(InputError):
        det.observe({"ETH": 2000.0}, 50.0)  # time went backwards
    with pytest.raises(InputError):
        det.observe({"BTC": 60_000.0}, 200.0)  # no seeded volatility
    with pytest.raises(InputError):
        det.observe({"ETH": -1.0}, 200.0)
    with pytest.raises(InputError):
        det.observe({"ETH": math.nan}, 200.0)
    with pytest.raises(InputError):
        JumpDetector({"ETH": 0.03}, lam=1.0)
    assert det.observe({"ETH": 2000.0}, 200.0) == []  # state untouched by the refused calls


# -- divergence ----------------------------------------------------------------------------------


def test_divergence_levels() -> None:
    found = divergence(
        {"ETH": 1015.0, "BTC": 960.0, "USDC": 1.005, "DAI": 1.0},
        {"ETH": 1000.0, "BTC": 1000.0, "USDC": 1.0, "LINK": 15.0},
    )
    by = {a.asset: a for a in found}
    assert set(by) == {"ETH", "BTC"}
    assert by["ETH"].severity == "warning" and by["ETH"].value == pytest.approx(150.0, rel=1e-9)
    assert by["BTC"].severity == "critical" and by["BTC"].value == pytest.approx(400.0, rel=1e-9)
    assert "-400 bps" in by["BTC"].detail
    (edge,) = divergence({"X": 1.03}, {"X": 1.0}, warning_bps=100, critical_bps=300)
    assert edge.severity == "critical"


def test_divergence_rejects_bad_input() -> None:
    for bad in (-1.0, 0.0, math.nan):
        with pytest.raises(InputError):
            divergence({"ETH": bad}, {"ETH": 1000.0})
        with pytest.raises(InputError):
            divergence({"ETH": 1000.0}, {"ETH": bad})
    with pytest.raises(InputError):
        divergence({"ETH": 1.0}, {"ETH": 1.0}, warning_bps=300, critical_bps=100)
