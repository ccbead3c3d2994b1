"""Misbehaving JSON-RPC peers for tests: :class:`FaultProxy` and :class:`JunkProxy`.

Both are threaded HTTP servers on ``127.0.0.1:<free port>`` (never anything but loopback).

:class:`FaultProxy` sits in front of a real node (anvil) and behaves like a public RPC
provider on a bad day: 429 with ``Retry-After``, HTTP 500, stalls, connection resets,
truncated bodies, ``eth_getLogs`` block-range limits, gas caps on ``eth_call``, batch-size
limits, and a switch that makes the endpoint dead (and back) while a client uses it.
Faults are decided BEFORE forwarding (except ``truncated``, which needs the real answer), so
a faulted request never reaches the node: no double side effects.

:class:`JunkProxy` answers chosen methods with fixed junk (wrong types, non-JSON, odd error
objects, batches with wrong ids...) and forwards the rest to an optional upstream.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import socket
import struct
import sys
import threading
import traceback
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

__all__ = [
    "FAULT_KINDS",
    "GENERIC_JUNK",
    "HOSTILE_MODES",
    "RANGE_ERRORS",
    "FaultProxy",
    "Faults",
    "HostileProxy",
    "Junk",
    "JunkProxy",
]

FAULT_KINDS = ("429", "500", "timeout", "reset", "truncated", "range")

# what public nodes answer when an eth_getLogs range is too wide (Infura, generic, Alchemy/BSC style)
RANGE_ERRORS: tuple[dict[str, Any], ...] = (
    {"code": -32005, "message": "query returned more than 10000 results"},
    {"code": -32600, "message": "block range is too large"},
    {"code": -32000, "message": "exceed maximum block range: {limit}"},
)
OUT_OF_GAS: dict[str, Any] = {"code": -32000, "message": "out of gas"}
BATCH_TOO_LARGE: dict[str, Any] = {"code": -32600, "message": "batch too large"}
TOO_MANY_REQUESTS: dict[str, Any] = {"code": 429, "message": "Too Many Requests"}

_FORWARD_TIMEOUT = 30.0  # seconds for one upstream request
_IDLE_TIMEOUT = 10.0  # an idle keep-alive connection is dropped after this


@dataclass
class Faults:
    """What a :class:`FaultProxy` does to requests. Mutable at runtime (read on every request)."""

    rate: float = 0.0  # probability that an HTTP request gets a random fault (seeded RNG)
    kinds: tuple[str, ...] = FAULT_KINDS  # random faults are drawn uniformly from these
    retry_after: float = 0.05  # seconds, in the Retry-After header of 429s
    timeout_s: float = 2.0  # how long a "timeout" stalls before closing without an answer
    max_log_range: int | None = None  # eth_getLogs wider than this (blocks, inclusive) -> range error
    max_call_gas: int | None = None  # eth_call gas capped to this; the node's gas errors become "out of gas"
    max_calldata_bytes: int | None = None  # eth_call with more calldata than this -> "out of gas"
    max_batch: int | None = None  # JSON-RPC batch with more calls than this -> HTTP 413 or "batch too large"
    batch_reply: str = "alternate"  # "413", "error" (geth: [one -32600 error item]) or "alternate"
    dead: bool = False  # every request: connection closed at once (RST), nothing answered

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1], got {self.rate}")
        if self.batch_reply not in ("413", "error", "alternate"):
            raise ValueError(f"batch_reply must be '413', 'error' or 'alternate', got {self.batch_reply!r}")


# --------------------------------------------------------------------------- HTTP plumbing


@dataclass
class _Reply:
    """What to do with one HTTP request."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    action: str = "answer"  # "answer", "stall" (wait, close without answer), "reset" (RST), "stream"
    stall_s: float = 0.0
    stream: Callable[[Any], None] | None = None  # action "stream": writes the body itself (headers given)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like real providers (a dead switch hits pooled connections)
    timeout = _IDLE_TIMEOUT
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, add=False)

    def do_POST(self) -> None:
        owner = self.server.owner
        if owner._refuse():
            self._reset()
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        raw = self.rfile.read(length) if length > 0 else b""
        reply = owner._respond(raw)
        if reply.action == "reset":
            self._reset()
        elif reply.action == "stall":
            owner._stop.wait(reply.stall_s)
            self.close_connection = True  # FIN without an answer
        elif reply.action == "stream" and reply.stream is not None:
            self.close_connection = True
            self.send_response(reply.status)
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            with contextlib.suppress(OSError):  # the client hung up: that is the point
                reply.stream(self.wfile)
        else:
            self.send_response(reply.status)
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

    def do_GET(self) -> None:
        body = b"JSON-RPC: POST only"
        self.send_response(405)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _reset(self) -> None:
        """Abort the connection: SO_LINGER 0 then close sends a TCP RST, not a FIN."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()  # drop the makefile reference so close() really closes now
            self.connection.close()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: _HttpPeer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away is normal; a bug in the proxy is kept in ``owner.errors``."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        self.owner._count("proxy_error")
        with self.owner._lock:
            self.owner.errors.append(traceback.format_exc())


class _HttpPeer:
    """Threaded loopback HTTP server; subclasses decide each reply in :meth:`_respond`."""

    def __init__(self, upstream: str | None) -> None:
        self.upstream = upstream
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never an env proxy
        self.counts: Counter[str] = Counter()
        self.log: list[dict[str, Any]] = []
        self.errors: list[str] = []  # tracebacks of exceptions inside the proxy (should stay empty)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is None:
            self._stop.clear()
            self._server = _Server(self)
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stop.set()  # wakes stalled ("timeout") handlers
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # unblock handlers waiting on idle keep-alive connections
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- helpers for subclasses -----------------------------------------------------------

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.log.append(entry)

    def _refuse(self) -> bool:
        return False

    def _respond(self, raw: bytes) -> _Reply:
        raise NotImplementedError

    def _forward(self, raw: bytes) -> tuple[int, bytes]:
        """POST ``raw`` to the upstream node; (status, body). 502 when there is no upstream."""
        if self.upstream is None:
            return 502, b"no upstream"
        request = urllib.request.Request(
            self.upstream, data=raw, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with self._opener.open(request, timeout=_FORWARD_TIMEOUT) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())
        except (OSError, urllib.error.URLError):
            self._count("upstream_error")
            return 502, b"upstream unreachable"

    def _upstream_call(self, method: str, params: list[Any]) -> Any:
        status, body = self._forward(_dumps({"jsonrpc": "2.0", "id": 0, "method": method, "params": params}))
        if status != 200:
            return None
        try:
            return json.loads(body).get("result")
        except (ValueError, AttributeError):
            return None

    def clear(self) -> None:
        """Forget counts and log (faults and RNG state are kept)."""
        with self._lock:
            self.counts.clear()
            self.log.clear()


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def _methods_of(request: Any) -> list[str]:
    items = request if isinstance(request, list) else [request]
    return [str(item.get("method")) for item in items if isinstance(item, dict)]


def _summary(request: Any) -> str:
    if isinstance(request, list):
        text = f"{len(request)} calls: " + ", ".join(_methods_of(request))
    elif isinstance(request, dict):
        text = json.dumps(request.get("params"), separators=(",", ":"))
    else:
        text = "unparseable request"
    return text if len(text) <= 160 else text[:157] + "..."


def _error_item(request: Any, error: Mapping[str, Any]) -> dict[str, Any]:
    rid = request.get("id") if isinstance(request, dict) else None
    return {"jsonrpc": "2.0", "id": rid, "error": dict(error)}


# --------------------------------------------------------------------------- FaultProxy


class FaultProxy(_HttpPeer):
    """A JSON-RPC proxy in front of ``upstream`` that injects provider-like faults.

    ``faults`` may be replaced or mutated while clients use the proxy. ``counts`` tallies
    "requests", "forwarded" and each fault ("429", "500", "timeout", "reset", "truncated",
    "range", "gas", "batch", "dead"); ``log`` has one entry per HTTP request:
    ``{"method", "methods", "params", "fault"}`` (``method`` is "batch" for batches).
    """

    def __init__(self, upstream: str, faults: Faults | None = None, *, seed: int = 0) -> None:
        super().__init__(upstream)
        self.faults = faults if faults is not None else Faults()
        self.seed = seed
        self.rng = random.Random(seed)
        self._range_texts = itertools.count()
        self._batch_replies = itertools.count()

    def _refuse(self) -> bool:
        if not self.faults.dead:
            return False
        self._count("requests")
        self._count("dead")
        self._record({"method": None, "methods": [], "params": "", "fault": "dead"})
        return True

    def _draw(self, faults: Faults, methods: Sequence[str]) -> str | None:
        """One random fault for this HTTP request, or None. "range" only hits eth_getLogs
        requests: for others it is drawn again among the remaining kinds."""
        with self._lock:
            if faults.rate <= 0.0 or self.rng.random() >= faults.rate:
                return None
            kinds = [k for k in faults.kinds if k != "range" or "eth_getLogs" in methods]
            return self.rng.choice(kinds) if kinds else None

    def _range_error(self, faults: Faults) -> dict[str, Any]:
        with self._lock:
            template = RANGE_ERRORS[next(self._range_texts) % len(RANGE_ERRORS)]
        limit = faults.max_log_range if faults.max_log_range is not None else 2000
        return {"code": template["code"], "message": template["message"].format(limit=limit)}

    def _respond(self, raw: bytes) -> _Reply:
        faults = self.faults
        request = _parse(raw)
        methods = _methods_of(request)
        is_batch = isinstance(request, list)
        entry: dict[str, Any] = {
            "method": "batch" if is_batch else (methods[0] if methods else None),
            "methods": methods,
            "params": _summary(request),
            "fault": None,
        }
        self._count("requests")
        reply, fault = self._decide(raw, request, faults, methods)
        entry["fault"] = fault
        if fault is not None:
            self._count(fault)
        self._record(entry)
        return reply

    def _decide(self, raw: bytes, request: Any, faults: Faults, methods: list[str]) -> tuple[_Reply, str | None]:
        items: list[Any] = request if isinstance(request, list) else [request]
        if isinstance(request, list) and faults.max_batch is not None and len(request) > faults.max_batch:
            return self._batch_too_large(request, faults), "batch"
        kind = self._draw(faults, methods)
        if kind == "429":
            body = _dumps({"jsonrpc": "2.0", "id": _id_of(request), "error": TOO_MANY_REQUESTS})
            headers = {"Content-Type": "application/json", "Retry-After": f"{faults.retry_after:g}"}
            return _Reply(429, body, headers), "429"
        if kind == "500":
            return _Reply(500, b"Internal Server Error", {"Content-Type": "text/plain"}), "500"
        if kind == "timeout":
            return _Reply(action="stall", stall_s=faults.timeout_s), "timeout"
        if kind == "reset":
            return _Reply(action="reset"), "reset"

        # per-call limits: the refused calls get an error item, the others are forwarded
        answers: dict[int, dict[str, Any]] = {}
        fault: str | None = None
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            method = item.get("method")
            if method == "eth_getLogs" and (kind == "range" or self._log_range_exceeded(item, faults)):
                answers[index] = _error_item(item, self._range_error(faults))
                fault = "range"
            elif method == "eth_call" and self._gas_exceeded(item, faults):
                answers[index] = _error_item(item, OUT_OF_GAS)
                fault = fault or "gas"
        capped = faults.max_call_gas is not None and "eth_call" in methods
        if not answers and not capped:
            return self._forwarded(raw, truncate=kind == "truncated"), kind

        rest = [(i, item) for i, item in enumerate(items) if i not in answers]
        if rest:
            sent = [self._cap_gas(item, faults) for _, item in rest]
            payload = sent if isinstance(request, list) else sent[0]
            status, body = self._forward(_dumps(payload))
            self._count("forwarded")
            if status != 200:
                return _Reply(status, body, {"Content-Type": "text/plain"}), fault
            upstream = _parse(body)
            got = upstream if isinstance(upstream, list) else [upstream]
            for (index, item), answer in zip(rest, got, strict=False):
                if capped and isinstance(answer, dict) and _is_gas_error(answer.get("error")):
                    answer = _error_item(item, OUT_OF_GAS)
                    fault = fault or "gas"
                answers[index] = answer
        out = [answers[i] for i in range(len(items)) if i in answers]
        body = _dumps(out if isinstance(request, list) else out[0])
        if kind == "truncated":
            return _Reply(200, body[: len(body) // 2]), "truncated"
        return _Reply(200, body), fault

    def _forwarded(self, raw: bytes, *, truncate: bool) -> _Reply:
        status, body = self._forward(raw)
        self._count("forwarded")
        content_type = "application/json" if status == 200 else "text/plain"
        if truncate:
            body = body[: len(body) // 2]
        return _Reply(status, body, {"Content-Type": content_type})

    def _batch_too_large(self, request: list[Any], faults: Faults) -> _Reply:
        style = faults.batch_reply
        if style == "alternate":
            with self._lock:
                style = "413" if next(self._batch_replies) % 2 == 0 else "error"
        if style == "413":
            return _Reply(413, b"Request Entity Too Large", {"Content-Type": "text/plain"})
        # geth: a one-element list, the error carrying the id of the first call
        first = next((item for item in request if isinstance(item, dict) and "id" in item), None)
        return _Reply(200, _dumps([_error_item(first, BATCH_TOO_LARGE)]))

    def _log_range_exceeded(self, item: dict[str, Any], faults: Faults) -> bool:
        if faults.max_log_range is None:
            return False
        params = item.get("params")
        query = params[0] if isinstance(params, list) and params and isinstance(params[0], dict) else {}
        if "blockHash" in query:
            return False
        first = self._block_of(query.get("fromBlock", "latest"))
        last = self._block_of(query.get("toBlock", "latest"))
        if first is None or last is None:
            return False
        return last - first + 1 > faults.max_log_range

    def _block_of(self, tag: Any) -> int | None:
        if isinstance(tag, str) and tag.startswith("0x"):
            try:
                return int(tag, 16)
            except ValueError:
                return None
        if tag == "earliest":
            return 0
        if tag in ("latest", "pending", "safe", "finalized"):
            head = self._upstream_call("eth_blockNumber", [])
            return int(head, 16) if isinstance(head, str) and head.startswith("0x") else None
        return None

    @staticmethod
    def _gas_exceeded(item: dict[str, Any], faults: Faults) -> bool:
        if faults.max_calldata_bytes is None:
            return False
        params = item.get("params")
        call = params[0] if isinstance(params, list) and params and isinstance(params[0], dict) else {}
        data = call.get("input", call.get("data", "0x"))
        size = (len(data) - 2) // 2 if isinstance(data, str) and data.startswith("0x") else 0
        return size > faults.max_calldata_bytes

    @staticmethod
    def _cap_gas(item: Any, faults: Faults) -> Any:
        if faults.max_call_gas is None or not isinstance(item, dict) or item.get("method") != "eth_call":
            return item
        params = item.get("params")
        if not isinstance(params, list) or not params or not isinstance(params[0], dict):
            return item
        call = dict(params[0])
        given = call.get("gas")
        gas = int(given, 16) if isinstance(given, str) and given.startswith("0x") else faults.max_call_gas
        call["gas"] = hex(min(gas, faults.max_call_gas))
        return {**item, "params": [call, *params[1:]]}


def _is_gas_error(error: Any) -> bool:
    return isinstance(error, dict) and "gas" in str(error.get("message", "")).lower()


# --------------------------------------------------------------------------- JunkProxy


@dataclass(frozen=True)
class Junk:
    """One junk answer: a raw body (bytes) or a function of the parsed request (to echo ids)."""

    body: bytes | Callable[[Any], bytes]
    status: int = 200
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    def render(self, request: Any) -> _Reply:
        body = self.body(request) if callable(self.body) else self.body
        return _Reply(self.status, body, {"Content-Type": self.content_type, **dict(self.headers)})

    @classmethod
    def json(cls, value: Any | Callable[[Any], Any], status: int = 200) -> Junk:
        """A JSON body: ``value`` itself, or ``value(request)``."""
        if callable(value):
            build = value
            return cls(lambda request: _dumps(build(request)), status)
        return cls(_dumps(value), status)

    @classmethod
    def envelope(cls, **fields: Any) -> Junk:
        """``{"jsonrpc": "2.0", "id": <the request's id>, **fields}`` (e.g. ``result=5``)."""
        return cls.json(lambda request: {"jsonrpc": "2.0", "id": _id_of(request), **fields})

    @classmethod
    def result(cls, value: Any) -> Junk:
        return cls.envelope(result=value)

    @classmethod
    def error(cls, error: Any) -> Junk:
        return cls.envelope(error=error)

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/html") -> Junk:
        return cls(text.encode(), status, content_type)


def _id_of(request: Any) -> Any:
    return request.get("id") if isinstance(request, dict) else None


_HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
    "</h1></center><hr><center>cloudflare</center></body></html>"
)

