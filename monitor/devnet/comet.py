"""A Compound III-like market on the devnet: our own ``CometLike`` contract, feeds and seeded borrowers.

``deploy_comet`` deploys ``contracts/build/CometLike.json`` (a test contract with Comet's view
functions, accrual, base transfers, ``absorb`` and integer rules, see
``contracts/src/CometLike.sol``) with base USDC and the collaterals WETH, WBTC and COMP at
Compound III mainnet-like factors and the cUSDCv3 rate model (``MAINNET_USDC_RATES``); every
asset is priced by its own ``LiqmonPriceFeed`` (8 decimals). Tokens are fixed addresses holding
a tiny runtime that answers ``symbol()`` and ``decimals()`` only: the market keeps balances
itself, so no ERC-20 is needed. ``seed_comet`` gives reproducible borrowers whose liquidation
health factor (collateral value x liquidateCollateralFactor / borrow value) lands near a target
(and, with ``utilization``, a supplier that sets the market's utilization), ``set_comet_price``
moves a feed, ``warp`` lets time pass without accrual, ``absorb_succeeds`` asks a real
``absorb`` at a block.

The ``fn`` constants are Compound III's real signatures, so they read a mainnet Comet too.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from monitor.chain.abi import event_topic, fn
from monitor.contracts import load_artifact
from monitor.devnet.node import DevnetNode, Tx
from monitor.devnet.seed import seed_account
from monitor.devnet.spec import price_units
from monitor.errors import InputError, RpcResponseError
from monitor.protocols.compound_v3 import (
    ABSORB as ABSORB,
)
from monitor.protocols.compound_v3 import (
    ABSORB_DEBT_TOPIC as ABSORB_DEBT_TOPIC,
)
from monitor.protocols.compound_v3 import (
    ACCRUE_ACCOUNT as ACCRUE_ACCOUNT,
)

# the reader's definitions, re-exported here for the devnet and its tests: one source of truth
from monitor.protocols.compound_v3 import (
    BASE_SCALE as BASE_SCALE,
)
from monitor.protocols.compound_v3 import (
    BASE_TOKEN as BASE_TOKEN,
)
from monitor.protocols.compound_v3 import (
    BASE_TOKEN_PRICE_FEED as BASE_TOKEN_PRICE_FEED,
)
from monitor.protocols.compound_v3 import (
    BORROW_BALANCE_OF as BORROW_BALANCE_OF,
)
from monitor.protocols.compound_v3 import (
    COLLATERAL_BALANCE_OF as COLLATERAL_BALANCE_OF,
)
from monitor.protocols.compound_v3 import (
    FACTOR_SCALE as FACTOR_SCALE,
)
from monitor.protocols.compound_v3 import (
    GET_ASSET_INFO as GET_ASSET_INFO,
)
from monitor.protocols.compound_v3 import (
    GET_BORROW_RATE as GET_BORROW_RATE,
)
from monitor.protocols.compound_v3 import (
    GET_PRICE as GET_PRICE,
)
from monitor.protocols.compound_v3 import (
    GET_SUPPLY_RATE as GET_SUPPLY_RATE,
)
from monitor.protocols.compound_v3 import (
    GET_UTILIZATION as GET_UTILIZATION,
)
from monitor.protocols.compound_v3 import (
    IS_LIQUIDATABLE as IS_LIQUIDATABLE,
)
from monitor.protocols.compound_v3 import (
    NUM_ASSETS as NUM_ASSETS,
)
from monitor.protocols.compound_v3 import (
    RATE_PARAMS as RATE_PARAMS,
)
from monitor.protocols.compound_v3 import (
    TOTALS_BASIC as TOTALS_BASIC,
)
from monitor.protocols.compound_v3 import (
    TRANSFER_COLLATERAL_TOPIC as TRANSFER_COLLATERAL_TOPIC,
)
from monitor.protocols.compound_v3 import (
    TRANSFER_TOPIC as TRANSFER_TOPIC,
)
from monitor.protocols.compound_v3 import (
    USER_BASIC as USER_BASIC,
)
from monitor.protocols.compound_v3 import (
    WITHDRAW_EVENT as WITHDRAW_EVENT,
)
from monitor.protocols.compound_v3 import (
    WITHDRAW_TOPIC as WITHDRAW_TOPIC,
)
from monitor.protocols.compound_v3 import (
    mul_factor as mul_factor,
)
from monitor.protocols.compound_v3 import (
    mul_price as mul_price,
)

# -- Compound III view functions (mainnet signatures) -------------------------------------------------

ASSET_INFO_TYPE = "(uint8,address,address,uint64,uint64,uint64,uint64,uint128)"

GET_ASSET_INFO_BY_ADDRESS = fn("getAssetInfoByAddress(address)", ASSET_INFO_TYPE)
BALANCE_OF = fn("balanceOf(address)", "uint256")
USER_COLLATERAL = fn("userCollateral(address,address)", "uint128,uint128")
IS_BORROW_COLLATERALIZED = fn("isBorrowCollateralized(address)", "bool")

SUPPLY_EVENT = "Supply(address,address,uint256)"
SUPPLY_TOPIC = event_topic(SUPPLY_EVENT)
SUPPLY_COLLATERAL_EVENT = "SupplyCollateral(address,address,address,uint256)"
SUPPLY_COLLATERAL_TOPIC = event_topic(SUPPLY_COLLATERAL_EVENT)
ABSORB_COLLATERAL_TOPIC = event_topic("AbsorbCollateral(address,address,address,uint256,uint256)")

# -- Compound III user actions (mainnet signatures) ----------------------------------------------------

TRANSFER = fn("transfer(address,uint256)", "bool")
TRANSFER_FROM = fn("transferFrom(address,address,uint256)", "bool")
TRANSFER_ASSET = fn("transferAsset(address,address,uint256)")
ALLOW = fn("allow(address,bool)")
WITHDRAW_COLLATERAL_EVENT = "WithdrawCollateral(address,address,address,uint256)"
WITHDRAW_COLLATERAL_TOPIC = event_topic(WITHDRAW_COLLATERAL_EVENT)

# -- CometLike's test-only mutators (governor only) and the feeds' setter ------------------------------

ADD_ASSET = fn("addAsset(address,address,uint64,uint64,uint64,uint64,uint128)")
SET_COLLATERAL = fn("setCollateral(address,address,uint128)")
BORROW = fn("borrow(address,uint256)")
SUPPLY = fn("supply(address,uint256)")
SET_BORROW_INDEX = fn("setBorrowIndex(uint64)")
SET_SUPPLY_INDEX = fn("setSupplyIndex(uint64)")
SET_ANSWER = fn("setAnswer(int256)")

BASE_INDEX_SCALE = 10**15
PRICE_DECIMALS = 8
BPS_TO_FACTOR = 10**14  # 1 basis point as a 1e18-scaled factor

MUTATOR_GAS = 300_000
ABSORB_GAS = 1_000_000
SECONDS_PER_YEAR = 31_536_000
BASE_BORROW_MIN = 100 * 10**6  # 100 USDC, as cUSDCv3


@dataclass(frozen=True, slots=True)
class RateConfig:
    """Comet's per-year rate parameters (1e18 = 100 %); the contract stores them per second."""

    supply_kink: int
    supply_slope_low: int
    supply_slope_high: int
    supply_base: int
    borrow_kink: int
    borrow_slope_low: int
    borrow_slope_high: int
    borrow_base: int

    def as_tuple(self) -> tuple[int, ...]:
        """In the field order of CometLike's ``RateConfig`` constructor argument."""
        return (self.supply_kink, self.supply_slope_low, self.supply_slope_high, self.supply_base,
                self.borrow_kink, self.borrow_slope_low, self.borrow_slope_high, self.borrow_base)  # fmt: skip


