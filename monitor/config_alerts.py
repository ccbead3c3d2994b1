"""The ``alerts:`` and ``daemon:`` sections of the config, validated at load.

Channel problems (a missing token variable, a bad chat id, a bad SMTP port, a route to an
unknown channel) are errors at start, never at the first alert. Tokens and passwords come
only from environment variables named in the config (``token_env``, ``password_env``);
they are held in :class:`Secret`, which prints as ``<secret>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from monitor.config import _Validator

SEVERITY_NAMES: Final = ("watch", "warning", "critical", "liquidatable")
CHANNEL_TYPES: Final = ("telegram", "email", "console")
_CHAT_ID_RE: Final = re.compile(r"-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31}")
_EMAIL_RE: Final = re.compile(r"[^@\s,]+@[^@\s,]+\.[^@\s,]+")
_ENV_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9_-]*")

_ALERT_KEYS: Final = (
    "horizon_hours", "tolerances", "floors", "vol_floor", "exit_margin", "min_dwell_s", "repeat_interval_s",
    "target_hf", "channels", "routes", "oracle",
)  # fmt: skip
_LEVEL_KEYS: Final = ("watch", "warning", "critical")
_CHANNEL_KEYS: Final = {
    "telegram": ("type", "token_env", "base_url", "min_interval_s", "timeout_s"),
    "email": ("type", "host", "port", "security", "sender", "username_env", "password_env", "timeout_s"),
    "console": ("type",),
}
_ROUTE_KEYS: Final = ("channel", "to", "markets", "accounts", "min_severity", "anomalies")
_ORACLE_KEYS: Final = (
    "chainlink_feeds", "heartbeat_s", "stale_margin_s", "divergence_warning_bps", "divergence_critical_bps",
    "jump_z_warning", "jump_z_critical",
)  # fmt: skip
_DAEMON_KEYS: Final = ("mode", "interval_s", "deliver_interval_s", "max_attempts", "log_format", "metrics_port")


@dataclass(frozen=True, slots=True, repr=False)
class Secret:
    """A value read from the environment; never printed."""

    value: str
    env: str

    def __repr__(self) -> str:
        return f"Secret(${self.env}=<secret>)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    name: str
    type: str
    token: Secret | None = None
    base_url: str = "https://api.telegram.org"
    min_interval_s: float = 1.0
    timeout_s: float = 10.0
    host: str = ""
    port: int = 0
    security: str = "starttls"
    sender: str = ""
    username: Secret | None = None
    password: Secret | None = None


@dataclass(frozen=True, slots=True)
class RouteConfig:
    channel: str
    to: str
    markets: tuple[str, ...] | None
    accounts: tuple[str, ...] | None  # checksummed
    min_severity: str
    anomalies: bool

    def matches(self, market: str, account: str | None, severity: str) -> bool:
        if self.markets is not None and market not in self.markets:
            return False
        if account is None:  # an oracle anomaly
            return self.anomalies and severity_rank(severity) >= severity_rank(self.min_severity)
        if self.accounts is not None and account.lower() not in {a.lower() for a in self.accounts}:
            return False
        return severity_rank(severity) >= severity_rank(self.min_severity)


@dataclass(frozen=True, slots=True)
class OracleConfig:
    chainlink_feeds: Mapping[str, str] = field(default_factory=dict)
    heartbeat_s: float = 3600.0
    stale_margin_s: float = 300.0
    divergence_warning_bps: float = 100.0
    divergence_critical_bps: float = 300.0
    jump_z_warning: float = 6.0
    jump_z_critical: float = 10.0


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    horizon_hours: float = 1.0
    tolerances: tuple[float, float, float] = (0.001, 0.01, 0.05)  # P(HF<1 in horizon) entering watch, warning, critical
    floors: tuple[float, float, float] = (1.25, 1.10, 1.05)
    vol_floor: float = 1.0  # log-HF sigma never below this share of its long-run (1 y, real data) value
    exit_margin: float = 0.02
    min_dwell_s: float = 300.0
    repeat_interval_s: float = 6 * 3600.0
    target_hf: float = 1.5
    channels: Mapping[str, ChannelConfig] = field(
        default_factory=lambda: {"console": ChannelConfig("console", "console")}
    )
    routes: tuple[RouteConfig, ...] = (RouteConfig("console", "", None, None, "watch", True),)
    oracle: OracleConfig = field(default_factory=OracleConfig)

    def secrets(self) -> list[str]:
        return [s.value for c in self.channels.values() for s in (c.token, c.username, c.password) if s is not None]


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    mode: str = "block"  # "block": scan on each new block; "interval": every interval_s
    interval_s: float = 12.0  # block polling / scan interval
    deliver_interval_s: float = 2.0
    max_attempts: int = 50
    log_format: str = "json"
    metrics_port: int | None = None


def severity_rank(name: str) -> int:
    return ("ok", *SEVERITY_NAMES).index(name) if name in ("ok", *SEVERITY_NAMES) else 0


# --------------------------------------------------------------------------- parsing


def parse_alerts(v: _Validator, value: object, market_names: Sequence[str]) -> AlertsConfig:
    if value is None:
        return AlertsConfig()
    raw = v.mapping(value, "alerts", "a mapping")
    v.check_keys(raw, _ALERT_KEYS, "alerts")
    d = AlertsConfig()
    tolerances = _levels(v, raw.get("tolerances"), "alerts.tolerances", d.tolerances, probability=True)
    floors = _levels(v, raw.get("floors"), "alerts.floors", d.floors, probability=False)
    channels = _channels(v, raw.get("channels"))
    routes = _routes(v, raw.get("routes"), channels, market_names)
    return AlertsConfig(
        horizon_hours=_num(v, raw, "horizon_hours", "alerts", d.horizon_hours),
        tolerances=tolerances,
        floors=floors,
        vol_floor=_num(v, raw, "vol_floor", "alerts", d.vol_floor, allow_zero=True),
        exit_margin=_num(v, raw, "exit_margin", "alerts", d.exit_margin, allow_zero=True),
        min_dwell_s=_num(v, raw, "min_dwell_s", "alerts", d.min_dwell_s, allow_zero=True),
        repeat_interval_s=_num(v, raw, "repeat_interval_s", "alerts", d.repeat_interval_s),
        target_hf=_target(v, raw),
        channels=channels,
        routes=routes,
        oracle=_oracle(v, raw.get("oracle")),
    )


def parse_daemon(v: _Validator, value: object) -> DaemonConfig:
    if value is None:
        return DaemonConfig()
    raw = v.mapping(value, "daemon", "a mapping")
    v.check_keys(raw, _DAEMON_KEYS, "daemon")
    d = DaemonConfig()
    mode = raw.get("mode", d.mode)
    if mode not in ("block", "interval"):
        v.fail("daemon.mode", f"expected 'block' or 'interval', got {mode!r}")
    log_format = raw.get("log_format", d.log_format)
    if log_format not in ("json", "text"):
        v.fail("daemon.log_format", f"expected 'json' or 'text', got {log_format!r}")
    port = raw.get("metrics_port")
    return DaemonConfig(
        mode=mode,
        interval_s=_num(v, raw, "interval_s", "daemon", d.interval_s),
        deliver_interval_s=_num(v, raw, "deliver_interval_s", "daemon", d.deliver_interval_s),
        max_attempts=v.integer(raw.get("max_attempts", d.max_attempts), "daemon.max_attempts", 1),
        log_format=log_format,
        metrics_port=None if port is None else _port(v, port, "daemon.metrics_port"),
    )


def _num(v: _Validator, raw: Mapping[Any, Any], key: str, path: str, default: float, allow_zero: bool = False) -> float:
    if key not in raw:
        return default
    value = raw[key]
    if allow_zero and value == 0 and not isinstance(value, bool):
        return 0.0
    return v.positive_number(value, f"{path}.{key}")


def _target(v: _Validator, raw: Mapping[Any, Any]) -> float:
    target = _num(v, raw, "target_hf", "alerts", AlertsConfig().target_hf)
    if target <= 1.0:
        v.fail("alerts.target_hf", f"expected a health factor > 1, got {target:g}")
    return target


def _levels(
    v: _Validator, value: object, path: str, default: tuple[float, float, float], *, probability: bool
) -> tuple[float, float, float]:
    if value is None:
        return default
    raw = v.mapping(value, path, "a mapping with watch, warning, critical")
    v.check_keys(raw, _LEVEL_KEYS, path)
    out = tuple(
        v.positive_number(raw[k], f"{path}.{k}") if k in raw else d for k, d in zip(_LEVEL_KEYS, default, strict=True)
    )
    a, b, c = out
    if probability and not (0 < a < b < c < 1):
        v.fail(
            path,
            f"expected probabilities with 0 < watch < warning < critical < 1 (a higher liquidation probability is "
            f"more severe), got {a:g}, {b:g}, {c:g}",
        )
    if not probability and not (a > b > c > 1):
        v.fail(path, f"expected health factors with watch > warning > critical > 1, got {a:g}, {b:g}, {c:g}")
    return a, b, c


def _secret(v: _Validator, raw: Mapping[Any, Any], key: str, path: str, required: bool) -> Secret | None:
    if key not in raw:
        if required:
            v.fail(f"{path}.{key}", "required key is missing (the NAME of an environment variable holding the secret)")
        return None
    name = v.string(raw[key], f"{path}.{key}")
    if not _ENV_NAME_RE.fullmatch(name):
        v.fail(
            f"{path}.{key}", f"expected an environment variable name, got {name!r} (put the secret in the environment)"
        )
    secret = v.env.get(name)
    if not secret:
        v.fail(f"{path}.{key}", f"environment variable {name} is {'empty' if secret == '' else 'not set'}")
    return Secret(secret, name)


def _port(v: _Validator, value: object, path: str) -> int:
    port = v.integer(value, path, 1)
    if port > 65535:
        v.fail(path, f"expected a TCP port 1-65535, got {port}")
    return port


def _channels(v: _Validator, value: object) -> dict[str, ChannelConfig]:
    if value is None:
        return dict(AlertsConfig().channels)
    raw = v.mapping(value, "alerts.channels", "a mapping of channel name -> channel")
    out: dict[str, ChannelConfig] = {}
    for name, spec in raw.items():
        path = f"alerts.channels.{name}"
        v.name(name, path, _NAME_RE, "lowercase letters, digits, '_' and '-'")
        body = v.mapping(spec, path, "a mapping")
        kind = body.get("type")
        if kind not in CHANNEL_TYPES:
            v.fail(f"{path}.type", f"expected one of {', '.join(CHANNEL_TYPES)}, got {kind!r}")
        v.check_keys(body, _CHANNEL_KEYS[kind], path)
        out[name] = _channel(v, name, kind, body, path)
    return out


def _channel(v: _Validator, name: str, kind: str, body: Mapping[Any, Any], path: str) -> ChannelConfig:
    timeout = _num(v, body, "timeout_s", path, 10.0)
    if kind == "console":
        return ChannelConfig(name, kind)
    if kind == "telegram":
        base_url = v.string(body.get("base_url", "https://api.telegram.org"), f"{path}.base_url").rstrip("/")
        if not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", base_url):
            v.fail(f"{path}.base_url", f"expected an http(s) URL, got {base_url!r}")
        return ChannelConfig(
            name, kind, token=_secret(v, body, "token_env", path, required=True), base_url=base_url,
            min_interval_s=_num(v, body, "min_interval_s", path, 1.0, allow_zero=True), timeout_s=timeout,
        )  # fmt: skip
    v.required(body, ("host", "port", "sender"), path)
    security = body.get("security", "starttls")
    if security not in ("starttls", "ssl", "none"):
        v.fail(f"{path}.security", f"expected starttls, ssl or none, got {security!r}")
    sender = v.string(body["sender"], f"{path}.sender")
    if not _EMAIL_RE.fullmatch(sender):
        v.fail(f"{path}.sender", f"{sender!r} is not an email address")
    username = _secret(v, body, "username_env", path, required=False)
    password = _secret(v, body, "password_env", path, required=False)
    if (username is None) != (password is None):
        v.fail(path, "give both username_env and password_env, or neither")
    return ChannelConfig(
        name, kind, host=v.string(body["host"], f"{path}.host"), port=_port(v, body["port"], f"{path}.port"),
        security=security, sender=sender, username=username, password=password, timeout_s=timeout,
    )  # fmt: skip


def _routes(
    v: _Validator, value: object, channels: Mapping[str, ChannelConfig], market_names: Sequence[str]
) -> tuple[RouteConfig, ...]:
    if value is None:
        if set(channels) == {"console"}:
            return AlertsConfig().routes
        v.fail("alerts.routes", "required when channels are configured: say which channel receives what")
    items = v.sequence(value, "alerts.routes", "a list of routes")
    routes = []
    for i, item in enumerate(items):
        path = f"alerts.routes[{i}]"
        raw = v.mapping(item, path, "a mapping")
        v.check_keys(raw, _ROUTE_KEYS, path)
        v.required(raw, ("channel",), path)
        channel = v.string(raw["channel"], f"{path}.channel")
        if channel not in channels:
            v.fail(f"{path}.channel", f"unknown channel {channel!r} (channels: {', '.join(channels)})")
        kind = channels[channel].type
        to = "" if kind == "console" else _destination(v, raw, kind, f"{path}.to")
        markets = None
        if "markets" in raw:
            markets = tuple(
                v.string(m, f"{path}.markets[{j}]")
                for j, m in enumerate(v.sequence(raw["markets"], f"{path}.markets", "a list"))
            )
            for j, m in enumerate(markets):
                if m not in market_names:
                    v.fail(f"{path}.markets[{j}]", f"unknown market {m!r} (markets: {', '.join(market_names)})")
        accounts = None
        if "accounts" in raw:
            accounts = tuple(
                v.address(a, f"{path}.accounts[{j}]")
                for j, a in enumerate(v.sequence(raw["accounts"], f"{path}.accounts", "a list of addresses"))
            )
        severity = raw.get("min_severity", "warning")
        if severity not in SEVERITY_NAMES:
            v.fail(f"{path}.min_severity", f"expected one of {', '.join(SEVERITY_NAMES)}, got {severity!r}")
        anomalies = raw.get("anomalies", accounts is None)  # a wallet-only route gets anomalies only if asked
        if not isinstance(anomalies, bool):
            v.fail(f"{path}.anomalies", f"expected true or false, got {anomalies!r}")
        routes.append(RouteConfig(channel, to, markets, accounts, severity, anomalies))
    return tuple(routes)


def _destination(v: _Validator, raw: Mapping[Any, Any], kind: str, path: str) -> str:
    if "to" not in raw:
        v.fail(path, "required key is missing (a Telegram chat id, or email addresses)")
    value = raw["to"]
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else v.string(value, path)
    if kind == "telegram":
        if not _CHAT_ID_RE.fullmatch(text):
            v.fail(path, f"{text!r} is not a Telegram chat id (an integer such as -1001234567890, or @channelname)")
        return text
    addresses = [a.strip() for a in text.split(",")]
    for address in addresses:
        if not _EMAIL_RE.fullmatch(address):
            v.fail(path, f"{address!r} is not an email address")
    return ",".join(addresses)


def _oracle(v: _Validator, value: object) -> OracleConfig:
    if value is None:
        return OracleConfig()
    raw = v.mapping(value, "alerts.oracle", "a mapping")
    v.check_keys(raw, _ORACLE_KEYS, "alerts.oracle")
    feeds_raw = v.mapping(
        raw.get("chainlink_feeds", {}), "alerts.oracle.chainlink_feeds", "a mapping SYMBOL -> address"
    )
    feeds = {str(k).upper(): v.address(a, f"alerts.oracle.chainlink_feeds.{k}") for k, a in feeds_raw.items()}
    d = OracleConfig()
    out = OracleConfig(
        chainlink_feeds=feeds,
        heartbeat_s=_num(v, raw, "heartbeat_s", "alerts.oracle", d.heartbeat_s),
        stale_margin_s=_num(v, raw, "stale_margin_s", "alerts.oracle", d.stale_margin_s, allow_zero=True),
        divergence_warning_bps=_num(v, raw, "divergence_warning_bps", "alerts.oracle", d.divergence_warning_bps),
        divergence_critical_bps=_num(v, raw, "divergence_critical_bps", "alerts.oracle", d.divergence_critical_bps),
        jump_z_warning=_num(v, raw, "jump_z_warning", "alerts.oracle", d.jump_z_warning),
        jump_z_critical=_num(v, raw, "jump_z_critical", "alerts.oracle", d.jump_z_critical),
    )
    if out.divergence_critical_bps <= out.divergence_warning_bps:
        v.fail("alerts.oracle.divergence_critical_bps", "must be larger than divergence_warning_bps")
    return out
