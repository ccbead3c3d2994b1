"""The ``alerts:`` and ``daemon:`` sections of the config, validated at load.

``alerts.policy`` is the threshold policy (:class:`monitor.risk.policy.PolicyConfig`): the
same section drives ``liqmon run``, ``scan``, the messages and ``liqmon backtest``
(:func:`policy_config`). The keys of the old lognormal rule (``horizon_hours``,
``tolerances``, ``floors``, ``vol_floor``) are refused with what replaced them.

Channel problems (a missing token variable, a bad chat id, a bad SMTP port, a route to an
unknown channel) are errors at start, never at the first alert. Tokens and passwords come
only from environment variables named in the config (``token_env``, ``password_env``);
they are held in :class:`Secret`, which prints as ``<secret>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from monitor.config.bot import BotConfig, parse_bot
from monitor.config.messages import MessageConfig, parse_messages
from monitor.config.validate import Validator
from monitor.errors import InputError
from monitor.risk.anomalies import DEFAULT_FLOATING, DEFAULT_PEGGED, FEED_KINDS, FeedSpec, feed_spec
from monitor.risk.policy import OptTriple, PolicyConfig, PolicyOverride

SEVERITY_NAMES: Final = ("watch", "warning", "critical", "liquidatable")
CHANNEL_TYPES: Final = ("telegram", "email", "console", "webhook", "slack", "discord", "pagerduty")
# post where their URL points: routes have no `to`
WEBHOOK_TYPES: Final = ("webhook", "slack", "discord", "pagerduty")
PAGERDUTY_URL: Final = "https://events.pagerduty.com/v2/enqueue"
_CHAT_ID_RE: Final = re.compile(r"-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31}")
_EMAIL_RE: Final = re.compile(r"[^@\s,]+@[^@\s,]+\.[^@\s,]+")
_ENV_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9_-]*")

_ALERT_KEYS: Final = (
    "policy", "exit_margin", "min_dwell_s", "repeat_interval_s", "target_hf", "channels", "routes", "oracle",
    "accounts", "markets",
    "grouping", "labels", "links", "templates", "telegram_bot",
)  # fmt: skip
_GROUPING_KEYS: Final = ("group_wait_s", "repeat_interval_s", "max_per_message")
# keys of the old lognormal rule: refused with what replaced them (their meaning changed)
_REMOVED_ALERT_KEYS: Final = {
    "floors": "fixed floors were removed: they bound every position on every date. Levels now come from "
    "alerts.policy (expected cost per position); to keep fixed levels set them explicitly as "
    "alerts.policy.hard_levels: {watch: 1.25, warning: 1.10, critical: 1.05}",
    "tolerances": "removed: the probability at which each severity starts now follows from costs "
    "(alerts.policy.alarm_cost_usd against each position's liquidation penalty)",
    "horizon_hours": "moved: set alerts.policy.reaction_hours (one number, or per severity "
    "{watch: 72, warning: 24, critical: 4})",
    "vol_floor": "removed: the long-run volatility is blended into today's by alerts.policy.long_run_weight",
}
_POLICY_KEYS: Final = (
    "reaction_hours", "alarm_cost_usd", "min_probability", "max_probability", "hard_levels", "market_levels",
    "account_levels", "close_factor",
    "exit_margin", "min_dwell_s", "ewma_lambda", "long_run_weight", "long_run_days", "pool_days", "block_hours",
    "paths", "seed", "composition_grid", "tail_share", "cascade_move", "utilisation_knee", "recompute_vol_change",
    "recompute_after_s", "recompute_debt_change",
)  # fmt: skip
_POLICY_ZERO_OK: Final = frozenset(
    {"exit_margin", "min_dwell_s", "long_run_weight", "cascade_move", "utilisation_knee", "recompute_vol_change",
     "recompute_debt_change"}
)  # fmt: skip
_POLICY_INTS: Final = frozenset({"paths", "seed"})
_LEVEL_KEYS: Final = ("watch", "warning", "critical")
_CHANNEL_KEYS: Final = {
    "telegram": ("type", "token_env", "base_url", "min_interval_s", "timeout_s"),
    "email": ("type", "host", "port", "security", "sender", "username_env", "password_env", "timeout_s"),
    "console": ("type",),
    "webhook": ("type", "url", "secret_env", "headers", "min_interval_s", "timeout_s"),
    "slack": ("type", "url", "min_interval_s", "timeout_s"),
    "discord": ("type", "url", "username", "min_interval_s", "timeout_s"),
    "pagerduty": ("type", "routing_key_env", "url", "min_interval_s", "timeout_s"),
}
_ENV_REF_RE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HEADER_NAME_RE: Final = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_CREDENTIAL_HEADER_RE: Final = re.compile(r"auth|token|key|secret|cookie|password|signature", re.IGNORECASE)
_ROUTE_KEYS: Final = (
    "channel", "to", "markets", "accounts", "min_severity", "anomalies", "hard_levels", "levels", "policy",
)  # fmt: skip
# alerts.accounts.<address> / alerts.markets.<name>: own levels (hard HF floors) and policy knobs
_ACCOUNT_KEYS: Final = ("label", "levels", "policy")
_MARKET_OVERRIDE_KEYS: Final = ("levels", "policy")
_KNOB_KEYS: Final = ("reaction_hours", "alarm_cost_usd", "probability", "min_probability", "max_probability")
_ORACLE_KEYS: Final = (
    "chainlink_feeds", "heartbeat_s", "stale_margin_s", "divergence_warning_bps", "divergence_critical_bps",
    "jump_z_warning", "jump_z_critical", "feeds", "resolve_dwell_blocks", "resolve_dwell_s", "exit_band",
)  # fmt: skip
_FEED_KEYS: Final = ("kind", "deviation", "heartbeat_s", "peg")
_DAEMON_KEYS: Final = ("mode", "interval_s", "deliver_interval_s", "max_attempts", "log_format", "metrics_port",
                       "reconcile_sample", "reconcile_all_every", "catch_up_blocks")  # fmt: skip


@dataclass(frozen=True, slots=True, repr=False)
class Secret:
    """A value read from the environment; never printed."""

    value: str
    env: str

    def __repr__(self) -> str:
        return f"Secret(${self.env}=<secret>)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True, repr=False)
class SecretText:
    """A config string with ``${NAME}`` references expanded from the environment (a webhook
    URL, a header value): ``value`` is what is sent, ``display`` what may be printed (each
    expanded part, or the whole value, as ``<secret>``), ``secrets`` the parts to redact."""

    value: str
    display: str
    secrets: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return repr(self.display)

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
    url: SecretText | None = None  # webhook, slack, discord
    signing_secret: Secret | None = None  # webhook: HMAC-SHA256 key
    headers: tuple[tuple[str, SecretText], ...] = ()  # webhook: extra headers
    display_name: str = ""  # discord: the name the webhook posts as


@dataclass(frozen=True, slots=True)
class RouteConfig:
    channel: str
    to: str
    markets: tuple[str, ...] | None
    accounts: tuple[str, ...] | None  # checksummed
    min_severity: str
    anomalies: bool
    hard_levels: tuple[float, float, float] | None = None  # for the positions this route selects
    policy: PolicyOverride | None = None  # own policy knobs for the positions this route selects

    def matches(self, market: str, account: str | None, severity: str) -> bool:
        if self.markets is not None and market not in self.markets:
            return False
        if account is None:  # an oracle anomaly
            return self.anomalies and severity_rank(severity) >= severity_rank(self.min_severity)
        if self.accounts is not None and account.lower() not in {a.lower() for a in self.accounts}:
            return False
        return severity_rank(severity) >= severity_rank(self.min_severity)


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """``alerts.accounts.<address>``: a wallet's name and its own levels / policy knobs."""

    account: str  # checksummed
    label: str = ""
    levels: tuple[float, float, float] | None = None  # hard HF levels (floors on the policy's)
    policy: PolicyOverride | None = None