def _pct(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 10**16 + int((frac + "0" * 16)[:16]) if frac else int(whole) * 10**16


# Compound's published cUSDCv3 (Ethereum) configuration: kinks 80 %, supply 3.25 % / 40 %, borrow
# 1.5 % + 3.5 % / 25 %
MAINNET_USDC_RATES = RateConfig(
    supply_kink=_pct("80"), supply_slope_low=_pct("3.25"), supply_slope_high=_pct("40"), supply_base=0,
    borrow_kink=_pct("80"), borrow_slope_low=_pct("3.5"), borrow_slope_high=_pct("25"), borrow_base=_pct("1.5"),
)  # fmt: skip
ZERO_RATES = RateConfig(10**18 * 8 // 10, 0, 0, 0, 10**18 * 8 // 10, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class CollateralSpec:
    """A collateral asset; factors in basis points (Compound III configures them at 4 decimals)."""

    symbol: str
    decimals: int
    price_usd: float
    borrow_cf_bps: int
    liquidate_cf_bps: int
    liquidation_factor_bps: int
    supply_cap: int  # whole tokens


BASE_SYMBOL = "USDC"
BASE_DECIMALS = 6
BASE_PRICE_USD = 1.0

COLLATERALS: tuple[CollateralSpec, ...] = (
    CollateralSpec("WETH", 18, 2000.0, 8250, 8950, 9500, 1_000_000),
    CollateralSpec("WBTC", 8, 60000.0, 7000, 7700, 9500, 50_000),
    CollateralSpec("COMP", 18, 50.0, 6500, 7000, 8800, 20_000_000),
)


@dataclass(frozen=True, slots=True)
class CometFactors:
    """1e18-scaled factors, as ``getAssetInfo`` returns them."""

    borrow_cf: int
    liquidate_cf: int
    liquidation_factor: int
    supply_cap: int  # token units


@dataclass(frozen=True, slots=True)
class CometToken:
    symbol: str
    address: str
    decimals: int
    feed: str  # LiqmonPriceFeed, 8 decimals


@dataclass(frozen=True, slots=True)
class CometCollateral:
    symbol: str
    address: str
    decimals: int
    feed: str
    factors: CometFactors


@dataclass(frozen=True, slots=True)
class CometDeployment:
    """Addresses of one devnet CometLike market (``owner`` is its governor and the feeds' owner)."""

    comet: str
    owner: str
    base: CometToken
    collaterals: tuple[CometCollateral, ...]

    def collateral(self, symbol: str) -> CometCollateral:
        for c in self.collaterals:
            if c.symbol == symbol.upper():
                return c
        raise KeyError(symbol)

    def feed(self, symbol: str) -> str:
        """The price feed of the base asset or of a collateral; InputError for an unknown symbol."""
        if symbol.upper() == self.base.symbol:
            return self.base.feed
        try:
            return self.collateral(symbol).feed
        except KeyError:
            known = ", ".join([self.base.symbol, *(c.symbol for c in self.collaterals)])
            raise InputError(f"unknown Comet devnet asset {symbol!r}; known: {known}") from None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CometDeployment:
        raw: dict[str, Any] = json.loads(text)
        collaterals = tuple(
            CometCollateral(**{**c, "factors": CometFactors(**c["factors"])}) for c in raw["collaterals"]
        )
        return cls(raw["comet"], raw["owner"], CometToken(**raw["base"]), collaterals)


@dataclass(frozen=True, slots=True)
class SeededComet:
    account: str
    collaterals: dict[str, int]  # symbol -> balance in token units
    borrowed: int  # base units withdrawn
    target_hf: float


# -- tokens: a fixed address with a runtime answering symbol() and decimals() -------------------------


def token_address(symbol: str) -> str:
    return to_checksum_address(keccak(text=f"liqmon/devnet/comet/token/{symbol}")[-20:])


def token_runtime(symbol: str, decimals: int) -> str:
    """EVM runtime: ``symbol()`` returns the ABI-encoded string, ``decimals()`` the number, else revert."""
    blob = abi_encode(["string"], [symbol])
    if len(blob) > 0xFF or not 0 <= decimals <= 0xFF:
        raise InputError(f"token symbol {symbol!r} is too long or decimals {decimals} out of range")
    blob_at = 0x35
    code = bytes.fromhex(
        "600035" "60e01c"  # selector = calldata[0:4]
        "80" "6395d89b41" "14" "601d" "57"  # symbol()   -> 0x1d
        "63313ce567" "14" "602a" "57"  # decimals() -> 0x2a
        "6000" "80" "fd"  # revert(0, 0)
        "5b" f"60{len(blob):02x}" f"60{blob_at:02x}" "6000" "39" f"60{len(blob):02x}" "6000" "f3"  # 0x1d
        "5b" f"60{decimals:02x}" "6000" "52" "6020" "6000" "f3"  # 0x2a
    )  # fmt: skip
    if len(code) != blob_at:
        raise AssertionError(f"token runtime layout changed: {len(code)} bytes before the string")
    return "0x" + (code + blob).hex()


# -- deployment ---------------------------------------------------------------------------------------


def _deploy_feed(node: DevnetNode, owner: str, symbol: str, usd: float) -> str:
    artifact = load_artifact("LiqmonPriceFeed")
    creation = bytes.fromhex(artifact["bytecode"][2:]) + abi_encode(
        ["uint8", "string", "int256"], [PRICE_DECIMALS, f"{symbol} / USD", price_units(usd)]
    )
    return node.deploy_code(owner, creation, f"LiqmonPriceFeed {symbol}")


def deploy_comet(
    node: DevnetNode,
    *,
    owner: str | None = None,
    collaterals: Sequence[CollateralSpec] = COLLATERALS,
    rates: RateConfig = MAINNET_USDC_RATES,
    base_borrow_min: int = BASE_BORROW_MIN,
) -> CometDeployment:
    """Deploy CometLike with base USDC and ``collaterals``, each with its own price feed, and the
    rate model ``rates`` (``ZERO_RATES``: indices never move)."""
    owner = to_checksum_address(owner) if owner else node.accounts()[0]
    node.impersonate_all()
    symbols = [BASE_SYMBOL, *(c.symbol for c in collaterals)]
    if len(set(symbols)) != len(symbols):
        raise InputError(f"duplicate Comet devnet asset in {symbols}")
    for symbol, decimals in [(BASE_SYMBOL, BASE_DECIMALS), *((c.symbol, c.decimals) for c in collaterals)]:
        node.set_code(token_address(symbol), token_runtime(symbol, decimals))
    base = CometToken(
        BASE_SYMBOL, token_address(BASE_SYMBOL), BASE_DECIMALS, _deploy_feed(node, owner, BASE_SYMBOL, BASE_PRICE_USD)
    )
    artifact = load_artifact("CometLike")
    creation = bytes.fromhex(artifact["bytecode"][2:]) + abi_encode(
        ["address", "address", "uint8", "uint256", "(uint64,uint64,uint64,uint64,uint64,uint64,uint64,uint64)"],
        [base.address, base.feed, base.decimals, base_borrow_min, rates.as_tuple()],
    )
    comet = node.deploy_code(owner, creation, "CometLike")
    added: list[CometCollateral] = []
    txs: list[Tx] = []
    for spec in collaterals:
        factors = CometFactors(
            borrow_cf=spec.borrow_cf_bps * BPS_TO_FACTOR,
            liquidate_cf=spec.liquidate_cf_bps * BPS_TO_FACTOR,
            liquidation_factor=spec.liquidation_factor_bps * BPS_TO_FACTOR,
            supply_cap=spec.supply_cap * 10**spec.decimals,
        )
        asset = CometCollateral(
            spec.symbol,
            token_address(spec.symbol),
            spec.decimals,
            _deploy_feed(node, owner, spec.symbol, spec.price_usd),
            factors,
        )
        added.append(asset)
        data = ADD_ASSET.encode(
            asset.address,
            asset.feed,
            10**spec.decimals,
            factors.borrow_cf,
            factors.liquidate_cf,
            factors.liquidation_factor,
            factors.supply_cap,
        )
        txs.append(Tx(owner, comet, data, MUTATOR_GAS, f"addAsset {spec.symbol}"))
    node.send_many(txs)
    return CometDeployment(comet, owner, base, tuple(added))


# -- prices -------------------------------------------------------------------------------------------


def comet_prices(node: DevnetNode, deployment: CometDeployment) -> dict[str, int]:
    """8-decimal prices by symbol (base included), as the market's ``getPrice`` serves them now."""
    feeds = {deployment.base.symbol: deployment.base.feed} | {c.symbol: c.feed for c in deployment.collaterals}
    return {symbol: int(node.call(deployment.comet, GET_PRICE, feed)) for symbol, feed in feeds.items()}


def set_comet_answer(node: DevnetNode, deployment: CometDeployment, symbol: str, answer: int) -> int:
    """Set the raw 8-decimal answer of ``symbol``'s feed (zero or negative too, to test ``BadPrice``)."""
    feed = deployment.feed(symbol)
    node.send(Tx(deployment.owner, feed, SET_ANSWER.encode(answer), MUTATOR_GAS, f"setAnswer {symbol}"))
    return answer


def set_comet_price(node: DevnetNode, deployment: CometDeployment, symbol: str, usd: float) -> int:
    """Set ``symbol``'s feed to ``usd`` (a new round, mined); returns the 8-decimal answer."""
    if not usd > 0:
        raise InputError(f"price of {symbol} must be positive, got {usd}")
    return set_comet_answer(node, deployment, symbol, price_units(usd))


# -- seeding ------------------------------------------------------------------------------------------


def seed_comet(
    node: DevnetNode,
    deployment: CometDeployment,
    count: int,
    *,
    seed: int = 1,
    first_index: int = 0,
    hf_range: tuple[float, float] = (1.02, 2.0),
    utilization: float | None = None,
) -> list[SeededComet]:
    """``count`` reproducible borrowers: 1-3 collaterals each, base borrowed to a liquidation HF in ``hf_range``.

    The HF is sum(collateral value x liquidateCollateralFactor) / borrow value at the current prices;
    targets lean toward the low end. Accounts are ``seed_account(seed + 20_000, first_index + i)``. With
    ``utilization`` (0 < u), the supplier ``supplier_account(seed)`` then supplies base so that the
    market's borrows over supply is about ``u`` (the rate model reads it).
    """
    if utilization is not None and not utilization > 0:
        raise InputError(f"utilization must be > 0, got {utilization}")
    if count < 0:
        raise InputError(f"account count must be >= 0, got {count}")
    low, high = hf_range
    if not 0 < low <= high:
        raise InputError(f"health factor range must satisfy 0 < low <= high, got {hf_range}")
    if not deployment.collaterals:
        raise InputError("the Comet devnet market has no collateral assets")
    rng = random.Random(seed * 1_000_003 + 20_000 + first_index)  # first_index 0: the accounts of before
    prices = comet_prices(node, deployment)
    base_scale = 10**deployment.base.decimals
    owner, comet = deployment.owner, deployment.comet
    seeded: list[SeededComet] = []
    txs: list[Tx] = []
    for i in range(count):
        account = seed_account(seed + 20_000, first_index + i)
        picks = rng.sample(list(deployment.collaterals), rng.randint(1, min(3, len(deployment.collaterals))))
        balances: dict[str, int] = {}
        weighted = 0  # 8-decimal USD
        for asset in picks:
            usd = min(2e6, max(500.0, rng.lognormvariate(9.8, 1.2)))
            scale = 10**asset.decimals
            amount = max(1, price_units(usd) * scale // prices[asset.symbol])
            balances[asset.symbol] = amount
            weighted += mul_factor(mul_price(amount, prices[asset.symbol], scale), asset.factors.liquidate_cf)
            txs.append(Tx(owner, comet, SET_COLLATERAL.encode(account, asset.address, amount), MUTATOR_GAS,
                          f"setCollateral {asset.symbol}"))  # fmt: skip
        target = low + (high - low) * rng.random() ** 2
        borrowed = max(1, int(weighted * base_scale / (target * prices[deployment.base.symbol])))
        txs.append(Tx(owner, comet, BORROW.encode(account, borrowed), MUTATOR_GAS, "borrow"))
        seeded.append(SeededComet(account, balances, borrowed, target))
    node.send_many(txs)
    if utilization is not None and seeded:
        total = sum(s.borrowed for s in seeded)
        node.send(Tx(owner, comet, SUPPLY.encode(supplier_account(seed), int(total / utilization)), MUTATOR_GAS,
                     "supply"))  # fmt: skip
    return seeded


def supplier_account(seed: int) -> str:
    return seed_account(seed + 21_000, 0)


# -- time, accrual and absorption -----------------------------------------------------------------------


def warp(node: DevnetNode, seconds: int) -> dict[str, Any]:
    """Let ``seconds`` pass and mine one empty block (no accrual happens); returns the new block."""
    node.client.request("evm_increaseTime", [seconds])
    node.mine()
    block: dict[str, Any] = node.client.request("eth_getBlockByNumber", ["latest", False])
    return block


def absorb_succeeds(node: DevnetNode, deployment: CometDeployment, account: str, block: int | str = "latest") -> bool:
    """Whether ``absorb(absorber, [account])`` succeeds at ``block`` (an eth_call at that block, so it
    accrues to that block's timestamp); a revert other than ``NotLiquidatable`` is an error."""
    data = ABSORB.encode(deployment.owner, [account])
    call = {"from": deployment.owner, "to": deployment.comet, "data": "0x" + data.hex(), "gas": hex(ABSORB_GAS)}
    tag = hex(block) if isinstance(block, int) else block
    try:
        node.client.request("eth_call", [call, tag])
    except RpcResponseError as exc:
        if isinstance(exc.data, str) and exc.data[:10] == NOT_LIQUIDATABLE:
            return False
        raise
    return True


NOT_LIQUIDATABLE = "0x" + keccak(text="NotLiquidatable()")[:4].hex()
