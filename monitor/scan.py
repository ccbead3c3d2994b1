"""One scan of a market: connect, discover borrowers (checkpointed), read at one block, store."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from monitor.chain.feeds import FeedReading, read_feeds
from monitor.chain.multicall import Multicall
from monitor.chain.reorg import ReorgTooDeep, common_ancestor, verify
from monitor.chain.rpc import RpcClient, RpcObserver
from monitor.config import ChainConfig, Config, MarketConfig
from monitor.errors import ConfigError, RpcError
from monitor.metrics import NULL_METRICS, Metrics
from monitor.models import MarketSnapshot
from monitor.progress import BlockProgress
from monitor.protocols.aave_v3 import DISCOVERY, AaveV3Reader, block_ref
from monitor.protocols.base import ProtocolReader
from monitor.protocols.compound_v3 import CompoundV3Reader
from monitor.protocols.morpho_blue import MorphoBlueReader
from monitor.store import Store

Progress = Callable[[str], None]

log = logging.getLogger("liqmon")


def _quiet(_message: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class LogRange:
    from_block: int
    to_block: int


@dataclass(frozen=True, slots=True)
class ScanResult:
    snapshot: MarketSnapshot
    new_accounts: int
    log_range: LogRange | None  # None: watchlist, or nothing new to read
    feeds: dict[str, FeedReading] = field(default_factory=dict)  # configured Chainlink feeds, same block


def open_client(chain: ChainConfig, source: str = "config", observer: RpcObserver | None = None) -> RpcClient:
    """A client for ``chain``; every endpoint is asked for its chain id first (a node on
    another chain is a config error; an unreachable one is failed over)."""
    client = RpcClient(
        chain.rpc_urls, timeout=chain.request_timeout_s, max_retries=chain.max_retries,
        rate_limit_per_s=chain.rate_limit_per_s, observer=observer, retry_budget_s=chain.retry_budget_s,
        max_response_bytes=chain.max_response_bytes, backoff_base=chain.backoff_s, backoff_cap=chain.backoff_cap_s,
        max_concurrent_requests=chain.max_concurrent_requests,
    )  # fmt: skip
    try:
        client.check_chain_id(chain.chain_id)
    except RpcError as exc:
        client.close()
        if "serves chain" in str(exc):
            raise ConfigError(f"{source}: chains.{chain.name}.chain_id: {exc}; fix chain_id or rpc_urls") from None
        raise
    return client


def make_reader(client: RpcClient, market: MarketConfig, chain: ChainConfig) -> ProtocolReader:
    """The reader of ``market.protocol`` (Aave V3 forks such as Spark use the aave_v3 reader)."""
    multicall = Multicall(client, chain.multicall3, chain.calls_per_batch, gas_budget=chain.call_gas_budget,
                          config_key=f"chains.{chain.name}.multicall3")  # fmt: skip
    common: dict[str, Any] = {"market": market.name, "chain_id": chain.chain_id, "multicall": multicall,
                              "max_log_range": chain.max_log_range}  # fmt: skip
    if market.protocol == "morpho_blue":
        return MorphoBlueReader(client, morpho=market.morpho, market_ids=market.market_ids, **common)
    if market.protocol == "compound_v3":
        return CompoundV3Reader(client, comet=market.comet, **common)
    return AaveV3Reader(client, pool_addresses_provider=market.pool_addresses_provider, **common)


def discover_accounts(
    reader: ProtocolReader,
    store: Store,
    market: MarketConfig,
    chain: ChainConfig,
    head: int,
    progress: Progress = _quiet,
) -> tuple[int, LogRange | None]:
    """Bring the store's account list up to ``head - confirmations``; returns
    (new accounts, log range read). A watchlist replaces log discovery entirely."""
    if market.accounts is not None:
        return store.add_accounts(market.name, [(a, 0) for a in market.accounts], "watchlist"), None
    undo_reorged_discovery(
        reader.client, store, market.name, progress, confirmations=chain.reorg_confirmations,
        max_depth=chain.max_reorg_depth, start_block=market.start_block,
    )  # fmt: skip
    checkpoint = store.get_checkpoint(market.name, DISCOVERY)
    start = checkpoint.block + 1 if checkpoint else market.start_block
    end = head - chain.confirmations
    if checkpoint is None and start > end:
        raise ConfigError(
            f"market {market.name}: start_block {market.start_block} is beyond the chain's head {head}"
            f"{f' minus {chain.confirmations} confirmations' if chain.confirmations else ''}"
            f" ({reader.client.active_endpoint.display}): a block number from another chain? lower start_block"
        )
    if start > end:
        return 0, None
    new = 0
    bar = BlockProgress(f"{market.name}: borrowers", start, end)  # a bar on a terminal, log lines otherwise

    def on_chunk(chunk_from: int, chunk_to: int, borrowers: list[str]) -> None:
        nonlocal new
        block_hash = block_ref(reader.client, chunk_to).hash
        if block_ref(reader.client, chunk_to).hash != block_hash:  # a checkpoint hash is asked twice
            raise RpcError(
                f"{market.name}: block {chunk_to} has a different hash each time it is asked"
                f" ({reader.client.active_endpoint.display}): the node's answers are not believed; nothing stored"
            )
        added = store.record_discovery(market.name, DISCOVERY, chunk_to, block_hash, borrowers)
        new += added
        bar.advance(chunk_to, added)
        progress(f"{market.name}: blocks {chunk_from:,}-{chunk_to:,}: {len(borrowers)} borrowers; {bar.summary()}")

    with bar:
        reader.discover(start, end, on_chunk)
    return new, LogRange(start, end)


def followed_accounts(store: Store, market: MarketConfig) -> list[str]:
    """The accounts a market reads: a watch list (the config's, plus the wallets Telegram bot
    subscribers watch), or every borrower discovery stored."""
    if market.accounts is None:
        return store.accounts(market.name)
    return list(dict.fromkeys([*market.accounts, *store.bot_accounts()]))


def undo_reorged_discovery(
    client: RpcClient,
    store: Store,
    market: str,
    progress: Progress = _quiet,
    *,
    confirmations: int = 2,
    max_depth: int = 64,
    start_block: int = 0,
) -> int:
    """When the discovery checkpoint's block is PROVEN no longer canonical (see
    :func:`monitor.chain.reorg.verify`), roll discovery back to the newest recorded block
    that still is (accounts first seen after it are forgotten and found again from the new
    history). A rollback deeper than ``max_depth`` blocks raises :class:`ReorgTooDeep` and
    changes nothing. Returns the accounts removed."""
    checkpoint = store.get_checkpoint(market, DISCOVERY)
    if checkpoint is None or not checkpoint.block_hash:
        return 0
    verdict = verify(client, [(checkpoint.block, checkpoint.block_hash)], confirmations)
    _tell(market, verdict.notes, progress)
    if not verdict.orphaned:
        return 0
    ancestor = common_ancestor(client, store.discovery_blocks(market))
    floor = ancestor[0] if ancestor else start_block - 1
    if checkpoint.block - floor > max_depth:
        raise ReorgTooDeep(
            f"{market}: discovery checkpoint {checkpoint.block} is orphaned and the newest canonical record is "
            f"{'block ' + str(floor) if ancestor else 'none'}: a rollback of {checkpoint.block - floor} blocks, deeper "
            f"than max_reorg_depth {max_depth}; nothing deleted. Check the endpoint (is it on another fork?); if the "
            "reorg is real, raise chains.<name>.max_reorg_depth"
        )
    removed = store.rollback_discovery(market, DISCOVERY, ancestor)
    progress(f"{market}: reorg below block {checkpoint.block}: discovery rolled back to {ancestor}, {removed} accounts")
    log.warning("reorg", extra={"market": market, "rolled_back_to": floor, "accounts_removed": removed})
    return removed


def drop_orphaned_scans(
    client: RpcClient,
    store: Store,
    market: str,
    *,
    confirmations: int = 2,
    max_depth: int = 64,
    progress: Progress = _quiet,
) -> list[int]:
    """Scans stored for recent blocks that a PROVEN reorg replaced are marked orphaned: their
    positions, prices and parameters are kept but hidden from every query, until the
    canonical block of the same number is stored (then they go). Marked blocks found
    canonical again are unmarked. A reorg deeper than ``max_depth`` raises ReorgTooDeep and
    marks nothing. Returns the blocks newly marked."""
    recent = store.recent_scans(market)
    verdict = verify(client, recent, confirmations)
    _tell(market, verdict.notes, progress)
    gone = verdict.orphaned
    if gone:
        depth = recent[0][0] - min(gone) + 1
        if depth > max_depth:
            raise ReorgTooDeep(
                f"{market}: stored scans from block {min(gone)} to {recent[0][0]} look orphaned, a reorg of {depth} "
                f"blocks, deeper than max_reorg_depth {max_depth}; nothing marked or deleted. Check the endpoint; "
                "if the reorg is real, raise chains.<name>.max_reorg_depth"
            )
        hashes = dict(recent)
        store.mark_orphaned(market, [(b, hashes[b]) for b in gone], "reorg: another hash confirmed")
        progress(f"{market}: reorg: stored block(s) {', '.join(map(str, gone))} orphaned (rows kept, hidden)")
        log.warning("reorg", extra={"market": market, "orphaned_blocks": gone})
    _restore_canonical(client, store, market, recent, max_depth)
    return gone


def _restore_canonical(
    client: RpcClient, store: Store, market: str, recent: list[tuple[int, str]], max_depth: int
) -> None:
    """Marked blocks that the chain has again with the stored hash count again."""
    newest = recent[0][0] if recent else None
    marked = [(b, h) for b, h in store.orphaned_blocks(market) if newest is None or b >= newest - max_depth]
    if not marked:
        return
    verdict = verify(client, marked[-max_depth:], 0)
    if verdict.canonical:
        store.unmark_orphaned(market, verdict.canonical)
        log.warning("reorg undone", extra={"market": market, "blocks": verdict.canonical})


def _tell(market: str, notes: list[str], progress: Progress) -> None:
    for note in notes:
        progress(f"{market}: {note}")
        log.warning("reorg check", extra={"market": market, "note": note})


def scan_market(
    client: RpcClient,
    config: Config,
    market: MarketConfig,
    store: Store,
    progress: Progress = _quiet,
) -> list[ScanResult]:
    """One config market at one block: a ScanResult per protocol market (Aave V3 and Comet:
    one; Morpho Blue: one per market id). All snapshots are stored in one transaction."""
    chain = config.chain_for(market)
    reader = make_reader(client, market, chain)
    checks: dict[str, Any] = {"confirmations": chain.reorg_confirmations, "max_depth": chain.max_reorg_depth}
    drop_orphaned_scans(client, store, market.name, progress=progress, **checks)  # first: finds flapping nodes
    head = block_ref(client, client.freshest_head())  # endpoints behind it are skipped for its reads
    _refuse_older_head(store, market.name, head.number, client)
    new, log_range = discover_accounts(reader, store, market, chain, head.number, progress)
    accounts = followed_accounts(store, market)
    progress(f"{market.name}: reading {len(accounts)} accounts at block {head.number}")
    snapshots = reader.snapshots(list(accounts), head)
    feeds = read_feeds(reader.multicall, config.alerts.oracle.chainlink_feeds, head.number)
    with store.transaction():
        for snapshot in snapshots:
            if snapshot.market != market.name:
                drop_orphaned_scans(client, store, snapshot.market, **checks)
                _refuse_older_head(store, snapshot.market, head.number, client)
            store.save_snapshot(snapshot)
    return [ScanResult(s, new, log_range, feeds) for s in snapshots]


def _refuse_older_head(store: Store, market: str, head: int, client: RpcClient) -> None:
    newest = store.recent_scans(market, 1)
    if newest and head < newest[0][0]:
        heads = ", ".join(f"{e.display} at {client.stats[e.display].head}" for e in client.usable_endpoints())
        raise RpcError(
            f"{market}: the freshest endpoint head {head} is behind block {newest[0][0]}, already stored ({heads}):"
            " the nodes lag; not scanning an older block (nothing deleted); retry later or add a synced rpc_url"
        )


def scan_all(
    config: Config,
    store: Store,
    *,
    market_name: str | None = None,
    progress: Progress = _quiet,
    metrics: Metrics = NULL_METRICS,
    clock: Callable[[], float] = time.time,
) -> list[ScanResult]:
    markets = [config.market(market_name)] if market_name else list(config.markets)
    clients: dict[str, RpcClient] = {}
    with store.writer("scan", config.store.lease_ttl_s):  # `liqmon run` writing this database: refused
        return _scan_markets(config, store, markets, clients, progress, metrics, clock)


def _scan_markets(
    config: Config,
    store: Store,
    markets: list[MarketConfig],
    clients: dict[str, RpcClient],
    progress: Progress,
    metrics: Metrics,
    clock: Callable[[], float],
) -> list[ScanResult]:
    try:
        results = []
        for market in markets:
            chain = config.chain_for(market)
            if chain.name not in clients:
                clients[chain.name] = open_client(chain, str(config.source), observer=metrics)
            started = time.monotonic()
            try:
                results.extend(scan_market(clients[chain.name], config, market, store, progress))
            except Exception:
                metrics.scan_failed(market.name)
                raise
            metrics.scan_finished(market.name, time.monotonic() - started, clock())
            metrics.active_endpoint(chain.name, clients[chain.name].active_endpoint.display)
        return results
    finally:
        for client in clients.values():
            client.close()