# junk any method can get back; each must end in a MonitorError naming the method
GENERIC_JUNK: dict[str, Junk] = {
    "html-200": Junk.text(_HTML_PAGE),
    "html-502": Junk.text(_HTML_PAGE, 502),
    "html-403": Junk.text("<html><body>Forbidden</body></html>", 403),
    "html-400": Junk.text("<html><body>Bad Request</body></html>", 400),
    "empty-200": Junk(b""),
    "whitespace-200": Junk(b"  \n"),
    "truncated-json": Junk(b'{"jsonrpc":"2.0","id":1,"resu'),
    "bad-utf8": Junk(b'{"jsonrpc":"2.0","id":1,"result":"\xff\xfe"}'),
    "json-null": Junk(b"null"),
    "json-number": Junk(b"42"),
    "json-string": Junk(b'"0x1"'),
    "json-empty-list": Junk(b"[]"),
    "json-list-of-answer": Junk.json(lambda r: [{"jsonrpc": "2.0", "id": _id_of(r), "result": "0x1"}]),
    "no-result-no-error": Junk.envelope(),
    "error-null-no-result": Junk.envelope(error=None),
    "error-string": Junk.error("something went wrong"),
    "error-number": Junk.error(-32000),
    "error-list": Junk.error([{"code": -32000, "message": "x"}]),
    "error-empty-object": Junk.error({}),
    "error-code-string": Junk.error({"code": "-32000", "message": "server error"}),
    "error-code-list": Junk.error({"code": [-32000], "message": "server error"}),
    "error-code-object": Junk.error({"code": {"value": -32000}, "message": "server error"}),
    "error-message-object": Junk.error({"code": -32000, "message": {"text": "nested"}}),
    "deeply-nested": Junk(b"[" * 100_000 + b"]" * 100_000),
}


