"""Generic webhook, Slack and Discord channels against local HTTP peers, with faults: delivered,
retried on 429 / 5xx honouring the service's retry_after, final on other 4xx, FIFO through the
outbox, secrets (the webhook URLs, the signing key) never in an error, a repr or a log."""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import logging
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.alerts import discord as discord_format
from monitor.alerts import slack as slack_format
from monitor.alerts.channels import Channel, DeliveryError
from monitor.alerts.discord import DiscordChannel
from monitor.alerts.factory import build_channels
from monitor.alerts.message import Message
from monitor.alerts.outbox import deliver_due
from monitor.alerts.pagerduty import PagerDutyChannel, dedup_key
from monitor.alerts.slack import SlackChannel
from monitor.alerts.webhook import WebhookChannel, seconds_from_header, signature
from monitor.config import load_config, redact
from monitor.errors import ConfigError
from monitor.store import Store
from tests.support_webhooks import DISCORD_PATH, PAGERDUTY_KEY, SLACK_PATH, WebhookServer

ADDRESS = "0x" + "aB" * 20
SLACK_SECRET = SLACK_PATH.rsplit("/", 1)[1]
DISCORD_SECRET = DISCORD_PATH.rsplit("/", 1)[1]
SIGNING_KEY = "whsec-liqmon-test-0123456789"


def alert(title: str = "main: HF 1.0100", *lines: str, severity: str = "critical", key: str = "outbox:1") -> Message:
    return Message(key=key, severity=severity, title=title, lines=lines or (f"account {ADDRESS}", "repay 10 USDC"))


@pytest.fixture
def generic() -> Iterator[WebhookServer]:
    with WebhookServer("generic", secret=SIGNING_KEY) as server:
        yield server


@pytest.fixture
def slack() -> Iterator[WebhookServer]:
    with WebhookServer("slack") as server:
        yield server


@pytest.fixture
def discord() -> Iterator[WebhookServer]:
    with WebhookServer("discord") as server:
        yield server


def hook(server: WebhookServer, **kw: Any) -> WebhookChannel:
    kw.setdefault("secret", SIGNING_KEY)
    return WebhookChannel("hook", server.url, **kw)


def slack_channel(server: WebhookServer, **kw: Any) -> SlackChannel:
    return SlackChannel("slack", server.url, display="http://127.0.0.1/<secret>", min_interval_s=0, **kw)


def discord_channel(server: WebhookServer, **kw: Any) -> DiscordChannel:
    return DiscordChannel("discord", server.url, display="http://127.0.0.1/<secret>", min_interval_s=0, **kw)


def channels_for(kind: str, server: WebhookServer, **kw: Any) -> Channel:
    if kind == "slack":
        return slack_channel(server, **kw)
    if kind == "discord":
        return discord_channel(server, **kw)
    return hook(server, **kw)


# --------------------------------------------------------------------------- generic webhook


def test_webhook_posts_signed_json_with_an_idempotency_key(generic: WebhookServer) -> None:
    ch = hook(generic, headers={"Authorization": "Bearer t0ken-abc"}, wall_clock=lambda: 1_800_000_000.0)
    assert isinstance(ch, Channel)
    generic.secret = None  # the fixed clock is far from now: check the signature here instead
    message = alert("m: <b>& title", f"account {ADDRESS}", "line 2", key="outbox:7")
    ch.send(message)
    (got,) = generic.wait_for(1)
    assert got.json == {
        "version": 1, "source": "liqmon", "key": "outbox:7", "severity": "critical", "title": "m: <b>& title",
        "lines": [f"account {ADDRESS}", "line 2"], "text": message.plain(), "headline": message.headline,
    }  # fmt: skip
    assert got.headers["content-type"].startswith("application/json")
    assert got.headers["idempotency-key"] == "outbox:7"
    assert got.headers["authorization"] == "Bearer t0ken-abc"
    stamp = got.headers["x-liqmon-timestamp"]
    assert stamp == "1800000000"
    mac = hmac.new(SIGNING_KEY.encode(), stamp.encode() + b"." + got.body, hashlib.sha256).hexdigest()
    assert got.headers["x-liqmon-signature"] == f"v1={mac}" == signature(SIGNING_KEY, stamp, got.body)
    assert SIGNING_KEY not in repr(ch) and "t0ken-abc" not in repr(ch)


