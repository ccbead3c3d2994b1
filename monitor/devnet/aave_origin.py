"""A devnet running the newest Aave V3 Pool (aave-v3-origin 3.6.0, ``POOL_REVISION`` 10) on anvil.

The contracts are compiled from the npm ``@aave-dao/aave-v3-origin`` sources by
:mod:`monitor.devnet.aave_origin_build` (cached in ``.liqmon-cache/``) and deployed for real:
PoolAddressesProvider, ACLManager, the linked logic libraries (SupplyLogic, BorrowLogic,
LiquidationLogic, PoolLogic, FlashLoanLogic -> BorrowLogic; ConfiguratorLogic), PoolInstance
and PoolConfiguratorInstance behind the provider's proxies, one DefaultReserveInterestRateStrategyV2
(3.4+: one strategy for every reserve, rates per reserve), ATokenInstance / VariableDebtTokenInstance
implementations (the aToken's treasury is immutable: :data:`TREASURY`), AaveProtocolDataProvider,
AaveOracle over our own Chainlink-compatible ``LiqmonPriceFeed`` (8 decimals), MintableERC20 test
tokens, and our Multicall3-compatible aggregator at the canonical address.

The market (:data:`ORIGIN_RESERVES`, :data:`ORIGIN_EMODES`): 7 reserves with 18 / 8 / 6 decimals

    symbol  dec  price   LTV   LT    bonus  RF    protocol fee  borrowable
    WETH    18   3000    8050  8300  10500  1500  1000          yes
    wstETH  18   3600    7850  8100  10600   500  1000          yes
    WBTC     8   60000   7300  7800  10500  2000  2000          yes
    USDC     6   1       7500  7800  10450  1000  1000          yes
    USDT     6   1       7500  7800  10450  1000     0          yes
    DAI     18   1       6300  7700  10500  1000  2000          yes
    PTUSD   18   0.97    0     0     0      1000  1000          no   (collateral only inside an eMode)

and three liquid eMode categories (3.2+: their LTV / LT / bonus apply only to the reserves in
the collateral bitmap; borrowing only of the borrowable bitmap)

    id  label            LTV   LT    bonus  collateral                 borrowable        LTV-zero
    1   ETH correlated   9300  9500  10100  WETH wstETH                WETH              -
    2   Stablecoins      9000  9300  10200  USDC USDT DAI PTUSD        USDC USDT         DAI
    3   PT-USD           8600  8800  10500  PTUSD USDC                 USDC USDT DAI     -

Positions (:func:`seed_origin`) come in kinds (:data:`POSITION_KINDS`): single collateral,
multi-collateral (2-3), multi-debt (2), eMode 1 / 2 with and without collateral outside the
category's bitmap, PT collateral in eMode 2 and 3, eMode 2 with two debts; every fifth one
is small (collateral and debt under $2,000) and about 40 % borrow to near the LTV
limit (HF about 1.02-1.15 at the start). The LTV-zero flag of DAI in eMode 2 is lifted while
the positions open and set again afterwards (as a risk steward does with existing positions),
so eMode-2 users hold DAI collateral whose LTV is zero.

Public API (other modules and tests code against it):

- :func:`deploy_origin` (node) -> :class:`OriginDeployment` (a :class:`monitor.devnet.deploy.Deployment`
  with ``pool_addresses_provider``, ``pool``, ``pool_configurator``, ``oracle``, ``data_provider``,
  ``acl_manager``, ``tokens`` symbol -> ``TokenInfo(symbol, address, decimals, feed)`` and more:
  ``treasury``, ``interest_rate_strategy``, ``liquidation_logic``, ``libraries``, ``a_tokens``,
  ``variable_debt_tokens``)
- :func:`seed_origin` (node, deployment, n=240, seed=...) -> accounts; :func:`seed_origin_positions`
  -> :class:`OriginPosition` (account, kind, eMode, collaterals, debts, small, target HF);
  :func:`plan_origin_positions` is the same book without a chain (pure, reproducible)
- :func:`set_origin_price` / :func:`set_origin_answer`: an asset's oracle price (one mined block)
- :func:`advance_days` (node, days): evm_increaseTime + mine; :func:`touch_reserves`: a supply to
  every reserve so the stored indexes move; :func:`accrue_interest` does both and lets some users act
- :func:`liquidate` -> :class:`LiquidationOutcome` (receipt and decoded logs, or the decoded revert);
  :func:`fund` mints tokens to an account and approves the Pool
- :func:`liquidation_constants`: ``CLOSE_FACTOR_HF_THRESHOLD``, ``MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD``,
  ``MIN_LEFTOVER_BASE`` read from the deployed LiquidationLogic, ``DEFAULT_LIQUIDATION_CLOSE_FACTOR``
  and ``POOL_REVISION``
- :func:`user_account_data` (batched ``getUserAccountData``), :func:`balances` (aToken / debt balances
  per symbol), :func:`set_reserve_pause` (pause, or unpause with a liquidation grace period),
  :func:`decode_revert`, :func:`decode_logs`
- :func:`start_origin_devnet`: a context manager (anvil + deploy + seed + 90 days) -> :class:`OriginDevnet`
  (``url``, ``client``, ``node``, ``deployment``, ``positions``, ``accounts``, ``acted``; ``config_data()``
  is a liqmon config for ``scan``). The pytest fixtures ``origin_devnet`` (per test, reverted with
  ``evm_snapshot`` / ``evm_revert``) and ``origin_devnet_session`` in ``tests/conftest.py`` wrap it.

Prices: the feeds are ``LiqmonPriceFeed`` contracts whose owner is ``deployment.admin``; move them
with :func:`set_origin_price` (a ``setAnswer`` transaction), never with ``monitor.devnet.seed.set_price``
(that writes the 3.0 devnet's MockAggregator storage slot). Token symbols are case-sensitive on
chain (``wstETH``); ``OriginDeployment.token()`` looks them up case-insensitively.

Timings on 2 cores: cold compile about 10 s (17 contracts, solc-js 0.8.27), deploy about 1.5 s,
240 positions about 1.5 s, 90 days of interest and the users' actions under 1 s.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from monitor.chain.abi import Fn, fn
from monitor.chain.rpc import RpcClient, to_int
from monitor.contracts import load_artifact
from monitor.devnet.aave_origin_build import link_origin, origin_artifacts
from monitor.devnet.anvil import Anvil
from monitor.devnet.artifacts import abi_type
from monitor.devnet.deploy import Deployment, TokenInfo, install_multicall
from monitor.devnet.node import DevnetNode, Tx
from monitor.devnet.seed import ETH_FOR_GAS, seed_account
from monitor.devnet.session import devnet_config
from monitor.errors import InputError, RpcResponseError
from monitor.protocols.aave_v3_abi import (
    ADD_POOL_ADMIN,
    APPROVE,
    BALANCE_OF,
    BORROW,
    CONFIGURE_COLLATERAL,
    GET_ASSETS_PRICES,
    GET_EMODE_BORROWABLE_BITMAP,
    GET_EMODE_COLLATERAL_BITMAP,
    GET_EMODE_COLLATERAL_CONFIG,
    GET_EMODE_LABEL,
    GET_EMODE_LTVZERO_BITMAP,
    GET_LIQUIDATION_GRACE_PERIOD,
    GET_NORMALIZED_DEBT,
    GET_NORMALIZED_INCOME,
    GET_POOL,
    GET_POOL_CONFIGURATOR,
    GET_RESERVE_DEFICIT,
    GET_RESERVES_LIST,
    GET_USER_ACCOUNT_DATA,
    GET_USER_CONFIGURATION,
    GET_USER_EMODE,
    LIQUIDATION_CALL,
    MINT,
    POOL_REVISION,
    REPAY,
    SET_ACL_ADMIN,
    SET_ACL_MANAGER,
    SET_POOL_CONFIGURATOR_IMPL,
    SET_POOL_DATA_PROVIDER,
    SET_POOL_IMPL,
    SET_PRICE_ORACLE,
    SET_RESERVE_BORROWING,
    SET_RESERVE_FACTOR,
    SET_USER_EMODE,
    SUPPLY,
)

USD = 10**8  # AaveOracle base currency unit (USD, 8 decimals)
RAY = 10**27
WAD = 10**18
MAX_UINT256 = 2**256 - 1
ZERO = "0x0000000000000000000000000000000000000000"
ORIGIN_POOL_REVISION = 10  # PoolInstance.POOL_REVISION of aave-v3-origin 3.6.0
DEFAULT_LIQUIDATION_CLOSE_FACTOR = 5_000  # LiquidationLogic (internal constant, 0.5e4 bps)
TREASURY = to_checksum_address(keccak(text="liqmon/devnet/origin/treasury")[-20:])
SEED_NAMESPACE = 20_000  # seed_account(seed + SEED_NAMESPACE, i): apart from the 3.0 and Morpho seeders
DEFAULT_SEED = 9
DEFAULT_POSITIONS = 240
INTEREST_DAYS = 90
ORIGIN_MARKET_NAME = "aave-v3-origin-devnet"
WHALE_USD = 50_000_000  # liquidity the whale supplies to every borrowable reserve
INIT_RESERVES_PER_TX = 7  # initReserves deploys two proxies a reserve: ~8 M gas each

# -- ABI fragments ---------------------------------------------------------------------------
# The ones the reader also uses come from monitor.protocols.aave_v3_abi (checked against the
# artifacts by tests/unit/test_aave_abi.py); only the devnet's own are declared here.

# Pool
GET_CONFIGURATION = fn("getConfiguration(address)", "uint256")
GET_RESERVE_ATOKEN = fn("getReserveAToken(address)", "address")
GET_RESERVE_VARIABLE_DEBT_TOKEN = fn("getReserveVariableDebtToken(address)", "address")
GET_LIQUIDATION_LOGIC = fn("getLiquidationLogic()", "address")
# LiquidationLogic (public constants of the deployed library)
CLOSE_FACTOR_HF_THRESHOLD = fn("CLOSE_FACTOR_HF_THRESHOLD()", "uint256")
MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD = fn("MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD()", "uint256")
MIN_LEFTOVER_BASE = fn("MIN_LEFTOVER_BASE()", "uint256")
# PoolConfigurator. INIT_RESERVES and SET_EMODE_CATEGORY stay local: aave_v3_abi has the 3.0
# signatures (initReserves with decimals / treasury / incentives / params fields, setEModeCategory
# with a price-source address); aave-v3-origin 3.6.0 changed both, so the selectors differ.
INIT_RESERVES = fn("initReserves((address,address,address,string,string,string,string,bytes,bytes)[])")
SET_LIQUIDATION_PROTOCOL_FEE = fn("setLiquidationProtocolFee(address,uint256)")
SET_EMODE_CATEGORY = fn("setEModeCategory(uint8,uint16,uint16,uint16,string)")
SET_ASSET_COLLATERAL_IN_EMODE = fn("setAssetCollateralInEMode(address,uint8,bool)")
SET_ASSET_BORROWABLE_IN_EMODE = fn("setAssetBorrowableInEMode(address,uint8,bool)")
SET_ASSET_LTVZERO_IN_EMODE = fn("setAssetLtvzeroInEMode(address,uint8,bool)")
SET_RESERVE_PAUSE = fn("setReservePause(address,bool,uint40)")
# AaveProtocolDataProvider / AaveOracle
GET_LIQUIDATION_PROTOCOL_FEE = fn("getLiquidationProtocolFee(address)", "uint256")
GET_ASSET_PRICE = fn("getAssetPrice(address)", "uint256")
# feeds
FEED_SET_ANSWER = fn("setAnswer(int256)")

POOL_FNS: dict[str, Fn] = {
    f.name: f
    for f in (
        POOL_REVISION, GET_USER_ACCOUNT_DATA, GET_USER_EMODE, GET_USER_CONFIGURATION, GET_CONFIGURATION,
        GET_RESERVES_LIST, GET_RESERVE_ATOKEN, GET_RESERVE_VARIABLE_DEBT_TOKEN, GET_NORMALIZED_INCOME,
        GET_NORMALIZED_DEBT, GET_RESERVE_DEFICIT, GET_LIQUIDATION_LOGIC,
        GET_EMODE_COLLATERAL_BITMAP, GET_EMODE_BORROWABLE_BITMAP, GET_EMODE_LTVZERO_BITMAP,
        GET_EMODE_COLLATERAL_CONFIG, GET_EMODE_LABEL, GET_LIQUIDATION_GRACE_PERIOD, LIQUIDATION_CALL,
    )
}  # fmt: skip

GAS_MINT = 150_000
GAS_APPROVE = 100_000
GAS_SUPPLY = 600_000
GAS_EMODE = 600_000
GAS_BORROW = 1_500_000
GAS_REPAY = 800_000
GAS_ADMIN = 1_000_000
GAS_LIQUIDATION = 3_000_000

# -- market specification ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateSpec:
    """DefaultReserveInterestRateStrategyV2 ``InterestRateData``, all in basis points."""

    optimal_usage: int
    base: int
    slope1: int
    slope2: int

    def encode(self) -> bytes:
        data = (self.optimal_usage, self.base, self.slope1, self.slope2)
        return abi_encode(["(uint16,uint32,uint32,uint32)"], [data])


@dataclass(frozen=True, slots=True)
class OriginReserveSpec:
    symbol: str
    name: str
    decimals: int
    price_usd: float
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    reserve_factor: int
    protocol_fee: int  # liquidation protocol fee, bps of the bonus
    borrowable: bool
    rate: RateSpec
    price_data: str = ""  # asset name in monitor/data/prices (for replays)


@dataclass(frozen=True, slots=True)
class OriginEModeSpec:
    id: int
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    label: str
    collateral: tuple[str, ...]
    borrowable: tuple[str, ...]
    ltvzero: tuple[str, ...] = ()


ETH_RATE = RateSpec(9000, 200, 270, 8000)
BTC_RATE = RateSpec(8000, 200, 400, 30000)
STABLE_RATE = RateSpec(9000, 300, 600, 6000)
PT_RATE = RateSpec(4500, 0, 1000, 30000)  # never borrowed

ORIGIN_RESERVES: tuple[OriginReserveSpec, ...] = (
    OriginReserveSpec("WETH", "Wrapped Ether", 18, 3000.0, 8050, 8300, 10500, 1500, 1000, True, ETH_RATE, "ETH"),
    OriginReserveSpec("wstETH", "Wrapped stETH", 18, 3600.0, 7850, 8100, 10600, 500, 1000, True, ETH_RATE),
    OriginReserveSpec("WBTC", "Wrapped BTC", 8, 60000.0, 7300, 7800, 10500, 2000, 2000, True, BTC_RATE, "BTC"),
    OriginReserveSpec("USDC", "USD Coin", 6, 1.0, 7500, 7800, 10450, 1000, 1000, True, STABLE_RATE, "USDC"),
    OriginReserveSpec("USDT", "Tether USD", 6, 1.0, 7500, 7800, 10450, 1000, 0, True, STABLE_RATE),
    OriginReserveSpec("DAI", "Dai Stablecoin", 18, 1.0, 6300, 7700, 10500, 1000, 2000, True, STABLE_RATE, "DAI"),
    OriginReserveSpec("PTUSD", "PT Staked USD", 18, 0.97, 0, 0, 0, 1000, 1000, False, PT_RATE),
)  # fmt: skip

ORIGIN_EMODES: tuple[OriginEModeSpec, ...] = (
    OriginEModeSpec(1, 9300, 9500, 10100, "ETH correlated", ("WETH", "wstETH"), ("WETH",)),
    OriginEModeSpec(2, 9000, 9300, 10200, "Stablecoins", ("USDC", "USDT", "DAI", "PTUSD"), ("USDC", "USDT"), ("DAI",)),
    OriginEModeSpec(3, 8600, 8800, 10500, "PT-USD", ("PTUSD", "USDC"), ("USDC", "USDT", "DAI")),
)  # fmt: skip


def reserve_spec(symbol: str, reserves: Sequence[OriginReserveSpec] = ORIGIN_RESERVES) -> OriginReserveSpec:
    for r in reserves:
        if r.symbol.upper() == symbol.upper():
            return r
    raise InputError(f"unknown origin devnet asset {symbol!r}; known: {', '.join(r.symbol for r in reserves)}")


def emode_spec(category: int, emodes: Sequence[OriginEModeSpec] = ORIGIN_EMODES) -> OriginEModeSpec:
    for e in emodes:
        if e.id == category:
            return e
    raise InputError(f"unknown eMode category {category}")


def price_units(usd: float) -> int:
    """A USD price as an 8-decimal oracle answer."""
    return round(usd * USD)


# -- deployment ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OriginDeployment(Deployment):
    """A :class:`Deployment` of the aave-v3-origin market, with the extra addresses it has."""

    treasury: str = TREASURY
    interest_rate_strategy: str = ""
    liquidation_logic: str = ""
    libraries: dict[str, str] = field(default_factory=dict)
    a_tokens: dict[str, str] = field(default_factory=dict)  # symbol -> aToken proxy
    variable_debt_tokens: dict[str, str] = field(default_factory=dict)  # symbol -> variable debt token proxy
    revision: int = ORIGIN_POOL_REVISION

    def token(self, symbol: str) -> TokenInfo:
        for key, info in self.tokens.items():
            if key.upper() == symbol.upper():
                return info
        raise KeyError(symbol)

    def symbol_of(self, address: str) -> str:
        for key, info in self.tokens.items():
            if info.address.lower() == address.lower():
                return key
        raise KeyError(address)

    @classmethod
    def from_json(cls, text: str) -> OriginDeployment:
        raw: dict[str, Any] = json.loads(text)
        tokens = {k: TokenInfo(**v) for k, v in raw.pop("tokens").items()}
        return cls(**raw, tokens=tokens)


def _creation(
    name: str, types: Sequence[str] = (), args: Sequence[Any] = (), libraries: dict[str, str] | None = None
) -> bytes:
    artifact = origin_artifacts()[name]
    code = link_origin(artifact, libraries or {}, name)
    return code + (abi_encode(list(types), list(args)) if types else b"")


def _constructor_types(name: str) -> list[str]:
    for item in origin_artifacts()[name]["abi"]:
        if item.get("type") == "constructor":
            return [abi_type(p) for p in item["inputs"]]
    return []


def _deploy(node: DevnetNode, sender: str, name: str, *args: Any, libraries: dict[str, str] | None = None) -> str:
    return node.deploy_code(sender, _creation(name, _constructor_types(name), args, libraries), name)


def _deploy_feed(node: DevnetNode, owner: str, symbol: str, usd: float) -> str:
    artifact = load_artifact("LiqmonPriceFeed")
    creation = bytes.fromhex(str(artifact["bytecode"])[2:]) + abi_encode(
        ["uint8", "string", "int256"], [8, f"{symbol} / USD", price_units(usd)]
    )
    return node.deploy_code(owner, creation, f"LiqmonPriceFeed {symbol}")


def deploy_origin(
    node: DevnetNode,
    reserves: Sequence[OriginReserveSpec] = ORIGIN_RESERVES,
    emodes: Sequence[OriginEModeSpec] = ORIGIN_EMODES,
    *,
    progress: Callable[[str], None] = lambda _msg: None,
    whale_usd: float = WHALE_USD,
) -> OriginDeployment:
    """Deploy the aave-v3-origin market on ``node`` (anvil) and supply the whale's liquidity."""
    symbols = [r.symbol for r in reserves]
    if len(set(symbols)) != len(symbols):
        raise InputError(f"reserve symbols must be unique: {symbols}")
    for e in emodes:
        for s in (*e.collateral, *e.borrowable, *e.ltvzero):
            if s not in symbols:
                raise InputError(f"eMode {e.id} names {s}, which is not a reserve")
    artifacts = origin_artifacts()  # compile (or load the cache) before anything is sent
    del artifacts
    admin, whale = node.accounts()[:2]
    node.impersonate_all()
    install_multicall(node)

    progress("addresses provider, ACL and interest rate strategy")
    provider = _deploy(node, admin, "PoolAddressesProvider", "liqmon-origin-devnet", admin)
    node.send(Tx(admin, provider, SET_ACL_ADMIN.encode(admin), GAS_ADMIN, "setACLAdmin"))
    acl = _deploy(node, admin, "ACLManager", provider)
    node.send_many([
        Tx(admin, provider, SET_ACL_MANAGER.encode(acl), GAS_ADMIN, "setACLManager"),
        Tx(admin, acl, ADD_POOL_ADMIN.encode(admin), GAS_ADMIN, "addPoolAdmin"),
    ])  # fmt: skip
    strategy = _deploy(node, admin, "DefaultReserveInterestRateStrategyV2", provider)

    progress("logic libraries, Pool and PoolConfigurator")
    libs: dict[str, str] = {}
    for name in ("SupplyLogic", "BorrowLogic", "LiquidationLogic", "PoolLogic"):
        libs[name] = _deploy(node, admin, name)
    libs["FlashLoanLogic"] = _deploy(node, admin, "FlashLoanLogic", libraries=libs)
    pool_impl = _deploy(node, admin, "PoolInstance", provider, strategy, libraries=libs)
    node.send(Tx(admin, provider, SET_POOL_IMPL.encode(pool_impl), 5_000_000, "setPoolImpl"))
    libs["ConfiguratorLogic"] = _deploy(node, admin, "ConfiguratorLogic")
    configurator_impl = _deploy(node, admin, "PoolConfiguratorInstance", libraries=libs)
    set_impl = SET_POOL_CONFIGURATOR_IMPL.encode(configurator_impl)
    node.send(Tx(admin, provider, set_impl, 5_000_000, "setPoolConfiguratorImpl"))
    pool = to_checksum_address(node.call(provider, GET_POOL))
    configurator = to_checksum_address(node.call(provider, GET_POOL_CONFIGURATOR))
    data_provider = _deploy(node, admin, "AaveProtocolDataProvider", provider)
    node.send(Tx(admin, provider, SET_POOL_DATA_PROVIDER.encode(data_provider), GAS_ADMIN, "setPoolDataProvider"))

    progress("tokens, price feeds and AaveOracle")
    tokens: dict[str, TokenInfo] = {}
    for r in reserves:
        address = _deploy(node, admin, "MintableERC20", r.name, r.symbol, r.decimals)
        feed = _deploy_feed(node, admin, r.symbol, r.price_usd)
        tokens[r.symbol] = TokenInfo(r.symbol, address, r.decimals, feed)
    assets = [tokens[s].address for s in symbols]
    oracle = _deploy(node, admin, "AaveOracle", provider, assets, [tokens[s].feed for s in symbols], ZERO, ZERO, USD)
    node.send(Tx(admin, provider, SET_PRICE_ORACLE.encode(oracle), GAS_ADMIN, "setPriceOracle"))

    progress("reserves: initReserves, risk parameters, eModes")
    a_token_impl = _deploy(node, admin, "ATokenInstance", pool, ZERO, TREASURY)
    debt_impl = _deploy(node, admin, "VariableDebtTokenInstance", pool, ZERO)
    inputs = [
        (a_token_impl, debt_impl, tokens[r.symbol].address, f"Aave Origin Devnet {r.symbol}", f"aOrig{r.symbol}",
         f"Aave Origin Devnet Variable Debt {r.symbol}", f"variableDebtOrig{r.symbol}", b"", r.rate.encode())
        for r in reserves
    ]  # fmt: skip
    for start in range(0, len(inputs), INIT_RESERVES_PER_TX):  # 7 reserves: one transaction, as always
        part = inputs[start : start + INIT_RESERVES_PER_TX]
        node.send(Tx(admin, configurator, INIT_RESERVES.encode(part), 60_000_000, "initReserves"))
    txs: list[Tx] = []

    def admin_tx(call: Fn, *args: Any, what: str) -> None:
        txs.append(Tx(admin, configurator, call.encode(*args), GAS_ADMIN, what))

    for r in reserves:
        asset = tokens[r.symbol].address
        if r.liquidation_threshold:
            admin_tx(CONFIGURE_COLLATERAL, asset, r.ltv, r.liquidation_threshold, r.liquidation_bonus,
                     what=f"configureReserveAsCollateral {r.symbol}")  # fmt: skip
        if r.borrowable:
            admin_tx(SET_RESERVE_BORROWING, asset, True, what=f"setReserveBorrowing {r.symbol}")
        admin_tx(SET_RESERVE_FACTOR, asset, r.reserve_factor, what=f"setReserveFactor {r.symbol}")
        if r.protocol_fee:
            admin_tx(SET_LIQUIDATION_PROTOCOL_FEE, asset, r.protocol_fee, what=f"setLiquidationProtocolFee {r.symbol}")
    for e in emodes:
        admin_tx(SET_EMODE_CATEGORY, e.id, e.ltv, e.liquidation_threshold, e.liquidation_bonus, e.label,
                 what=f"setEModeCategory {e.id}")  # fmt: skip
        for s in e.collateral:
            admin_tx(
                SET_ASSET_COLLATERAL_IN_EMODE, tokens[s].address, e.id, True, what=f"collateral {s} in eMode {e.id}"
            )
        for s in e.borrowable:
            admin_tx(
                SET_ASSET_BORROWABLE_IN_EMODE, tokens[s].address, e.id, True, what=f"borrowable {s} in eMode {e.id}"
            )
    node.send_many(txs)  # one sender: sent in order
    _set_ltvzero(node, admin, configurator, tokens, emodes, True)

    a_tokens: dict[str, str] = {
        s: to_checksum_address(node.call(pool, GET_RESERVE_ATOKEN, tokens[s].address)) for s in symbols
    }
    debt_tokens: dict[str, str] = {
        s: to_checksum_address(node.call(pool, GET_RESERVE_VARIABLE_DEBT_TOKEN, tokens[s].address)) for s in symbols
    }
    deployment = OriginDeployment(
        admin=admin,
        whale=whale,
        pool_addresses_provider=provider,
        pool=pool,
        pool_configurator=configurator,
        oracle=oracle,
        data_provider=data_provider,
        acl_manager=acl,
        tokens=tokens,
        treasury=TREASURY,
        interest_rate_strategy=strategy,
        liquidation_logic=to_checksum_address(node.call(pool, GET_LIQUIDATION_LOGIC)),
        libraries=libs,
        a_tokens=a_tokens,
        variable_debt_tokens=debt_tokens,
        revision=int(node.call(pool, POOL_REVISION)),
    )
    progress("whale liquidity")
    supply_liquidity(node, deployment, reserves, whale_usd)
    return deployment


