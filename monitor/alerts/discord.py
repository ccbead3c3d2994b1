"""Discord webhook channel: ``content`` (the headline, what a notification shows) and one embed.

The webhook URL (``https://discord.com/api/webhooks/<id>/<token>``) is itself the credential:
it comes from the environment only and is never printed (transport:
:class:`monitor.alerts.webhook.HttpPoster`). Posted with ``?wait=true`` so Discord confirms
the message was stored. A webhook posts to the one channel it was created for: a route to it
has no ``to``.

Within Discord's limits: ``content`` at most 2,000 characters, the embed's title 256,
description 4,096 (lines kept whole where they fit, then ``…``; the links after them as
``[label](url)``), inline fields (wallet, market, chain, HF, level, block from the message's
structured fields; 256 / 1,024 each), footer 2,048, the embed at most 6,000 in all.
Markdown characters of the text are escaped (``\\*``), addresses and hashes are set in code
spans, and ``allowed_mentions`` is empty, so no ``@everyone``, role or user in a market or
token name pings anyone.

Failure classes: 429 retryable with ``retry_after`` from the JSON body (seconds, fractional)
or the ``Retry-After`` header; 5xx retryable; 400 (invalid body), 401 (invalid token), 403,
404 (``Unknown Webhook``, code 10015) final, with Discord's message and code.
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.parse
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

CONTENT_LIMIT: Final = 2000
TITLE_LIMIT: Final = 256
DESCRIPTION_LIMIT: Final = 4096
FOOTER_LIMIT: Final = 2048
EMBED_TOTAL_LIMIT: Final = 6000
USERNAME_LIMIT: Final = 80
FIELD_NAME_LIMIT: Final = 256
FIELD_VALUE_LIMIT: Final = 1024
MAX_FIELDS: Final = 25
COLOURS: Final = {
    "ok": 0x2ECC71, "resolved": 0x2ECC71, "watch": 0x3498DB, "warning": 0xF1C40F, "critical": 0xE67E22,
    "liquidatable": 0xE74C3C, "anomaly": 0x9B59B6,
}  # fmt: skip
_MARKDOWN_RE: Final = re.compile(r"([\\*_~`|>#\[\]()<:@-])")


def escape(text: str) -> str:
    """Discord markdown (and mention / link syntax) characters escaped with a backslash."""
    return _MARKDOWN_RE.sub(r"\\\1", text)


def markdown_line(line: str) -> str:
    """One body line: escaped, addresses and hashes in code spans."""
    return code_spans(line, escape)


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, ending with ``…`` when cut (never after a lone backslash)."""
    if len(text) <= limit:
        return text
    head = text[: limit - len(ELLIPSIS)]
    trailing = len(head) - len(head.rstrip("\\"))
    if trailing % 2:
        head = head[:-1]  # an escape cut in half would escape the ellipsis
    return head + ELLIPSIS


def description(lines: tuple[str, ...], limit: int) -> str:
    """The body lines, whole lines while they fit in ``limit``, then ``…``."""
    out: list[str] = []
    used = 0
    for line in (markdown_line(x) for x in lines if x.strip()):
        sep = 1 if out else 0
        if used + sep + len(line) > limit:
            room = limit - used - sep
            if room >= 16:
                out.append(cut(line, room))  # part of the line that does not fit
            elif room >= len(ELLIPSIS):
                out.append(ELLIPSIS)
            break
        out.append(line)
        used += sep + len(line)
    return "\n".join(out)


def embed_fields(message: Message) -> list[dict[str, Any]]:
    """Inline embed fields (wallet, market, chain, HF, level, block) from the message's structured fields."""
    fields = message_fields(message)
    return [
        {"name": name[:FIELD_NAME_LIMIT], "value": cut(markdown_line(fields[key]), FIELD_VALUE_LIMIT), "inline": True}
        for key, name in FIELD_NAMES.items()
        if fields.get(key)
    ][:MAX_FIELDS]


def payload(message: Message, username: str | None = None) -> dict[str, Any]:
    """The webhook JSON for ``message``."""
    headline = one_line(message.headline)
    title = cut(escape(one_line(message.title)), TITLE_LIMIT)
    footer = cut(f"liqmon {one_line(message.key)}", FOOTER_LIMIT)
    fields = embed_fields(message)
    links = " · ".join(f"[{escape(label)}]({url.replace(')', '%29').replace(' ', '%20')})"
                       for label, url in message_links(message))  # fmt: skip
    used = len(title) + len(footer) + sum(len(f["name"]) + len(f["value"]) for f in fields)
    if links and len(links) + used + 1 > EMBED_TOTAL_LIMIT - 500:
        links = ""  # links never crowd out the body
    room = min(DESCRIPTION_LIMIT, EMBED_TOTAL_LIMIT - used) - (len(links) + 1 if links else 0)
    embed: dict[str, Any] = {"title": title, "color": COLOURS.get(message.severity, 0x95A5A6),
                             "footer": {"text": footer}}  # fmt: skip
    if message_links(message):
        embed["url"] = message_links(message)[0][1]
    if fields:
        embed["fields"] = fields
    body = "\n".join(x for x in (description(message.lines, room), links) if x)
    if body:
        embed["description"] = body
    out: dict[str, Any] = {
        "content": cut(escape(headline), CONTENT_LIMIT),
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    }
    if username:
        out["username"] = username[:USERNAME_LIMIT]
    return out


def with_wait(url: str) -> str:
    """``url`` with ``wait=true`` in its query (kept if already there)."""
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k != "wait"]
    query.append(("wait", "true"))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


class DiscordChannel:
    """Posts each alert to a Discord webhook (``url``: the secret webhook URL)."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        display: str = "<secret>",
        username: str | None = None,
        timeout: float = 10.0,
        min_interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        self.name = name
        self.username = username
        self._http = HttpPoster(name, "Discord", url, display=display, secrets=(url,), timeout=timeout, session=session)
        self._url = with_wait(url)
        self._pacer = Pacer(min_interval_s, clock, sleep)

    def __repr__(self) -> str:
        return f"DiscordChannel(name={self.name!r}, url={self._http.display!r})"

    def close(self) -> None:
        self._http.close()

    def validate_destination(self, destination: str) -> None:
        no_destination(self.name, "Discord", destination)

    def send(self, message: Message, destination: str = "") -> None:
        body = json.dumps(payload(message, self.username), ensure_ascii=False).encode()
        self._pacer.wait_turn()
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
        response = self._http.post(body, headers, url=self._url)
        if 200 <= response.status_code < 300:
            return
        data = _json_object(response)
        text = None
        if data is not None and isinstance(data.get("message"), str):
            code = data.get("code")
            text = f"{data['message']}" + (f", code {code}" if isinstance(code, int) and code else "")
        self._http.check(response, description=text, retry_after=_seconds(data.get("retry_after") if data else None))


def _json_object(response: requests.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    seconds = float(value)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
