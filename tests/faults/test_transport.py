"""The bounded transport on its own (no devnet): one deadline per attempt against a trickle,
the body cap, redirects refused, the retry budget in seconds, answers checked, lag routing,
chain id re-checked on failover, an HTTP proxy from the environment."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from monitor.chain.http import mask_url
from monitor.chain.rpc import RpcClient
from monitor.errors import RpcError
from tests.faults.test_rpc_client import Behaviour, Server, ok
from tests.support_proxy import HostileProxy


@pytest.fixture
def serve() -> Iterator[Callable[[Behaviour], Server]]:
    servers: list[Server] = []

    def start(behaviour: Behaviour) -> Server:
        servers.append(Server(behaviour))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def node(chain: str = "0x7a69", head: str = "0x64") -> Behaviour:
    def answer(n: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        if isinstance(body, list):
            return 200, {}, json.dumps([json.loads(answer(n, b)[2]) for b in body]).encode()
        method = body.get("method")
        if method == "eth_chainId":
            return ok(body, chain)
        if method == "eth_getBlockByNumber":
            number = int(body["params"][0], 16)
            if number > int(head, 16):
                return ok(body, None)
            return ok(body, {"number": hex(number), "hash": "0x" + f"{number:064x}", "timestamp": "0x1"})
        return ok(body, head)

    return answer


def test_trickle_is_cut_at_the_deadline_and_the_budget_bounds_retries(serve: Callable[[Behaviour], Server]) -> None:
    upstream = serve(node())
    with HostileProxy(upstream.url, "trickle") as slow:
        client = RpcClient([slow.url], timeout=0.5, max_retries=0, retry_budget_s=1.6, backoff_base=0.05)
        started = time.monotonic()
        with pytest.raises(RpcError, match=r"within the 0.5 s deadline") as info:
            client.request("eth_blockNumber")
        spent = time.monotonic() - started
    assert 1.0 < spent < 4.0, spent  # retried within the budget, then gave up (not 47 s)
    assert "attempt(s)" in str(info.value) and slow.counts["attacked"] >= 2


def test_body_cap_and_endless_stream(serve: Callable[[Behaviour], Server]) -> None:
    upstream = serve(node())
    for mode in ("huge_body", "endless_stream"):
        with HostileProxy(upstream.url, mode) as evil:
            client = RpcClient([evil.url], timeout=10, max_retries=3, max_response_bytes=1 << 20)
            started = time.monotonic()
            with pytest.raises(RpcError, match="beyond the 1,048,576-byte cap"):
                client.request("eth_blockNumber")
            assert time.monotonic() - started < 5
            assert evil.counts["attacked"] == 1  # final for that endpoint: not asked again in the call


def test_redirect_refused_and_masked(serve: Callable[[Behaviour], Server]) -> None:
    upstream = serve(node())
    target = "https://u:pw@evil.example/x?key=abc&n=1"
    with HostileProxy(upstream.url, "redirect", redirect_to=target) as evil, pytest.raises(RpcError) as info:
        RpcClient([evil.url], max_retries=2, sleep=lambda s: None).request("eth_chainId")
    text = str(info.value)
    assert "redirected (HTTP 307) to https://<secret>@evil.example/x?key=<secret>&n=1" in text
    assert "u:pw" not in text and "abc" not in text
    assert mask_url("http://a:b@h:1/p?apikey=K&x=2") == "http://<secret>@h:1/p?apikey=<secret>&x=2"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_budget_is_seconds_not_a_count(serve: Callable[[Behaviour], Server]) -> None:
    flaky = serve(lambda n, b: (500, {}, b"down") if n <= 12 else ok(b, "0x5"))
    clock = FakeClock()
    client = RpcClient([flaky.url], max_retries=2, retry_budget_s=60, backoff_base=0.5, backoff_cap=2,
                       sleep=clock.sleep, clock=clock, rng=lambda: 1.0)  # fmt: skip
    assert client.request("eth_blockNumber") == "0x5"  # 12 failures in a row, ridden out by the budget
    assert flaky.hits == 13 and clock.now < 60
    dead = serve(lambda n, b: (503, {}, b"down"))
    clock2 = FakeClock()
    client2 = RpcClient([dead.url], max_retries=2, retry_budget_s=10, backoff_base=0.5, backoff_cap=2,
                        sleep=clock2.sleep, clock=clock2, rng=lambda: 1.0)  # fmt: skip
    with pytest.raises(RpcError, match="no RPC endpoint answered"):
        client2.request("eth_blockNumber")
    assert 8 <= clock2.now <= 10  # stopped when the budget was spent


def test_lagging_endpoint_skipped_and_null_block_is_lag(serve: Callable[[Behaviour], Server]) -> None:
    lagging = serve(node(head="0x50"))
    synced = serve(node(head="0x64"))
    client = RpcClient([lagging.url, synced.url], max_retries=1, sleep=lambda s: None)
    assert client.freshest_head() == 0x64
    block = client.get_block(0x60)  # the lagging, preferred endpoint is not even asked
    assert block["number"] == "0x60" and client.stats[lagging.url].by_method["eth_getBlockByNumber"] == 0
    only_lagging = RpcClient([lagging.url], max_retries=1, sleep=lambda s: None)
    with pytest.raises(RpcError, match=r"it lags.*no endpoint has block 96 yet"):
        only_lagging.get_block(0x60)
    assert only_lagging.stats[lagging.url].head == 0x5F


def test_chain_flip_on_failover_drops_the_endpoint(serve: Callable[[Behaviour], Server]) -> None:
    state = {"chain": "0x7a69"}
    primary = serve(node())
    backup = serve(lambda n, b: node(chain=state["chain"])(n, b))
    client = RpcClient([primary.url, backup.url], max_retries=3, sleep=lambda s: None)
    assert client.check_chain_id(31337) == []
    state["chain"] = "0x1"  # the backup now serves mainnet
    primary.close()  # the primary goes away: fail over
    with pytest.raises(RpcError, match=r"serves chain 1, not the configured chain 31337"):
        client.request("eth_blockNumber")
    assert client.stats[backup.url].disabled and client.usable_endpoints() == [client.endpoints[0]]


def test_an_http_proxy_from_the_environment_is_used(
    serve: Callable[[Behaviour], Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = serve(node(head="0x2a"))  # answers whatever URL it is asked for, as a proxy would
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "")
    client = RpcClient(["http://node.invalid:8545/"], max_retries=0)
    assert client.request("eth_blockNumber") == "0x2a" and proxy.hits == 1
