"""Inhibition by grouping: an oracle anomaly gathers the position alerts it caused in the same tick.

As Alertmanager's inhibit rules keep a symptom from paging beside its cause, a price jump that
moves 20 positions into warning is ONE grouped alert, the anomaly first and the positions it
moved listed under it, not 21 messages. Here a position alert of the tick (any reason but a
repeat reminder) is caused by an oracle alert of the same tick (firing, escalating or stepping
down, not resolving) when the position holds the anomalous asset as collateral or debt; its
alert row gets ``cause`` = the oracle subject (``oracle:jump:WETH``), and the grouping stage
(:mod:`monitor.alerts.grouping`) lists it under that alert wherever both go to the same
destination. Nothing is dropped: a destination that does not receive the oracle alert gets the
position alert as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monitor.alerts.dedup import rank
from monitor.models import MarketSnapshot

ORACLE_PREFIX = "oracle:"


def oracle_asset(subject: str) -> str:
    """``oracle:jump:WETH`` -> ``WETH``."""
    return subject.rsplit(":", 1)[-1]


def attach_causes(snapshot: MarketSnapshot, alerts: Sequence[tuple[dict[str, Any], Sequence[dict[str, Any]]]]) -> int:
    """Set ``cause`` on the position alerts caused by an oracle alert of the same tick; returns how many."""
    causes: dict[str, tuple[int, str]] = {}  # asset (upper) -> (rank, subject) of its most severe oracle alert
    for row, _ in alerts:
        subject = row["subject"]
        if subject.startswith(ORACLE_PREFIX) and row["reason"] != "resolved" and row["severity"] != "ok":
            asset = oracle_asset(subject).upper()
            found = (rank(row["severity"]), subject)
            causes[asset] = max(causes.get(asset, found), found)
    if not causes:
        return 0
    alerted = {row["subject"].lower() for row, _ in alerts}  # the holdings of alerted accounts only
    holdings = {p.account.lower(): {leg.symbol.upper() for leg in p.legs if leg.collateral > 0 or leg.debt > 0}
                for p in snapshot.positions if p.account.lower() in alerted}  # fmt: skip
    moved = 0
    for row, _ in alerts:
        subject = row["subject"]
        if subject.startswith(ORACLE_PREFIX) or row["reason"] == "repeat":
            continue
        held = holdings.get(subject.lower(), set())
        hits = [causes[a] for a in held if a in causes]
        if hits:
            row["cause"] = max(hits)[1]
            moved += 1
    return moved
