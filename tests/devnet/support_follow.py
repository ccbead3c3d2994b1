"""Helpers of the Morpho / Comet follow replays: a block of transactions mined at once, and the
comparison of a follower's snapshots with the reader's full re-read."""

from __future__ import annotations

from collections.abc import Sequence

from monitor.chain.rpc import RpcClient, to_int
from monitor.devnet.node import Tx
from monitor.models import MarketSnapshot
from monitor.positions.base import Difference


def mine_block(client: RpcClient, txs: Sequence[Tx]) -> tuple[int, list[bool]]:
    """Send ``txs`` (automine off) and mine them into ONE block; returns (block, success per tx).
    A transaction the contract refuses reverts inside the block, as on a real chain."""
    senders = sorted({t.sender for t in txs})
    counts = client.batch([("eth_getTransactionCount", [s, "pending"]) for s in senders]) if senders else []
    nonces = {s: to_int(c, "nonce") for s, c in zip(senders, counts, strict=True)}
    calls = []
    for tx in txs:
        calls.append(("eth_sendTransaction", [tx.as_rpc(nonces[tx.sender])]))
        nonces[tx.sender] += 1
    hashes = [str(h) for h in client.batch(calls)] if calls else []
    client.request("evm_mine")
    block = to_int(client.request("eth_blockNumber"), "eth_blockNumber")
    ok: list[bool] = []
    if hashes:
        receipts = client.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        for tx, receipt in zip(txs, receipts, strict=True):
            if not isinstance(receipt, dict) or to_int(receipt.get("blockNumber"), "blockNumber") != block:
                raise RuntimeError(f"{tx.what} was not mined in block {block}")
            ok.append(to_int(receipt.get("status"), "status") == 1)
    return block, ok


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
