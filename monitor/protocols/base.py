"""What the scan, risk and alert layers need from a protocol reader.

Every reader turns its protocol into :class:`~monitor.models.MarketSnapshot` objects: reserves
(assets with decimals, price in the snapshot's base unit, the liquidation threshold / LTV /
bonus that apply, in bps) and positions (collateral and debt legs with exact amounts, and the
health factor as a WAD computed exactly as the protocol decides liquidations: HF < 1 iff the
protocol would let the position be liquidated). Risk and alerts work on these alone.

- Aave V3 (and same-interface forks): one snapshot per market; HF from ``getUserAccountData``.
- Morpho Blue: one snapshot per market id (named ``<config name>:<COLL>/<LOAN>-<lltv>:<id>``),
  prices and values in units of the loan token (base unit 1e8 per loan token).
- Compound V3: one snapshot per Comet, prices in USD from Comet's own price feeds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, Protocol

from eth_utils import to_checksum_address

from monitor.chain.blocks import BlockRef
from monitor.chain.logs import AdaptiveRange, iter_log_chunks
from monitor.chain.multicall import Multicall
from monitor.chain.rpc import RpcClient
from monitor.errors import DecodeError
from monitor.models import MarketSnapshot

OnChunk = Callable[[int, int, list[str]], None]
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
# EIP-55 checksum, memoised: a keccak per call was ~90 % of building a Position (the followers
# build every position every block)
checksum: Callable[[str], str] = lru_cache(maxsize=1 << 17)(to_checksum_address)


class ProtocolReader(Protocol):
    protocol: str
    client: RpcClient
    multicall: Multicall

    def discover(self, from_block: int, to_block: int, on_chunk: OnChunk) -> None:
        """Borrowers from the protocol's borrow events in ``[from_block, to_block]``; ``on_chunk``
        is called after each log range with the borrowers found in it."""

    def snapshots(self, accounts: Sequence[str], block: BlockRef) -> list[MarketSnapshot]:
        """Every market of this reader at ``block`` (all reads pinned to it)."""
        ...


class ReaderCore:
    """What every reader holds: its client, market name, chain id, Multicall batcher and the
    eth_getLogs span that adapts to the provider."""

    def __init__(
        self, client: RpcClient, *, market: str, chain_id: int, multicall: Multicall, max_log_range: int = 2000
    ) -> None:
        self.client = client
        self.market = market
        self.chain_id = chain_id
        self.multicall = multicall
        self.log_span = AdaptiveRange(max_log_range)


def required(result: tuple[Any, ...] | None) -> tuple[Any, ...]:
    """A multicall result that must be there (a call made without ``allow_failure``)."""
    if result is None:
        raise DecodeError("a required call failed in aggregate3")
    return result


def token_symbol(result: tuple[Any, ...] | None, address: str) -> str:
    """An ERC20 ``symbol()`` answer, or the address's first characters when it has none."""
    text = str(result[0]) if result else ""
    return text if text.isprintable() and 0 < len(text) <= 16 else str(address)[:8]


def accounts_from_events(
    client: RpcClient,
    address: str,
    topics: list[str | list[str] | None],
    account_topic: int,
    span: AdaptiveRange,
    from_block: int,
    to_block: int,
    on_chunk: OnChunk,
    what: str,
) -> None:
    """Accounts named by the indexed ``topics[account_topic]`` of ``address``'s matching events,
    range by range (adaptive spans); ``on_chunk(start, end, accounts)`` after each range."""
    for start, end, logs in iter_log_chunks(client, address, topics, from_block, to_block, span):
        found = []
        for log in logs:
            if len(log.topics) <= account_topic:
                raise DecodeError(f"{what} log without its account topic at block {log.block_number}")
            found.append(to_checksum_address("0x" + log.topics[account_topic][-40:]))
        on_chunk(start, end, list(dict.fromkeys(found)))
