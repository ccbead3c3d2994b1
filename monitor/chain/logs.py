"""``eth_getLogs`` over a block range in chunks of at most ``max_range`` blocks."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.chain.rpc import RpcClient, to_int
from monitor.errors import DecodeError, RpcError, RpcResponseError


@dataclass(frozen=True, slots=True)
class Log:
    address: str
    topics: tuple[str, ...]
    data: bytes
    block_number: int
    block_hash: str
    log_index: int


_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_HASH = re.compile(r"0x[0-9a-fA-F]{64}")


def parse_log(raw: Any) -> Log:
    """One eth_getLogs entry, every field checked (a malformed entry is a DecodeError)."""
    if not isinstance(raw, dict):
        raise DecodeError(f"eth_getLogs: a log entry is not an object: {str(raw)[:60]!r}")
    address, topics, data, block_hash = raw.get("address"), raw.get("topics"), raw.get("data"), raw.get("blockHash")
    if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
        raise DecodeError(f"eth_getLogs: bad log address {str(address)[:60]!r}")
    if not isinstance(topics, list) or not all(isinstance(t, str) and _HASH.fullmatch(t) for t in topics):
        raise DecodeError(f"eth_getLogs: bad log topics {str(topics)[:80]!r}")
    if block_hash is None or "blockHash" not in raw:
        raise DecodeError("eth_getLogs: a log has no blockHash (a pending log, or a broken node): not believed")
    if not isinstance(block_hash, str) or not _HASH.fullmatch(block_hash):
        raise DecodeError(f"eth_getLogs: bad log blockHash {str(block_hash)[:60]!r} (expected 0x + 64 hex digits)")
    tx_hash = raw.get("transactionHash")
    if tx_hash is not None and (not isinstance(tx_hash, str) or not _HASH.fullmatch(tx_hash)):
        raise DecodeError(f"eth_getLogs: bad log transactionHash {str(tx_hash)[:60]!r} (expected 0x + 64 hex digits)")
    try:
        return Log(
            address=address,
            topics=tuple(t.lower() for t in topics),
            data=_hex_data(data),
            block_number=to_int(raw.get("blockNumber"), "log.blockNumber"),
            block_hash=block_hash.lower(),
            log_index=to_int(raw.get("logIndex"), "log.logIndex"),
        )
    except RpcError as exc:
        raise DecodeError(f"eth_getLogs: malformed log entry ({exc})") from exc


def _hex_data(value: Any) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"0x(?:[0-9a-fA-F]{2})*", value):
        raise DecodeError(f"eth_getLogs: bad log data {str(value)[:60]!r}")
    return bytes.fromhex(value[2:])


_RANGE_WORDS = (
    "block range", "range is too large", "range too large", "exceed maximum block range", "more than 10000 results",
    "query returned more than", "log response size exceeded", "response size exceeded", "too many logs",
    "limited to a", "max range", "query timeout exceeded", "logs matched by query exceeds",
)  # fmt: skip
_HINT_MAX = re.compile(r"max(?:imum)?(?: block)?(?: range)?(?: is)?[:\s]+(\d+)(k?)", re.I)
_HINT_SPAN = re.compile(r"\[(0x[0-9a-f]+),\s*(0x[0-9a-f]+)\]", re.I)


def range_limit(exc: RpcResponseError, asked: int) -> int | None:
    """None when ``exc`` is not a range / result-count limit; else the span to try next:
    the node's hint when it gives one (``max is 1k blocks``, ``[0x..., 0x...]``), else half."""
    text = str(exc).lower()
    if not any(word in text for word in _RANGE_WORDS):
        return None
    span = _HINT_SPAN.search(text)
    if span:
        return max(1, int(span.group(2), 16) - int(span.group(1), 16) + 1)
    hint = _HINT_MAX.search(text)
    if hint:
        value = int(hint.group(1)) * (1000 if hint.group(2) else 1)
        if 0 < value < asked:
            return value
    return max(1, asked // 2)


@dataclass(slots=True)
class AdaptiveRange:
    """The eth_getLogs span in blocks: shrinks on a range / result-count error, grows back
    by half again after ``grow_after`` successes, never above the configured maximum."""

    maximum: int
    current: int = 0
    successes: int = 0
    grow_after: int = 3

    def __post_init__(self) -> None:
        self.current = self.current or self.maximum

    def shrink(self, to: int) -> None:
        self.current = max(1, min(self.current - 1, to))
        self.successes = 0

    def succeeded(self) -> None:
        self.successes += 1
        if self.successes >= self.grow_after and self.current < self.maximum:
            self.current = min(self.maximum, max(self.current + 1, self.current * 3 // 2))
            self.successes = 0


SINGLE_BLOCK_RANGE_RETRIES = 3  # range errors tolerated for a one-block query before it fails


def iter_log_chunks(
    client: RpcClient,
    address: str,
    topics: Sequence[str | list[str] | None],
    from_block: int,
    to_block: int,
    span: AdaptiveRange | int,
) -> Iterator[tuple[int, int, list[Log]]]:
    """Yield ``(chunk_from, chunk_to, logs)`` for consecutive chunks, in block order.

    The span adapts to the provider: a range or result-count error retries the same start
    with a smaller span. The caller checkpoints after each chunk, so a crash resumes at the
    next chunk.
    """
    adaptive = span if isinstance(span, AdaptiveRange) else AdaptiveRange(span)
    start = from_block
    single_block_refusals = 0
    while start <= to_block:
        end = min(to_block, start + adaptive.current - 1)
        query = {"address": address, "topics": list(topics), "fromBlock": hex(start), "toBlock": hex(end)}
        try:
            raw = client.request("eth_getLogs", [query])  # routed to endpoints that have block ``end``
        except RpcResponseError as exc:
            smaller = range_limit(exc, end - start + 1)
            if smaller is None:
                raise
            if end == start:
                # one block cannot be split: a flaky node's spurious range error is asked again,
                # a block that really holds too many logs for this node fails after a few tries
                single_block_refusals += 1
                if single_block_refusals > SINGLE_BLOCK_RANGE_RETRIES:
                    raise
                continue
            adaptive.shrink(smaller)
            continue
        single_block_refusals = 0
        try:
            logs = checked_logs(raw, address, topics, start, end)
        except DecodeError as exc:
            logs = _ask_another_endpoint(client, query, exc, (address, topics, start, end))
        adaptive.succeeded()
        yield start, end, logs
        start = end + 1


def _ask_another_endpoint(
    client: RpcClient,
    query: dict[str, Any],
    exc: DecodeError,
    question: tuple[str | Sequence[str], Sequence[str | list[str] | None], int, int],
) -> list[Log]:
    """An answer that does not fit the question: that endpoint is distrusted (it cools down)
    and the others are asked, each answer checked; with no other endpoint, the error."""
    if not isinstance(client, RpcClient):
        raise exc
    liar = client.active_endpoint
    if len(client.usable_endpoints()) < 2:
        raise DecodeError(f"{exc} (answer of {liar.display})") from None
    client.distrust(liar, str(exc))
    found: list[Log] = []

    def check(raw: Any) -> None:
        found[:] = checked_logs(raw, *question)

    client.request_from("eth_getLogs", [query], check=check)
    return found


def checked_logs(
    raw: Any, address: str | Sequence[str], topics: Sequence[str | list[str] | None], first: int, last: int
) -> list[Log]:
    """The logs of an eth_getLogs answer, each one checked against the question: emitted by
    the filtered address, topics as filtered, block inside [first, last], hashes 32 bytes.
    A node that answers anything else (logs of other contracts, other events, other blocks)
    is not believed: DecodeError naming the first offending log."""
    if not isinstance(raw, list):
        raise DecodeError(f"eth_getLogs: expected a list, got {type(raw).__name__}")
    wanted = {address.lower()} if isinstance(address, str) else {a.lower() for a in address}
    logs = [parse_log(item) for item in raw]
    for log in logs:
        where = f"eth_getLogs [{first}, {last}]: log {log.log_index} of block {log.block_number}"
        if log.address.lower() not in wanted:
            raise DecodeError(f"{where} comes from {log.address}, not the filtered address: the node's answer "
                              "does not match the request")  # fmt: skip
        if not first <= log.block_number <= last:
            raise DecodeError(f"{where} is outside the requested block range: the node's answer does not match "
                              "the request")  # fmt: skip
        for position, topic in enumerate(topics):
            if topic is None:
                continue
            allowed = {topic.lower()} if isinstance(topic, str) else {t.lower() for t in topic}
            if position >= len(log.topics) or log.topics[position] not in allowed:
                raise DecodeError(f"{where} has topic {position} not in the filter: the node's answer does not "
                                  "match the request")  # fmt: skip
    return logs