def test_webhook_signature_verified_by_the_receiver_and_a_wrong_key_is_final(generic: WebhookServer) -> None:
    hook(generic).send(alert())  # the peer checks the signature and the timestamp's freshness
    assert len(generic.wait_for(1)) == 1
    with pytest.raises(DeliveryError) as info:
        hook(generic, secret="another-key-entirely").send(alert())
    assert info.value.retryable is False and info.value.kind == "auth"
    assert "another-key" not in str(info.value)
    unsigned = WebhookServer("generic").start()
    try:
        hook(unsigned, secret=None).send(alert())
        (got,) = unsigned.wait_for(1)
        assert "x-liqmon-signature" not in got.headers and "x-liqmon-timestamp" in got.headers
    finally:
        unsigned.close()


def test_webhook_refuses_headers_it_sets_itself() -> None:
    for name in ("Idempotency-Key", "content-type", "X-Liqmon-Signature"):
        with pytest.raises(ConfigError, match="set by liqmon"):
            WebhookChannel("hook", "http://127.0.0.1:1/x", headers={name: "x"})
    with pytest.raises(ConfigError, match="not an http"):
        WebhookChannel("hook", "ftp://example.com/x")


def test_retry_after_header_in_seconds_or_as_an_http_date() -> None:
    now = 1_800_000_000.0
    assert seconds_from_header("17", now) == 17.0
    assert seconds_from_header(email.utils.formatdate(now + 42, usegmt=True), now) == 42.0
    assert seconds_from_header(email.utils.formatdate(now - 42, usegmt=True), now) == 0.0  # past: now
    for bad in (None, "", "soon", "-3", "inf", "nan"):
        assert seconds_from_header(bad, now) is None


# --------------------------------------------------------------------------- every flavour: faults


@pytest.mark.parametrize("kind", ["generic", "slack", "discord"])
def test_429_is_retryable_with_the_services_retry_after(kind: str) -> None:
    with WebhookServer(kind) as server:  # type: ignore[arg-type]
        ch = channels_for(kind, server, **({"secret": None} if kind == "generic" else {}))
        server.too_many_requests(retry_after=1.5 if kind == "discord" else 17)
        with pytest.raises(DeliveryError) as info:
            ch.send(alert(), "")
        assert info.value.retryable is True
        # Discord's JSON retry_after (fractional seconds) wins over its rounded-up header
        assert info.value.retry_after == (1.5 if kind == "discord" else 17.0)
        assert "rate-limited" in str(info.value)
        ch.send(alert(), "")  # the next request goes through
        assert len(server.wait_for(1)) == 1


@pytest.mark.parametrize("kind", ["generic", "slack", "discord"])
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retryable(kind: str, status: int) -> None:
    with WebhookServer(kind) as server:  # type: ignore[arg-type]
        server.server_error(status)
        with pytest.raises(DeliveryError) as info:
            channels_for(kind, server, **({"secret": None} if kind == "generic" else {})).send(alert(), "")
        assert info.value.retryable is True and info.value.retry_after is None
        assert f"HTTP {status}" in str(info.value)


@pytest.mark.parametrize(
    ("kind", "status", "body", "kind_label", "says"),
    [
        ("slack", 400, "invalid_payload", "http_400", "invalid_payload"),
        ("slack", 403, "action_prohibited", "auth", "action_prohibited"),
        ("slack", 404, "channel_not_found", "not_found", "channel_not_found"),
        ("slack", 410, "channel_is_archived", "not_found", "channel_is_archived"),
        ("discord", 401, {"message": "Invalid Webhook Token", "code": 50027}, "auth", "Token, code 50027"),
        ("discord", 400, {"message": "Invalid Form Body", "code": 50035}, "http_400", "Invalid Form Body"),
        ("generic", 422, {"error": "unprocessable"}, "http_422", "unprocessable"),
        ("generic", 301, "", "redirect", "redirect"),
    ],
)  # fmt: skip
def test_other_4xx_and_redirects_are_final_with_the_services_words(
    kind: str, status: int, body: Any, kind_label: str, says: str, caplog: pytest.LogCaptureFixture
) -> None:
    with WebhookServer(kind) as server:  # type: ignore[arg-type]
        extra = {"Location": "http://127.0.0.1:1/elsewhere"} if status == 301 else None
        server.answer(status, body, extra)
        ch = channels_for(kind, server, **({"secret": None} if kind == "generic" else {}))
        with caplog.at_level(logging.DEBUG), pytest.raises(DeliveryError) as info:
            ch.send(alert(), "")
    err = info.value
    assert err.retryable is False and err.kind == kind_label
    assert says in str(err)
    for secret in (SLACK_SECRET, DISCORD_SECRET):
        assert secret not in str(err) and secret not in repr(ch) and secret not in caplog.text
    assert err.__cause__ is None and err.__context__ is None