def _set_ltvzero(
    node: DevnetNode,
    admin: str,
    configurator: str,
    tokens: dict[str, TokenInfo],
    emodes: Sequence[OriginEModeSpec],
    flag: bool,
) -> None:
    txs = [
        Tx(admin, configurator, SET_ASSET_LTVZERO_IN_EMODE.encode(tokens[s].address, e.id, flag), GAS_ADMIN,
           f"setAssetLtvzeroInEMode {s} {e.id} {flag}")
        for e in emodes
        for s in e.ltvzero
    ]  # fmt: skip
    if txs:
        node.send_many(txs)


def supply_liquidity(
    node: DevnetNode,
    deployment: Deployment,
    reserves: Sequence[OriginReserveSpec] = ORIGIN_RESERVES,
    whale_usd: float = WHALE_USD,
) -> None:
    """The whale supplies ``whale_usd`` of every borrowable reserve (and keeps as much to repay)."""
    whale, pool = deployment.whale, deployment.pool
    txs: list[Tx] = []
    for r in reserves:
        if not r.borrowable:
            continue
        token = deployment.token(r.symbol)
        amount = int(whale_usd / r.price_usd) * 10**r.decimals
        txs += [
            Tx(whale, token.address, MINT.encode(whale, 2 * amount), GAS_MINT, f"mint {r.symbol}"),
            Tx(whale, token.address, APPROVE.encode(pool, MAX_UINT256), GAS_APPROVE, f"approve {r.symbol}"),
            Tx(whale, pool, SUPPLY.encode(token.address, amount, whale, 0), GAS_SUPPLY, f"supply {r.symbol}"),
        ]
    node.send_many(txs)


