"""The message keys of the ``alerts:`` section: ``labels``, ``links`` and ``templates``.

- ``alerts.labels``: ``{"0xabc…": "treasury"}``, a wallet's name in the messages' first line
  (what ``liqmon watch add --label`` writes; ``alerts.accounts.<address>.label`` is the other
  place a name can come from, used when ``labels`` has none);
- ``alerts.links.explorers``: block explorer per chain id or well-known chain name (defaults
  for the main chains; ``null`` turns one off); a base URL (``/address/<account>`` is appended)
  or a template with ``$account``;
- ``alerts.links.apps``: the protocol app's URL template per protocol (``$account``,
  ``$chain_id``, ``$market``, ``$protocol``); ``null`` turns one off;
- ``alerts.templates``: per message kind (position, resolved, oracle, oracle_resolved, test) a
  ``title`` / ``body`` / ``summary`` override in the safe template language of
  :mod:`monitor.alerts.templates`; an unknown field is an error naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from monitor.alerts.templates import KINDS, PARTS, check_template
from monitor.config.validate import Validator

# chain id -> (display name, explorer base URL or None)
CHAINS: Final[Mapping[int, tuple[str, str | None]]] = {
    1: ("Ethereum", "https://etherscan.io"),
    10: ("Optimism", "https://optimistic.etherscan.io"),
    56: ("BNB Chain", "https://bscscan.com"),
    100: ("Gnosis", "https://gnosisscan.io"),
    137: ("Polygon", "https://polygonscan.com"),
    8453: ("Base", "https://basescan.org"),
    42161: ("Arbitrum", "https://arbiscan.io"),
    43114: ("Avalanche", "https://snowtrace.io"),
    59144: ("Linea", "https://lineascan.build"),
    534352: ("Scroll", "https://scrollscan.com"),
    11155111: ("Sepolia", "https://sepolia.etherscan.io"),
    31337: ("devnet", None),
}
_CHAIN_ALIASES: Final = {"mainnet": 1, "arbitrum-one": 42161, "bsc": 56, "avalanche-c": 43114, "anvil": 31337}
APPS: Final[Mapping[str, str]] = {
    "aave_v3": "https://app.aave.com/",
    "morpho_blue": "https://app.morpho.org/",
    "compound_v3": "https://app.compound.finance/",
}
LABEL_MAX: Final = 24  # as alerts.accounts.<address>.label
_URL_PREFIXES: Final = ("https://", "http://")
_LINK_KEYS: Final = ("explorers", "apps")


@dataclass(frozen=True, slots=True)
class MessageConfig:
    labels: Mapping[str, str] = field(default_factory=dict)  # lower-case address -> label
    explorers: Mapping[int, str | None] = field(default_factory=lambda: {k: v[1] for k, v in CHAINS.items()})
    apps: Mapping[str, str | None] = field(default_factory=lambda: dict(APPS))
    templates: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # kind -> part -> template

    def label(self, account: str) -> str:
        return self.labels.get(account.lower(), "")

    def template(self, kind: str, part: str) -> str | None:
        return self.templates.get(kind, {}).get(part)


def chain_name(chain_id: int) -> str:
    known = CHAINS.get(chain_id)
    return known[0] if known else f"chain {chain_id}"


def chain_id_of(key: object) -> int | None:
    """A chain id from a config key: an integer, digits, or a well-known chain name."""
    if isinstance(key, int) and not isinstance(key, bool):
        return key
    if isinstance(key, str):
        text = key.strip().lower()
        if text.isascii() and text.isdigit():
            return int(text)
        for cid, (name, _url) in CHAINS.items():
            if name.lower().replace(" ", "-") == text:
                return cid
        return _CHAIN_ALIASES.get(text)
    return None


def parse_messages(v: Validator, raw: Mapping[Any, Any]) -> MessageConfig:
    d = MessageConfig()
    return MessageConfig(
        labels=_labels(v, raw.get("labels")),
        explorers={**d.explorers, **_explorers(v, raw.get("links"))},
        apps={**d.apps, **_apps(v, raw.get("links"))},
        templates=_templates(v, raw.get("templates")),
    )


def _labels(v: Validator, value: object) -> dict[str, str]:
    if value is None:
        return {}
    raw = v.mapping(value, "alerts.labels", 'a mapping of address to label, e.g. {"0x1234...": treasury}')
    out: dict[str, str] = {}
    for key, label in raw.items():
        path = f"alerts.labels.{key}"
        address = v.address(key, path)
        text = v.string(label, path).strip()
        if not 1 <= len(text) <= LABEL_MAX or not text.isprintable():
            v.fail(path, f"expected a one-line label of 1-{LABEL_MAX} printable characters, got {text!r}")
        out[address.lower()] = text
    return out


def _links(v: Validator, value: object, key: str) -> Mapping[Any, Any]:
    if value is None:
        return {}
    raw = v.mapping(value, "alerts.links", "a mapping with explorers and apps")
    v.check_keys(raw, _LINK_KEYS, "alerts.links")
    section = raw.get(key)
    return {} if section is None else v.mapping(section, f"alerts.links.{key}", "a mapping")


def _url_template(v: Validator, value: object, path: str) -> str | None:
    if value is None:
        return None
    text = v.string(value, path).strip()
    if not text.startswith(_URL_PREFIXES) or any(c.isspace() for c in text):
        v.fail(path, f"expected an http(s) URL or URL template without spaces, got {text!r}")
    try:
        check_template(text)
    except ValueError as exc:
        v.fail(path, str(exc))
    return text


def _explorers(v: Validator, value: object) -> dict[int, str | None]:
    out: dict[int, str | None] = {}
    for key, url in _links(v, value, "explorers").items():
        path = f"alerts.links.explorers.{key}"
        cid = chain_id_of(key)
        if cid is None or cid <= 0:
            names = ", ".join(n.lower().replace(" ", "-") for n, _ in CHAINS.values())
            v.fail(path, f"expected a chain id (e.g. 1) or a chain name ({names})")
        out[cid] = _url_template(v, url, path)
    return out


def _apps(v: Validator, value: object) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key, url in _links(v, value, "apps").items():
        path = f"alerts.links.apps.{key}"
        if key not in APPS:
            v.fail(path, f"unknown protocol; expected one of {', '.join(APPS)}")
        out[key] = _url_template(v, url, path)
    return out


def _templates(v: Validator, value: object) -> dict[str, dict[str, str]]:
    if value is None:
        return {}
    raw = v.mapping(value, "alerts.templates", f"a mapping of message kind ({', '.join(KINDS)}) to parts")
    v.check_keys(raw, KINDS, "alerts.templates")
    out: dict[str, dict[str, str]] = {}
    for kind, parts in raw.items():
        body = v.mapping(parts, f"alerts.templates.{kind}", f"a mapping of {', '.join(PARTS)} to templates")
        v.check_keys(body, PARTS, f"alerts.templates.{kind}")
        out[kind] = {}
        for part, text in body.items():
            path = f"alerts.templates.{kind}.{part}"
            template = v.string(text, path)
            try:
                check_template(template)
            except ValueError as exc:
                v.fail(path, str(exc))
            out[kind][part] = template
    return out
