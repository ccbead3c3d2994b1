"""A Telegram bot people subscribe through: the daemon long-polls ``getUpdates`` and answers

- ``/start [invite code]``: the chat id and the commands (a chat not on the allow-list is told
  how to be let in, and nothing else);
- ``/watch 0x... [label]``, ``/unwatch 0x...``, ``/list``;
- ``/status``: each watched position's HF, severity and level in force, liquidation price;
- ``/mute 6h`` / ``/unmute``.

Subscriptions live in the store (:mod:`monitor.store.bot`) and become routes
(:meth:`TelegramBot.routes`) that the daemon adds to the configured ones, so a subscribed chat
gets its wallets' alerts through the same pipeline, outbox and retries as any route. Every
answer from the Bot API is checked before use; a failed poll is logged, never fatal.
"""

from __future__ import annotations

import hmac
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import requests
from eth_utils import is_address, to_checksum_address

from monitor.alerts.advice import advise, positions_by_account
from monitor.alerts.render import hf_text, short_address, usd_text
from monitor.config import Config
from monitor.config.alerts import AlertsConfig, RouteConfig
from monitor.errors import MonitorError
from monitor.models import MarketSnapshot
from monitor.store import Store

log = logging.getLogger("liqmon")

HELP = (
    "Commands:\n"
    "/watch 0x... [label] - alerts for this wallet here\n"
    "/unwatch 0x... - stop\n"
    "/list - the wallets this chat watches\n"
    "/status - health factor, level and liquidation price now\n"
    "/mute 6h - no alerts here for a while (/unmute ends it)"
)
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(m|min|h|d)?", re.IGNORECASE)
_UNIT_S = {"m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, None: 3600.0}
MAX_MUTE_S = 30 * 86400.0


def parse_duration(text: str) -> float | None:
    """``30m``, ``6h``, ``2d``, ``6`` (hours): seconds, or None when it is not a duration."""
    match = _DURATION_RE.fullmatch(text.strip())
    if match is None:
        return None
    value = float(match.group(1)) * _UNIT_S[match.group(2).lower() if match.group(2) else None]
    return value if 0 < value <= MAX_MUTE_S else None


class TelegramBot:
    """The bot of ``config.alerts.bot`` (token and base URL from its telegram channel)."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        session: requests.Session | None = None,
    ) -> None:
        self.config = config
        self.cfg = config.alerts.bot
        channel = config.alerts.channels[self.cfg.channel]
        if channel.token is None:
            raise MonitorError(f"alerts.telegram_bot.channel {self.cfg.channel!r} has no bot token")
        self._token = channel.token.value
        self.base_url = (channel.base_url or "https://api.telegram.org").rstrip("/")
        self.timeout = channel.timeout_s
        self.store = store
        self.clock = clock
        self._session = session or requests.Session()
        self.handled = 0

    def close(self) -> None:
        self._session.close()

    # -- the Bot API ------------------------------------------------------------------------

    def _call(self, method: str, payload: Mapping[str, Any], timeout: float) -> Any:
        url = f"{self.base_url}/bot{self._token}/{method}"
        try:
            response = self._session.post(url, json=dict(payload), timeout=timeout)
        except requests.RequestException as exc:  # the URL holds the token: never quoted
            raise MonitorError(f"Telegram {method} failed ({type(exc).__name__})") from None
        try:
            body = response.json()
        except ValueError:
            raise MonitorError(f"Telegram {method}: HTTP {response.status_code}, not JSON") from None
        if not isinstance(body, dict) or body.get("ok") is not True:
            description = body.get("description") if isinstance(body, dict) else None
            raise MonitorError(f"Telegram {method}: HTTP {response.status_code} {str(description or '')[:200]}")
        return body.get("result")

    def reply(self, chat_id: str, text: str) -> None:
        try:
            self._call("sendMessage", {"chat_id": int(chat_id), "text": text[:4000],
                                       "disable_web_page_preview": True}, self.timeout)  # fmt: skip
        except MonitorError as exc:
            log.warning("telegram bot reply failed", extra={"chat": chat_id, "error": str(exc)})

    def poll_once(self, timeout: float | None = None) -> int:
        """One ``getUpdates`` (long-polled ``timeout`` seconds); every update handled and its
        offset stored after it. Returns the updates handled; a failed poll is logged, 0."""
        wait = self.cfg.poll_timeout_s if timeout is None else timeout
        offset = self.store.bot_offset()
        try:
            result = self._call("getUpdates", {"offset": offset, "timeout": int(wait), "allowed_updates": ["message"]},
                                self.timeout + wait)  # fmt: skip
        except MonitorError as exc:
            log.warning("telegram bot poll failed", extra={"error": str(exc)})
            return 0
        if not isinstance(result, list):
            log.warning("telegram bot poll: result is not a list; ignored")
            return 0
        updates = sorted((u for u in result if isinstance(u, dict) and isinstance(u.get("update_id"), int)),
                         key=lambda u: u["update_id"])  # fmt: skip
        count = 0
        for update in updates:
            if update["update_id"] < offset:
                continue  # an answer to another question: already handled
            self.handle(update)
            self.store.set_bot_offset(update["update_id"] + 1)
            count += 1
        self.handled += count
        return count

    # -- commands ---------------------------------------------------------------------------

    def handle(self, update: Mapping[str, Any]) -> str | None:
        """Answer one update (a message with a /command); returns the reply sent, if any."""
        message = update.get("message")
        if not isinstance(message, dict):
            return None
        chat = message.get("chat")
        text = message.get("text")
        if not isinstance(chat, dict) or not isinstance(chat.get("id"), int) or not isinstance(text, str):
            return None
        chat_id = str(chat["id"])
        words = text.strip().split()
        if not words or not words[0].startswith("/"):
            return None
        command = words[0][1:].split("@", 1)[0].lower()
        args = words[1:]
        answer = self._answer(chat_id, str(chat.get("title") or chat.get("username") or ""), command, args)
        self.reply(chat_id, answer)
        return answer

    def _allowed(self, chat_id: str) -> bool:
        if chat_id in self.cfg.allowed_chats:
            return True
        row = self.store.bot_chat(chat_id)
        return bool(row and row["allowed"])

    def _answer(self, chat_id: str, title: str, command: str, args: Sequence[str]) -> str:
        if command == "start":
            code = args[0] if args else ""
            invited = bool(self.cfg.invite_code and code and hmac.compare_digest(code, self.cfg.invite_code))
            allowed = self._allowed(chat_id) or invited
            self.store.bot_join(chat_id, allowed=allowed, title=title)
            if not allowed:
                return self._refused(chat_id)
            return f"liqmon alerts bot. This chat's id is {chat_id}.\n{HELP}"
        if not self._allowed(chat_id):
            self.store.bot_join(chat_id, allowed=False, title=title)
            return self._refused(chat_id)
        self.store.bot_join(chat_id, allowed=True, title=title)
        handlers: dict[str, Callable[[str, Sequence[str]], str]] = {
            "watch": self._watch, "unwatch": self._unwatch, "list": self._list, "status": self._status,
            "mute": self._mute, "unmute": self._unmute, "help": self._help,
        }  # fmt: skip
        handler = handlers.get(command)
        return handler(chat_id, args) if handler else f"Unknown command /{command}.\n{HELP}"

    def _help(self, chat_id: str, args: Sequence[str]) -> str:
        return HELP

    def _refused(self, chat_id: str) -> str:
        how = " or send /start <invite code>" if self.cfg.invite_code else ""
        return (f"This chat (id {chat_id}) may not use this bot. Ask its operator to add {chat_id} to "
                f"alerts.telegram_bot.allowed_chats{how}.")  # fmt: skip

    def _watch(self, chat_id: str, args: Sequence[str]) -> str:
        if not args or not is_address(args[0]):
            return "Usage: /watch 0x<40 hex digits> [label]"
        account = to_checksum_address(args[0])
        label = " ".join(args[1:])[:40]
        current = self.store.bot_watches(chat_id)
        known = any(w["account"].lower() == account.lower() for w in current)
        if not known and len(current) >= self.cfg.max_watches_per_chat:
            return f"This chat already watches {len(current)} wallets (the limit): /unwatch one first."
        self.store.bot_watch(chat_id, account, label)
        for market in self.config.markets:
            self.store.add_accounts(market.name, [(account, 0)], "watchlist")
        name = f"{label} ({short_address(account)})" if label else short_address(account)
        return (f"Watching {name}: {self.cfg.min_severity} and worse alerts come here, and a message when it "
                "recovers. /status shows it now.")  # fmt: skip

    def _unwatch(self, chat_id: str, args: Sequence[str]) -> str:
        if not args or not is_address(args[0]):
            return "Usage: /unwatch 0x<40 hex digits>"
        if self.store.bot_unwatch(chat_id, to_checksum_address(args[0])):
            return f"Stopped watching {short_address(to_checksum_address(args[0]))}."
        return "This chat does not watch that wallet (/list)."

    def _list(self, chat_id: str, args: Sequence[str]) -> str:
        watches = self.store.bot_watches(chat_id)
        if not watches:
            return "No wallets yet: /watch 0x... [label]"
        lines = [f"{w['account']}{'  ' + w['label'] if w['label'] else ''}" for w in watches]
        muted = watches[0]["muted_until"]
        if muted and muted > self.clock():
            lines.append(f"muted for {_left(muted - self.clock())} (/unmute)")
        return "\n".join(lines)

    def _status(self, chat_id: str, args: Sequence[str]) -> str:
        watches = self.store.bot_watches(chat_id)
        if not watches:
            return "No wallets yet: /watch 0x... [label]"
        markets = []  # each market's newest stored snapshot and alert states, read once for all wallets
        for market in self.config.markets:
            try:
                snapshot = self.store.load_snapshot(market.name)
            except MonitorError:
                continue  # nothing stored yet for it
            states = {k.lower(): v for k, v in self.store.alert_states(market.name).items()}
            markets.append((market.name, snapshot, states))
        lines: list[str] = []
        for w in watches:
            lines += self._status_lines(w["account"], w["label"], markets)
        return "\n".join(lines)

    def _status_lines(
        self, account: str, label: str, markets: Sequence[tuple[str, MarketSnapshot, Mapping[str, Any]]]
    ) -> list[str]:
        name = f"{label} ({short_address(account)})" if label else short_address(account)
        found: list[str] = []
        for market, snapshot, states in markets:
            position = positions_by_account(snapshot).get(account.lower())
            if position is None or position.total_debt_base == 0:
                continue
            hf = position.health_factor / 1e18
            severity = str(states.get(account.lower(), {}).get("severity") or "ok")
            level = _level(self.store, market, account)
            text = f"{name} · {market}: HF {hf_text(hf)}, {severity}"
            if level is not None:
                text += f" (level {level:.2f})"
            liq = advise(snapshot, account, self.config.alerts.target_hf).liquidation
            if liq is not None and liq.current:
                verb = "falls" if liq.direction < 0 else "rises"
                text += f"; liquidated if {liq.symbol} {verb} to {usd_text(liq.price)} ({liq.move:+.1f} %)"
            found.append(text + f" · block {snapshot.block}")
        return found or [f"{name}: no open borrow position stored (yet)"]

    def _mute(self, chat_id: str, args: Sequence[str]) -> str:
        seconds = parse_duration(args[0]) if args else 6 * 3600.0
        if seconds is None:
            return "Usage: /mute 30m | 6h | 2d (at most 30 days)"
        self.store.bot_mute(chat_id, self.clock() + seconds)
        return f"Muted for {_left(seconds)}: alerts are still recorded; /unmute to hear them again."

    def _unmute(self, chat_id: str, args: Sequence[str]) -> str:
        self.store.bot_mute(chat_id, None)
        return "Unmuted."

    # -- routes -----------------------------------------------------------------------------

    def routes(self, now: float | None = None) -> tuple[RouteConfig, ...]:
        """One route per subscribed chat (its wallets, the bot's minimum severity), muted chats left out."""
        return bot_routes(self.config, self.store, self.clock() if now is None else now)


def bot_routes(
    config: Config, store: Store, now: float, watches: Sequence[Mapping[str, Any]] | None = None
) -> tuple[RouteConfig, ...]:
    """The subscription routes without a running bot (what the daemon adds each tick);
    ``watches``: ``store.bot_watches()`` when the caller has read them already."""
    if not config.alerts.bot.enabled:
        return ()
    cfg = config.alerts.bot
    by_chat: dict[str, list[str]] = {}
    for w in store.bot_watches() if watches is None else watches:
        if not (w["muted_until"] and w["muted_until"] > now):
            by_chat.setdefault(w["chat_id"], []).append(to_checksum_address(w["account"]))
    return tuple(RouteConfig(cfg.channel, chat, None, tuple(a), cfg.min_severity, False) for chat, a in by_chat.items())


def _level(store: Store, market: str, account: str) -> float | None:
    """The level of the newest alert of ``account`` in ``market`` that had one."""
    for row in reversed(store.alerts(market=market, subject=account)):
        threshold = row.get("threshold")
        if threshold is not None and math.isfinite(float(threshold)):
            return float(threshold)
    return None


def _left(seconds: float) -> str:
    hours = seconds / 3600.0
    return f"{hours:.0f} h" if hours >= 1 else f"{seconds / 60:.0f} min"


def with_bot_routes(config: Config, store: Store, now: float) -> AlertsConfig:
    """``config.alerts`` with the bot's subscription routes added and the labels subscribers gave
    their wallets (a label in the config wins); itself when the bot is off or nobody subscribed."""
    if not config.alerts.bot.enabled:
        return config.alerts
    watches = store.bot_watches()  # read once a tick: the routes and the labels
    extra = bot_routes(config, store, now, watches)
    if not extra:
        return config.alerts
    messages = config.alerts.messages
    given = {w["account"].lower(): w["label"] for w in watches if w["label"]}
    labels = {**given, **messages.labels}
    return replace(config.alerts, routes=(*config.alerts.routes, *extra), messages=replace(messages, labels=labels))


def run_bot(config: Config, stop: threading.Event, *, clock: Callable[[], float] = time.time) -> None:
    """The daemon's bot loop (its own thread and database connection) until ``stop`` is set."""
    with Store(config.store.path) as store:
        bot = TelegramBot(config, store, clock=clock)
        log.info("telegram bot polling", extra={"channel": config.alerts.bot.channel,
                                                 "allowed_chats": len(config.alerts.bot.allowed_chats)})  # fmt: skip
        try:
            while not stop.is_set():
                try:
                    handled = bot.poll_once()
                except Exception as exc:  # the bot never takes the daemon down
                    log.error("telegram bot failed", extra={"error": type(exc).__name__})
                    handled = -1
                if handled < 0 or (handled == 0 and config.alerts.bot.poll_timeout_s == 0):
                    stop.wait(5.0)
        finally:
            bot.close()


def start_bot(config: Config, stop: threading.Event) -> threading.Thread | None:
    """Start :func:`run_bot` in a daemon thread when ``alerts.telegram_bot`` is enabled."""
    if not config.alerts.bot.enabled:
        return None
    thread = threading.Thread(target=run_bot, args=(config, stop), name="liqmon-telegram-bot", daemon=True)
    thread.start()
    return thread
