"""Helpers of the Morpho / Comet follow tests: the comparison of a follower's snapshots with the
reader's full re-read."""

from __future__ import annotations

from collections.abc import Sequence

from monitor.models import MarketSnapshot
from monitor.positions.base import Difference


def describe(differences: Sequence[Difference]) -> list[tuple[str, str, int, int, int, str]]:
    return [(d.account, d.field, d.local, d.chain, d.block, d.source) for d in differences[:10]]


def position_rows(snapshots: Sequence[MarketSnapshot]) -> dict[tuple[str, str], tuple[object, ...]]:
    """Every position of ``snapshots`` keyed by (market, account): HF (both verdicts), totals, legs."""
    return {
        (s.market, p.account): (
            p.health_factor, p.health_factor_stored_index, p.total_collateral_base, p.total_debt_base,
            p.available_borrows_base, p.current_liquidation_threshold, p.ltv, p.user_configuration, p.legs,
        )
        for s in snapshots
        for p in s.positions
    }  # fmt: skip
