"""Prices for the backtest at any granularity: the shipped daily OHLC or a CSV file.

A :class:`PriceSet` is a regular grid of bars (daily, hourly, ...): ``times[t]`` is the unix
time of bar ``t``'s CLOSE, and ``close / low / high [T, A]`` its prices per data asset (NaN
where an asset has no data yet). The backtest observes each close (the monitor's look) and
takes liquidations at each bar's adverse intraday point (its low or its high).

CSV format (``--prices FILE``), one row per (bar, asset), a header naming the columns::

    timestamp,asset,price                      # a close only (low = high = close)
    timestamp,asset,open,high,low,close        # OHLC bars (``open`` is optional)

``timestamp``: ISO 8601 (``2022-11-08``, ``2022-11-08T13:00:00Z``) or unix seconds; the time
of the bar's close, UTC. Every asset's bars must lie on one regular grid (the step is the
smallest spacing in the file); a bar missing inside an asset's record takes the previous close
(low = high = close). Errors name the file, the line and the value at fault.

Book symbols map to data assets by :func:`data_asset` (``WETH`` -> ``ETH``, ``WBTC`` -> ``BTC``).
Liquid staking tokens (``wstETH``, ``stETH``, ``rETH``, ``cbETH``) have no price in the shipped
data: unless the file carries them, they are SYNTHETIC, ETH times :func:`lst_ratio` (a seeded
exchange-rate drift with rare depegs; see there).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from monitor import price_data
from monitor.errors import InputError

__all__ = [
    "LST_SYMBOLS",
    "STABLES",
    "PriceSet",
    "book_prices",
    "data_asset",
    "load_prices_csv",
    "lst_ratio",
    "shipped_daily",
]

Array = NDArray[np.float64]

STABLES: frozenset[str] = frozenset({"USDC", "USDT", "DAI"})
LST_SYMBOLS: frozenset[str] = frozenset({"WSTETH", "STETH", "RETH", "CBETH"})
HOUR_S = 3600
DAY_S = 86400


@dataclass(frozen=True, slots=True)
class PriceSet:
    """Bars on a regular grid; columns are data assets (``symbols``), NaN = no data."""

    times: NDArray[np.int64]  # [T] unix seconds of each bar's close, strictly increasing, regular
    symbols: tuple[str, ...]
    close: Array  # [T, A]
    low: Array  # [T, A]
    high: Array  # [T, A]
    step_hours: float
    source: str

    @property
    def size(self) -> int:
        return int(self.times.shape[0])

    def column(self, symbol: str) -> int | None:
        key = symbol.upper()
        for i, s in enumerate(self.symbols):
            if s.upper() == key:
                return i
        return None

    def index_at(self, when: pd.Timestamp) -> int:
        """The first bar whose close is at or after ``when``."""
        ts = int(pd.Timestamp(when).timestamp())
        return int(np.searchsorted(self.times, ts, side="left"))

    def day(self, i: int) -> str:
        return str(pd.Timestamp(int(self.times[i]), unit="s").strftime("%Y-%m-%d %H:%M"))


def data_asset(symbol: str) -> str:
    """Book symbol -> data asset name (upper case): aliases applied (WETH -> ETH)."""
    key = symbol.strip().upper()
    return price_data.ALIASES.get(key, key)


# -- the shipped daily data ----------------------------------------------------------------


def shipped_daily(assets: Sequence[str] | None = None) -> PriceSet:
    """The shipped Yahoo daily OHLC of ``assets`` (default all) on one calendar-day grid.

    The close of day ``D`` is stamped at ``D + 1 day`` 00:00 UTC (the end of the day). Days
    missing inside a record take the previous close (low = high = close)."""
    names = list(price_data.ASSETS if assets is None else dict.fromkeys(data_asset(a) for a in assets))
    frames = {a: price_data.load_daily(a) for a in names}
    first = min(f.index[0] for f in frames.values())
    last = max(f.index[-1] for f in frames.values())
    days = pd.date_range(first, last, freq="D")
    shape = (len(days), len(names))
    close, low, high = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    for j, a in enumerate(names):
        f = frames[a]
        frame = f.reindex(days)
        inside = (days >= f.index[0]) & (days <= f.index[-1])
        c = frame["close"].ffill().where(inside)
        close[:, j] = c.to_numpy(dtype=np.float64)
        low[:, j] = frame["low"].fillna(c).to_numpy(dtype=np.float64)
        high[:, j] = frame["high"].fillna(c).to_numpy(dtype=np.float64)
    times = (days + pd.Timedelta(days=1)).to_numpy().astype("datetime64[s]").astype(np.int64)
    return PriceSet(times, tuple(names), close, low, high, 24.0, "shipped daily OHLC (Yahoo Finance)")


# -- CSV files -------------------------------------------------------------------------------


def load_prices_csv(path: Path | str) -> PriceSet:
    """Parse and validate a prices CSV (format in the module docstring)."""
    p = Path(path)
    try:
        raw = pd.read_csv(p, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError as exc:
        raise InputError(f"--prices {p}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--prices {p}: cannot read it ({exc})") from exc
    except pd.errors.EmptyDataError as exc:
        raise InputError(f"--prices {p}: the file is empty; expected a header 'timestamp,asset,price'") from exc
    except pd.errors.ParserError as exc:
        raise InputError(f"--prices {p}: not a CSV file ({str(exc).splitlines()[0]})") from exc
    raw.columns = pd.Index([str(c).strip().lower() for c in raw.columns])
    cols = set(raw.columns)
    if {"timestamp", "asset"} - cols:
        raise InputError(
            f"--prices {p}: the header must name 'timestamp' and 'asset' and then 'price' or "
            f"'open,high,low,close'; got {', '.join(raw.columns)}"
        )
    ohlc = {"high", "low", "close"} <= cols
    if not ohlc and "price" not in cols:
        raise InputError(
            f"--prices {p}: no 'price' column and no 'high,low,close' columns (header: {', '.join(raw.columns)})"
        )
    if raw.empty:
        raise InputError(f"--prices {p}: a header but no rows")
    lines = np.arange(len(raw)) + 2  # 1-based, after the header

    def fail(i: int, msg: str) -> InputError:
        return InputError(f"--prices {p} line {int(lines[i])}: {msg}")

    times = _parse_times(raw["timestamp"], fail)
    assets = raw["asset"].str.strip().str.upper()
    empty = np.flatnonzero((assets == "").to_numpy())
    if empty.size:
        raise fail(int(empty[0]), "empty asset name")
    fields = ("high", "low", "close") if ohlc else ("price",)
    values: dict[str, Array] = {}
    for name in (*fields, *(("open",) if ohlc and "open" in cols else ())):
        text = raw[name].str.strip()
        num = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(num) | (num <= 0))
        if bad.size:
            i = int(bad[0])
            raise fail(i, f"{name} {raw[name].iloc[i]!r} is not a positive finite number")
        values[name] = num
    close = values["close"] if ohlc else values["price"]
    low = values["low"] if ohlc else close
    high = values["high"] if ohlc else close
    if ohlc:
        opn = values.get("open", close)
        bad = np.flatnonzero((low > np.minimum(opn, close) * (1 + 1e-9)) | (high < np.maximum(opn, close) * (1 - 1e-9)))
        if bad.size:
            i = int(bad[0])
            raise fail(i, f"low {low[i]:g} / high {high[i]:g} do not bracket open/close {opn[i]:g} / {close[i]:g}")
    frame = pd.DataFrame({"t": times, "asset": assets.to_numpy(), "close": close, "low": low, "high": high})
    dup = np.flatnonzero(frame.duplicated(["t", "asset"]).to_numpy())
    if dup.size:
        i = int(dup[0])
        raise fail(i, f"a second row for {frame['asset'].iloc[i]} at {raw['timestamp'].iloc[i]}")
    grid = np.unique(times)
    if grid.size < 3:
        raise InputError(f"--prices {p}: {grid.size} distinct timestamps; the backtest needs a history of bars")
    step = int(np.diff(grid).min())
    off = np.flatnonzero((times - grid[0]) % step != 0)
    if off.size:
        i = int(off[0])
        raise fail(
            i, f"timestamp {raw['timestamp'].iloc[i]} is off the file's {step / 3600:g} h grid (bars must be regular)"
        )
    full = np.arange(grid[0], grid[-1] + step, step, dtype=np.int64)
    names = tuple(dict.fromkeys(frame["asset"]))
    shape = (full.size, len(names))
    c_out, l_out, h_out = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    for j, a in enumerate(names):
        rows = frame[frame["asset"] == a].sort_values("t")
        idx = ((rows["t"].to_numpy() - grid[0]) // step).astype(np.int64)
        c_col = np.full(full.size, np.nan)
        c_col[idx] = rows["close"].to_numpy()
        lo_col, hi_col = c_col.copy(), c_col.copy()
        lo_col[idx], hi_col[idx] = rows["low"].to_numpy(), rows["high"].to_numpy()
        filled = np.array(pd.Series(c_col).ffill().to_numpy(), dtype=np.float64)
        filled[full > rows["t"].iloc[-1]] = np.nan  # no data after an asset's last bar
        c_out[:, j] = filled
        l_out[:, j] = np.where(np.isnan(lo_col), filled, lo_col)
        h_out[:, j] = np.where(np.isnan(hi_col), filled, hi_col)
    return PriceSet(full, names, c_out, l_out, h_out, step / HOUR_S, f"{p.name} ({step / 3600:g} h bars)")


def _parse_times(col: pd.Series, fail: Callable[[int, str], InputError]) -> NDArray[np.int64]:
    """Unix seconds per row: whole numbers are unix seconds, anything else ISO 8601 (UTC if no zone)."""
    text = col.str.strip()
    numeric = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    is_num = np.isfinite(numeric)
    bad_num = is_num & ((numeric != np.floor(numeric)) | (numeric < 0))
    if bad_num.any():
        i = int(np.flatnonzero(bad_num)[0])
        raise fail(i, f"timestamp {col.iloc[i]!r} is not whole unix seconds")
    out = np.zeros(len(text), dtype=np.int64)
    out[is_num] = numeric[is_num].astype(np.int64)
    if not is_num.all():
        iso = text[~is_num]
        parsed = pd.to_datetime(iso, errors="coerce", utc=True, format="mixed")
        bad = np.flatnonzero(parsed.isna().to_numpy())
        if bad.size:
            i = int(np.flatnonzero(~is_num)[bad[0]])
            raise fail(i, f"timestamp {col.iloc[i]!r} is not ISO 8601 (e.g. 2022-11-08T13:00:00Z) or unix seconds")
        out[~is_num] = np.asarray(parsed.dt.tz_localize(None).to_numpy().astype("datetime64[s]"), dtype=np.int64)
    return out


# -- book columns --------------------------------------------------------------------------


def lst_ratio(times: NDArray[np.int64], seed: int = 11) -> Array:
    """SYNTHETIC LST/ETH price ratio at ``times`` (no LST price is shipped).

    ``ratio(t) = exp(0.035 * years since 2020) * (1 - depeg(t))``: the staking exchange rate
    grows ~3.5 %/year; depegs are rare (a Poisson rate of one every ~2 years, seeded), each a
    drop of 1-6 % reached over ~2 days and decaying with a ~20-day half-life. Aave's LST oracles
    price by the exchange rate, so real market depegs would not move an eMode HF; the depegs
    here are a stress the policy must tolerate, not a history."""
    t = np.asarray(times, dtype=np.int64)
    years = (t - 1577836800) / (365.25 * DAY_S)
    rng = np.random.default_rng(seed)
    span = (-6.0, 8.0)  # years around 2020 covered by the depeg draw
    n = int(rng.poisson((span[1] - span[0]) / 2.0))
    at = np.sort(rng.uniform(span[0], span[1], n))
    depth = rng.uniform(0.01, 0.06, n)
    dep = np.zeros(t.shape, dtype=np.float64)
    for a, d in zip(at, depth, strict=True):
        dt = (years - a) * 365.25  # days since the depeg began
        ramp = np.clip(dt / 2.0, 0.0, 1.0)
        decay = 0.5 ** np.clip((dt - 2.0) / 20.0, 0.0, 60.0)
        dep = np.maximum(dep, np.where(dt >= 0, d * ramp * decay, 0.0))
    out: Array = np.exp(0.035 * years) * (1.0 - dep)
    return out


@dataclass(frozen=True, slots=True)
class BookPrices:
    """The prices of a book's columns: ``close / low / high [T, A]`` in book-symbol order."""

    prices: PriceSet  # columns = the book's symbols
    observed: NDArray[np.bool_]  # [T, A] a price from the data (or the LST model), not a peg filled in
    synthetic: tuple[str, ...]  # book symbols priced synthetically (LST = ETH x ratio)
    pegged: tuple[str, ...]  # stablecoins held at 1 USD before their data begins
    missing: tuple[str, ...]  # book symbols with no price at all (their positions are left out)


