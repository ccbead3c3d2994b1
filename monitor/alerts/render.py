"""From an assessment (or an oracle anomaly) and its dedup reason to a :class:`Message`.

The first line fits a phone's preview (:data:`~monitor.alerts.message.FIRST_LINE_MAX`
characters with the badge): who (wallet label or short address), chain, market, HF and the
level. The body never repeats it: what changed in plain words, what to do in token units
(:mod:`monitor.alerts.advice`), the liquidation price in the direction that matters, the
chance of liquidation only where it means something, why this level, the wallet, the block
and its time; links to the position (protocol app, block explorer). Resolved messages say how
long the episode lasted. Every part can be overridden by ``alerts.templates``.
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from monitor.alerts.advice import Advice, LiquidationPrice, advise
from monitor.alerts.assessment import Assessment
from monitor.alerts.message import BADGES, FIRST_LINE_MAX, Message, fit
from monitor.alerts.templates import fill
from monitor.config.alerts import AlertsConfig
from monitor.config.messages import MessageConfig, chain_name
from monitor.models import MarketSnapshot
from monitor.risk.anomalies import Anomaly

SUMMARY_MAX: Final = 120  # one demo / group line, badge included
LEVEL_SHORT: Final = {"watch": "watch", "warning": "warn", "critical": "crit", "liquidatable": "liq"}
MINUS: Final = "−"
_MEANING: Final = {
    "jump": "a move this large is rare for this feed: check the price source; positions priced by it may alert next",
    "drift": "a sustained fall: positions holding it as collateral lose health day by day",
    "stale": "the feed stopped updating: health factors use an old price and the real risk may be higher",
    "divergence": "the protocol's price differs from the reference feed: liquidations follow the protocol's price",
    "depeg": "a pegged asset is off its peg: positions that count it at its peg are riskier than shown",
}
_MARKET_MAX: Final = 22
_SUMMARY_MARKET_MAX: Final = 32


class _Alerts(Protocol):  # what the episode lookup needs from the store
    def alerts(self, *, market: str | None = ..., subject: str | None = ...) -> list[dict[str, Any]]: ...


def render(
    snapshot: MarketSnapshot, a: Assessment, reason: str, previous: str, cfg: AlertsConfig,
    *, started: float | None = None,
) -> Message:  # fmt: skip
    """The message of one position alert; ``started`` is when its episode began (resolved)."""
    mc = cfg.messages
    resolved = reason == "resolved"
    severity = "resolved" if resolved else a.severity
    advice = advise(snapshot, a.account, cfg.target_hf, pegged=_pegged(cfg)) if not resolved else None
    values = _common(snapshot, a.account, cfg, severity)
    hf, level = hf_text(a.hf), f"{a.level:.2f}"
    if hf == level and not resolved:  # HF 1.0249 at level 1.0251: more decimals tell them apart
        hf, level = f"{math.floor(a.hf * 10_000) / 10_000:.4f}", f"{a.level:.4f}"
    level_name = "safe" if resolved else LEVEL_SHORT.get(a.severity, a.severity)
    values.update(hf=hf, level=level, level_name=level_name, change=plain_change(reason, previous, a.severity))
    if resolved:
        head = f"HF {hf} → safe"
    elif a.severity == "liquidatable":
        head = f"HF {hf} < 1"
    else:
        head = f"HF {hf} → {level_name} {level}"
    duration = duration_text(snapshot.timestamp - started) if resolved and started is not None else ""
    values.update(duration=duration, todo=_todo(advice, cfg.target_hf) if advice else "")
    values["liquidation"] = _liquidation(advice.liquidation, a.severity) if advice and advice.liquidation else ""
    values["probability"] = _probability(a) if not resolved else ""
    title = _title(values, mc, "resolved" if resolved else "position", severity, head)
    lines: list[str] = []
    if resolved:
        lines.append(f"Recovered: back to safe{f' after {duration}' if duration else ''} (was {previous}); "
                     f"HF {hf}, watch level {a.levels[0]:.2f}.")  # fmt: skip
    else:
        lines.append(_state_line(values["change"], a, hf, level))
        lines.extend(x for x in (values["todo"], values["liquidation"], values["probability"]) if x)
        if a.level_reason:
            lines.append(f"Why this level: {a.level_reason}.")
    lines.append(_wallet_line(a.account, values["label"], snapshot.market))
    lines.append(f"Block {snapshot.block:,} · {values['time']}")
    kind = "resolved" if resolved else "position"
    body = mc.template(kind, "body")
    if body is not None:
        lines = [line for line in fill(body, values).splitlines() if line.strip()]
    liq = advice.liquidation if advice else None
    if resolved:
        tail = f"back to safe after {duration}" if duration else "back to safe"
    else:
        tail = _liquidation_short(liq, a.severity) if liq else ""
    summary = _summary(values, mc, kind, severity, f"{head} · {tail}" if tail else head)
    return Message(
        key="", severity=severity, title=title, lines=tuple(lines), links=_links(values),
        fields=_fields(values, severity), summary=summary,
    )  # fmt: skip


def render_anomaly(
    snapshot: MarketSnapshot, anomaly: Anomaly | None, subject: str, reason: str, cfg: AlertsConfig,
    *, previous: str = "ok", started: float | None = None,
) -> Message:  # fmt: skip
    """The message of an oracle alert (``anomaly`` None: the check passes again), ``previous``
    its severity before."""
    mc = cfg.messages
    _prefix, kind, asset = [*subject.split(":", 2), "", ""][:3]
    severity = "resolved" if anomaly is None else anomaly.severity
    values = _common(snapshot, "", cfg, severity)
    detail = anomaly.detail if anomaly else ""
    values.update(asset=asset, change=plain_change(reason, previous, severity), detail=detail)
    duration = duration_text(snapshot.timestamp - started) if anomaly is None and started is not None else ""
    values["duration"] = duration
    head = f"oracle {kind} on {asset}" + (" → ok" if anomaly is None else "")
    template_kind = "oracle_resolved" if anomaly is None else "oracle"
    title = _title(values, mc, template_kind, severity, None, lead=head)
    if anomaly is None:
        lines = [f"Recovered: the {asset} price check passes again{f' after {duration}' if duration else ''}."]
    else:
        lines = [f"{_lead(values['change'])}. {anomaly.detail}."]
        if kind in _MEANING:
            lines.append(f"What it means: {_MEANING[kind]}.")
        reference = cfg.oracle.chainlink_feeds.get(asset.upper()) or cfg.oracle.chainlink_feeds.get(asset)
        if reference and kind in ("divergence", "stale"):
            lines.append(f"Feeds: the {snapshot.market} oracle and the reference feed {reference}.")
    lines.append(f"Market {snapshot.market} · block {snapshot.block:,} · {values['time']}")
    body = mc.template(template_kind, "body")
    if body is not None:
        lines = [line for line in fill(body, values).splitlines() if line.strip()]
    tail = f"{head} · {values['market_short']}" + (f" · {anomaly.detail}" if anomaly else "")
    summary = _summary(values, mc, template_kind, severity, tail, plain_lead=True)
    return Message(
        key="", severity=severity, title=title, lines=tuple(lines), fields=_fields(values, severity),
        summary=summary,
    )  # fmt: skip


def render_test(where: str, host: str, config_name: str, cfg: AlertsConfig | None = None, *, key: str = "") -> Message:
    """``liqmon doctor --send-test``: what a route delivers, in the same shape as an alert."""
    values = {"badge": BADGES["test"], "severity": "test", "market": where, "detail": f"host {host}"}
    mc = cfg.messages if cfg is not None else MessageConfig()
    title = _title(values, mc, "test", "test", None, lead=f"liqmon doctor test message · {where}")
    lines = [
        f"Sent by `liqmon doctor --send-test` through {where}.",
        f"Host {host}, config {config_name}.",
        "No action needed: alerts for this route will arrive here.",
    ]
    body = mc.template("test", "body")
    if body is not None:
        lines = [line for line in fill(body, values).splitlines() if line.strip()]
    return Message(key=key, severity="test", title=title, lines=tuple(lines), summary=f"test message · {where}")


def episode_start(store: _Alerts, market: str, subject: str) -> float | None:
    """When the episode that is resolving began: the block time of the subject's last ``first``
    alert (its message's ``timestamp`` field), else that row's ``created_at``."""
    for row in reversed(store.alerts(market=market, subject=subject)):
        if row.get("reason") == "first":
            try:
                fields = json.loads(row.get("detail") or "{}").get("fields") or {}
                return float(fields["timestamp"])
            except (KeyError, TypeError, ValueError, AttributeError):
                return float(row["created_at"]) if row.get("created_at") is not None else None
    return None


# -- words ---------------------------------------------------------------------------------


def plain_change(reason: str, previous: str, severity: str) -> str:
    """A dedup reason in plain words: new, worse: warning → critical, still critical (reminder)..."""
    if reason == "first":
        return "new"
    if reason == "severity_up":
        return f"worse: {previous} → {severity}"
    if reason == "severity_down":
        return f"better: {previous} → {severity}"
    if reason == "repeat":
        return f"still {severity} (reminder)"
    if reason == "resolved":
        return "recovered"
    return reason.replace("_", " ")


def short_address(account: str) -> str:
    """``0x12ab…cd34``."""
    return f"{account[:6]}…{account[-4:]}" if len(account) > 12 else account


def hf_text(hf: float) -> str:
    """2 decimals, more near 1 (0.9996, 1.004) so that HF 1.00 never hides which side of 1 it is;
    ``∞`` without debt."""
    if not math.isfinite(hf):
        return "∞"
    text = f"{hf:.2f}"
    if hf < 1 <= float(text):
        return f"{math.floor(hf * 10_000) / 10_000:.4f}"
    if text == "1.00":  # just above 1: 1.004, not a 1.00 that reads as liquidatable
        return f"{math.floor(hf * 1_000) / 1_000:.3f}"
    return text


def duration_text(seconds: float) -> str:
    """``3 h 12 min``, ``45 min``, ``2 d 4 h``, ``30 s``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    minutes, hours, days = s // 60 % 60, s // 3600 % 24, s // 86400
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def utc_text(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def usd_text(price: float) -> str:
    """Prices: 2 decimals from 1 USD, 4 significant digits below."""
    if price >= 1:
        return f"{price:,.2f}"
    return f"{price:.4g}"


def pct_text(move: float) -> str:
    return f"{MINUS if move < 0 else '+'}{abs(move):.1f} %"


# -- parts ---------------------------------------------------------------------------------


def _pegged(cfg: AlertsConfig) -> Callable[[str], bool]:
    return lambda symbol: cfg.oracle.feed(symbol).kind == "pegged"


def _common(snapshot: MarketSnapshot, account: str, cfg: AlertsConfig, severity: str) -> dict[str, str]:
    mc = cfg.messages
    entry = cfg.accounts.get(account.lower()) if account else None
    label = (mc.label(account) or (entry.label if entry is not None else "")) if account else ""
    chain = chain_name(snapshot.chain_id)
    values = {
        "badge": BADGES.get(severity, severity.upper()), "severity": severity, "label": label, "account": account,
        "short_account": short_address(account), "who": label or short_address(account), "chain": chain,
        "chain_id": str(snapshot.chain_id), "market": snapshot.market,
        "protocol": snapshot.protocol, "block": str(snapshot.block), "time": utc_text(snapshot.timestamp),
        "timestamp": str(snapshot.timestamp), "market_short": _market_short(snapshot.market, _SUMMARY_MARKET_MAX),
    }  # fmt: skip
    values["app"] = _url(mc.apps.get(snapshot.protocol), values, append=False) if account else ""
    values["explorer"] = _url(mc.explorers.get(snapshot.chain_id), values, append=True) if account else ""
    values["link"] = values["app"] or values["explorer"]
    return values


def _url(template: str | None, values: Mapping[str, str], *, append: bool) -> str:
    if not template:
        return ""
    if "$" in template:
        return string.Template(template).safe_substitute(values)
    return f"{template.rstrip('/')}/address/{values['account']}" if append else template


def _market_short(market: str, limit: int = _MARKET_MAX) -> str:
    """A market name within ``limit``: a Morpho ``name:pair-lltv:id`` loses its id first."""
    if len(market) > limit and market.count(":") >= 2:
        market = market.rsplit(":", 1)[0]
    return fit(market, limit)


def _title(
    values: dict[str, str], mc: MessageConfig, kind: str, severity: str, head: str | None, *, lead: str = ""
) -> str:
    room = FIRST_LINE_MAX - len(BADGES.get(severity, severity.upper())) - 1
    override = mc.template(kind, "title")
    if override is not None:
        return fit(fill(override, values), room)
    if head is None:  # oracle / test: the lead, then where
        tail = " · ".join(x for x in (values.get("chain", ""), values.get("market_short", "")) if x)
        return fit(f"{lead} · {tail}" if tail else lead, room)
    who = values["who"]
    market_room = room - len(f"{fit(who, 14)} · {values['chain']} ·  · {head}")
    fixed = f" · {values['chain']} · {_market_short(values['market'], max(10, market_room))} · {head}"
    return fit(fit(who, max(8, room - len(fixed))) + fixed, room)


def _summary(
    values: dict[str, str], mc: MessageConfig, kind: str, severity: str, tail: str, *, plain_lead: bool = False
) -> str:
    room = SUMMARY_MAX - len(BADGES.get(severity, severity.upper())) - 1
    override = mc.template(kind, "summary")
    if override is not None:
        return fit(fill(override, values), room)
    if plain_lead:
        return fit(tail, room)
    return fit(f"{values['who']} · {values['market_short']} · {tail}", room)


def _liquidation_short(liq: LiquidationPrice, severity: str) -> str:
    if severity == "liquidatable":
        return f"{liq.symbol} {'below' if liq.direction < 0 else 'above'} its liq. price {usd_text(liq.price)}"
    verb = "falls" if liq.direction < 0 else "rises"
    return f"liq. if {liq.symbol} {verb} to {usd_text(liq.price)} ({pct_text(liq.move)})"


def _lead(change: str) -> str:
    """``new`` -> ``New alert``, ``worse: watch → warning`` -> ``Worse: watch → warning``."""
    return "New alert" if change == "new" else change[:1].upper() + change[1:]


def _state_line(change: str, a: Assessment, hf: str, level: str) -> str:
    if a.severity == "liquidatable":
        return f"{_lead(change)}. HF {hf} is below 1: the position can be liquidated now."
    return f"{_lead(change)}. HF {hf} is below the {a.severity} level {level}."


def _todo(advice: Advice, target_hf: float) -> str:
    chosen = [f"{verb} {amount.text()}" for verb, amount in (("repay", advice.repay), ("add", advice.supply))
              if amount is not None and amount.units > 0]  # fmt: skip
    if not chosen:
        return ""
    return f"To reach HF {target_hf:g}: {' or '.join(chosen)}."


def _liquidation(liq: LiquidationPrice, severity: str) -> str:
    verb = "falls" if liq.direction < 0 else "rises"
    price = usd_text(liq.price)
    if severity == "liquidatable":
        side = "below" if liq.direction < 0 else "above"
        return f"Liquidatable since {liq.symbol} is {side} {price} USD (now {usd_text(liq.current)})."
    return f"Liquidated if {liq.symbol} {verb} to {price} USD ({pct_text(liq.move)}, now {usd_text(liq.current)})."


def _probability(a: Assessment) -> str:
    """Only where it means something: not when already liquidatable, not a 0 from the simulation."""
    p = a.probability
    if a.severity == "liquidatable" or not math.isfinite(p) or p <= 0 or a.horizon_hours <= 0:
        return ""
    shown = "< 0.1 %" if p < 0.001 else "> 99 %" if p > 0.99 else f"{p * 100:.1f} %" if p < 0.1 else f"{p * 100:.0f} %"
    return f"Chance of liquidation within {a.horizon_hours:.3g} h: {shown}."


def _wallet_line(account: str, label: str, market: str) -> str:
    return f"Wallet {account}{f' ({label})' if label else ''} on {market}."


def _links(values: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    out = [("Position", values["app"]) if values["app"] else None,
           ("Explorer", values["explorer"]) if values["explorer"] else None]  # fmt: skip
    return tuple(x for x in out if x is not None)


def _fields(values: Mapping[str, str], severity: str) -> tuple[tuple[str, str], ...]:
    keys: Sequence[str] = ("account", "label", "chain", "market", "hf", "level", "link", "block", "time", "timestamp")
    return (("severity", severity), *((k, values[k]) for k in keys if values.get(k)))
