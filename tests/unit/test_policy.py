"""The threshold policy (monitor/risk/policy.py): filtered historical simulation, levels by cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monitor.risk.book import Book
from monitor.risk.policy import (
    PolicyConfig,
    market_state_from_prices,
    position_levels,
)

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ("SOL", "USDC", "DAI", "WETH", "WBTC")
DAY = 86_400.0
FAST = PolicyConfig(paths=1000)


def leg(coll: dict[str, float], debt: dict[str, float], lt: float, bonus: float) -> tuple[np.ndarray, ...]:
    c, d = np.zeros(len(SYMBOLS)), np.zeros(len(SYMBOLS))
    for s, v in coll.items():
        c[SYMBOLS.index(s)] = v
    for s, v in debt.items():
        d[SYMBOLS.index(s)] = v
    return c, d, np.full(len(SYMBOLS), lt), np.full(len(SYMBOLS), bonus)


def make_book(rows: list[tuple[np.ndarray, ...]], market: str = "m") -> Book:
    c, d, lt, bonus = (np.array([r[i] for r in rows]) for i in range(4))
    accounts = tuple(f"0x{i + 1:040x}" for i in range(len(rows)))
    return Book(market, 0, accounts, SYMBOLS, np.ones(len(SYMBOLS)), c, d, lt, lt * 0.95, bonus)


SOL_USDC = leg({"SOL": 100_000}, {"USDC": 60_000}, 0.75, 1.10)
STABLE_EMODE = leg({"USDC": 100_000}, {"DAI": 92_000}, 0.975, 1.01)
WETH_USDC = leg({"WETH": 100_000}, {"USDC": 60_000}, 0.83, 1.05)
WETH_LOOP = leg({"WETH": 100_000}, {"WETH": 85_000}, 0.93, 1.01)


def test_classes_get_very_different_levels_on_an_ordinary_day() -> None:
    """The acceptance of issue 10 with the default (shipped) policy; the config test repeats it
    with the shipped config.yaml."""
    book = make_book([SOL_USDC, STABLE_EMODE, WETH_USDC, WETH_LOOP])
    pl = position_levels(book, market_state_from_prices(SYMBOLS, "2023-06-15"), PolicyConfig(), observe_hours=0.003)
    warning = pl.levels[:, 1]
    assert warning[1] <= 1.03 and warning[0] >= 1.20
    assert warning[0] > warning[2] > warning[1]  # alt/stable > blue-chip/stable > stable/stable
    assert pl.levels[3].tolist() == [1.0, 1.0, 1.0]  # the same asset on both sides cancels exactly
    assert pl.classes == ("SOL/USDC", "USDC/DAI", "WETH/USDC", "WETH/WETH")
    assert pl.reasons[0].startswith("SOL/USDC, 24 h: warn at ") and "%/day" in pl.reasons[0]
    assert (np.diff(pl.levels, axis=1) <= 0).all() and (pl.levels >= 1.0).all()
