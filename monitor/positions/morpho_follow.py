"""Following Morpho Blue markets block by block: positions from events, totals and prices read.

After ONE full read (:meth:`MorphoFollower.start`: the markets through
:meth:`~monitor.protocols.morpho_blue.MorphoBlueReader.read_markets`, every followed account's
``position(id, account)`` in every followed market id), each :meth:`MorphoFollower.step` costs,
in steady state:

1. ONE ``eth_getLogs`` on the Morpho contract: topic0 any of
   :data:`~monitor.positions.morpho_events.WATCHED_TOPICS`, topic1 any followed market id; every
   position event applied to the followed shares / collateral exactly (Morpho's events carry the
   shares it stored, see :mod:`monitor.positions.morpho_events`);
2. ONE Multicall3 ``eth_call`` at the block holding the market state (``market(id)``: the
   totals ``toAssetsUp`` needs; and the oracle's ``price()``) of every followed id, the positions
   of the accounts the events touched in the markets they named (``verify_touched``: the
   event-applied position is compared field by field with the chain's, each difference counted,
   and the chain's taken), of accounts to read in full (new, dirty, unwound) and of the
   reconciliation sample (a rotating ``reconcile_sample`` every block, every account every
   ``reconcile_all_every`` blocks) — so reconciliation costs no extra request.

Every health factor then comes from the local shares and collateral with the reader's own exact
math (:meth:`MorphoBlueReader._position`: ``toAssetsUp`` on the stored totals, ``maxBorrow``
rounded down at each step), so it equals the reader's full re-read by construction of the inputs:
the reader values a position at the stored totals (no accrual since ``lastUpdate``), and so does
this follower.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from eth_utils import to_checksum_address

from monitor.chain.blocks import BlockRef, block_ref
from monitor.chain.logs import Log, iter_log_chunks
from monitor.chain.multicall import Call
from monitor.errors import DecodeError
from monitor.models import MarketSnapshot, Position
from monitor.positions import morpho_events as ev
from monitor.positions.base import Difference, StepReport, note_differences, rotating_sample
from monitor.protocols.base import required
from monitor.protocols.morpho_blue import (
    MARKET,
    POSITION,
    PRICE,
    PROTOCOL,
    MorphoBlueReader,
    MorphoMarketState,
    health_factor,
    market_name,
    to_assets_up,
)

log = logging.getLogger("liqmon")
TOUCHED_KEPT_BLOCKS = 256  # how far back unwind can name the accounts a block touched
FIELDS = ("supply_shares", "borrow_shares", "collateral")


@dataclass(slots=True)
class MorphoPosition:
    """``position(id, account)``: exact integers as Morpho stores them."""

    supply_shares: int = 0
    borrow_shares: int = 0
    collateral: int = 0

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.supply_shares, self.borrow_shares, self.collateral)

    def empty(self) -> bool:
        return not (self.supply_shares or self.borrow_shares or self.collateral)


def _counts(method_counts: Any) -> Counter[str]:
    return Counter(method_counts)


class MorphoFollower:
    """Follows ``accounts`` in every market id of ``reader`` (see the module docstring); a
    :class:`~monitor.positions.base.Follower`."""

    protocol = PROTOCOL

    def __init__(
        self,
        reader: MorphoBlueReader,
        accounts: Sequence[str],
        *,
        verify_touched: bool = True,
        reconcile_sample: int = 0,
        reconcile_all_every: int = 0,
        discover: bool = False,
    ) -> None:
        self.reader = reader
        self.client = reader.client
        self.multicall = reader.multicall
        self.morpho = reader.morpho
        self.ids = list(reader.market_ids)
        self.verify_touched = verify_touched
        self.reconcile_sample = max(0, reconcile_sample)
        self.reconcile_all_every = max(0, reconcile_all_every)
        self.discover = discover
        self.accounts: list[str] = [to_checksum_address(a) for a in dict.fromkeys(accounts)]
        self.markets: dict[str, MorphoMarketState] = {}
        self.positions: dict[tuple[str, str], MorphoPosition] = {}  # (market id, account) -> position
        self.touched: dict[int, set[str]] = {}  # block -> followed accounts its events touched
        self.dirty: set[str] = set()  # read in full (every id) at the next step
        self.needs_refresh = False  # a CreateMarket / SetFee of a followed id: read the markets again
        self.kept_from = 0
        self.inexact = 0  # events that could not be applied exactly (the account was read instead)
        self.difference_counts: Counter[str] = Counter()  # source -> differences found
        self.differences: list[Difference] = []
        self._block = -1
        self._cursor = 0

    # -- the Follower protocol's accessors --------------------------------------------------

    @property
    def block(self) -> int:
        return self._block

    @property
    def followed(self) -> Sequence[str]:
        return list(self.accounts)

    def add_accounts(self, accounts: Iterable[str]) -> None:
        known = set(self.accounts)
        for account in map(to_checksum_address, accounts):
            if account not in known:
                known.add(account)
                self.accounts.append(account)
                self.dirty.add(account)

    # -- the full read --------------------------------------------------------------------

    def start(self, block: BlockRef | int | str = "latest") -> dict[str, MorphoMarketState]:
        """ONE full read of the markets and every followed account's positions at ``block``."""
        ref = block if isinstance(block, BlockRef) else block_ref(self.client, block)
        self.markets = {m.id: m for m in self.reader.read_markets(ref.number)}
        self.positions = {}
        self.touched = {}
        self.dirty = set()
        self.needs_refresh = False
        self._block = ref.number
        self.kept_from = ref.number
        for account, chain in self._read_positions(self.accounts, ref.number).items():
            self._take(account, chain)
        return self.markets

    # -- one block ------------------------------------------------------------------------

    def step(self, to_block: int) -> StepReport:
        """Follow from :attr:`block` + 1 to ``to_block`` (one block, or a catch-up range)."""
        if self._block < 0:
            raise RuntimeError("MorphoFollower.start() must run before step()")
        cpu = time.process_time()
        before = _counts(self.client.method_counts)
        first = self._block + 1
        if to_block < first:
            return StepReport(first, to_block, 0, 0, (), (), 0, (), 0, {}, 0.0)
        logs = self.logs(first, to_block)
        events = ev.decode_logs(logs, self.morpho)
        touched, named, discovered = self._apply(events)
        refreshed = self.needs_refresh
        if self.needs_refresh:
            self.markets = {m.id: m for m in self.reader.read_markets(to_block)}
            self.needs_refresh = False
        sample = self._sample(to_block)
        full = sorted(self.dirty | set(discovered) | set(sample))
        verify = sorted(a for a in touched if a not in full) if self.verify_touched else []
        differences = self._read_block(to_block, verify, named, full, set(sample))
        self._block = to_block
        self._forget(to_block - TOUCHED_KEPT_BLOCKS)
        after = _counts(self.client.method_counts)
        by_method = {m: after[m] - before.get(m, 0) for m in after if after[m] - before.get(m, 0)}
        return StepReport(
            first, to_block, len(logs), len(events), tuple(sorted(touched)), tuple(sorted({*verify, *full})),
            len(sample), tuple(differences), sum(by_method.values()), by_method, time.process_time() - cpu,
            refreshed=refreshed, discovered=tuple(discovered),
        )  # fmt: skip

    def logs(self, first: int, last: int) -> list[Log]:
        """The Morpho contract's logs of the followed market ids in ``[first, last]``: ONE
        ``eth_getLogs`` (more only when the node limits the range)."""
        topics: list[str | list[str] | None] = [list(ev.WATCHED_TOPICS), list(self.ids)]
        out: list[Log] = []
        for _start, _end, chunk in iter_log_chunks(self.client, self.morpho, topics, first, last, self.reader.log_span):
            out += chunk
        return out

    def _apply(self, events: Sequence[ev.MorphoEvent]) -> tuple[set[str], dict[str, set[str]], list[str]]:
        """Apply ``events`` in chain order; returns (followed accounts touched, the market ids
        each one's events named, accounts discovered)."""
        followed = set(self.accounts)
        touched: set[str] = set()
        named: dict[str, set[str]] = {}
        discovered: list[str] = []
        for event in events:
            if event.market_id not in self.markets:
                continue  # another market's event (a node that ignores the topic1 filter)
            if isinstance(event, ev.MarketEvent):
                if event.kind in ("create_market", "set_fee"):
                    self.needs_refresh = True
                continue
            account = event.account
            if account not in followed:
                if self.discover and event.kind in ("borrow", "supply_collateral"):
                    followed.add(account)
                    self.accounts.append(account)
                    discovered.append(account)
                continue
            self.touched.setdefault(event.block, set()).add(account)
            if account in discovered:
                continue  # read in full at this block
            touched.add(account)
            named.setdefault(account, set()).add(event.market_id)
            key = (event.market_id, account)
            pos = self.positions.get(key) or MorphoPosition()
            after = MorphoPosition(
                pos.supply_shares + event.supply_shares,
                pos.borrow_shares + event.borrow_shares,
                pos.collateral + event.collateral,
            )
            if min(after.as_tuple()) < 0:
                self.dirty.add(account)  # more taken than followed: read it, never guess
                self.inexact += 1
                continue
            self._set(key, after)
        return touched, named, discovered

    # -- the block's ONE batched read -----------------------------------------------------

    def _market_calls(self) -> list[Call]:
        calls: list[Call] = []
        for market_id in self.ids:
            m = self.markets[market_id]
            calls += [Call(self.morpho, MARKET, (bytes.fromhex(market_id[2:]),)), Call(m.oracle, PRICE)]
        return calls

    def _position_calls(self, account: str, ids: Sequence[str]) -> list[Call]:
        return [Call(self.morpho, POSITION, (bytes.fromhex(i[2:]), account)) for i in ids]

    def _read_block(
        self, block: int, verify: Sequence[str], named: dict[str, set[str]], full: Sequence[str], sample: set[str]
    ) -> list[Difference]:
        plan: list[tuple[str, list[str]]] = [(a, sorted(named.get(a, set()))) for a in verify]
        plan += [(a, list(self.ids)) for a in full]
        groups = [self._market_calls()] + [self._position_calls(a, ids) for a, ids in plan]
        results = self.multicall.run_groups(groups, block)
        self._apply_markets(results[0])
        differences: list[Difference] = []
        for (account, ids), rows in zip(plan, results[1:], strict=True):
            chain = {i: _chain_position(row) for i, row in zip(ids, rows, strict=True)}
            if account in sample or account in verify:
                differences += self._note(self._compare(account, chain, block, "reconcile" if account in sample
                                                        else "touched"))  # fmt: skip
            self._take(account, chain)
            self.dirty.discard(account)
        return differences

    def _apply_markets(self, results: Sequence[tuple[Any, ...] | None]) -> None:
        if len(results) != 2 * len(self.ids):
            raise DecodeError(f"{self.reader.market}: {len(results)} market answers for {len(self.ids)} market ids")
        for k, market_id in enumerate(self.ids):
            st = required(results[2 * k])
            price = int(required(results[2 * k + 1])[0])
            self.markets[market_id] = replace(
                self.markets[market_id], total_borrow_assets=int(st[2]), total_borrow_shares=int(st[3]), price=price
            )

    def _read_positions(self, accounts: Sequence[str], block: int) -> dict[str, dict[str, MorphoPosition]]:
        results = self.multicall.run_groups([self._position_calls(a, self.ids) for a in accounts], block)
        return {
            a: {i: _chain_position(row) for i, row in zip(self.ids, rows, strict=True)}
            for a, rows in zip(accounts, results, strict=True)
        }

    # -- comparison, reconciliation -------------------------------------------------------

    def _set(self, key: tuple[str, str], pos: MorphoPosition) -> None:
        if pos.empty():
            self.positions.pop(key, None)
        else:
            self.positions[key] = pos

    def _take(self, account: str, chain: dict[str, MorphoPosition]) -> None:
        for market_id, pos in chain.items():
            self._set((market_id, account), pos)

    def _compare(self, account: str, chain: dict[str, MorphoPosition], block: int, source: str) -> list[Difference]:
        out: list[Difference] = []
        for market_id, theirs in chain.items():
            mine = self.positions.get((market_id, account)) or MorphoPosition()
            for name, a, b in zip(FIELDS, mine.as_tuple(), theirs.as_tuple(), strict=True):
                if a != b:
                    out.append(Difference(account, f"{name}[{market_id[2:10]}]", a, b, block, source))
        return out

    def _sample(self, block: int) -> list[str]:
        sample, self._cursor = rotating_sample(
            list(self.accounts), self._cursor, block, self.reconcile_sample, self.reconcile_all_every
        )
        return sample

    def reconcile(self, accounts: Sequence[str] | None = None, block: int | None = None) -> list[Difference]:
        """Re-read ``accounts`` (default: all followed) in every followed market at ``block``
        (default: :attr:`block`) and compare exactly; every difference is returned, counted and
        logged, and the chain's position replaces the local one."""
        at = self._block if block is None else block
        wanted = list(self.accounts) if accounts is None else [to_checksum_address(a) for a in accounts]
        differences: list[Difference] = []
        for account, chain in self._read_positions(wanted, at).items():
            differences += self._note(self._compare(account, chain, at, "reconcile"))
            self._take(account, chain)
        return differences

    def _note(self, differences: list[Difference]) -> list[Difference]:
        return note_differences(self.reader.market, differences, self.difference_counts, self.differences)

    # -- reorgs ---------------------------------------------------------------------------

    def _forget(self, before: int) -> None:
        for b in [b for b in self.touched if b < before]:
            del self.touched[b]
        self.kept_from = max(self.kept_from, before)

    def unwind(self, to_block: int) -> set[str]:
        """Forget the blocks after ``to_block``: the accounts their events touched are read in
        full at the next :meth:`step` (the market totals are read every block anyway); deeper
        than the kept window the whole state is read again at ``to_block``."""
        if to_block >= self._block:
            return set()
        if to_block + 1 < self.kept_from:
            self.start(to_block)
            return set(self.accounts)
        accounts: set[str] = set()
        for b in [b for b in self.touched if b > to_block]:
            accounts |= self.touched.pop(b)
        self.dirty |= accounts
        self._block = to_block
        return accounts

    # -- health factors and snapshots -----------------------------------------------------

    def position(self, market_id: str, account: str) -> Position | None:
        """``account``'s position in ``market_id`` with its HF recomputed locally (None when empty)."""
        pos = self.positions.get((market_id, account))
        if pos is None or not (pos.borrow_shares or pos.collateral):
            return None
        m = self.markets[market_id]
        return self.reader._position(market_name(self.reader.market, m), account, m, pos.borrow_shares,
                                     pos.collateral, self._block)  # fmt: skip

    def health_factors(self, market_id: str) -> dict[str, int]:
        """Every followed borrower's HF in ``market_id`` (WAD; MAX_UINT256 without debt), the
        reader's math on the local shares without building Positions."""
        m = self.markets[market_id]
        out: dict[str, int] = {}
        for account in self.accounts:
            pos = self.positions.get((market_id, account))
            if pos is None or not (pos.borrow_shares or pos.collateral):
                continue
            borrowed = to_assets_up(pos.borrow_shares, m.total_borrow_assets, m.total_borrow_shares)
            out[account] = health_factor(pos.collateral, m.price, m.lltv, borrowed if pos.borrow_shares else 0)
        return out

    def snapshots(self, block_hash: str = "", timestamp: int = 0) -> list[MarketSnapshot]:
        """The followed state at :attr:`block`, one snapshot per market id (as the reader's)."""
        ref = BlockRef(self._block, block_hash, timestamp)
        out = []
        for market_id in self.ids:
            m = self.markets[market_id]
            positions = [p for a in self.accounts if (p := self.position(market_id, a)) is not None]
            out.append(self.reader._snapshot(market_name(self.reader.market, m), m, positions, ref))
        return out


def _chain_position(row: tuple[Any, ...] | None) -> MorphoPosition:
    supply_shares, borrow_shares, collateral = required(row)
    return MorphoPosition(int(supply_shares), int(borrow_shares), int(collateral))
