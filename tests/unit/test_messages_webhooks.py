"""Every message kind on the webhook-style channels (issue 15 acceptance): Slack, Discord, the
generic webhook and PagerDuty, each message of test_messages' ``_kinds()`` sent through the
channel's own ``send()`` into a recording HTTP session, so what is compared is the exact body
the channel POSTs. Snapshots in tests/snapshots/webhooks/<channel>/<kind>.json (pretty JSON,
the PagerDuty routing key as ``<secret>``; the posted bytes are rebuilt from the snapshot
exactly). For every kind and channel: the first line / title / preview within 80 characters,
the token amounts the same strings as in the Telegram text, the links present, no internal
reason codes, no secret in the body, and the service's documented size limits; and a grouped
message of 120 alerts (grouping.compose with each channel's own size limit) within the
limits with every entry line whole.

Regenerate the snapshots after an intended change with ``LIQMON_UPDATE_SNAPSHOTS=1``
(the flag test_messages.py reads).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import html
import json
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from monitor.alerts.discord import DiscordChannel
from monitor.alerts.grouping import CHILD_PREFIX, Entry, compose, entry_line, size_limit
from monitor.alerts.message import FIRST_LINE_MAX, Message
from monitor.alerts.pagerduty import PagerDutyChannel
from monitor.alerts.render import render, render_anomaly
from monitor.alerts.slack import SlackChannel
from monitor.alerts.webhook import WebhookChannel
from monitor.models import WAD
from monitor.risk.anomalies import Anomaly
from tests.support_webhooks import (
    DISCORD_PATH,
    PAGERDUTY_KEY,
    SLACK_PATH,
    _discord_problem,
    _pagerduty_problems,
    _slack_problem,
)
from tests.unit.test_messages import (
    CFG,
    E6,
    E18,
    REASON_CODES,
    UPDATE,
    _assessment,
    _kinds,
    _position,
    _snapshot,
)

SNAPSHOTS = Path(__file__).resolve().parents[1] / "snapshots" / "webhooks"
CHANNELS = ("slack", "discord", "webhook", "pagerduty")
KINDS = {kind: replace(message, key="outbox:1") for kind, message in _kinds().items()}
NOW = 1_800_000_000.0
SLACK_URL = "https://hooks.slack.com" + SLACK_PATH
DISCORD_URL = "https://discord.com" + DISCORD_PATH
HOOK_TOKEN = "hookQueryToken0123456789"
HOOK_URL = f"https://hooks.example.org/liqmon?token={HOOK_TOKEN}"
SIGNING_SECRET = "whsec-liqmon-signing-0123456789"
BEARER = "bearer-liqmon-0123456789abcdef"
SECRETS = {
    "slack": (SLACK_URL, SLACK_PATH, SLACK_PATH.rsplit("/", 1)[1]),
    "discord": (DISCORD_URL, DISCORD_PATH, DISCORD_PATH.rsplit("/", 1)[1]),
    "webhook": (HOOK_TOKEN, SIGNING_SECRET, BEARER),
    "pagerduty": (PAGERDUTY_KEY,),
}
SEPARATORS = {"slack": (", ", ": "), "discord": (", ", ": "), "webhook": (",", ":"), "pagerduty": (", ", ": ")}
AMOUNT_RE = re.compile(r"(?<![\w.,])\d[\d,]*(?:\.\d+)? (?:USDC|WETH|WBTC|USD)\b")
NUMBER_RE = re.compile(r"(?<![\w.,])\d[\d,]*(?:\.\d+)?")
URL_RE = re.compile(r"https?://[^\s)>|\]]+")
_CODE_RE = re.compile(r"`(0x[0-9a-fA-F]{40}|0x[0-9a-fA-F]{64})`")  # the code spans a channel sets addresses in
POSITION_KINDS = ("watch", "warning", "critical", "liquidatable", "resolved")
PD_EVENT_MAX = 512 * 1024  # PagerDuty Events API v2: an event at most 512 KB


class Recorder(requests.Session):
    """A session that records each POST (url, body, headers) and answers ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__()
        self.status = status
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []

    def post(self, url: str | bytes, data: Any = None, json: Any = None, **kw: Any) -> requests.Response:
        self.sent.append((str(url), data, dict(kw.get("headers") or {})))
        response = requests.Response()
        response.status_code = self.status
        response._content = b'{"status": "success"}' if self.status == 202 else b"ok"
        return response


Sent = tuple[str, bytes, dict[str, str]]


