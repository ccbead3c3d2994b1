"""Local stand-ins for webhook receivers: a generic JSON endpoint, Slack's incoming webhooks,
Discord's webhooks. Loopback only; no test needs the internet.

:class:`WebhookServer` records every request it accepted (path, headers, raw body, JSON) and
answers as the chosen ``flavour`` does:

- ``"generic"``: 200 ``{"ok": true}``; with ``secret`` it checks ``X-Liqmon-Signature`` over
  the timestamp and the raw body (401 when wrong);
- ``"slack"``: 200 ``ok``; 400 ``invalid_payload`` beyond Slack's limits (header block 150
  characters, section 3,000, 50 blocks, no ``text`` and no blocks); 404 ``no_service`` on an
  unknown path; 429 with ``Retry-After``;
- ``"discord"``: 200 with the message object (``?wait=true``) or 204; 400 code 50035 beyond
  the limits (content 2,000, title 256, description 4,096, embed 6,000); 404 code 10015
  ``Unknown Webhook``; 429 with ``retry_after`` in the JSON body and ``Retry-After``;
- ``"pagerduty"``: Events API v2 ``POST /v2/enqueue``: 202 ``{"status": "success", ...,
  "dedup_key"}``, 400 ``invalid event`` with ``errors`` (a wrong routing key, a missing
  summary / source / severity, a summary over 1,024 characters), 429 ``throttle event``;
  :attr:`WebhookServer.incidents` keeps the open incidents by ``dedup_key`` (trigger opens or
  joins, resolve closes).

Faults are queued and consumed one per request: :meth:`answer` (any status, body,
headers), :meth:`too_many_requests`, :meth:`server_error`, :meth:`stall`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import math
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Flavour = Literal["generic", "slack", "discord", "pagerduty"]
SLACK_PATH = "/services/T0000TEST/B0000TEST/liqmonSlackSecret000000"
DISCORD_PATH = "/api/webhooks/123456789012345678/liqmon-discord-secret-token_0123456789"
GENERIC_PATH = "/hooks/liqmon"
PAGERDUTY_PATH = "/v2/enqueue"
PAGERDUTY_KEY = "R0UT1NGKEYL1QM0NTEST0123456789AB"  # 32 characters, as PagerDuty's integration keys


@dataclass(frozen=True, slots=True)
class Received:
    """One request the server accepted."""

    method: str
    path: str  # without the query
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    json: Any
    time: float  # time.monotonic() at arrival


@dataclass(frozen=True, slots=True)
class _Fault:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]
    stall: float = 0.0


class WebhookServer:
    """A loopback HTTP receiver (see the module doc). ``path``: the one path it accepts
    (default per flavour); ``port`` 0: any free port."""

    def __init__(
        self, flavour: Flavour = "generic", *, path: str | None = None, secret: str | None = None, port: int = 0
    ) -> None:
        self.flavour = flavour
        self.path = path or {"generic": GENERIC_PATH, "slack": SLACK_PATH, "discord": DISCORD_PATH,
                             "pagerduty": PAGERDUTY_PATH}[flavour]  # fmt: skip
        self.incidents: dict[str, list[dict[str, Any]]] = {}  # pagerduty: open incidents, their trigger events
        self.resolved: list[str] = []  # pagerduty: dedup keys of closed incidents, in order
        self.secret = secret
        self.port = port
        self.requests = 0  # every request, faulted ones included
        self._received: list[Received] = []
        self._faults: list[_Fault] = []
        self._ids = itertools.count(1_100_000_000_000_000_000)
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> WebhookServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                server._handle(self)

            def do_GET(self) -> None:
                server._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._closing.clear()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"{self.flavour}-peer", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> WebhookServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The webhook URL (``http://127.0.0.1:<port><path>``)."""
        assert self._httpd is not None, "WebhookServer is not started"
        return f"http://127.0.0.1:{self.port}{self.path}"

    # ---- what it received

    @property
    def received(self) -> list[Received]:
        with self._cond:
            return list(self._received)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Received]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._received) >= n, timeout):
                raise TimeoutError(
                    f"{self.flavour} peer got {len(self._received)} requests in {timeout} s, expected {n}"
                )
            return list(self._received)

    # ---- faults

    def answer(self, status: int, body: bytes | str | dict[str, Any] = b"", headers: dict[str, str] | None = None,
               times: int = 1) -> None:  # fmt: skip
        raw = json.dumps(body).encode() if isinstance(body, dict) else body.encode() if isinstance(body, str) else body
        with self._cond:
            self._faults.extend([_Fault(status, raw, tuple((headers or {}).items()))] * times)

    def too_many_requests(self, retry_after: float, times: int = 1) -> None:
        """429 as the flavour sends it (Discord: ``retry_after`` in JSON and the header; others: the header)."""
        header = {"Retry-After": str(math.ceil(retry_after))}
        if self.flavour == "discord":
            body: dict[str, Any] = {"message": "You are being rate limited.", "retry_after": retry_after,
                                    "global": False}  # fmt: skip
            self.answer(429, body, header, times)
        elif self.flavour == "slack":
            self.answer(429, "rate_limited", header, times)
        elif self.flavour == "pagerduty":
            throttled = {"status": "throttle event", "message": "Requests for this service are arriving too quickly."}
            self.answer(429, throttled, None, times)
        else:
            self.answer(429, {"error": "slow down"}, header, times)

    def server_error(self, status: int = 500, times: int = 1) -> None:
        self.answer(status, "<html><body>upstream error</body></html>", {"Content-Type": "text/html"}, times)

    def stall(self, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` requests ``seconds`` before answering normally."""
        with self._cond:
            self._faults.extend([_Fault(0, b"", (), stall=seconds)] * times)

    # ---- the endpoint

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length) if length else b""
        with self._cond:
            self.requests += 1
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None and fault.stall:
            if self._closing.wait(fault.stall):
                req.close_connection = True
                return None
            fault = None
        if fault is not None:
            return _reply(req, fault.status, fault.body, dict(fault.headers))
        parts = urllib.parse.urlsplit(req.path)
        if parts.path != self.path or req.command != "POST":
            return self._not_found(req)
        try:
            data = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            return _reply(req, 400, b"invalid_payload" if self.flavour == "slack" else b'{"error": "bad json"}')
        headers = {k.lower(): v for k, v in req.headers.items()}
        if self.secret is not None and not self._signed(headers, raw):
            return _reply(req, 401, b'{"error": "bad signature"}', {"Content-Type": "application/json"})
        if self.flavour == "pagerduty":
            return self._pagerduty(req, parts.path, headers, raw, data)
        problem = _slack_problem(data) if self.flavour == "slack" else _discord_problem(data) if (
            self.flavour == "discord") else None  # fmt: skip
        if problem is not None:
            if self.flavour == "slack":
                return _reply(req, 400, problem.encode())
            return _reply(req, 400, json.dumps({"message": f"Invalid Form Body ({problem})", "code": 50035}).encode(),
                          {"Content-Type": "application/json"})  # fmt: skip
        query = dict(urllib.parse.parse_qsl(parts.query))
        item = Received(req.command, parts.path, query, headers, raw, data, time.monotonic())
        with self._cond:
            self._received.append(item)
            self._cond.notify_all()
        if self.flavour == "slack":
            return _reply(req, 200, b"ok", {"Content-Type": "text/html"})
        if self.flavour == "discord":
            if query.get("wait") != "true":
                return _reply(req, 204, b"")
            sent = data if isinstance(data, dict) else {}
            message = {"id": str(next(self._ids)), "type": 0, "content": sent.get("content", ""),
                       "embeds": sent.get("embeds", []), "webhook_id": "123456789012345678"}  # fmt: skip
            return _reply(req, 200, json.dumps(message).encode(), {"Content-Type": "application/json"})
        return _reply(req, 200, b'{"ok": true}', {"Content-Type": "application/json"})

    def _pagerduty(
        self, req: BaseHTTPRequestHandler, path: str, headers: dict[str, str], raw: bytes, data: Any
    ) -> None:
        errors = _pagerduty_problems(data)
        if errors:
            body = {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
            return _reply(req, 400, json.dumps(body).encode(), {"Content-Type": "application/json"})
        key = data.get("dedup_key") or f"auto-{next(self._ids)}"
        item = Received(req.command, path, {}, headers, raw, data, time.monotonic())
        with self._cond:
            self._received.append(item)
            if data["event_action"] == "trigger":
                self.incidents.setdefault(key, []).append(data)
            elif data["event_action"] == "resolve" and key in self.incidents:
                del self.incidents[key]
                self.resolved.append(key)
            self._cond.notify_all()
        body = {"status": "success", "message": "Event processed", "dedup_key": key}
        return _reply(req, 202, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def _not_found(self, req: BaseHTTPRequestHandler) -> None:
        if self.flavour == "slack":
            return _reply(req, 404, b"no_service")
        if self.flavour == "discord":
            return _reply(
                req, 404, b'{"message": "Unknown Webhook", "code": 10015}', {"Content-Type": "application/json"}
            )
        return _reply(req, 404, b'{"error": "not found"}', {"Content-Type": "application/json"})

    def _signed(self, headers: dict[str, str], raw: bytes) -> bool:
        assert self.secret is not None
        stamp = headers.get("x-liqmon-timestamp", "")
        want = "v1=" + hmac.new(self.secret.encode(), stamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
        fresh = stamp.isdigit() and abs(time.time() - int(stamp)) <= 300  # replay window
        return fresh and hmac.compare_digest(want, headers.get("x-liqmon-signature", ""))


def _slack_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "invalid_payload"
    blocks = data.get("blocks") or []
    if not data.get("text") and not blocks:
        return "no_text"
    if not isinstance(blocks, list) or len(blocks) > 50:
        return "invalid_blocks"
    for block in blocks:
        text = (block.get("text") or {}).get("text", "") if isinstance(block, dict) else ""
        kind = block.get("type") if isinstance(block, dict) else None
        fields = block.get("fields") if isinstance(block, dict) else None
        if kind == "section" and fields is not None:  # a section of fields: at most 10 of 2,000 characters
            if (
                not isinstance(fields, list)
                or not 0 < len(fields) <= 10
                or any(not 0 < len(f.get("text", "")) <= 2000 for f in fields)
            ):
                return "invalid_blocks"
        elif (kind == "header" and len(text) > 150) or (kind == "section" and not 0 < len(text) <= 3000):
            return "invalid_blocks"
    return None


def _discord_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "not an object"
    content = data.get("content") or ""
    embeds = data.get("embeds") or []
    if not content and not embeds:
        return "Cannot send an empty message"
    if len(content) > 2000:
        return "content: Must be 2000 or fewer in length."
    if len(embeds) > 10:
        return "embeds: Must be 10 or fewer in length."
    for embed in embeds:
        title, desc = embed.get("title", ""), embed.get("description", "")
        footer = (embed.get("footer") or {}).get("text", "")
        if len(title) > 256 or len(desc) > 4096 or len(footer) > 2048:
            return "embeds.0: a field is too long"
        if len(title) + len(desc) + len(footer) > 6000:
            return "embeds: Embed size exceeds maximum size of 6000"
    return None


def _pagerduty_problems(data: Any) -> list[str]:
    if not isinstance(data, dict):
        return ["Event object must be a JSON object"]
    errors = []
    if data.get("routing_key") != PAGERDUTY_KEY:
        errors.append("'routing_key' is invalid")
    action = data.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        errors.append("'event_action' is missing or blank")
    if action in ("acknowledge", "resolve") and not data.get("dedup_key"):
        errors.append("'dedup_key' is required for acknowledge and resolve")
    if action == "trigger":
        payload = data.get("payload")
        if not isinstance(payload, dict):
            return [*errors, "'payload' is missing"]
        summary = payload.get("summary")
        if not isinstance(summary, str) or not summary:
            errors.append("'payload.summary' is missing or blank")
        elif len(summary) > 1024:
            errors.append("'payload.summary' must be at most 1024 characters")
        if not payload.get("source"):
            errors.append("'payload.source' is missing or blank")
        if payload.get("severity") not in ("critical", "error", "warning", "info"):
            errors.append("'payload.severity' must be one of critical, error, warning, info")
    return errors


def _reply(req: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    try:
        req.send_response(status)
        sent = {k.lower() for k in (headers or {})}
        for name, value in (headers or {}).items():
            req.send_header(name, value)
        if "content-type" not in sent and body:
            req.send_header("Content-Type", "text/plain; charset=utf-8")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        if body:
            req.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout) first
        pass
