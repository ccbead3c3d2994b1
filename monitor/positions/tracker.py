"""The position tracker: ONE home of the followed positions of every configured market.

Per config market (``liqmon run`` and ``liqmon demo``; ``liqmon scan`` keeps its one full read):

1. at the first :meth:`PositionTracker.advance`: the store's rows of blocks a reorg replaced
   while nothing ran are marked (the one 64-block check, :func:`monitor.scan.drop_orphaned_scans`),
   the historical borrowers are discovered as ``scan`` does (checkpointed in the store), and
   the protocol's follower (:mod:`monitor.positions.base`) makes ONE full read at the head;
2. every later advance: the head's header (ONE ``eth_getBlockByNumber``; with several endpoints
   the freshest one's head first) is checked against the hashes of the blocks followed, then the
   follower steps to it (in batches of ``daemon.catch_up_blocks`` when behind): ``eth_getLogs`` +
   one batched read, whatever the number of accounts. New borrowers its events name are recorded
   in the store's accounts (and the discovery checkpoint moves with the followed block);
3. markets whose protocol has no follower read every account in full at each head, as ``scan``.

Reorgs come from the headers already fetched: the head's ``parentHash`` against the hash of the
block followed before it (or, after skipped blocks, that block's header again). On a mismatch the
kept hashes are compared with the node's in ONE batch: the follower is unwound to the newest block
still canonical (what the replaced blocks changed is read again from the chain: never guessed,
never deleted); the stored rows of the replaced blocks are marked orphaned only when the reorg is
PROVEN as :func:`monitor.chain.reorg.verify` demands (deep enough, asked twice, a second endpoint
agreeing), re-checked at each advance until proven or found canonical. A node whose head is older
than the block followed (lag) changes nothing: no step, nothing deleted, a log line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from monitor.chain.blocks import BlockRef
from monitor.chain.feeds import FeedReading, read_feeds
from monitor.chain.reorg import ReorgTooDeep, canonical_hashes, verify
from monitor.chain.rpc import RpcClient, check_hash, to_int
from monitor.config import ChainConfig, Config, MarketConfig
from monitor.metrics import NULL_METRICS, Metrics
from monitor.models import MarketSnapshot
from monitor.positions.base import Follower, StepReport
from monitor.positions.comet_follow import CometFollower
from monitor.positions.follow import AaveFollower
from monitor.positions.morpho_follow import MorphoFollower
from monitor.protocols.aave_v3 import DISCOVERY, AaveV3Reader
from monitor.protocols.base import ProtocolReader
from monitor.protocols.compound_v3 import CompoundV3Reader
from monitor.protocols.morpho_blue import MorphoBlueReader
from monitor.scan import discover_accounts, drop_orphaned_scans, followed_accounts, make_reader, open_client
from monitor.store import Store

log = logging.getLogger("liqmon")
CHECKPOINT_EVERY = 64  # blocks between discovery-checkpoint moves when no new borrower appeared


@dataclass(frozen=True, slots=True)
class Header:
    """A block header as fetched: its reference and its parent's hash."""

    ref: BlockRef
    parent_hash: str


def fetch_header(client: RpcClient, block: int | str = "latest") -> Header:
    raw = client.get_block(block)
    ref = BlockRef(
        to_int(raw.get("number"), "block.number"),
        check_hash(raw.get("hash"), "block.hash"),
        to_int(raw.get("timestamp"), "block.timestamp"),
    )
    return Header(ref, check_hash(raw.get("parentHash"), "block.parentHash"))


@dataclass(frozen=True, slots=True)
class Tracked:
    """One market's state after an advance."""

    snapshot: MarketSnapshot
    feeds: dict[str, FeedReading]
    new_block: bool  # False: the block of the last advance again (nothing new to store)
    touched: frozenset[str] | None  # accounts the step read or its events touched; None: all read in full
    step: StepReport | None = None  # None: a full read
    new_accounts: int = 0
    orphaned: bool = False  # stored blocks of this market were marked orphaned (a proven reorg) meanwhile


FollowerFactory = Callable[[ProtocolReader, MarketConfig, ChainConfig, Sequence[str]], Follower | None]


@dataclass
class TrackedMarket:
    """What the tracker keeps for one config market."""

    config: MarketConfig
    chain: ChainConfig
    client: RpcClient
    reader: ProtocolReader
    follower: Follower | None  # None: a full read at each head
    block: int = -1  # the last block followed / read
    hashes: dict[int, str] = field(default_factory=dict)  # followed block -> hash (the reorg window)
    suspects: list[tuple[int, str]] = field(default_factory=list)  # stored blocks a reorg may have replaced
    names: set[str] = field(default_factory=set)  # the snapshot markets (Morpho: one per market id)
    last: list[Tracked] = field(default_factory=list)
    checkpointed: int = -1  # the block of the last discovery-checkpoint move
    broken: bool = False  # a step failed half-way: the next advance starts again (full read)
    orphaned: bool = False  # blocks marked orphaned since the last advance handed its state out

    def remember(self, header: Header) -> None:
        self.block = header.ref.number
        self.hashes[header.ref.number] = header.ref.hash
        keep = header.ref.number - self.chain.max_reorg_depth
        for b in [b for b in self.hashes if b < keep or b > header.ref.number]:
            del self.hashes[b]


