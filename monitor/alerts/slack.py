"""Slack incoming-webhook channel: ``text`` (the notification preview) and Block Kit ``blocks``.

The webhook URL is itself the credential (``https://hooks.slack.com/services/T../B../secret``):
it comes from the environment only and is never printed (see :mod:`monitor.alerts.webhook`,
whose transport this channel uses). A webhook posts to the one Slack channel it was created
for, so a route to it has no ``to``.

Within Slack's limits: a ``header`` block of at most 150 characters, ``section`` blocks of at
most 3,000 characters of ``mrkdwn`` (lines packed, an over-long line cut with ``…``), at most
50 blocks, a fields section of at most 10 fields (wallet, market, chain, HF, level, block
from the message's structured fields), the links as ``<url|label>``, ``text`` at most 3,000
characters. ``&``, ``<`` and ``>`` are escaped as Slack asks, so a market or token name can
neither mention ``<!channel>`` nor forge a link; addresses and hashes are set in code spans.
Link unfurling is off.

Failure classes: 429 (``Retry-After`` honoured) and 5xx retryable; 400 ``invalid_payload``,
403 ``action_prohibited``, 404 ``no_service`` / ``channel_not_found``, 410
``channel_is_archived`` final, with Slack's error text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Final

import requests

from monitor.alerts.message import ELLIPSIS, Message, one_line
from monitor.alerts.webhook import (
    FIELD_NAMES,
    USER_AGENT,
    HttpPoster,
    Pacer,
    code_spans,
    message_fields,
    message_links,
    no_destination,
)

HEADER_LIMIT: Final = 150
SECTION_LIMIT: Final = 3000
TEXT_LIMIT: Final = 3000
MAX_BLOCKS: Final = 50
MAX_FIELDS: Final = 10  # per section block
FIELD_LIMIT: Final = 2000


def escape(text: str) -> str:
    """Slack's three control characters escaped (``&`` first)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn_line(line: str) -> str:
    """One body line: escaped, addresses and hashes in code spans."""
    return code_spans(line, escape)


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, ending with ``…`` when cut (never inside an escape)."""
    if len(text) <= limit:
        return text
    head = text[: limit - len(ELLIPSIS)]
    amp = head.rfind("&")
    if amp >= 0 and ";" not in head[amp:]:
        head = head[:amp]  # do not leave "&am" behind
    return head + ELLIPSIS


def sections(lines: tuple[str, ...], budget: int) -> list[str]:
    """Body lines packed into section texts of at most :data:`SECTION_LIMIT` characters; at most
    ``budget`` sections (the last one says how much was left out)."""
    out: list[str] = []
    current = ""
    for line in (cut(mrkdwn_line(x), SECTION_LIMIT) for x in lines if x.strip()):
        joined = f"{current}\n{line}" if current else line
        if len(joined) <= SECTION_LIMIT:
            current = joined
            continue
        out.append(current)
        current = line
    if current:
        out.append(current)
    if len(out) > budget:
        out = [*out[: budget - 1], f"{ELLIPSIS} ({len(out) - budget + 1} more sections left out)"]
    return out


def link(url: str, label: str) -> str:
    """``<url|label>``: the URL's own ``|``, ``<``, ``>`` and spaces percent-encoded, the label escaped."""
    safe = url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E").replace(" ", "%20")
    return f"<{safe}|{escape(label).replace('|', '¦')}>"


def links_line(message: Message) -> str:
    return " · ".join(link(url, label) for label, url in message_links(message))


def fields_block(message: Message) -> dict[str, Any] | None:
    """A section of ``*name*\\nvalue`` fields (wallet, market, HF, level...), or None."""
    fields = message_fields(message)
    items = [
        {"type": "mrkdwn", "text": cut(f"*{name}*\n{mrkdwn_line(fields[key])}", FIELD_LIMIT)}
        for key, name in FIELD_NAMES.items()
        if fields.get(key)
    ][:MAX_FIELDS]
    return {"type": "section", "fields": items} if items else None


def payload(message: Message) -> dict[str, Any]:
    """The incoming-webhook JSON for ``message``."""
    headline = one_line(message.headline)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": cut(headline, HEADER_LIMIT), "emoji": False}}
    ]
    fields = fields_block(message)
    links = links_line(message)
    room = MAX_BLOCKS - 2 - (1 if fields else 0) - (1 if links else 0)
    blocks.extend(
        {"type": "section", "text": {"type": "mrkdwn", "text": text}} for text in sections(message.lines, room)
    )
    if fields:
        blocks.append(fields)
    if links:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": cut(links, SECTION_LIMIT)}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": escape(f"liqmon {message.key}")}]})
    preview = "\n".join([escape(headline), *(mrkdwn_line(x) for x in message.lines if x.strip())])
    return {"text": cut(preview, TEXT_LIMIT), "blocks": blocks, "unfurl_links": False, "unfurl_media": False}


class SlackChannel:
    """Posts each alert to a Slack incoming webhook (``url``: the secret webhook URL)."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        display: str = "<secret>",
        timeout: float = 10.0,
        min_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        self.name = name
        self._http = HttpPoster(name, "Slack", url, display=display, secrets=(url,), timeout=timeout, session=session)
        self._pacer = Pacer(min_interval_s, clock, sleep)

    def __repr__(self) -> str:
        return f"SlackChannel(name={self.name!r}, url={self._http.display!r})"

    def close(self) -> None:
        self._http.close()

    def validate_destination(self, destination: str) -> None:
        no_destination(self.name, "Slack", destination)

    def send(self, message: Message, destination: str = "") -> None:
        body = json.dumps(payload(message), ensure_ascii=False).encode()
        self._pacer.wait_turn()
        response = self._http.post(body, {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT})
        self._http.check(response)
