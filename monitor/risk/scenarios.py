"""Stress-scenario library: price MULTIPLIERS per asset, applied to current oracle prices.

A multiplier of 0.58 means -42 %. Multipliers are keyed by DATA asset name (``ETH``,
``BTC``, ``USDC``, ``DAI``, ``USDT``, ``SOL``; token aliases such as ``WETH`` resolve
through :func:`monitor.price_data.resolve_asset`); an asset not in a scenario is
unchanged (multiplier 1.0).

Sources of scenarios:

- ``shock``: user-given moves (``--shock WETH=-30%``), :func:`shock_scenario`;
- ``historical``: the worst ``h``-day move of every asset inside a named stress event in
  the shipped daily prices, measured from the close before the move to the lowest
  intraday LOW reached, :func:`historical_scenario`;
- ``correlated``: one asset shocked, the others moved by their conditional expectation
  (EWMA beta on daily log returns), :func:`correlated_scenario`;
- ``monte-carlo``: many scenarios at once, as a ``[n_paths, n_assets]`` multiplier matrix,
  from a stationary block bootstrap of joint daily returns
  (:func:`monte_carlo_bootstrap`, :func:`monte_carlo_bootstrap_paths`) or a correlated
  driftless GBM with EWMA covariance (:func:`monte_carlo_gbm`).

All functions are pure apart from reading the shipped prices; randomness only through
an injected :class:`numpy.random.Generator`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from monitor import price_data
from monitor.errors import InputError
from monitor.risk.checks import finite_number, positive_int
from monitor.risk.volatility import DEFAULT_LAMBDA, asset_covariance

__all__ = [
    "HISTORICAL_EVENTS",
    "SOURCES",
    "HistoricalEvent",
    "HistoricalMove",
    "Scenario",
    "correlated_scenario",
    "historical_moves",
    "historical_scenario",
    "monte_carlo_bootstrap",
    "monte_carlo_bootstrap_paths",
    "monte_carlo_gbm",
    "parse_shock",
    "scenario_names",
    "shock_scenario",
]

Array = NDArray[np.float64]

SOURCES: tuple[str, ...] = ("shock", "historical", "correlated", "monte-carlo")


def _canonical(symbol: str) -> str:
    """Upper-cased symbol with token aliases mapped (WETH -> ETH); unknown symbols kept."""
    if not isinstance(symbol, str):
        raise InputError(f"asset symbol must be a string, got {symbol!r}")
    key = symbol.strip().upper()
    if not key:
        raise InputError("asset symbol is empty")
    return price_data.ALIASES.get(key, key)


def _order_key(asset: str) -> tuple[int, str]:
    known = price_data.ASSETS
    return (known.index(asset), asset) if asset in known else (len(known), asset)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One stress scenario: a price multiplier per asset (missing asset -> 1.0).

    ``multipliers`` is normalised on construction: keys upper-cased and mapped to data
    asset names (``WETH`` -> ``ETH``; symbols without price data, e.g. ``LINK``, are kept
    upper-cased), ordered, and frozen in a read-only mapping. Every multiplier must be
    finite and > 0.
    """

    name: str
    description: str
    multipliers: Mapping[str, float] = field(hash=False)
    source: str

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise InputError(f"scenario source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        normalised: dict[str, float] = {}
        for raw_key, raw_value in self.multipliers.items():
            key = _canonical(raw_key)
            value = float(raw_value)
            if not math.isfinite(value) or value <= 0.0:
                raise InputError(f"multiplier for {raw_key} must be finite and > 0, got {raw_value!r}")
            if key in normalised and normalised[key] != value:
                raise InputError(f"conflicting multipliers for {key}: {normalised[key]} and {value}")
            normalised[key] = value
        ordered = {k: normalised[k] for k in sorted(normalised, key=_order_key)}
        object.__setattr__(self, "multipliers", MappingProxyType(ordered))

    def multiplier_for(self, symbol: str) -> float:
        """Multiplier for a token or data symbol (any case, WETH -> ETH); 1.0 if not in the scenario."""
        return float(self.multipliers.get(_canonical(symbol), 1.0))

    def vector(self, symbols: Sequence[str]) -> Array:
        """Multipliers for ``symbols``, in that order, as a float64 array."""
        if isinstance(symbols, str):
            raise InputError(f"symbols must be a sequence of names, got the string {symbols!r}")
        return np.array([self.multiplier_for(s) for s in symbols], dtype=np.float64)


# -- user shocks --------------------------------------------------------------------

_SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9._-]*$")
_NUMBER_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_SHOCK_FORMAT = "use ASSET=CHANGE, e.g. WETH=-30% or ETH=-0.3 (a fraction) or WBTC=+10%"


