"""The RPC client against a local misbehaving JSON-RPC server (fault injection)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from monitor.chain.rpc import RpcClient
from monitor.errors import RpcError, RpcResponseError

Behaviour = Callable[[int, dict[str, Any]], tuple[int, dict[str, str], bytes]]


class Server:
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.hits += 1
                status, headers, payload = outer.behaviour(outer.hits, body)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Behaviour], Server]]:
    servers: list[Server] = []

    def start(behaviour: Behaviour) -> Server:
        servers.append(Server(behaviour))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def ok(body: dict[str, Any], result: Any = "0x1") -> tuple[int, dict[str, str], bytes]:
    return 200, {}, json.dumps({"jsonrpc": "2.0", "id": body["id"], "result": result}).encode()


def test_429_retry_after_is_honoured(serve: Callable[[Behaviour], Server]) -> None:
    server = serve(lambda n, b: (429, {"Retry-After": "2"}, b"slow down") if n == 1 else ok(b))
    sleeps: list[float] = []
    client = RpcClient([server.url], max_retries=2, sleep=sleeps.append, rng=lambda: 0.0)
    assert client.request("eth_chainId") == "0x1"
    assert sleeps == [2.0] and server.hits == 2


def test_5xx_and_junk_then_success(serve: Callable[[Behaviour], Server]) -> None:
    answers = {1: (502, {}, b"bad gateway"), 2: (200, {}, b"{not json")}
    server = serve(lambda n, b: answers.get(n) or ok(b, "0x2a"))
    sleeps: list[float] = []
    client = RpcClient([server.url], max_retries=3, sleep=sleeps.append, rng=lambda: 1.0)
    assert client.request("eth_blockNumber") == "0x2a"
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0]  # exponential backoff


def test_failover_to_second_endpoint(serve: Callable[[Behaviour], Server]) -> None:
    good = serve(lambda n, b: ok(b, "0x7"))
    client = RpcClient(["http://127.0.0.1:9", good.url], max_retries=2, sleep=lambda s: None)
    assert client.request("eth_chainId") == "0x7"
    assert client.stats["http://127.0.0.1:9"].errors == 1
    assert client.stats[good.url].requests == 1


def test_node_error_is_not_retried(serve: Callable[[Behaviour], Server]) -> None:
    def revert(n: int, b: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        err = {"jsonrpc": "2.0", "id": b["id"], "error": {"code": 3, "message": "execution reverted"}}
        return 200, {}, json.dumps(err).encode()

    server = serve(revert)
    client = RpcClient([server.url], max_retries=3, sleep=lambda s: None)
    with pytest.raises(RpcResponseError, match="execution reverted"):
        client.request("eth_call", [{}, "latest"])
    assert server.hits == 1


def test_all_down_names_endpoints_but_not_secrets() -> None:
    class Secret:
        url = "http://127.0.0.1:9/v3/SUPERSECRET"
        display = "http://127.0.0.1:9/v3/<secret>"

    client = RpcClient([Secret()], max_retries=1, sleep=lambda s: None)
    with pytest.raises(RpcError) as info:
        client.request("eth_chainId")
    assert "connection refused" in str(info.value) and "<secret>" in str(info.value)
    assert "SUPERSECRET" not in str(info.value)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_limit_spaces_requests_per_endpoint(serve: Callable[[Behaviour], Server]) -> None:
    server = serve(lambda n, b: ok(b))
    clock = FakeClock()
    client = RpcClient([server.url], rate_limit_per_s=4, sleep=clock.sleep, clock=clock)
    for _ in range(5):
        client.request("eth_blockNumber")
    assert sum(clock.slept) == pytest.approx(1.0)  # 5 requests at 4/s: the last starts 1 s after the first
    assert all(s == pytest.approx(0.25) for s in clock.slept)


def test_preferred_endpoint_recovers_after_its_cooldown(serve: Callable[[Behaviour], Server]) -> None:
    down = {"on": True}
    primary = serve(lambda n, b: (503, {}, b"maintenance") if down["on"] else ok(b, "0xa"))
    backup = serve(lambda n, b: ok(b, "0xb"))
    clock = FakeClock()
    client = RpcClient([primary.url, backup.url], cooldown_base=5.0, sleep=clock.sleep, clock=clock, rng=lambda: 0.0)
    assert client.request("eth_blockNumber") == "0xb"  # primary fails, backup answers
    assert client.request("eth_blockNumber") == "0xb"  # primary cooling down: not asked
    assert primary.hits == 1
    down["on"] = False
    clock.now += 6  # cooldown over
    assert client.request("eth_blockNumber") == "0xa"  # back to the preferred endpoint
    assert client.active_endpoint.display == primary.url
