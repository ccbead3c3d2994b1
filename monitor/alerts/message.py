"""A rendered alert, and its plain-text and Telegram-HTML forms.

The pipeline builds a :class:`Message` from plain text; each channel asks for the form it
needs. Only :meth:`Message.html` produces markup, and it escapes every user-visible piece, so
a market or token name holding ``<`` or ``&`` can neither break Telegram's parser nor inject
markup. :func:`truncate_html` then fits the markup into Telegram's 4,096-character limit
without cutting a tag or an entity and with every tag it opened closed again.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

SEVERITIES: Final = ("ok", "watch", "warning", "critical", "liquidatable", "resolved", "anomaly", "test")
TELEGRAM_TEXT_LIMIT: Final = 4096
FIRST_LINE_MAX: Final = 80  # what a phone's notification preview shows
ELLIPSIS: Final = "…"
BADGES: Final = {
    "ok": "✅ OK", "watch": "👀 WATCH", "warning": "⚠️ WARNING", "critical": "🔴 CRITICAL",
    "liquidatable": "🚨 LIQUIDATABLE", "resolved": "✅ RESOLVED", "anomaly": "⚠️ ORACLE", "test": "🧪 TEST",
}  # fmt: skip
# the structured form's keys (webhooks, Slack / Discord fields); a message may leave some out
FIELD_KEYS: Final = ("severity", "account", "label", "chain", "market", "hf", "level", "link", "block", "time")

# An EVM address (20 bytes) or a transaction / block hash (32 bytes).
_HEX_ID_RE: Final = re.compile(r"\b0x(?:[0-9a-fA-F]{64}|[0-9a-fA-F]{40})\b")
# One token of Telegram HTML: a tag, a character entity, or one character.
_TOKEN_RE: Final = re.compile(r"<[^<>]*>|&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);|.", re.DOTALL)
_TAG_NAME_RE: Final = re.compile(r"<\s*(/?)\s*([A-Za-z][A-Za-z0-9-]*)")
_SPACES_RE: Final = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Message:
    """One alert as plain text; channels render it (escaped) in their own format.

    ``title`` is the first line without the severity badge (``headline`` adds it); ``lines`` the
    body, plain text, never repeating the first line; ``links`` (label, URL) pairs shown after
    the body; ``fields`` the structured form (keys of :data:`FIELD_KEYS`) for machine channels;
    ``summary`` one compact line (no badge) for a grouped message or the demo's stream.
    """

    key: str  # idempotency key (the outbox id), passed through to the channel
    severity: str  # one of SEVERITIES
    title: str  # one line
    lines: tuple[str, ...] = ()  # body lines, plain text
    links: tuple[tuple[str, str], ...] = ()  # (label, URL)
    fields: tuple[tuple[str, str], ...] = ()  # (key, value), keys from FIELD_KEYS
    summary: str = ""  # one line for a group / the demo; the title when empty

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown alert severity {self.severity!r}; expected one of {', '.join(SEVERITIES)}")
        for name in ("lines", "links", "fields"):  # a list would make the frozen message mutable
            value = getattr(self, name)
            if not isinstance(value, tuple) or any(not isinstance(x, str | tuple) for x in value):
                object.__setattr__(self, name, tuple(x if isinstance(x, str) else tuple(x) for x in value))

    @property
    def badge(self) -> str:
        """Emoji and severity in capitals: ``⚠️ WARNING``."""
        return BADGES.get(self.severity, self.severity.upper())

    @property
    def headline(self) -> str:
        """``badge title`` on one line (newlines in the title become spaces): the phone preview."""
        return f"{self.badge} {one_line(self.title)}"

    @property
    def field_map(self) -> dict[str, str]:
        return dict(self.fields)

    def summary_line(self) -> str:
        """``badge summary`` on one line: one position of a grouped message, one line of the demo."""
        return f"{self.badge} {one_line(self.summary or self.title)}"

    def body(self) -> list[str]:
        """The body lines then one ``label: URL`` line per link (no headline)."""
        return [*self.lines, *(f"{label}: {url}" for label, url in self.links)]

    def plain(self) -> str:
        """The headline then the body, one line each (logs, plain-text channels)."""
        return "\n".join([self.headline, *self.body()])

    def body_text(self) -> str:
        """The body without the headline (an email body, whose subject is the headline)."""
        return "\n".join(self.body())

    def markdown(self) -> str:
        """CommonMark (Discord, most chat webhooks): the headline in bold, links as ``[label](URL)``."""
        links = " · ".join(f"[{_md(label)}]({url})" for label, url in self.links)
        return "\n".join(
            [f"**{_md(self.headline)}**", *(_md(line) for line in self.lines), *([links] if links else [])]
        )

    def html(self) -> str:
        """Telegram ``parse_mode=HTML``: the headline in ``<b>``, addresses and hashes in ``<code>``,
        links as ``<a href>``, the rest escaped."""
        head = f"<b>{_escape(self.headline)}</b>"
        links = _html_links(self.links)
        return "\n".join([head, *(_html_line(line) for line in self.lines), *([links] if links else [])])

    def email_html(self) -> str:
        """The HTML part of an email: one paragraph of body lines and the links (no headline)."""
        body = "<br>\n".join(_html_line(line) for line in self.lines)
        links = _html_links(self.links)
        return f"<html><body><p>{body}</p>{f'<p>{links}</p>' if links else ''}</body></html>\n"

    def to_json(self) -> dict[str, object]:
        """The outbox form; :func:`message_from_dict` reads it back (and rows written before
        links / fields / summary existed)."""
        data: dict[str, object] = {"severity": self.severity, "title": self.title, "lines": list(self.lines)}
        if self.links:
            data["links"] = [list(x) for x in self.links]
        if self.fields:
            data["fields"] = dict(self.fields)
        if self.summary:
            data["summary"] = self.summary
        return data


def message_from_dict(key: str, data: Mapping[str, Any]) -> Message:
    """The message of an outbox row's JSON (``Message.to_json``); old rows lack the new keys."""
    fields = data.get("fields") or {}
    return Message(
        key=key, severity=data["severity"], title=data["title"], lines=tuple(data.get("lines") or ()),
        links=tuple((str(a), str(b)) for a, b in data.get("links") or ()),
        fields=tuple((str(k), str(v)) for k, v in fields.items()), summary=str(data.get("summary") or ""),
    )  # fmt: skip


