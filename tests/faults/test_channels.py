"""Delivery channels against local Telegram and SMTP peers, with faults (no internet)."""

from __future__ import annotations

import io
import logging
import socket
import ssl
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.alerts.channels import Channel, DeliveryError
from monitor.alerts.console import ConsoleChannel
from monitor.alerts.email import EmailChannel
from monitor.alerts.message import Message, truncate_html, utf16_len
from monitor.alerts.telegram import TelegramChannel, parse_chat_id
from monitor.errors import ConfigError, MonitorError
from tests.support_peers import (
    TELEGRAM_TEST_TOKEN,
    SmtpServer,
    TelegramHtmlError,
    TelegramServer,
    telegram_html_to_text,
)

ADDRESS = "0x" + "aB" * 20
CHAT = 424242
GROUP = -1001234567890


def alert(title: str = "CRITICAL main: HF 1.0100", *lines: str, severity: str = "critical") -> Message:
    return Message(key="outbox:1", severity=severity, title=title, lines=lines)


# --------------------------------------------------------------------------- message rendering


def test_html_escapes_every_piece_and_marks_addresses() -> None:
    msg = alert("a <b>& title", f"account {ADDRESS} <i>x</i> & y", "plain")
    html_text = msg.html()
    assert html_text == (
        "<b>🔴 CRITICAL a &lt;b&gt;&amp; title</b>\n"
        f"account <code>{ADDRESS}</code> &lt;i&gt;x&lt;/i&gt; &amp; y\nplain"
    )
    assert telegram_html_to_text(html_text) == msg.plain()  # the headline (badge + title), then the body


def test_message_rejects_unknown_severity() -> None:
    with pytest.raises(ValueError, match="'severe'"):
        Message("k", "severe", "t", ())


def test_truncate_html_leaves_short_text_alone() -> None:
    assert truncate_html("<b>x</b> &amp; y", 4096) == "<b>x</b> &amp; y"


def test_truncate_html_never_splits_a_tag_or_entity() -> None:
    text = alert("t &<>", *([f"{ADDRESS} &amp <x> ü 😀"] * 50)).html()
    for limit in range(1, 400):
        cut = truncate_html(text, limit)
        assert utf16_len(cut) <= limit
        assert cut.endswith("…") or cut.endswith("</b>") or cut.endswith("</code>")
        telegram_html_to_text(cut)  # raises TelegramHtmlError on a broken tag or entity


@settings(max_examples=200, deadline=None)
@given(
    title=st.text(alphabet="ab<>&;# \n😀é", max_size=30),
    lines=st.lists(st.text(alphabet="xy<>&;#0😀", max_size=60) | st.just(ADDRESS), max_size=6),
    limit=st.integers(min_value=1, max_value=200),
)
def test_truncate_html_output_is_always_valid_telegram_html(title: str, lines: list[str], limit: int) -> None:
    cut = truncate_html(alert(title, *lines).html(), limit)
    assert utf16_len(cut) <= limit
    try:
        telegram_html_to_text(cut)
    except TelegramHtmlError as exc:  # pragma: no cover - the assertion message is the point
        pytest.fail(f"invalid markup {cut!r}: {exc}")


# --------------------------------------------------------------------------- Telegram


@pytest.fixture
def tg() -> Iterator[TelegramServer]:
    with TelegramServer(chats=[CHAT, GROUP, "@liqmon_alerts"], blocked_chats=[777]) as server:
        yield server


def channel(server: TelegramServer, **kwargs: object) -> TelegramChannel:
    kwargs.setdefault("min_interval_per_chat_s", 0.0)
    return TelegramChannel("tg", TELEGRAM_TEST_TOKEN, base_url=server.base_url, **kwargs)  # type: ignore[arg-type]


def test_telegram_delivers_escaped_html(tg: TelegramServer) -> None:
    ch = channel(tg)
    assert isinstance(ch, Channel)
    ch.send(alert("a <b>& title", f"account {ADDRESS}"), str(CHAT))
    ch.send(alert("to the group"), str(GROUP))
    ch.send(alert("to the channel"), "@liqmon_alerts")
    first, second, third = tg.wait_for(3)
    assert first.chat_id == CHAT  # sent as an integer
    assert first.parse_mode == "HTML"
    assert first.disable_web_page_preview is True
    assert first.text.startswith("<b>🔴 CRITICAL a &lt;b&gt;&amp; title</b>")
    assert f"<code>{ADDRESS}</code>" in first.text
    assert first.plain.startswith("🔴 CRITICAL a <b>& title")  # what the user sees
    assert second.chat_id == GROUP
    assert third.chat_id == "@liqmon_alerts"


