"""Morpho Blue event decoding for the follower: signatures and indexed parameters as
``EventsLib.sol`` declares them, and exact decoding of hand-built logs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from eth_utils import to_checksum_address

from monitor.chain.abi import event_topic
from monitor.chain.logs import Log
from monitor.errors import DecodeError
from monitor.positions import morpho_events as ev

MORPHO = to_checksum_address("0xbbbbbbbbbb9cc5e90e3b3af64bdaf62c37eeffcb")
ID = "0x" + "ab" * 32
ALICE = to_checksum_address("0xa11ce00000000000000000000000000000000001")
BOB = to_checksum_address("0xb0b0000000000000000000000000000000000002")
EVENTS_LIB = Path(__file__).resolve().parents[2] / "node_modules/@morpho-org/morpho-blue/src/libraries/EventsLib.sol"


def _topic(address: str) -> str:
    return "0x" + "00" * 12 + address[2:].lower()


def _log(signature: str, topics: list[str], words: list[int], *, block: int = 7, index: int = 0) -> Log:
    data = b"".join(w.to_bytes(32, "big") for w in words)
    return Log(MORPHO, (event_topic(signature), *topics), data, block, "0x" + "11" * 32, index)


def _declared() -> dict[str, tuple[bool, ...]]:
    """EventsLib's events: canonical signature -> which parameters are indexed."""
    source = re.sub(r"//[^\n]*", "", EVENTS_LIB.read_text())
    types = {"Id": "bytes32", "MarketParams": "(address,address,address,address,uint256)"}
    out: dict[str, tuple[bool, ...]] = {}
    for name, params in re.findall(r"event\s+(\w+)\s*\(([^)]*)\)", source):
        parts = [p.split() for p in params.split(",") if p.strip()]
        out[f"{name}({','.join(types.get(p[0], p[0]) for p in parts)})"] = tuple("indexed" in p for p in parts)
    return out


INDEXED = {
    ev.SUPPLY: (True, True, True, False, False),
    ev.WITHDRAW: (True, False, True, True, False, False),
    ev.BORROW: (True, False, True, True, False, False),
    ev.REPAY: (True, True, True, False, False),
    ev.SUPPLY_COLLATERAL: (True, True, True, False),
    ev.WITHDRAW_COLLATERAL: (True, False, True, True, False),
    ev.LIQUIDATE: (True, True, True, False, False, False, False, False),
    ev.ACCRUE_INTEREST: (True, False, False, False),
    ev.CREATE_MARKET: (True, False),
    ev.SET_FEE: (True, False),
}


def test_signatures_and_indexed_parameters_match_events_lib() -> None:
    declared = _declared()
    for signature, indexed in INDEXED.items():
        assert declared.get(signature) == indexed, signature
    assert set(ev.WATCHED_TOPICS) == {event_topic(s) for s in INDEXED}


def test_position_events_decode_to_exact_deltas() -> None:
    mid = ID
    supply = ev.decode_log(_log(ev.SUPPLY, [mid, _topic(BOB), _topic(ALICE)], [1000, 999_000]))
    assert supply == ev.PositionChange("supply", mid, ALICE, 7, 0, supply_shares=999_000, caller=BOB)
    withdraw = ev.decode_log(_log(ev.WITHDRAW, [mid, _topic(ALICE), _topic(BOB)], [int(BOB, 16), 5, 4_000]))
    assert withdraw == ev.PositionChange("withdraw", mid, ALICE, 7, 0, supply_shares=-4_000, caller=BOB)
    borrow = ev.decode_log(_log(ev.BORROW, [mid, _topic(ALICE), _topic(ALICE)], [int(ALICE, 16), 10, 10**7]))
    assert borrow == ev.PositionChange("borrow", mid, ALICE, 7, 0, borrow_shares=10**7, caller=ALICE)
    repay = ev.decode_log(_log(ev.REPAY, [mid, _topic(BOB), _topic(ALICE)], [3, 3_000_000]))
    assert repay == ev.PositionChange("repay", mid, ALICE, 7, 0, borrow_shares=-3_000_000, caller=BOB)
    put = ev.decode_log(_log(ev.SUPPLY_COLLATERAL, [mid, _topic(BOB), _topic(ALICE)], [77]))
    assert put == ev.PositionChange("supply_collateral", mid, ALICE, 7, 0, collateral=77, caller=BOB)
    take = ev.decode_log(_log(ev.WITHDRAW_COLLATERAL, [mid, _topic(ALICE), _topic(BOB)], [int(ALICE, 16), 70]))
    assert take == ev.PositionChange("withdraw_collateral", mid, ALICE, 7, 0, collateral=-70, caller=ALICE)
    # repaidAssets, repaidShares, seizedAssets, badDebtAssets, badDebtShares
    liq = ev.decode_log(_log(ev.LIQUIDATE, [mid, _topic(BOB), _topic(ALICE)], [5, 5_000, 77, 2, 2_000]))
    assert liq == ev.PositionChange("liquidate", mid, ALICE, 7, 0, borrow_shares=-7_000, collateral=-77, caller=BOB,
                                    bad_debt_shares=2_000)  # fmt: skip
    accrue = ev.decode_log(_log(ev.ACCRUE_INTEREST, [mid], [1, 2, 3]))
    assert accrue == ev.MarketEvent("accrue_interest", mid, 7, 0)


def test_malformed_logs_are_decode_errors_never_guesses() -> None:
    with pytest.raises(DecodeError, match="bytes of data"):
        ev.decode_log(_log(ev.SUPPLY, [ID, _topic(BOB), _topic(ALICE)], [1]))
    with pytest.raises(DecodeError, match="topics"):
        ev.decode_log(_log(ev.REPAY, [ID, _topic(BOB)], [1, 2]))
    with pytest.raises(DecodeError, match="not an address"):
        ev.decode_log(_log(ev.BORROW, [ID, "0x" + "ff" * 32, _topic(ALICE)], [int(ALICE, 16), 1, 1]))
    with pytest.raises(DecodeError, match="not an address word"):
        ev.decode_log(_log(ev.WITHDRAW, [ID, _topic(ALICE), _topic(BOB)], [2**200, 1, 1]))
    stranger = Log(BOB, (event_topic(ev.SUPPLY_COLLATERAL), ID, _topic(BOB), _topic(ALICE)), (1).to_bytes(32, "big"),
                   1, "0x" + "11" * 32, 0)  # fmt: skip
    with pytest.raises(DecodeError, match="not Morpho"):
        ev.decode_logs([stranger], MORPHO)


def test_logs_are_applied_in_chain_order_and_unknown_events_skipped() -> None:
    late = _log(ev.SUPPLY_COLLATERAL, [ID, _topic(BOB), _topic(ALICE)], [1], block=9, index=0)
    early = _log(ev.SUPPLY_COLLATERAL, [ID, _topic(BOB), _topic(ALICE)], [2], block=8, index=5)
    other = _log("SetAuthorization(address,address,address,bool)", [_topic(BOB), _topic(ALICE), _topic(BOB)], [1])
    events = ev.decode_logs([late, other, early], MORPHO)
    assert [e.block for e in events] == [8, 9]
