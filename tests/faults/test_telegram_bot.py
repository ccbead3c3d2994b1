"""The Telegram bot (issue 16 part 3) against the local Bot API peer, which implements getUpdates:
/start answers with the chat id, /watch /unwatch /list /status /mute round trip, a chat not on the
allow-list is refused (and let in by the invite code), subscriptions survive a restart (stored,
offset kept), and a subscription routes its wallet's alerts to its chat through the daemon."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from monitor.alerts.factory import build_channels
from monitor.alerts.telegram_bot import TelegramBot, parse_duration, start_bot
from monitor.config import Config, parse_config
from monitor.service import Monitor
from monitor.store import Store
from tests.support_peers import TELEGRAM_TEST_TOKEN, TelegramServer
from tests.unit.test_messages import SNAP as MESSAGE_SNAP
from tests.unit.test_messages import TREASURY

ALLOWED, STRANGER, INVITED = 111_111, 222_222, 333_333
INVITE = "let-me-in-2026"
# the message tests' snapshot (TREASURY at HF ~1.09), its positions pinned to its block for the store
SNAP = replace(MESSAGE_SNAP, positions=tuple(replace(p, block=MESSAGE_SNAP.block) for p in MESSAGE_SNAP.positions))


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def peer() -> Iterator[TelegramServer]:
    with TelegramServer() as server:
        yield server


def _config(tmp_path: Path, base_url: str, **bot: Any) -> Config:
    raw = {
        "chains": {"ethereum": {"chain_id": 1, "rpc_urls": ["http://127.0.0.1:9"]}},
        "markets": [{"name": "aave-v3", "protocol": "aave_v3", "chain": "ethereum",
                     "pool_addresses_provider": "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e",
                     "accounts": ["0x000000000000000000000000000000000000dEaD"]}],
        "store": {"path": str(tmp_path / "h.db")},
        "alerts": {
            "channels": {"tg": {"type": "telegram", "token_env": "TG_TOKEN", "base_url": base_url,
                                "min_interval_s": 0}},
            "routes": [{"channel": "tg", "to": "-100999", "min_severity": "critical"}],
            "telegram_bot": {"enabled": True, "allowed_chats": [ALLOWED], "invite_code_env": "BOT_INVITE",
                             "poll_timeout_s": 0, "min_severity": "watch", **bot},
        },
    }  # fmt: skip
    return parse_config(raw, tmp_path / "c.yaml", env={"TG_TOKEN": TELEGRAM_TEST_TOKEN, "BOT_INVITE": INVITE})


def _say(peer: TelegramServer, bot: TelegramBot, chat: int, text: str) -> str:
    before = len(peer.messages)
    peer.push_update(chat, text)
    assert bot.poll_once(timeout=0) == 1
    replies = peer.wait_for(before + 1)
    assert str(replies[-1].chat_id) == str(chat)
    return replies[-1].plain


def test_commands_round_trip_for_an_allowed_chat(tmp_path: Path, peer: TelegramServer) -> None:
    clock = Clock()
    config = _config(tmp_path, peer.base_url)
    with Store(config.store.path) as store:
        bot = TelegramBot(config, store, clock=clock)
        start = _say(peer, bot, ALLOWED, "/start")
        assert f"id is {ALLOWED}" in start and "/watch" in start
        assert "Usage" in _say(peer, bot, ALLOWED, "/watch 0x123")
        assert "Watching treasury" in _say(peer, bot, ALLOWED, f"/watch {TREASURY} treasury")
        assert TREASURY in _say(peer, bot, ALLOWED, "/list")
        routes = bot.routes()
        assert [(r.channel, r.to, r.accounts, r.min_severity) for r in routes] == [
            ("tg", str(ALLOWED), (TREASURY,), "watch")
        ]
        assert "Muted for 6 h" in _say(peer, bot, ALLOWED, "/mute 6h")
        assert bot.routes() == (), "a muted chat gets no route"
        clock.t += 6 * 3600 + 1
        assert len(bot.routes()) == 1, "the mute ends by itself"
        assert "Unmuted" in _say(peer, bot, ALLOWED, "/unmute")
        assert "Unknown command /foo" in _say(peer, bot, ALLOWED, "/foo")
        assert "Stopped watching" in _say(peer, bot, ALLOWED, f"/unwatch {TREASURY.lower()}")
        assert "No wallets yet" in _say(peer, bot, ALLOWED, "/list")
        assert store.bot_offset() == 10, "9 updates, every one confirmed (offset = last update_id + 1)"
        bot.close()


def test_a_chat_not_on_the_allow_list_is_refused_and_the_invite_code_lets_it_in(
    tmp_path: Path, peer: TelegramServer
) -> None:
    config = _config(tmp_path, peer.base_url)
    with Store(config.store.path) as store:
        bot = TelegramBot(config, store)
        refused = _say(peer, bot, STRANGER, "/start")
        assert f"(id {STRANGER}) may not use this bot" in refused and "allowed_chats" in refused
        assert "may not use" in _say(peer, bot, STRANGER, f"/watch {TREASURY}")
        assert "may not use" in _say(peer, bot, STRANGER, "/status")
        assert store.bot_watches() == [] and bot.routes() == ()
        assert "may not use" in _say(peer, bot, STRANGER, "/start wrong-code-xx")
        assert f"id is {INVITED}" in _say(peer, bot, INVITED, f"/start {INVITE}")
        assert "Watching" in _say(peer, bot, INVITED, f"/watch {TREASURY}")
        assert [r.to for r in bot.routes()] == [str(INVITED)]
        bot.close()
    with Store(config.store.path) as store:  # a restart: subscriptions and the offset are kept
        bot = TelegramBot(config, store)
        assert [r.to for r in bot.routes()] == [str(INVITED)]
        assert bot.poll_once(timeout=0) == 0, "nothing handled twice after a restart"
        bot.close()


def test_status_shows_hf_level_and_liquidation_price(tmp_path: Path, peer: TelegramServer) -> None:
    config = _config(tmp_path, peer.base_url)
    with Store(config.store.path) as store:
        store.save_snapshot(SNAP)
        bot = TelegramBot(config, store)
        _say(peer, bot, ALLOWED, f"/watch {TREASURY} treasury")
        status = _say(peer, bot, ALLOWED, "/status")
        assert "treasury" in status and "aave-v3" in status and "HF 1.0" in status, status
        assert "liquidated if WETH falls to" in status and f"block {SNAP.block}" in status, status
        bot.close()


def test_a_subscription_routes_its_wallets_alerts_to_its_chat_through_the_daemon(
    tmp_path: Path, peer: TelegramServer
) -> None:
    config = _config(tmp_path, peer.base_url, min_severity="watch")
    with Store(config.store.path) as store:
        bot = TelegramBot(config, store)
        _say(peer, bot, ALLOWED, f"/watch {TREASURY} treasury")
        before = len(peer.messages)
        monitor = Monitor(config, store, build_channels(config.alerts))
        store.save_snapshot(SNAP)
        result = monitor.assess(SNAP, [])
        assert any(a.account == TREASURY and a.severity != "ok" for a in result.assessments)
        monitor.deliver()
        sent = [m for m in peer.messages[before:] if str(m.chat_id) == str(ALLOWED)]
        assert sent and "treasury" in sent[0].plain
        bot.close()


def test_the_daemon_thread_polls_and_stops(tmp_path: Path, peer: TelegramServer) -> None:
    config = _config(tmp_path, peer.base_url)
    stop = threading.Event()
    peer.push_update(ALLOWED, "/start")
    thread = start_bot(config, stop)
    assert thread is not None
    try:
        replies = peer.wait_for(1, timeout=10)
        assert f"id is {ALLOWED}" in replies[0].plain
    finally:
        stop.set()
        thread.join(timeout=15)
    assert not thread.is_alive()


def test_durations() -> None:
    assert parse_duration("30m") == 1800 and parse_duration("6h") == 21600 and parse_duration("2d") == 172800
    assert parse_duration("6") == 21600
    assert parse_duration("0h") is None and parse_duration("99d") is None and parse_duration("soon") is None