@dataclass(frozen=True, slots=True)
class OracleConfig:
    chainlink_feeds: Mapping[str, str] = field(default_factory=dict)
    heartbeat_s: float | None = None  # one heartbeat for every feed without its own; None: per-asset defaults
    stale_margin_s: float = 300.0
    divergence_warning_bps: float = 100.0
    divergence_critical_bps: float = 300.0
    jump_z_warning: float = 6.0
    jump_z_critical: float = 10.0
    # per feed (upper-cased symbol): pegged or floating, deviation threshold, heartbeat, peg
    feeds: Mapping[str, FeedSpec] = field(default_factory=dict)
    # hysteresis (monitor.alerts.hysteresis): an oracle alert resolves only once its anomaly has been
    # gone for this many blocks AND seconds; a divergence stays while above (1 - exit_band) x its level
    resolve_dwell_blocks: int = 3
    resolve_dwell_s: float = 600.0
    exit_band: float = 0.2

    def feed(self, symbol: str) -> FeedSpec:
        """The feed parameters for ``symbol``: its ``feeds`` entry, else the per-asset default
        (:func:`monitor.risk.anomalies.feed_spec`) with ``heartbeat_s`` applied if set."""
        key = symbol.strip().upper()
        if key in self.feeds:
            return self.feeds[key]
        spec = feed_spec(key)
        return spec if self.heartbeat_s is None else replace(spec, heartbeat_s=self.heartbeat_s)

    def feed_specs(self, symbols: Sequence[str]) -> dict[str, FeedSpec]:
        return {s: self.feed(s) for s in symbols}

    def heartbeats(self, symbols: Sequence[str]) -> dict[str, float]:
        return {s: self.feed(s).heartbeat_s for s in symbols}