def fit(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with ``…`` when longer."""
    text = one_line(text)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) replaced by one space."""
    return _SPACES_RE.sub(" ", text).strip()


def _html_links(links: tuple[tuple[str, str], ...]) -> str:
    return " · ".join(f'<a href="{html.escape(url, quote=True)}">{_escape(label)}</a>' for label, url in links)


def _md(text: str) -> str:
    return re.sub(r"([\\*_`\[\]~|<>])", r"\\\1", text)


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


def _html_line(line: str) -> str:
    out: list[str] = []
    pos = 0
    for match in _HEX_ID_RE.finditer(line):
        out.append(_escape(line[pos : match.start()]))
        out.append(f"<code>{match.group(0)}</code>")
        pos = match.end()
    out.append(_escape(line[pos:]))
    return "".join(out)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit Telegram counts in (an emoji outside the BMP is 2)."""
    return len(text.encode("utf-16-le")) // 2


def truncate_html(html_text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> str:
    """``html_text`` cut to at most ``limit`` UTF-16 units, tags included, ending with ``…``.

    The cut falls between tokens (a tag, an ``&entity;`` or a character), never inside one,
    and every tag still open at the cut is closed after the ellipsis. Since the markup is
    measured, the text Telegram is left with after parsing is shorter still. Text already
    within the limit is returned unchanged.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    if utf16_len(html_text) <= limit:
        return html_text
    budget = limit - utf16_len(ELLIPSIS)
    out: list[str] = []
    used = 0
    open_tags: list[str] = []  # names of tags opened and not yet closed, innermost last
    closers = 0  # UTF-16 length of the end tags that would close open_tags
    for match in _TOKEN_RE.finditer(html_text):
        token = match.group(0)
        size = utf16_len(token)
        name, closing = _tag(token)
        if name is None:
            if used + size + closers > budget:
                break
            out.append(token)
            used += size
        elif closing:
            if not open_tags or open_tags[-1] != name:
                continue  # a stray end tag: drop it rather than emit unbalanced markup
            open_tags.pop()
            closers -= size
            out.append(token)
            used += size
        else:
            end = len(name) + 3  # "</name>"
            if used + size + closers + end > budget:
                break
            open_tags.append(name)
            closers += end
            out.append(token)
            used += size
    out.append(ELLIPSIS)
    out.extend(f"</{name}>" for name in reversed(open_tags))
    return "".join(out)


def _tag(token: str) -> tuple[str | None, bool]:
    """(tag name, is an end tag) for a tag token; (None, False) for text or an entity."""
    if not token.startswith("<") or len(token) < 3:
        return None, False
    match = _TAG_NAME_RE.match(token)
    if match is None:
        return None, False
    return match.group(2).lower(), bool(match.group(1))


def verdicts_line(liquidatable_now: bool, liquidatable_after_accrual: bool | None) -> str | None:
    """The body line an alert adds when the protocol's view and its liquidation call disagree
    (Compound V3 at a stale index: ``isLiquidatable`` reads the stored index, ``absorb`` accrues
    interest first); None when they agree or the protocol has one verdict."""
    if liquidatable_after_accrual is None or liquidatable_now == liquidatable_after_accrual:
        return None
    now = "liquidatable" if liquidatable_now else "not liquidatable"
    after = "liquidatable" if liquidatable_after_accrual else "not"
    return (
        f"verdicts differ: {now} at the stored index (isLiquidatable now), {after} after interest accrual "
        "(what absorb sees: it accrues first); the HF shown is after accrual"
    )
