"""Concurrent aggregate3 batches through the real RpcClient and HTTP transport against a local
JSON-RPC node that fails some requests (HTTP 500, a dropped connection, a body that is not JSON,
an answer with the wrong number of results) while others are in flight."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from eth_abi import encode

from monitor.chain.abi import fn
from monitor.chain.multicall import Call, Multicall
from monitor.chain.rpc import RpcClient
from monitor.errors import DecodeError, MonitorError

ECHO = fn("echo(uint256)", "uint256")
TARGET = "0x" + "5" * 40
Fault = Callable[[int, list[int]], str | None]  # (request number, echoed args) -> fault kind or None


class EchoNode:
    """aggregate3 of ECHO(x) sub-calls answers x + 1 each, after a random short delay; ``fault``
    picks requests to fail. Counts requests in flight at once (the client must bound them)."""

    def __init__(self, fault: Fault, seed: int = 1) -> None:
        self.fault = fault
        self.rng = random.Random(seed)
        self.hits = 0
        self.in_flight = 0
        self.peak = 0
        self.faults: list[str] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.hits += 1
                    number = outer.hits
                    outer.in_flight += 1
                    outer.peak = max(outer.peak, outer.in_flight)
                    delay = outer.rng.uniform(0.0, 0.01)
                try:
                    time.sleep(delay)
                    outer.answer(self, number, body)
                finally:
                    with outer.lock:
                        outer.in_flight -= 1

            def log_message(self, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def answer(self, handler: BaseHTTPRequestHandler, number: int, body: dict[str, Any]) -> None:
        data = bytes.fromhex(body["params"][0]["data"][2:])
        n = int.from_bytes(data[36:68], "big")
        args = []
        for i in range(n):
            at = 68 + int.from_bytes(data[68 + 32 * i : 100 + 32 * i], "big")
            args.append(int.from_bytes(data[at + 132 : at + 164], "big"))
        kind = self.fault(number, args)
        if kind is not None:
            with self.lock:
                self.faults.append(kind)
        if kind == "drop":
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if kind == "500":
            self.send(handler, 500, b"internal error")
            return
        if kind == "junk":
            self.send(handler, 200, b'{"jsonrpc": "2.0", "id": ')
            return
        values = args[:-1] if kind == "short" else args  # "short": one result missing
        result = encode(["(bool,bytes)[]"], [[(True, (v + 1).to_bytes(32, "big")) for v in values]])
        self.send(
            handler, 200, json.dumps({"jsonrpc": "2.0", "id": body["id"], "result": "0x" + result.hex()}).encode()
        )

    @staticmethod
    def send(handler: BaseHTTPRequestHandler, status: int, payload: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def node() -> Iterator[Callable[[Fault], EchoNode]]:
    nodes: list[EchoNode] = []

    def start(fault: Fault) -> EchoNode:
        nodes.append(EchoNode(fault))
        return nodes[-1]

    yield start
    for n in nodes:
        n.close()


def client_for(url: str, concurrency: int) -> RpcClient:
    return RpcClient([url], max_retries=6, backoff_base=0.001, backoff_cap=0.005, timeout=5.0,
                     max_concurrent_requests=concurrency, rng=lambda: 0.0)  # fmt: skip


def calls(n: int) -> list[Call]:
    return [Call(TARGET, ECHO, (i,)) for i in range(n)]


def test_transport_faults_in_concurrent_batches_are_retried_and_results_stay_in_order(
    node: Callable[[Fault], EchoNode],
) -> None:
    kinds = {3: "500", 5: "drop", 8: "junk", 12: "500", 13: "drop"}
    server = node(lambda number, _args: kinds.get(number))
    client = client_for(server.url, 4)
    try:
        multicall = Multicall(client, TARGET, calls_per_batch=50)
        assert multicall.run(calls(1_000), 7) == [(i + 1,) for i in range(1_000)]
        assert sorted(server.faults) == sorted(kinds.values())  # every fault was met, and ridden out
        assert 1 < server.peak <= 4 and client.peak_in_flight <= 4
        assert client.method_counts["eth_call"] == 20  # one per batch: retries are not new calls
        groups = [calls(1_000)[i : i + 9] for i in range(0, 1_000, 9)]
        grouped = multicall.run_groups(groups, 7)
        assert [v for g in grouped for v in g] == [(i + 1,) for i in range(1_000)]
    finally:
        client.close()


def test_a_lying_answer_in_one_concurrent_batch_is_refused_by_its_result_count(
    node: Callable[[Fault], EchoNode],
) -> None:
    server = node(lambda _n, args: "short" if args and args[0] == 500 else None)  # the batch from call 500
    client = client_for(server.url, 3)
    try:
        with pytest.raises(DecodeError, match="expected 50 results, got 49"):
            Multicall(client, TARGET, calls_per_batch=50).run(calls(1_000), 7)
    finally:
        client.close()
    # the pool is not left stuck: the same client keeps serving
    healthy = node(lambda _n, _a: None)
    client = client_for(healthy.url, 3)
    try:
        multicall = Multicall(client, TARGET, calls_per_batch=50)
        assert multicall.run(calls(200), 8) == [(i + 1,) for i in range(200)]
    finally:
        client.close()


def test_a_node_that_keeps_failing_fails_the_read_in_bounded_time(node: Callable[[Fault], EchoNode]) -> None:
    server = node(lambda _n, args: "500" if args and args[0] >= 600 else None)
    client = client_for(server.url, 4)
    started = time.monotonic()
    try:
        with pytest.raises(MonitorError, match="HTTP 500"):
            Multicall(client, TARGET, calls_per_batch=50).run(calls(1_000), 7)
    finally:
        client.close()
    assert time.monotonic() - started < 10
    assert server.peak <= 4
