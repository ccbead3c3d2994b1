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
from monitor.errors import DecodeError, RpcResponseError

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


_TOO_BIG_WORDS = (
    "out of gas", "gas required exceeds", "exceeds block gas limit", "gas limit", "too large", "payload too large",
    "request entity too large", "response size", "exceeds the limit", "execution timeout", "timeout exceeded",
    "max calldata", "batch too large", "return data",
)  # fmt: skip


def too_big(exc: RpcResponseError) -> bool:
    """The node refused the eth_call for its size (gas cap, body or response size)."""
    text = str(exc).lower()
    return exc.code == 413 or any(word in text for word in _TOO_BIG_WORDS)


class NoMulticallError(DecodeError):
    """The configured Multicall3 address has no contract (its aggregate3 answers 0 bytes): a
    configuration problem, never to be blamed on the contract the calls were meant for."""


class Multicall:
    """Run many calls through ``aggregate3`` in batches of at most ``calls_per_batch`` sub-calls.

    A batch the node refuses for its size (gas cap, request or response size) is split in
    two and ``calls_per_batch`` is lowered for the rest of the run; a single call that is
    still too big is an error.
    """

    def __init__(
        self,
        client: RpcClient,
        address: str = CANONICAL_MULTICALL3,
        calls_per_batch: int = 500,
        *,
        config_key: str = "multicall3 in this chain's config",
    ) -> None:
        self.client = client
        self.address = address
        self.config_key = config_key  # named when there is no contract at ``address``
        self.calls_per_batch = max(1, calls_per_batch)
        self.splits = 0

    def raw(self, calls: Sequence[Call], block: int) -> list[tuple[bool, bytes]]:
        """Each call's (success, return data), all read at ``block``."""
        out: list[tuple[bool, bytes]] = []
        start = 0
        while start < len(calls):
            chunk = calls[start : start + self.calls_per_batch]
            out.extend(self._chunk(chunk, block))
            start += len(chunk)
        return out

    def _chunk(self, chunk: Sequence[Call], block: int) -> list[tuple[bool, bytes]]:
        try:
            answer = self.client.eth_call(self.address, encode_aggregate3(chunk), block)
        except RpcResponseError as exc:
            if not too_big(exc) or len(chunk) == 1:
                raise
            half = len(chunk) // 2
            self.calls_per_batch = max(1, min(self.calls_per_batch, half))
            self.splits += 1
            return self._chunk(chunk[:half], block) + self._chunk(chunk[half:], block)
        if not answer:  # an eth_call to an address without code answers nothing
            raise NoMulticallError(
                f"no Multicall3 contract at {self.address} at block {block} (the eth_call answered 0 bytes): deploy an "
                f"aggregate3-compatible contract there, or set {self.config_key} to the address of one"
            )
        return decode_aggregate3(answer, len(chunk))

    def run(self, calls: Sequence[Call], block: int) -> list[tuple[Any, ...] | None]:
        """Decoded results; ``None`` where a call with ``allow_failure`` failed."""
        return [_decoded(call, result) for call, result in zip(calls, self.raw(calls, block), strict=True)]

    def run_groups(self, groups: Sequence[Sequence[Call]], block: int) -> list[list[tuple[Any, ...] | None]]:
        """Run groups of calls (e.g. all calls for one account); batches are cut at group
        boundaries when they can be; returns results grouped the same way."""
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
        raw = self.raw(flat, block) if len(flat) > self.calls_per_batch else self._chunk(flat, block)
        out: list[list[tuple[Any, ...] | None]] = []
        index = 0
        for group in batch:
            out.append([_decoded(call, raw[index + i]) for i, call in enumerate(group)])
            index += len(group)
        return out


def _decoded(call: Call, result: tuple[bool, bytes]) -> tuple[Any, ...] | None:
    success, data = result
    if not success:
        if not call.allow_failure:
            raise DecodeError(f"{call.fn.signature} on {call.target} failed in aggregate3")
        return None
    return call.fn.decode(data)
