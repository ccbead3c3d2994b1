"""Compound III event decoding for the follower: signatures and indexed parameters as the devnet's
CometLike declares them (Compound's ``CometMainInterface`` names the same), exact decoding of
hand-built logs, companion Transfers, and Comet's principal rounding."""

from __future__ import annotations

import pytest
from eth_utils import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from monitor.chain.abi import event_topic
from monitor.chain.logs import Log
from monitor.contracts import load_artifact
from monitor.errors import DecodeError
from monitor.positions import comet_events as ev
from monitor.positions.comet_follow import present, principal_of, supply_principal_of
from monitor.protocols.compound_v3 import present_value

COMET = to_checksum_address("0xc3d688b66703497daa19211eedff47f25384cdc3")
ASSET = to_checksum_address("0x6666666666666666666666666666666666666666")
ALICE = to_checksum_address("0xa11ce00000000000000000000000000000000001")
BOB = to_checksum_address("0xb0b0000000000000000000000000000000000002")
ZERO = ev.ZERO
INDEXED = {
    ev.SUPPLY: (True, True, False),
    ev.TRANSFER: (True, True, False),
    ev.WITHDRAW: (True, True, False),
    ev.SUPPLY_COLLATERAL: (True, True, True, False),
    ev.TRANSFER_COLLATERAL: (True, True, True, False),
    ev.WITHDRAW_COLLATERAL: (True, True, True, False),
    ev.ABSORB_DEBT: (True, True, False, False),
    ev.ABSORB_COLLATERAL: (True, True, True, False, False),
    ev.BUY_COLLATERAL: (True, True, False, False),
    ev.WITHDRAW_RESERVES: (True, False),
    ev.UPGRADED: (True,),
}
# CometLike models neither buyCollateral, nor reserves, nor a proxy
NOT_IN_COMET_LIKE = {ev.BUY_COLLATERAL, ev.WITHDRAW_RESERVES, ev.UPGRADED}


def _t(address: str) -> str:
    return "0x" + "00" * 12 + address[2:].lower()


def _log(signature: str, topics: list[str], words: list[int], *, block: int = 3, index: int = 0) -> Log:
    data = b"".join(w.to_bytes(32, "big") for w in words)
    return Log(COMET, (event_topic(signature), *topics), data, block, "0x" + "22" * 32, index)


def test_signatures_match_the_comet_like_abi() -> None:
    declared = {
        f"{e['name']}({','.join(i['type'] for i in e['inputs'])})": tuple(bool(i["indexed"]) for i in e["inputs"])
        for e in load_artifact("CometLike")["abi"]
        if e["type"] == "event"
    }
    for signature, indexed in INDEXED.items():
        if signature not in NOT_IN_COMET_LIKE:
            assert declared.get(signature) == indexed, signature
    assert set(ev.WATCHED_TOPICS) == {event_topic(s) for s in INDEXED}


def test_events_decode_to_the_account_they_change() -> None:
    supply = ev.decode_log(_log(ev.SUPPLY, [_t(BOB), _t(ALICE)], [500]))
    assert supply == ev.CometEvent("supply", 3, 0, account=ALICE, other=BOB, amount=500)
    withdraw = ev.decode_log(_log(ev.WITHDRAW, [_t(ALICE), _t(BOB)], [9]))
    assert withdraw == ev.CometEvent("withdraw", 3, 0, account=ALICE, other=BOB, amount=9)
    out = ev.decode_log(_log(ev.TRANSFER, [_t(ALICE), _t(ZERO)], [7]))
    assert out == ev.CometEvent("transfer_out", 3, 0, account=ALICE, amount=7)
    into = ev.decode_log(_log(ev.TRANSFER, [_t(ZERO), _t(BOB)], [7]))
    assert into == ev.CometEvent("transfer_in", 3, 0, account=BOB, amount=7)
    moved = ev.decode_log(_log(ev.TRANSFER_COLLATERAL, [_t(ALICE), _t(BOB), _t(ASSET)], [4]))
    assert moved == ev.CometEvent("transfer_collateral", 3, 0, account=ALICE, other=BOB, asset=ASSET, amount=4)
    seized = ev.decode_log(_log(ev.ABSORB_COLLATERAL, [_t(BOB), _t(ALICE), _t(ASSET)], [11, 2200]))
    assert seized == ev.CometEvent("absorb_collateral", 3, 0, account=ALICE, other=BOB, asset=ASSET, amount=11)
    debt = ev.decode_log(_log(ev.ABSORB_DEBT, [_t(BOB), _t(ALICE)], [1000, 1000]))
    assert debt == ev.CometEvent("absorb_debt", 3, 0, account=ALICE, other=BOB, amount=1000)
    assert debt.moves_base and not moved.moves_base
    bought = ev.decode_log(_log(ev.BUY_COLLATERAL, [_t(BOB), _t(ASSET)], [5, 6]))
    assert bought is not None and bought.kind == "buy_collateral" and bought.account == ""
    upgraded = ev.decode_log(_log(ev.UPGRADED, [_t(BOB)], []))
    assert upgraded == ev.CometEvent("upgraded", 3, 0, account="", other=BOB)