@dataclass(frozen=True, slots=True)
class GroupingConfig:
    """``alerts.grouping`` (monitor.alerts.grouping): a destination's due alerts wait ``group_wait_s``
    after the oldest for company, then go as one message (split at the channel's size limit or
    ``max_per_message`` entries); repeat reminders to a destination at most every ``repeat_interval_s``."""

    group_wait_s: float = 0.0
    repeat_interval_s: float = 0.0  # 0: each position's own repeat interval only
    max_per_message: int = 100


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    policy: PolicyConfig = field(default_factory=PolicyConfig)  # the threshold policy (alerts.policy)
    repeat_interval_s: float = 6 * 3600.0
    target_hf: float = 1.5
    channels: Mapping[str, ChannelConfig] = field(
        default_factory=lambda: {"console": ChannelConfig("console", "console")}
    )
    routes: tuple[RouteConfig, ...] = (RouteConfig("console", "", None, None, "watch", True),)
    oracle: OracleConfig = field(default_factory=OracleConfig)
    accounts: Mapping[str, AccountConfig] = field(default_factory=dict)  # lower-case address -> its entry
    grouping: GroupingConfig = field(default_factory=GroupingConfig)
    messages: MessageConfig = field(default_factory=MessageConfig)  # alerts.labels / links / templates
    bot: BotConfig = field(default_factory=BotConfig)  # alerts.telegram_bot: subscriptions by chat

    @property
    def exit_margin(self) -> float:
        return self.policy.exit_margin

    @property
    def min_dwell_s(self) -> float:
        return self.policy.min_dwell_s

    def secrets(self) -> list[str]:
        out = [s.value for c in self.channels.values() for s in (c.token, c.username, c.password, c.signing_secret)
               if s is not None]  # fmt: skip
        for c in self.channels.values():
            for text in (c.url, *(value for _, value in c.headers)):
                if text is not None:
                    out.extend(text.secrets)
        return out

    def lowest_sent_severity(self) -> str:
        """The lowest position severity any route sends (``watch``, ``warning`` or ``critical``):
        what a backtest of this config counts as a notification (``backtest.Settings.severity``).
        A route sending only ``liquidatable`` sends nothing before HF 1, counted as ``critical``."""
        ranks = [severity_rank(r.min_severity) for r in self.routes]
        lowest = min(ranks) if ranks else severity_rank("critical")
        return ("watch", "warning", "critical")[min(max(lowest, 1), 3) - 1]


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    mode: str = "block"  # "block": scan on each new block; "interval": every interval_s
    interval_s: float = 12.0  # block polling / scan interval
    deliver_interval_s: float = 2.0
    max_attempts: int = 50
    log_format: str = "json"
    metrics_port: int | None = None
    # following positions by their events (monitor.positions.tracker):
    reconcile_sample: int = 16  # accounts re-read in full and compared every block (rotating)
    reconcile_all_every: int = 1800  # every account re-read and compared every N blocks (0: never)
    catch_up_blocks: int = 500  # blocks one step may span when the daemon fell behind


def severity_rank(name: str) -> int:
    return ("ok", *SEVERITY_NAMES).index(name) if name in ("ok", *SEVERITY_NAMES) else 0


# --------------------------------------------------------------------------- parsing


def parse_alerts(v: Validator, value: object, market_names: Sequence[str]) -> AlertsConfig:
    if value is None:
        return AlertsConfig()
    raw = v.mapping(value, "alerts", "a mapping")
    for key, why in _REMOVED_ALERT_KEYS.items():
        if key in raw:
            v.fail(f"alerts.{key}", why)
    v.check_keys(raw, _ALERT_KEYS, "alerts")
    d = AlertsConfig()
    channels = _channels(v, raw.get("channels"))
    routes = _routes(v, raw.get("routes"), channels, market_names)
    accounts = _accounts(v, raw.get("accounts"))
    market_overrides = _market_overrides(v, raw.get("markets"), market_names)
    return AlertsConfig(
        policy=_policy(v, raw, market_names, routes, accounts, market_overrides),
        accounts={a.account.lower(): a for a in accounts},
        repeat_interval_s=_num(v, raw, "repeat_interval_s", "alerts", d.repeat_interval_s),
        target_hf=_target(v, raw),
        channels=channels,
        routes=routes,
        oracle=_oracle(v, raw.get("oracle")),
        grouping=_grouping(v, raw.get("grouping")),
        messages=parse_messages(v, raw),
        bot=parse_bot(v, raw.get("telegram_bot"), channels),
    )