# -- prices, time, interest ----------------------------------------------------------------


def set_origin_answer(node: DevnetNode, deployment: Deployment, symbol: str, answer: int) -> int:
    """Set the exact 8-decimal answer of ``symbol``'s LiqmonPriceFeed (one mined block)."""
    try:
        token = deployment.token(symbol)
    except KeyError:
        raise InputError(f"unknown origin devnet asset {symbol!r}; known: {', '.join(deployment.tokens)}") from None
    if answer <= 0:
        raise InputError(f"price of {symbol} must be positive, got {answer}")
    node.send(Tx(deployment.admin, token.feed, FEED_SET_ANSWER.encode(answer), 200_000, f"setAnswer {symbol}"))
    return answer


def set_origin_price(node: DevnetNode, deployment: Deployment, symbol: str, usd: float) -> int:
    """Set ``symbol``'s oracle price to ``usd`` (one mined block); returns the 8-decimal answer."""
    if not usd > 0:
        raise InputError(f"price of {symbol} must be positive, got {usd}")
    return set_origin_answer(node, deployment, symbol, price_units(usd))


def origin_prices(node: DevnetNode, deployment: Deployment) -> dict[str, int]:
    """AaveOracle prices (8-decimal USD) by symbol."""
    symbols = list(deployment.tokens)
    prices = node.call(deployment.oracle, GET_ASSETS_PRICES, [deployment.tokens[s].address for s in symbols])
    return {s: int(p) for s, p in zip(symbols, prices, strict=True)}


