"""``alerts.telegram_bot``: a Telegram bot people subscribe through (``/watch 0x...``).

::

    alerts:
      telegram_bot:
        enabled: true
        channel: telegram            # the telegram channel whose token / base_url the bot uses
        allowed_chats: [123456789]   # chats that may use it at once ...
        invite_code_env: LIQMON_BOT_INVITE   # ... and others after `/start <code>` (code from the env)
        poll_timeout_s: 20           # getUpdates long-poll
        min_severity: warning        # what a subscription receives
        max_watches_per_chat: 20

Without ``allowed_chats`` and ``invite_code_env`` nobody can use the bot (it answers /start with the
chat id only, so an operator can allow it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from monitor.config.validate import Validator

SEVERITIES: Final = ("watch", "warning", "critical")
_KEYS: Final = ("enabled", "channel", "allowed_chats", "invite_code_env", "poll_timeout_s", "min_severity",
                "max_watches_per_chat")  # fmt: skip


@dataclass(frozen=True, slots=True, repr=False)
class BotConfig:
    enabled: bool = False
    channel: str = ""
    allowed_chats: frozenset[str] = frozenset()
    invite_code: str | None = None  # from the environment; never printed
    invite_code_env: str = ""
    poll_timeout_s: float = 20.0
    min_severity: str = "warning"
    max_watches_per_chat: int = 20

    def __repr__(self) -> str:
        code = "<secret>" if self.invite_code else None
        return f"BotConfig(enabled={self.enabled}, channel={self.channel!r}, invite_code={code})"


def parse_bot(v: Validator, value: object, channels: Mapping[str, Any]) -> BotConfig:
    """Validate ``alerts.telegram_bot`` (``channels``: the parsed ``alerts.channels``)."""
    if value is None:
        return BotConfig()
    path = "alerts.telegram_bot"
    raw = v.mapping(value, path, "a mapping with enabled, channel, allowed_chats, invite_code_env, ...")
    v.check_keys(raw, _KEYS, path)
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        v.fail(f"{path}.enabled", f"expected true or false, got {enabled!r}")
    if not enabled:
        return BotConfig()
    telegram = [name for name, c in channels.items() if getattr(c, "type", "") == "telegram"]
    channel = raw.get("channel", telegram[0] if len(telegram) == 1 else None)
    if channel is None:
        v.fail(f"{path}.channel", f"name the telegram channel the bot uses (telegram channels: {telegram or 'none'})")
    if channel not in telegram:
        v.fail(f"{path}.channel", f"{channel!r} is not a telegram channel of alerts.channels ({telegram or 'none'})")
    chats = v.sequence(raw.get("allowed_chats", []), f"{path}.allowed_chats", "a list of chat ids")
    allowed = set()
    for i, chat in enumerate(chats):
        text = str(chat).strip()
        if isinstance(chat, bool) or not text.lstrip("-").isdigit():
            v.fail(f"{path}.allowed_chats[{i}]", f"expected a numeric chat id (/start tells it), got {chat!r}")
        allowed.add(text)
    code_env = raw.get("invite_code_env", "")
    code: str | None = None
    if code_env:
        name = v.string(code_env, f"{path}.invite_code_env")
        code = v.env.get(name) or None
        if code is None:
            v.fail(f"{path}.invite_code_env", f"environment variable {name} is not set")
        if len(code) < 8:
            v.fail(f"{path}.invite_code_env", f"the invite code in {name} is shorter than 8 characters: guessable")
    severity = raw.get("min_severity", "warning")
    if severity not in SEVERITIES:
        v.fail(f"{path}.min_severity", f"expected one of {', '.join(SEVERITIES)}, got {severity!r}")
    return BotConfig(
        enabled=True, channel=str(channel), allowed_chats=frozenset(allowed), invite_code=code,
        invite_code_env=str(code_env), min_severity=str(severity),
        poll_timeout_s=v.bounded_number(raw.get("poll_timeout_s", 20.0), f"{path}.poll_timeout_s", 0, 50),
        max_watches_per_chat=v.bounded_integer(raw.get("max_watches_per_chat", 20), f"{path}.max_watches_per_chat",
                                               1, 1000),
    )  # fmt: skip
