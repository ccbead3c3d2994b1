"""Presets: real markets by name (``markets: [{preset: aave-v3-base}]``), shipped as data.

``monitor/data/presets.json`` holds public deployment facts: per chain its id, explorer and
public RPC defaults; per market its protocol, chain, contract addresses, deployment block (or a
lower bound) and app URL; Morpho Blue markets with their parameters (the id is their keccak256).
:func:`expand_presets` turns a ``preset`` entry into the keys the market parser knows BEFORE
validation, so a preset market is validated exactly like a hand-written one; keys the user
writes beside ``preset`` win, and a chain the config does not define is added from the preset.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from monitor.config.validate import Validator, _did_you_mean

_ADDRESS_KEYS = ("pool_addresses_provider", "comet", "morpho")


@dataclass(frozen=True, slots=True)
class ChainPreset:
    name: str
    chain_id: int
    explorer: str
    rpc_urls: tuple[str, ...]
    max_log_range: int


@dataclass(frozen=True, slots=True)
class MarketPreset:
    name: str
    protocol: str
    chain: str
    start_block: int
    app_url: str
    addresses: Mapping[str, str]  # config key -> address (pool_addresses_provider / comet / morpho)
    market_ids: tuple[str, ...] = ()
    address_book: str = ""  # the @aave-dao/aave-address-book module these facts come from
    raw: Mapping[str, Any] | None = None


@cache
def _data() -> dict[str, Any]:
    text = resources.files("monitor").joinpath("data/presets.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def chain_presets() -> dict[str, ChainPreset]:
    """Every chain the presets know, by name."""
    return {
        name: ChainPreset(name, int(c["chain_id"]), str(c["explorer"]), tuple(c["rpc_urls"]), int(c["max_log_range"]))
        for name, c in _data()["chains"].items()
    }


def market_presets() -> dict[str, MarketPreset]:
    """Every market preset, by name."""
    found = {}
    for name, m in _data()["markets"].items():
        found[name] = MarketPreset(
            name=name, protocol=str(m["protocol"]), chain=str(m["chain"]), start_block=int(m["start_block"]),
            app_url=str(m.get("app_url", "")), addresses={k: str(m[k]) for k in _ADDRESS_KEYS if k in m},
            market_ids=tuple(str(x["id"]) for x in m.get("markets", ())), address_book=str(m.get("address_book", "")),
            raw=m,
        )  # fmt: skip
    return found


def explorer_for(chain_id: int) -> str | None:
    """The block explorer of ``chain_id`` (e.g. ``https://basescan.org``), when a preset knows it."""
    for chain in chain_presets().values():
        if chain.chain_id == chain_id:
            return chain.explorer
    return None


def expand_presets(data: Mapping[Any, Any], v: Validator) -> Mapping[Any, Any]:
    """``data`` with every ``markets[i].preset`` replaced by the preset's keys (the user's own
    keys beside it win) and the chains the presets need added when the config lacks them."""
    markets = data.get("markets")
    if not isinstance(markets, list) or not any(isinstance(m, Mapping) and "preset" in m for m in markets):
        return data
    chains_raw = data.get("chains", {})
    chains: dict[Any, Any] = dict(chains_raw) if isinstance(chains_raw, Mapping) else {}
    known, known_chains = market_presets(), chain_presets()
    expanded = []
    for i, entry in enumerate(markets):
        if not isinstance(entry, Mapping) or "preset" not in entry:
            expanded.append(entry)
            continue
        name = entry["preset"]
        path = f"markets[{i}].preset"
        if not isinstance(name, str) or name not in known:
            hint = _did_you_mean(name, known) if isinstance(name, str) else None
            v.fail(
                path,
                f"unknown preset {name!r}{'; did you mean ' + repr(hint) + '?' if hint else ''}"
                f" (available: {', '.join(sorted(known))}; `liqmon init --list-presets` lists them)",
            )
        preset = known[name]
        market: dict[Any, Any] = {"name": name, "protocol": preset.protocol, "chain": preset.chain,
                                  "start_block": preset.start_block, **preset.addresses}  # fmt: skip
        if preset.market_ids:
            market["market_ids"] = list(preset.market_ids)
        market.update({k: val for k, val in entry.items() if k != "preset"})
        chain_name = market["chain"]
        chain = known_chains.get(chain_name) if isinstance(chain_name, str) else None
        if chain_name not in chains:
            if chain is None:
                v.fail(
                    f"markets[{i}].chain", f"chain {chain_name!r} is not defined under chains (and no preset knows it)"
                )
            chains[chain_name] = {"chain_id": chain.chain_id, "rpc_urls": list(chain.rpc_urls),
                                  "max_log_range": chain.max_log_range}  # fmt: skip
        elif chain is not None and chain_name == preset.chain:
            given = chains[chain_name].get("chain_id") if isinstance(chains[chain_name], Mapping) else None
            if isinstance(given, int) and given != chain.chain_id:
                v.fail(
                    f"chains.{chain_name}.chain_id",
                    f"{given} but preset {name!r} is on {chain_name} (chain id {chain.chain_id}): fix chain_id"
                    " or rename the chain",
                )
        expanded.append(market)
    return {**data, "chains": chains, "markets": expanded}
