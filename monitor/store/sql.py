"""Small SQL builders shared by the queries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Clause = tuple[str, tuple[Any, ...]]


def _live(alias: str) -> str:
    """SQL: the row of ``alias`` is not on a block marked orphaned."""
    return (
        "NOT EXISTS (SELECT 1 FROM orphaned_blocks AS ob"
        f" WHERE ob.market = {alias}.market AND ob.block = {alias}.block)"
    )


def _where(clauses: Sequence[Clause]) -> tuple[str, list[Any]]:
    """``[("block >= ?", (5,)), ...]`` -> ``("WHERE block >= ? AND ...", [5, ...])``."""
    if not clauses:
        return "", []
    params = [value for _, values in clauses for value in values]
    return "WHERE " + " AND ".join(sql for sql, _ in clauses), params


def _market_clause(column: str, market: str | None) -> list[Clause]:
    return [] if market is None else [(f"{column} = ?", (market,))]
