"""What the position tracker needs from a protocol's follower (Aave V3, Morpho Blue, Compound V3).

A follower follows the accounts of ONE configured market (one reader) block by block after ONE
full read, and hands the followed state to everyone below as :class:`~monitor.models.MarketSnapshot`
objects (risk, thresholds, alerts and history speak those). The tracker
(:mod:`monitor.positions.tracker`) owns one follower per market and drives it:

1. :meth:`Follower.start` once (the full read at a pinned block);
2. :meth:`Follower.step` to each new head (or in bounded catch-up batches): the block's events
   applied, the touched accounts and the market state re-read, the reconciliation sample re-read
   and compared; new borrowers the events name are followed from then on and reported in
   :attr:`StepReport.discovered` (the tracker adds them to the store's accounts);
3. :meth:`Follower.unwind` when a reorg (proven by a second observation) replaced the blocks
   after ``to_block``: what those blocks changed is read again at the next step, never guessed;
4. :meth:`Follower.snapshots` after each step: the followed state at :attr:`Follower.block`.

Every follower reconciles itself (a rotating sample each block, all every N blocks, as
configured); :meth:`Follower.reconcile` re-reads accounts on demand. Each difference found is a
:class:`Difference`: a metric, a log line with the account, and the chain's state taken.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from monitor.chain.blocks import BlockRef
from monitor.models import MarketSnapshot

log = logging.getLogger("liqmon")


@dataclass(frozen=True, slots=True)
class Difference:
    """One field where the followed state and the chain disagree at ``block``."""

    account: str
    field: str  # "collateral[WETH]", "debt[USDC]", "configuration", "emode", "health_factor", ...
    local: int
    chain: int
    block: int
    source: str  # "touched" (the block's read of the accounts its events touched) or "reconcile"

    def as_dict(self) -> dict[str, object]:
        return {
            "account": self.account, "field": self.field, "local": str(self.local), "chain": str(self.chain),
            "block": self.block, "source": self.source,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class StepReport:
    """What one :meth:`Follower.step` did."""

    from_block: int
    to_block: int
    logs: int
    events: int
    touched: tuple[str, ...]  # followed accounts the events of [from_block, to_block] touched
    read: tuple[str, ...]  # accounts read in the block's account read
    reconciled: int
    differences: tuple[Difference, ...]
    requests: int
    requests_by_method: dict[str, int]
    cpu_seconds: float
    refreshed: bool = False  # market parameters read again (an admin / configurator event)
    resynced: bool = False  # the whole market read again
    discovered: tuple[str, ...] = ()  # new accounts the events named, followed from this step on


@runtime_checkable
class Follower(Protocol):
    """One configured market followed block by block (see the module docstring)."""

    protocol: str  # "aave_v3", "morpho_blue", "compound_v3": the config market's protocol

    @property
    def block(self) -> int:
        """The last followed block (the block the snapshots describe); -1 before :meth:`start`."""
        ...

    @property
    def followed(self) -> Sequence[str]:
        """The accounts followed (checksummed)."""
        ...

    def start(self, block: BlockRef) -> object:
        """ONE full read of the market and every followed account at ``block`` (what it returns,
        if anything, the tracker does not use)."""

    def step(self, to_block: int) -> StepReport:
        """Follow from :attr:`block` + 1 to ``to_block`` (one block, or a catch-up range). Every
        read of the step is pinned to ``to_block``; after it :attr:`block` == ``to_block``."""
        ...

    def unwind(self, to_block: int) -> set[str]:
        """A reorg replaced the blocks after ``to_block``: forget them (:attr:`block` becomes
        ``to_block``); what they changed is read again at the next :meth:`step` (a full read when
        the follower does not know). Returns the accounts to be read again."""
        ...

    def add_accounts(self, accounts: Iterable[str]) -> None:
        """Follow ``accounts`` too (found by the historical discovery); read in full at the next step."""

    def reconcile(self, accounts: Sequence[str] | None = None, block: int | None = None) -> list[Difference]:
        """Re-read ``accounts`` (default: all) in full at ``block`` (default: :attr:`block`),
        compare exactly, take the chain's state; returns every difference."""
        ...

    def snapshots(self, block_hash: str, timestamp: int) -> list[MarketSnapshot]:
        """The followed state at :attr:`block` (``block_hash`` / ``timestamp`` its header's),
        one snapshot per market of the reader (Morpho: per market id)."""
        ...


def note_differences(
    market: str, differences: list[Difference], counts: Counter[str], kept: list[Difference]
) -> list[Difference]:
    """Count, log (with the account) and keep each difference a follower found between its state
    and the chain (the chain's state is then taken); returns ``differences``."""
    for d in differences:
        counts[d.source] += 1
        log.warning(
            "%s: followed state differs from the chain: %s %s local=%d chain=%d at block %d (%s); chain's taken",
            market, d.account, d.field, d.local, d.chain, d.block, d.source,
            extra={"market": market, "account": d.account, "field": d.field, "block": d.block},
        )  # fmt: skip
    kept += differences
    return differences


def rotating_sample(
    followed: Sequence[str], cursor: int, block: int, size: int, all_every: int
) -> tuple[list[str], int]:
    """A follower's reconciliation sample at ``block`` and the cursor after it: every account every
    ``all_every`` blocks, else the next ``size`` accounts of the sorted list from ``cursor``
    (wrapping), else none."""
    ordered = sorted(followed)
    if all_every and block % all_every == 0:
        return ordered, cursor
    if not size or not ordered:
        return [], cursor
    k = min(size, len(ordered))
    start = cursor % len(ordered)
    return (ordered[start:] + ordered[:start])[:k], start + k

