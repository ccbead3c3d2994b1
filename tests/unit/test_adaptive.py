"""Adaptive eth_getLogs spans and Multicall batch sizes against provider limits."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from eth_abi import encode

from monitor.chain.abi import fn
from monitor.chain.logs import AdaptiveRange, iter_log_chunks, range_limit
from monitor.chain.multicall import Call, Multicall
from monitor.errors import RpcResponseError


@pytest.mark.parametrize(
    ("message", "asked", "expected"),
    [
        ("query returned more than 10000 results", 2000, 1000),
        ("block range is too large", 5000, 2500),
        ("exceed maximum block range: 2000", 10000, 2000),
        ("eth_getLogs is limited to a 1000 blocks range", 5000, 2500),
        ("Log response size exceeded. this block range should work: [0x10, 0x4f]", 5000, 64),
        ("range is too large, max is 1k blocks", 5000, 1000),
        ("execution reverted", 5000, None),
    ],
)
def test_range_limit_reads_provider_messages(message: str, asked: int, expected: int | None) -> None:
    assert range_limit(RpcResponseError(f"eth_getLogs: node error -32005: {message}", -32005), asked) == expected


def test_adaptive_range_shrinks_and_grows_back() -> None:
    span = AdaptiveRange(2000)
    span.shrink(500)
    assert span.current == 500
    for _ in range(3):
        span.succeeded()
    assert span.current == 750
    for _ in range(30):
        span.succeeded()
    assert span.current == 2000
    span.shrink(5000)  # never grows on an error
    assert span.current == 1999


class CappedLogs:
    """A node that refuses eth_getLogs over more than ``cap`` blocks."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.asked: list[tuple[int, int]] = []

    def request(self, method: str, params: Any) -> Any:
        lo, hi = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
        self.asked.append((lo, hi))
        if hi - lo + 1 > self.cap:
            raise RpcResponseError("eth_getLogs: node error -32600: block range is too large", -32600)
        return []


def test_log_chunks_cover_the_range_exactly_under_a_cap() -> None:
    node = CappedLogs(300)
    chunks = [(a, b) for a, b, _ in iter_log_chunks(node, "0x" + "1" * 40, [], 0, 9_999, 2000)]  # type: ignore[arg-type]
    assert chunks[0][0] == 0 and chunks[-1][1] == 9_999
    assert all(b + 1 == c for (_, b), (c, _) in itertools.pairwise(chunks))  # no gap, no overlap
    assert all(b - a + 1 <= 300 for a, b in chunks)
    assert len(node.asked) < 3 * len(chunks)  # the span is remembered, not rediscovered each time


class SpuriousRangeErrors:
    """A node that answers a one-block query with a range error ``failures`` times first."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.asked = 0

    def request(self, method: str, params: Any) -> Any:
        self.asked += 1
        if self.failures > 0:
            self.failures -= 1
            raise RpcResponseError("eth_getLogs: node error -32005: query returned more than 10000 results", -32005)
        return []


def test_a_spurious_range_error_on_one_block_is_asked_again() -> None:
    node = SpuriousRangeErrors(3)
    chunks = [(a, b) for a, b, _ in iter_log_chunks(node, "0x" + "1" * 40, [], 7, 7, 1)]  # type: ignore[arg-type]
    assert chunks == [(7, 7)] and node.asked == 4


def test_a_block_that_always_overflows_fails_after_a_few_tries() -> None:
    node = SpuriousRangeErrors(10**6)
    with pytest.raises(RpcResponseError, match="10000 results"):
        list(iter_log_chunks(node, "0x" + "1" * 40, [], 7, 7, 1))  # type: ignore[arg-type]
    assert node.asked == 4  # SINGLE_BLOCK_RANGE_RETRIES + 1


class CappedCalls:
    """A node whose eth_call fails "out of gas" above ``max_calls`` sub-calls per aggregate3."""

    def __init__(self, max_calls: int) -> None:
        self.max_calls = max_calls
        self.sizes: list[int] = []

    def eth_call(self, to: str, data: bytes, block: Any) -> bytes:
        n = int.from_bytes(data[4 + 32 : 4 + 64], "big")
        self.sizes.append(n)
        if n > self.max_calls:
            raise RpcResponseError("eth_call: node error -32000: out of gas", -32000)
        return encode(["(bool,bytes)[]"], [[(True, (7).to_bytes(32, "big"))] * n])


def test_multicall_splits_batches_the_node_refuses() -> None:
    node = CappedCalls(40)
    multicall = Multicall(node, calls_per_batch=500)  # type: ignore[arg-type]
    balance = fn("balanceOf(address)", "uint256")
    calls = [Call("0x" + "2" * 40, balance, ("0x" + "3" * 40,)) for _ in range(300)]
    assert multicall.run(calls, 1) == [(7,)] * 300
    assert multicall.calls_per_batch <= 40
    node.sizes.clear()
    assert multicall.run(calls, 2) == [(7,)] * 300
    assert max(node.sizes) <= 40  # the next read starts at the learnt size: no refused call


def test_multicall_does_not_split_other_errors() -> None:
    class Reverting:
        def eth_call(self, to: str, data: bytes, block: Any) -> bytes:
            raise RpcResponseError("eth_call: node error 3: execution reverted", 3)

    multicall = Multicall(Reverting(), calls_per_batch=10)  # type: ignore[arg-type]
    with pytest.raises(RpcResponseError, match="reverted"):
        multicall.run([Call("0x" + "2" * 40, fn("x()", "uint256"))] * 5, 1)
    assert multicall.splits == 0