def test_unknown_webhook_paths_are_final(slack: WebhookServer, discord: WebhookServer) -> None:
    gone = {"slack": (slack, "no_service"), "discord": (discord, "Unknown Webhook, code 10015")}
    for kind, (server, says) in gone.items():
        wrong = server.url.replace(server.path, server.path[:-4] + "XXXX")
        ch: Channel = (SlackChannel if kind == "slack" else DiscordChannel)(kind, wrong, min_interval_s=0)
        with pytest.raises(DeliveryError) as info:
            ch.send(alert(), "")
        assert info.value.retryable is False and info.value.kind == "not_found" and says in str(info.value)
        assert "XXXX" not in str(info.value)  # the URL is the secret: only its display form is shown


@pytest.mark.parametrize("kind", ["generic", "slack", "discord"])
def test_timeout_and_refused_connection_are_retryable(kind: str) -> None:
    with WebhookServer(kind) as server:  # type: ignore[arg-type]
        server.stall(5.0)
        ch = channels_for(kind, server, timeout=0.3, **({"secret": None} if kind == "generic" else {}))
        with pytest.raises(DeliveryError) as info:
            ch.send(alert(), "")
        assert info.value.retryable is True and "timed out" in str(info.value)
        assert info.value.__context__ is None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/T/B/{SLACK_SECRET}"
    with pytest.raises(DeliveryError) as info:
        SlackChannel("slack", url, timeout=2).send(alert(), "")
    assert info.value.retryable is True and "cannot connect" in str(info.value)
    assert SLACK_SECRET not in str(info.value) and info.value.__context__ is None


def test_webhook_channels_take_no_destination() -> None:
    for ch in (WebhookChannel("h", "http://127.0.0.1:1/x"), SlackChannel("s", "http://127.0.0.1:1/x"),
               DiscordChannel("d", "http://127.0.0.1:1/x")):  # fmt: skip
        ch.validate_destination("")
        with pytest.raises(ConfigError, match="remove the route's 'to'"):
            ch.validate_destination("#alerts")


# --------------------------------------------------------------------------- Slack and Discord limits


def test_slack_escapes_markup_and_fits_a_huge_message_within_its_limits(slack: WebhookServer) -> None:
    body = [f"line {i} {ADDRESS} <!channel> & <https://evil|click> " + "x" * 60 for i in range(3000)]
    message = alert("m <!here> & " + "T" * 300, *body)
    slack_channel(slack).send(message, "")
    (got,) = slack.wait_for(1)  # the peer enforces the limits (400 invalid_blocks otherwise)
    data = got.json
    header = data["blocks"][0]["text"]["text"]
    assert header == slack_format.cut(message.headline, 150) and "<!here>" in header  # plain_text: no markup
    sections = [b["text"]["text"] for b in data["blocks"] if b["type"] == "section"]
    assert len(data["blocks"]) <= 50 and all(len(s) <= 3000 for s in sections)
    assert "more sections left out" in sections[-1]
    assert "<!channel>" not in json.dumps(data) and "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;" in sections[0]
    assert f"`{ADDRESS}`" in sections[0]
    assert len(data["text"]) <= 3000 and data["text"].startswith(slack_format.escape(message.headline))
    assert "&lt;!here&gt;" in data["text"]
    assert data["unfurl_links"] is False


