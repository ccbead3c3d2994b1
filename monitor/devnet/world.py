"""One devnet with all three protocol families: the real Aave V3, the real Morpho Blue on the
same tokens, and our Comet-semantics contract; and a liqmon config watching all three."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitor.devnet.comet import CometDeployment, deploy_comet, seed_comet, set_comet_price
from monitor.devnet.deploy import Deployment, deploy_aave
from monitor.devnet.morpho import MorphoDeployment, deploy_morpho, seed_morpho, set_morpho_price
from monitor.devnet.node import DevnetNode
from monitor.devnet.seed import seed_positions, set_price
from monitor.devnet.session import devnet_config

AAVE_MARKET = "aave-v3-devnet"
MORPHO_MARKET = "morpho-blue-devnet"
COMET_MARKET = "compound-v3-devnet"


@dataclass(frozen=True, slots=True)
class World:
    aave: Deployment
    morpho: MorphoDeployment
    comet: CometDeployment


def deploy_world(node: DevnetNode) -> World:
    aave = deploy_aave(node)
    shared = {s: (t.address, t.decimals) for s, t in aave.tokens.items()}
    morpho = deploy_morpho(node, tokens=shared)
    comet = deploy_comet(node)
    return World(aave, morpho, comet)


def seed_world(node: DevnetNode, world: World, per_protocol: int, *, seed: int = 1) -> None:
    seed_positions(node, world.aave, per_protocol, seed=seed)
    seed_morpho(node, world.morpho, per_protocol, seed=seed)
    seed_comet(node, world.comet, per_protocol, seed=seed)


def set_world_price(node: DevnetNode, world: World, symbol: str, usd: float) -> None:
    """Move one asset's price on every protocol's oracle (Aave feed, Morpho market oracles
    quoting it against a USD stablecoin, Comet feed)."""
    if symbol in world.aave.tokens:
        set_price(node, world.aave, symbol, usd, mine=False)
    for index, market in enumerate(world.morpho.markets):
        if market.collateral_symbol == symbol:
            set_morpho_price(node, world.morpho, index, usd)
    if any(c.symbol == symbol for c in world.comet.collaterals):
        set_comet_price(node, world.comet, symbol, usd)


def world_config(url: str, world: World, db_path: str) -> dict[str, Any]:
    data = devnet_config(url, world.aave, db_path)
    data["markets"] += [
        {"name": MORPHO_MARKET, "protocol": "morpho_blue", "chain": "devnet", "morpho": world.morpho.morpho,
         "market_ids": [m.id for m in world.morpho.markets]},
        {"name": COMET_MARKET, "protocol": "compound_v3", "chain": "devnet", "comet": world.comet.comet},
    ]  # fmt: skip
    return data