def _grouping(v: Validator, value: object) -> GroupingConfig:
    if value is None:
        return GroupingConfig()
    raw = v.mapping(value, "alerts.grouping", "a mapping with group_wait_s, repeat_interval_s, max_per_message")
    v.check_keys(raw, _GROUPING_KEYS, "alerts.grouping")
    d, path = GroupingConfig(), "alerts.grouping"
    return GroupingConfig(
        group_wait_s=v.bounded_number(raw.get("group_wait_s", d.group_wait_s), f"{path}.group_wait_s", 0, 86400),
        repeat_interval_s=v.bounded_number(raw.get("repeat_interval_s", d.repeat_interval_s),
                                           f"{path}.repeat_interval_s", 0, 30 * 86400),
        max_per_message=v.bounded_integer(raw.get("max_per_message", d.max_per_message), f"{path}.max_per_message",
                                          1, 1000),
    )  # fmt: skip


def parse_daemon(v: Validator, value: object) -> DaemonConfig:
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
        reconcile_sample=v.bounded_integer(raw.get("reconcile_sample", d.reconcile_sample), "daemon.reconcile_sample",
                                           0, 100_000),
        reconcile_all_every=v.bounded_integer(raw.get("reconcile_all_every", d.reconcile_all_every),
                                              "daemon.reconcile_all_every", 0, 10_000_000),
        catch_up_blocks=v.bounded_integer(raw.get("catch_up_blocks", d.catch_up_blocks), "daemon.catch_up_blocks",
                                          1, 100_000),
    )  # fmt: skip


def _num(v: Validator, raw: Mapping[Any, Any], key: str, path: str, default: float, allow_zero: bool = False) -> float:
    if key not in raw:
        return default
    value = raw[key]
    if allow_zero and value == 0 and not isinstance(value, bool):
        return 0.0
    return v.positive_number(value, f"{path}.{key}")


def _target(v: Validator, raw: Mapping[Any, Any]) -> float:
    target = _num(v, raw, "target_hf", "alerts", AlertsConfig().target_hf)
    if target <= 1.0:
        v.fail("alerts.target_hf", f"expected a health factor > 1, got {target:g}")
    return target


def policy_config(alerts: AlertsConfig) -> PolicyConfig:
    """The threshold policy of a loaded config: what ``run``, ``scan``, the messages and
    ``backtest --config`` all use."""
    return alerts.policy


def _policy(
    v: Validator,
    alerts_raw: Mapping[Any, Any],
    market_names: Sequence[str],
    routes: Sequence[RouteConfig] = (),
    accounts: Sequence[AccountConfig] = (),
    markets: Sequence[tuple[str, tuple[float, float, float] | None, PolicyOverride | None]] = (),
) -> PolicyConfig:
    """``alerts.policy`` (every key optional; defaults as :class:`PolicyConfig`). ``exit_margin``
    and ``min_dwell_s`` may also stand directly under ``alerts`` (their former place), not both.
    A route's ``hard_levels`` apply to the positions it selects (its markets and accounts)."""
    value = alerts_raw.get("policy")
    raw: Mapping[Any, Any] = {} if value is None else v.mapping(value, "alerts.policy", "a mapping")
    v.check_keys(raw, _POLICY_KEYS, "alerts.policy")
    d = PolicyConfig()
    kw: dict[str, Any] = {}
    for key in ("exit_margin", "min_dwell_s"):
        if key in alerts_raw and key in raw:
            v.fail(f"alerts.{key}", f"given twice: keep alerts.policy.{key} only")
        if key in alerts_raw:
            kw[key] = _num(v, alerts_raw, key, "alerts", getattr(d, key), allow_zero=True)
    path = "alerts.policy"
    for key in _POLICY_KEYS:
        if key not in raw:
            continue
        sub = f"{path}.{key}"
        if key in ("reaction_hours", "alarm_cost_usd", "min_probability", "max_probability"):
            kw[key] = _per_severity(v, raw[key], sub, getattr(d, key))
        elif key == "hard_levels":
            kw[key] = _hard_levels(v, raw[key], sub)
        elif key == "market_levels":
            items = v.mapping(raw[key], sub, "a mapping market name -> {watch, warning, critical}")
            for name in items:
                if name not in market_names:
                    v.fail(f"{sub}.{name}", f"unknown market {name!r} (markets: {', '.join(market_names)})")
            kw[key] = tuple((str(n), _hard_levels(v, lv, f"{sub}.{n}")) for n, lv in items.items())
        elif key == "account_levels":
            items = v.mapping(raw[key], sub, "a mapping account address -> {watch, warning, critical}")
            kw[key] = tuple(
                (v.address(acc, f"{sub}.{acc}"), _hard_levels(v, lv, f"{sub}.{acc}")) for acc, lv in items.items()
            )
        elif key in _POLICY_INTS:
            kw[key] = v.integer(raw[key], sub, 0 if key == "seed" else 200)
        else:
            kw[key] = _num(v, raw, key, path, getattr(d, key), allow_zero=key in _POLICY_ZERO_OK)
    kw["route_levels"] = tuple((r.markets, r.accounts, r.hard_levels) for r in routes if r.hard_levels is not None)
    _own_levels(v, kw, accounts, markets)
    kw["overrides"] = (
        *(o for _, _, o in markets if o is not None),
        *(r.policy for r in routes if r.policy is not None),
        *(a.policy for a in accounts if a.policy is not None),
    )
    try:
        return PolicyConfig(**kw).validate()
    except InputError as exc:
        if str(exc).startswith("alerts."):  # an override (or a combination of them) names its own keys
            v.fail_top(str(exc))
        v.fail(path, str(exc))