class JunkProxy(_HttpPeer):
    """Answers the configured methods with junk; everything else goes to ``upstream``.

    ``junk`` maps a method name (or ``"batch"`` for any JSON-RPC batch) to a :class:`Junk`, or
    to a sequence served in order (the last one repeats; ``None`` in it means "forward").
    Without an upstream, unlisted methods get a -32601 "method not found" error.
    ``counts[method]`` counts the junk served; ``log`` records method and junk index.
    """

    def __init__(
        self, upstream: str | None = None, junk: Mapping[str, Junk | Sequence[Junk | None]] | None = None
    ) -> None:
        super().__init__(upstream)
        self.junk: dict[str, Junk | Sequence[Junk | None]] = dict(junk or {})
        self._served: Counter[str] = Counter()

    def set(self, method: str, junk: Junk | Sequence[Junk | None]) -> None:
        with self._lock:
            self.junk[method] = junk
            self._served[method] = 0

    def _respond(self, raw: bytes) -> _Reply:
        request = _parse(raw)
        key = "batch" if isinstance(request, list) else (_methods_of(request) or [""])[0]
        with self._lock:
            planned = self.junk.get(key)
            index = self._served[key]
            self._served[key] += 1
        if isinstance(planned, Sequence):
            chosen = planned[min(index, len(planned) - 1)] if planned else None
        else:
            chosen = planned
        self._record({"method": key, "params": _summary(request), "fault": None if chosen is None else index})
        if chosen is not None:
            self._count(key)
            return chosen.render(request)
        if self.upstream is None:
            error = {"code": -32601, "message": f"the method {key} does not exist/is not available"}
            return _Reply(200, _dumps(_error_item(request, error)))
        status, body = self._forward(raw)
        self._count("forwarded")
        return _Reply(status, body)


