"""The FaultProxy / JunkProxy test peers themselves: transparent forwarding, each fault kind
as a raw HTTP client sees it, per-call limits, the dead switch, seeded determinism."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from monitor.chain.rpc import RpcClient
from monitor.devnet.anvil import Anvil
from monitor.errors import RpcError, RpcResponseError
from tests.support_proxy import RANGE_ERRORS, FaultProxy, Faults, Junk, JunkProxy

ECHO = "0x00000000000000000000000000000000000ec40a"
ECHO_CODE = "0x366000600037366000f3"  # CALLDATACOPY(0, 0, CALLDATASIZE); RETURN(0, CALLDATASIZE)
CHAIN_ID = "0x7a69"


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    with Anvil() as node:
        rpc(node.url, "anvil_setCode", [ECHO, ECHO_CODE])
        rpc(node.url, "anvil_mine", ["0x40"])  # 64 blocks for the log-range checks
        yield node


@pytest.fixture
def proxy(anvil: Anvil) -> Iterator[FaultProxy]:
    with FaultProxy(anvil.url, seed=1) as p:
        yield p
    assert p.errors == []  # no exception inside the proxy itself


def call(method: str, params: list[Any] | None = None, rid: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params or []}


def post(url: str, body: Any, timeout: float = 5.0) -> requests.Response:
    return requests.post(url, json=body, timeout=timeout)


def rpc(url: str, method: str, params: list[Any] | None = None) -> Any:
    answer = post(url, call(method, params)).json()
    assert "error" not in answer, answer
    return answer["result"]


def echo_call(data: bytes, rid: int = 1, gas: int | None = None) -> dict[str, Any]:
    tx: dict[str, Any] = {"to": ECHO, "data": "0x" + data.hex()}
    if gas is not None:
        tx["gas"] = hex(gas)
    return call("eth_call", [tx, "latest"], rid)


def get_logs(first: int | str, last: int | str, rid: int = 1) -> dict[str, Any]:
    def tag(block: int | str) -> str:
        return hex(block) if isinstance(block, int) else block

    return call("eth_getLogs", [{"fromBlock": tag(first), "toBlock": tag(last)}], rid)


# --------------------------------------------------------------------------- forwarding


@pytest.mark.parametrize(
    "body",
    [
        call("eth_chainId"),
        call("eth_blockNumber", rid=7),
        echo_call(b"\x01\x02\x03" * 11, rid=3),
        call("eth_getBlockByNumber", ["0x1", False]),
        call("eth_noSuchMethod"),  # the node's own error passes through unchanged
        [call("eth_chainId", rid=1), call("eth_blockNumber", rid=2), echo_call(b"\xaa" * 40, rid=3)],
    ],
    ids=["chainId", "blockNumber", "eth_call", "getBlock", "node-error", "batch"],
)
def test_forwarding_equals_direct_answers(anvil: Anvil, proxy: FaultProxy, body: Any) -> None:
    direct = post(anvil.url, body)
    via = post(proxy.url, body)
    assert via.status_code == direct.status_code == 200
    assert via.json() == direct.json()
    assert proxy.counts["forwarded"] == 1 and proxy.counts["requests"] == 1
    assert proxy.log[0]["fault"] is None
    assert proxy.log[0]["method"] == ("batch" if isinstance(body, list) else body["method"])


def test_rpc_client_through_a_clean_proxy(proxy: FaultProxy) -> None:
    client = RpcClient([proxy.url], max_retries=0)
    assert client.chain_id() == 0x7A69
    assert client.eth_call(ECHO, b"\x00\x11" * 20) == b"\x00\x11" * 20
    assert client.batch([("eth_chainId", []), ("eth_call", [{"to": ECHO, "data": "0x1234"}, "latest"])]) == [
        CHAIN_ID,
        "0x1234",
    ]
    assert client.stats[proxy.url].errors == 0 and proxy.counts["forwarded"] == 3
    client.close()


# --------------------------------------------------------------------------- fault kinds


def always(kind: str, **kw: Any) -> Faults:
    return Faults(rate=1.0, kinds=(kind,), **kw)


def test_429_has_retry_after_and_a_json_rpc_body(proxy: FaultProxy) -> None:
    proxy.faults = always("429", retry_after=0.25)
    answer = post(proxy.url, call("eth_chainId", rid=9))
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "0.25"
    assert answer.json() == {"jsonrpc": "2.0", "id": 9, "error": {"code": 429, "message": "Too Many Requests"}}
    assert proxy.counts["429"] == 1 and proxy.counts["forwarded"] == 0


def test_500_is_a_text_error(proxy: FaultProxy) -> None:
    proxy.faults = always("500")
    answer = post(proxy.url, call("eth_chainId"))
    assert answer.status_code == 500 and answer.text == "Internal Server Error"
    assert proxy.counts["500"] == 1


def test_timeout_stalls_then_closes_without_answer(proxy: FaultProxy) -> None:
    proxy.faults = always("timeout", timeout_s=0.3)
    with pytest.raises(requests.ReadTimeout):  # a client with a shorter timeout gives up first
        post(proxy.url, call("eth_chainId"), timeout=0.1)
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError, match="without response"):  # a patient one sees the close
        post(proxy.url, call("eth_chainId"), timeout=5)
    assert 0.25 <= time.monotonic() - started < 3
    assert proxy.counts["timeout"] == 2 and proxy.counts["forwarded"] == 0


def test_reset_aborts_the_connection(proxy: FaultProxy) -> None:
    proxy.faults = always("reset")
    with pytest.raises(requests.ConnectionError, match="reset"):
        post(proxy.url, call("eth_chainId"))
    assert proxy.counts["reset"] == 1 and proxy.counts["forwarded"] == 0


@pytest.mark.parametrize("body", [echo_call(b"\x42" * 64), [call("eth_chainId"), call("eth_blockNumber", rid=2)]])
def test_truncated_is_the_first_half_of_the_real_answer(anvil: Anvil, proxy: FaultProxy, body: Any) -> None:
    direct = post(anvil.url, body).content
    proxy.faults = always("truncated")
    answer = post(proxy.url, body)
    assert answer.status_code == 200 and answer.content == direct[: len(direct) // 2]
    with pytest.raises(ValueError):
        answer.json()
    assert proxy.counts["truncated"] == 1 and proxy.counts["forwarded"] == 1


def test_range_fault_hits_only_get_logs_and_alternates_texts(proxy: FaultProxy) -> None:
    proxy.faults = always("range")
    errors = [post(proxy.url, get_logs(1, 2, rid=i)).json() for i in range(4)]
    assert [e["error"] for e in errors] == [
        RANGE_ERRORS[0],
        RANGE_ERRORS[1],
        {"code": -32000, "message": "exceed maximum block range: 2000"},
        RANGE_ERRORS[0],
    ]
    assert [e["id"] for e in errors] == [0, 1, 2, 3]
    assert post(proxy.url, call("eth_chainId")).json()["result"] == CHAIN_ID  # nothing else to draw: forwarded
    assert proxy.counts["range"] == 4 and proxy.counts["forwarded"] == 1


def test_faulted_requests_never_reach_the_node(anvil: Anvil, proxy: FaultProxy) -> None:
    before = int(rpc(anvil.url, "eth_blockNumber"), 16)
    proxy.faults = Faults(rate=1.0, kinds=("429", "500", "timeout", "reset"), timeout_s=0.05)
    for _ in range(12):
        with contextlib.suppress(requests.RequestException):
            post(proxy.url, call("evm_mine"), timeout=1)
    assert int(rpc(anvil.url, "eth_blockNumber"), 16) == before
    assert proxy.counts["forwarded"] == 0 and sum(proxy.counts[k] for k in ("429", "500", "timeout", "reset")) == 12


def test_batches_get_one_fault_for_the_whole_request(proxy: FaultProxy) -> None:
    proxy.faults = always("500")
    answer = post(proxy.url, [call("eth_chainId"), call("eth_blockNumber", rid=2)])
    assert answer.status_code == 500
    assert proxy.log == [
        {
            "method": "batch",
            "methods": ["eth_chainId", "eth_blockNumber"],
            "params": "2 calls: eth_chainId, eth_blockNumber",
            "fault": "500",
        }
    ]


def test_unknown_fault_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault kinds"):
        Faults(kinds=("429", "teapot"))


# --------------------------------------------------------------------------- provider limits


def test_max_log_range_counts_blocks_inclusively_and_resolves_tags(anvil: Anvil, proxy: FaultProxy) -> None:
    proxy.faults = Faults(max_log_range=10)
    assert post(proxy.url, get_logs(1, 10)).json()["result"] == []
    too_wide = post(proxy.url, get_logs(1, 11)).json()
    assert too_wide["error"] == RANGE_ERRORS[0]
    assert post(proxy.url, get_logs(0, "latest")).json()["error"] == RANGE_ERRORS[1]
    assert post(proxy.url, get_logs("earliest", 5)).json()["result"] == []
    head = int(rpc(anvil.url, "eth_blockNumber"), 16)
    assert post(proxy.url, get_logs(head - 9, "latest")).json()["result"] == []
    message = post(proxy.url, get_logs(head - 10, "latest")).json()["error"]["message"]
    assert message == "exceed maximum block range: 10"
    block_hash = rpc(anvil.url, "eth_getBlockByNumber", ["0x1", False])["hash"]
    by_hash = call("eth_getLogs", [{"blockHash": block_hash}])
    assert post(proxy.url, by_hash).json()["result"] == []
    assert proxy.counts["range"] == 3


def test_range_errors_reach_the_client_as_node_answers(proxy: FaultProxy) -> None:
    proxy.faults = Faults(max_log_range=5)
    client = RpcClient([proxy.url], max_retries=3, sleep=lambda s: None)
    codes = []
    for _ in range(3):
        with pytest.raises(RpcResponseError) as info:
            client.request("eth_getLogs", [{"fromBlock": "0x1", "toBlock": "0x20"}])
        codes.append(info.value.code)
    assert codes == [-32005, -32600, -32000]
    assert proxy.counts["range"] == 3  # not retried: the caller must shrink the range
    client.close()


def test_calldata_limit_answers_out_of_gas_per_call(anvil: Anvil, proxy: FaultProxy) -> None:
    proxy.faults = Faults(max_calldata_bytes=100)
    assert post(proxy.url, echo_call(b"\x01" * 100)).json()["result"] == "0x" + "01" * 100
    assert post(proxy.url, echo_call(b"\x01" * 101)).json()["error"] == {"code": -32000, "message": "out of gas"}
    batch = [echo_call(b"\x02" * 10, rid=1), echo_call(b"\x03" * 200, rid=2), call("eth_chainId", rid=3)]
    answers = post(proxy.url, batch).json()
    assert answers[0] == post(anvil.url, batch[0]).json()
    assert answers[1] == {"jsonrpc": "2.0", "id": 2, "error": {"code": -32000, "message": "out of gas"}}
    assert answers[2] == {"jsonrpc": "2.0", "id": 3, "result": CHAIN_ID}
    assert proxy.counts["gas"] == 2


def test_gas_cap_is_enforced_by_the_node(proxy: FaultProxy) -> None:
    proxy.faults = Faults(max_call_gas=100_000)  # calldata floor (EIP-7623): 21,000 + 40 gas per non-zero byte
    assert post(proxy.url, echo_call(b"\xff" * 1000)).json()["result"] == "0x" + "ff" * 1000
    assert post(proxy.url, echo_call(b"\xff" * 4000)).json()["error"] == {"code": -32000, "message": "out of gas"}
    assert post(proxy.url, echo_call(b"\xff" * 1000, gas=25_000)).json()["error"]["message"] == "out of gas"
    assert proxy.counts["gas"] == 2


def test_max_batch_alternates_413_and_geth_error(proxy: FaultProxy) -> None:
    proxy.faults = Faults(max_batch=2)
    small = [call("eth_chainId", rid=1), call("eth_chainId", rid=2)]
    big = [call("eth_chainId", rid=5), call("eth_blockNumber", rid=6), call("eth_chainId", rid=7)]
    assert len(post(proxy.url, small).json()) == 2
    first = post(proxy.url, big)
    assert first.status_code == 413
    second = post(proxy.url, big)
    assert second.json() == [{"jsonrpc": "2.0", "id": 5, "error": {"code": -32600, "message": "batch too large"}}]
    proxy.faults = Faults(max_batch=2, batch_reply="error")
    assert post(proxy.url, big).status_code == 200
    assert proxy.counts["batch"] == 3 and proxy.counts["forwarded"] == 1


def test_dead_switch_mid_run_and_back(proxy: FaultProxy) -> None:
    session = requests.Session()  # a pooled keep-alive connection is cut too
    assert session.post(proxy.url, json=call("eth_chainId"), timeout=5).json()["result"] == CHAIN_ID
    proxy.faults.dead = True
    for _ in range(3):
        with pytest.raises(requests.ConnectionError):
            session.post(proxy.url, json=call("eth_chainId"), timeout=5)
    client = RpcClient([proxy.url], max_retries=1, sleep=lambda s: None)
    with pytest.raises(RpcError, match="connection"):
        client.chain_id()
    proxy.faults.dead = False
    assert session.post(proxy.url, json=call("eth_chainId"), timeout=5).json()["result"] == CHAIN_ID
    assert client.chain_id() == 0x7A69
    assert proxy.counts["dead"] == 5 and proxy.counts["forwarded"] == 3
    client.close()
    session.close()


# --------------------------------------------------------------------------- randomness


def fault_sequence(upstream: str, seed: int, n: int = 90) -> list[str | None]:
    faults = Faults(rate=0.5, kinds=("429", "500", "reset", "truncated", "range"))
    with FaultProxy(upstream, faults, seed=seed) as p:
        for i in range(n):
            body = get_logs(1, 2, rid=i) if i % 3 == 0 else call("eth_chainId", rid=i)
            with contextlib.suppress(requests.ConnectionError):
                post(p.url, body)
        assert p.counts["requests"] == n
        return [entry["fault"] for entry in p.log]


def test_same_seed_same_faults(anvil: Anvil) -> None:
    first = fault_sequence(anvil.url, seed=42)
    assert first == fault_sequence(anvil.url, seed=42)
    assert first != fault_sequence(anvil.url, seed=43)
    assert {"429", "500", "reset", "truncated", "range", None} <= set(first)
    ranges = [i for i, fault in enumerate(first) if fault == "range"]
    assert all(i % 3 == 0 for i in ranges)  # only eth_getLogs requests get range faults


def test_rate_is_respected(anvil: Anvil) -> None:
    with FaultProxy(anvil.url, Faults(rate=0.25, kinds=("500",)), seed=3) as p:
        statuses = [post(p.url, call("eth_chainId")).status_code for _ in range(200)]
    assert 30 <= statuses.count(500) <= 70
    assert p.counts["500"] == statuses.count(500) and p.counts["forwarded"] == statuses.count(200)


def test_concurrent_clients_are_all_accounted(anvil: Anvil) -> None:
    with FaultProxy(anvil.url, Faults(rate=0.3, kinds=("429", "500")), seed=5) as p:

        def worker() -> None:
            with requests.Session() as session:
                for _ in range(20):
                    session.post(p.url, json=call("eth_blockNumber"), timeout=5)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert p.counts["requests"] == 160 and len(p.log) == 160
        assert p.counts["forwarded"] + p.counts["429"] + p.counts["500"] == 160


def test_rpc_client_rides_out_random_faults(proxy: FaultProxy) -> None:
    proxy.faults = Faults(rate=0.3, kinds=("429", "500", "timeout", "reset", "truncated"), timeout_s=0.3)
    client = RpcClient([proxy.url], timeout=0.15, max_retries=10, sleep=lambda s: None)
    for i in range(30):
        assert client.eth_call(ECHO, i.to_bytes(4, "big")) == i.to_bytes(4, "big")
    faults = sum(proxy.counts[k] for k in ("429", "500", "timeout", "reset", "truncated"))
    assert faults > 0 and client.stats[proxy.url].errors == faults
    assert client.stats[proxy.url].requests == proxy.counts["requests"]
    client.close()


# --------------------------------------------------------------------------- JunkProxy


def test_junk_proxy_serves_sequences_and_forwards_the_rest(anvil: Anvil) -> None:
    junk: dict[str, Junk | list[Junk | None]] = {
        "eth_chainId": [Junk.result(12), None, Junk.text("<html>oops</html>")],
        "batch": Junk.json([]),
    }
    with JunkProxy(anvil.url, junk) as p:
        assert post(p.url, call("eth_chainId", rid=4)).json() == {"jsonrpc": "2.0", "id": 4, "result": 12}
        assert post(p.url, call("eth_chainId")).json()["result"] == CHAIN_ID  # None: forwarded
        for _ in range(2):  # the last one repeats
            assert post(p.url, call("eth_chainId")).text == "<html>oops</html>"
        assert post(p.url, [call("eth_chainId")]).json() == []
        assert post(p.url, call("eth_blockNumber")).json()["result"].startswith("0x")
        assert p.counts["eth_chainId"] == 3 and p.counts["batch"] == 1 and p.counts["forwarded"] == 2


def test_junk_proxy_without_upstream_says_method_not_found() -> None:
    with JunkProxy() as p:
        answer = post(p.url, call("eth_chainId", rid=3)).json()
    assert answer["id"] == 3 and answer["error"]["code"] == -32601
