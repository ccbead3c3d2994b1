"""One stress scenario across several markets at once, summed per scenario.

A named crash, a shock or a correlated move is one set of price multipliers by asset: every
market's book takes the same multiplier for the same asset (WETH on Aave, Morpho Blue and
Compound V3 alike), and the outcomes add up. Monte Carlo paths are drawn ONCE for the union of
the markets' assets, so each path moves every market together; the portfolio's VaR / ES are
quantiles of the per-path SUM of bad debt (not a sum of per-market VaRs, which would ignore
diversification and overstate or understate the tail).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor import price_data
from monitor.errors import InputError
from monitor.risk.book import Book
from monitor.risk.scenarios import Scenario
from monitor.risk.stress import ScenarioOutcomes, evaluate, position_outcomes

Array = NDArray[np.float64]


def data_names(books: Sequence[Book]) -> list[str]:
    """The price-data assets held across ``books`` (in first-seen order); symbols without data left out."""
    out: list[str] = []
    for book in books:
        for symbol in book.symbols:
            try:
                name = price_data.resolve_asset(symbol)
            except InputError:
                continue
            if name not in out:
                out.append(name)
    return out


def symbols_without_data(books: Sequence[Book]) -> list[str]:
    """The symbols held across ``books`` without price history (held constant in Monte Carlo)."""
    out = []
    for symbol in dict.fromkeys(s for b in books for s in b.symbols):
        try:
            price_data.resolve_asset(symbol)
        except InputError:
            out.append(symbol)
    return out


def check_scenario_assets(books: Sequence[Book], scenario: Scenario) -> None:
    """Every asset a user shock names is held in at least one of the markets."""
    known = {price_data.ALIASES.get(s.upper(), s.upper()) for b in books for s in b.symbols}
    unknown = [k for k in scenario.multipliers if k not in known]
    if unknown:
        held = sorted({s for b in books for s in b.symbols})
        raise InputError(f"unknown asset {', '.join(unknown)} in --shock: the markets hold {', '.join(held)}")


@dataclass(frozen=True, slots=True)
class MarketOutcome:
    market: str
    block: int
    summary: dict[str, Any]


def stress_books(books: Sequence[Book], scenario: Scenario) -> tuple[list[MarketOutcome], dict[str, Any]]:
    """The scenario on every book: per market the same summary as ``liqmon stress`` prints for
    one market, and their sum."""
    per: list[MarketOutcome] = []
    for book in books:
        out = position_outcomes(book, scenario.vector(book.symbols))
        per.append(MarketOutcome(book.market, book.block, {
            "positions": book.size,
            "liquidatable_before": int((out.hf_before < 1).sum()),
            "liquidatable": int(out.liquidatable.sum()),
            "debt_total_usd": float(book.debt.sum()),
            "debt_at_risk_usd": float(out.debt_at_risk.sum()),
            "collateral_seized_usd": float(out.collateral_seized.sum()),
            "bad_debt_usd": float(out.bad_debt.sum()),
        }))  # fmt: skip
    keys = per[0].summary.keys() if per else ()
    total = {k: sum(m.summary[k] for m in per) for k in keys}
    return per, total


def monte_carlo_books(
    books: Sequence[Book], names: Sequence[str], sampled: Array
) -> tuple[list[tuple[Book, ScenarioOutcomes]], ScenarioOutcomes]:
    """``sampled`` [paths, len(names)]: joint multipliers of the data assets ``names``. Each book
    takes its assets' columns (1.0 for assets without data); returns each book's outcomes per
    path and their per-path sum."""
    index = {n: k for k, n in enumerate(names)}
    paths = sampled.shape[0]
    per: list[tuple[Book, ScenarioOutcomes]] = []
    for book in books:
        m = np.ones((paths, len(book.symbols)))
        for j, symbol in enumerate(book.symbols):
            try:
                k = index.get(price_data.resolve_asset(symbol))
            except InputError:
                k = None
            if k is not None:
                m[:, j] = sampled[:, k]
        per.append((book, evaluate(book, m)))
    total = ScenarioOutcomes(
        liquidatable=np.sum([o.liquidatable for _, o in per], axis=0).astype(np.int64),
        debt_at_risk=np.sum([o.debt_at_risk for _, o in per], axis=0),
        collateral_seized=np.sum([o.collateral_seized for _, o in per], axis=0),
        bad_debt=np.sum([o.bad_debt for _, o in per], axis=0),
    )
    return per, total


def mc_summary(book_debt: float, positions: int, out: ScenarioOutcomes) -> dict[str, Any]:
    return {
        "positions": positions,
        "debt_total_usd": book_debt,
        "liquidatable_mean": float(out.liquidatable.mean()),
        "debt_at_risk_mean_usd": float(out.debt_at_risk.mean()),
        "bad_debt_mean_usd": float(out.bad_debt.mean()),
        "bad_debt_var95_usd": out.var(0.95),
        "bad_debt_var99_usd": out.var(0.99),
        "bad_debt_es95_usd": out.expected_shortfall(0.95),
        "bad_debt_es99_usd": out.expected_shortfall(0.99),
    }