# --------------------------------------------------------------------------- HostileProxy

HOSTILE_MODES = (
    "lag", "hash_flip", "chain_flip", "fake_logs", "bad_hashes", "missing_fields", "redirect", "huge_body",
    "endless_stream", "trickle",
)  # fmt: skip

_BAD_HASH = "<script>alert(1)</script>"


class HostileProxy(_HttpPeer):
    """A node that lies or attacks, in front of a real one (``upstream``). ``mode``:

    - ``lag``: ``lag`` blocks behind: its head is upstream's minus ``lag``, newer blocks are
      ``null``, calls and logs at newer blocks are refused as real nodes do;
    - ``hash_flip``: every block it returns has a fresh random hash;
    - ``chain_flip``: ``eth_chainId`` answers ``chain_id`` (data still forwarded);
    - ``fake_logs``: ``eth_getLogs`` answers carry ``fake_logs`` extra logs of another contract
      (and some outside the block range asked);
    - ``bad_hashes``: block and log hashes become ``<script>alert(1)</script>``;
    - ``missing_fields``: blocks lose ``hash``, logs lose ``blockHash``;
    - ``redirect``: HTTP 307 to ``redirect_to``;
    - ``huge_body``: a JSON answer announced as ``huge_bytes`` long, streamed as fast as read;
    - ``endless_stream``: a chunked answer that never ends;
    - ``trickle``: the real answer at ``trickle_bps`` bytes per second.

    The first ``after`` HTTP requests are forwarded untouched (so a client starts normally);
    ``methods`` limits the attack to those methods (batches count when one of theirs is in).
    ``counts["attacked"]`` counts the requests attacked.
    """

    def __init__(
        self,
        upstream: str,
        mode: str,
        *,
        after: int = 0,
        methods: Sequence[str] | None = None,
        lag: int = 5,
        chain_id: int = 1,
        fake_logs: int = 50,
        redirect_to: str = "http://user:hunter2@127.0.0.1:9/rpc?apikey=K3Y",
        huge_bytes: int = 1 << 30,
        trickle_bps: float = 1.0,
    ) -> None:
        if mode not in HOSTILE_MODES:
            raise ValueError(f"unknown mode {mode!r}; known: {HOSTILE_MODES}")
        super().__init__(upstream)
        self.mode = mode
        self.after = after
        self.methods = None if methods is None else frozenset(methods)
        self.lag = lag
        self.chain_id = chain_id
        self.fake_logs = fake_logs
        self.redirect_to = redirect_to
        self.huge_bytes = huge_bytes
        self.trickle_bps = trickle_bps
        self.rng = random.Random(13)
        self._seen = 0
        self.bytes_streamed = 0

    # -- dispatch -------------------------------------------------------------------------

    def _respond(self, raw: bytes) -> _Reply:
        request = _parse(raw)
        methods = _methods_of(request)
        with self._lock:
            self._seen += 1
            seen = self._seen
        self._count("requests")
        targeted = self.methods is None or any(m in self.methods for m in methods)
        if seen <= self.after or not targeted:
            self._record({"method": methods[0] if methods else None, "attacked": False})
            return self._plain(raw)
        self._count("attacked")
        self._record({"method": methods[0] if methods else None, "attacked": True})
        if self.mode == "redirect":
            return _Reply(307, b"", {"Location": self.redirect_to, "Content-Type": "text/plain"})
        if self.mode == "huge_body":
            return self._huge(request)
        if self.mode == "endless_stream":
            return self._endless(request)
        if self.mode == "trickle":
            return self._trickle(raw)
        items: list[Any] = request if isinstance(request, list) else [request]
        answers = [self._item(item) for item in items]
        return _Reply(200, _dumps(answers if isinstance(request, list) else answers[0]))

    def _plain(self, raw: bytes) -> _Reply:
        status, body = self._forward(raw)
        return _Reply(status, body, {"Content-Type": "application/json" if status == 200 else "text/plain"})

    def _one(self, item: dict[str, Any]) -> dict[str, Any]:
        status, body = self._forward(_dumps(item))
        answer = _parse(body) if status == 200 else None
        if not isinstance(answer, dict):
            return _error_item(item, {"code": -32603, "message": f"upstream HTTP {status}"})
        return answer

    def _item(self, item: Any) -> Any:
        if not isinstance(item, dict):
            return _error_item(item, {"code": -32600, "message": "invalid request"})
        if self.mode == "lag":
            return self._lagging(item)
        if self.mode == "chain_flip" and item.get("method") == "eth_chainId":
            return {"jsonrpc": "2.0", "id": item.get("id"), "result": hex(self.chain_id)}
        answer = self._one(item)
        result = answer.get("result")
        method = item.get("method")
        if method == "eth_getBlockByNumber" and isinstance(result, dict):
            answer["result"] = self._block(dict(result))
        elif method == "eth_getLogs" and isinstance(result, list):
            answer["result"] = self._logs(item, [dict(log) for log in result if isinstance(log, dict)])
        return answer

    # -- modes ----------------------------------------------------------------------------

    def _random_hash(self) -> str:
        with self._lock:
            return "0x" + self.rng.getrandbits(256).to_bytes(32, "big").hex()

    def _block(self, block: dict[str, Any]) -> dict[str, Any]:
        if self.mode == "hash_flip":
            block["hash"] = self._random_hash()
        elif self.mode == "bad_hashes":
            block["hash"] = _BAD_HASH
        elif self.mode == "missing_fields":
            block.pop("hash", None)
        return block

    def _logs(self, item: dict[str, Any], logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.mode == "bad_hashes":
            for log in logs:
                log["blockHash"] = _BAD_HASH
        elif self.mode == "missing_fields":
            for log in logs:
                log.pop("blockHash", None)
        elif self.mode == "fake_logs":
            logs = logs + self._fakes(item)
        return logs

    def _fakes(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        params = item.get("params")
        query = params[0] if isinstance(params, list) and params and isinstance(params[0], dict) else {}
        first = self._block_of(query.get("fromBlock")) or 0
        last = self._block_of(query.get("toBlock")) or first
        topics = [t if isinstance(t, str) else (t[0] if isinstance(t, list) and t else "0x" + "00" * 32)
                  for t in query.get("topics", [])]  # fmt: skip
        fakes = []
        for i in range(self.fake_logs):
            account = "0x" + "00" * 12 + self.rng.getrandbits(160).to_bytes(20, "big").hex()
            fakes.append({
                "address": "0x" + "ee" * 20,  # not the contract asked about
                "topics": [*(topics or ["0x" + "11" * 32]), account, account][:4],
                "data": "0x" + "00" * 96,
                "blockNumber": hex(first + i % max(1, last - first + 1)),
                "blockHash": self._random_hash(),
                "transactionHash": self._random_hash(),
                "transactionIndex": "0x0",
                "logIndex": hex(1000 + i),
                "removed": False,
            })  # fmt: skip
        return fakes

    def _block_of(self, tag: Any) -> int | None:
        if isinstance(tag, str) and tag.startswith("0x"):
            with contextlib.suppress(ValueError):
                return int(tag, 16)
        if tag in ("latest", "pending", "safe", "finalized", None):
            head = self._upstream_call("eth_blockNumber", [])
            return int(head, 16) if isinstance(head, str) else None
        return None

    def _lagging(self, item: dict[str, Any]) -> Any:
        head = self._block_of("latest")
        if head is None:
            return _error_item(item, {"code": -32603, "message": "upstream down"})
        mine = max(0, head - self.lag)
        method, params = item.get("method"), item.get("params")
        params = list(params) if isinstance(params, list) else []
        rid = item.get("id")
        if method == "eth_blockNumber":
            return {"jsonrpc": "2.0", "id": rid, "result": hex(mine)}
        if method in ("eth_getBlockByNumber", "eth_call", "eth_getBalance", "eth_getCode") and params:
            position = 0 if method == "eth_getBlockByNumber" else len(params) - 1
            tag = params[position]
            number = mine if tag in ("latest", "pending", "safe", "finalized") else self._block_of(tag)
            if number is not None and number > mine:
                if method == "eth_getBlockByNumber":
                    return {"jsonrpc": "2.0", "id": rid, "result": None}
                return _error_item(item, {"code": -32000, "message": "header not found"})
            if number is not None:
                params[position] = hex(number)
            return self._one({**item, "params": params})
        if method == "eth_getLogs" and params and isinstance(params[0], dict):
            query = dict(params[0])
            last = self._block_of(query.get("toBlock", "latest"))
            if last is not None and last > mine:
                return _error_item(item, {"code": -32000, "message": "block range extends beyond current head block"})
            return self._one(item)
        return self._one(item)

    def _huge(self, request: Any) -> _Reply:
        head = b'{"jsonrpc":"2.0","id":%d,"result":"0x' % (_id_of(request) or 0)
        chunk = b"00" * 32768

        def stream(out: Any) -> None:
            out.write(head)
            sent = len(head)
            while sent < self.huge_bytes - 2 and not self._stop.is_set():
                out.write(chunk)
                sent += len(chunk)
                self._count("streamed", len(chunk))
            out.write(b'"}')

        return _Reply(200, b"", {"Content-Type": "application/json", "Content-Length": str(self.huge_bytes)},
                      action="stream", stream=stream)  # fmt: skip

    def _endless(self, request: Any) -> _Reply:
        head = b'{"jsonrpc":"2.0","id":%d,"result":"0x' % (_id_of(request) or 0)
        chunk = b"00" * 32768
        framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)

        def stream(out: Any) -> None:
            out.write(b"%x\r\n%s\r\n" % (len(head), head))
            while not self._stop.is_set():
                out.write(framed)
                self._count("streamed", len(chunk))

        return _Reply(200, b"", {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
                      action="stream", stream=stream)  # fmt: skip

    def _trickle(self, raw: bytes) -> _Reply:
        status, body = self._forward(raw)
        pause = 1.0 / self.trickle_bps

        def stream(out: Any) -> None:
            for i in range(len(body)):
                out.write(body[i : i + 1])
                out.flush()
                self._count("streamed")
                if self._stop.wait(pause):
                    return

        return _Reply(status, b"", {"Content-Type": "application/json", "Content-Length": str(len(body))},
                      action="stream", stream=stream)  # fmt: skip