def _own_levels(
    v: Validator,
    kw: dict[str, Any],
    accounts: Sequence[AccountConfig],
    markets: Sequence[tuple[str, tuple[float, float, float] | None, PolicyOverride | None]],
) -> None:
    """``alerts.accounts.X.levels`` / ``alerts.markets.X.levels`` join ``account_levels`` /
    ``market_levels`` (an entry given in both places is an error)."""
    for key, extra, where in (
        ("account_levels", [(a.account, a.levels) for a in accounts if a.levels is not None], "alerts.accounts"),
        ("market_levels", [(n, lv) for n, lv, _ in markets if lv is not None], "alerts.markets"),
    ):
        have = tuple(kw.get(key, ()))
        seen = {str(n).lower() for n, _ in have}
        for name, _levels in extra:
            if name.lower() in seen:
                also = f"alerts.policy.{key}" + (" (or the watch list's levels)" if key == "account_levels" else "")
                v.fail(f"{where}.{name}.levels", f"levels for {name} are also given in {also}: keep one")
        kw[key] = have + tuple(extra)


def _accounts(v: Validator, value: object) -> list[AccountConfig]:
    """``alerts.accounts``: address -> {label, levels, policy}."""
    if value is None:
        return []
    raw = v.mapping(value, "alerts.accounts", "a mapping address -> {label, levels, policy}")
    out: dict[str, AccountConfig] = {}
    for key, entry in raw.items():
        path = f"alerts.accounts.{key}"
        account = v.address(key, path)
        if account.lower() in out:
            v.fail(path, f"account {account} is given twice (addresses are case-insensitive)")
        body = v.mapping(entry, path, "a mapping with label, levels, policy")
        v.check_keys(body, _ACCOUNT_KEYS, path)
        if not body:
            v.fail(path, "give at least one of label, levels, policy")
        label = ""
        if "label" in body:
            label = v.string(body["label"], f"{path}.label").strip()
            if not 1 <= len(label) <= 24 or any(ord(ch) < 32 for ch in label):
                v.fail(f"{path}.label", "expected 1-24 printable characters")
        levels = _hard_levels(v, body["levels"], f"{path}.levels") if "levels" in body else None
        policy = _knobs(v, body["policy"], f"{path}.policy", "account", None, (account,)) if "policy" in body else None
        out[account.lower()] = AccountConfig(account, label, levels, policy)
    return list(out.values())


def _market_overrides(
    v: Validator, value: object, market_names: Sequence[str]
) -> list[tuple[str, tuple[float, float, float] | None, PolicyOverride | None]]:
    """``alerts.markets``: market name -> {levels, policy}."""
    if value is None:
        return []
    raw = v.mapping(value, "alerts.markets", "a mapping market name -> {levels, policy}")
    out = []
    for name, entry in raw.items():
        path = f"alerts.markets.{name}"
        if name not in market_names:
            v.fail(path, f"unknown market {name!r} (markets: {', '.join(market_names)})")
        body = v.mapping(entry, path, "a mapping with levels, policy")
        v.check_keys(body, _MARKET_OVERRIDE_KEYS, path)
        if not body:
            v.fail(path, "give levels, policy or both")
        levels = _hard_levels(v, body["levels"], f"{path}.levels") if "levels" in body else None
        policy = _knobs(v, body["policy"], f"{path}.policy", "market", (str(name),), None) if "policy" in body else None
        out.append((str(name), levels, policy))
    return out


def _knobs(
    v: Validator, value: object, path: str, kind: str, markets: tuple[str, ...] | None,
    accounts: tuple[str, ...] | None,
) -> PolicyOverride:  # fmt: skip
    """An entry's own policy knobs: ``reaction_hours``, ``alarm_cost_usd``, ``min_probability``,
    ``max_probability`` (each one number or some of watch / warning / critical), ``probability``
    (the tolerance: min and max at once)."""
    raw = v.mapping(value, path, f"a mapping with some of {', '.join(_KNOB_KEYS)}")
    v.check_keys(raw, _KNOB_KEYS, path)
    if not raw:
        v.fail(path, f"give at least one of {', '.join(_KNOB_KEYS)}")
    if "probability" in raw and ("min_probability" in raw or "max_probability" in raw):
        v.fail(f"{path}.probability", "sets min_probability and max_probability at once: give one or the others")
    got = {k: _opt_per_severity(v, raw[k], f"{path}.{k}") for k in _KNOB_KEYS if k in raw}
    for k, triple in got.items():
        if "probability" in k and any(x is not None and x > 1.0 for x in triple):
            v.fail(f"{path}.{k}", "expected a probability in (0, 1]")
    both = got.pop("probability", None)
    empty: OptTriple = (None, None, None)
    return PolicyOverride(
        kind, markets, accounts, reaction_hours=got.get("reaction_hours", empty),
        alarm_cost_usd=got.get("alarm_cost_usd", empty), min_probability=both or got.get("min_probability", empty),
        max_probability=both or got.get("max_probability", empty), source=path,
    )  # fmt: skip