def advance_days(node: DevnetNode, days: float) -> None:
    """Move the chain clock forward by ``days`` and mine one block."""
    if days < 0:
        raise InputError(f"days must be >= 0, got {days}")
    node.client.request("evm_increaseTime", [int(days * 86_400)])
    node.mine()


def touch_reserves(node: DevnetNode, deployment: Deployment) -> None:
    """The whale supplies one whole token to every reserve, so each stored index is updated."""
    whale, pool = deployment.whale, deployment.pool
    txs: list[Tx] = []
    for symbol, token in deployment.tokens.items():
        one = 10**token.decimals
        txs += [
            Tx(whale, token.address, MINT.encode(whale, one), GAS_MINT, f"mint {symbol}"),
            Tx(whale, token.address, APPROVE.encode(pool, MAX_UINT256), GAS_APPROVE, f"approve {symbol}"),
            Tx(whale, pool, SUPPLY.encode(token.address, one, whale, 0), GAS_SUPPLY, f"touch {symbol}"),
        ]
    node.send_many(txs)


def fund(node: DevnetNode, deployment: Deployment, account: str, symbol: str, amount: int) -> None:
    """Mint ``amount`` base units of ``symbol`` to ``account`` (impersonated) and approve the Pool."""
    token = deployment.token(symbol)
    node.impersonate_all()
    node.set_balances([account], ETH_FOR_GAS)
    node.send_many([
        Tx(account, token.address, MINT.encode(account, amount), GAS_MINT, f"mint {symbol}"),
        Tx(account, token.address, APPROVE.encode(deployment.pool, MAX_UINT256), GAS_APPROVE, f"approve {symbol}"),
    ])  # fmt: skip


