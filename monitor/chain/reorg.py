"""Reorg detection: compare recorded (block, hash) pairs with the canonical chain.

One JSON-RPC batch of ``eth_getBlockByNumber`` answers for many recorded blocks at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.chain.rpc import RpcClient
from monitor.errors import RpcError


def canonical_hashes(client: RpcClient, blocks: Sequence[int]) -> dict[int, str | None]:
    """The canonical hash of each block number (None when the chain is now shorter)."""
    if not blocks:
        return {}
    answers = client.batch([("eth_getBlockByNumber", [hex(b), False]) for b in blocks])
    out: dict[int, str | None] = {}
    for block, answer in zip(blocks, answers, strict=True):
        if answer is not None and not isinstance(answer, dict):
            raise RpcError(f"eth_getBlockByNumber({block}): expected a block object, got {type(answer).__name__}")
        out[block] = str(answer["hash"]).lower() if answer else None
    return out


def orphaned(client: RpcClient, recorded: Sequence[tuple[int, str]]) -> list[int]:
    """Recorded blocks whose hash is no longer the canonical one."""
    hashes = canonical_hashes(client, [b for b, _ in recorded])
    return [b for b, h in recorded if hashes.get(b) != h.lower()]


def common_ancestor(client: RpcClient, recorded: Sequence[tuple[int, str]]) -> tuple[int, str] | None:
    """The newest recorded (block, hash) still canonical; None when none is (roll back all)."""
    newest_first = sorted(recorded, reverse=True)
    hashes = canonical_hashes(client, [b for b, _ in newest_first])
    for block, block_hash in newest_first:
        if hashes.get(block) == block_hash.lower():
            return block, block_hash
    return None
