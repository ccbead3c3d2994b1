"""A safe template language for message overrides (``alerts.templates``).

``string.Template`` syntax: ``$name`` or ``${name}``, ``$$`` for a dollar sign. Only the names
in :data:`FIELDS` exist; there is no attribute access, indexing, call or expression, so a
template from a config file can place values and nothing else. A name outside the set, or a
``$`` that starts no name, is refused when the config loads (:func:`check_template` raises
``ValueError`` naming the name; the config layer adds the key). A field a message kind does
not have (``$duration`` on a new alert) becomes an empty string.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Final

# name -> what it holds (shown by the config error and in the README)
FIELDS: Final[Mapping[str, str]] = {
    "badge": "emoji and severity in capitals (⚠️ WARNING)",
    "severity": "severity in lower case (warning)",
    "who": "the wallet label, else the short address (0x12ab…cd34)",
    "label": "the wallet label (alerts.labels, else alerts.accounts.<address>.label; empty without one)",
    "account": "the full account address",
    "short_account": "the short address (0x12ab…cd34)",
    "chain": "the chain name (Ethereum)",
    "chain_id": "the chain id (1)",
    "market": "the market name from the config",
    "protocol": "the protocol (aave_v3, morpho_blue, compound_v3)",
    "hf": "the health factor, 2 decimals (1.18)",
    "level": "the level in force, 2 decimals (1.25)",
    "level_name": "the level's short name (watch, warn, crit, liq)",
    "change": "what changed, in plain words (new, worse: warning → critical, recovered ...)",
    "todo": "what restores the target HF (repay 4,708 USDC or add 1.903 WETH to reach HF 1.5)",
    "liquidation": "the liquidation price in the direction that matters",
    "probability": "the chance of liquidation within the horizon (empty when not meaningful)",
    "duration": "how long the episode lasted (resolved messages)",
    "asset": "the asset of an oracle alert",
    "detail": "what an oracle alert saw",
    "link": "the link to the position (app, else explorer)",
    "app": "the protocol app link",
    "explorer": "the block explorer link",
    "block": "the block number",
    "time": "the block time, UTC (2026-12-01 11:55 UTC)",
}
PARTS: Final = ("title", "body", "summary")  # first line, body (lines), one-line summary
KINDS: Final = ("position", "resolved", "oracle", "oracle_resolved", "test")


def check_template(text: str) -> None:
    """Raise ``ValueError`` if ``text`` names a field outside :data:`FIELDS` or holds a bad ``$``."""
    template = string.Template(text)
    if not template.is_valid():
        raise ValueError(
            f"bad placeholder in {text!r}: write $name or ${{name}} with a field name, and $$ for a dollar sign"
        )
    unknown = [name for name in template.get_identifiers() if name not in FIELDS]
    if unknown:
        raise ValueError(f"unknown field ${unknown[0]}; fields: {', '.join(FIELDS)}")


def fill(text: str, values: Mapping[str, str]) -> str:
    """``text`` with every ``$field`` replaced by its value ("" for a field the message lacks)."""
    check_template(text)
    return string.Template(text).substitute({name: values.get(name, "") for name in FIELDS})
