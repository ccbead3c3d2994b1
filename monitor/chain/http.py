"""A bounded HTTP POST for JSON-RPC: one total deadline, a body cap, no redirects.

``requests`` applies its timeout to each socket read, so a node that trickles one byte a
second keeps a request alive for ever, and it reads a whole body into memory before anyone
can look at its size. This module speaks HTTP/1.1 through :mod:`http.client` instead:

- a **deadline** per request covers connect, send, headers and body: a watchdog shuts the
  socket down when it passes, whatever the peer is doing (trickle, stall, endless stream);
- the body is read **as a stream** in chunks and abandoned as soon as it exceeds
  ``max_body`` bytes (a ``Content-Length`` above the cap is refused before reading);
- a redirect (3xx) is **refused**, never followed: the whole scan would come from another
  host; the message names the target with its credentials masked;
- idle keep-alive connections are pooled per endpoint; one the server closed while idle
  is dropped before use (never a request sent twice).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import re
import select
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["HttpAnswer", "HttpFailure", "HttpTransport", "mask_url"]

_CHUNK = 64 * 1024
_MAX_IDLE_PER_ENDPOINT = 4


class HttpFailure(Exception):
    """One HTTP attempt failed. ``kind`` is a metric label; ``final``: asking the same
    endpoint again within this request would only repeat it (redirect, oversized body)."""

    def __init__(self, reason: str, kind: str, *, final: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.final = final


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: Message
    body: bytes


_USERINFO = re.compile(r"//[^/@?#]*@")
_QUERY_SECRET = re.compile(r"((?:api[-_]?key|key|token|secret|password|auth)[^=&]*=)[^&#]*", re.I)


def mask_url(url: str) -> str:
    """``url`` fit to print: user:password and key-like query values become ``<secret>``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "<secret>@" + netloc.rsplit("@", 1)[1]
    query = _QUERY_SECRET.sub(r"\1<secret>", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class _Watchdog:
    """Shuts a socket down when the deadline passes (wakes any blocked read or write)."""

    def __init__(self, seconds: float, sock: socket.socket | None) -> None:
        self.fired = False
        self._sock = sock
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


class HttpTransport:
    """POST bodies to endpoints within a deadline, bodies capped, redirects refused."""

    def __init__(self, max_body: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_body = max_body
        self._clock = clock
        self._lock = threading.Lock()
        self._idle: dict[str, list[http.client.HTTPConnection]] = {}
        self._ssl: ssl.SSLContext | None = None

    def close(self) -> None:
        with self._lock:
            pools, self._idle = self._idle, {}
        for pool in pools.values():
            for conn in pool:
                conn.close()

    def post(self, url: str, body: bytes, deadline_s: float, *, shown: str) -> HttpAnswer:
        """POST ``body`` to ``url``; ``shown`` is the printable form of the URL."""
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "liqmon"}
        if parts.username is not None:  # http://user:pw@host/: basic auth, as browsers and requests do
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        end = self._clock() + deadline_s
        proxy = _proxy_for(parts.scheme, parts.hostname or "")
        if proxy is not None and parts.scheme == "http":
            path = url  # a plain-HTTP proxy takes the absolute URL
        conn = self._checkout(url) or self._connect(
            parts.scheme, parts.hostname or "", parts.port, end, deadline_s, proxy
        )
        return self._exchange(conn, url, path, body, headers, end, deadline_s, shown)

    # -- internals ------------------------------------------------------------------------

    def _checkout(self, url: str) -> http.client.HTTPConnection | None:
        """An idle pooled connection the server has not closed meanwhile (urllib3's check:
        an idle socket that is readable has seen EOF or junk, so it is dropped)."""
        while True:
            with self._lock:
                pool = self._idle.get(url)
                conn = pool.pop() if pool else None
            if conn is None:
                return None
            if conn.sock is not None and not _dropped(conn.sock):
                return conn
            conn.close()

    def _checkin(self, url: str, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            pool = self._idle.setdefault(url, [])
            if len(pool) < _MAX_IDLE_PER_ENDPOINT:
                pool.append(conn)
                return
        conn.close()

    def _connect(
        self,
        scheme: str,
        host: str,
        port: int | None,
        end: float,
        deadline_s: float,
        proxy: tuple[str, int] | None = None,
    ) -> http.client.HTTPConnection:
        remaining = end - self._clock()
        if remaining <= 0:
            raise HttpFailure(f"no answer within the {deadline_s:g} s deadline", "timeout")
        conn: http.client.HTTPConnection
        via_host, via_port = proxy if proxy is not None else (host, port)
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            conn = http.client.HTTPSConnection(via_host, via_port, timeout=remaining, context=self._ssl)
            if proxy is not None:
                conn.set_tunnel(host, port)  # CONNECT through the proxy, TLS to the node itself
        else:
            conn = http.client.HTTPConnection(via_host, via_port, timeout=remaining)
        try:
            conn.connect()
        except TimeoutError as exc:
            conn.close()
            raise HttpFailure(f"connect timed out after {deadline_s:g} s", "timeout") from exc
        except ssl.SSLError as exc:
            conn.close()
            raise HttpFailure(f"TLS failed ({exc.reason or type(exc).__name__})", "tls", final=True) from exc
        except OSError as exc:
            conn.close()
            raise HttpFailure(_connection_reason(exc), "connection") from exc
        return conn

    def _exchange(
        self,
        conn: http.client.HTTPConnection,
        url: str,
        path: str,
        body: bytes,
        headers: dict[str, str],
        end: float,
        deadline_s: float,
        shown: str,
    ) -> HttpAnswer:
        remaining = end - self._clock()
        if remaining <= 0:
            conn.close()
            raise HttpFailure(f"no answer within the {deadline_s:g} s deadline", "timeout")
        if conn.sock is not None:
            conn.sock.settimeout(remaining)
        watchdog = _Watchdog(remaining, conn.sock)
        complete = False
        try:
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                answer = self._read(response, url, deadline_s, shown)
                if watchdog.fired:
                    raise _deadline(deadline_s)
                if response.length:  # Content-Length not reached: the peer closed mid-body
                    raise HttpFailure("answer cut short (connection closed mid-body)", "bad_json")
                response.close()  # fully read: the connection may serve the next request
                complete = not response.will_close
                return answer
            except HttpFailure:
                raise
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                if watchdog.fired:
                    raise _deadline(deadline_s) from None
                raise HttpFailure(_connection_reason(exc), "connection") from None
            except (TimeoutError, OSError, http.client.HTTPException, ValueError) as exc:
                if watchdog.fired or isinstance(exc, TimeoutError):
                    raise _deadline(deadline_s) from None
                if isinstance(exc, http.client.IncompleteRead):
                    raise HttpFailure("answer cut short (connection closed mid-body)", "bad_json") from None
                raise HttpFailure(_connection_reason(exc), "connection") from None
        finally:
            watchdog.cancel()
            if complete and not watchdog.fired:
                self._checkin(url, conn)
            else:
                conn.close()

    def _read(self, response: http.client.HTTPResponse, url: str, deadline_s: float, shown: str) -> HttpAnswer:
        status = response.status
        if 300 <= status < 400:
            target = response.getheader("Location") or "(no Location header)"
            raise HttpFailure(
                f"redirected (HTTP {status}) to {mask_url(target)}; redirects are refused: put the final URL "
                f"in rpc_urls instead of {shown}",
                "redirect",
                final=True,
            )
        length = response.getheader("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > self.max_body:
            raise self._too_big(f"announces {int(length):,} bytes")
        chunks: list[bytes] = []
        size = 0
        while response.length != 0:  # None: chunked or until close
            chunk = response.read1(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > self.max_body:
                raise self._too_big("kept streaming")
            chunks.append(chunk)
        return HttpAnswer(status, response.msg, b"".join(chunks))

    def _too_big(self, how: str) -> HttpFailure:
        return HttpFailure(
            f"answer {how} beyond the {self.max_body:,}-byte cap (max_response_bytes); reading stopped",
            "too_large",
            final=True,
        )


def _proxy_for(scheme: str, host: str) -> tuple[str, int] | None:
    """The proxy from the environment (``HTTPS_PROXY`` / ``HTTP_PROXY``, minus ``NO_PROXY``),
    as requests would use it; None for a direct connection."""
    proxy = urllib.request.getproxies().get(scheme)
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if not parts.hostname:
        return None
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 8080)


def _dropped(sock: socket.socket) -> bool:
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _deadline(deadline_s: float) -> HttpFailure:
    return HttpFailure(f"no complete answer within the {deadline_s:g} s deadline", "timeout")


def _connection_reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__} {exc}".lower()
    if "refused" in text:
        return "connection refused"
    if "reset" in text or "aborted" in text or "remotedisconnected" in text or "broken pipe" in text:
        return "connection reset"
    if "name or service" in text or "nodename" in text or "resolve" in text or "gaierror" in text:
        return "host name not found"
    if isinstance(exc, http.client.HTTPException):
        return f"bad HTTP answer ({type(exc).__name__})"
    return "connection failed"