# -- positions -----------------------------------------------------------------------------

POSITION_KINDS: tuple[str, ...] = (
    "single",  # one collateral outside eMode, one debt
    "multi_collateral",  # 2-3 collaterals, one debt
    "multi_debt",  # 1-2 collaterals, two debts
    "emode1",  # ETH correlated: WETH / wstETH collateral, WETH debt
    "emode1_outside",  # ... plus collateral outside the category's bitmap (USDC, WBTC, DAI)
    "emode2",  # Stablecoins: USDC / USDT / DAI collateral, USDC or USDT debt
    "emode2_outside",  # ... plus WETH / WBTC / wstETH collateral outside the bitmap
    "emode2_multi_debt",  # ... borrowing both USDC and USDT
    "pt_emode2",  # PTUSD (+ USDC) collateral in eMode 2
    "pt_emode2_outside",  # PTUSD + WETH / WBTC in eMode 2
    "pt_emode3",  # PTUSD (+ USDC, some + WETH / WBTC outside the bitmap) in eMode 3, debt USDC / USDT / DAI
    "multi_collateral_debt",  # 2-3 collaterals, two debts
)
BORROWED_OUTSIDE_EMODE = ("WETH", "wstETH", "WBTC", "USDC", "USDT", "DAI")
SMALL_EVERY = 5  # every fifth position has collateral (and so debt) under $2,000
NEAR_SHARE = 0.4  # the share of positions that borrow to near the LTV limit (HF near 1)


@dataclass(frozen=True, slots=True)
class OriginPosition:
    account: str
    kind: str
    emode: int
    collaterals: dict[str, int]  # symbol -> base units supplied
    debts: dict[str, int]  # symbol -> base units borrowed
    small: bool
    target_hf: float  # the health factor aimed at when opening (before interest)