def _opt_per_severity(v: Validator, value: object, path: str) -> OptTriple:
    """One positive number for every severity, or a mapping with some of watch, warning, critical."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        x = v.positive_number(value, path)
        return x, x, x
    raw = v.mapping(value, path, "a number or a mapping with watch, warning, critical")
    v.check_keys(raw, _LEVEL_KEYS, path)
    if not raw:
        v.fail(path, "give a number, or at least one of watch, warning, critical")
    a, b, c = (v.positive_number(raw[k], f"{path}.{k}") if k in raw else None for k in _LEVEL_KEYS)
    return a, b, c


def _per_severity(
    v: Validator, value: object, path: str, default: tuple[float, float, float]
) -> tuple[float, float, float]:
    """One number for every severity, or a mapping with some of watch, warning, critical."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        x = v.positive_number(value, path)
        return x, x, x
    raw = v.mapping(value, path, "a number or a mapping with watch, warning, critical")
    v.check_keys(raw, _LEVEL_KEYS, path)
    a, b, c = (
        v.positive_number(raw[k], f"{path}.{k}") if k in raw else dv for k, dv in zip(_LEVEL_KEYS, default, strict=True)
    )
    return a, b, c


def _hard_levels(v: Validator, value: object, path: str) -> tuple[float, float, float]:
    """Explicit levels ``{watch, warning, critical}`` (any subset): at or below one the severity is
    at least that; an unset one follows the more severe ones (a hard critical level is also a
    warning and a watch level), since a more severe state implies the milder ones."""
    raw = v.mapping(value, path, "a mapping with watch, warning, critical (health factors > 1)")
    v.check_keys(raw, _LEVEL_KEYS, path)
    if not raw:
        v.fail(path, "give at least one of watch, warning, critical")
    given = [v.positive_number(raw[k], f"{path}.{k}") if k in raw else 1.0 for k in _LEVEL_KEYS]
    for k, x in zip(_LEVEL_KEYS, given, strict=True):
        if k in raw and x <= 1.0:
            v.fail(f"{path}.{k}", f"expected a health factor > 1, got {x:g}")
    a, b, c = given
    if ("watch" in raw and a < max(b, c)) or ("warning" in raw and b < c):
        v.fail(path, f"expected watch >= warning >= critical, got {a:g}, {b:g}, {c:g}")
    b, a = max(b, c), max(a, b, c)
    return a, b, c


def _secret(v: Validator, raw: Mapping[Any, Any], key: str, path: str, required: bool) -> Secret | None:
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


def _port(v: Validator, value: object, path: str) -> int:
    port = v.integer(value, path, 1)
    if port > 65535:
        v.fail(path, f"expected a TCP port 1-65535, got {port}")
    return port


def _channels(v: Validator, value: object) -> dict[str, ChannelConfig]:
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


def _channel(v: Validator, name: str, kind: str, body: Mapping[Any, Any], path: str) -> ChannelConfig:
    timeout = _num(v, body, "timeout_s", path, 10.0)
    if kind == "console":
        return ChannelConfig(name, kind)
    if kind == "pagerduty":
        return _pagerduty_channel(v, name, body, path, timeout)
    if kind in WEBHOOK_TYPES:
        return _webhook_channel(v, name, kind, body, path, timeout)
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