def _post(channel: str, message: Message) -> Sent:
    """The one request ``channel``'s send() makes for ``message``."""
    rec = Recorder(202 if channel == "pagerduty" else 200)
    if channel == "slack":
        SlackChannel("slack", SLACK_URL, min_interval_s=0, session=rec).send(message)
    elif channel == "discord":
        DiscordChannel("discord", DISCORD_URL, min_interval_s=0, session=rec).send(message)
    elif channel == "webhook":
        WebhookChannel("hook", HOOK_URL, display="https://hooks.example.org/liqmon?token=<secret>",
                       secret=SIGNING_SECRET, headers={"Authorization": f"Bearer {BEARER}"}, secrets=(BEARER,),
                       wall_clock=lambda: NOW, session=rec).send(message)  # fmt: skip
    else:
        PagerDutyChannel("pd", PAGERDUTY_KEY, wall_clock=lambda: NOW, session=rec).send(message)
    assert len(rec.sent) == 1
    return rec.sent[0]


def _masked(channel: str, data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "routing_key": "<secret>"} if channel == "pagerduty" else data


def _unmasked(channel: str, data: dict[str, Any]) -> dict[str, Any]:
    if channel == "pagerduty":
        assert data["routing_key"] == "<secret>"
        return {**data, "routing_key": PAGERDUTY_KEY}
    return data


def _snapshot_text(channel: str, body: bytes) -> str:
    return json.dumps(_masked(channel, json.loads(body)), indent=1, ensure_ascii=False) + "\n"


def _check_snapshot(channel: str, name: str, body: bytes) -> None:
    path = SNAPSHOTS / channel / f"{name}.json"
    text = _snapshot_text(channel, body)
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"no snapshot {channel}/{path.name}: run with LIQMON_UPDATE_SNAPSHOTS=1 and review it"
    stored = path.read_text(encoding="utf-8")
    assert text == stored, f"{channel}/{path.name} differs from its snapshot"
    # the snapshot determines the posted bytes exactly (key order, separators, UTF-8 unescaped)
    rebuilt = json.dumps(_unmasked(channel, json.loads(stored)), ensure_ascii=False, separators=SEPARATORS[channel])
    assert rebuilt.encode() == body


# -- what a person sees on each channel ---------------------------------------------------------


def _slack_plain(text: str) -> str:
    text = re.sub(r"<([^|<>]*)\|([^<>]*)>", r"\2", text)  # <url|label> shows the label
    return html.unescape(_CODE_RE.sub(r"\1", text))  # &amp; &lt; &gt; only (escape() makes no others)


def _discord_plain(text: str) -> str:
    text = re.sub(r"\[((?:\\.|[^\]\\])*)\]\([^)\s]*\)", r"\1", text)  # [label](url) shows the label
    return re.sub(r"\\(.)", r"\1", _CODE_RE.sub(r"\1", text))


def _visible(channel: str, data: dict[str, Any]) -> list[str]:
    """The human-visible strings of a posted body, as displayed (markup and escapes removed)."""
    if channel == "slack":
        out = [_slack_plain(data["text"])]
        for block in data["blocks"]:
            if "text" in block:
                text = block["text"]["text"]
                out.append(text if block["text"]["type"] == "plain_text" else _slack_plain(text))
            out.extend(_slack_plain(f["text"]) for f in block.get("fields", ()))
            out.extend(_slack_plain(e["text"]) for e in block.get("elements", ()))
        return out
    if channel == "discord":
        (embed,) = data["embeds"]
        out = [_discord_plain(data["content"]), _discord_plain(embed["title"]), embed["footer"]["text"]]
        out.append(_discord_plain(embed.get("description", "")))
        out.extend(_discord_plain(f"{f['name']}\n{f['value']}") for f in embed.get("fields", ()))
        return out
    if channel == "webhook":
        return [data["title"], data["headline"], data["text"], *data["lines"], *data.get("fields", {}).values(),
                *(x["label"] for x in data.get("links", ()))]  # fmt: skip
    if data["event_action"] == "resolve":
        return []
    payload = data["payload"]
    details = payload["custom_details"]
    return [payload["summary"], *details["lines"], *(str(v) for k, v in details.items() if k != "lines"),
            *(x["text"] for x in data.get("links", ()))]  # fmt: skip


def _first_lines(channel: str, data: dict[str, Any]) -> list[str]:
    """What a notification preview shows: each channel's headline-like strings."""
    if channel == "slack":
        return [data["blocks"][0]["text"]["text"], _slack_plain(data["text"]).split("\n", 1)[0]]
    if channel == "discord":
        return [_discord_plain(data["content"]).split("\n", 1)[0], _discord_plain(data["embeds"][0]["title"])]
    if channel == "webhook":
        return [data["headline"], data["title"], data["text"].split("\n", 1)[0]]
    return [] if data["event_action"] == "resolve" else [data["payload"]["summary"]]


