"""Channels built from the config, checked at start (destinations, credentials present)."""

from __future__ import annotations

import ssl
from collections.abc import Mapping

from monitor.alerts.channels import Channel
from monitor.alerts.console import ConsoleChannel
from monitor.alerts.discord import DiscordChannel
from monitor.alerts.email import EmailChannel
from monitor.alerts.pagerduty import PagerDutyChannel
from monitor.alerts.slack import SlackChannel
from monitor.alerts.telegram import TelegramChannel
from monitor.alerts.webhook import WebhookChannel
from monitor.config.alerts import AlertsConfig, ChannelConfig
from monitor.errors import ConfigError


def build_channel(cfg: ChannelConfig, *, ssl_context: ssl.SSLContext | None = None) -> Channel:
    if cfg.type == "telegram":
        assert cfg.token is not None  # guaranteed by config validation
        return TelegramChannel(
            cfg.name, cfg.token.value, base_url=cfg.base_url, timeout=cfg.timeout_s,
            min_interval_per_chat_s=cfg.min_interval_s,
        )  # fmt: skip
    if cfg.type == "email":
        return EmailChannel(
            cfg.name, cfg.host, cfg.port, security=cfg.security,  # type: ignore[arg-type]
            sender=cfg.sender, username=cfg.username.value if cfg.username else None,
            password=cfg.password.value if cfg.password else None, timeout=cfg.timeout_s, ssl_context=ssl_context,
        )  # fmt: skip
    if cfg.type in ("webhook", "slack", "discord", "pagerduty"):
        return _webhook_channel(cfg)
    return ConsoleChannel(cfg.name)


def _webhook_channel(cfg: ChannelConfig) -> Channel:
    assert cfg.url is not None  # guaranteed by config validation
    if cfg.type == "pagerduty":
        assert cfg.token is not None
        return PagerDutyChannel(cfg.name, cfg.token.value, url=cfg.url.value, timeout=cfg.timeout_s,
                                min_interval_s=cfg.min_interval_s)  # fmt: skip
    url, display = cfg.url.value, cfg.url.display
    if cfg.type == "slack":
        return SlackChannel(cfg.name, url, display=display, timeout=cfg.timeout_s, min_interval_s=cfg.min_interval_s)
    if cfg.type == "discord":
        return DiscordChannel(cfg.name, url, display=display, username=cfg.display_name or None,
                              timeout=cfg.timeout_s, min_interval_s=cfg.min_interval_s)  # fmt: skip
    headers = {name: value.value for name, value in cfg.headers}
    secrets = (*cfg.url.secrets, *(s for _, value in cfg.headers for s in value.secrets))
    return WebhookChannel(
        cfg.name, url, display=display, secret=cfg.signing_secret.value if cfg.signing_secret else None,
        headers=headers, secrets=secrets, timeout=cfg.timeout_s, min_interval_s=cfg.min_interval_s,
    )  # fmt: skip


def build_channels(cfg: AlertsConfig, *, ssl_context: ssl.SSLContext | None = None) -> dict[str, Channel]:
    """Every configured channel; each route's destination is validated by its channel now,
    so a bad chat id or address fails at start, not at the first alert."""
    channels = {name: build_channel(c, ssl_context=ssl_context) for name, c in cfg.channels.items()}
    for i, route in enumerate(cfg.routes):
        channel = channels[route.channel]
        try:
            if route.to:
                channel.validate_destination(route.to)
        except ConfigError as exc:
            raise ConfigError(f"alerts.routes[{i}].to: {exc}") from None
    return channels


def channel_names(channels: Mapping[str, Channel]) -> str:
    return ", ".join(f"{n} ({type(c).__name__})" for n, c in channels.items())