def test_discord_content_embed_limits_and_no_mentions(discord: WebhookServer) -> None:
    body = [f"line {i} {ADDRESS} @everyone **bold** [x](https://evil) " + "y" * 80 for i in range(200)]
    message = alert("m @here " + "T" * 3000, *body, severity="warning")
    discord_channel(discord, username="liqmon").send(message, "")
    (got,) = discord.wait_for(1)  # the peer enforces Discord's limits (400 code 50035 otherwise)
    assert got.query == {"wait": "true"}
    data = got.json
    assert data["allowed_mentions"] == {"parse": []} and data["username"] == "liqmon"
    assert len(data["content"]) <= 2000 and data["content"] == discord_format.cut(
        discord_format.escape(message.headline), 2000
    )
    assert "\\@here" in data["content"] and "\\@here" in embed_title(data)
    (embed,) = data["embeds"]
    assert len(embed["title"]) <= 256 and len(embed["description"]) <= 4096
    assert len(embed["title"]) + len(embed["description"]) + len(embed["footer"]["text"]) <= 6000
    assert embed["color"] == 0xF1C40F and embed["footer"]["text"] == "liqmon outbox:1"
    first = embed["description"].split("\n")[0]
    assert first == f"line 0 `{ADDRESS}` \\@everyone \\*\\*bold\\*\\* \\[x\\]\\(https\\://evil\\) " + "y" * 80
    assert embed["description"].endswith("…")


def embed_title(data: dict[str, Any]) -> str:
    return str(data["embeds"][0]["title"])


# --------------------------------------------------------------------------- through the outbox


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    clock = Clock()
    with Store(tmp_path / "o.db", clock=clock) as s:
        s.clock_ref = clock  # type: ignore[attr-defined]
        yield s


def enqueue(store: Store, n: int, channels: tuple[str, ...]) -> None:
    alerts = []
    for i in range(n):
        message = json.dumps({"severity": "warning", "title": f"m: account {i}", "lines": [f"alert {i}"]})
        alerts.append(({"subject": f"0x{i:040x}", "severity": "warning", "previous": "ok", "reason": "first",
                        "hf": 1.05, "threshold": 1.1, "detail": message},
                       [{"channel": c, "destination": "", "message": message} for c in channels]))  # fmt: skip
    store.record_alerts("m", 1, [], alerts)


def test_429_and_5xx_delay_but_never_lose_reorder_or_duplicate(store: Store) -> None:
    clock: Clock = store.clock_ref  # type: ignore[attr-defined]
    with WebhookServer("generic", secret=SIGNING_KEY) as g, WebhookServer("slack") as s, WebhookServer("discord") as d:
        channels: dict[str, Channel] = {"hook": hook(g), "slack": slack_channel(s), "discord": discord_channel(d)}
        enqueue(store, 5, tuple(channels))
        s.too_many_requests(retry_after=30)
        d.too_many_requests(retry_after=2.5)
        g.server_error(503)
        stats = deliver_due(store, channels, clock())
        assert stats.sent == 0 and stats.retried == 3 and stats.held == 12  # order per destination kept
        pending = {r["channel"]: r for r in store.outbox("pending") if r["attempts"] == 1}
        assert pending["slack"]["next_attempt_at"] >= clock() + 30  # Retry-After honoured
        assert pending["discord"]["next_attempt_at"] >= clock() + 2.5
        clock.now += 5  # the generic hook's backoff and Discord's wait are over, Slack's is not
        stats = deliver_due(store, channels, clock())
        assert stats.sent == 10 and s.received == []
        clock.now += 60
        assert deliver_due(store, channels, clock()).sent == 5
        for server in (g, s, d):
            got = server.received
            assert len(got) == 5, server.flavour  # each once
            if server is g:
                assert [r.json["lines"][0] for r in got] == [f"alert {i}" for i in range(5)]  # FIFO
                keys = [int(r.headers["idempotency-key"].split(":")[1]) for r in got]
                assert keys == sorted(keys)  # the outbox ids, in order
        assert [r.json["blocks"][1]["text"]["text"] for r in s.received] == [f"alert {i}" for i in range(5)]
        assert [r.json["embeds"][0]["description"] for r in d.received] == [f"alert {i}" for i in range(5)]
        assert store.outbox("pending") == [] and len(store.outbox("sent")) == 15
        assert deliver_due(store, channels, clock() + 3600).sent == 0  # nothing is sent twice


def test_permanent_failure_is_recorded_not_retried_and_holds_no_secret(store: Store) -> None:
    clock: Clock = store.clock_ref  # type: ignore[attr-defined]
    with WebhookServer("slack") as s:
        s.answer(404, "channel_not_found")
        enqueue(store, 2, ("slack",))
        stats = deliver_due(store, {"slack": slack_channel(s)}, clock())
        assert stats.failed == 1 and stats.sent == 1  # a permanent failure does not hold the next message
        (failed,) = store.outbox("failed")
        assert "channel_not_found" in failed["last_error"] and SLACK_SECRET not in failed["last_error"]
        assert deliver_due(store, {"slack": slack_channel(s)}, clock() + 3600).sent == 0


