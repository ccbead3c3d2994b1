"""Oracle anomalies: stale feeds, price jumps, de-pegs, divergence from a reference. Each is an
alert of its own.

Per feed (:class:`FeedSpec`, :func:`feed_spec`): its kind (``floating`` or ``pegged``), its
deviation threshold and its heartbeat. Chainlink aggregators do not expose either on chain in
general, so they are configured (``alerts.oracle.feeds``) with defaults per asset:
ETH / BTC / WETH / WBTC 0.5 % / 1 h, USDC / USDT 0.25 % / 24 h, DAI 0.25 % / 1 h, other
stablecoins pegged 0.25 % / 24 h, anything else floating 1 % / 24 h.

- :func:`stale_feeds`: a feed not updated for longer than ITS heartbeat plus a margin
  (:func:`feed_heartbeats` gives the per-feed mapping).
- **Floating assets** (:class:`AnomalyDetector`, :func:`jumps`, :func:`jump_score`): the move
  since the feed's previous *update* ``r = ln(p / p_ref)`` over the elapsed ``dt`` against

      z = |r| / sqrt(sigma_daily**2 * max(dt, 60 s) / 1 day + deviation**2)

  The first term is the volatility over the elapsed time (a return over 60 s is compared with
  the volatility over 60 s); the second is the feed's deviation threshold, the smallest move the
  feed reports at all: a push update is a move of at least the threshold, so a routine 0.5 %
  ETH update 60 s after the previous one scores about 1, not 6. ``sigma_daily`` is robust and
  adaptive: a Huber-type EWMA of the realised variance rate (each squared return clipped at
  ``huber_k`` times the current scale before it enters, so one crash neither blinds the
  detector nor inflates the threshold for weeks; time-weighted, so irregular updates and
  unchanged polls do not bias it), blended with a slow long-run EWMA of the same clipped
  returns (``long_run_weight``), seeded by the caller (e.g. :func:`robust_sigma`: 1.4826 x
  the median absolute deviation of daily log returns).
- **Sustained moves of floating assets** (kind ``"drift"``, :meth:`AnomalyDetector.drift_scores`):
  a structural fall spread over days (LUNA, May 2022: ETH -12 % days in a 3-4 %/day market,
  3.7 sigmas on any one day, which calm years exceed several times a year; -30 % over the week)
  is no one-step jump. For each horizon ``h`` of ``drift_z`` the cumulative log return from the
  newest anchor at least ``h`` days old, ``r = ln(p / p_a)``, against the volatility the detector
  had learnt AT the anchor, before the window (so the move does not inflate its own yardstick):

      z_h = |r| / sqrt(sigma_a**2 * (now - t_a) / 1 day + deviation**2)

  Anchors are the learnt updates, at most one per ``anchor_step_s`` (1 h), kept for the longest
  horizon; so a live feed polled each block and a daily replay share the code and the scaling,
  and a routine 0.5 % update after 60 s moves z_1d by at most 0.005 / 0.03 = 0.17 at 3 %/day
  (the window is days long, whatever the update cadence). Falls only by default
  (``drift_side="down"``: the collateral side of a lending market; a week-long rally is how bull
  markets go, the one-step jump stays two-sided). Reported on every observation while it lasts,
  like a de-peg. Default levels (:data:`DEFAULT_DRIFT_Z`): 1 d and 3 d at z 5.5, 7 d at z 5, set
  by a rule on the fit period only (calm days before 2020, none of the named events): per
  horizon, the smallest z on the grid 4.0, 4.5, ..., 7.0 that adds at most 0.5 false alarms per
  feed-year to the jump detector's for ETH and for BTC (``scripts/bench_anomalies.py --rule``).
- **Pegged assets** (:func:`peg_score`): the deviation from the peg ``d = p / peg - 1`` (not the
  return) against ``sqrt(scale**2 + deviation**2)``, ``scale`` a slow Huber EWMA of ``d**2``
  (the coin's usual wobble). It is reported on every observation while it lasts (kind
  ``"depeg"``), so the alert pipeline holds one episode from the break to the return to peg.
- :func:`divergence`: the protocol's price against a reference (e.g. Chainlink or a CEX), in bps.
- :func:`replay_daily`: one feed's detector over a daily OHLC history (closes learn, intraday
  extremes probe, both on the jump and the drift horizons), the validation behind
  ``scripts/bench_anomalies.py`` and BENCHMARKS.md.

All times are unix seconds passed in by the caller (no clock is read here). For jumps, pass the
feed's own update time as ``now`` where possible; the detector measures ``dt`` from the last
price CHANGE, so polls that see the same price do not shorten it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from monitor.errors import InputError
from monitor.risk.checks import finite_number
from monitor.risk.volatility import DEFAULT_LAMBDA

__all__ = [
    "ANOMALY_KINDS",
    "DEFAULT_FLOATING",
    "DEFAULT_PEGGED",
    "FEED_KINDS",
    "KNOWN_FEEDS",
    "STABLECOINS",
    "Anomaly",
    "AnomalyDetector",
    "DailyReplay",
    "FeedSpec",
    "JumpDetector",
    "divergence",
    "feed_heartbeats",
    "feed_spec",
    "jump_score",
    "jumps",
    "peg_score",
    "replay_daily",
    "robust_sigma",
    "stale_feeds",
]

ANOMALY_KINDS: tuple[str, ...] = ("stale", "jump", "drift", "depeg", "divergence")
DRIFT_SIDES: tuple[str, ...] = ("both", "down")
# sustained-move levels per horizon in days (see the module docstring for the rule that set them)
DEFAULT_DRIFT_Z: Mapping[float, float] = {1.0: 5.5, 3.0: 5.5, 7.0: 5.0}
DEFAULT_DRIFT_SIDE = "down"
FEED_KINDS: tuple[str, ...] = ("floating", "pegged")
SECONDS_PER_DAY = 86400.0
MIN_DT_S = 60.0
MAD_TO_SIGMA = 1.482602218505602  # 1 / Phi^-1(3/4): the MAD of a normal is 0.6745 sigma


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """How one price feed behaves: ``kind`` (``"floating"``: judged on returns; ``"pegged"``:
    judged on the deviation from ``peg``), its ``deviation`` threshold (a fraction, 0.005 ==
    0.5 %) and its ``heartbeat_s``."""

    kind: str = "floating"
    deviation: float = 0.005
    heartbeat_s: float = 3600.0
    peg: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in FEED_KINDS:
            raise InputError(f"feed kind must be one of {', '.join(FEED_KINDS)}, got {self.kind!r}")
        dev = finite_number(self.deviation, "feed deviation")
        if not 0.0 <= dev < 0.5:
            raise InputError(f"feed deviation must be a fraction in [0, 0.5) (0.005 == 0.5 %), got {self.deviation!r}")
        if finite_number(self.heartbeat_s, "feed heartbeat_s") <= 0:
            raise InputError(f"feed heartbeat_s must be > 0, got {self.heartbeat_s!r}")
        if finite_number(self.peg, "feed peg") <= 0:
            raise InputError(f"feed peg must be > 0, got {self.peg!r}")


DEFAULT_FLOATING = FeedSpec("floating", 0.01, 86400.0)
DEFAULT_PEGGED = FeedSpec("pegged", 0.0025, 86400.0)
STABLECOINS: frozenset[str] = frozenset(
    {"USDC", "USDT", "DAI", "USDS", "GHO", "LUSD", "FRAX", "PYUSD", "USDE", "SUSD", "TUSD", "USDP", "CRVUSD",
     "BUSD", "RLUSD", "USDC.E", "USDBC"}
)  # fmt: skip
# Chainlink's published mainnet parameters for the usual feeds (not readable on chain)
KNOWN_FEEDS: Mapping[str, FeedSpec] = {
    "ETH": FeedSpec("floating", 0.005, 3600.0),
    "WETH": FeedSpec("floating", 0.005, 3600.0),
    "BTC": FeedSpec("floating", 0.005, 3600.0),
    "WBTC": FeedSpec("floating", 0.005, 3600.0),
    "USDC": FeedSpec("pegged", 0.0025, 86400.0),
    "USDT": FeedSpec("pegged", 0.0025, 86400.0),
    "DAI": FeedSpec("pegged", 0.0025, 3600.0),
    "LINK": FeedSpec("floating", 0.01, 3600.0),
}


def feed_spec(symbol: str, overrides: Mapping[str, FeedSpec] | None = None) -> FeedSpec:
    """The feed parameters of ``symbol`` (any case): ``overrides`` first, then :data:`KNOWN_FEEDS`,
    then :data:`DEFAULT_PEGGED` for a stablecoin symbol and :data:`DEFAULT_FLOATING` otherwise."""
    key = str(symbol).strip().upper()
    if overrides:
        for name, spec in overrides.items():
            if str(name).strip().upper() == key:
                return spec
    if key in KNOWN_FEEDS:
        return KNOWN_FEEDS[key]
    return DEFAULT_PEGGED if key in STABLECOINS else DEFAULT_FLOATING


def feed_heartbeats(symbols: Sequence[str], overrides: Mapping[str, FeedSpec] | None = None) -> dict[str, float]:
    """``{symbol: heartbeat_s}`` per feed, for :func:`stale_feeds`."""
    return {s: feed_spec(s, overrides).heartbeat_s for s in symbols}


def robust_sigma(log_returns: ArrayLike) -> float:
    """``1.4826 x median(|r - median(r)|)``: a daily sigma that a few crash days do not move.

    Consistent with the standard deviation for normal returns; NaNs are dropped; at least 5
    returns are needed.
    """
    r = np.asarray(log_returns, dtype=np.float64).ravel()
    r = r[np.isfinite(r)]
    if r.size < 5:
        raise InputError(f"robust_sigma needs at least 5 finite returns, got {r.size}")
    return float(MAD_TO_SIGMA * np.median(np.abs(r - np.median(r))))


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: str  # "stale" | "jump" | "drift" | "depeg" | "divergence"
    asset: str
    severity: str  # "warning" | "critical"
    detail: str
    value: float  # stale: age in s; jump / drift / depeg: z-score; divergence: |deviation| in bps


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
    deviation: Mapping[str, float] | float = 0.0,
) -> list[Anomaly]:
    """Price moves implausible for the asset's daily volatility, for assets in both price maps.

    ``z = jump_score(ln(p / prev), dt_s, max(sigma, min_sigma), deviation)`` (see
    :func:`jump_score`; with ``deviation = 0`` it is ``|r| / (sigma * sqrt(max(dt, 60 s) / 1 day))``);
    warning at ``z >= z_warning``, critical at ``z >= z_critical``. ``sigma_daily`` (e.g. the
    asset's EWMA vol) must cover every compared asset; ``deviation`` is one feed deviation
    threshold for all or a per-asset mapping (missing assets: 0). Prices must be positive and finite.
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
        raw_dev = deviation.get(asset, 0.0) if isinstance(deviation, Mapping) else deviation
        dev = _non_negative(raw_dev, f"deviation[{asset!r}]")
        found = _jump(
            asset, _price(prev_prices[asset], asset), _price(price, asset), dt, max(sigma, floor), zw, zc, dev
        )
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


def jump_score(
    move: float, dt_s: float, sigma_daily: float, deviation: float = 0.0, min_dt_s: float = MIN_DT_S
) -> float:
    """``|move| / sqrt(sigma_daily**2 * max(dt_s, min_dt_s) / 86400 + deviation**2)``.

    ``move`` is a log return, ``sigma_daily`` the daily volatility, ``deviation`` the feed's
    deviation threshold (the smallest move it reports). A zero denominator (no volatility and
    no threshold) scores any move as +inf and no move as 0.
    """
    scale2 = sigma_daily**2 * max(dt_s, min_dt_s) / SECONDS_PER_DAY + deviation**2
    if scale2 <= 0.0:
        return 0.0 if move == 0.0 else math.inf
    return abs(move) / math.sqrt(scale2)


def peg_score(price: float, peg: float, scale: float, deviation: float) -> float:
    """``|price / peg - 1| / sqrt(scale**2 + deviation**2)``: the distance from the peg in units of
    the coin's usual wobble ``scale`` and the feed's deviation threshold."""
    scale2 = scale**2 + deviation**2
    d = price / peg - 1.0
    if scale2 <= 0.0:
        return 0.0 if d == 0.0 else math.inf
    return abs(d) / math.sqrt(scale2)


class _Floating:
    __slots__ = ("anchors", "fast", "price", "slow", "time")

    def __init__(self, rate: float) -> None:
        self.fast = rate  # daily variance, fast EWMA of the clipped squared returns
        self.slow = rate  # daily variance, long-run EWMA
        self.time = math.nan
        self.price = math.nan
        # (time, price, sigma after learning it) of learned updates, at most one per anchor step:
        # the starts of the drift windows, each with the volatility known BEFORE its window
        self.anchors: list[tuple[float, float, float]] = []


class _Pegged:
    __slots__ = ("scale2", "time")

    def __init__(self, scale2: float) -> None:
        self.scale2 = scale2
        self.time = math.nan


class AnomalyDetector:
    """Jumps of floating feeds and de-pegs of pegged ones, per feed (see the module docstring).

    ``sigma_daily`` seeds each floating asset's volatility (required for every floating asset
    observed; a pegged asset's entry, if given, is ignored). ``feeds`` overrides the per-symbol
    :class:`FeedSpec` (default :func:`feed_spec`). Floating: warning at ``z >= z_warning``,
    critical at ``z >= z_critical``; pegged: the same with ``peg_z_warning`` / ``peg_z_critical``.

    A floating asset's reference is its last CHANGED price: a flagged move becomes the new
    reference (it alerts once), and an unchanged poll neither scores nor shortens ``dt``. The
    variance rates move by ``lam ** (dt / 1 day)`` (fast) and ``lam_long ** (dt / 1 day)`` (long
    run) towards the return's squared size clipped at ``huber_k`` current scales; the sigma used
    is ``sqrt((1 - w) * fast + w * slow)`` with ``w = long_run_weight``, never below ``min_sigma``.

    Sustained moves: ``drift_z`` maps horizon days to the warning z (default
    :data:`DEFAULT_DRIFT_Z`; ``{}`` turns them off), critical at that plus
    ``z_critical - z_warning``; ``drift_side`` ``"down"`` (default) or ``"both"``; anchors at most
    one per ``anchor_step_s``. A drift is reported only when no jump is on the same observation.
    """

    __slots__ = (
        "_drift", "_feeds", "_float", "_huber", "_lam", "_lam_long", "_lam_peg", "_min_dt", "_min_rate", "_peg",
        "_pzc", "_pzw", "_side", "_step", "_w", "_zc", "_zw",
    )  # fmt: skip

    def __init__(
        self,
        sigma_daily: Mapping[str, float],
        *,
        feeds: Mapping[str, FeedSpec] | None = None,
        z_warning: float = 6.0,
        z_critical: float = 10.0,
        peg_z_warning: float = 6.0,
        peg_z_critical: float = 10.0,
        min_sigma: float = 1e-4,
        lam: float = DEFAULT_LAMBDA,
        lam_long: float = 0.99,
        long_run_weight: float = 0.25,
        huber_k: float = 2.5,
        lam_peg: float = 0.99,
        min_dt_s: float = MIN_DT_S,
        drift_z: Mapping[float, float] | None = None,
        drift_side: str = DEFAULT_DRIFT_SIDE,
        anchor_step_s: float = 3600.0,
    ) -> None:
        self._zw, self._zc = _z_levels(z_warning, z_critical)
        self._drift = _drift_levels(DEFAULT_DRIFT_Z if drift_z is None else drift_z)
        if drift_side not in DRIFT_SIDES:
            raise InputError(f"drift_side must be one of {', '.join(DRIFT_SIDES)}, got {drift_side!r}")
        self._side = drift_side
        self._step = _positive(anchor_step_s, "anchor_step_s")
        self._pzw, self._pzc = _z_levels(peg_z_warning, peg_z_critical, "peg_z")
        self._min_rate = _positive(min_sigma, "min_sigma") ** 2
        self._lam = _decay(lam, "lam")
        self._lam_long = _decay(lam_long, "lam_long")
        self._lam_peg = _decay(lam_peg, "lam_peg")
        w = finite_number(long_run_weight, "long_run_weight")
        if not 0.0 <= w <= 1.0:
            raise InputError(f"long_run_weight must be in [0, 1], got {long_run_weight!r}")
        self._w = w
        self._huber = _positive(huber_k, "huber_k")
        self._min_dt = _positive(min_dt_s, "min_dt_s")
        if feeds is not None and not isinstance(feeds, Mapping):
            raise InputError(f"feeds must be a mapping SYMBOL -> FeedSpec, got {type(feeds).__name__}")
        self._feeds: dict[str, FeedSpec] = {}
        for name, spec in (feeds or {}).items():
            if not isinstance(spec, FeedSpec):
                raise InputError(f"feeds[{name!r}] must be a FeedSpec, got {type(spec).__name__}")
            self._feeds[str(name).strip().upper()] = spec
        self._float: dict[str, _Floating] = {}
        self._peg: dict[str, _Pegged] = {}
        for asset, s in sigma_daily.items():
            sig = _non_negative(s, f"sigma_daily[{asset!r}]")
            if self.spec(asset).kind == "floating":
                self._float[asset] = _Floating(sig**2)

    def spec(self, asset: str) -> FeedSpec:
        """The :class:`FeedSpec` the detector applies to ``asset``."""
        return feed_spec(asset, self._feeds)

    def sigma_daily(self) -> dict[str, float]:
        """The current (adapted) daily sigma per floating asset."""
        return {a: self._sigma(st) for a, st in self._float.items()}

    def peg_scale(self) -> dict[str, float]:
        """The current usual distance from the peg per pegged asset (a fraction)."""
        return {a: math.sqrt(st.scale2) for a, st in self._peg.items()}

    def score(self, asset: str, price: float, now: float) -> float:
        """The z an observation of ``asset`` at ``price`` and ``now`` would score, changing nothing
        (0 for a floating asset's first observation or an unchanged price)."""
        spec = self.spec(asset)
        p = _price(price, asset)
        t = finite_number(now, "now")
        if spec.kind == "pegged":
            st = self._peg.get(asset)
            return peg_score(p, spec.peg, 0.0 if st is None else math.sqrt(st.scale2), spec.deviation)
        fl = self._float.get(asset)
        if fl is None:
            raise InputError(
                f"no volatility seeded for {asset!r} (a floating feed); seeded: {', '.join(self._float) or 'none'}"
            )
        if math.isnan(fl.time) or p == fl.price:
            return 0.0
        return jump_score(math.log(p / fl.price), t - fl.time, self._sigma(fl), spec.deviation, self._min_dt)

    def observe(self, prices: Mapping[str, float], now: float, *, learn: bool = True) -> list[Anomaly]:
        """Judge each price against its feed's model; return the anomalies and remember the prices.

        The first observation of a floating asset only records it. Times must not go backwards.
        ``learn=False`` scores the prices without updating anything (a probe: e.g. a day's
        intraday low or high in a validation on daily OHLC, which is a selected extreme rather
        than a sample of the path and would bias the variance upwards).
        """
        t = finite_number(now, "now")
        checked = {asset: _price(price, asset) for asset, price in prices.items()}
        for asset in checked:
            pegged = self.spec(asset).kind == "pegged"
            if not pegged and asset not in self._float:
                seeded = ", ".join(self._float) or "none"
                raise InputError(f"no volatility seeded for {asset!r} (a floating feed); seeded: {seeded}")
            last = (self._peg[asset].time if asset in self._peg else math.nan) if pegged else self._float[asset].time
            if not math.isnan(last) and t < last:
                raise InputError(f"time went backwards for {asset}: {t} after {last}")
        out: list[Anomaly] = []
        for asset, price in checked.items():
            spec = self.spec(asset)
            if spec.kind == "pegged":
                found = self._observe_peg(asset, spec, price, t, learn)
            else:
                found = self._observe_float(asset, spec, price, t, learn)
            if found is not None:
                out.append(found)
        return out

    def _sigma(self, st: _Floating) -> float:
        return math.sqrt(max((1.0 - self._w) * st.fast + self._w * st.slow, self._min_rate))

    def _observe_float(self, asset: str, spec: FeedSpec, price: float, t: float, learn: bool) -> Anomaly | None:
        st = self._float[asset]
        if math.isnan(st.time):
            if not learn:
                return None
            st.time, st.price = t, price
            self._anchor(st, t, price)
            return None
        drift = self._drift_anomaly(asset, spec, st, price, t)
        if price == st.price:
            return drift  # no update: nothing moved, the elapsed time keeps running
        dt = t - st.time
        dtd = max(dt, self._min_dt) / SECONDS_PER_DAY
        move = math.log(price / st.price)
        sigma = self._sigma(st)
        z = jump_score(move, dt, sigma, spec.deviation, self._min_dt)
        found = None
        if z >= self._zw:
            severity = "critical" if z >= self._zc else "warning"
            detail = (
                f"{asset} moved {math.expm1(move):+.2%} ({st.price:.6g} -> {price:.6g}) in {_duration(dt)}:"
                f" {z:.1f} sigma at {sigma * 100:.3g} % daily volatility"
                f" (feed deviation {spec.deviation:.2%})"
            )
            found = Anomaly("jump", asset, severity, detail, z)
        if found is None:
            found = drift
        if not learn:
            return found
        cap = self._huber**2 * (sigma**2 * dtd + spec.deviation**2)
        r2 = min(move * move, cap) / dtd
        for attr, lam in (("fast", self._lam), ("slow", self._lam_long)):
            decay = lam**dtd
            setattr(st, attr, decay * getattr(st, attr) + (1.0 - decay) * r2)
        st.time, st.price = t, price
        self._anchor(st, t, price)
        return found

    def drift_scores(self, asset: str, price: float, now: float) -> dict[float, float]:
        """``{horizon_days: z}`` of a sustained move of floating ``asset`` to ``price`` at ``now``
        over each drift horizon, changing nothing (horizons without an anchor old enough: absent).

        ``z = |ln(p / p_a)| / sqrt(sigma_a**2 * (now - t_a) / 1 day + deviation**2)`` with
        ``(t_a, p_a, sigma_a)`` the newest anchor at least ``h`` days old and the volatility the
        detector had learnt AT that anchor, before the window (the move cannot inflate its own
        yardstick). With ``drift_side="down"`` only falls score (a rise scores 0)."""
        st = self._float.get(asset)
        if st is None:
            raise InputError(f"no volatility seeded for {asset!r} (a floating feed)")
        return self._drift_z(st, self.spec(asset), _price(price, asset), finite_number(now, "now"))

    def _drift_z(self, st: _Floating, spec: FeedSpec, price: float, t: float) -> dict[float, float]:
        out: dict[float, float] = {}
        if not st.anchors:
            return out
        for h in self._drift:
            i = bisect.bisect_right(st.anchors, t - h * SECONDS_PER_DAY, key=lambda a: a[0]) - 1
            if i < 0:
                continue
            t_a, p_a, sigma_a = st.anchors[i]
            move = math.log(price / p_a)
            if self._side == "down" and move >= 0.0:
                out[h] = 0.0
                continue
            out[h] = jump_score(move, t - t_a, sigma_a, spec.deviation, self._min_dt)
        return out

    def _drift_anomaly(self, asset: str, spec: FeedSpec, st: _Floating, price: float, t: float) -> Anomaly | None:
        if not self._drift:
            return None
        scores = self._drift_z(st, spec, price, t)
        best = max(scores, key=lambda h: scores[h] / self._drift[h], default=None)
        if best is None or scores[best] < self._drift[best]:
            return None
        z, level = scores[best], self._drift[best]
        i = bisect.bisect_right(st.anchors, t - best * SECONDS_PER_DAY, key=lambda a: a[0]) - 1
        t_a, p_a, sigma_a = st.anchors[i]
        severity = "critical" if z >= level + (self._zc - self._zw) else "warning"
        detail = (
            f"{asset} moved {math.expm1(math.log(price / p_a)):+.2%} ({p_a:.6g} -> {price:.6g}) over"
            f" {_duration(t - t_a)}: {z:.1f} sigma at {sigma_a * 100:.3g} % daily volatility before the move"
            f" (sustained-move level {level:g} over {best:g} d)"
        )
        return Anomaly("drift", asset, severity, detail, z)

    def _anchor(self, st: _Floating, t: float, price: float) -> None:
        if not self._drift:
            return
        if not st.anchors or t - st.anchors[-1][0] >= self._step:
            st.anchors.append((t, price, self._sigma(st)))
        keep = t - (max(self._drift) + 1.0) * SECONDS_PER_DAY  # drop anchors no window needs
        k = bisect.bisect_right(st.anchors, keep, key=lambda a: a[0]) - 1
        if k > 0:
            del st.anchors[:k]

    def _observe_peg(self, asset: str, spec: FeedSpec, price: float, t: float, learn: bool) -> Anomaly | None:
        st = self._peg.get(asset)
        if st is None:
            st = _Pegged(0.0)
            if learn:
                self._peg[asset] = st
        z = peg_score(price, spec.peg, math.sqrt(st.scale2), spec.deviation)
        d = price / spec.peg - 1.0
        if learn:
            if not math.isnan(st.time):
                decay = self._lam_peg ** (max(t - st.time, 0.0) / SECONDS_PER_DAY)
                cap = self._huber**2 * (st.scale2 + spec.deviation**2)
                st.scale2 = decay * st.scale2 + (1.0 - decay) * min(d * d, cap)
            st.time = t
        if z < self._pzw:
            return None
        severity = "critical" if z >= self._pzc else "warning"
        detail = (
            f"{asset} at {price:.6g} is {d:+.2%} from its peg {spec.peg:g}: {z:.1f} x its usual distance"
            f" (wobble {math.sqrt(st.scale2):.3%}, feed deviation {spec.deviation:.2%})"
        )
        return Anomaly("depeg", asset, severity, detail, z)


JumpDetector = AnomalyDetector  # the name the monitor has always used


@dataclass(frozen=True, slots=True)
class DailyReplay:
    """What a detector said on each day of a daily OHLC history (see :func:`replay_daily`)."""

    days: tuple[str, ...]  # ISO dates
    score: tuple[float, ...]  # the day's largest jump z (0 before the warm-up ends)
    severity: tuple[str, ...]  # "ok" | "warning" | "critical" (the day's worst, jump, drift or depeg)
    drift: tuple[float, ...] = ()  # floating feeds: the day's largest sustained-move z over the horizons


def replay_daily(
    asset: str,
    days: Sequence[str],
    low: ArrayLike,
    high: ArrayLike,
    close: ArrayLike,
    *,
    warmup_days: int = 60,
    probe_highs: bool | None = None,
    **detector: Any,
) -> DailyReplay:
    """Run one feed's detector over a daily OHLC history, as the validation on the shipped data does.

    Each day the detector LEARNS from the close (at the day's end, ``dt`` = 1 day) and PROBES the
    day's low (and high, for floating feeds by default) without learning (``observe(learn=False)``)
    one second before the close: an intraday extreme is a selected point, not a sample of the
    path, so it must not enter the variance, and since its time inside the day is unknown it is
    judged over the whole day (the extreme of a Brownian day is as likely as a daily return twice
    as probable; scoring it over half a day would overstate it by sqrt(2)). Pegged feeds probe
    lows only unless ``probe_highs`` (published stablecoin highs include single-venue prints such as
    2.35 for USDC on 2021-11-16 that no oracle reported). The floating seed is
    :func:`robust_sigma` of the first ``warmup_days`` daily returns; days of the warm-up score 0.
    ``detector`` passes keyword arguments to :class:`AnomalyDetector` (``z_warning``, ``feeds``...).
    """
    lo, hi, cl = (np.asarray(x, dtype=np.float64) for x in (low, high, close))
    n = len(days)
    if not (lo.shape == hi.shape == cl.shape == (n,)):
        raise InputError(
            f"days, low, high and close must have the same length; got {n}, {lo.size}, {hi.size}, {cl.size}"
        )
    warm = int(warmup_days)
    if warm < 5 or warm >= n:
        raise InputError(f"warmup_days must be in [5, {n - 1}] for {n} days, got {warmup_days!r}")
    det = AnomalyDetector({asset: robust_sigma(np.diff(np.log(cl[: warm + 1])))}, **detector)
    pegged = det.spec(asset).kind == "pegged"
    highs = (not pegged) if probe_highs is None else bool(probe_highs)
    scores: list[float] = []
    drifts: list[float] = []
    severities: list[str] = []
    rank = {"ok": 0, "warning": 1, "critical": 2}

    def drift_z(price: float, t: float) -> float:
        return 0.0 if pegged else max(det.drift_scores(asset, price, t).values(), default=0.0)

    for i, day in enumerate(days):
        t_end = _day_seconds(day) + SECONDS_PER_DAY
        found: list[Anomaly] = []
        z = dz = 0.0
        for probe in (lo[i], hi[i]) if highs else (lo[i],):
            z = max(z, det.score(asset, float(probe), t_end - 1.0))
            dz = max(dz, drift_z(float(probe), t_end - 1.0))
            found += det.observe({asset: float(probe)}, t_end - 1.0, learn=False)
        z = max(z, det.score(asset, float(cl[i]), t_end))
        dz = max(dz, drift_z(float(cl[i]), t_end))
        found += det.observe({asset: float(cl[i])}, t_end)
        if i < warm:
            scores.append(0.0)
            drifts.append(0.0)
            severities.append("ok")
            continue
        scores.append(z)
        drifts.append(dz)
        severities.append(max((a.severity for a in found), key=rank.__getitem__, default="ok"))
    return DailyReplay(tuple(days), tuple(scores), tuple(severities), tuple(drifts))


def _day_seconds(day: str) -> float:
    import datetime as _dt

    try:
        d = _dt.date.fromisoformat(str(day)[:10])
    except ValueError as exc:
        raise InputError(f"not an ISO date: {day!r}") from exc
    return float(_dt.datetime(d.year, d.month, d.day, tzinfo=_dt.UTC).timestamp())


# -- internals ----------------------------------------------------------------------


def _jump(
    asset: str, prev: float, price: float, dt_s: float, sigma: float, zw: float, zc: float, deviation: float = 0.0
) -> Anomaly | None:
    move = math.log(price / prev)
    z = jump_score(move, dt_s, sigma, deviation)
    if z < zw:
        return None
    severity = "critical" if z >= zc else "warning"
    detail = (
        f"{asset} moved {math.expm1(move):+.2%} ({prev:.6g} -> {price:.6g}) in {_duration(dt_s)}:"
        f" {z:.1f} sigma at {sigma * 100:.3g} % daily volatility"
    )
    return Anomaly("jump", asset, severity, detail, z)


def _drift_levels(levels: Mapping[float, float]) -> dict[float, float]:
    if not isinstance(levels, Mapping):
        raise InputError(f"drift_z must be a mapping horizon_days -> z, got {type(levels).__name__}")
    out: dict[float, float] = {}
    for h, z in levels.items():
        days = _positive(h, "drift horizon (days)")
        out[days] = _positive(z, f"drift_z[{h!r}]")
    return dict(sorted(out.items()))


def _z_levels(z_warning: float, z_critical: float, name: str = "z") -> tuple[float, float]:
    zw = _positive(z_warning, f"{name}_warning")
    zc = _positive(z_critical, f"{name}_critical")
    if zc <= zw:
        raise InputError(f"{name}_critical ({z_critical}) must be larger than {name}_warning ({z_warning})")
    return zw, zc


def _decay(value: float, what: str) -> float:
    lam = finite_number(value, what)
    if not 0.0 < lam < 1.0:
        raise InputError(f"EWMA decay {what} must be in (0, 1), got {value!r}")
    return lam


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
