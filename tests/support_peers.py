"""Local stand-ins for the services alerts are delivered to: Telegram's Bot API and an SMTP server.

Both listen on 127.0.0.1 only; no test needs the internet.

:class:`TelegramServer` answers ``POST /bot<token>/sendMessage`` the way Telegram does
(status codes, ``{"ok": ..., "error_code": ..., "description": ...}`` bodies, the
``result`` object), parses HTML parse mode like Telegram (supported tags only, balanced,
entities, 4,096 characters after parsing; a bare ``&`` is refused, which is stricter than
Telegram), and can be told to answer the next requests with 429, a 5xx, or to stall.

:class:`SmtpServer` is an aiosmtpd server, plain, STARTTLS or implicit TLS, with a
self-signed certificate for ``localhost`` / ``127.0.0.1`` (``.cafile`` to trust it) and
optional AUTH; ``stop()`` / ``start()`` make an outage on the same port.
"""

from __future__ import annotations

import email.policy
import itertools
import json
import re
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = [
    "TELEGRAM_TEST_TOKEN",
    "SmtpDelivery",
    "SmtpServer",
    "TelegramHtmlError",
    "TelegramMessage",
    "TelegramServer",
    "make_self_signed_cert",
    "telegram_html_to_text",
]

TELEGRAM_TEST_TOKEN = "123456789:AAH-liqmon_test_token_0123456789ab"
TELEGRAM_TEXT_LIMIT = 4096

# --------------------------------------------------------------------------- Telegram


@dataclass(frozen=True, slots=True)
class TelegramMessage:
    """One message the server accepted."""

    token: str
    chat_id: int | str  # as sent by the client
    text: str  # as sent (the HTML markup when parse_mode is HTML)
    parse_mode: str | None
    time: float  # time.monotonic() when it was received
    plain: str  # the text a Telegram user sees (markup parsed, entities decoded)
    message_id: int
    disable_web_page_preview: bool | None


class TelegramHtmlError(ValueError):
    """Markup Telegram would refuse ("Bad Request: can't parse entities: ...")."""