def parse_shock(text: str) -> tuple[str, float]:
    """Parse ``"WETH=-30%"`` into ``("WETH", 0.70)``: the symbol (upper-cased) and its multiplier.

    The change is a percentage (``-30%``, ``+10 %``) or a fraction (``-0.3``); a bare
    fraction must lie in [-1, 1] (so ``ETH=-30`` without ``%`` is refused rather than
    read as -3000 %). A change of -100 % or deeper is refused.
    """
    if not isinstance(text, str):
        raise InputError(f"shock must be a string, got {text!r}; {_SHOCK_FORMAT}")
    if text.count("=") != 1:
        raise InputError(f"shock {text!r} must contain exactly one '='; {_SHOCK_FORMAT}")
    raw_symbol, raw_change = (part.strip() for part in text.split("="))
    symbol = raw_symbol.upper()
    if not symbol:
        raise InputError(f"shock {text!r} has no asset before '='; {_SHOCK_FORMAT}")
    if not _SYMBOL_RE.match(symbol):
        raise InputError(f"shock {text!r}: {raw_symbol!r} is not an asset symbol; {_SHOCK_FORMAT}")
    change = raw_change.replace("\u2212", "-").replace(" ", "")
    percent = change.endswith("%")
    if percent:
        change = change[:-1]
    if not change:
        raise InputError(f"shock {text!r} has no change after '='; {_SHOCK_FORMAT}")
    if not _NUMBER_RE.match(change):
        raise InputError(f"shock {text!r}: {raw_change!r} is not a number; {_SHOCK_FORMAT}")
    value = float(change)
    fraction = value / 100.0 if percent else value
    if not math.isfinite(fraction):
        raise InputError(f"shock {text!r}: change must be finite; {_SHOCK_FORMAT}")
    if fraction <= -1.0:
        hint = f"; a bare number is a fraction, write {value:g}% for percent" if not percent and value < -1.0 else ""
        raise InputError(f"shock {text!r}: a shock of -100 % or deeper would make the price zero or negative{hint}")
    if not percent and fraction > 1.0:
        raise InputError(
            f"shock {text!r}: a bare change is a fraction and must be in [-1, 1]; write {value:g}% if you meant percent"
        )
    multiplier = (100.0 + value) / 100.0 if percent else 1.0 + value
    return symbol, multiplier


def shock_scenario(shocks: Sequence[str]) -> Scenario:
    """A scenario from several ``ASSET=CHANGE`` strings (e.g. repeated ``--shock`` options).

    Symbols without price data (e.g. ``LINK``) are accepted and keyed by their
    upper-cased symbol. Two shocks on the same asset (``WETH`` and ``ETH`` included) are
    an error.
    """
    if isinstance(shocks, str):
        shocks = [shocks]
    items = list(shocks)
    if not items:
        raise InputError(f"no shock given; {_SHOCK_FORMAT}")
    multipliers: dict[str, float] = {}
    given: dict[str, str] = {}
    for text in items:
        symbol, mult = parse_shock(text)
        key = _canonical(symbol)
        if key in multipliers:
            raise InputError(f"asset {key} is shocked twice ({given[key]!r} and {text!r})")
        multipliers[key] = mult
        given[key] = text
    parts = [f"{sym} {_pct(m)}" for sym, m in multipliers.items()]
    return Scenario(
        name="shock " + ", ".join("".join(t.split()) for t in items),
        description="user shock: " + ", ".join(parts) + "; other assets unchanged",
        multipliers=multipliers,
        source="shock",
    )


