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
from dataclasses import dataclass
from typing import Final

SEVERITIES: Final = ("ok", "watch", "warning", "critical", "liquidatable", "resolved", "anomaly")
TELEGRAM_TEXT_LIMIT: Final = 4096
ELLIPSIS: Final = "…"

# An EVM address (20 bytes) or a transaction / block hash (32 bytes).
_HEX_ID_RE: Final = re.compile(r"\b0x(?:[0-9a-fA-F]{64}|[0-9a-fA-F]{40})\b")
# One token of Telegram HTML: a tag, a character entity, or one character.
_TOKEN_RE: Final = re.compile(r"<[^<>]*>|&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);|.", re.DOTALL)
_TAG_NAME_RE: Final = re.compile(r"<\s*(/?)\s*([A-Za-z][A-Za-z0-9-]*)")
_SPACES_RE: Final = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Message:
    """One alert as plain text; channels render it (escaped) in their own format."""

    key: str  # idempotency key (the outbox id), passed through to the channel
    severity: str  # one of SEVERITIES
    title: str  # one line
    lines: tuple[str, ...] = ()  # body lines, plain text

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown alert severity {self.severity!r}; expected one of {', '.join(SEVERITIES)}")
        if not isinstance(self.lines, tuple):  # a list would make the frozen message mutable
            object.__setattr__(self, "lines", tuple(self.lines))

    @property
    def headline(self) -> str:
        """``[SEVERITY] title`` on one line (newlines in the title become spaces)."""
        return f"[{self.severity.upper()}] {one_line(self.title)}"

    def plain(self) -> str:
        """The title, a blank line, then one body line per line (for email and logs)."""
        title = one_line(self.title)
        return "\n".join([title, "", *self.lines]) if self.lines else title

    def html(self) -> str:
        """Telegram ``parse_mode=HTML``: ``[SEVERITY] title`` in ``<b>``, addresses and hashes in ``<code>``,
        the rest escaped."""
        head = f"<b>{_escape(self.headline)}</b>"
        return "\n".join([head, "", *(_html_line(line) for line in self.lines)]) if self.lines else head


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) replaced by one space."""
    return _SPACES_RE.sub(" ", text).strip()


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
