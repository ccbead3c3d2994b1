"""Chainlink AggregatorV3 feeds: ``latestRoundData`` and ``decimals``, read at one block."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from monitor.chain.abi import fn
from monitor.chain.multicall import Call, Multicall
from monitor.errors import DecodeError

LATEST_ROUND_DATA = fn("latestRoundData()", "uint80,int256,uint256,uint256,uint80")
DECIMALS = fn("decimals()", "uint8")


@dataclass(frozen=True, slots=True)
class FeedReading:
    symbol: str
    address: str
    price: float  # answer / 10**decimals
    updated_at: int  # unix seconds of the latest round
    round_id: int


def read_feeds(multicall: Multicall, feeds: Mapping[str, str], block: int) -> dict[str, FeedReading]:
    """Every configured feed at ``block``; a feed that reverts or answers <= 0 is a DecodeError
    naming it (a broken reference feed must not silently disable the divergence check)."""
    if not feeds:
        return {}
    symbols = list(feeds)
    calls = [
        c for s in symbols for c in (Call(feeds[s], LATEST_ROUND_DATA, (), True), Call(feeds[s], DECIMALS, (), True))
    ]
    raw = multicall.raw(calls, block)
    out: dict[str, FeedReading] = {}
    for i, symbol in enumerate(symbols):
        round_data = _decoded(symbol, feeds[symbol], calls[2 * i], raw[2 * i], block)
        decimals = _decoded(symbol, feeds[symbol], calls[2 * i + 1], raw[2 * i + 1], block)
        if round_data is None or decimals is None:
            raise DecodeError(f"Chainlink feed {symbol} at {feeds[symbol]} does not answer latestRoundData/decimals")
        round_id, answer, _started, updated_at, _answered = round_data
        if answer <= 0:
            raise DecodeError(f"Chainlink feed {symbol} at {feeds[symbol]} answers a non-positive price {answer}")
        out[symbol] = FeedReading(
            symbol, feeds[symbol], answer / 10 ** int(decimals[0]), int(updated_at), int(round_id)
        )
    return out


def _decoded(symbol: str, address: str, call: Call, answer: tuple[bool, bytes], block: int) -> tuple[int, ...] | None:
    success, data = answer
    if not success:
        return None
    if not data:  # a call to an address without code succeeds with nothing
        raise DecodeError(
            f"Chainlink feed {symbol} at {address} answers nothing at block {block}: no contract there on this chain; "
            f"check alerts.oracle.chainlink_feeds.{symbol}"
        )
    try:
        return call.fn.decode(data)
    except DecodeError as exc:
        raise DecodeError(f"Chainlink feed {symbol} at {address}: {exc}") from exc