def book_prices(prices: PriceSet, symbols: Sequence[str], *, lst_seed: int = 11) -> BookPrices:
    """Columns for ``symbols`` from ``prices``: aliases resolved, LSTs synthesised from ETH when
    absent, stablecoins held at 1.0 before their first bar (documented in the output notes)."""
    t_n = prices.size
    cols_c, cols_l, cols_h = [], [], []
    filled: list[NDArray[np.bool_]] = []
    synthetic, pegged, missing = [], [], []
    for s in symbols:
        key = data_asset(s)
        j = prices.column(key)
        if j is None and key in LST_SYMBOLS and prices.column("ETH") is not None:
            e = prices.column("ETH")
            assert e is not None
            r = lst_ratio(prices.times, lst_seed)
            cols_c.append(prices.close[:, e] * r)
            cols_l.append(prices.low[:, e] * r)
            cols_h.append(prices.high[:, e] * r)
            filled.append(np.zeros(t_n, dtype=bool))
            synthetic.append(s)
            continue
        if j is None:
            if key in STABLES:
                one = np.ones(t_n)
                cols_c.append(one)
                cols_l.append(one)
                cols_h.append(one)
                filled.append(np.ones(t_n, dtype=bool))
                pegged.append(s)
            else:
                nan = np.full(t_n, np.nan)
                cols_c.append(nan)
                cols_l.append(nan)
                cols_h.append(nan)
                filled.append(np.zeros(t_n, dtype=bool))
                missing.append(s)
            continue
        c, lo, hi = prices.close[:, j].copy(), prices.low[:, j].copy(), prices.high[:, j].copy()
        before = np.zeros(t_n, dtype=bool)
        if key in STABLES:
            before = ~np.isfinite(c) & (np.cumsum(np.isfinite(c)) == 0)
            if before.any():
                c[before], lo[before], hi[before] = 1.0, 1.0, 1.0
                pegged.append(s)
        filled.append(before)
        cols_c.append(c)
        cols_l.append(lo)
        cols_h.append(hi)
    out = PriceSet(
        prices.times, tuple(symbols), np.column_stack(cols_c), np.column_stack(cols_l), np.column_stack(cols_h),
        prices.step_hours, prices.source,
    )  # fmt: skip
    observed = np.isfinite(out.close) & ~np.column_stack(filled)
    return BookPrices(out, observed, tuple(synthetic), tuple(pegged), tuple(missing))


def log_returns(close: Array) -> Array:
    """``[T-1, A]`` close-to-close log returns (NaN where either close is missing)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out: Array = np.diff(np.log(close), axis=0)
    return out


def steps_for(hours: float, step_hours: float, what: str) -> int:
    """A duration in whole bars (at least 1)."""
    if not math.isfinite(hours) or hours <= 0:
        raise InputError(f"{what} must be > 0 hours, got {hours}")
    return max(1, round(hours / step_hours))