def _plan(rng: random.Random, kind: str) -> tuple[int, list[str], list[str]]:
    """(eMode, collateral symbols, debt symbols) for one position of ``kind``."""
    if kind == "single":
        c = rng.choice(["WETH", "wstETH", "WBTC", "USDC", "USDT", "DAI"])
        d = rng.choice([s for s in BORROWED_OUTSIDE_EMODE if s != c])
        return 0, [c], [d]
    if kind in ("multi_collateral", "multi_collateral_debt", "multi_debt"):
        pool = ["WETH", "wstETH", "WBTC", "USDC", "USDT", "DAI"]
        count = rng.randint(1, 2) if kind == "multi_debt" else rng.randint(2, 3)
        cs = rng.sample(pool, count)
        others = [s for s in BORROWED_OUTSIDE_EMODE if s not in cs]
        ds = rng.sample(others, 1 if kind == "multi_collateral" else 2)
        return 0, cs, ds
    if kind == "emode1":
        return 1, rng.sample(["wstETH", "WETH"], rng.randint(1, 2)) if rng.random() < 0.5 else ["wstETH"], ["WETH"]
    if kind == "emode1_outside":
        return 1, ["wstETH", rng.choice(["USDC", "WBTC", "DAI"])], ["WETH"]
    if kind == "emode2":
        return 2, rng.sample(["USDC", "USDT", "DAI"], rng.randint(1, 2)), [rng.choice(["USDC", "USDT"])]
    if kind == "emode2_outside":
        inside = rng.sample(["USDC", "USDT", "DAI"], rng.randint(1, 2))
        return 2, [*inside, rng.choice(["WETH", "WBTC", "wstETH"])], [rng.choice(["USDC", "USDT"])]
    if kind == "emode2_multi_debt":
        return 2, rng.sample(["USDC", "DAI", "USDT"], rng.randint(1, 2)), ["USDC", "USDT"]
    if kind == "pt_emode2":
        return 2, ["PTUSD"] + (["USDC"] if rng.random() < 0.4 else []), [rng.choice(["USDC", "USDT"])]
    if kind == "pt_emode2_outside":
        return 2, ["PTUSD", rng.choice(["WETH", "WBTC"])], [rng.choice(["USDC", "USDT"])]
    if kind == "pt_emode3":
        cs = ["PTUSD"] + (["USDC"] if rng.random() < 0.4 else [])
        debt = rng.choice([s for s in ("USDT", "DAI", "USDC") if s not in cs])
        if rng.random() < 0.5:
            cs.append(rng.choice(["WETH", "WBTC"]))  # outside the PT-USD bitmap
        return 3, cs, [debt]
    raise InputError(f"unknown position kind {kind!r}")


def _reserve_params(spec: OriginReserveSpec, emode: OriginEModeSpec | None) -> tuple[int, int]:
    """(LTV, LT) the Pool applies to ``spec`` as collateral of a user in ``emode`` (ltvzero lifted)."""
    if emode is not None and spec.symbol in emode.collateral:
        return emode.ltv, emode.liquidation_threshold
    return spec.ltv, spec.liquidation_threshold


