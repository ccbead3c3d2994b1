"""One market's oracle prices of the last ``days`` in memory: the volatility window.

Loaded ONCE from the store (:meth:`PriceWindow.of_rows`), then appended with each new block's
prices and trimmed to ``days``, so a tick's cost does not grow with the history stored (it
was a re-read of every stored price of the last 400 days at every tick).

Per symbol a row is kept when its price differs from the one before, and the newest row (so a
symbol whose price does not move stays in the window). The policy's market state
(:func:`monitor.risk.policy.market_state_from_history`) takes, at each grid point, the last
price at or before it: the same with or without the rows that repeat a price, and the first
row of each symbol is kept, so its grid starts where it did. (Only after ``days`` of running
can the two differ: the re-read's grid started at the first block inside the window, the
window's at the first change inside it; such days weigh ~1e-10 in the EWMA.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from monitor.models import MarketSnapshot

History = Mapping[str, Sequence[tuple[float, float]]]


@dataclass
class _Series:
    """(time, usd) rows in a growable array; ``start`` is the first row still in the window."""

    data: np.ndarray = field(default_factory=lambda: np.empty((64, 2)))
    size: int = 0
    start: int = 0
    tail: bool = False  # the last row repeats the price before it (its time moves with each repeat)

    def add(self, t: float, usd: float) -> None:
        if self.size and self.data[self.size - 1, 1] == usd:
            if self.tail:  # the same price again: only the newest repeat is kept
                self.data[self.size - 1, 0] = t
                return
            self.tail = True
        else:
            self.tail = False
        if self.size == len(self.data):
            kept = self.data[self.start : self.size]
            grown = np.empty((max(64, 2 * len(kept)), 2))
            grown[: len(kept)] = kept
            self.data, self.size, self.start = grown, len(kept), 0
        self.data[self.size] = (t, usd)
        self.size += 1

    def since(self, t: float) -> np.ndarray:
        self.start += int(np.searchsorted(self.data[self.start : self.size, 0], t, side="left"))
        return self.data[self.start : self.size]


@dataclass
class PriceWindow:
    """One market's price rows per symbol, ``days`` long (see the module docstring)."""

    days: float
    series: dict[str, _Series] = field(default_factory=dict)
    last_block: int = -1

    @classmethod
    def of_rows(cls, days: float, stored: Iterable[Mapping[str, Any]]) -> PriceWindow:
        """From price rows as the store returns them (ordered by block, then asset)."""
        window = cls(days)
        for row in stored:
            window._add(str(row["symbol"]), float(row["timestamp"]), float(row["price_usd"]))
            window.last_block = max(window.last_block, int(row["block"]))
        return window

    def _add(self, symbol: str, t: float, usd: float) -> None:
        self.series.setdefault(symbol, _Series()).add(t, usd)

    def append(self, snapshot: MarketSnapshot) -> None:
        """The snapshot's prices, one per reserve as the store writes them (``price / unit``);
        a block not newer than the last appended is skipped (the store replaces, never adds)."""
        if snapshot.block <= self.last_block:
            return
        unit = snapshot.base_currency_unit
        t = float(snapshot.timestamp)
        for reserve in sorted(snapshot.reserves, key=lambda r: r.asset):
            self._add(reserve.symbol, t, reserve.price / unit)
        self.last_block = snapshot.block

    def history(self, now: float) -> History:
        """symbol -> (time, usd) rows at or after ``now - days`` (an ``[n, 2]`` array each, which
        the readers take as they take the list of pairs); older rows are dropped for good."""
        since = now - self.days * 86_400
        out: dict[str, np.ndarray] = {}
        for symbol, series in self.series.items():
            rows = series.since(since)
            if len(rows):
                out[symbol] = rows
        return cast(History, out)
