"""Generic webhook channel: each alert as one JSON ``POST``, optionally signed; and the HTTP
transport the Slack, Discord and PagerDuty channels share (:class:`HttpPoster`).

The body (``Content-Type: application/json``, UTF-8)::

    {"version": 1, "source": "liqmon", "key": "outbox:12", "severity": "warning",
     "title": "...", "lines": ["...", ...], "text": "<title, a blank line, the lines>",
     "headline": "[WARNING] ..."}

plus ``"fields"`` (``{"account": ..., "market": ..., "hf": ...}``) and ``"links"``
(``[{"label": ..., "url": ...}]``) when the message has them. The headers carry
``Idempotency-Key`` (the message key: the same on every retry of one message, so a receiver
can drop a duplicate of an at-least-once delivery) and ``X-Liqmon-Timestamp`` (unix
seconds). With a signing secret (``secret_env``) ``X-Liqmon-Signature: v1=<hex>`` is
``HMAC-SHA256(secret, "<timestamp>." + body)``; a receiver recomputes it over the raw body
and refuses a timestamp more than a few minutes old (replay), as Stripe's and Slack's
signatures work.

The URL may hold secrets (a token in the path or the query, expanded from ``${NAME}`` at
load); so no error, repr or log line built here quotes it: errors name the channel and the
URL's display form (secrets as ``<secret>``), a ``requests`` exception (whose text embeds
the URL) is neither quoted nor chained, and a logging filter blanks the secrets out of
urllib3's request lines.

Failure classes, as the outbox needs them:

- retryable: 408, 425, 429 (``Retry-After`` in seconds or as an HTTP date honoured), 5xx,
  timeouts, refused or reset connections;
- final: any other 4xx (401 / 403: the receiver refuses our credentials, 404 / 410: the URL
  is gone), a redirect (not followed: a POST must not turn into a GET elsewhere), a TLS
  verification failure, a malformed URL.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import logging
import math
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import requests

from monitor.alerts.channels import DeliveryError, redact
from monitor.alerts.message import Message, one_line
from monitor.errors import ConfigError

BODY_VERSION: Final = 1
SIGNATURE_HEADER: Final = "X-Liqmon-Signature"
TIMESTAMP_HEADER: Final = "X-Liqmon-Timestamp"
KEY_HEADER: Final = "Idempotency-Key"
USER_AGENT: Final = "liqmon-alerts/1"
_DESCRIPTION_MAX: Final = 300
# the structured fields chat channels show (Slack section fields, Discord embed fields), in order
FIELD_NAMES: Final = {"label": "Wallet", "account": "Account", "chain": "Chain", "market": "Market",
                      "hf": "Health factor", "level": "Level", "block": "Block"}  # fmt: skip
_RETRYABLE_4XX: Final = frozenset({408, 425, 429})


class _RedactSecrets(logging.Filter):
    """Blanks registered secrets out of the records of the logger it is attached to."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secrets: Sequence[str]) -> None:
        with self._lock:
            self._secrets.update(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            secrets = tuple(sorted(self._secrets, key=len, reverse=True))
        try:
            text = record.getMessage()
        except Exception:  # a malformed record is the logging module's problem, not ours
            return True
        clean = redact(text, secrets)
        if clean != text:
            record.msg, record.args = clean, None
        return True


_REDACTOR: Final = _RedactSecrets()
logging.getLogger("urllib3.connectionpool").addFilter(_REDACTOR)  # urllib3 logs each request path at DEBUG


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`` (what a receiver recomputes)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def seconds_from_header(value: str | None, now: float) -> float | None:
    """A ``Retry-After`` value in seconds: delta-seconds or an HTTP date (RFC 9110); None if absent or bad."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - now
        return max(0.0, seconds) if math.isfinite(seconds) else None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class Pacer:
    """Keeps two sends to one target at least ``interval`` seconds apart (reservations keep
    threads apart; ``sleep`` and ``clock`` injected for tests)."""

    def __init__(
        self, interval: float, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait_turn(self, target: str = "") -> None:
        if self.interval <= 0:
            return
        with self._lock:
            now = self._clock()
            slot = max(now, self._next.get(target, now))
            self._next[target] = slot + self.interval
        if slot > now:
            self._sleep(slot - now)


class HttpPoster:
    """POSTs bytes to one URL holding secrets; answers are turned into :class:`DeliveryError`
    by :meth:`check` (the caller passes the service's own description of a failure).

    ``display``: the URL as it may be printed (secrets as ``<secret>``). ``secrets``: every
    secret the URL or the headers hold (redacted from errors and urllib3's log lines).
    """

    def __init__(
        self,
        name: str,
        service: str,
        url: str,
        *,
        display: str,
        secrets: Sequence[str] = (),
        timeout: float = 10.0,
        session: requests.Session | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not name:
            raise ConfigError(f"{service} channel name is empty: give every channel a name")
        if not url.startswith(("http://", "https://")) or any(ch.isspace() for ch in url):
            raise ConfigError(f"channel {name!r}: {service} URL {display} is not an http(s) URL")
        if not (math.isfinite(timeout) and timeout > 0):
            raise ConfigError(f"channel {name!r}: {service} timeout must be > 0 seconds, got {timeout:g}")
        self.name = name
        self.service = service
        self.display = display
        self.timeout = timeout
        self.url = url
        self.secrets = _with_url_paths(s for s in secrets if s)
        self._wall = wall_clock
        self._own_session = session is None
        self._session = requests.Session() if session is None else session
        _REDACTOR.add(self.secrets)

    def close(self) -> None:
        if self._own_session:
            self._session.close()

    @property
    def where(self) -> str:
        return f"channel {self.name!r}: {self.service} POST to {self.display}"

    def post(self, body: bytes, headers: Mapping[str, str], url: str | None = None) -> requests.Response:
        """The response (any status), or a DeliveryError for a transport failure."""
        result = self._post(body, headers, self.url if url is None else url)
        if isinstance(result, DeliveryError):
            raise result  # raised outside any except block: no __context__ holding the URL
        return result

    def _post(self, body: bytes, headers: Mapping[str, str], url: str) -> requests.Response | DeliveryError:
        where = self.where
        try:
            return self._session.post(url, data=body, headers=dict(headers), timeout=self.timeout,
                                      allow_redirects=False)  # fmt: skip
        except requests.Timeout:
            return DeliveryError(f"{where} timed out after {self.timeout:g} s", retryable=True)
        except requests.exceptions.SSLError:  # a bad certificate stays bad: permanent, told
            return DeliveryError(
                f"{where} failed: TLS verification failed (bad or self-signed certificate, or not a TLS port)",
                retryable=False, kind="tls",
            )  # fmt: skip
        except requests.ConnectionError:
            return DeliveryError(f"{where} failed: cannot connect", retryable=True)
        except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema):
            return DeliveryError(f"{where} failed: the URL is invalid; check it", retryable=False, kind="config")
        except requests.RequestException as exc:
            return DeliveryError(f"{where} failed ({type(exc).__name__})", retryable=True)

    def describe(self, response: requests.Response) -> str:
        """The answer's text on one line, short, secrets redacted (``HTTP <status>`` when empty)."""
        text = one_line(response.text or "")[:_DESCRIPTION_MAX]
        return redact(text, self.secrets) if text else f"HTTP {response.status_code}"

    def check(
        self, response: requests.Response, *, description: str | None = None, retry_after: float | None = None
    ) -> None:
        """Return on 2xx; else raise the DeliveryError of the status (see the module doc).
        ``retry_after``: the service's own value (a JSON field) before the ``Retry-After`` header."""
        status = response.status_code
        if 200 <= status < 300:
            return
        where = self.where
        text = description if description is not None else self.describe(response)
        text = redact(one_line(text)[:_DESCRIPTION_MAX], self.secrets)
        if status in _RETRYABLE_4XX:
            after = retry_after if retry_after is not None else seconds_from_header(
                response.headers.get("Retry-After"), self._wall()
            )  # fmt: skip
            hint = f"; retry after {after:g} s" if after is not None else ""
            verb = "was rate-limited" if status == 429 else f"got HTTP {status}"
            raise DeliveryError(f"{where} {verb} ({text}){hint}", retryable=True, retry_after=after)
        if status >= 500:
            raise DeliveryError(f"{where} failed: server error HTTP {status} ({text})", retryable=True)
        if 300 <= status < 400:
            raise DeliveryError(
                f"{where} was redirected (HTTP {status}); redirects are not followed: set the final URL",
                retryable=False, kind="redirect",
            )  # fmt: skip
        if status in (401, 403):
            raise DeliveryError(f"{where} was refused (HTTP {status}: {text}); check the credentials",
                                retryable=False, kind="auth")  # fmt: skip
        if status in (404, 410):
            raise DeliveryError(f"{where} failed: the URL is unknown or gone (HTTP {status}: {text}); check it",
                                retryable=False, kind="not_found")  # fmt: skip
        if 400 <= status < 500:
            raise DeliveryError(f"{where} was refused (HTTP {status}: {text})", retryable=False, kind=f"http_{status}")
        raise DeliveryError(f"{where} got an unexpected answer (HTTP {status}: {text})", retryable=True)


def _with_url_paths(secrets: Iterable[str]) -> tuple[str, ...]:
    """``secrets`` (of 4 characters or more) plus, for a secret that is a whole URL, its path and
    query (what urllib3's request line shows), longest first so that a longer secret is masked whole."""
    out: set[str] = set()
    for secret in secrets:
        if len(secret) < 4:  # too short to mask everywhere without blanking ordinary text
            continue
        out.add(secret)
        if secret.startswith(("http://", "https://")):
            parts = urllib.parse.urlsplit(secret)
            tail = parts.path + (f"?{parts.query}" if parts.query else "")
            if len(parts.path) > 1:
                out.update({tail, parts.path})
    return tuple(sorted(out, key=len, reverse=True))


def no_destination(channel: str, service: str, destination: str) -> None:
    """Webhook-style channels post where their URL points: a route's ``to`` must be empty."""
    if destination.strip():
        raise ConfigError(
            f"channel {channel!r}: a {service} webhook posts where its URL points; remove the route's 'to' "
            f"({destination!r}), or configure one channel per URL"
        )


def message_fields(message: Message) -> dict[str, str]:
    """The message's structured fields (``account``, ``market``, ``hf``...), empty when it has none."""
    return dict(message.fields)


_HEX_ID_RE: Final = re.compile(r"\b0x(?:[0-9a-fA-F]{64}|[0-9a-fA-F]{40})\b")


def code_spans(line: str, escape: Callable[[str], str]) -> str:
    """``line`` with ``escape`` applied, addresses and hashes set apart as code spans (Slack's
    mrkdwn and Discord's markdown both read backticks)."""
    out: list[str] = []
    pos = 0
    for match in _HEX_ID_RE.finditer(line):
        out.append(escape(line[pos : match.start()]))
        out.append(f"`{match.group(0)}`")
        pos = match.end()
    out.append(escape(line[pos:]))
    return "".join(out)


def message_links(message: Message) -> list[tuple[str, str]]:
    """The message's (label, URL) links with an http(s) URL."""
    return [(label, url) for label, url in message.links if url.startswith(("https://", "http://"))]


def message_body(message: Message) -> dict[str, Any]:
    """The generic JSON body of ``message`` (see the module doc)."""
    body: dict[str, Any] = {
        "version": BODY_VERSION,
        "source": "liqmon",
        "key": message.key,
        "severity": message.severity,
        "title": one_line(message.title),
        "lines": list(message.lines),
        "text": message.plain(),
        "headline": message.headline,
    }
    fields = message_fields(message)
    if fields:
        body["fields"] = fields
    links = message_links(message)
    if links:
        body["links"] = [{"label": label, "url": url} for label, url in links]
    return body


class WebhookChannel:
    """POSTs each alert as JSON to one URL (see the module doc). ``headers``: extra headers
    (values may hold secrets: they are redacted like the URL). ``secret``: the HMAC signing
    key, or None for unsigned requests."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        display: str | None = None,
        secret: str | None = None,
        headers: Mapping[str, str] | None = None,
        secrets: Sequence[str] = (),
        timeout: float = 10.0,
        min_interval_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
        session: requests.Session | None = None,
    ) -> None:
        extra = dict(headers or {})
        shown = display if display is not None else url
        hidden = (*secrets, *([secret] if secret else []))  # header values from ${NAME} come in `secrets`
        if secret is not None and not secret:
            raise ConfigError(f"channel {name!r}: the webhook signing secret is empty")
        for header in extra:
            if header.lower() in {KEY_HEADER.lower(), TIMESTAMP_HEADER.lower(), SIGNATURE_HEADER.lower(),
                                  "content-type", "content-length", "host"}:  # fmt: skip
                raise ConfigError(f"channel {name!r}: header {header!r} is set by liqmon itself; remove it")
        if not (math.isfinite(min_interval_s) and min_interval_s >= 0):
            raise ConfigError(f"channel {name!r}: min_interval_s must be >= 0 seconds, got {min_interval_s}")
        self.name = name
        self._http = HttpPoster(name, "webhook", url, display=shown, secrets=hidden, timeout=timeout,
                                session=session, wall_clock=wall_clock)  # fmt: skip
        self._secret = secret
        self._headers = extra
        self._wall = wall_clock
        self._pacer = Pacer(min_interval_s, clock, sleep)

    def __repr__(self) -> str:
        signed = ", secret=<secret>" if self._secret else ""
        return f"WebhookChannel(name={self.name!r}, url={self._http.display!r}{signed})"

    def close(self) -> None:
        self._http.close()

    def validate_destination(self, destination: str) -> None:
        no_destination(self.name, "generic", destination)

    def request(self, message: Message) -> tuple[bytes, dict[str, str]]:
        """The body and headers of ``message`` (signed now, if a secret is set)."""
        body = json.dumps(message_body(message), ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = str(int(self._wall()))
        headers = {**self._headers, "Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT,
                   KEY_HEADER: one_line(message.key), TIMESTAMP_HEADER: timestamp}  # fmt: skip
        if self._secret:
            headers[SIGNATURE_HEADER] = signature(self._secret, timestamp, body)
        return body, headers

    def send(self, message: Message, destination: str = "") -> None:
        body, headers = self.request(message)
        self._pacer.wait_turn()
        self._http.check(self._http.post(body, headers))
