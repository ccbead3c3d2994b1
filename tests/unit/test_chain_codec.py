"""ABI helper and the strict aggregate3 decoder."""

from __future__ import annotations

import pytest
from eth_abi import encode
from hypothesis import given
from hypothesis import strategies as st

from monitor.chain.abi import fn, split_types
from monitor.chain.multicall import AGGREGATE3, Call, decode_aggregate3, encode_aggregate3
from monitor.errors import DecodeError


def test_selector_and_split() -> None:
    assert AGGREGATE3.selector.hex() == "82ad56cb"
    assert fn("balanceOf(address)", "uint256").selector.hex() == "70a08231"
    assert split_types("address,(uint256,bool)[],bytes") == ("address", "(uint256,bool)[]", "bytes")
    assert split_types("") == ()


def test_word_fast_path_rejects_short_and_oversized() -> None:
    f = fn("decimals()", "uint8")
    assert f.decode_one((18).to_bytes(32, "big")) == 18
    with pytest.raises(DecodeError):
        f.decode(b"\x00" * 31)
    with pytest.raises(DecodeError):
        f.decode((256).to_bytes(32, "big"))


def test_bad_data_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        fn("getReservesList()", "address[]").decode(b"\x00" * 5)


@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=80)), max_size=20))
def test_aggregate3_decoder_matches_eth_abi(results: list[tuple[bool, bytes]]) -> None:
    data = encode(["(bool,bytes)[]"], [results])
    assert decode_aggregate3(data, len(results)) == results


@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=80)), min_size=1, max_size=8), st.data())
def test_aggregate3_decoder_never_reads_past_truncation(results: list[tuple[bool, bytes]], data: st.DataObject) -> None:
    full = encode(["(bool,bytes)[]"], [results])
    cut = data.draw(st.integers(min_value=0, max_value=len(full) - 1))
    try:
        decoded = decode_aggregate3(full[:cut], len(results))
    except DecodeError:
        return
    # a truncation that only dropped zero padding still decodes to the same values
    assert decoded == results


def test_aggregate3_count_mismatch() -> None:
    data = encode(["(bool,bytes)[]"], [[(True, b"")]])
    with pytest.raises(DecodeError, match="expected 2 results"):
        decode_aggregate3(data, 2)


def test_encode_aggregate3_round_trip() -> None:
    f = fn("balanceOf(address)", "uint256")
    calls = [Call("0x" + "11" * 20, f, ("0x" + "22" * 20,), allow_failure=True)]
    from eth_abi import decode

    (items,) = decode(["(address,bool,bytes)[]"], encode_aggregate3(calls)[4:])
    assert items[0][1] is True and items[0][2] == f.encode("0x" + "22" * 20)


addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())


@given(st.lists(st.tuples(addresses, st.booleans(), addresses), max_size=30))
def test_hand_encoded_aggregate3_equals_eth_abi(items: list[tuple[str, bool, str]]) -> None:
    from monitor.chain.multicall import encode_aggregate3_reference

    balance = fn("balanceOf(address)", "uint256")
    data = fn("getReserveData(address)", "uint256")
    calls = [Call(t, balance if i % 2 else data, (u,), allow_failure=f) for i, (t, f, u) in enumerate(items)]
    assert encode_aggregate3(calls) == encode_aggregate3_reference(calls)


@given(addresses)
def test_address_fast_path_equals_eth_abi(address: str) -> None:
    from eth_abi import encode as reference

    f = fn("balanceOf(address)", "uint256")
    assert f.encode(address) == f.selector + reference(["address"], [address])


@given(st.lists(st.integers(min_value=0, max_value=2**256 - 1), min_size=6, max_size=6))
def test_word_decoder_equals_eth_abi(values: list[int]) -> None:
    from eth_abi import decode as reference
    from eth_abi import encode as ref_encode

    f = fn("getUserAccountData(address)", "uint256,uint256,uint256,uint256,uint256,uint256")
    data = ref_encode(["uint256"] * 6, values)
    assert f.decode(data) == tuple(reference(["uint256"] * 6, data))
    with pytest.raises(DecodeError):
        f.decode(data[:-1])