# -- historical events --------------------------------------------------------------


class HistoricalEvent(NamedTuple):
    """A named stress window (inclusive ISO dates) in the shipped daily prices."""

    start: str
    end: str
    description: str


HISTORICAL_EVENTS: Mapping[str, HistoricalEvent] = MappingProxyType(
    {
        "2020-03-12": HistoricalEvent(
            "2020-03-08", "2020-03-16", "Black Thursday: COVID crash, ETH -42 % in a day, MakerDAO auctions at zero"
        ),
        "2021-05-19": HistoricalEvent(
            "2021-05-12", "2021-05-23", "May 2021 crash: China mining ban and leverage flush, ETH -42 % intraday"
        ),
        "2022-05-terra": HistoricalEvent(
            "2022-05-05", "2022-05-18", "Terra/LUNA collapse: UST depeg, contagion across crypto"
        ),
        "2022-11-ftx": HistoricalEvent(
            "2022-11-05", "2022-11-14", "FTX collapse: exchange insolvency, ETH -30 % in two days"
        ),
        "2023-03-usdc-depeg": HistoricalEvent(
            "2023-03-09", "2023-03-15", "USDC depeg: SVB failure, USDC intraday low 0.877"
        ),
    }
)


@dataclass(frozen=True, slots=True)
class HistoricalMove:
    """The worst ``horizon_days`` move of one asset inside an event window."""

    asset: str
    multiplier: float  # low / reference
    reference_date: str  # day whose close is the price before the move ("open" of window_start if no prior day)
    reference_price: float
    window_start: str  # first day of the worst sub-window
    window_end: str  # last day of the worst sub-window
    low_date: str  # day of the lowest low
    low: float


def scenario_names() -> list[str]:
    """Names of the built-in historical scenarios, oldest first."""
    return list(HISTORICAL_EVENTS)


def historical_moves(name: str, horizon_days: int = 3) -> dict[str, HistoricalMove]:
    """Worst ``horizon_days`` move of every data asset inside event ``name``.

    For each day ``t`` of the event window whose sub-window ``t .. t+h-1`` (calendar days)
    fits in the event window (if the window is shorter than ``h`` days, the whole window
    from its first day), the move is ``min(low over t .. t+h-1) / close of the day before
    t``; the worst (smallest) move is kept. Assets with no price data in the window are
    left out. Keys are data asset names in :data:`monitor.price_data.ASSETS` order.
    """
    event = _event(name)
    h = positive_int(horizon_days, "horizon_days")
    start = pd.Timestamp(event.start)
    end = pd.Timestamp(event.end)
    last_start = max(start, end - pd.Timedelta(days=h - 1))
    moves: dict[str, HistoricalMove] = {}
    for asset in price_data.ASSETS:
        move = _worst_move(asset, price_data.load_daily(asset), start, end, last_start, h)
        if move is not None:
            moves[asset] = move
    return moves


