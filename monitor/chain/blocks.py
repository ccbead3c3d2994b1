"""A block as a scan pins it: number, hash and timestamp."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.chain.rpc import RpcClient, check_hash, to_int
from monitor.errors import RpcError


@dataclass(frozen=True, slots=True)
class BlockRef:
    number: int
    hash: str
    timestamp: int


def block_ref(client: RpcClient, block: int | str = "latest") -> BlockRef:
    raw = client.get_block(block)
    return BlockRef(
        to_int(raw.get("number"), "block.number"),
        check_hash(raw.get("hash"), "block.hash"),
        to_int(raw.get("timestamp"), "block.timestamp"),
    )


def check_block(client: RpcClient, block: BlockRef, market: str) -> None:
    """The block must still have the hash seen at the start of the scan (no reorg during it).
    Nothing is stored when it does not: the scan fails and the next one starts afresh."""
    now = block_ref(client, block.number).hash
    if now != block.hash.lower():
        raise RpcError(
            f"{market}: block {block.number} changed hash during the scan ({block.hash[:12]}... -> {now[:12]}...,"
            f" answered by {client.active_endpoint.display}): a reorg or a node that lies; nothing stored, scan again"
        )