def default_followers(config: Config) -> FollowerFactory:
    """The follower of each protocol (Aave V3 and its forks, Morpho Blue, Compound V3); ``None``
    (a full read at each head) for a reader without one."""
    daemon = config.daemon

    def make(
        reader: ProtocolReader, market: MarketConfig, chain: ChainConfig, accounts: Sequence[str]
    ) -> Follower | None:
        options: dict[str, Any] = {"discover": market.accounts is None, "reconcile_sample": daemon.reconcile_sample,
                                   "reconcile_all_every": daemon.reconcile_all_every}  # fmt: skip
        if isinstance(reader, AaveV3Reader):
            return AaveFollower(reader, accounts, max_log_range=chain.max_log_range, **options)
        if isinstance(reader, MorphoBlueReader):
            return MorphoFollower(reader, accounts, **options)
        if isinstance(reader, CompoundV3Reader):
            return CometFollower(reader, accounts, **options)
        return None

    return make


class PositionTracker:
    """Every configured market followed block by block (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        *,
        metrics: Metrics = NULL_METRICS,
        clock: Callable[[], float] = time.time,
        followers: FollowerFactory | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self.followers = followers or default_followers(config)
        self.clients: dict[str, RpcClient] = {}
        self.markets: dict[str, TrackedMarket] = {}
        self._polled: dict[str, Header] = {}

    # -- heads ----------------------------------------------------------------------------

    def client(self, chain: ChainConfig) -> RpcClient:
        if chain.name not in self.clients:
            self.clients[chain.name] = open_client(chain, str(self.config.source), observer=self.metrics)
        return self.clients[chain.name]

    def chains(self) -> list[ChainConfig]:
        return list({self.config.chain_for(m).name: self.config.chain_for(m) for m in self.config.markets}.values())

    def head(self, chain: ChainConfig) -> Header:
        """The chain's head header: ONE request with one endpoint; with several, every
        endpoint's head first (reads pinned to the freshest skip those that lag)."""
        client = self.client(chain)
        if len(client.usable_endpoints()) > 1:
            return fetch_header(client, client.freshest_head())
        return fetch_header(client, "latest")

    def poll(self) -> dict[str, tuple[int, str]]:
        """Every chain's head (number, hash), kept for the next :meth:`advance` (the daemon polls
        for a new block, then ticks on it without asking again)."""
        self._polled = {chain.name: self.head(chain) for chain in self.chains()}
        return {name: (h.ref.number, h.ref.hash) for name, h in self._polled.items()}

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self.clients.clear()
        self.markets.clear()

    # -- one advance ------------------------------------------------------------------------

    def advance(self, store: Store, *, market_name: str | None = None) -> list[Tracked]:
        """Bring every market (or ``market_name``) to its chain's head; the markets' state after it."""
        heads, self._polled = self._polled, {}
        markets = [self.config.market(market_name)] if market_name else list(self.config.markets)
        out: list[Tracked] = []
        for market in markets:
            chain = self.config.chain_for(market)
            if chain.name not in heads:
                heads[chain.name] = self.head(chain)
            started = time.monotonic()
            try:
                out += self._advance(store, market, chain, heads[chain.name])
            except Exception:
                self.metrics.scan_failed(market.name)
                raise
            self.metrics.scan_finished(market.name, time.monotonic() - started, self.clock())
            self.metrics.active_endpoint(chain.name, self.client(chain).active_endpoint.display)
        return out

    def _advance(self, store: Store, market: MarketConfig, chain: ChainConfig, head: Header) -> list[Tracked]:
        tm = self.markets.get(market.name)
        if tm is None or tm.broken:
            return self._start(store, market, chain, head)
        self._recheck_suspects(store, tm)
        number, last = head.ref.number, tm.block
        if number < last:
            log.warning(
                "node lags: head %d is behind block %d already followed; no step, nothing deleted", number, last,
                extra={"market": market.name, "head": number, "followed": last,
                       "endpoint": tm.client.active_endpoint.display},
            )  # fmt: skip
            return []
        if number == last and head.ref.hash == tm.hashes.get(last):
            return _hand_out(tm, [replace_new(t) for t in tm.last])
        if number == last + 1 and head.parent_hash == tm.hashes.get(last):
            forked = False
        elif number > last + 1:
            forked = fetch_header(tm.client, last).ref.hash != tm.hashes.get(last)
        else:
            forked = True
        if forked and not self._unwind(store, tm, head):
            return self._start(store, market, chain, head)  # deeper than the kept window: read all again
        target = min(number, tm.block + self.config.daemon.catch_up_blocks)
        header = head if target == number else fetch_header(tm.client, target)
        return self._step(store, tm, header)

    # -- start ----------------------------------------------------------------------------

    def _start(self, store: Store, market: MarketConfig, chain: ChainConfig, head: Header) -> list[Tracked]:
        client = self.client(chain)
        reader = make_reader(client, market, chain)
        checks: dict[str, Any] = {"confirmations": chain.reorg_confirmations, "max_depth": chain.max_reorg_depth}
        drop_orphaned_scans(client, store, market.name, **checks)  # once: what a reorg replaced while nothing ran
        newest = store.recent_scans(market.name, 1)
        if newest and head.ref.number < newest[0][0]:
            log.warning(
                "node lags: head %d is behind block %d already stored; not starting, nothing deleted",
                head.ref.number, newest[0][0], extra={"market": market.name, "head": head.ref.number},
            )  # fmt: skip
            return []
        new, _range = discover_accounts(reader, store, market, chain, head.ref.number)
        accounts = followed_accounts(store, market)
        follower = self.followers(reader, market, chain, accounts)
        tm = TrackedMarket(market, chain, client, reader, follower)
        if follower is not None and market.accounts is None and chain.confirmations:
            new += self._unconfirmed_borrowers(store, tm, head.ref.number)
        if follower is not None:
            follower.start(head.ref)
            snapshots = follower.snapshots(head.ref.hash, head.ref.timestamp)
        else:
            snapshots = reader.snapshots(accounts, head.ref)
        tm.remember(head)
        tm.checkpointed = head.ref.number
        self.markets[market.name] = tm
        log.info("following" if follower else "reading in full", extra={
            "market": market.name, "block": head.ref.number, "accounts": len(accounts),
            "protocol": market.protocol})  # fmt: skip
        return self._finish(store, tm, snapshots, head, None, new)

    def _unconfirmed_borrowers(self, store: Store, tm: TrackedMarket, head: int) -> int:
        """Borrowers of the last ``confirmations`` blocks (discovery stops short of them; the
        follower's events start after the head): followed from the start too."""
        checkpoint = store.get_checkpoint(tm.config.name, DISCOVERY)
        first = max(checkpoint.block + 1 if checkpoint else tm.config.start_block, tm.config.start_block)
        found: list[tuple[str, int]] = []

        def on_chunk(_start: int, end: int, borrowers: list[str]) -> None:
            found.extend((b, end) for b in borrowers)

        if first <= head:
            tm.reader.discover(first, head, on_chunk)
        if not found:
            return 0
        assert tm.follower is not None
        tm.follower.add_accounts(a for a, _ in found)
        return store.add_accounts(tm.config.name, found, "logs")

    # -- steps ----------------------------------------------------------------------------

    def _step(self, store: Store, tm: TrackedMarket, header: Header) -> list[Tracked]:
        ref = header.ref
        if tm.follower is None:
            new, _range = discover_accounts(tm.reader, store, tm.config, tm.chain, ref.number)
            accounts = followed_accounts(store, tm.config)
            snapshots = tm.reader.snapshots(accounts, ref)
            tm.remember(header)
            return self._finish(store, tm, snapshots, header, None, new)
        if tm.config.accounts is not None:  # a watch list: wallets Telegram subscribers added since
            tm.follower.add_accounts(store.bot_accounts())
        try:
            report = tm.follower.step(ref.number)
            snapshots = tm.follower.snapshots(ref.hash, ref.timestamp)
        except Exception:
            tm.broken = True  # events may be applied half-way: the next advance reads all again
            raise
        tm.remember(header)
        new = self._record_discovery(store, tm, ref, report.discovered)
        return self._finish(store, tm, snapshots, header, report, new)

    def _record_discovery(self, store: Store, tm: TrackedMarket, ref: BlockRef, accounts: Sequence[str]) -> int:
        """Borrowers the events named, recorded with the discovery checkpoint at the followed
        block (a restart resumes discovery from there; a reorg below it rolls it back)."""
        if tm.config.accounts is not None:
            return 0
        if not accounts and ref.number - tm.checkpointed < CHECKPOINT_EVERY:
            return 0
        tm.checkpointed = ref.number
        return store.record_discovery(tm.config.name, DISCOVERY, ref.number, ref.hash, accounts)

    def _finish(
        self,
        store: Store,
        tm: TrackedMarket,
        snapshots: Sequence[MarketSnapshot],
        header: Header,
        report: StepReport | None,
        new_accounts: int,
    ) -> list[Tracked]:
        feeds = self._feeds(tm, header.ref.number)
        touched: frozenset[str] | None = None
        if report is not None:
            touched = frozenset([*report.touched, *report.read, *(d.account for d in report.differences)])
        tm.names |= {s.market for s in snapshots}
        tm.last = [Tracked(s, feeds, True, touched, report, new_accounts) for s in snapshots]
        return _hand_out(tm, list(tm.last))

    def _feeds(self, tm: TrackedMarket, block: int) -> dict[str, FeedReading]:
        feeds = self.config.alerts.oracle.chainlink_feeds
        return read_feeds(tm.reader.multicall, feeds, block) if feeds else {}

    # -- reorgs ---------------------------------------------------------------------------

    def _unwind(self, store: Store, tm: TrackedMarket, head: Header) -> bool:
        """The head does not extend the blocks followed: find the newest kept block the node
        still has (ONE batch), unwind the follower to it, and check the stored blocks above it
        for proof. False: none of the kept blocks is canonical (a full read is needed)."""
        kept = sorted(tm.hashes)
        theirs = canonical_hashes(tm.client, kept)
        ancestor = max((b for b in kept if theirs.get(b) == tm.hashes[b]), default=None)
        log.warning(
            "reorg suspected: head %d (%s...) does not extend block %d followed; unwinding to %s",
            head.ref.number, head.ref.hash[:12], tm.block, ancestor,
            extra={"market": tm.config.name, "head": head.ref.number, "followed": tm.block, "ancestor": ancestor},
        )  # fmt: skip
        replaced = [(b, h) for b, h in sorted(tm.hashes.items()) if ancestor is None or b > ancestor]
        self._suspect(store, tm, replaced)
        if ancestor is None:
            tm.broken = True
            return False
        if tm.follower is not None:
            again = tm.follower.unwind(ancestor)
            log.info("unwound", extra={"market": tm.config.name, "to_block": ancestor, "read_again": len(again)})
        for b in [b for b in tm.hashes if b > ancestor]:
            del tm.hashes[b]
        tm.block = ancestor
        return True

    def _suspect(self, store: Store, tm: TrackedMarket, replaced: Iterable[tuple[int, str]]) -> None:
        """Stored blocks among ``replaced``: marked orphaned once proven (now or later)."""
        blocks = dict(replaced)
        stored = {b: h for name in tm.names or {tm.config.name} for b, h in store.recent_scans(name) if b in blocks}
        known = {b for b, _ in tm.suspects}
        tm.suspects += [(b, h) for b, h in sorted(stored.items()) if b not in known]
        self._recheck_suspects(store, tm)

    def _recheck_suspects(self, store: Store, tm: TrackedMarket) -> None:
        if not tm.suspects:
            return
        verdict = verify(tm.client, tm.suspects, tm.chain.reorg_confirmations)
        for note in verdict.notes:
            log.warning("reorg check", extra={"market": tm.config.name, "note": note})
        if verdict.orphaned:
            top = max(tm.block, max(b for b, _ in tm.suspects))
            depth = top - min(verdict.orphaned) + 1
            if depth > tm.chain.max_reorg_depth:
                raise ReorgTooDeep(
                    f"{tm.config.name}: stored blocks from {min(verdict.orphaned)} look orphaned, a reorg of {depth}"
                    f" blocks, deeper than max_reorg_depth {tm.chain.max_reorg_depth}; nothing marked or deleted."
                    " Check the endpoint; if the reorg is real, raise chains.<name>.max_reorg_depth"
                )
            hashes = dict(tm.suspects)
            gone = [(b, hashes[b]) for b in verdict.orphaned]
            for name in tm.names or {tm.config.name}:
                store.mark_orphaned(name, gone, "reorg: another hash confirmed")
            tm.orphaned = True
            log.warning("reorg", extra={"market": tm.config.name, "orphaned_blocks": verdict.orphaned})
        settled = set(verdict.orphaned) | set(verdict.canonical)
        tm.suspects = [(b, h) for b, h in tm.suspects if b not in settled]


def _hand_out(tm: TrackedMarket, tracked: list[Tracked]) -> list[Tracked]:
    """``tracked``, flagged when blocks were marked orphaned since the last hand-out."""
    if not tm.orphaned:
        return tracked
    tm.orphaned = False
    return [replace(t, orphaned=True) for t in tracked]


def replace_new(tracked: Tracked) -> Tracked:
    """``tracked`` again, as the state of a block already handed out."""
    return Tracked(tracked.snapshot, tracked.feeds, False, frozenset(), tracked.step, 0)