# --------------------------------------------------------------------------- config


BASE: dict[str, Any] = {
    "chains": {"eth": {"chain_id": 1, "rpc_urls": ["http://127.0.0.1:8545"]}},
    "markets": [{"name": "m", "protocol": "aave_v3", "chain": "eth",
                 "pool_addresses_provider": "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e"}],
}  # fmt: skip
SLACK_URL = f"https://hooks.slack.com/services/T0/B0/{SLACK_SECRET}"
DISCORD_URL = f"https://discord.com/api/webhooks/1/{DISCORD_SECRET}"
ENV = {"SLACK_URL": SLACK_URL, "DISCORD_URL": DISCORD_URL, "HOOK_TOKEN": "hooktok3n", "HOOK_KEY": SIGNING_KEY}


def config(tmp_path: Path, channels: dict[str, Any], routes: list[dict[str, Any]] | None = None) -> Path:
    routes = routes if routes is not None else [{"channel": name} for name in channels]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(dict(BASE, alerts={"channels": channels, "routes": routes})))
    return path


CHANNELS: dict[str, Any] = {
    "ops": {"type": "slack", "url": "${SLACK_URL}"},
    "chat": {"type": "discord", "url": "${DISCORD_URL}", "username": "liqmon"},
    "hook": {"type": "webhook", "url": "https://alerts.example.com/in?token=${HOOK_TOKEN}", "secret_env": "HOOK_KEY",
             "headers": {"X-Team": "risk"}},
}  # fmt: skip


def test_config_builds_every_webhook_channel_and_masks_its_secrets(tmp_path: Path) -> None:
    cfg = load_config(config(tmp_path, CHANNELS), env=ENV)
    a = cfg.alerts
    assert a.channels["ops"].url is not None and a.channels["ops"].url.value == SLACK_URL
    assert str(a.channels["ops"].url) == "'https://hooks.slack.com/<secret>'"
    assert str(a.channels["hook"].url) == "'https://alerts.example.com/in?token=<secret>'"
    assert a.channels["ops"].min_interval_s == 1.0 and a.channels["chat"].min_interval_s == 0.5
    assert [r.to for r in a.routes] == ["", "", ""]
    text = repr(a) + repr(build_channels(a))
    for secret in (SLACK_SECRET, DISCORD_SECRET, "hooktok3n", SIGNING_KEY):
        assert secret not in text
        assert secret not in redact(f"POST {SLACK_URL} {DISCORD_URL} token=hooktok3n key={SIGNING_KEY}", cfg)
    built = build_channels(a)
    assert isinstance(built["ops"], SlackChannel) and isinstance(built["chat"], DiscordChannel)
    assert isinstance(built["hook"], WebhookChannel) and built["chat"].username == "liqmon"


@pytest.mark.parametrize(
    ("channel", "routes", "env", "match"),
    [
        ({"type": "slack", "url": SLACK_URL}, None, ENV, r"ops\.url: the webhook URL is a secret"),
        ({"type": "discord", "url": "${NOPE}"}, None, ENV, "environment variable NOPE is not set"),
        ({"type": "slack", "url": "${SLACK_URL}"}, None, {"SLACK_URL": "http://hooks.slack.com/x/y"}, "use https"),
        ({"type": "slack", "url": "${SLACK_URL}"}, None, {"SLACK_URL": "ftp://not.http/x"}, "not an http"),
        ({"type": "slack", "url": "${SLACK_URL}"}, [{"channel": "ops", "to": "#risk"}], ENV, r"routes\[0\]\.to"),
        ({"type": "webhook", "url": "https://x.io/${HOOK_TOKEN"}, None, ENV, "malformed environment reference"),
        ({"type": "webhook", "url": "https://x.io/", "secret_env": "NOPE"}, None, ENV, "NOPE is not set"),
        ({"type": "webhook", "url": "https://x.io/", "headers": {"Content-Type": "x"}}, None, ENV, "set by liqmon"),
        ({"type": "webhook", "url": "https://x.io/", "headers": {"X-A": "a\nb"}}, None, ENV, "line break"),
        ({"type": "webhook", "url": "https://x.io/", "token_env": "X"}, None, ENV, "token_env"),
        ({"type": "webhook", "url": "https://x.io/", "headers": {"Authorization": "Bearer abc123"}}, None, ENV,
         "credential header takes its value from the environment"),
        ({"type": "webhook", "url": "https://x.io/", "headers": {"X-Api-Key": "k3y"}}, None, ENV, "credential"),
        ({"type": "discord"}, None, ENV, r"ops\.url"),
    ],
)  # fmt: skip
def test_config_errors_name_the_key_never_the_secret(
    tmp_path: Path, channel: dict[str, Any], routes: list[dict[str, Any]] | None, env: dict[str, str], match: str
) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        load_config(config(tmp_path, {"ops": channel}, routes), env=env)
    assert SLACK_SECRET not in str(info.value) and "\n" not in str(info.value)