def historical_scenario(name: str, horizon_days: int = 3) -> Scenario:
    """The worst ``horizon_days`` move of every asset in a named event (see :func:`historical_moves`).

    Multipliers may exceed 1.0 for an asset that never traded below its prior close in
    the window. The description names the event, each asset's worst sub-window and the
    assets left out for lack of data.
    """
    event = _event(name)
    h = positive_int(horizon_days, "horizon_days")
    moves = historical_moves(name, h)
    missing = [a for a in price_data.ASSETS if a not in moves]
    details = [
        f"{a} x{m.multiplier:.4f} ({_pct(m.multiplier)}: low {m.low:.6g} on {m.low_date}"
        f" vs close {m.reference_price:.6g} on {m.reference_date}; window {m.window_start}..{m.window_end})"
        for a, m in moves.items()
    ]
    description = (
        f"{event.description}. Worst {h}-day move from the prior close to the intraday low,"
        f" event window {event.start}..{event.end}: " + "; ".join(details)
    )
    if missing:
        description += f". No price data in the window (left unchanged): {', '.join(missing)}"
    return Scenario(
        name=f"{name} {h}d",
        description=description,
        multipliers={a: m.multiplier for a, m in moves.items()},
        source="historical",
    )


def _event(name: str) -> HistoricalEvent:
    if not isinstance(name, str) or name not in HISTORICAL_EVENTS:
        raise InputError(f"unknown historical scenario {name!r}; known: {', '.join(HISTORICAL_EVENTS)}")
    return HISTORICAL_EVENTS[name]


def _worst_move(
    asset: str, daily: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, last_start: pd.Timestamp, h: int
) -> HistoricalMove | None:
    dates = pd.DatetimeIndex(daily.index)
    lows = daily["low"].to_numpy(dtype=np.float64)
    closes = daily["close"].to_numpy(dtype=np.float64)
    opens = daily["open"].to_numpy(dtype=np.float64)
    inside = np.flatnonzero((dates >= start) & (dates <= end))
    if inside.size == 0:
        return None
    candidates = [int(i) for i in inside if dates[i] <= last_start] or [int(inside[0])]
    best: HistoricalMove | None = None
    for i in candidates:
        stop = min(dates[i] + pd.Timedelta(days=h - 1), end)
        rows = inside[(inside >= i) & (dates[inside] <= stop)]
        j = int(rows[np.argmin(lows[rows])])
        if i > 0:
            ref_price, ref_date = float(closes[i - 1]), _day(dates[i - 1])
        else:  # first day of the data: the day's open is the price before the move
            ref_price, ref_date = float(opens[i]), _day(dates[i]) + " open"
        mult = float(lows[j]) / ref_price
        if best is None or mult < best.multiplier:
            best = HistoricalMove(
                asset=asset,
                multiplier=mult,
                reference_date=ref_date,
                reference_price=ref_price,
                window_start=_day(dates[i]),
                window_end=_day(dates[int(rows[-1])]),
                low_date=_day(dates[j]),
                low=float(lows[j]),
            )
    return best


# -- correlated shock ---------------------------------------------------------------


def correlated_scenario(
    main: str, shock: float, assets: Sequence[str], *, lookback_days: int = 365, end: str | None = None
) -> Scenario:
    """Shock ``main`` by ``shock`` (a fraction, -0.3 == -30 %) and move the others with it.

    Each other asset moves by its conditional expectation given the main asset's log
    move: ``ln m_i = beta_i * ln(1 + shock)`` with ``beta_i = cov(i, main) / var(main)``
    from the EWMA covariance (lam 0.94) of joint daily log returns over the
    ``lookback_days`` calendar days ending at ``end`` (default: the last day all have).
    Stablecoins come out near 1. ``main`` is included even if not in ``assets``.
    """
    s = finite_number(shock, "shock")
    if s <= -1.0:
        raise InputError(f"shock {shock}: a shock of -100 % or deeper would make the price zero or negative")
    if isinstance(assets, str):
        raise InputError(f"assets must be a sequence of names, got the string {assets!r}")
    main_asset = price_data.resolve_asset(main)
    others = list(dict.fromkeys(price_data.resolve_asset(a) for a in assets))
    names = [main_asset, *[a for a in others if a != main_asset]]
    cov = asset_covariance(names, end=end, window_days=positive_int(lookback_days, "lookback_days"))
    var_main = float(cov[0, 0])
    if var_main <= 0.0:
        raise InputError(f"{main_asset} has zero variance over the lookback; cannot condition on its move")
    betas = cov[:, 0] / var_main
    log_move = math.log1p(s)
    multipliers = {a: math.exp(float(b) * log_move) for a, b in zip(names, betas, strict=True)}
    multipliers[main_asset] = 1.0 + s
    betas_text = ", ".join(
        f"{a} beta {float(b):.3f} -> {_pct(multipliers[a])}" for a, b in zip(names, betas, strict=True)
    )
    window = f"{lookback_days} days ending {end}" if end is not None else f"last {lookback_days} days of data"
    return Scenario(
        name=f"correlated {main_asset} {_pct(1.0 + s)}",
        description=(
            f"{main_asset} {_pct(1.0 + s)}, others by EWMA beta to {main_asset} on daily log returns"
            f" ({window}): {betas_text}"
        ),
        multipliers=multipliers,
        source="correlated",
    )


