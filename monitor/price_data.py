"""Real daily USD prices shipped with the package (Yahoo Finance daily OHLC).

The CSV files live in ``monitor/data/prices/`` (see ``PROVENANCE.md`` there). Each
asset has one or two files; where two files overlap the later file wins. Rows with a
missing or non-positive price (the files hold a few literal ``null`` rows) are dropped,
so a handful of calendar days are absent from the series.

Dates are UTC calendar days, returned as a naive, normalised ``DatetimeIndex`` named
``"date"``. Date arguments (``start``/``end``) are ISO strings such as ``"2020-03-12"``
and are inclusive.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources

import numpy as np
import pandas as pd

from monitor.errors import InputError

__all__ = [
    "ALIASES",
    "ASSETS",
    "intraday_path",
    "load_closes",
    "load_daily",
    "log_returns",
    "resolve_asset",
]

ASSETS: tuple[str, ...] = ("BTC", "DAI", "ETH", "SOL", "USDC", "USDT")

# Token symbols that track a data asset one-to-one.
ALIASES: dict[str, str] = {"WETH": "ETH", "WBTC": "BTC"}

# Files per asset, oldest first: on overlapping dates a later file wins.
_FILES: dict[str, tuple[str, ...]] = {
    "BTC": ("BTC-USD.2014-2021.csv", "BTC-USD.2021-2023.csv"),
    "DAI": ("DAI-USD.2021-2023.csv",),
    "ETH": ("ETH-USD.2015-2021.csv", "ETH-USD.2021-2023.csv"),
    "SOL": ("SOL-USD.2021-2023.csv",),
    "USDC": ("USDC-USD.2021-2023.csv",),
    "USDT": ("USDT-USD.2021-2023.csv",),
}

_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")


def resolve_asset(asset: str) -> str:
    """Map a symbol (any case, ``WETH``/``WBTC`` aliases allowed) to a data asset."""
    if not isinstance(asset, str):
        raise InputError(f"asset must be a string, got {asset!r}; known assets: {_known()}")
    key = asset.strip().upper()
    key = ALIASES.get(key, key)
    if key not in ASSETS:
        raise InputError(
            f"unknown asset {asset!r}: no price data; known assets: {_known()}"
            f" (aliases: {', '.join(f'{a}->{t}' for a, t in sorted(ALIASES.items()))})"
        )
    return key


def load_daily(asset: str) -> pd.DataFrame:
    """Daily OHLC (float64) for ``asset``, indexed by UTC date, sorted and unique.

    Returns a fresh copy on every call; the parsed data is cached.
    """
    return _load_daily_cached(resolve_asset(asset)).copy()


def load_closes(assets: Sequence[str], start: str | None = None, end: str | None = None) -> pd.DataFrame:
    """Close prices of ``assets`` on the dates they all have (inner join), within start..end.

    Columns are the names exactly as given (so ``["WETH", "usdc"]`` gives columns
    ``WETH`` and ``usdc``).
    """
    if isinstance(assets, str):
        raise InputError(f"assets must be a sequence of names, got the string {assets!r}")
    names = list(assets)
    if not names:
        raise InputError(f"no assets given; known assets: {_known()}")
    if len(set(names)) != len(names):
        raise InputError(f"duplicate asset names in {names!r}")
    series = [_load_daily_cached(resolve_asset(name))["close"].rename(name) for name in names]
    closes = pd.concat(series, axis=1, join="inner").sort_index()
    closes = _slice(closes, start, end)
    closes.columns = pd.Index(names)
    return closes.copy()


def intraday_path(asset: str, start: str, end: str) -> list[tuple[str, float]]:
    """A plausible walk of prices through the days ``start``..``end`` (inclusive).

    Each day contributes ``open``, then its two extremes, then ``close``. On a down day
    (close < open) the high comes first (open -> high -> low -> close); otherwise the
    low comes first (open -> low -> high -> close). Labels look like ``"2020-03-12 low"``.
    """
    day_rows = _slice(_load_daily_cached(resolve_asset(asset)), start, end)
    if day_rows.empty:
        raise InputError(f"no {asset} price data between {start} and {end}")
    path: list[tuple[str, float]] = []
    for ts, row in day_rows.iterrows():
        day = pd.Timestamp(ts).strftime("%Y-%m-%d")
        o, h, lo, c = (float(row[col]) for col in _COLUMNS)
        middle = (("high", h), ("low", lo)) if c < o else (("low", lo), ("high", h))
        path.append((f"{day} open", o))
        path.extend((f"{day} {name}", value) for name, value in middle)
        path.append((f"{day} close", c))
    return path


def log_returns(asset: str, start: str | None = None, end: str | None = None) -> pd.Series:
    """Daily close-to-close log returns, ``ln(close_t / close_prev)``.

    Uses the closes inside start..end, so N closes give N-1 returns, each indexed by the
    later day. Across a dropped (missing) day the return spans the gap.
    """
    closes = _slice(_load_daily_cached(resolve_asset(asset)), start, end)["close"]
    values = closes.to_numpy(dtype=np.float64)
    returns = np.log(values[1:] / values[:-1])
    return pd.Series(returns, index=closes.index[1:], name="log_return", dtype=np.float64)


# -- internals ----------------------------------------------------------------------


def _known() -> str:
    return ", ".join(ASSETS)


def parse_day(value: str, what: str = "date") -> pd.Timestamp:
    """A user-given date as a tz-naive UTC day (midnight); InputError naming ``what``."""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} {value!r} is not a date; use YYYY-MM-DD") from exc
    if pd.isna(ts):
        raise InputError(f"{what} {value!r} is not a date; use YYYY-MM-DD")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.normalize()


def _slice(frame: pd.DataFrame, start: str | None, end: str | None) -> pd.DataFrame:
    lo = parse_day(start, "start date") if start is not None else None
    hi = parse_day(end, "end date") if end is not None else None
    if lo is not None and hi is not None and lo > hi:
        raise InputError(f"start date {start} is after end date {end}")
    mask = np.ones(len(frame), dtype=bool)
    if lo is not None:
        mask &= frame.index >= lo
    if hi is not None:
        mask &= frame.index <= hi
    return frame.loc[mask]


def _read_file(name: str) -> pd.DataFrame:
    resource = resources.files("monitor").joinpath("data", "prices", name)
    with resource.open("r", encoding="utf-8") as fh:
        raw = pd.read_csv(fh, dtype=str, keep_default_na=False)
    missing = {"Date", "Open", "High", "Low", "Close"} - set(raw.columns)
    if missing:
        raise ValueError(f"price file {name} lacks columns {sorted(missing)}")
    frame = pd.DataFrame(
        {col: pd.to_numeric(raw[col.capitalize()], errors="coerce").astype(np.float64) for col in _COLUMNS}
    )
    frame.index = pd.DatetimeIndex(pd.to_datetime(raw["Date"], format="%Y-%m-%d", errors="coerce"), name="date")
    values = frame.to_numpy()
    valid = np.isfinite(values).all(axis=1) & (values > 0).all(axis=1)
    valid &= ~frame.index.isna()
    return frame.loc[valid]


@functools.lru_cache(maxsize=len(ASSETS))
def _load_daily_cached(asset: str) -> pd.DataFrame:
    """Parsed, merged OHLC for a canonical asset. Callers must not mutate the result."""
    parts = [_read_file(name) for name in _FILES[asset]]
    merged = pd.concat(parts)
    merged = merged[~merged.index.duplicated(keep="last")].sort_index()
    merged.index = pd.DatetimeIndex(merged.index, name="date")
    return merged.astype(np.float64)