def test_plain_http_webhook_without_secrets_is_allowed_inside_a_network(tmp_path: Path) -> None:
    path = config(tmp_path, {"am": {"type": "webhook", "url": "http://alertmanager:9093/api/v2/alerts"}})
    (ch,) = build_channels(load_config(path, env={}).alerts).values()
    assert "alertmanager:9093" in repr(ch)


# --------------------------------------------------------------------------- structured fields and links


def structured(severity: str = "warning", market: str = "m", account: str = ADDRESS) -> Message:
    fields = (("severity", severity), ("account", account), ("label", "treasury"), ("chain", "Ethereum"),
              ("market", market), ("hf", "1.4900"), ("level", "1.50"), ("block", "19,000,000"))  # fmt: skip
    return Message(key="outbox:9", severity=severity, title="treasury · m · HF 1.49 → warning",
                   lines=("Repay 10 USDC.",), links=(("Position", "https://app.aave.com/?a=b|c"),
                                                      ("Explorer", f"https://etherscan.io/address/{account}")),
                   fields=fields)  # fmt: skip


def test_webhook_body_carries_the_structured_fields_and_links(generic: WebhookServer) -> None:
    hook(generic).send(structured())
    (got,) = generic.wait_for(1)
    assert got.json["fields"]["account"] == ADDRESS and got.json["fields"]["hf"] == "1.4900"
    assert got.json["links"][1] == {"label": "Explorer", "url": f"https://etherscan.io/address/{ADDRESS}"}


def test_slack_and_discord_show_fields_and_links(slack: WebhookServer, discord: WebhookServer) -> None:
    slack_channel(slack).send(structured(), "")
    discord_channel(discord).send(structured(), "")
    s = slack.wait_for(1)[0].json
    (fields,) = [b["fields"] for b in s["blocks"] if "fields" in b]
    assert fields[0]["text"] == "*Wallet*\ntreasury" and f"*Account*\n`{ADDRESS}`" in [f["text"] for f in fields]
    links = s["blocks"][-2]["text"]["text"]
    assert links.startswith("<https://app.aave.com/?a=b%7Cc|Position> · <https://etherscan.io/address/")
    embed = discord.wait_for(1)[0].json["embeds"][0]
    assert {"name": "Health factor", "value": "1.4900", "inline": True} in embed["fields"]
    assert embed["url"] == "https://app.aave.com/?a=b|c"
    assert embed["description"].endswith(f"[Explorer](https://etherscan.io/address/{ADDRESS})")


# --------------------------------------------------------------------------- PagerDuty


@pytest.fixture
def pagerduty() -> Iterator[WebhookServer]:
    with WebhookServer("pagerduty") as server:
        yield server


def pd(server: WebhookServer, key: str = PAGERDUTY_KEY) -> PagerDutyChannel:
    return PagerDutyChannel("pd", key, url=server.url, wall_clock=lambda: 1_800_000_000.0)


