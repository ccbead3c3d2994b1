"""Transactions and anvil cheat codes for building the devnet (never used against mainnet)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import to_checksum_address

from monitor.chain.abi import Fn
from monitor.chain.rpc import RpcClient, to_int
from monitor.devnet.artifacts import aave_artifact, constructor_types, link
from monitor.errors import DevnetError

DEFAULT_GAS = 8_000_000


@dataclass(frozen=True, slots=True)
class Tx:
    sender: str
    to: str | None
    data: bytes
    gas: int = DEFAULT_GAS
    what: str = ""

    def as_rpc(self, nonce: int | None = None) -> dict[str, Any]:
        tx: dict[str, Any] = {
            "from": self.sender,
            "data": "0x" + self.data.hex(),
            "gas": hex(self.gas),
        }
        if nonce is not None:
            tx["nonce"] = hex(nonce)
        if self.to is not None:
            tx["to"] = self.to
        return tx


class DevnetNode:
    """Sends transactions (auto-mined, impersonated senders) and uses anvil cheat codes."""

    def __init__(self, client: RpcClient) -> None:
        self.client = client
        self._impersonating = False

    def accounts(self) -> list[str]:
        return [to_checksum_address(a) for a in self.client.request("eth_accounts")]

    def impersonate_all(self) -> None:
        if not self._impersonating:
            self.client.request("anvil_autoImpersonateAccount", [True])
            self._impersonating = True

    def send(self, tx: Tx) -> dict[str, Any]:
        return self.send_many([tx])[0]

    def send_many(self, txs: Sequence[Tx], chunk: int = 500) -> list[dict[str, Any]]:
        """Send transactions and check every receipt; returns receipts in input order.

        Anvil handles the calls of one JSON-RPC batch concurrently, so a batch never holds
        two transactions of the same sender: the k-th transaction of every sender goes in
        wave k, and wave k+1 starts once wave k is mined. Per-sender order is kept; there
        must be no ordering dependency between different senders within one call.
        """
        waves: list[list[int]] = []
        seen: dict[str, int] = {}
        for i, tx in enumerate(txs):
            k = seen.get(tx.sender, 0)
            seen[tx.sender] = k + 1
            if k == len(waves):
                waves.append([])
            waves[k].append(i)
        receipts: list[dict[str, Any]] = [{} for _ in txs]
        for wave in waves:
            for start in range(0, len(wave), chunk):
                part = [txs[i] for i in wave[start : start + chunk]]
                nonces = self._next_nonces(part)
                hashes = self.client.batch(
                    [("eth_sendTransaction", [t.as_rpc(n)]) for t, n in zip(part, nonces, strict=True)]
                )
                got = self._receipts(hashes)
                for index, tx, receipt in zip(wave[start : start + chunk], part, got, strict=True):
                    if not isinstance(receipt, dict):
                        raise DevnetError(f"{tx.what or 'transaction'}: no receipt")
                    if to_int(receipt.get("status"), "status") != 1:
                        raise DevnetError(f"{tx.what or 'transaction'} reverted: {self._reason(tx, receipt)}")
                    receipts[index] = receipt
        return receipts

    def _next_nonces(self, txs: Sequence[Tx]) -> list[int]:
        """Explicit sequential nonces per sender: a batch is handled concurrently by anvil."""
        senders = sorted({t.sender for t in txs})
        counts = self.client.batch([("eth_getTransactionCount", [s, "pending"]) for s in senders])
        following = {s: to_int(c, "nonce") for s, c in zip(senders, counts, strict=True)}
        nonces = []
        for tx in txs:
            nonces.append(following[tx.sender])
            following[tx.sender] += 1
        return nonces

    def _receipts(self, hashes: Sequence[str], timeout: float = 60.0) -> list[Any]:
        """Receipts of sent transactions; anvil mines asynchronously, so poll briefly."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.client.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
            if all(isinstance(r, dict) for r in got) or time.monotonic() > deadline:
                return got
            time.sleep(0.01)

    def _reason(self, tx: Tx, receipt: dict[str, Any]) -> str:
        block = to_int(receipt["blockNumber"], "blockNumber")
        try:
            self.client.request("eth_call", [tx.as_rpc(), hex(block - 1)])
        except Exception as exc:  # the revert reason is in the message
            return str(exc)
        return "unknown reason"

    def call(self, to: str, fn: Fn, *args: Any, block: int | str = "latest") -> Any:
        return fn.decode_one(self.client.eth_call(to, fn.encode(*args), block))

    def deploy_code(self, sender: str, creation: bytes, what: str) -> str:
        receipt = self.send(Tx(sender, None, creation, gas=30_000_000, what=f"deploy {what}"))
        address = receipt.get("contractAddress")
        if not address:
            raise DevnetError(f"deploy {what}: no contract address in the receipt")
        return to_checksum_address(address)

    def deploy_aave(self, sender: str, name: str, *args: Any, libraries: dict[str, str] | None = None) -> str:
        """Deploy the @aave/core-v3 artifact ``name`` with constructor ``args``."""
        artifact = aave_artifact(name)
        creation = link(artifact, libraries or {}) + abi_encode(constructor_types(artifact), list(args))
        return self.deploy_code(sender, creation, name)

    # -- anvil cheat codes ----------------------------------------------------------------

    def set_code(self, address: str, code_hex: str) -> None:
        self.client.request("anvil_setCode", [address, code_hex])

    def set_storage(self, address: str, slot: int, value: int) -> None:
        self.client.request(
            "anvil_setStorageAt",
            [address, hex(slot), "0x" + value.to_bytes(32, "big", signed=True).hex()],
        )

    def set_balances(self, accounts: Sequence[str], wei: int) -> None:
        self.client.batch([("anvil_setBalance", [a, hex(wei)]) for a in accounts])

    def mine(self, blocks: int = 1) -> None:
        self.client.request("anvil_mine", [hex(blocks)])

    def snapshot(self) -> str:
        return str(self.client.request("evm_snapshot"))

    def revert(self, snapshot_id: str) -> None:
        if self.client.request("evm_revert", [snapshot_id]) is not True:
            raise DevnetError(f"evm_revert({snapshot_id}) failed")

    def dump_state(self) -> str:
        return str(self.client.request("anvil_dumpState"))

    def load_state(self, state_hex: str) -> None:
        self.client.request("anvil_loadState", [state_hex])