def test_a_transfer_right_after_its_supply_withdraw_or_absorb_is_a_companion() -> None:
    logs = [
        _log(ev.SUPPLY, [_t(ALICE), _t(ALICE)], [100], index=0),
        _log(ev.TRANSFER, [_t(ZERO), _t(ALICE)], [60], index=1),  # the supply part of that Supply
        _log(ev.WITHDRAW, [_t(BOB), _t(BOB)], [50], index=2),
        _log(ev.TRANSFER, [_t(BOB), _t(ZERO)], [50], index=3),  # the supply withdrawn by that Withdraw
        _log(ev.TRANSFER, [_t(ALICE), _t(ZERO)], [5], index=4),  # a transferBase: alone
        _log(ev.TRANSFER, [_t(ZERO), _t(BOB)], [5], index=5),
        _log(ev.ABSORB_DEBT, [_t(BOB), _t(ALICE)], [70, 70], index=6),
        _log(ev.TRANSFER, [_t(ZERO), _t(ALICE)], [1], index=7),
    ]
    events = ev.decode_logs(list(reversed(logs)), COMET)
    assert [e.log_index for e in events] == list(range(8))
    assert [e.companion for e in events] == [False, True, False, True, False, False, False, True]
    assert [e.moves_base for e in events] == [True, False, True, False, True, True, True, False]


def test_malformed_logs_are_decode_errors() -> None:
    with pytest.raises(DecodeError, match="bytes of data"):
        ev.decode_log(_log(ev.SUPPLY, [_t(BOB), _t(ALICE)], [1, 2]))
    with pytest.raises(DecodeError, match="topics"):
        ev.decode_log(_log(ev.SUPPLY_COLLATERAL, [_t(BOB), _t(ALICE)], [1]))
    with pytest.raises(DecodeError, match="zero address"):
        ev.decode_log(_log(ev.TRANSFER, [_t(ZERO), _t(ZERO)], [1]))
    with pytest.raises(DecodeError, match="not Comet"):
        ev.decode_logs([Log(BOB, (event_topic(ev.SUPPLY), _t(BOB), _t(ALICE)), bytes(32), 1, "0x" + "22" * 32, 0)],
                       COMET)  # fmt: skip


INDEX = st.integers(min_value=10**15, max_value=2**64 - 1)


@given(st.integers(min_value=0, max_value=2**103), INDEX)
def test_a_supply_principal_is_recovered_from_its_present_value(principal: int, index: int) -> None:
    assert supply_principal_of(present_value(principal, index), index) == principal


@given(st.integers(min_value=-(2**100), max_value=2**100), INDEX, INDEX)
def test_principal_and_present_value_round_as_comet(principal: int, s_index: int, b_index: int) -> None:
    value = present(principal, s_index, b_index)
    back = principal_of(value, s_index, b_index)
    if principal >= 0:
        assert value == principal * s_index // 10**15 and back <= principal
    else:
        assert value == -((-principal * b_index) // 10**15) and back >= principal
        assert -back * b_index >= -value * 10**15  # the borrow principal rounds up: it covers the debt
