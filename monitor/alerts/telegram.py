"""Telegram Bot API channel: ``sendMessage`` in HTML parse mode, paced per chat.

The request URL holds the bot token (``/bot<token>/sendMessage``), so no error message,
repr or log line built here contains the URL: errors say "Telegram sendMessage to chat X",
exceptions from ``requests`` (whose text embeds the URL) are neither quoted nor chained (not
even as ``__context__``), and a logging filter blanks the token out of urllib3's debug lines
("POST /bot.../sendMessage").

Failure classes, as the outbox needs them:

- retryable: 429 (``retry_after`` from ``parameters.retry_after`` or ``Retry-After``), 5xx,
  timeouts, connection errors, non-JSON answers;
- final: 400 (chat not found, bad markup, group migrated), 401 (token rejected), 403 (bot
  blocked or kicked), 404; the message names the chat and Telegram's description.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import requests

from monitor.alerts.channels import DeliveryError, redact
from monitor.alerts.message import Message, one_line, truncate_html
from monitor.errors import ConfigError

DEFAULT_BASE_URL: Final = "https://api.telegram.org"
_CHAT_ID_RE: Final = re.compile(r"-?[1-9][0-9]{0,19}|@[A-Za-z][A-Za-z0-9_]{4,31}")
_TOKEN_RE: Final = re.compile(r"[0-9]+:[A-Za-z0-9_-]+")
_URL_RE: Final = re.compile(r"https?://[^\s/?#]+(?:/[^\s?#]*)?")
_DESCRIPTION_MAX: Final = 300


class _RedactTokens(logging.Filter):
    """Blanks registered bot tokens out of records of the logger it is attached to."""

    def __init__(self) -> None:
        super().__init__()
        self._tokens: set[str] = set()
        self._lock = threading.Lock()

    def add(self, token: str) -> None:
        with self._lock:
            self._tokens.add(token)

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            tokens = tuple(self._tokens)
        try:
            text = record.getMessage()
        except Exception:  # a malformed record is the logging module's problem, not ours
            return True
        clean = redact(text, tokens)
        if clean != text:
            record.msg, record.args = clean, None
        return True


_REDACTOR: Final = _RedactTokens()
# urllib3 logs every request line at DEBUG level, URL path (and so the token) included.
logging.getLogger("urllib3.connectionpool").addFilter(_REDACTOR)


def parse_chat_id(destination: str) -> int | str:
    """The chat id as Telegram's ``chat_id`` (an int, or ``"@channelusername"``).

    Raises ConfigError for anything else.
    """
    chat = destination.strip()
    if not _CHAT_ID_RE.fullmatch(chat):
        raise ConfigError(
            f"Telegram chat id {destination!r} is invalid: expected an integer (e.g. 123456789 for a user, "
            "-1001234567890 for a group or channel) or @channelusername (5-32 letters, digits or '_', "
            "starting with a letter)"
        )
    return chat if chat.startswith("@") else int(chat)


class TelegramChannel:
    """Sends alerts with the Telegram Bot API ``sendMessage`` method.

    ``min_interval_per_chat_s``: two messages to the same chat are at least this far apart
    (Telegram allows about one message per second per chat); ``send`` waits with the
    injected ``sleep``, measured with the injected ``clock``. ``session``: a
    ``requests.Session`` to use (the channel closes only a session it created).
    """

    def __init__(
        self,
        name: str,
        token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        min_interval_per_chat_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        if not name:
            raise ConfigError("Telegram channel name is empty: give every channel a name")
        if not _TOKEN_RE.fullmatch(token):
            # Never echo the value: it may be a real token with a typo.
            raise ConfigError(
                f"channel {name!r}: the Telegram bot token has an invalid format; expected <bot id>:<secret> "
                "as given by @BotFather"
            )
        base = base_url.rstrip("/")
        if not _URL_RE.fullmatch(base):
            raise ConfigError(f"channel {name!r}: Telegram base_url {base_url!r} is not an http(s) URL")
        if not (math.isfinite(timeout) and timeout > 0):
            raise ConfigError(f"channel {name!r}: Telegram timeout must be a positive number of seconds, got {timeout}")
        if not (math.isfinite(min_interval_per_chat_s) and min_interval_per_chat_s >= 0):
            raise ConfigError(
                f"channel {name!r}: min_interval_per_chat_s must be >= 0 seconds, got {min_interval_per_chat_s}"
            )
        self.name = name
        self.base_url = base
        self.timeout = timeout
        self.min_interval_per_chat_s = min_interval_per_chat_s
        self._token = token
        self._url = f"{base}/bot{token}/sendMessage"
        self._clock = clock
        self._sleep = sleep
        self._own_session = session is None
        self._session = requests.Session() if session is None else session
        self._next_slot: dict[str, float] = {}  # chat -> earliest clock() for its next message
        self._lock = threading.Lock()
        _REDACTOR.add(token)

    def __repr__(self) -> str:
        return f"TelegramChannel(name={self.name!r}, base_url={self.base_url!r}, token=<secret>)"

    def close(self) -> None:
        if self._own_session:
            self._session.close()

    def __enter__(self) -> TelegramChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def validate_destination(self, destination: str) -> None:
        parse_chat_id(destination)

    def send(self, message: Message, destination: str) -> None:
        try:
            chat_id = parse_chat_id(destination)
        except ConfigError as exc:
            raise DeliveryError(f"channel {self.name!r}: {exc}", retryable=False, kind="config") from None
        where = f"Telegram sendMessage to chat {chat_id}"
        payload = {
            "chat_id": chat_id,
            "text": truncate_html(message.html()),
            "parse_mode": "HTML",
            "disable_web_page_preview": True,
        }
        self._wait_turn(str(chat_id))
        result = self._post(payload, where)
        if isinstance(result, DeliveryError):
            raise result  # raised outside any except block: no __context__ holding the URL
        self._check(result, where)

    def _post(self, payload: dict[str, Any], where: str) -> requests.Response | DeliveryError:
        """The response, or the error to raise.

        A requests exception's text holds the URL, hence the token: it is neither quoted nor
        chained (the caller raises outside this except block, so not even ``__context__``).
        """
        try:
            return self._session.post(self._url, json=payload, timeout=self.timeout)
        except requests.Timeout:
            return DeliveryError(f"{where} timed out after {self.timeout:g} s", retryable=True)
        except requests.exceptions.SSLError:  # a bad certificate stays bad: permanent, told
            return DeliveryError(
                f"{where} failed: TLS verification of {self.base_url} failed (bad or self-signed certificate,"
                " or not a TLS port); fix the certificate or base_url",
                retryable=False, kind="tls",
            )  # fmt: skip
        except requests.ConnectionError:
            return DeliveryError(f"{where} failed: cannot connect to {self.base_url}", retryable=True)
        except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema):
            return DeliveryError(f"{where} failed: check base_url {self.base_url!r}", retryable=False, kind="config")
        except requests.RequestException as exc:
            return DeliveryError(f"{where} failed ({type(exc).__name__})", retryable=True)

    def _wait_turn(self, chat: str) -> None:
        """Reserve the chat's next slot and sleep until it (reservations keep threads apart)."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot.get(chat, now))
            self._next_slot[chat] = slot + self.min_interval_per_chat_s
        if slot > now:
            self._sleep(slot - now)

    def _check(self, response: requests.Response, where: str) -> None:
        status = response.status_code
        body = _json_object(response)
        if body is not None and body.get("ok") is True and 200 <= status < 300:
            return
        code = body.get("error_code") if body is not None else None
        code = code if isinstance(code, int) and not isinstance(code, bool) else status
        raw = body.get("description") if body is not None else None
        description = redact(one_line(str(raw))[:_DESCRIPTION_MAX], (self._token,)) if raw else f"HTTP {status}"
        params = body.get("parameters") if body is not None else None
        params = params if isinstance(params, Mapping) else {}
        if code == 429 or status == 429:
            retry_after = _seconds(params.get("retry_after"))
            if retry_after is None:
                retry_after = _seconds(response.headers.get("Retry-After"))
            after = f"; retry after {retry_after:g} s" if retry_after is not None else ""
            raise DeliveryError(
                f"{where} was rate-limited by Telegram ({description}){after}", retryable=True, retry_after=retry_after
            )
        if status >= 500 or code >= 500:
            raise DeliveryError(f"{where} failed: Telegram server error ({description})", retryable=True)
        if body is None:
            raise DeliveryError(f"{where} got a non-JSON answer (HTTP {status})", retryable=True)
        if code == 401:
            raise DeliveryError(
                f"{where} failed: Telegram rejected the bot token of channel {self.name!r} ({description}); "
                "check the token variable",
                retryable=False,
                kind="auth",
            )
        migrated = params.get("migrate_to_chat_id")
        if migrated is not None:
            raise DeliveryError(
                f"{where} failed: the group became supergroup {migrated}; set the destination to {migrated}",
                retryable=False,
                kind="chat_migrated",
            )
        if 400 <= code < 500:
            hint = _HINTS.get(code, "")
            kind = "chat_not_found" if "not found" in description.lower() else f"telegram_{code}"
            raise DeliveryError(f"{where} was refused by Telegram: {description}{hint}", retryable=False, kind=kind)
        raise DeliveryError(f"{where} got an unexpected answer (HTTP {status}: {description})", retryable=True)


_HINTS: Final = {
    400: " (check the chat id, and that the bot was added to the chat)",
    403: " (the bot was blocked, kicked, or may not post in this chat)",
    404: " (check the bot token and base_url)",
}


def _json_object(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        seconds = float(value) if isinstance(value, int | float | str) else math.nan
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
