"""Oracle anomalies: stale feeds, price jumps, divergence from a reference. Each is an alert of its own.

- :func:`stale_feeds`: a feed not updated for longer than its heartbeat plus a margin.
- :func:`jumps` / :class:`JumpDetector`: a log move that is implausible for the asset's
  volatility over the elapsed time, ``z = |ln(p / prev)| / (sigma_daily * sqrt(dt / 1 day))``.
  The detector keeps an EWMA of squared log returns per second per asset, so the threshold
  adapts to the market (a calm stablecoin alerts on a 3 % move, ETH does not).
- :func:`divergence`: the protocol's price against a reference (e.g. Chainlink or a CEX), in bps.

All times are unix seconds passed in by the caller (no clock is read here). For jumps, pass the
feed's own update time as ``now`` where possible: the move accrued since the previous *update*,
not since the previous poll.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from monitor.errors import InputError
from monitor.risk.checks import finite_number
from monitor.risk.volatility import DEFAULT_LAMBDA

__all__ = ["ANOMALY_KINDS", "Anomaly", "JumpDetector", "divergence", "jumps", "stale_feeds"]

ANOMALY_KINDS: tuple[str, ...] = ("stale", "jump", "divergence")
SECONDS_PER_DAY = 86400.0
MIN_DT_S = 60.0


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: str  # "stale" | "jump" | "divergence"
    asset: str
    severity: str  # "warning" | "critical"
    detail: str
    value: float  # stale: age in s; jump: z-score; divergence: |deviation| in bps


def stale_feeds(
    updated_at: Mapping[str, float],
    now: float,
    heartbeat_s: Mapping[str, float] | float,
    margin_s: float = 300.0,
) -> list[Anomaly]:
    """Feeds whose age ``now - updated_at`` exceeds ``heartbeat + margin`` (exactly equal is fine).

    Warning above ``heartbeat + margin``, critical above twice that. ``heartbeat_s`` is one value
    for all feeds or a per-asset mapping (which must cover every asset in ``updated_at``).
    """
    t_now = finite_number(now, "now")
    margin = _non_negative(margin_s, "margin_s")
    out: list[Anomaly] = []
    for asset, ts in updated_at.items():
        updated = finite_number(ts, f"updated_at[{asset!r}]")
        if isinstance(heartbeat_s, Mapping):
            if asset not in heartbeat_s:
                raise InputError(f"no heartbeat for feed {asset!r}; heartbeats given for: {', '.join(heartbeat_s)}")
            beat = _non_negative(heartbeat_s[asset], f"heartbeat_s[{asset!r}]")
        else:
            beat = _non_negative(heartbeat_s, "heartbeat_s")
        age = t_now - updated
        allowed = beat + margin
        if age > allowed:
            severity = "critical" if age > 2.0 * allowed else "warning"
            detail = f"{asset} price not updated for {_duration(age)}"
            detail += f" (heartbeat {_duration(beat)} + margin {_duration(margin)})"
            out.append(Anomaly("stale", asset, severity, detail, age))
    return out


def jumps(
    prev_prices: Mapping[str, float],
    prices: Mapping[str, float],
    dt_s: float,
    sigma_daily: Mapping[str, float],
    *,
    z_warning: float = 6.0,
    z_critical: float = 10.0,
    min_sigma: float = 1e-4,
) -> list[Anomaly]:
    """Price moves implausible for the asset's daily volatility, for assets in both price maps.

    ``z = |ln(p / prev)| / (max(sigma, min_sigma) * sqrt(max(dt_s, 60) / 86400))``; warning at
    ``z >= z_warning``, critical at ``z >= z_critical``. ``sigma_daily`` (e.g. the asset's EWMA
    vol) must cover every compared asset. Prices must be positive and finite.
    """
    dt = _non_negative(dt_s, "dt_s")
    zw, zc = _z_levels(z_warning, z_critical)
    floor = _positive(min_sigma, "min_sigma")
    out: list[Anomaly] = []
    for asset, price in prices.items():
        if asset not in prev_prices:
            continue
        if asset not in sigma_daily:
            raise InputError(
                f"no volatility for {asset!r} to judge its price move; sigmas given for: {list(sigma_daily)}"
            )
        sigma = _non_negative(sigma_daily[asset], f"sigma_daily[{asset!r}]")
        found = _jump(asset, _price(prev_prices[asset], asset), _price(price, asset), dt, max(sigma, floor), zw, zc)
        if found is not None:
            out.append(found)
    return out


def divergence(
    protocol_prices: Mapping[str, float],
    reference_prices: Mapping[str, float],
    *,
    warning_bps: float = 100,
    critical_bps: float = 300,
) -> list[Anomaly]:
    """``|p / ref - 1|`` in bps for assets in both maps.

    Warning at ``>= warning_bps``, critical at ``>= critical_bps``; prices must be positive and finite.
    """
    warn = _positive(warning_bps, "warning_bps")
    crit = _positive(critical_bps, "critical_bps")
    if crit <= warn:
        raise InputError(f"critical_bps ({critical_bps}) must be larger than warning_bps ({warning_bps})")
    out: list[Anomaly] = []
    for asset, price in protocol_prices.items():
        if asset not in reference_prices:
            continue
        p, ref = _price(price, asset), _price(reference_prices[asset], asset)
        bps = (p / ref - 1.0) * 1e4
        size = abs(bps)
        if size >= warn:
            severity = "critical" if size >= crit else "warning"
            detail = f"{asset} protocol price {p:.6g} is {bps:+.0f} bps from the reference {ref:.6g}"
            out.append(Anomaly("divergence", asset, severity, detail, size))
    return out


class JumpDetector:
    """Keeps the last price and time per asset and an EWMA of squared log returns per second.

    The variance rate starts at ``sigma_daily**2 / 86400`` and after each observation decays by
    ``lam ** (dt / 1 day)`` towards ``r**2 / dt`` (the daily RiskMetrics ``lam`` stretched over
    time), so the threshold adapts to the asset's current volatility. A flagged move updates
    the reference price (it alerts once, not on every later tick) and enters the variance capped
    at ``z_warning`` sigmas, so one outlier does not blind the detector to the next.
    """

    __slots__ = ("_lam", "_last", "_min_dt", "_min_rate", "_rate", "_zc", "_zw")

    def __init__(
        self,
        sigma_daily: Mapping[str, float],
        *,
        z_warning: float = 6.0,
        z_critical: float = 10.0,
        min_sigma: float = 1e-4,
        lam: float = DEFAULT_LAMBDA,
        min_dt_s: float = MIN_DT_S,
    ) -> None:
        self._zw, self._zc = _z_levels(z_warning, z_critical)
        self._min_rate = _positive(min_sigma, "min_sigma") ** 2 / SECONDS_PER_DAY
        lam_f = finite_number(lam, "lam")
        if not 0.0 < lam_f < 1.0:
            raise InputError(f"EWMA decay lam must be in (0, 1), got {lam}")
        self._lam = lam_f
        self._min_dt = _positive(min_dt_s, "min_dt_s")
        self._rate: dict[str, float] = {
            a: _non_negative(s, f"sigma_daily[{a!r}]") ** 2 / SECONDS_PER_DAY for a, s in sigma_daily.items()
        }
        self._last: dict[str, tuple[float, float]] = {}  # asset -> (time, price)

    def sigma_daily(self) -> dict[str, float]:
        """The current (adapted) daily sigma per asset."""
        return {a: math.sqrt(r * SECONDS_PER_DAY) for a, r in self._rate.items()}

    def observe(self, prices: Mapping[str, float], now: float) -> list[Anomaly]:
        """Compare each price with the asset's last one; return the jumps and remember the prices.

        The first observation of an asset only records it. Times must not go backwards.
        """
        t = finite_number(now, "now")
        checked = {asset: _price(price, asset) for asset, price in prices.items()}
        for asset in checked:
            if asset not in self._rate:
                raise InputError(f"no volatility seeded for {asset!r}; seeded: {', '.join(self._rate) or 'none'}")
            last = self._last.get(asset)
            if last is not None and t < last[0]:
                raise InputError(f"time went backwards for {asset}: {t} after {last[0]}")
        out: list[Anomaly] = []
        for asset, price in checked.items():
            last = self._last.get(asset)
            self._last[asset] = (t, price)
            if last is None:
                continue
            dt = max(t - last[0], self._min_dt)
            rate = max(self._rate[asset], self._min_rate)
            sigma = math.sqrt(rate * SECONDS_PER_DAY)
            found = _jump(asset, last[1], price, t - last[0], sigma, self._zw, self._zc, self._min_dt)
            if found is not None:
                out.append(found)
            r2 = min(math.log(price / last[1]) ** 2, self._zw**2 * rate * dt)
            decay = self._lam ** (dt / SECONDS_PER_DAY)
            self._rate[asset] = decay * self._rate[asset] + (1.0 - decay) * r2 / dt
        return out


# -- internals ----------------------------------------------------------------------


def _jump(
    asset: str, prev: float, price: float, dt_s: float, sigma: float, zw: float, zc: float, min_dt: float = MIN_DT_S
) -> Anomaly | None:
    dt = max(dt_s, min_dt)
    move = math.log(price / prev)
    z = abs(move) / (sigma * math.sqrt(dt / SECONDS_PER_DAY))
    if z < zw:
        return None
    severity = "critical" if z >= zc else "warning"
    detail = (
        f"{asset} moved {math.expm1(move):+.2%} ({prev:.6g} -> {price:.6g}) in {_duration(dt_s)}:"
        f" {z:.1f} sigma at {sigma * 100:.3g} % daily volatility"
    )
    return Anomaly("jump", asset, severity, detail, z)


def _z_levels(z_warning: float, z_critical: float) -> tuple[float, float]:
    zw = _positive(z_warning, "z_warning")
    zc = _positive(z_critical, "z_critical")
    if zc <= zw:
        raise InputError(f"z_critical ({z_critical}) must be larger than z_warning ({z_warning})")
    return zw, zc


def _price(value: float, asset: str) -> float:
    p = finite_number(value, f"price of {asset}")
    if p <= 0.0:
        raise InputError(f"price of {asset} must be positive, got {value!r}")
    return p


def _positive(value: float, what: str) -> float:
    v = finite_number(value, what)
    if v <= 0.0:
        raise InputError(f"{what} must be > 0, got {value!r}")
    return v


def _non_negative(value: float, what: str) -> float:
    v = finite_number(value, what)
    if v < 0.0:
        raise InputError(f"{what} must be >= 0, got {value!r}")
    return v


def _duration(seconds: float) -> str:
    s = abs(seconds)
    if s < 120:
        return f"{seconds:.0f} s"
    if s < 7200:
        return f"{seconds / 60:.1f} min"
    if s < 2 * SECONDS_PER_DAY:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / SECONDS_PER_DAY:.1f} d"