def test_telegram_truncates_to_4096_with_valid_markup(tg: TelegramServer) -> None:
    body = [f"line {i} {ADDRESS} <&> " + "x" * 40 for i in range(110)]
    assert sum(map(len, body)) > 10_000
    channel(tg).send(alert("long & <loud>", *body), str(CHAT))
    (got,) = tg.wait_for(1)  # the peer parsed it as Telegram does: no broken tag or entity
    assert len(got.text) <= 4096
    assert got.text.endswith("…") or got.text.endswith("…</code>")
    assert len(got.plain) <= 4096
    assert got.plain.startswith("🔴 CRITICAL long & <loud>")


def test_telegram_429_is_retryable_with_retry_after(tg: TelegramServer) -> None:
    tg.too_many_requests(retry_after=17)
    ch = channel(tg)
    with pytest.raises(DeliveryError) as info:
        ch.send(alert(), str(CHAT))
    assert info.value.retryable is True
    assert info.value.retry_after == 17
    assert "chat 424242" in str(info.value)
    assert "Too Many Requests" in str(info.value)
    ch.send(alert(), str(CHAT))  # the next request goes through
    assert len(tg.wait_for(1)) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_telegram_5xx_is_retryable(tg: TelegramServer, status: int) -> None:
    tg.server_error(status)
    with pytest.raises(DeliveryError) as info:
        channel(tg).send(alert(), str(CHAT))
    assert info.value.retryable is True
    assert info.value.retry_after is None
    assert tg.messages == []