def plan_origin_positions(
    n: int,
    prices: dict[str, int],
    *,
    seed: int = DEFAULT_SEED,
    reserves: Sequence[OriginReserveSpec] = ORIGIN_RESERVES,
    emodes: Sequence[OriginEModeSpec] = ORIGIN_EMODES,
) -> list[OriginPosition]:
    """The ``n`` positions :func:`seed_origin_positions` opens at ``prices`` (8-decimal USD by
    symbol): a pure function of its arguments, so the same seed always gives the same book."""
    if n < 0:
        raise InputError(f"position count must be >= 0, got {n}")
    positions: list[OriginPosition] = []
    for index in range(n):
        rng = random.Random(f"liqmon/origin/{seed}/{index}")
        kind = POSITION_KINDS[index % len(POSITION_KINDS)]
        small = index % SMALL_EVERY == SMALL_EVERY - 1
        near = rng.random() < NEAR_SHARE
        category, collateral_symbols, debt_symbols = _plan(rng, kind)
        emode = emode_spec(category, emodes) if category else None
        size = rng.uniform(400.0, 1_900.0) if small else rng.lognormvariate(10.0, 1.1)
        total_usd = size if small else min(3e6, max(2_500.0, size))
        weights = [rng.uniform(0.5, 1.5) for _ in collateral_symbols]
        lt_sum = ltv_sum = 0.0  # USD x bps
        collaterals: dict[str, int] = {}
        for symbol, w in zip(collateral_symbols, weights, strict=True):
            spec = reserve_spec(symbol, reserves)
            amount = int(total_usd * w / sum(weights) * USD * 10**spec.decimals // prices[symbol])
            ltv, lt = _reserve_params(spec, emode)
            value = amount * prices[symbol] / 10**spec.decimals / USD
            lt_sum += value * lt
            ltv_sum += value * ltv
            collaterals[symbol] = amount
        target = rng.uniform(1.0, 1.12) if near else 1.15 + 1.85 * rng.random() ** 1.5
        debt_usd = min(lt_sum / target, ltv_sum * 0.995) / 10_000
        shares = [1.0] if len(debt_symbols) == 1 else [s := rng.uniform(0.3, 0.7), 1.0 - s]
        debts = {
            symbol: int(debt_usd * share * USD * 10 ** reserve_spec(symbol, reserves).decimals // prices[symbol])
            for symbol, share in zip(debt_symbols, shares, strict=True)
        }
        account = seed_account(seed + SEED_NAMESPACE, index)
        hf = round(lt_sum / 10_000 / debt_usd, 6)
        positions.append(OriginPosition(account, kind, category, collaterals, debts, small, hf))
    return positions


def seed_origin_positions(
    node: DevnetNode,
    deployment: Deployment,
    n: int = DEFAULT_POSITIONS,
    *,
    seed: int = DEFAULT_SEED,
    reserves: Sequence[OriginReserveSpec] = ORIGIN_RESERVES,
    emodes: Sequence[OriginEModeSpec] = ORIGIN_EMODES,
    progress: Callable[[int, int], None] = lambda _done, _total: None,
) -> list[OriginPosition]:
    """Open the ``n`` positions of :func:`plan_origin_positions` at the oracle's current prices:
    each account enters its eMode first (so PTUSD becomes collateral), supplies, then borrows."""
    prices = origin_prices(node, deployment)
    positions = plan_origin_positions(n, prices, seed=seed, reserves=reserves, emodes=emodes)
    open_positions(node, deployment, positions, emodes, progress=progress)
    return positions


def position_txs(deployment: Deployment, positions: Sequence[OriginPosition]) -> list[Tx]:
    """The transactions that open ``positions``, per account in order: eMode, then for each
    collateral mint / approve / supply, then each borrow."""
    pool = deployment.pool
    txs: list[Tx] = []
    for p in positions:
        if p.emode:
            txs.append(Tx(p.account, pool, SET_USER_EMODE.encode(p.emode), GAS_EMODE, f"setUserEMode {p.emode}"))
        for symbol, amount in p.collaterals.items():
            token = deployment.token(symbol).address
            txs += [
                Tx(p.account, token, MINT.encode(p.account, amount), GAS_MINT, f"mint {symbol}"),
                Tx(p.account, token, APPROVE.encode(pool, MAX_UINT256), GAS_APPROVE, f"approve {symbol}"),
                Tx(p.account, pool, SUPPLY.encode(token, amount, p.account, 0), GAS_SUPPLY, f"supply {symbol}"),
            ]
        for symbol, amount in p.debts.items():
            token = deployment.token(symbol).address
            txs.append(Tx(p.account, pool, BORROW.encode(token, amount, 2, 0, p.account), GAS_BORROW,
                          f"borrow {symbol} ({p.kind} {p.account})"))  # fmt: skip
    return txs


def open_positions(
    node: DevnetNode,
    deployment: Deployment,
    positions: Sequence[OriginPosition],
    emodes: Sequence[OriginEModeSpec] = ORIGIN_EMODES,
    *,
    send: Callable[[Sequence[Tx]], object] | None = None,
    chunk: int = 2_000,
    progress: Callable[[int, int], None] = lambda _done, _total: None,
) -> None:
    """Open ``positions`` through the Pool (the LTV-zero flags lifted meanwhile); ``send`` sends a
    list of transactions (default ``node.send_many``: one block a transaction)."""
    node.impersonate_all()
    node.set_balances([p.account for p in positions], ETH_FOR_GAS)
    txs = position_txs(deployment, positions)
    configurator = deployment.pool_configurator
    tokens = dict(deployment.tokens)
    _set_ltvzero(node, deployment.admin, configurator, tokens, emodes, False)  # lifted while positions open
    sender = send or node.send_many
    for start in range(0, len(txs), chunk):
        sender(txs[start : start + chunk])
        progress(min(len(txs), start + chunk), len(txs))
    _set_ltvzero(node, deployment.admin, configurator, tokens, emodes, True)


def seed_origin(
    node: DevnetNode, deployment: Deployment, n: int = DEFAULT_POSITIONS, seed: int = DEFAULT_SEED
) -> list[str]:
    """Open ``n`` reproducible positions; returns their accounts (see :func:`seed_origin_positions`)."""
    return [p.account for p in seed_origin_positions(node, deployment, n, seed=seed)]


def accrue_interest(
    node: DevnetNode,
    deployment: Deployment,
    positions: Sequence[OriginPosition],
    days: float = INTEREST_DAYS,
    *,
    seed: int = DEFAULT_SEED,
    act_share: float = 0.1,
) -> list[str]:
    """``days`` of interest: advance the clock, touch every reserve, and let a share of the users
    act (repay a tenth of a debt, or supply a tenth more of a collateral); returns who acted."""
    advance_days(node, days)
    touch_reserves(node, deployment)
    rng = random.Random(f"liqmon/origin/act/{seed}")
    pool = deployment.pool
    txs: list[Tx] = []
    acted: list[str] = []
    for p in positions:
        if rng.random() >= act_share:
            continue
        acted.append(p.account)
        if rng.random() < 0.5 and p.debts:
            symbol = sorted(p.debts)[0]
            token = deployment.token(symbol)
            amount = max(1, p.debts[symbol] // 10)
            txs += [
                Tx(p.account, token.address, MINT.encode(p.account, amount), GAS_MINT, f"mint {symbol}"),
                Tx(p.account, token.address, APPROVE.encode(pool, MAX_UINT256), GAS_APPROVE, f"approve {symbol}"),
                Tx(p.account, pool, REPAY.encode(token.address, amount, 2, p.account), GAS_REPAY, f"repay {symbol}"),
            ]
        else:
            symbol = sorted(p.collaterals)[0]
            token = deployment.token(symbol)
            amount = max(10**token.decimals // 100, p.collaterals[symbol] // 10)
            txs += [
                Tx(p.account, token.address, MINT.encode(p.account, amount), GAS_MINT, f"mint {symbol}"),
                Tx(p.account, pool, SUPPLY.encode(token.address, amount, p.account, 0), GAS_SUPPLY, f"supply {symbol}"),
            ]
    node.send_many(txs)
    return acted


def user_account_data(node: DevnetNode, deployment: Deployment, accounts: Sequence[str]) -> list[tuple[int, ...]]:
    """``getUserAccountData`` for each account, in one Multicall-free JSON-RPC batch (latest block):
    (totalCollateralBase, totalDebtBase, availableBorrowsBase, currentLiquidationThreshold, ltv, healthFactor)."""
    calls = [
        ("eth_call", [{"to": deployment.pool, "data": "0x" + GET_USER_ACCOUNT_DATA.encode(a).hex()}, "latest"])
        for a in accounts
    ]
    out: list[tuple[int, ...]] = []
    for start in range(0, len(calls), 500):
        for raw in node.client.batch(calls[start : start + 500]):
            out.append(tuple(int(v) for v in GET_USER_ACCOUNT_DATA.decode(bytes.fromhex(str(raw)[2:]))))
    return out


def balances(node: DevnetNode, deployment: OriginDeployment, account: str) -> dict[str, tuple[int, int]]:
    """symbol -> (aToken balance, variable debt balance) of ``account`` at the latest block, for
    every reserve it holds (base units of the underlying, interest included)."""
    symbols = list(deployment.tokens)
    calls = [
        ("eth_call", [{"to": token, "data": "0x" + BALANCE_OF.encode(account).hex()}, "latest"])
        for s in symbols
        for token in (deployment.a_tokens[s], deployment.variable_debt_tokens[s])
    ]
    values = [int(str(raw), 16) for raw in node.client.batch(calls)]
    pairs = {s: (values[2 * i], values[2 * i + 1]) for i, s in enumerate(symbols)}
    return {s: pair for s, pair in pairs.items() if any(pair)}


def set_reserve_pause(
    node: DevnetNode, deployment: Deployment, symbol: str, paused: bool, grace_period: int = 0
) -> None:
    """Pause or unpause a reserve; unpausing with ``grace_period`` seconds starts a liquidation
    grace period (``Pool.getLiquidationGracePeriod``)."""
    token = deployment.token(symbol)
    node.send(Tx(deployment.admin, deployment.pool_configurator, SET_RESERVE_PAUSE.encode(
        token.address, paused, grace_period), GAS_ADMIN, f"setReservePause {symbol} {paused}"))  # fmt: skip


# -- liquidations --------------------------------------------------------------------------


def liquidation_constants(node: DevnetNode, deployment: OriginDeployment | Deployment) -> dict[str, int]:
    """The liquidation constants of the deployed Pool (from its LiquidationLogic library)."""
    logic = node.call(deployment.pool, GET_LIQUIDATION_LOGIC)
    return {
        "POOL_REVISION": int(node.call(deployment.pool, POOL_REVISION)),
        "CLOSE_FACTOR_HF_THRESHOLD": int(node.call(logic, CLOSE_FACTOR_HF_THRESHOLD)),
        "MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD": int(node.call(logic, MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD)),
        "MIN_LEFTOVER_BASE": int(node.call(logic, MIN_LEFTOVER_BASE)),
        "DEFAULT_LIQUIDATION_CLOSE_FACTOR": DEFAULT_LIQUIDATION_CLOSE_FACTOR,
    }


@dataclass(frozen=True, slots=True)
class DecodedLog:
    address: str
    name: str  # event name, or "" when no compiled ABI knows topic0
    args: dict[str, Any]
    log_index: int


@dataclass(frozen=True, slots=True)
class LiquidationOutcome:
    """A ``liquidationCall``: the receipt and decoded logs, or the revert (nothing was sent)."""

    success: bool
    receipt: dict[str, Any] | None
    logs: list[DecodedLog]
    revert_error: str  # custom error name, e.g. "MustNotLeaveDust" ("" on success)
    revert_args: tuple[Any, ...]
    revert_data: str  # 0x-hex

    def events(self, name: str) -> list[DecodedLog]:
        return [log for log in self.logs if log.name == name]


@cache
def _error_index() -> dict[bytes, tuple[str, tuple[str, ...]]]:
    index: dict[bytes, tuple[str, tuple[str, ...]]] = {}
    for artifact in origin_artifacts().values():
        for item in artifact["abi"]:
            if item.get("type") == "error":
                types = tuple(abi_type(p) for p in item["inputs"])
                index[keccak(text=f"{item['name']}({','.join(types)})")[:4]] = (str(item["name"]), types)
    index[keccak(text="Error(string)")[:4]] = ("Error", ("string",))
    index[keccak(text="Panic(uint256)")[:4]] = ("Panic", ("uint256",))
    return index


@cache
def _event_index() -> dict[str, dict[str, Any]]:
    index: dict[str, dict[str, Any]] = {}
    for artifact in origin_artifacts().values():
        for item in artifact["abi"]:
            if item.get("type") == "event" and not item.get("anonymous"):
                types = ",".join(abi_type(p) for p in item["inputs"])
                index.setdefault("0x" + keccak(text=f"{item['name']}({types})").hex(), item)
    return index


def decode_revert(data: str | bytes) -> tuple[str, tuple[Any, ...]]:
    """(error name, arguments) of revert data, from the compiled aave-v3-origin ABIs."""
    raw = bytes.fromhex(data[2:] if data.startswith("0x") else data) if isinstance(data, str) else data
    if len(raw) < 4:
        return ("", ())
    known = _error_index().get(raw[:4])
    if known is None:
        return ("0x" + raw[:4].hex(), ())
    name, types = known
    try:
        return (name, tuple(abi_decode(list(types), raw[4:])) if types else ())
    except Exception:  # eth-abi raises several types; keep the name
        return (name, ())


def decode_logs(receipt: dict[str, Any]) -> list[DecodedLog]:
    """Every log of ``receipt`` decoded with the compiled ABIs (unknown events keep raw topics/data)."""
    out: list[DecodedLog] = []
    for log in receipt.get("logs", []):
        topics = [str(t).lower() for t in log.get("topics", [])]
        data = bytes.fromhex(str(log.get("data", "0x"))[2:])
        index = to_int(log.get("logIndex", "0x0"), "logIndex")
        address = to_checksum_address(log["address"])
        item = _event_index().get(topics[0]) if topics else None
        if item is None:
            out.append(DecodedLog(address, "", {"topics": topics, "data": "0x" + data.hex()}, index))
            continue
        indexed = [p for p in item["inputs"] if p.get("indexed")]
        plain = [p for p in item["inputs"] if not p.get("indexed")]
        args: dict[str, Any] = {}
        try:
            for p, topic in zip(indexed, topics[1:], strict=True):
                args[p["name"]] = abi_decode([abi_type(p)], bytes.fromhex(topic[2:]))[0]
            values = abi_decode([abi_type(p) for p in plain], data) if plain else ()
        except Exception:  # a topic collision with another ABI: keep it raw
            out.append(DecodedLog(address, "", {"topics": topics, "data": "0x" + data.hex()}, index))
            continue
        args.update({p["name"]: v for p, v in zip(plain, values, strict=True)})
        out.append(DecodedLog(address, str(item["name"]), args, index))
    return out


def liquidate(
    node: DevnetNode,
    deployment: Deployment,
    user: str,
    collateral: str,
    debt: str,
    debt_to_cover: int,
    *,
    liquidator: str | None = None,
    receive_a_token: bool = False,
    fund_liquidator: bool = True,
) -> LiquidationOutcome:
    """Run ``Pool.liquidationCall(collateral, debt, user, debt_to_cover, receive_a_token)``.

    ``collateral`` / ``debt`` are symbols; ``debt_to_cover`` in debt base units (``MAX_UINT256``
    for "as much as allowed"). The liquidator (default: a fresh deterministic account) is funded
    with enough debt tokens and approves the Pool. The call is simulated first at the latest
    block: when it would revert, nothing is sent and the decoded custom error is returned."""
    who = liquidator or to_checksum_address(keccak(text=f"liqmon/origin/liquidator/{user}")[-20:])
    debt_token = deployment.token(debt)
    collateral_token = deployment.token(collateral)
    if fund_liquidator:
        amount = debt_to_cover
        if debt_to_cover == MAX_UINT256:
            debt_tokens = getattr(deployment, "variable_debt_tokens", {}) or {}
            vtoken = debt_tokens.get(debt_token.symbol) or node.call(
                deployment.pool, GET_RESERVE_VARIABLE_DEBT_TOKEN, debt_token.address
            )
            amount = 2 * int(node.call(vtoken, BALANCE_OF, user)) + 10**debt_token.decimals
        fund(node, deployment, who, debt, amount)
    data = LIQUIDATION_CALL.encode(collateral_token.address, debt_token.address, user, debt_to_cover, receive_a_token)
    tx = Tx(who, deployment.pool, data, GAS_LIQUIDATION, f"liquidationCall {user}")
    try:
        node.client.request("eth_call", [tx.as_rpc(), "latest"])
    except RpcResponseError as exc:
        revert = exc.data if isinstance(exc.data, str) else ""
        if isinstance(exc.data, dict):
            revert = str(exc.data.get("data", ""))
        name, args = decode_revert(revert) if revert.startswith("0x") else ("", ())
        return LiquidationOutcome(False, None, [], name or str(exc), args, revert)
    receipt = node.send(tx)
    return LiquidationOutcome(True, receipt, decode_logs(receipt), "", (), "0x")


# -- one ready devnet ----------------------------------------------------------------------


@dataclass
class OriginDevnet:
    """anvil running the aave-v3-origin market with its seeded positions."""

    anvil: Anvil
    client: RpcClient
    node: DevnetNode
    deployment: OriginDeployment
    positions: list[OriginPosition]
    accounts: list[str]
    acted: list[str]
    seed: int

    @property
    def url(self) -> str:
        return self.anvil.url

    def config_data(self, db_path: str = "origin-devnet.db") -> dict[str, Any]:
        """A liqmon config (as data) that scans this market (market name ``aave-v3-origin-devnet``)."""
        data = devnet_config(self.url, self.deployment, db_path)
        data["markets"][0]["name"] = ORIGIN_MARKET_NAME
        return data


@contextmanager
def start_origin_devnet(
    n: int = DEFAULT_POSITIONS, *, seed: int = DEFAULT_SEED, days: float = INTEREST_DAYS
) -> Iterator[OriginDevnet]:
    """anvil + :func:`deploy_origin` + ``n`` positions + ``days`` of interest; stops anvil on exit."""
    with Anvil() as anvil:
        client = RpcClient([anvil.url], timeout=120, max_retries=0)
        try:
            node = DevnetNode(client)
            deployment = deploy_origin(node)
            positions = seed_origin_positions(node, deployment, n, seed=seed)
            acted = accrue_interest(node, deployment, positions, days, seed=seed) if days else []
            yield OriginDevnet(anvil, client, node, deployment, positions, [p.account for p in positions], acted, seed)
        finally:
            client.close()
