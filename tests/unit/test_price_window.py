"""The in-memory volatility window: the same market state as the full list of stored rows,
with the rows that repeat a price left out, a symbol whose price never moves kept, old rows
trimmed for good."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from monitor.risk.policy import market_state_from_history
from monitor.risk.price_window import PriceWindow
from tests.unit.test_store import make_snapshot

DAY = 86_400.0


def _rows(seed: int, n: int) -> list[dict[str, object]]:
    """Store-like price rows (by block, then asset) of two symbols; prices repeat often."""
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    price = {"WETH": 2000.0, "USDC": 1.0}
    t = 1_700_000_000
    for block in range(n):
        t += rng.choice((12, 12, 600, 3600, 86_400))
        if rng.random() < 0.3:
            price["WETH"] *= float(np.exp(rng.gauss(0, 0.03)))
        for symbol in ("USDC", "WETH"):
            rows.append({"symbol": symbol, "timestamp": t, "price_usd": price[symbol], "block": block})
    return rows


@pytest.mark.parametrize("seed", range(8))
def test_same_market_state_as_every_row(seed: int) -> None:
    rows = _rows(seed, 400)
    window = PriceWindow.of_rows(400, rows)
    now = float(rows[-1]["timestamp"])  # type: ignore[arg-type]
    full: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        full.setdefault(str(r["symbol"]), []).append((float(r["timestamp"]), float(r["price_usd"])))  # type: ignore[arg-type]
    kept = window.history(now)
    old = market_state_from_history(["WETH", "USDC"], full, now)
    new = market_state_from_history(["WETH", "USDC"], kept, now)
    np.testing.assert_array_equal(old.log_returns, new.log_returns)
    assert sum(len(v) for v in kept.values()) < sum(len(v) for v in full.values())  # repeats left out
    assert len(kept["USDC"]) == 2  # the first row and the newest repeat


def test_append_skips_old_blocks_and_trims_to_the_window() -> None:
    window = PriceWindow(days=2)
    first = make_snapshot(100)
    window.append(first)
    window.append(first)  # the same block again: not added twice
    assert {s: len(v) for s, v in window.history(first.timestamp).items()} == {"WETH": 1, "USDC": 1}
    later = replace(make_snapshot(101), timestamp=first.timestamp + int(3 * DAY))
    window.append(later)
    history = window.history(later.timestamp)
    assert {s: [t for t, _ in v] for s, v in history.items()} == {
        "WETH": [later.timestamp], "USDC": [later.timestamp]}  # fmt: skip
    assert window.history(later.timestamp + 10 * DAY) == {}  # nothing newer: all trimmed