@pytest.mark.parametrize(
    ("chat", "token", "expected"),
    [
        ("999", TELEGRAM_TEST_TOKEN, "chat not found"),
        ("777", TELEGRAM_TEST_TOKEN, "bot was blocked"),
        (str(CHAT), "987654321:wrong-token_abcdefghijklmnop", "rejected the bot token"),
    ],
)
def test_telegram_final_errors_name_the_chat_never_the_token(
    tg: TelegramServer, chat: str, token: str, expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    ch = TelegramChannel("tg", token, base_url=tg.base_url, min_interval_per_chat_s=0)
    with caplog.at_level(logging.DEBUG), pytest.raises(DeliveryError) as info:
        ch.send(alert(), chat)
    err = info.value
    assert err.retryable is False
    assert f"chat {chat}" in str(err)
    assert expected in str(err)
    secret = token.split(":", 1)[1]
    assert secret not in str(err) and secret not in repr(err)
    assert err.__cause__ is None and err.__context__ is None
    assert secret not in repr(ch)
    assert "urllib3" in caplog.text  # the request line was logged at DEBUG ...
    assert secret not in caplog.text  # ... with the token blanked out


def test_telegram_timeout_is_retryable(tg: TelegramServer) -> None:
    tg.stall(5.0)
    with pytest.raises(DeliveryError) as info:
        channel(tg, timeout=0.3).send(alert(), str(CHAT))
    assert info.value.retryable is True
    assert "timed out" in str(info.value)
    assert TELEGRAM_TEST_TOKEN.split(":")[1] not in str(info.value)
    assert info.value.__context__ is None


def test_telegram_connection_refused_is_retryable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ch = TelegramChannel("tg", TELEGRAM_TEST_TOKEN, base_url=f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(DeliveryError) as info:
        ch.send(alert(), str(CHAT))
    assert info.value.retryable is True
    assert "cannot connect" in str(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None  # the requests error quotes the URL


def test_telegram_paces_messages_per_chat(tg: TelegramServer) -> None:
    now = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    ch = channel(tg, min_interval_per_chat_s=1.0, clock=lambda: now[0], sleep=sleep)
    ch.send(alert(), str(CHAT))
    assert slept == []
    now[0] += 0.25
    ch.send(alert(), str(CHAT))
    assert slept == [pytest.approx(0.75)]
    ch.send(alert(), str(GROUP))  # another chat: no wait
    assert slept == [pytest.approx(0.75)]
    now[0] += 5.0
    ch.send(alert(), str(CHAT))  # long after: no wait
    assert slept == [pytest.approx(0.75)]
    assert len(tg.wait_for(4)) == 4


@pytest.mark.parametrize("chat", ["123456789", "-1001234567890", "@liqmon_alerts", " 42 "])
def test_chat_id_validation_accepts(chat: str) -> None:
    parse_chat_id(chat)


@pytest.mark.parametrize("chat", ["", "abc", "@abc", "@1abcdef", "12.5", "0", "@liqmon-alerts", "1e9", "- 5"])
def test_chat_id_validation_rejects(chat: str) -> None:
    ch = TelegramChannel("tg", TELEGRAM_TEST_TOKEN)
    with pytest.raises(ConfigError, match="chat id"):
        ch.validate_destination(chat)
    with pytest.raises(DeliveryError) as info:
        ch.send(alert(), chat)
    assert info.value.retryable is False


def test_telegram_construction_checks_never_echo_the_token() -> None:
    with pytest.raises(ConfigError) as info:
        TelegramChannel("tg", "not a token: s3cr3t")
    assert "s3cr3t" not in str(info.value)
    with pytest.raises(ConfigError, match="base_url"):
        TelegramChannel("tg", TELEGRAM_TEST_TOKEN, base_url="ftp://example.com")
    assert "<secret>" in repr(TelegramChannel("tg", TELEGRAM_TEST_TOKEN))


# --------------------------------------------------------------------------- email


def mailer(server: SmtpServer, **kwargs: object) -> EmailChannel:
    options: dict[str, object] = {"security": server.tls, "sender": "liqmon@example.com", "timeout": 5.0}
    if server.tls != "none":
        options["ssl_context"] = server.client_context()
    options.update(kwargs)
    return EmailChannel("mail", server.host, server.port, **options)  # type: ignore[arg-type]


def test_email_starttls_with_verified_certificate() -> None:
    with SmtpServer(tls="starttls") as server:
        mailer(server).send(alert("HF <1.05> & falling", f"account {ADDRESS}", "line 2"), "ops@example.com, b@x.org")
        (got,) = server.deliveries
    assert got.tls is True
    assert got.rcpt_tos == ("ops@example.com", "b@x.org")
    assert got.message["Subject"] == "🔴 CRITICAL HF <1.05> & falling"  # the headline: what a phone previews
    assert got.message["From"] == "liqmon@example.com"
    body = got.message.get_body(("plain",)).get_content()
    assert body == f"account {ADDRESS}\nline 2\n"  # plain text, not escaped, the headline not repeated
    assert f"<code>{ADDRESS}</code>" in got.message.get_body(("html",)).get_content()


def test_email_untrusted_certificate_is_final() -> None:
    with SmtpServer(tls="starttls") as server:
        ch = mailer(server, ssl_context=ssl.create_default_context())  # verifying, without the test CA
        with pytest.raises(DeliveryError) as info:
            ch.send(alert(), "ops@example.com")
        assert server.messages == []
    assert info.value.retryable is False
    assert "certificate" in str(info.value)


def test_email_default_context_verifies() -> None:
    ch = EmailChannel("mail", "127.0.0.1", 587, security="starttls", sender="liqmon@example.com")
    context = ch._context
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True


def test_email_implicit_tls() -> None:
    with SmtpServer(tls="ssl", auth=("alerts", "pa55")) as server:
        mailer(server, username="alerts", password="pa55").send(alert(), "ops@example.com")
        (got,) = server.deliveries
    assert got.tls is True
    assert got.login == "alerts"


def test_email_auth_login_and_wrong_password() -> None:
    password = "correct-horse-battery"
    with SmtpServer(tls="starttls", auth=("alerts", password)) as server:
        mailer(server, username="alerts", password=password).send(alert(), "ops@example.com")
        assert server.deliveries[0].login == "alerts"
        wrong = mailer(server, username="alerts", password="wrong-horse-battery")
        with pytest.raises(DeliveryError) as info:
            wrong.send(alert(), "ops@example.com")
        assert len(server.messages) == 1
    err = info.value
    assert err.retryable is False
    assert "535" in str(err) and "alerts" in str(err)
    assert "wrong-horse-battery" not in str(err) and "wrong-horse-battery" not in repr(err)
    assert err.__cause__ is None
    assert "wrong-horse-battery" not in repr(wrong) and "<secret>" in repr(wrong)


def test_email_without_login_where_required_is_final() -> None:
    with SmtpServer(tls="starttls", auth=("alerts", "pw")) as server, pytest.raises(DeliveryError) as info:
        mailer(server).send(alert(), "ops@example.com")
    assert info.value.retryable is False
    assert "530" in str(info.value)


def test_email_plain_against_a_starttls_only_server_is_final() -> None:
    with SmtpServer(tls="starttls") as server:
        ch = EmailChannel("mail", server.host, server.port, security="none", sender="liqmon@example.com")
        with pytest.raises(DeliveryError) as info:
            ch.send(alert(), "ops@example.com")
    assert info.value.retryable is False
    assert "530" in str(info.value)


def test_email_outage_is_retryable_then_recovers() -> None:
    with SmtpServer() as server:
        ch = mailer(server)
        port = server.port
        server.stop()
        with pytest.raises(DeliveryError) as info:
            ch.send(alert(), "ops@example.com")
        assert info.value.retryable is True
        assert f"127.0.0.1:{port}" in str(info.value)
        server.start()
        assert server.port == port
        ch.send(alert(), "ops@example.com")
        assert len(server.wait_for(1)) == 1


def test_email_timeout_is_retryable() -> None:
    with socket.socket() as listener:  # accepts the connection, never greets
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        ch = EmailChannel(
            "mail", "127.0.0.1", listener.getsockname()[1], security="none", sender="liqmon@example.com", timeout=0.3
        )
        with pytest.raises(DeliveryError) as info:
            ch.send(alert(), "ops@example.com")
    assert info.value.retryable is True
    assert "timed out" in str(info.value)


@pytest.mark.parametrize(
    ("reply", "retryable"), [("550 5.1.1 User unknown", False), ("450 4.2.0 Greylisted, try later", True)]
)
def test_email_recipient_refusals(reply: str, retryable: bool) -> None:
    with SmtpServer(refuse={"gone@example.com": reply}) as server:
        with pytest.raises(DeliveryError) as info:
            mailer(server).send(alert(), "gone@example.com")
        assert info.value.retryable is retryable
        assert "gone@example.com" in str(info.value) and reply.split()[0] in str(info.value)
        # Refused by some only: delivered to the others, and final (a retry would duplicate)
        with pytest.raises(DeliveryError) as partial:
            mailer(server).send(alert(), "ops@example.com, gone@example.com")
        assert partial.value.retryable is False
        assert [d.rcpt_tos for d in server.deliveries] == [("ops@example.com",)]


@pytest.mark.parametrize("port", [0, -1, 65536, 100_000])
def test_email_bad_port_is_config_error(port: int) -> None:
    with pytest.raises(ConfigError, match="port"):
        EmailChannel("mail", "smtp.example.com", port, security="starttls", sender="liqmon@example.com")


def test_email_construction_checks() -> None:
    with pytest.raises(ConfigError, match="without TLS"):
        EmailChannel("m", "smtp.example.com", 25, security="none", sender="a@example.com", username="u", password="p")
    with pytest.raises(ConfigError, match="sender"):
        EmailChannel("m", "smtp.example.com", 587, security="starttls", sender="not-an-address")
    with pytest.raises(ConfigError, match="security"):
        EmailChannel("m", "smtp.example.com", 587, security="tls", sender="a@example.com")  # type: ignore[arg-type]


@pytest.mark.parametrize("destination", ["", "ops", "ops@", "a@b.com,", "a@b.com; c@d.com", "a b@c.com", "x@y"])
def test_email_destination_validation(destination: str) -> None:
    ch = EmailChannel("mail", "smtp.example.com", 587, security="starttls", sender="liqmon@example.com")
    with pytest.raises(ConfigError, match="email"):
        ch.validate_destination(destination)
    ch.validate_destination("ops@example.com, risk.team+liqmon@sub.example.org")


# --------------------------------------------------------------------------- console


def test_console_prints_one_line() -> None:
    out = io.StringIO()
    ch = ConsoleChannel(stream=out)
    ch.send(alert("CRITICAL main: HF 1.01", "market main, block 7", "account 0xabc"), "")
    ch.send(alert("two\nlines", severity="resolved"), "ignored")
    assert out.getvalue() == (
        "🔴 CRITICAL CRITICAL main: HF 1.01 — market main, block 7; account 0xabc\n✅ RESOLVED two lines\n"
    )
    assert ch.name == "console"


def test_console_defaults_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    ConsoleChannel().send(alert("t", "a", severity="watch"), "")
    assert capsys.readouterr().out == "👀 WATCH t — a\n"


def test_delivery_error_is_a_monitor_error() -> None:
    err = DeliveryError("x", retryable=True, retry_after=3.0)
    assert isinstance(err, MonitorError)
    assert (err.retryable, err.retry_after) == (True, 3.0)