def _webhook_channel(
    v: Validator, name: str, kind: str, body: Mapping[Any, Any], path: str, timeout: float
) -> ChannelConfig:
    """``webhook`` (a URL, optional ``${NAME}`` parts, optional HMAC ``secret_env`` and
    ``headers``), ``slack`` and ``discord`` (the URL is the credential: ``url: ${NAME}`` only)."""
    v.required(body, ("url",), path)
    url = _env_text(v, body["url"], f"{path}.url", whole=kind != "webhook")
    _check_url(v, url, f"{path}.url", secret_url=kind != "webhook" or bool(url.secrets))
    default_interval = {"webhook": 0.0, "slack": 1.0, "discord": 0.5}[kind]
    interval = _num(v, body, "min_interval_s", path, default_interval, allow_zero=True)
    headers: list[tuple[str, SecretText]] = []
    if "headers" in body:
        raw = v.mapping(body["headers"], f"{path}.headers", "a mapping header name -> value")
        for header, value in raw.items():
            hpath = f"{path}.headers.{header}"
            if not isinstance(header, str) or not _HEADER_NAME_RE.fullmatch(header):
                v.fail(hpath, f"{header!r} is not an HTTP header name")
            if header.lower() in ("content-type", "content-length", "host", "idempotency-key", "x-liqmon-timestamp",
                                  "x-liqmon-signature"):  # fmt: skip
                v.fail(hpath, "this header is set by liqmon itself; remove it")
            text = _env_text(v, value, hpath, whole=False)
            if _CREDENTIAL_HEADER_RE.search(header) and not text.secrets:
                v.fail(hpath, "a credential header takes its value from the environment: write e.g. "
                       '"Bearer ${NAME}" and put the token in NAME')  # fmt: skip
            if any(ch in text.value for ch in "\r\n\0"):
                v.fail(hpath, "the value holds a line break or NUL")
            headers.append((header, text))
    display_name = ""
    if "username" in body:
        display_name = v.string(body["username"], f"{path}.username").strip()
        if not 1 <= len(display_name) <= 80:
            v.fail(f"{path}.username", f"expected 1-80 characters, got {len(display_name)}")
    return ChannelConfig(
        name, kind, timeout_s=timeout, min_interval_s=interval, url=url, headers=tuple(headers),
        signing_secret=_secret(v, body, "secret_env", path, required=False) if kind == "webhook" else None,
        display_name=display_name,
    )  # fmt: skip


def _pagerduty_channel(v: Validator, name: str, body: Mapping[Any, Any], path: str, timeout: float) -> ChannelConfig:
    """``pagerduty``: the Events API v2 integration key from ``routing_key_env``; ``url`` (default
    PagerDuty's endpoint) configurable for an EU account or a local peer."""
    key = _secret(v, body, "routing_key_env", path, required=True)
    assert key is not None
    if not re.fullmatch(r"[A-Za-z0-9]{32}", key.value):  # never echo the value
        v.fail(f"{path}.routing_key_env", f"{key.env} does not hold a 32-character PagerDuty integration key")
    url = _env_text(v, body.get("url", PAGERDUTY_URL), f"{path}.url", whole=False)
    _check_url(v, url, f"{path}.url", secret_url=True)  # the body carries the key: https (or loopback)
    return ChannelConfig(name, "pagerduty", token=key, url=url, timeout_s=timeout,
                         min_interval_s=_num(v, body, "min_interval_s", path, 0.0, allow_zero=True))  # fmt: skip


def _env_text(v: Validator, value: object, path: str, *, whole: bool) -> SecretText:
    """``value`` with its ``${NAME}`` references expanded. ``whole``: the value is a credential
    in itself (a Slack / Discord webhook URL): it must come from the environment and is
    displayed as its scheme and host only."""
    template = v.string(value, path)
    if "${" in _ENV_REF_RE.sub("", template):
        v.fail(path, "malformed environment reference (expected ${NAME}, NAME made of letters, digits and '_')")
    if whole and not _ENV_REF_RE.search(template):
        v.fail(path, "the webhook URL is a secret: put it in an environment variable and write url: ${NAME}")
    secrets: list[str] = []

    def expand(match: re.Match[str]) -> str:
        secret = v.env.get(match.group(1))
        if not secret:
            v.fail(path, f"environment variable {match.group(1)} is {'empty' if secret == '' else 'not set'}")
        secrets.append(secret)
        return secret

    text = _ENV_REF_RE.sub(expand, template)
    display = _ENV_REF_RE.sub("<secret>", template)
    if whole:
        scheme, sep, rest = text.partition("://")
        host = rest.split("/", 1)[0].rpartition("@")[2] if sep else ""
        display = f"{scheme}://{host}/<secret>" if sep and host else "<secret>"
        secrets.append(text)
    return SecretText(text, display, tuple(dict.fromkeys(s for s in secrets if s)))


def _check_url(v: Validator, url: SecretText, path: str, *, secret_url: bool) -> None:
    """An http(s) URL with a host; one holding a secret goes over https (plain http only to loopback)."""
    from urllib.parse import urlsplit

    text = url.value
    if any(ch.isspace() or ord(ch) < 32 for ch in text):
        v.fail(path, f"{url.display} contains whitespace or control characters")
    try:
        parts = urlsplit(text)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        v.fail(path, f"{url.display} is not a valid URL")
    if parts.scheme not in ("http", "https") or not host:
        v.fail(path, f"{url.display} is not an http:// or https:// URL with a host")
    if secret_url and parts.scheme == "http" and host not in ("127.0.0.1", "localhost", "::1"):
        v.fail(path, f"{url.display} holds a secret: use https:// (plain http only to a loopback address)")


