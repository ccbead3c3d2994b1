"""``eth_getLogs`` over a block range in chunks of at most ``max_range`` blocks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.chain.rpc import RpcClient, to_int
from monitor.errors import DecodeError


@dataclass(frozen=True, slots=True)
class Log:
    address: str
    topics: tuple[str, ...]
    data: bytes
    block_number: int
    block_hash: str
    log_index: int


def parse_log(raw: Any) -> Log:
    if not isinstance(raw, dict):
        raise DecodeError(f"eth_getLogs: a log entry is not an object: {str(raw)[:60]!r}")
    try:
        data = raw["data"]
        return Log(
            address=str(raw["address"]),
            topics=tuple(str(t).lower() for t in raw["topics"]),
            data=bytes.fromhex(data[2:] if data.startswith("0x") else data),
            block_number=to_int(raw["blockNumber"], "log.blockNumber"),
            block_hash=str(raw["blockHash"]),
            log_index=to_int(raw["logIndex"], "log.logIndex"),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DecodeError(f"eth_getLogs: malformed log entry ({exc})") from exc


def iter_log_chunks(
    client: RpcClient,
    address: str,
    topics: Sequence[str | list[str] | None],
    from_block: int,
    to_block: int,
    max_range: int,
) -> Iterator[tuple[int, int, list[Log]]]:
    """Yield ``(chunk_from, chunk_to, logs)`` for consecutive chunks, in block order.

    The caller checkpoints after each chunk, so a crash resumes at the next chunk.
    """
    start = from_block
    while start <= to_block:
        end = min(to_block, start + max_range - 1)
        raw = client.request(
            "eth_getLogs",
            [
                {
                    "address": address,
                    "topics": list(topics),
                    "fromBlock": hex(start),
                    "toBlock": hex(end),
                }
            ],
        )
        if not isinstance(raw, list):
            raise DecodeError(f"eth_getLogs: expected a list, got {type(raw).__name__}")
        yield start, end, [parse_log(item) for item in raw]
        start = end + 1