def _links(channel: str, data: dict[str, Any]) -> dict[str, str]:
    """label -> URL of the links the body carries."""
    if channel == "slack":
        texts = [b["text"]["text"] for b in data["blocks"] if "text" in b]
        return {
            html.unescape(label): url for text in texts for url, label in re.findall(r"<([^|<>]+)\|([^<>]*)>", text)
        }
    if channel == "discord":
        desc = data["embeds"][0].get("description", "")
        return {_discord_plain(label): url for label, url in re.findall(r"\[((?:\\.|[^\]\\])*)\]\(([^)\s]*)\)", desc)}
    if channel == "webhook":
        return {x["label"]: x["url"] for x in data.get("links", ())}
    return {x["text"]: x["href"] for x in data.get("links", ())}


def _telegram_text(message: Message) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", message.html()))


# -- the services' documented limits --------------------------------------------------------------


def _limit_problems(channel: str, data: dict[str, Any], body: bytes) -> list[str]:
    problems: list[str] = []
    if channel == "slack":
        blocks = data["blocks"]
        problems += [f"text {len(data['text'])} > 3000"] if len(data["text"]) > 3000 else []
        problems += [f"{len(blocks)} blocks > 50"] if len(blocks) > 50 else []
        for block in blocks:
            size = len(block.get("text", {}).get("text", ""))
            if block["type"] == "header" and size > 150:
                problems.append(f"header {size} > 150")
            if block["type"] == "section" and "text" in block and not 0 < size <= 3000:
                problems.append(f"section {size} not in 1..3000")
            fields = block.get("fields", [])
            if len(fields) > 10 or any(len(f["text"]) > 2000 for f in fields):
                problems.append("fields beyond 10 x 2000")
        problems += [p for p in [_slack_problem(data)] if p]
    elif channel == "discord":
        embeds = data["embeds"]
        problems += [f"content {len(data['content'])} > 2000"] if len(data["content"]) > 2000 else []
        for embed in embeds:
            fields = embed.get("fields", [])
            sizes = {"title": (len(embed["title"]), 256), "description": (len(embed.get("description", "")), 4096),
                     "footer": (len(embed["footer"]["text"]), 2048), "fields": (len(fields), 25)}  # fmt: skip
            problems += [f"{k} {n} > {m}" for k, (n, m) in sizes.items() if n > m]
            problems += [
                f"field {f['name']!r} too long" for f in fields if len(f["name"]) > 256 or len(f["value"]) > 1024
            ]
            total = sum(sizes[k][0] for k in ("title", "description", "footer"))
            total += sum(len(f["name"]) + len(f["value"]) for f in fields)
            problems += [f"embed total {total} > 6000"] if total > 6000 else []
        problems += [p for p in [_discord_problem(data)] if p]
    elif channel == "pagerduty":
        problems += [f"event {len(body)} bytes > 512 KB"] if len(body) > PD_EVENT_MAX else []
        problems += [f"dedup_key {len(data['dedup_key'])} > 255"] if len(data["dedup_key"]) > 255 else []
        problems += _pagerduty_problems(data)
    return problems


def _whole_lines(channel: str, data: dict[str, Any], message: Message) -> list[str]:
    """The body lines the channel dropped or cut (every line should arrive whole; a PagerDuty
    resolve event carries none by the API's design)."""
    if channel == "slack":
        shown = "\n".join(_slack_plain(b["text"]["text"]) for b in data["blocks"][1:] if "text" in b).split("\n")
    elif channel == "discord":
        shown = _discord_plain(data["embeds"][0].get("description", "")).split("\n")
    elif channel == "webhook":
        shown = data["lines"]
    else:
        if data["event_action"] == "resolve":
            return []
        shown = data["payload"]["custom_details"]["lines"]
    return [line for line in message.lines if line.strip() and line not in shown]


# -- the tests -------------------------------------------------------------------------------


CASES = [(channel, kind) for channel in CHANNELS for kind in sorted(KINDS)]