def _routes(
    v: Validator, value: object, channels: Mapping[str, ChannelConfig], market_names: Sequence[str]
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
        if kind in WEBHOOK_TYPES and "to" in raw:
            v.fail(f"{path}.to", f"a {kind} channel posts where its URL points: remove 'to' (one channel per URL)")
        to = "" if kind == "console" or kind in WEBHOOK_TYPES else _destination(v, raw, kind, f"{path}.to")
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
        if "hard_levels" in raw and "levels" in raw:
            v.fail(f"{path}.levels", "given with hard_levels (the same thing): keep levels")
        key = "levels" if "levels" in raw else "hard_levels"
        hard = _hard_levels(v, raw[key], f"{path}.{key}") if key in raw else None
        own = _knobs(v, raw["policy"], f"{path}.policy", "route", markets, accounts) if "policy" in raw else None
        routes.append(RouteConfig(channel, to, markets, accounts, severity, anomalies, hard, own))
    return tuple(routes)


def _destination(v: Validator, raw: Mapping[Any, Any], kind: str, path: str) -> str:
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


def _oracle(v: Validator, value: object) -> OracleConfig:
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
        heartbeat_s=None if "heartbeat_s" not in raw else _num(v, raw, "heartbeat_s", "alerts.oracle", 0.0),
        stale_margin_s=_num(v, raw, "stale_margin_s", "alerts.oracle", d.stale_margin_s, allow_zero=True),
        divergence_warning_bps=_num(v, raw, "divergence_warning_bps", "alerts.oracle", d.divergence_warning_bps),
        divergence_critical_bps=_num(v, raw, "divergence_critical_bps", "alerts.oracle", d.divergence_critical_bps),
        jump_z_warning=_num(v, raw, "jump_z_warning", "alerts.oracle", d.jump_z_warning),
        jump_z_critical=_num(v, raw, "jump_z_critical", "alerts.oracle", d.jump_z_critical),
        feeds=_feeds(v, raw.get("feeds"), raw),
        resolve_dwell_blocks=v.bounded_integer(raw.get("resolve_dwell_blocks", d.resolve_dwell_blocks),
                                               "alerts.oracle.resolve_dwell_blocks", 0, 100_000),
        resolve_dwell_s=v.bounded_number(raw.get("resolve_dwell_s", d.resolve_dwell_s), "alerts.oracle.resolve_dwell_s",
                                         0, 30 * 86400),
        exit_band=v.bounded_number(raw.get("exit_band", d.exit_band), "alerts.oracle.exit_band", 0, 0.9),
    )  # fmt: skip
    if out.divergence_critical_bps <= out.divergence_warning_bps:
        v.fail("alerts.oracle.divergence_critical_bps", "must be larger than divergence_warning_bps")
    return out


def _feeds(v: Validator, value: object, oracle: Mapping[Any, Any]) -> dict[str, FeedSpec]:
    """``alerts.oracle.feeds``: SYMBOL -> {kind, deviation, heartbeat_s, peg}; missing keys take the
    asset's default (``heartbeat_s``: the section's, if set)."""
    if value is None:
        return {}
    raw = v.mapping(value, "alerts.oracle.feeds", "a mapping SYMBOL -> {kind, deviation, heartbeat_s, peg}")
    out: dict[str, FeedSpec] = {}
    for symbol, entry in raw.items():
        path = f"alerts.oracle.feeds.{symbol}"
        name = v.string(symbol, path).strip().upper()
        spec_raw = v.mapping(entry, path, "a mapping with kind, deviation, heartbeat_s, peg")
        v.check_keys(spec_raw, _FEED_KEYS, path)
        base = feed_spec(name)
        kind = spec_raw.get("kind", base.kind)
        if kind not in FEED_KINDS:
            v.fail(f"{path}.kind", f"expected one of {', '.join(FEED_KINDS)}, got {kind!r}")
        if kind != base.kind and "deviation" not in spec_raw:
            base = DEFAULT_PEGGED if kind == "pegged" else DEFAULT_FLOATING  # the kind's default threshold
        deviation = _num(v, spec_raw, "deviation", path, base.deviation, allow_zero=True)
        if deviation >= 0.5:
            v.fail(f"{path}.deviation", f"expected a fraction below 0.5 (0.005 == 0.5 %), got {deviation:g}")
        default_beat = base.heartbeat_s if "heartbeat_s" not in oracle else float(oracle["heartbeat_s"])
        heartbeat = _num(v, spec_raw, "heartbeat_s", path, default_beat)
        peg = _num(v, spec_raw, "peg", path, base.peg)
        if name in out:
            v.fail(path, f"feed {name} is given twice (symbols are case-insensitive)")
        out[name] = FeedSpec(kind, deviation, heartbeat, peg)
    return out