# -- Monte Carlo --------------------------------------------------------------------


def monte_carlo_bootstrap(
    assets: Sequence[str],
    horizon_days: int,
    n_paths: int,
    rng: np.random.Generator,
    *,
    block_days: int = 5,
    start: str | None = None,
    end: str | None = None,
) -> Array:
    """Terminal multipliers ``[n_paths, len(assets)]`` from a block bootstrap of JOINT daily returns.

    See :func:`monte_carlo_bootstrap_paths`; this returns its terminal matrix only.
    """
    terminal, _ = monte_carlo_bootstrap_paths(
        assets, horizon_days, n_paths, rng, block_days=block_days, start=start, end=end
    )
    return terminal


def monte_carlo_bootstrap_paths(
    assets: Sequence[str],
    horizon_days: int,
    n_paths: int,
    rng: np.random.Generator,
    *,
    block_days: int = 5,
    start: str | None = None,
    end: str | None = None,
) -> tuple[Array, Array]:
    """``(terminal, minimum)`` multipliers, each ``[n_paths, len(assets)]``, of bootstrapped paths.

    Stationary bootstrap (Politis & Romano) of whole historical DAYS over the dates on
    which all assets have data (within start..end): each path is ``horizon_days`` days;
    each day continues the current block with the next historical day (wrapping at the
    end) or, with probability ``1 / block_days``, starts a new block at a uniformly
    random day, so blocks have mean length ``block_days`` and every asset gets the same
    dates (cross-asset correlation and short-range autocorrelation are kept).

    ``terminal`` is ``exp(sum of close-to-close log returns)``. ``minimum`` is the lowest
    point of the path relative to today, at most 1.0: on each path day the level is the
    previous close times that historical day's ``low / previous close``, so intraday lows
    count (for liquidation at any time on the path).
    """
    names = _asset_list(assets)
    h = positive_int(horizon_days, "horizon_days")
    n = positive_int(n_paths, "n_paths")
    b = positive_int(block_days, "block_days")
    _check_rng(rng)
    close_ret, low_ret = _joint_daily(names, start, end)
    n_days = close_ret.shape[0]
    p_new = 1.0 / b
    log_level = np.zeros((n, len(names)), dtype=np.float64)
    log_min = np.zeros((n, len(names)), dtype=np.float64)
    idx = rng.integers(0, n_days, size=n)
    for step in range(h):
        if step > 0:
            restart = rng.random(n) < p_new
            fresh = rng.integers(0, n_days, size=n)
            idx = np.where(restart, fresh, (idx + 1) % n_days)
        np.minimum(log_min, log_level + low_ret[idx], out=log_min)
        log_level += close_ret[idx]
        np.minimum(log_min, log_level, out=log_min)
    return np.exp(log_level), np.exp(log_min)