@pytest.mark.parametrize(("channel", "kind"), CASES)
def test_every_kind_on_every_webhook_channel(channel: str, kind: str) -> None:
    message = KINDS[kind]
    url, body, headers = _post(channel, message)
    _check_snapshot(channel, kind, body)
    data = json.loads(body)
    resolve = channel == "pagerduty" and data["event_action"] == "resolve"

    # first line / title / preview within a phone's 80 characters, and it is the headline
    firsts = _first_lines(channel, data)
    assert resolve or firsts, "no first line"
    for first in firsts:
        assert len(first) <= FIRST_LINE_MAX and "\n" not in first, first
    if firsts:
        assert firsts[0] == message.headline

    # token amounts (and every number) exactly as the Telegram text shows them
    visible = _visible(channel, data)
    shown = "\n".join(URL_RE.sub("", text) for text in visible)
    telegram = URL_RE.sub("", _telegram_text(message))
    if kind in ("watch", "warning", "critical", "liquidatable"):  # repay X, add Y, liquidation price
        assert len(AMOUNT_RE.findall(telegram)) == 3
    if not resolve:
        assert sorted(set(AMOUNT_RE.findall(shown))) == sorted(set(AMOUNT_RE.findall(telegram)))
        missing = [n for n in NUMBER_RE.findall(telegram) if n not in NUMBER_RE.findall(shown)]
        assert not missing, f"numbers of the Telegram text missing on {channel}: {missing}"

    # links: every link of the message, the position's app and explorer for a position
    links = _links(channel, data)
    if resolve:
        assert links == {}  # a resolve event carries only the incident key
    else:
        assert links == dict(message.links)
    if kind in POSITION_KINDS and not resolve:
        assert links["Position"] == "https://app.aave.com/"
        assert links["Explorer"].startswith("https://etherscan.io/address/0x")
        if channel == "discord":
            assert data["embeds"][0]["url"] == "https://app.aave.com/"

    # no internal reason codes in anything a person reads (URLs aside)
    for text in visible:
        assert not REASON_CODES.search(URL_RE.sub("", text)), text

    # no secret in the body; PagerDuty's routing key only where the API wants it
    raw = body.decode()
    for secret in SECRETS[channel]:
        assert raw.count(secret) == (1 if channel == "pagerduty" else 0), secret
        assert all(secret not in v for k, v in headers.items() if k != "Authorization"), secret
    if channel == "pagerduty":
        assert data["routing_key"] == PAGERDUTY_KEY and PAGERDUTY_KEY not in url
    if channel == "webhook":
        assert headers["Idempotency-Key"] == "outbox:1" and headers["X-Liqmon-Timestamp"] == str(int(NOW))
        mac = hmac.new(SIGNING_SECRET.encode(), f"{int(NOW)}.".encode() + body, hashlib.sha256).hexdigest()
        assert headers["X-Liqmon-Signature"] == f"v1={mac}"
        assert data["text"] == message.plain()
    if channel == "discord":
        assert url.endswith("?wait=true") and data["allowed_mentions"] == {"parse": []}

    # the service's size limits, every body line whole
    assert _limit_problems(channel, data, body) == []
    assert _whole_lines(channel, data, message) == []


def test_the_pagerduty_resolve_closes_the_incident_its_trigger_opened() -> None:
    events = {kind: json.loads(_post("pagerduty", KINDS[kind])[1]) for kind in KINDS}
    position = {events[k]["dedup_key"] for k in ("watch", "warning", "critical", "resolved")}
    assert position == {f"liqmon/aave-v3/{KINDS['warning'].field_map['account'].lower()}"}
    assert events["resolved"] == {"routing_key": PAGERDUTY_KEY, "event_action": "resolve",
                                  "dedup_key": position.pop()}  # fmt: skip
    assert events["oracle_resolved"]["event_action"] == "resolve"
    assert events["oracle_resolved"]["dedup_key"] == events["oracle_divergence"]["dedup_key"] == "liqmon/aave-v3/oracle"
    assert events["liquidatable"]["payload"]["severity"] == "critical"
    assert events["watch"]["payload"]["severity"] == "info"
    assert events["test"]["dedup_key"] not in {e["dedup_key"] for k, e in events.items() if k != "test"}


def test_the_longest_kind_is_within_every_limit_with_room() -> None:
    longest = max(KINDS, key=lambda k: len(KINDS[k].plain()))
    assert longest in POSITION_KINDS
    for channel in CHANNELS:
        _, body, _ = _post(channel, KINDS[longest])
        data = json.loads(body)
        assert _limit_problems(channel, data, body) == []
        if channel == "slack":
            assert max(len(b.get("text", {}).get("text", "")) for b in data["blocks"]) < 3000 // 2
        if channel == "discord":
            assert len(data["embeds"][0]["description"]) < 4096 // 2


