"""Deploy the real Aave V3 protocol from ``@aave/core-v3`` artifacts onto anvil.

Order (as Aave's own deploy scripts do it): addresses provider -> ACL -> logic libraries
-> Pool (linked) behind its proxy -> PoolConfigurator (linked) behind its proxy -> data
provider -> tokens + MockAggregator feeds -> AaveOracle -> token implementations + rate
strategy -> PoolConfigurator.initReserves -> collateral / borrowing / eMode configuration
-> our Multicall3-compatible aggregator at the canonical address -> whale liquidity.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from eth_utils import to_checksum_address

from monitor.chain.multicall import CANONICAL_MULTICALL3
from monitor.contracts import load_artifact
from monitor.devnet import spec as devspec
from monitor.devnet.node import DevnetNode, Tx
from monitor.protocols import aave_v3_abi as abi

RAY = 10**27
ZERO = "0x0000000000000000000000000000000000000000"
LIBRARIES = (
    "SupplyLogic",
    "BorrowLogic",
    "LiquidationLogic",
    "EModeLogic",
    "BridgeLogic",
    "PoolLogic",
)
WHALE_USD = 200_000_000  # liquidity supplied per reserve so every seeded borrow can be filled


@dataclass(frozen=True, slots=True)
class TokenInfo:
    symbol: str
    address: str
    decimals: int
    feed: str  # MockAggregator behind AaveOracle


@dataclass(frozen=True, slots=True)
class Deployment:
    """Addresses of one devnet Aave V3 market (saved beside a state dump)."""

    admin: str
    whale: str
    pool_addresses_provider: str
    pool: str
    pool_configurator: str
    oracle: str
    data_provider: str
    acl_manager: str
    tokens: dict[str, TokenInfo] = field(default_factory=dict)

    def token(self, symbol: str) -> TokenInfo:
        return self.tokens[symbol.upper()]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        raw: dict[str, Any] = json.loads(text)
        tokens = {k: TokenInfo(**v) for k, v in raw.pop("tokens").items()}
        return cls(**raw, tokens=tokens)


def install_multicall(node: DevnetNode) -> None:
    """Our own aggregate3-compatible contract at the canonical Multicall3 address."""
    node.set_code(CANONICAL_MULTICALL3, load_artifact("LiqmonMulticall")["deployedBytecode"])


def deploy_aave(
    node: DevnetNode,
    reserves: Sequence[devspec.ReserveSpec] = devspec.RESERVES,
    emodes: Sequence[devspec.EModeSpec] = devspec.EMODES,
    progress: Callable[[str], None] = lambda _msg: None,
) -> Deployment:
    admin, whale = node.accounts()[:2]
    node.impersonate_all()
    install_multicall(node)

    progress("addresses provider and ACL")
    provider = node.deploy_aave(admin, "PoolAddressesProvider", "liqmon-devnet", admin)
    node.send(Tx(admin, provider, abi.SET_ACL_ADMIN.encode(admin), what="setACLAdmin"))
    acl = node.deploy_aave(admin, "ACLManager", provider)
    node.send_many([
        Tx(admin, provider, abi.SET_ACL_MANAGER.encode(acl), what="setACLManager"),
        Tx(admin, acl, abi.ADD_POOL_ADMIN.encode(admin), what="addPoolAdmin"),
    ])  # fmt: skip

    progress("logic libraries, Pool and PoolConfigurator")
    libs = {name: node.deploy_aave(admin, name) for name in LIBRARIES}
    libs["FlashLoanLogic"] = node.deploy_aave(admin, "FlashLoanLogic", libraries=libs)
    pool_impl = node.deploy_aave(admin, "Pool", provider, libraries=libs)
    node.send(Tx(admin, provider, abi.SET_POOL_IMPL.encode(pool_impl), what="setPoolImpl"))
    configurator_lib = {"ConfiguratorLogic": node.deploy_aave(admin, "ConfiguratorLogic")}
    configurator_impl = node.deploy_aave(admin, "PoolConfigurator", libraries=configurator_lib)
    node.send(
        Tx(
            admin,
            provider,
            abi.SET_POOL_CONFIGURATOR_IMPL.encode(configurator_impl),
            what="setPoolConfiguratorImpl",
        )
    )
    pool = node.call(provider, abi.GET_POOL)
    configurator = node.call(provider, abi.GET_POOL_CONFIGURATOR)
    data_provider = node.deploy_aave(admin, "AaveProtocolDataProvider", provider)
    node.send(
        Tx(
            admin,
            provider,
            abi.SET_POOL_DATA_PROVIDER.encode(data_provider),
            what="setPoolDataProvider",
        )
    )

    progress("tokens, price feeds and AaveOracle")
    tokens: dict[str, TokenInfo] = {}
    for r in reserves:
        address = node.deploy_aave(admin, "MintableERC20", r.name, r.symbol, r.decimals)
        feed = node.deploy_aave(admin, "MockAggregator", devspec.price_units(r.price_usd))
        tokens[r.symbol] = TokenInfo(r.symbol, address, r.decimals, feed)
    assets = [tokens[r.symbol].address for r in reserves]
    feeds = [tokens[r.symbol].feed for r in reserves]
    oracle = node.deploy_aave(admin, "AaveOracle", provider, assets, feeds, ZERO, ZERO, devspec.USD)
    node.send(Tx(admin, provider, abi.SET_PRICE_ORACLE.encode(oracle), what="setPriceOracle"))

    progress("reserves: initReserves and risk parameters")
    a_token = node.deploy_aave(admin, "AToken", pool)
    stable_debt = node.deploy_aave(admin, "StableDebtToken", pool)
    variable_debt = node.deploy_aave(admin, "VariableDebtToken", pool)
    strategy = node.deploy_aave(
        admin, "DefaultReserveInterestRateStrategy", provider,
        80 * RAY // 100, 0, 4 * RAY // 100, 75 * RAY // 100,
        2 * RAY // 100, 75 * RAY // 100, 2 * RAY // 100, 5 * RAY // 100, 20 * RAY // 100,
    )  # fmt: skip
    inputs = [
        (
            a_token, stable_debt, variable_debt, r.decimals, strategy, tokens[r.symbol].address,
            admin, ZERO,
            f"Aave Devnet {r.symbol}", f"aDev{r.symbol}",
            f"Aave Devnet Variable Debt {r.symbol}", f"variableDebtDev{r.symbol}",
            f"Aave Devnet Stable Debt {r.symbol}", f"stableDebtDev{r.symbol}",
            b"",
        )
        for r in reserves
    ]  # fmt: skip
    node.send(
        Tx(
            admin,
            configurator,
            abi.INIT_RESERVES.encode(inputs),
            gas=60_000_000,
            what="initReserves",
        )
    )
    txs: list[Tx] = []
    for e in emodes:
        txs.append(Tx(admin, configurator, abi.SET_EMODE_CATEGORY.encode(
            e.id, e.ltv, e.liquidation_threshold, e.liquidation_bonus, ZERO, e.label
        ), what=f"setEModeCategory {e.id}"))  # fmt: skip
    for r in reserves:
        asset = tokens[r.symbol].address
        txs += [
            Tx(admin, configurator, abi.CONFIGURE_COLLATERAL.encode(
                asset, r.ltv, r.liquidation_threshold, r.liquidation_bonus
            ), what=f"configureReserveAsCollateral {r.symbol}"),
            Tx(admin, configurator, abi.SET_RESERVE_BORROWING.encode(asset, True), what="setReserveBorrowing"),
            Tx(admin, configurator, abi.SET_RESERVE_FACTOR.encode(asset, r.reserve_factor), what="setReserveFactor"),
        ]  # fmt: skip
        if r.emode_category:
            txs.append(Tx(admin, configurator, abi.SET_ASSET_EMODE_CATEGORY.encode(
                asset, r.emode_category), what=f"setAssetEModeCategory {r.symbol}"))  # fmt: skip
    node.send_many(txs)

    deployment = Deployment(
        admin=admin,
        whale=whale,
        pool_addresses_provider=provider,
        pool=to_checksum_address(pool),
        pool_configurator=to_checksum_address(configurator),
        oracle=oracle,
        data_provider=data_provider,
        acl_manager=acl,
        tokens=tokens,
    )
    progress("whale liquidity")
    supply_liquidity(node, deployment, reserves)
    return deployment


def supply_liquidity(node: DevnetNode, deployment: Deployment, reserves: Sequence[devspec.ReserveSpec]) -> None:
    whale = deployment.whale
    txs: list[Tx] = []
    for r in reserves:
        token = deployment.token(r.symbol)
        amount = int(WHALE_USD / r.price_usd) * 10**r.decimals
        txs += [
            Tx(whale, token.address, abi.MINT.encode(whale, amount), what=f"mint {r.symbol}"),
            Tx(whale, token.address, abi.APPROVE.encode(deployment.pool, amount), what="approve"),
            Tx(
                whale,
                deployment.pool,
                abi.SUPPLY.encode(token.address, amount, whale, 0),
                what="supply",
            ),
        ]
    node.send_many(txs)