def monte_carlo_gbm(
    assets: Sequence[str],
    horizon_days: float,
    n_paths: int,
    rng: np.random.Generator,
    *,
    lam: float = DEFAULT_LAMBDA,
    end: str | None = None,
    lookback_days: int = 365,
) -> Array:
    """Terminal multipliers ``[n_paths, len(assets)]`` of a driftless correlated GBM.

    ``cov`` is the EWMA covariance (``lam``) of joint daily log returns over the
    ``lookback_days`` ending at ``end``; ``m = exp(-diag(cov)/2 * h + sqrt(h) * L z)`` with
    ``L = cholesky(cov)`` (a tiny diagonal jitter is added if ``cov`` is not positive
    definite) and ``z ~ N(0, I)``, so ``E[m] = 1`` for every asset.
    """
    names = _asset_list(assets)
    h = finite_number(horizon_days, "horizon_days")
    if h < 0.0:
        raise InputError(f"horizon_days must be >= 0, got {horizon_days}")
    n = positive_int(n_paths, "n_paths")
    _check_rng(rng)
    unique = list(dict.fromkeys(names))
    cov = asset_covariance(unique, end=end, window_days=positive_int(lookback_days, "lookback_days"), lam=lam)
    chol = _cholesky(cov)
    z = rng.standard_normal((n, len(unique)))
    log_m = -0.5 * np.diag(cov) * h + math.sqrt(h) * (z @ chol.T)
    cols = [unique.index(a) for a in names]
    return np.ascontiguousarray(np.exp(log_m)[:, cols], dtype=np.float64)


# -- internals ----------------------------------------------------------------------


def _joint_daily(names: Sequence[str], start: str | None, end: str | None) -> tuple[Array, Array]:
    """Per joint day: close-to-close log return and ``ln(low / previous close)``, ``[T, A]`` each."""
    unique = list(dict.fromkeys(names))
    frames = [price_data.load_daily(a) for a in unique]
    common = frames[0].index
    for frame in frames[1:]:
        common = common.intersection(frame.index)
    if start is not None or end is not None:
        # reuse price_data's date parsing and validation through load_closes
        common = common.intersection(price_data.load_closes(unique, start, end).index)
    if len(common) < 2:
        raise InputError(f"not enough joint price data for {', '.join(unique)} between {start} and {end}")
    close = np.column_stack([f.loc[common, "close"].to_numpy(dtype=np.float64) for f in frames])
    low = np.column_stack([f.loc[common, "low"].to_numpy(dtype=np.float64) for f in frames])
    prev = close[:-1]
    close_ret = np.log(close[1:] / prev)
    low_ret = np.minimum(np.log(low[1:] / prev), close_ret)
    cols = [unique.index(a) for a in names]
    return np.ascontiguousarray(close_ret[:, cols]), np.ascontiguousarray(low_ret[:, cols])


def _cholesky(cov: Array) -> Array:
    size = cov.shape[0]
    scale = float(np.trace(cov)) / size if size else 0.0
    jitter = 0.0
    for _ in range(12):
        try:
            return np.asarray(np.linalg.cholesky(cov + jitter * np.eye(size)), dtype=np.float64)
        except np.linalg.LinAlgError:
            jitter = max(jitter * 10.0, 1e-12 * max(scale, 1e-300))
    raise InputError("covariance matrix is not positive definite even with jitter")


def _asset_list(assets: Sequence[str]) -> list[str]:
    if isinstance(assets, str):
        raise InputError(f"assets must be a sequence of names, got the string {assets!r}")
    names = [price_data.resolve_asset(a) for a in assets]
    if not names:
        raise InputError(f"no assets given; known assets: {', '.join(price_data.ASSETS)}")
    return names


def _check_rng(rng: np.random.Generator) -> None:
    if not isinstance(rng, np.random.Generator):
        raise InputError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}"
        )


def _day(ts: pd.Timestamp) -> str:
    return str(pd.Timestamp(ts).strftime("%Y-%m-%d"))


def _pct(multiplier: float) -> str:
    return f"{(multiplier - 1.0) * 100.0:+.1f}%"
