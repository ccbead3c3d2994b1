"""One devnet with all three protocol families: the real Aave V3, the real Morpho Blue on the
same tokens, and our Comet-semantics contract; and a liqmon config watching all three."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from monitor.devnet import spec as devspec
from monitor.devnet.comet import CometDeployment, comet_prices, deploy_comet, seed_comet, set_comet_price
from monitor.devnet.deploy import Deployment, deploy_aave
from monitor.devnet.market_config import MARKET_NAME, devnet_config
from monitor.devnet.morpho import MorphoDeployment, deploy_morpho, seed_morpho, set_morpho_price
from monitor.devnet.node import DevnetNode
from monitor.devnet.seed import current_prices, seed_positions, set_price
from monitor.errors import InputError
from monitor.protocols.morpho_blue import PRICE as ORACLE_PRICE

AAVE_MARKET = MARKET_NAME
MORPHO_MARKET = "morpho-blue-devnet"
COMET_MARKET = "compound-v3-devnet"


@dataclass(frozen=True, slots=True)
class World:
    aave: Deployment
    morpho: MorphoDeployment
    comet: CometDeployment

    def to_json(self) -> str:
        return json.dumps({name: json.loads(getattr(self, name).to_json()) for name in ("aave", "morpho", "comet")})

    @classmethod
    def from_json(cls, text: str) -> World:
        raw = json.loads(text)
        return cls(
            Deployment.from_json(json.dumps(raw["aave"])),
            MorphoDeployment.from_json(json.dumps(raw["morpho"])),
            CometDeployment.from_json(json.dumps(raw["comet"])),
        )

    def symbols(self) -> list[str]:
        """Every asset symbol of the world, Aave's first (in its reserve order)."""
        out = list(self.aave.tokens)
        out += [m.collateral_symbol for m in self.morpho.markets] + [c.symbol for c in self.comet.collaterals]
        return list(dict.fromkeys(out))


@dataclass(frozen=True, slots=True)
class SeededWorld:
    aave: int
    morpho: int
    comet: int


def deploy_world(node: DevnetNode) -> World:
    aave = deploy_aave(node)
    shared = {s: (t.address, t.decimals) for s, t in aave.tokens.items()}
    morpho = deploy_morpho(node, tokens=shared)
    comet = deploy_comet(node)
    return World(aave, morpho, comet)


def align_world_prices(node: DevnetNode, world: World) -> None:
    """Give every asset one price on every protocol: Aave's initial ones (the Comet market's own
    defaults differ, e.g. WBTC), then mine."""
    for reserve in devspec.RESERVES:
        if reserve.symbol in world.aave.tokens:
            set_world_price(node, world, reserve.symbol, reserve.price_usd)
    node.mine()


def seed_world(
    node: DevnetNode, world: World, per_protocol: int, *, seed: int = 1, first_index: int = 0
) -> SeededWorld:
    """``per_protocol`` positions on each protocol (Morpho's spread over its markets); the same
    ``seed`` and ``first_index`` give the same accounts and amounts."""
    aave = seed_positions(node, world.aave, per_protocol, seed=seed, first_index=first_index)
    morpho = seed_morpho(node, world.morpho, per_protocol, seed=seed, first_index=first_index)
    comet = seed_comet(node, world.comet, per_protocol, seed=seed, first_index=first_index)
    return SeededWorld(len(aave), len(morpho), len(comet))


def set_world_price(node: DevnetNode, world: World, symbol: str, usd: float) -> None:
    """Move one asset's price on every protocol's oracle (Aave feed, Morpho market oracles
    quoting it against a USD stablecoin, Comet feed); InputError for an asset none of them has."""
    if symbol not in world.symbols() and symbol != world.comet.base.symbol:
        raise InputError(f"unknown devnet asset {symbol!r}; known: {', '.join(world.symbols())}")
    if symbol in world.aave.tokens:
        set_price(node, world.aave, symbol, usd, mine=False)
    for index, market in enumerate(world.morpho.markets):
        if market.collateral_symbol == symbol:
            set_morpho_price(node, world.morpho, index, usd)
    if symbol == world.comet.base.symbol or any(c.symbol == symbol for c in world.comet.collaterals):
        set_comet_price(node, world.comet, symbol, usd)


def world_prices(node: DevnetNode, world: World) -> dict[str, dict[str, float]]:
    """USD price of each asset by protocol (``aave`` / ``morpho`` / ``comet``) where it is listed;
    Morpho's is its market oracle (loan tokens per collateral token)."""
    out: dict[str, dict[str, float]] = {s: {} for s in world.symbols()}
    for symbol, price in current_prices(node, world.aave).items():
        out[symbol]["aave"] = price / devspec.USD
    for m in world.morpho.markets:
        raw = int(node.call(m.oracle, ORACLE_PRICE))
        out[m.collateral_symbol]["morpho"] = raw * 10**m.collateral_decimals / 10 ** (36 + m.loan_decimals)
    for symbol, price in comet_prices(node, world.comet).items():
        out.setdefault(symbol, {})["comet"] = price / devspec.USD
    return out


def world_config(url: str, world: World, db_path: str) -> dict[str, Any]:
    data = devnet_config(url, world.aave, db_path)
    data["markets"] += [
        {"name": MORPHO_MARKET, "protocol": "morpho_blue", "chain": "devnet", "morpho": world.morpho.morpho,
         "market_ids": [m.id for m in world.morpho.markets]},
        {"name": COMET_MARKET, "protocol": "compound_v3", "chain": "devnet", "comet": world.comet.comet},
    ]  # fmt: skip
    return data