_TG_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code", "pre"}
    | {"blockquote", "tg-emoji"}
)
_TG_TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)(\s[^<>]*)?>")
_TG_ENTITY_RE = re.compile(r"&(lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def telegram_html_to_text(text: str) -> str:
    """The text Telegram shows for ``text`` in HTML parse mode; TelegramHtmlError as Telegram would refuse it."""
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        offset = len(text[:pos].encode())
        if char == "<":
            tag = _TG_TAG_RE.match(text, pos)
            if tag is None:
                raise TelegramHtmlError(f"Unsupported start tag at byte offset {offset}")
            closing, name = tag.group(1) == "/", tag.group(2).lower()
            if name not in _TG_TAGS:
                raise TelegramHtmlError(f'Unsupported start tag "{name}" at byte offset {offset}')
            if not closing:
                stack.append(name)
            elif not stack or stack[-1] != name:
                raise TelegramHtmlError(f'Unmatched end tag at byte offset {offset}, expected "</{stack[-1]}>"'
                                        if stack else f'Unexpected end tag at byte offset {offset}')  # fmt: skip
            else:
                stack.pop()
            pos = tag.end()
        elif char == "&":
            entity = _TG_ENTITY_RE.match(text, pos)
            if entity is None:
                raise TelegramHtmlError(f"Character entity expected at byte offset {offset}")
            ref = entity.group(1)
            if ref in _NAMED:
                out.append(_NAMED[ref])
            else:
                out.append(chr(int(ref[2:], 16) if ref[1] in "xX" else int(ref[1:])))
            pos = entity.end()
        elif char == ">":
            raise TelegramHtmlError(f"Unexpected '>' at byte offset {offset}")
        else:
            out.append(char)
            pos += 1
    if stack:
        raise TelegramHtmlError(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


class TelegramServer:
    """A local Telegram Bot API ``sendMessage`` endpoint.

    ``tokens``: bot tokens it accepts (others get 401 Unauthorized). ``chats``: chat ids
    (ints or "@username") that exist; None means every chat exists. ``blocked_chats``:
    chats whose user blocked the bot (403). Use as a context manager, or start()/close().
    """

    def __init__(
        self,
        tokens: Iterable[str] = (TELEGRAM_TEST_TOKEN,),
        *,
        chats: Iterable[int | str] | None = None,
        blocked_chats: Iterable[int | str] = (),
        port: int = 0,
    ) -> None:
        self.port = port  # 0: any free port
        self.tokens = frozenset(tokens)
        self.chats = None if chats is None else frozenset(str(c) for c in chats)
        self.blocked_chats = frozenset(str(c) for c in blocked_chats)
        self.requests = 0  # every HTTP request received, faulted ones included
        self._messages: list[TelegramMessage] = []
        self._faults: list[tuple[str, float]] = []  # ("429", retry_after) | ("status", code) | ("stall", seconds)
        self._ids = itertools.count(1)
        self._updates: list[dict[str, Any]] = []  # getUpdates queue (push_update)
        self._update_ids = itertools.count(1)
        self.update_polls = 0  # getUpdates requests answered
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> TelegramServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                server._handle(self)

            def do_GET(self) -> None:
                server._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="telegram-peer", daemon=True
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

    def __enter__(self) -> TelegramServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        """The value for the channel's ``base_url`` (``http://127.0.0.1:<port>``)."""
        assert self._httpd is not None, "TelegramServer is not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # ---- what it received

    @property
    def messages(self) -> list[TelegramMessage]:
        """Accepted messages, in arrival order (a copy)."""
        with self._cond:
            return list(self._messages)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[TelegramMessage]:
        """Block until at least ``n`` messages arrived; TimeoutError otherwise."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._messages) >= n, timeout):
                raise TimeoutError(f"TelegramServer got {len(self._messages)} messages in {timeout} s, expected {n}")
            return list(self._messages)

    # ---- faults, consumed one per request in the order given

    def too_many_requests(self, retry_after: int, times: int = 1) -> None:
        """Answer the next ``times`` requests with 429 and ``parameters.retry_after``."""
        self._add_fault("429", retry_after, times)

    def server_error(self, status: int = 500, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status`` (500: Telegram's JSON; 502-504: a proxy's HTML)."""
        self._add_fault("status", status, times)

    def stall(self, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` requests ``seconds`` before answering (then deliver, late, as Telegram may)."""
        self._add_fault("stall", seconds, times)

    def _add_fault(self, kind: str, value: float, times: int) -> None:
        with self._cond:
            self._faults.extend([(kind, value)] * times)

    # ---- the endpoint

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length) if length else b""
        with self._cond:
            self.requests += 1
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None:
            kind, value = fault
            if kind == "429":
                seconds = int(value)
                return _reply(req, 429, _error(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds))
            if kind == "status":
                status = int(value)
                if status == 500:
                    return _reply(req, 500, _error(500, "Internal Server Error"))
                page = f"<html><body><h1>{status} Bad Gateway</h1></body></html>".encode()
                return _reply(req, status, page, content_type="text/html")
            if self._closing.wait(value):  # stall; the server closes meanwhile: drop the request
                req.close_connection = True
                return None
        match = re.fullmatch(r"/bot([^/]+)/([A-Za-z]+)", urllib.parse.urlsplit(req.path).path)
        if match is None:
            return _reply(req, 404, _error(404, "Not Found"))
        token, method = match.groups()
        if token not in self.tokens:
            return _reply(req, 401, _error(401, "Unauthorized"))
        if method not in ("sendMessage", "getUpdates"):
            return _reply(req, 404, _error(404, "Not Found"))
        if req.command != "POST" and not raw:
            params: dict[str, Any] = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(req.path).query))
        else:
            try:
                params = _params(raw, req.headers.get("Content-Type", ""))
            except ValueError:
                return _reply(req, 400, _error(400, "Bad Request: can't parse request JSON object"))
        if method == "getUpdates":
            return _reply(req, 200, self._get_updates(params))
        status, body = self._send_message(token, params)
        return _reply(req, status, body)

    # ---- getUpdates (the bot side): tests push what users type

    def push_update(self, chat_id: int, text: str, *, title: str | None = None) -> int:
        """A user in ``chat_id`` sends ``text``; returns its update_id."""
        chat: dict[str, Any] = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
        if title:
            chat["title"] = title
        with self._cond:
            update_id = next(self._update_ids)
            self._updates.append({"update_id": update_id, "message": {
                "message_id": next(self._ids), "date": int(time.time()), "chat": chat, "text": text,
                "from": {"id": abs(chat_id), "is_bot": False, "first_name": "User"}}})  # fmt: skip
            self._cond.notify_all()
        return update_id

    def _get_updates(self, params: dict[str, Any]) -> dict[str, Any]:
        offset = int(params.get("offset") or 0)
        wait = min(float(params.get("timeout") or 0), 5.0)
        deadline = time.monotonic() + wait
        with self._cond:
            self.update_polls += 1
            self._updates = [u for u in self._updates if u["update_id"] >= offset]  # below offset: confirmed
            while not self._updates and not self._closing.is_set() and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            return {"ok": True, "result": list(self._updates)}

    def _send_message(self, token: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        chat_id = params.get("chat_id")
        if chat_id is None or str(chat_id).strip() == "":
            return 400, _error(400, "Bad Request: chat_id is empty")
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            return 400, _error(400, "Bad Request: message text is empty")
        chat = str(chat_id)
        if chat in self.blocked_chats:
            return 403, _error(403, "Forbidden: bot was blocked by the user")
        if self.chats is not None and chat not in self.chats:
            return 400, _error(400, "Bad Request: chat not found")
        parse_mode = params.get("parse_mode")
        if parse_mode in (None, ""):
            plain = text
        elif str(parse_mode).lower() == "html":
            try:
                plain = telegram_html_to_text(text)
            except TelegramHtmlError as exc:
                return 400, _error(400, f"Bad Request: can't parse entities: {exc}")
        else:
            return 400, _error(400, f"Bad Request: unsupported parse_mode {parse_mode}")  # MarkdownV2: not modelled
        if not plain.strip():
            return 400, _error(400, "Bad Request: message text is empty")
        if len(plain.encode("utf-16-le")) // 2 > TELEGRAM_TEXT_LIMIT:
            return 400, _error(400, "Bad Request: message is too long")
        preview = params.get("disable_web_page_preview")
        with self._cond:
            message = TelegramMessage(
                token=token,
                chat_id=chat_id,
                text=text,
                parse_mode=None if parse_mode in (None, "") else str(parse_mode),
                time=time.monotonic(),
                plain=plain,
                message_id=next(self._ids),
                disable_web_page_preview=preview if isinstance(preview, bool) else None,
            )
            self._messages.append(message)
            self._cond.notify_all()
        numeric = re.fullmatch(r"-?[0-9]+", chat) is not None
        chat_obj: dict[str, Any] = (
            {"id": int(chat), "first_name": "Ops", "type": "private"}
            if numeric and int(chat) > 0
            else {"id": int(chat) if numeric else -1001000000000 - message.message_id, "title": "liqmon alerts",
                  "type": "supergroup" if numeric else "channel"}
        )  # fmt: skip
        if not numeric:
            chat_obj["username"] = chat.lstrip("@")
        bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 1
        result = {
            "message_id": message.message_id,
            "from": {"id": bot_id, "is_bot": True, "first_name": "liqmon test", "username": "liqmon_test_bot"},
            "chat": chat_obj,
            "date": int(time.time()),
            "text": plain,
        }
        return 200, {"ok": True, "result": result}


def _error(code: int, description: str, retry_after: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return body


def _params(raw: bytes, content_type: str) -> dict[str, Any]:
    if not raw:
        return {}
    if content_type.startswith("application/json"):
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        return body
    return dict(urllib.parse.parse_qsl(raw.decode()))


def _reply(
    req: BaseHTTPRequestHandler, status: int, body: dict[str, Any] | bytes, content_type: str = "application/json"
) -> None:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    try:
        req.send_response(status)
        req.send_header("Content-Type", content_type)
        req.send_header("Content-Length", str(len(payload)))
        req.end_headers()
        req.wfile.write(payload)
    except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout) first
        pass


# --------------------------------------------------------------------------- SMTP


def make_self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """(cert.pem, key.pem) in ``directory``: self-signed, CN=localhost, SAN localhost + 127.0.0.1, 1 day."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the openssl command is needed to make the test certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@dataclass(frozen=True, slots=True)
class SmtpDelivery:
    """One message the server accepted, with its envelope."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    login: str | None  # the AUTH user, if the client logged in
    tls: bool  # the session was encrypted (STARTTLS or implicit TLS)


class _Collector:
    def __init__(self, owner: SmtpServer) -> None:
        self.owner = owner

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = self.owner.refuse.get(address.lower())
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode()
        raw = raw.replace(b"\r\n", b"\n")  # SMTP's line endings -> Python's, as a mailbox would store it
        message = message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data if isinstance(session.auth_data, str) else None
        tls = self.owner.tls == "ssl" or session.ssl is not None
        self.owner._record(SmtpDelivery(envelope.mail_from or "", tuple(envelope.rcpt_tos), message, login, tls))
        return "250 OK"


class _Controller(Controller):
    """aiosmtpd's Controller, able to bind port 0 (it learns the real port before its self-test)."""

    def factory(self) -> SMTP:
        with warnings.catch_warnings():  # "Requiring AUTH while not requiring TLS": implicit TLS is TLS
            warnings.simplefilter("ignore", UserWarning)
            smtp: SMTP = super().factory()  # type: ignore[no-untyped-call]
            return smtp

    def _trigger_server(self) -> None:
        sockets = getattr(self.server, "sockets", None) or ()
        if sockets:
            self.port = sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class SmtpServer:
    """An SMTP server on 127.0.0.1 collecting what it receives.

    ``tls``: "none", "starttls" (STARTTLS offered; required before MAIL unless
    ``require_starttls=False``) or "ssl" (implicit TLS). ``auth``: (username, password) to
    require AUTH (offered only under TLS). ``refuse``: recipient address -> SMTP reply to give
    it instead of 250 (e.g. "550 5.1.1 User unknown", "450 4.2.0 Greylisted"). ``port``: 0
    picks a free port at the first start; stop()/start() keep it.
    """

    def __init__(
        self,
        *,
        tls: Literal["none", "starttls", "ssl"] = "none",
        require_starttls: bool = True,
        auth: tuple[str, str] | None = None,
        refuse: Mapping[str, str] | None = None,
        port: int = 0,
    ) -> None:
        self.tls = tls
        self.refuse = {address.lower(): reply for address, reply in (refuse or {}).items()}
        self.require_starttls = require_starttls
        self.auth = auth
        self.host = "127.0.0.1"
        self.port = port
        self.auth_attempts = 0
        self._deliveries: list[SmtpDelivery] = []
        self._cond = threading.Condition()
        self._controller: _Controller | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="liqmon-smtp-")
        self._cert: tuple[Path, Path] | None = None

    @property
    def cafile(self) -> Path:
        """The server's self-signed certificate, to trust with ``ssl.create_default_context(cafile=...)``."""
        return self._cert_and_key()[0]

    def _cert_and_key(self) -> tuple[Path, Path]:
        if self._cert is None:  # made on first use: a plain server needs none
            self._cert = make_self_signed_cert(Path(self._tmp.name))
        return self._cert

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context (CERT_REQUIRED, hostname checked) that trusts this server's certificate."""
        return ssl.create_default_context(cafile=str(self.cafile))

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> SmtpServer:
        assert self._controller is None, "SmtpServer already running"
        kwargs: dict[str, Any] = {"server_hostname": "localhost", "ready_timeout": 10.0}
        if self.tls != "none":
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            cert, key = self._cert_and_key()
            context.load_cert_chain(str(cert), str(key))
            if self.tls == "ssl":
                kwargs["ssl_context"] = context
            else:
                kwargs.update(tls_context=context, require_starttls=self.require_starttls)
        if self.auth is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True, auth_require_tls=self.tls != "ssl")
        controller = _Controller(_Collector(self), hostname=self.host, port=self.port, **kwargs)
        controller.start()
        self.port = controller.port
        self._controller = controller
        return self

    def stop(self) -> None:
        """Stop listening (connections are refused) but keep the port and what was received."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def deliveries(self) -> list[SmtpDelivery]:
        with self._cond:
            return list(self._deliveries)

    @property
    def messages(self) -> list[EmailMessage]:
        """Received messages, in arrival order (a copy)."""
        return [d.message for d in self.deliveries]

    def wait_for(self, n: int, timeout: float = 5.0) -> list[EmailMessage]:
        """Block until at least ``n`` messages arrived; TimeoutError otherwise."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._deliveries) >= n, timeout):
                raise TimeoutError(f"SmtpServer got {len(self._deliveries)} messages in {timeout} s, expected {n}")
            return [d.message for d in self._deliveries]

    def _record(self, delivery: SmtpDelivery) -> None:
        with self._cond:
            self._deliveries.append(delivery)
            self._cond.notify_all()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: object
    ) -> AuthResult:
        with self._cond:
            self.auth_attempts += 1
        assert self.auth is not None
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            if (user, password) == self.auth:
                return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)