# -- a grouped message ------------------------------------------------------------------------


@functools.cache
def _group_entries() -> list[Entry]:
    """120 alerts for one destination: an oracle jump on WETH moving 20 positions, 99 others."""
    entries = []
    jump = Anomaly("jump", "WETH", "critical", "WETH moved -23.90% (1953.1 -> 1486.3) in 6 h: 11.2 sigma", 11.2)
    snap0 = _snapshot([])
    head = render_anomaly(snap0, jump, "oracle:jump:WETH", "first", CFG)
    entries.append(Entry(1, {"subject": "oracle:jump:WETH", "market": "aave-v3", "severity": "critical"}, head))
    for i in range(119):
        account = f"0x{0xA11CE000 + i:040x}"
        pos = _position(account, (10 * E18, 0, 0), (0, (9_000 + 50 * i) * E6, 0))  # HF 1.64 .. 0.99
        hf = pos.health_factor / WAD
        severity, level = (("liquidatable", 1.0) if hf < 1 else ("critical", 1.10) if hf < 1.10
                           else ("warning", 1.25) if hf < 1.25 else ("watch", 1.40))  # fmt: skip
        message = render(_snapshot([pos]), _assessment(pos, severity, level), "first", "ok", CFG)
        alert = {"subject": account, "market": "aave-v3", "severity": severity, "hf": hf,
                 **({"cause": "oracle:jump:WETH"} if i % 6 == 0 else {})}  # fmt: skip
        entries.append(Entry(2 + i, alert, message))
    assert sum(1 for e in entries if e.alert.get("cause")) == 20
    return entries


def _channel_object(channel: str) -> object:
    rec = Recorder(200)
    if channel == "slack":
        return SlackChannel("slack", SLACK_URL, session=rec)
    if channel == "discord":
        return DiscordChannel("discord", DISCORD_URL, session=rec)
    if channel == "webhook":
        return WebhookChannel("hook", HOOK_URL, session=rec)
    return PagerDutyChannel("pd", PAGERDUTY_KEY, session=rec)


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_grouped_message_of_120_alerts_fits_each_channel(channel: str) -> None:
    entries = _group_entries()
    limit = size_limit(_channel_object(channel))
    if channel == "pagerduty":  # opts out of grouping: an event (an incident) per alert
        assert limit is None
        events = [json.loads(_post(channel, e.message)[1]) for e in entries]
        assert all(_limit_problems(channel, ev, json.dumps(ev).encode()) == [] for ev in events)
        assert len({ev["dedup_key"] for ev in events}) == 120  # 119 positions + the market's oracle
        assert all(len(ev["payload"]["summary"]) <= FIRST_LINE_MAX for ev in events)
        return
    assert limit is not None
    parts = compose(entries, limit, 100)
    carried = sorted(i for _, ids in parts for i in ids)
    assert carried == list(range(1, 121))  # every alert in exactly one part
    for n, (message, _) in enumerate(parts):
        _, body, _ = _post(channel, message)
        data = json.loads(body)
        if n == 0:
            _check_snapshot(channel, "group", body)
            at = message.lines.index(entry_line(entries[0].message) + " — moved 20 positions:")
            assert all(line.startswith(CHILD_PREFIX) for line in message.lines[at + 1 : at + 21])
            assert message.lines[0].startswith("🚨 LIQUIDATABLE ")  # sorted by urgency
        assert _limit_problems(channel, data, body) == [], (len(parts), n)
        assert _whole_lines(channel, data, message) == [], f"part {n + 1}/{len(parts)} lost lines on {channel}"
        assert _first_lines(channel, data)[0] == message.headline  # its length: the test below
        for text in _visible(channel, data):
            assert not REASON_CODES.search(URL_RE.sub("", text)), text
        for secret in SECRETS[channel]:
            assert secret not in body.decode()
    # the minimum split (greedy packing): no more parts than the size or the 100 entries force, plus one
    total = limit.measure(Message("", "critical", "x", tuple(line for m, _ in parts for line in m.lines)))
    assert len(parts) <= max(math.ceil(len(entries) / 100), math.ceil(total / limit.limit)) + 1


@pytest.mark.parametrize("channel", ["slack", "discord", "webhook"])
def test_a_grouped_message_headline_fits_a_phone(channel: str) -> None:
    limit = size_limit(_channel_object(channel))
    assert limit is not None
    for message, _ in compose(_group_entries(), limit, 100):
        data = json.loads(_post(channel, message)[1])
        for first in _first_lines(channel, data):
            assert len(first) <= FIRST_LINE_MAX, first