def test_pagerduty_one_incident_per_episode_resolved_by_its_message(pagerduty: WebhookServer) -> None:
    ch = pd(pagerduty)
    ch.send(structured("warning"))
    ch.send(structured("warning"))  # an at-least-once retry of the same alert: the same incident
    ch.send(structured("critical"))  # escalation within the episode: the same incident
    ch.send(structured("warning", account="0x" + "cD" * 20))  # another position: its own incident
    key = f"liqmon/m/{ADDRESS.lower()}"
    assert set(pagerduty.incidents) == {key, f"liqmon/m/0x{'cd' * 20}"} and len(pagerduty.incidents[key]) == 3
    first = pagerduty.incidents[key][0]
    assert first["payload"]["severity"] == "warning" and first["payload"]["source"] == "liqmon"
    assert first["payload"]["component"] == "m" and first["payload"]["group"] == "Ethereum"
    assert first["payload"]["timestamp"] == "2027-01-15T08:00:00+00:00"
    assert first["payload"]["custom_details"]["hf"] == "1.4900" and first["links"][0]["text"] == "Position"
    assert pagerduty.incidents[key][2]["payload"]["severity"] == "critical"
    resolved = replace(structured("warning"), severity="resolved")
    ch.send(resolved)
    assert key not in pagerduty.incidents and pagerduty.resolved == [key]
    assert pagerduty.received[-1].json == {"routing_key": PAGERDUTY_KEY, "event_action": "resolve", "dedup_key": key}
    ch.send(structured("warning"))  # the next episode: a new incident
    assert len(pagerduty.incidents[key]) == 1
    oracle = Message("outbox:3", "critical", "oracle", (), fields=(("severity", "critical"), ("market", "m")))
    assert dedup_key(oracle) == "liqmon/m/oracle"
    assert dedup_key(Message("k", "test", "t")) != dedup_key(Message("k2", "test", "t"))


def test_pagerduty_errors(pagerduty: WebhookServer) -> None:
    wrong = "X" * 32
    with pytest.raises(DeliveryError) as info:
        pd(pagerduty, key=wrong).send(structured())
    assert info.value.retryable is False and "'routing_key' is invalid" in str(info.value)
    assert wrong not in str(info.value) and wrong not in repr(pd(pagerduty, key=wrong))
    pagerduty.too_many_requests(retry_after=1)
    with pytest.raises(DeliveryError) as info:
        pd(pagerduty).send(structured())
    assert info.value.retryable is True and "throttle event" in str(info.value)
    pagerduty.server_error(502)
    with pytest.raises(DeliveryError) as info:
        pd(pagerduty).send(structured())
    assert info.value.retryable is True
    with pytest.raises(ConfigError, match="32-character"):
        PagerDutyChannel("pd", "short")
    long_title = replace(structured(), title="x" * 3000)
    pd(pagerduty).send(long_title)  # the summary is cut to PagerDuty's 1,024 characters
    assert len(pagerduty.received[-1].json["payload"]["summary"]) == 1024


def test_pagerduty_config(tmp_path: Path) -> None:
    env = {"PD_KEY": PAGERDUTY_KEY}
    a = load_config(config(tmp_path, {"pd": {"type": "pagerduty", "routing_key_env": "PD_KEY"}}), env=env).alerts
    (ch,) = build_channels(a).values()
    assert isinstance(ch, PagerDutyChannel) and "events.pagerduty.com" in repr(ch) and PAGERDUTY_KEY not in repr(a)
    assert PAGERDUTY_KEY in a.secrets()
    for body, env_, match in (
        ({"type": "pagerduty"}, env, "routing_key_env: required"),
        ({"type": "pagerduty", "routing_key_env": "PD_KEY"}, {"PD_KEY": "short"}, "32-character"),
        ({"type": "pagerduty", "routing_key_env": "PD_KEY", "url": "http://events.example.com/v2/enqueue"}, env,
         "use https"),
    ):  # fmt: skip
        with pytest.raises(ConfigError, match=match) as info:
            load_config(config(tmp_path, {"pd": body}), env=env_)
        assert PAGERDUTY_KEY not in str(info.value)


def test_doctor_builds_and_test_sends_through_a_webhook_channel_without_the_secret(
    tmp_path: Path, slack: WebhookServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.doctor import run_doctor

    monkeypatch.setenv("SLACK_URL", slack.url)
    path = config(tmp_path, {"ops": {"type": "slack", "url": "${SLACK_URL}", "min_interval_s": 0}})
    rows = run_doctor(path, send_test=True)  # the RPC check fails (nothing on :8545): not what is tested
    text = " ".join(f"{r.check} {r.target} {r.status} {r.detail}" for r in rows)
    assert "slack channel built (http://127.0.0.1:" in text and "/<secret>)" in text
    assert SLACK_SECRET not in text
    assert [r.status for r in rows if r.check == "route"] == ["OK"], text
    (got,) = slack.wait_for(1)
    assert "doctor" in json.dumps(got.json)
