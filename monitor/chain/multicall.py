"""Multicall3 ``aggregate3``: many view calls in one ``eth_call``, pinned to one block.

The same code serves mainnet (the canonical Multicall3) and the devnet (our own
``LiqmonMulticall`` put at the canonical address with ``anvil_setCode``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import encode as abi_encode

from monitor.chain.abi import Fn, fn
from monitor.chain.rpc import RpcClient
from monitor.errors import DecodeError

CANONICAL_MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
AGGREGATE3 = fn("aggregate3((address,bool,bytes)[])", "(bool,bytes)[]")


@dataclass(frozen=True, slots=True)
class Call:
    """One view call: ``fn`` on ``target`` with ``args``."""

    target: str
    fn: Fn
    args: tuple[Any, ...] = ()
    allow_failure: bool = False


def encode_aggregate3(calls: Sequence[Call]) -> bytes:
    """``aggregate3`` calldata, encoded by hand (eth-abi is ~20x slower on thousands of calls;
    tests/unit/test_chain_codec.py checks the bytes equal eth-abi's)."""
    n = len(calls)
    heads: list[bytes] = []
    tails: list[bytes] = []
    offset = 32 * n
    for call in calls:
        data = call.fn.encode(*call.args)
        padded = data + b"\x00" * (-len(data) % 32)
        element = b"".join((
            _address_word(call.target),
            (1 if call.allow_failure else 0).to_bytes(32, "big"),
            (96).to_bytes(32, "big"),
            len(data).to_bytes(32, "big"),
            padded,
        ))  # fmt: skip
        heads.append(offset.to_bytes(32, "big"))
        tails.append(element)
        offset += len(element)
    return b"".join((AGGREGATE3.selector, (32).to_bytes(32, "big"), n.to_bytes(32, "big"), *heads, *tails))


def _address_word(address: str) -> bytes:
    raw = bytes.fromhex(address[2:] if address.startswith(("0x", "0X")) else address)
    if len(raw) != 20:
        raise ValueError(f"not a 20-byte address: {address!r}")
    return b"\x00" * 12 + raw


def encode_aggregate3_reference(calls: Sequence[Call]) -> bytes:
    """The same calldata through eth-abi (the reference the hand encoder is tested against)."""
    items = [(c.target, c.allow_failure, c.fn.encode(*c.args)) for c in calls]
    return AGGREGATE3.selector + abi_encode(["(address,bool,bytes)[]"], [items])


def decode_aggregate3(data: bytes, expected: int) -> list[tuple[bool, bytes]]:
    """Decode ``Result[]`` strictly (bounds-checked, without eth-abi's per-item overhead)."""
    view = memoryview(data)

    def word(offset: int) -> int:
        if offset + 32 > len(view):
            raise DecodeError(f"aggregate3: answer truncated at byte {offset} of {len(view)}")
        return int.from_bytes(view[offset : offset + 32], "big")

    base = word(0)
    count = word(base)
    if count != expected:
        raise DecodeError(f"aggregate3: expected {expected} results, got {count}")
    heads = base + 32
    results: list[tuple[bool, bytes]] = []
    for i in range(count):
        item = heads + word(heads + 32 * i)
        success = word(item)
        if success > 1:
            raise DecodeError(f"aggregate3: result {i} has a non-boolean success flag")
        data_at = item + word(item + 32)
        length = word(data_at)
        start = data_at + 32
        if start + length > len(view):
            raise DecodeError(f"aggregate3: result {i} runs past the end of the answer")
        results.append((bool(success), bytes(view[start : start + length])))
    return results


class Multicall:
    """Run many calls through ``aggregate3`` in batches of ``calls_per_batch`` sub-calls."""

    def __init__(self, client: RpcClient, address: str = CANONICAL_MULTICALL3, calls_per_batch: int = 500) -> None:
        self.client = client
        self.address = address
        self.calls_per_batch = max(1, calls_per_batch)

    def raw(self, calls: Sequence[Call], block: int) -> list[tuple[bool, bytes]]:
        """Each call's (success, return data), all read at ``block``."""
        out: list[tuple[bool, bytes]] = []
        for start in range(0, len(calls), self.calls_per_batch):
            chunk = calls[start : start + self.calls_per_batch]
            answer = self.client.eth_call(self.address, encode_aggregate3(chunk), block)
            out.extend(decode_aggregate3(answer, len(chunk)))
        return out

    def run(self, calls: Sequence[Call], block: int) -> list[tuple[Any, ...] | None]:
        """Decoded results; ``None`` where a call with ``allow_failure`` failed."""
        decoded: list[tuple[Any, ...] | None] = []
        for call, (success, data) in zip(calls, self.raw(calls, block), strict=True):
            if not success:
                if not call.allow_failure:
                    raise DecodeError(f"{call.fn.signature} on {call.target} failed in aggregate3")
                decoded.append(None)
                continue
            decoded.append(call.fn.decode(data))
        return decoded

    def run_groups(self, groups: Sequence[Sequence[Call]], block: int) -> list[list[tuple[Any, ...] | None]]:
        """Run groups of calls (e.g. all calls for one account) without splitting a group
        across two ``eth_call`` requests; returns results grouped the same way."""
        results: list[list[tuple[Any, ...] | None]] = []
        batch: list[Sequence[Call]] = []
        size = 0
        for group in groups:
            if batch and size + len(group) > self.calls_per_batch:
                results.extend(self._run_batch(batch, block))
                batch, size = [], 0
            batch.append(group)
            size += len(group)
        if batch:
            results.extend(self._run_batch(batch, block))
        return results

    def _run_batch(self, batch: Sequence[Sequence[Call]], block: int) -> list[list[tuple[Any, ...] | None]]:
        flat = [call for group in batch for call in group]
        answer = self.client.eth_call(self.address, encode_aggregate3(flat), block)
        raw = decode_aggregate3(answer, len(flat))
        out: list[list[tuple[Any, ...] | None]] = []
        index = 0
        for group in batch:
            decoded: list[tuple[Any, ...] | None] = []
            for call in group:
                success, data = raw[index]
                index += 1
                if not success:
                    if not call.allow_failure:
                        raise DecodeError(f"{call.fn.signature} on {call.target} failed in aggregate3")
                    decoded.append(None)
                else:
                    decoded.append(call.fn.decode(data))
            out.append(decoded)
        return out
