"""Junk answers from a node must end in a clear MonitorError naming the method, never in a
wrong value nor a bare KeyError / TypeError / ValueError.

Each junk body is served by a local :class:`JunkProxy`; the client reads it through its
public API (``chain_id``, ``block_number``, ``eth_call``, ``get_block``, ``batch``,
``iter_log_chunks``, ``Multicall``) or the decoders read it directly.

Cases marked ``regression`` exposed bugs in ``monitor/`` when the corpus was written (input,
expected and what went wrong are in the reason); they are fixed and stay as regression tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_abi import encode

from monitor.chain.abi import fn
from monitor.chain.logs import iter_log_chunks
from monitor.chain.multicall import Call, Multicall, decode_aggregate3
from monitor.chain.rpc import RpcClient
from monitor.errors import DecodeError, MonitorError, RpcError, RpcResponseError
from tests.support_proxy import GENERIC_JUNK, Junk, JunkProxy

TARGET = "0x" + "11" * 20
TOTAL_SUPPLY = fn("totalSupply()", "uint256")
OWNER = fn("owner()", "address")

Reader = Callable[[RpcClient], Any]


def scan_logs(client: RpcClient) -> Any:
    return list(iter_log_chunks(client, TARGET, [], 0, 0, 10))


def read_batch(client: RpcClient) -> Any:
    return client.batch([("eth_chainId", []), ("eth_blockNumber", [])])


READERS: dict[str, Reader] = {
    "eth_chainId": lambda c: c.chain_id(),
    "eth_blockNumber": lambda c: c.block_number(),
    "eth_call": lambda c: c.eth_call(TARGET, b"\x01", "latest"),
    "eth_getBlockByNumber": lambda c: c.get_block("latest"),
    "eth_getLogs": scan_logs,
    "batch": read_batch,
}
NAMES: dict[str, tuple[str, ...]] = {m: (m,) for m in READERS} | {"batch": ("batch", "eth_chainId")}


def expect_clear_error(
    action: Callable[[], Any], names: tuple[str, ...], error: type[MonitorError] = MonitorError
) -> MonitorError:
    """``action`` must raise ``error`` (a MonitorError) whose message names one of ``names``."""
    try:
        value = action()
    except MonitorError as exc:
        assert isinstance(exc, error), f"raised {type(exc).__name__} ({exc}), expected {error.__name__}"
        assert any(name in str(exc) for name in names), f"message does not name {' / '.join(names)}: {exc}"
        return exc
    except Exception as exc:  # a bare Python error escaping the library is the bug this file hunts
        raise AssertionError(f"raised bare {type(exc).__name__}: {str(exc)[:200]}") from exc
    raise AssertionError(f"returned {str(value)[:200]!r} instead of raising")


def bug(reason: str) -> pytest.MarkDecorator:
    """A case that exposed a bug in ``monitor/`` when this corpus was written (now fixed):
    kept as a regression test, labelled with what went wrong."""
    return pytest.mark.regression(reason=reason)


@pytest.fixture(scope="module")
def junk_proxy() -> Iterator[JunkProxy]:
    with JunkProxy() as proxy:
        yield proxy
    assert proxy.errors == []


@pytest.fixture
def serve(junk_proxy: JunkProxy) -> Iterator[Callable[[str, Junk], RpcClient]]:
    """``serve(method, junk)`` -> a client whose node answers ``method`` with ``junk``."""
    clients: list[RpcClient] = []

    def start(method: str, junk: Junk) -> RpcClient:
        junk_proxy.set(method, junk)
        clients.append(RpcClient([junk_proxy.url], timeout=5.0, max_retries=1, sleep=lambda s: None))
        return clients[-1]

    yield start
    for client in clients:
        client.close()
    junk_proxy.junk.clear()


# --------------------------------------------------------------------------- any method


BUG_UNHASHABLE_CODE = bug(
    'error {"code": [-32000] | {"value": -32000}, "message": "server error"} -> expected RpcResponseError; '
    "got bare TypeError 'unhashable type' from `error.get('code') in RATE_LIMIT_CODES` in rpc._is_rate_limited"
)
BUG_DEEP_JSON = bug(
    "body '[' * 100000 + ']' * 100000 -> expected RpcError (answer is not JSON); got bare RecursionError: "
    "rpc._post catches only ValueError around response.json()"
)
BUG_BLOCK_NOT_DICT = bug(
    'eth_getBlockByNumber result "\\ufffd\\ufffd" / [1, 2] / 5 / "0x1" (not an object) -> expected RpcError naming '
    "eth_getBlockByNumber and the wrong type; got RpcError 'block latest not found on the node' (misleading, "
    "no method name)"
)


def generic_cases() -> list[Any]:
    params = []
    for name, junk in GENERIC_JUNK.items():
        for method in READERS:
            marks: list[pytest.MarkDecorator] = []
            if name in ("error-code-list", "error-code-object"):
                marks.append(BUG_UNHASHABLE_CODE)
            elif name == "deeply-nested":
                marks.append(BUG_DEEP_JSON)
            elif name == "bad-utf8" and method == "eth_getBlockByNumber":
                marks.append(BUG_BLOCK_NOT_DICT)
            params.append(pytest.param(method, junk, id=f"{method}-{name}", marks=marks))
    return params


@pytest.mark.parametrize(("method", "junk"), generic_cases())
def test_generic_junk(serve: Callable[[str, Junk], RpcClient], method: str, junk: Junk) -> None:
    client = serve(method, junk)
    expect_clear_error(lambda: READERS[method](client), NAMES[method])


@pytest.mark.parametrize(
    ("error", "kind", "code"),
    [
        ({"code": 3, "message": "execution reverted", "data": "0x08c379a0"}, RpcResponseError, 3),
        ("server busy", RpcResponseError, None),
        ({}, RpcResponseError, None),
        ({"code": "-32000", "message": "x"}, RpcResponseError, None),
        ({"code": 2**80, "message": "x"}, RpcResponseError, 2**80),
    ],
    ids=["revert", "string", "empty", "code-as-string", "huge-code"],
)
def test_odd_error_objects_keep_a_usable_code(
    serve: Callable[[str, Junk], RpcClient], error: Any, kind: type[MonitorError], code: int | None
) -> None:
    client = serve("eth_call", Junk.error(error))
    exc = expect_clear_error(lambda: READERS["eth_call"](client), ("eth_call",), kind)
    assert isinstance(exc, RpcResponseError) and exc.code == code


# --------------------------------------------------------------------------- wrong types, huge numbers


@dataclass(frozen=True)
class Case:
    method: str
    junk: Junk
    error: type[MonitorError] = MonitorError
    names: tuple[str, ...] = ()


def case(case_id: str, method: str, junk: Junk, *marks: pytest.MarkDecorator, **kw: Any) -> Any:
    return pytest.param(Case(method, junk, **kw), id=f"{method}-{case_id}", marks=marks)


BUG_HUGE_QUANTITY = bug(
    'eth_blockNumber / eth_chainId result "0x" + "f" * 100 -> expected RpcError (no quantity is wider than '
    "256 bits, no block number above 2**63); got the 400-bit int 0xfff...f (rpc._to_int has no bound)"
)
BUG_LENIENT_INT = bug(
    'eth_blockNumber result "0x1_0" -> expected RpcError (not a hex quantity); got 16: rpc._to_int uses int(s, 16), '
    'which also accepts "0x_1" (1) and "0x1 " (1)'
)
BUG_LENIENT_HEX = bug(
    'eth_call result "0x00 11" -> expected RpcError (not hex data); got b"\\x00\\x11": rpc._hex_bytes uses '
    "bytes.fromhex, which skips whitespace"
)


WRONG_TYPES = [
    case("number", "eth_blockNumber", Junk.result(123), error=RpcError),
    case("decimal-string", "eth_blockNumber", Junk.result("12"), error=RpcError),
    case("bare-0x", "eth_blockNumber", Junk.result("0x"), error=RpcError),
    case("not-hex", "eth_blockNumber", Junk.result("0xzz"), error=RpcError),
    case("negative", "eth_blockNumber", Junk.result("0x-1"), error=RpcError),
    case("null", "eth_blockNumber", Junk.result(None), error=RpcError),
    case("list", "eth_blockNumber", Junk.result(["0x1"]), error=RpcError),
    case("object", "eth_blockNumber", Junk.result({"number": "0x1"}), error=RpcError),
    case("bool", "eth_blockNumber", Junk.result(True), error=RpcError),
    case("float", "eth_blockNumber", Junk.result(1.5), error=RpcError),
    case("huge", "eth_blockNumber", Junk.result("0x" + "f" * 100), BUG_HUGE_QUANTITY, error=RpcError),
    case("huge", "eth_chainId", Junk.result("0x" + "f" * 100), BUG_HUGE_QUANTITY, error=RpcError),
    case("underscore", "eth_blockNumber", Junk.result("0x1_0"), BUG_LENIENT_INT, error=RpcError),
    case("number", "eth_chainId", Junk.result(1), error=RpcError),
    case("number", "eth_call", Junk.result(5), error=RpcError),
    case("list", "eth_call", Junk.result(["0x00"]), error=RpcError),
    case("object", "eth_call", Junk.result({"data": "0x00"}), error=RpcError),
    case("odd-length", "eth_call", Junk.result("0x123"), error=RpcError),
    case("not-hex", "eth_call", Junk.result("0xzz"), error=RpcError),
    case("no-0x", "eth_call", Junk.result("00"), error=RpcError),
    case("null", "eth_call", Junk.result(None), error=RpcError),
    case("spaces", "eth_call", Junk.result("0x00 11"), BUG_LENIENT_HEX, error=RpcError),
    case("null", "eth_getBlockByNumber", Junk.result(None), error=RpcError, names=("not found",)),
    case("list", "eth_getBlockByNumber", Junk.result([1, 2]), BUG_BLOCK_NOT_DICT, error=RpcError),
    case("number", "eth_getBlockByNumber", Junk.result(5), BUG_BLOCK_NOT_DICT, error=RpcError),
    case("string", "eth_getBlockByNumber", Junk.result("0x1"), BUG_BLOCK_NOT_DICT, error=RpcError),
    case("object", "eth_getLogs", Junk.result({"logs": []}), error=DecodeError),
    case("string", "eth_getLogs", Junk.result("0x"), error=DecodeError),
    case("null", "eth_getLogs", Junk.result(None), error=DecodeError),
]


@pytest.mark.parametrize("junk_case", WRONG_TYPES)
def test_wrong_types_and_huge_numbers(serve: Callable[[str, Junk], RpcClient], junk_case: Case) -> None:
    client = serve(junk_case.method, junk_case.junk)
    names = junk_case.names or NAMES[junk_case.method]
    expect_clear_error(lambda: READERS[junk_case.method](client), names, junk_case.error)


# --------------------------------------------------------------------------- logs

GOOD_LOG: dict[str, Any] = {
    "address": TARGET,
    "topics": ["0x" + "aa" * 32, "0x" + "00" * 12 + "22" * 20],
    "data": "0x" + "00" * 31 + "07",
    "blockNumber": "0x1",
    "blockHash": "0x" + "bb" * 32,
    "transactionHash": "0x" + "cc" * 32,
    "logIndex": "0x0",
    "removed": False,
}


def log_without(key: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD_LOG.items() if k != key}


def log_with(key: str, value: Any) -> dict[str, Any]:
    return {**GOOD_LOG, key: value}


BUG_TOPICS_STRING = bug(
    'eth_getLogs log with "topics": "0xaaaa..." (a string, not a list) -> expected DecodeError; got a Log whose '
    "topics are the string's characters ('0', 'x', 'a', ...): logs.parse_log iterates any iterable"
)
BUG_TOPICS_NOT_HEX = bug(
    'eth_getLogs log with "topics": [1, 2] -> expected DecodeError; got topics ("1", "2"): parse_log str()s '
    "each item without checking it is 32-byte hex"
)
BUG_ADDRESS_NOT_HEX = bug(
    'eth_getLogs log with "address": null -> expected DecodeError; got Log(address="None"): parse_log '
    "str()s the field (same for blockHash)"
)
BUG_LOG_QUANTITY = bug(
    'eth_getLogs log with "blockNumber": 5 (or "logIndex": "1") -> expected DecodeError naming eth_getLogs; '
    "got RpcError 'log.blockNumber: expected a hex quantity' (to_int's RpcError escapes parse_log's except, so the "
    "type says transport failure and the message does not name eth_getLogs)"
)

LOG_CASES = [
    pytest.param([log_without("topics")], id="no-topics"),
    pytest.param([log_without("blockNumber")], id="no-blockNumber"),
    pytest.param([log_without("data")], id="no-data"),
    pytest.param([log_without("address")], id="no-address"),
    pytest.param([log_without("logIndex")], id="no-logIndex"),
    pytest.param([log_without("blockHash")], id="no-blockHash"),
    pytest.param([{}], id="empty-object"),
    pytest.param(["0xdeadbeef"], id="entry-string"),
    pytest.param([None], id="entry-null"),
    pytest.param([[GOOD_LOG]], id="entry-list"),
    pytest.param([log_with("topics", None)], id="topics-null"),
    pytest.param([log_with("data", 7)], id="data-number"),
    pytest.param([log_with("data", "0x123")], id="data-odd"),
    pytest.param([log_with("topics", "0x" + "aa" * 32)], id="topics-string", marks=BUG_TOPICS_STRING),
    pytest.param([log_with("topics", [1, 2])], id="topics-numbers", marks=BUG_TOPICS_NOT_HEX),
    pytest.param([log_with("address", None)], id="address-null", marks=BUG_ADDRESS_NOT_HEX),
    pytest.param([log_with("blockNumber", 5)], id="blockNumber-number", marks=BUG_LOG_QUANTITY),
    pytest.param([log_with("logIndex", "1")], id="logIndex-decimal", marks=BUG_LOG_QUANTITY),
]


@pytest.mark.parametrize("result", LOG_CASES)
def test_malformed_logs(serve: Callable[[str, Junk], RpcClient], result: Any) -> None:
    client = serve("eth_getLogs", Junk.result(result))
    expect_clear_error(lambda: scan_logs(client), ("eth_getLogs",), DecodeError)


def test_a_good_log_still_parses(serve: Callable[[str, Junk], RpcClient]) -> None:
    client = serve("eth_getLogs", Junk.result([GOOD_LOG]))
    [(first, last, [log])] = list(iter_log_chunks(client, TARGET, [GOOD_LOG["topics"][0]], 0, 1, 10))
    assert (first, last, log.block_number, log.log_index, log.data[-1]) == (0, 1, 1, 0, 7)
    assert log.topics == tuple(GOOD_LOG["topics"])


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"address": "0x" + "ee" * 20}, "not the filtered address"),
        ({"blockNumber": "0x9"}, "outside the requested block range"),
        ({"topics": ["0x" + "ab" * 32]}, "topic 0 not in the filter"),
        ({"blockHash": None}, "no blockHash"),
        ({"transactionHash": "<script>alert(1)</script>"}, "bad log transactionHash"),
    ],
)
def test_a_log_that_does_not_fit_the_question_is_refused(
    serve: Callable[[str, Junk], RpcClient], change: dict[str, Any], words: str
) -> None:
    client = serve("eth_getLogs", Junk.result([{**GOOD_LOG, **change}]))
    error = expect_clear_error(
        lambda: list(iter_log_chunks(client, TARGET, [GOOD_LOG["topics"][0]], 0, 1, 10)), ("eth_getLogs",), DecodeError
    )
    assert words in str(error)


# --------------------------------------------------------------------------- batches


def batch_of(build: Callable[[list[dict[str, Any]]], Any]) -> Junk:
    return Junk.json(lambda request: build(request))


def ok_item(rid: Any, result: Any = "0x1") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "result": result}


BUG_UNHASHABLE_ID = bug(
    'batch answered [{"id": [1], "result": "0x1"}, ...] (or "id": {...}) -> expected RpcError (no answer for '
    "call 0); got bare TypeError 'unhashable type' from the by_id dict in RpcClient.batch"
)

BATCH_CASES = [
    pytest.param(batch_of(lambda r: [ok_item(x["id"] + 100) for x in r]), RpcError, id="id-mismatch"),
    pytest.param(batch_of(lambda r: [ok_item(str(x["id"])) for x in r]), RpcError, id="ids-as-strings"),
    pytest.param(batch_of(lambda r: [ok_item(r[0]["id"]), ok_item(r[0]["id"])]), RpcError, id="duplicate-id"),
    pytest.param(batch_of(lambda r: [ok_item(r[0]["id"])]), RpcError, id="one-missing"),
    pytest.param(batch_of(lambda r: [None for _ in r]), RpcError, id="null-items"),
    pytest.param(batch_of(lambda r: ok_item(r[0]["id"])), RpcError, id="single-object"),
    pytest.param(batch_of(lambda r: {"jsonrpc": "2.0", "id": None}), RpcError, id="single-object-empty"),
    pytest.param(
        batch_of(lambda r: {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "no batches"}}),
        RpcResponseError,
        id="single-error-object",
    ),
    pytest.param(
        batch_of(lambda r: [{"jsonrpc": "2.0", "id": x["id"]} for x in r]), RpcError, id="items-without-result"
    ),
    pytest.param(batch_of(lambda r: [ok_item([x["id"]]) for x in r]), RpcError, id="id-list", marks=BUG_UNHASHABLE_ID),
    pytest.param(
        batch_of(lambda r: [ok_item({"id": x["id"]}) for x in r]), RpcError, id="id-object", marks=BUG_UNHASHABLE_ID
    ),
]


@pytest.mark.parametrize(("junk", "error"), BATCH_CASES)
def test_batch_junk(serve: Callable[[str, Junk], RpcClient], junk: Junk, error: type[MonitorError]) -> None:
    client = serve("batch", junk)
    expect_clear_error(lambda: read_batch(client), NAMES["batch"] + ("eth_blockNumber",), error)


def test_batch_answers_out_of_order_are_matched_by_id(serve: Callable[[str, Junk], RpcClient]) -> None:
    client = serve("batch", batch_of(lambda r: [ok_item(x["id"], x["method"]) for x in reversed(r)]))
    assert read_batch(client) == ["eth_chainId", "eth_blockNumber"]


# --------------------------------------------------------------------------- decoders


def word(n: int) -> bytes:
    return n.to_bytes(32, "big")


GOOD_AGGREGATE = encode(["(bool,bytes)[]"], [[(True, word(7)), (False, b"\x08\xc3\x79\xa0")]])
# layout: 0 base=0x20 | 32 count=2 | 64 head0 | 96 head1 | 128 item0: success, data offset | 192 len | 224 data...


def patched(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + word(value) + data[at + 32 :]


AGGREGATE_JUNK = [
    pytest.param(b"", id="empty"),
    pytest.param(word(7), id="a-plain-uint256"),
    pytest.param(GOOD_AGGREGATE[:-40], id="truncated"),
    pytest.param(patched(GOOD_AGGREGATE, 0, 2**255), id="base-offset-past-end"),
    pytest.param(patched(GOOD_AGGREGATE, 0, len(GOOD_AGGREGATE)), id="base-offset-at-end"),
    pytest.param(patched(GOOD_AGGREGATE, 64, 10**9), id="item-offset-past-end"),
    pytest.param(patched(GOOD_AGGREGATE, 160, 2**200), id="data-offset-past-end"),
    pytest.param(patched(GOOD_AGGREGATE, 192, 2**64), id="data-length-past-end"),
    pytest.param(patched(GOOD_AGGREGATE, 32, 3), id="count-mismatch"),
    pytest.param(patched(GOOD_AGGREGATE, 32, 2**256 - 1), id="count-huge"),
    pytest.param(patched(GOOD_AGGREGATE, 128, 2), id="success-not-bool"),
]


@pytest.mark.parametrize("data", AGGREGATE_JUNK)
def test_aggregate3_junk_is_a_decode_error(data: bytes) -> None:
    expect_clear_error(lambda: decode_aggregate3(data, 2), ("aggregate3",), DecodeError)


@pytest.mark.parametrize("data", AGGREGATE_JUNK)
def test_aggregate3_junk_through_multicall(serve: Callable[[str, Junk], RpcClient], data: bytes) -> None:
    client = serve("eth_call", Junk.result("0x" + data.hex()))
    calls = [Call(TARGET, TOTAL_SUPPLY), Call(TARGET, TOTAL_SUPPLY, allow_failure=True)]
    expect_clear_error(lambda: Multicall(client, TARGET).run(calls, 1), ("aggregate3",), DecodeError)


def test_good_aggregate3_still_decodes() -> None:
    assert decode_aggregate3(GOOD_AGGREGATE, 2) == [(True, word(7)), (False, b"\x08\xc3\x79\xa0")]


BUG_WORD_LENGTH = bug(
    "totalSupply() -> uint256 decoding 33 bytes (2**256 as 33 big-endian bytes: 01 00..00) -> expected DecodeError "
    "(a return that is not whole 32-byte words); got 2**248 (the first 32 bytes): Fn._decode_words only checks "
    "len >= 32 (eth-abi's strict=False path does the same: owner() -> address accepts 33 bytes)"
)

DECODE_JUNK = [
    pytest.param(TOTAL_SUPPLY, b"", id="uint256-empty"),
    pytest.param(TOTAL_SUPPLY, word(7)[1:], id="uint256-31-bytes"),
    pytest.param(fn("decimals()", "uint8"), word(256), id="uint8-overflow"),
    pytest.param(fn("x()", "bool"), word(2), id="bool-2"),
    pytest.param(OWNER, b"\x01" + word(1)[1:], id="address-dirty-padding"),
    pytest.param(fn("symbol()", "string"), word(2**200) + word(3), id="string-offset-past-end"),
    pytest.param(fn("symbol()", "string"), word(32) + word(2) + b"\xff\xfe" + bytes(30), id="string-bad-utf8"),
    pytest.param(TOTAL_SUPPLY, (2**256).to_bytes(33, "big"), id="uint256-33-bytes", marks=BUG_WORD_LENGTH),
    pytest.param(OWNER, word(1) + b"\x01", id="address-33-bytes", marks=BUG_WORD_LENGTH),
]


@pytest.mark.parametrize(("function", "data"), DECODE_JUNK)
def test_return_data_junk_is_a_decode_error(function: Any, data: bytes) -> None:
    expect_clear_error(lambda: function.decode(data), (function.signature,), DecodeError)


@BUG_WORD_LENGTH
def test_33_byte_word_through_multicall(serve: Callable[[str, Junk], RpcClient]) -> None:
    """The same 33-byte uint256 inside a well-formed aggregate3 answer, read by Multicall.run."""
    answer = encode(["(bool,bytes)[]"], [[(True, (2**256).to_bytes(33, "big"))]])
    client = serve("eth_call", Junk.result("0x" + answer.hex()))
    multicall = Multicall(client, TARGET)
    expect_clear_error(lambda: multicall.run([Call(TARGET, TOTAL_SUPPLY)], 1), ("totalSupply",), DecodeError)
