"""Deploy the real Morpho Blue (npm ``@morpho-org/morpho-blue``) on the devnet and seed positions.

Morpho's Solidity sources ship without build artifacts, so :func:`morpho_artifacts` compiles
``Morpho.sol`` and the package's ``ERC20Mock`` / ``OracleMock`` with solc-js 0.8.19 using
Morpho's own settings (via-IR, optimizer 999999 runs, evmVersion paris, no metadata hash, as in
the morpho-blue repository's ``foundry.toml``) and caches the result in ``.liqmon-cache/``.

:func:`deploy_morpho` deploys Morpho, enables the zero IRM (no interest ever accrues, so a
position's debt is exact between blocks) and each LLTV, then creates one market per
:class:`MarketSpec` with an ``OracleMock`` and supplies ample loan liquidity from the supplier.
:func:`seed_morpho` opens reproducible positions at chosen health factors;
:func:`set_morpho_price` moves a market's oracle.

Morpho's oracle price is the value of one collateral base unit in loan base units, scaled by
1e36: ``price = p * 10**(36 + loan_decimals - collateral_decimals)`` for ``p`` loan tokens per
collateral token. A position is healthy while ``collateral * price / 1e36 * lltv / 1e18`` (rounded
down at each step) is at least its debt ``toAssetsUp(borrowShares)``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import keccak

from monitor.chain.abi import Fn, event_topic, fn
from monitor.devnet.deploy import install_multicall
from monitor.devnet.node import DevnetNode, Tx
from monitor.devnet.seed import ETH_FOR_GAS, seed_account
from monitor.devnet.solc_cache import cached_contracts, compile_standard_json, source_cache_key
from monitor.errors import DevnetError, InputError
from monitor.paths import cache_dir, node_modules

# the reader's definitions, re-exported here for the devnet and its tests: one source of truth
from monitor.protocols.morpho_blue import (
    BORROW_EVENT as BORROW_EVENT,
)
from monitor.protocols.morpho_blue import (
    BORROW_TOPIC as BORROW_TOPIC,
)
from monitor.protocols.morpho_blue import (
    ID_TO_MARKET_PARAMS as ID_TO_MARKET_PARAMS,
)
from monitor.protocols.morpho_blue import (
    MARKET as MARKET,
)
from monitor.protocols.morpho_blue import (
    ORACLE_PRICE_SCALE as ORACLE_PRICE_SCALE,
)
from monitor.protocols.morpho_blue import (
    POSITION as POSITION,
)
from monitor.protocols.morpho_blue import PRICE as ORACLE_PRICE
from monitor.protocols.morpho_blue import (
    max_borrow as max_borrow,
)
from monitor.protocols.morpho_blue import (
    to_assets_up as to_assets_up,
)
from monitor.wadray import WAD as WAD

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
MAX_UINT256 = 2**256 - 1

# -- compilation ---------------------------------------------------------------------------

MORPHO_PACKAGE = "@morpho-org/morpho-blue"
COMPILE_TIMEOUT_S = 900
# contract name -> source unit (resolved by scripts/solc_compile.cjs under node_modules)
MORPHO_CONTRACTS: dict[str, str] = {
    "Morpho": f"{MORPHO_PACKAGE}/src/Morpho.sol",
    "ERC20Mock": f"{MORPHO_PACKAGE}/src/mocks/ERC20Mock.sol",
    "OracleMock": f"{MORPHO_PACKAGE}/src/mocks/OracleMock.sol",
    # solc 0.8.19 leaves events emitted through a library out of Morpho's ABI: they are here
    "EventsLib": f"{MORPHO_PACKAGE}/src/libraries/EventsLib.sol",
}
# Morpho Blue's own build profile (morpho-blue foundry.toml): via_ir, 999999 runs, paris, bytecode_hash none
MORPHO_SETTINGS: dict[str, Any] = {
    "viaIR": True,
    "optimizer": {"enabled": True, "runs": 999_999},
    "evmVersion": "paris",
    "metadata": {"bytecodeHash": "none"},
    "outputSelection": {
        unit: {name: ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}
        for name, unit in MORPHO_CONTRACTS.items()
    },
}
SETUP_HINT = "run `bash scripts/setup.sh` in the project root"

# -- ABI -----------------------------------------------------------------------------------

MARKET_PARAMS = "(address,address,address,address,uint256)"  # loanToken, collateralToken, oracle, irm, lltv

LIQUIDATE = fn(f"liquidate({MARKET_PARAMS},address,uint256,uint256,bytes)", "uint256,uint256")
SUPPLY_COLLATERAL = fn(f"supplyCollateral({MARKET_PARAMS},uint256,address,bytes)")
BORROW = fn(f"borrow({MARKET_PARAMS},uint256,uint256,address,address)", "uint256,uint256")
SUPPLY = fn(f"supply({MARKET_PARAMS},uint256,uint256,address,bytes)", "uint256,uint256")
CREATE_MARKET = fn(f"createMarket({MARKET_PARAMS})")
ENABLE_IRM = fn("enableIrm(address)")
ENABLE_LLTV = fn("enableLltv(uint256)")
IS_IRM_ENABLED = fn("isIrmEnabled(address)", "bool")
IS_LLTV_ENABLED = fn("isLltvEnabled(uint256)", "bool")
OWNER = fn("owner()", "address")
ORACLE_SET_PRICE = fn("setPrice(uint256)")  # OracleMock
ERC20_MINT = fn("mint(address,uint256)", "bool")  # MintableERC20 from @aave/core-v3
ERC20_APPROVE = fn("approve(address,uint256)", "bool")
ERC20_BALANCE_OF = fn("balanceOf(address)", "uint256")

MORPHO_FNS: dict[str, Fn] = {
    "position": POSITION,
    "market": MARKET,
    "idToMarketParams": ID_TO_MARKET_PARAMS,
    "liquidate": LIQUIDATE,
    "supplyCollateral": SUPPLY_COLLATERAL,
    "borrow": BORROW,
    "supply": SUPPLY,
    "createMarket": CREATE_MARKET,
    "enableIrm": ENABLE_IRM,
    "enableLltv": ENABLE_LLTV,
    "isIrmEnabled": IS_IRM_ENABLED,
    "isLltvEnabled": IS_LLTV_ENABLED,
    "owner": OWNER,
}

# EventsLib (Id is bytes32, MarketParams a tuple)
CREATE_MARKET_EVENT = f"CreateMarket(bytes32,{MARKET_PARAMS})"
SUPPLY_COLLATERAL_EVENT = "SupplyCollateral(bytes32,address,address,uint256)"
LIQUIDATE_EVENT = "Liquidate(bytes32,address,address,uint256,uint256,uint256,uint256,uint256)"
CREATE_MARKET_TOPIC = event_topic(CREATE_MARKET_EVENT)
SUPPLY_COLLATERAL_TOPIC = event_topic(SUPPLY_COLLATERAL_EVENT)
LIQUIDATE_TOPIC = event_topic(LIQUIDATE_EVENT)

# -- deployment parameters -----------------------------------------------------------------

LIQUIDITY_TOKENS = 10**10  # whole loan tokens the supplier supplies to every market
RESERVE_TOKENS = 10**10  # whole loan tokens the supplier keeps (e.g. to repay in liquidations)
SEED_NAMESPACE = 10_000  # seed_account(seed + SEED_NAMESPACE, i): distinct from the Aave seeder's accounts

GAS_SET_PRICE = 100_000
GAS_SET_BALANCE = 100_000
GAS_APPROVE = 100_000
GAS_SUPPLY_COLLATERAL = 300_000
GAS_BORROW = 400_000
GAS_SUPPLY = 400_000
GAS_ADMIN = 500_000


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """One market to create: ``price`` is loan tokens per whole collateral token."""

    collateral_symbol: str
    collateral_decimals: int
    loan_symbol: str
    loan_decimals: int
    lltv: int  # WAD
    price: float


DEFAULT_MARKETS: tuple[MarketSpec, ...] = (
    MarketSpec("WETH", 18, "USDC", 6, 86 * WAD // 100, 2_000.0),
    MarketSpec("WBTC", 8, "DAI", 18, 77 * WAD // 100, 30_000.0),
)


@dataclass(frozen=True, slots=True)
class MorphoMarket:
    id: str  # 0x + 64 hex: keccak256(abi.encode(MarketParams))
    loan_token: str
    collateral_token: str
    oracle: str
    irm: str
    lltv: int  # WAD
    loan_symbol: str
    collateral_symbol: str
    loan_decimals: int
    collateral_decimals: int

    def params(self) -> tuple[str, str, str, str, int]:
        """The ``MarketParams`` tuple as Morpho's functions take it."""
        return (self.loan_token, self.collateral_token, self.oracle, self.irm, self.lltv)

    @property
    def id_bytes(self) -> bytes:
        return bytes.fromhex(self.id[2:])


@dataclass(frozen=True, slots=True)
class MorphoDeployment:
    """Addresses of one devnet Morpho Blue with its markets (saved beside a state dump)."""

    morpho: str
    owner: str
    supplier: str
    markets: list[MorphoMarket] = field(default_factory=list)
    tokens: dict[str, tuple[str, int]] = field(default_factory=dict)  # symbol -> (address, decimals)

    def market(self, key: int | str) -> MorphoMarket:
        """A market by index, id, or collateral symbol."""
        if isinstance(key, int):
            return self.markets[key]
        for m in self.markets:
            if m.id.lower() == key.lower() or m.collateral_symbol == key.upper():
                return m
        raise KeyError(key)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> MorphoDeployment:
        raw: dict[str, Any] = json.loads(text)
        markets = [MorphoMarket(**m) for m in raw.pop("markets")]
        tokens = {s: (str(v[0]), int(v[1])) for s, v in raw.pop("tokens").items()}
        return cls(**raw, markets=markets, tokens=tokens)


@dataclass(frozen=True, slots=True)
class SeededMorpho:
    account: str
    market_id: str
    collateral: int  # collateral token base units
    borrowed: int  # loan token base units asked for in borrow()
    target_hf: float


@dataclass(frozen=True, slots=True)
class MorphoPositionState:
    """One position as Morpho values it now (no interest accrues with the zero IRM)."""

    collateral: int
    borrow_shares: int
    borrowed: int  # toAssetsUp(borrowShares)
    max_borrow: int  # collateral * price / 1e36 * lltv / 1e18, rounded down

    @property
    def healthy(self) -> bool:
        return self.max_borrow >= self.borrowed

    @property
    def health_factor(self) -> float:
        return self.max_borrow / self.borrowed if self.borrowed else float("inf")


# -- pure helpers --------------------------------------------------------------------------


def market_id(params: Sequence[Any]) -> str:
    """keccak256(abi.encode(MarketParams)) as 0x-hex (MarketParamsLib.id)."""
    loan, collateral, oracle, irm, lltv = params
    encoded = abi_encode(["address", "address", "address", "address", "uint256"], [loan, collateral, oracle, irm, lltv])
    return "0x" + keccak(encoded).hex()


def oracle_price(price: float | Decimal | int, loan_decimals: int, collateral_decimals: int) -> int:
    """Morpho's 1e36-scaled price for ``price`` loan tokens per whole collateral token."""
    scaled = Decimal(str(price)) * Decimal(10) ** (36 + loan_decimals - collateral_decimals)
    return int(scaled)


# -- compilation ---------------------------------------------------------------------------


def _package_dir() -> Path:
    path = node_modules() / MORPHO_PACKAGE
    if not (path / "src" / "Morpho.sol").is_file():
        raise DevnetError(f"Morpho Blue sources not found under {path}: {SETUP_HINT} (it installs {MORPHO_PACKAGE})")
    return path


def _solc_version() -> str:
    path = node_modules() / "solc" / "package.json"
    try:
        return str(json.loads(path.read_text())["version"])
    except (OSError, ValueError, KeyError) as exc:
        raise DevnetError(f"solc-js is not installed ({path}): {SETUP_HINT}") from exc


def _cache_key(package: Path, solc_version: str) -> str:
    """sha256 of every Morpho source, the settings and the solc-js version."""
    sources = ((path.relative_to(package).as_posix(), path) for path in sorted((package / "src").rglob("*.sol")))
    return source_cache_key(sources, {"contracts": MORPHO_CONTRACTS, "settings": MORPHO_SETTINGS}, solc_version)


def morpho_artifacts_path() -> Path:
    """Where the compiled artifacts for the installed sources and solc-js are cached."""
    return cache_dir() / f"morpho-{_cache_key(_package_dir(), _solc_version())}.json"


def _complete(contracts: dict[str, dict[str, Any]]) -> bool:
    return all(isinstance(contracts.get(n), dict) and contracts[n].get("bytecode") for n in MORPHO_CONTRACTS)


def _compile() -> tuple[str, dict[str, dict[str, Any]]]:
    standard_input = {
        "language": "Solidity",
        "sources": {
            unit: {"content": (node_modules() / unit).read_text(encoding="utf-8")}
            for unit in sorted(set(MORPHO_CONTRACTS.values()) - {MORPHO_CONTRACTS["EventsLib"]})
        },
        "settings": MORPHO_SETTINGS,
    }
    version, output = compile_standard_json("Morpho Blue", standard_input, timeout=COMPILE_TIMEOUT_S, hint=SETUP_HINT)
    contracts: dict[str, dict[str, Any]] = {}
    for name, unit in MORPHO_CONTRACTS.items():
        compiled = output.get("contracts", {}).get(unit, {}).get(name)
        if not compiled:
            raise DevnetError(f"solc produced no contract {name} from {unit}")
        evm = compiled.get("evm", {})
        contracts[name] = {
            "abi": compiled.get("abi", []),
            "bytecode": "0x" + evm.get("bytecode", {}).get("object", ""),
            "deployedBytecode": "0x" + evm.get("deployedBytecode", {}).get("object", ""),
        }
    return version, contracts


def morpho_artifacts() -> dict[str, dict[str, Any]]:
    """``{name: {"abi", "bytecode", "deployedBytecode"}}`` for Morpho, ERC20Mock and OracleMock
    (and EventsLib, whose ABI holds Morpho's events).

    Compiled from ``node_modules/@morpho-org/morpho-blue`` with solc-js on the first call
    (about 10 s) and loaded from ``.liqmon-cache/morpho-<sha256>.json`` afterwards.
    """
    return cached_contracts(
        morpho_artifacts_path(),
        complete=_complete,
        compile=_compile,
        document=lambda version, contracts: {
            "solcVersion": version, "settings": MORPHO_SETTINGS, "contracts": contracts,
        },
        tmp_prefix=".morpho-",
    )  # fmt: skip


def _creation(artifact: dict[str, Any], types: Sequence[str] = (), args: Sequence[Any] = ()) -> bytes:
    return bytes.fromhex(str(artifact["bytecode"])[2:]) + (abi_encode(list(types), list(args)) if types else b"")


# -- deployment ----------------------------------------------------------------------------


def deploy_morpho(
    node: DevnetNode,
    *,
    markets: Sequence[MarketSpec] = DEFAULT_MARKETS,
    tokens: Mapping[str, tuple[str, int]] | None = None,
) -> MorphoDeployment:
    """Deploy Morpho Blue, its markets (zero IRM) and the supplier's liquidity.

    Tokens are real ERC20s with ``decimals()`` and ``symbol()`` (``MintableERC20`` from
    ``@aave/core-v3``, as a reader on mainnet would meet them); ``tokens`` (symbol ->
    (address, decimals)) reuses existing ones, e.g. the Aave devnet's, so both protocols
    share one set of assets."""
    if not markets:
        raise InputError("at least one Morpho market is needed")
    decimals: dict[str, int] = {}
    for spec in markets:
        for symbol, dec in ((spec.loan_symbol, spec.loan_decimals), (spec.collateral_symbol, spec.collateral_decimals)):
            if decimals.setdefault(symbol, dec) != dec:
                raise InputError(f"token {symbol} is given both {decimals[symbol]} and {dec} decimals")
        if spec.loan_symbol == spec.collateral_symbol:
            raise InputError(f"market {spec.collateral_symbol}/{spec.loan_symbol}: loan and collateral must differ")
        if not 0 < spec.lltv < WAD:
            raise InputError(f"LLTV must be in (0, 1e18), got {spec.lltv}")
        if not spec.price > 0:
            raise InputError(f"price of {spec.collateral_symbol} must be positive, got {spec.price}")
    artifacts = morpho_artifacts()
    owner, supplier = node.accounts()[:2]
    node.impersonate_all()
    install_multicall(node)  # the same Multicall3 code path as on mainnet

    morpho = node.deploy_code(owner, _creation(artifacts["Morpho"], ["address"], [owner]), "Morpho")
    given = dict(tokens or {})
    tokens_out: dict[str, tuple[str, int]] = {}
    for symbol, dec in decimals.items():
        if symbol in given:
            if given[symbol][1] != dec:
                raise InputError(f"token {symbol} has {given[symbol][1]} decimals, the market spec says {dec}")
            tokens_out[symbol] = given[symbol]
        else:
            tokens_out[symbol] = (node.deploy_aave(owner, "MintableERC20", f"Morpho Devnet {symbol}", symbol, dec), dec)
    tokens = tokens_out
    oracles = [
        node.deploy_code(owner, _creation(artifacts["OracleMock"]), f"OracleMock {s.collateral_symbol}")
        for s in markets
    ]
    deployed = [
        MorphoMarket(
            id="",
            loan_token=tokens[s.loan_symbol][0],
            collateral_token=tokens[s.collateral_symbol][0],
            oracle=oracle,
            irm=ZERO_ADDRESS,
            lltv=s.lltv,
            loan_symbol=s.loan_symbol,
            collateral_symbol=s.collateral_symbol,
            loan_decimals=s.loan_decimals,
            collateral_decimals=s.collateral_decimals,
        )
        for s, oracle in zip(markets, oracles, strict=True)
    ]
    deployed = [replace(m, id=market_id(m.params())) for m in deployed]

    admin = [Tx(owner, morpho, ENABLE_IRM.encode(ZERO_ADDRESS), GAS_ADMIN, "enableIrm(0)")]
    admin += [
        Tx(owner, morpho, ENABLE_LLTV.encode(lltv), GAS_ADMIN, "enableLltv")
        for lltv in sorted({s.lltv for s in markets})
    ]
    admin += [
        Tx(owner, m.oracle, ORACLE_SET_PRICE.encode(oracle_price(s.price, s.loan_decimals, s.collateral_decimals)),
           GAS_SET_PRICE, f"setPrice {s.collateral_symbol}")
        for s, m in zip(markets, deployed, strict=True)
    ]  # fmt: skip
    creates = [Tx(owner, morpho, CREATE_MARKET.encode(m.params()), GAS_ADMIN, "createMarket") for m in deployed]
    receipts = node.send_many(admin + creates)[len(admin) :]
    for m, receipt in zip(deployed, receipts, strict=True):
        logged = [
            log["topics"][1].lower()
            for log in receipt.get("logs", [])
            if log.get("topics") and log["topics"][0].lower() == CREATE_MARKET_TOPIC
        ]
        if logged != [m.id]:
            raise DevnetError(f"createMarket {m.collateral_symbol}/{m.loan_symbol}: id {logged} != computed {m.id}")

    deployment = MorphoDeployment(morpho=morpho, owner=owner, supplier=supplier, markets=deployed, tokens=tokens)
    supply_liquidity(node, deployment)
    return deployment


def supply_liquidity(node: DevnetNode, deployment: MorphoDeployment, whole_tokens: int = LIQUIDITY_TOKENS) -> None:
    """The supplier supplies ``whole_tokens`` of loan token to every market and keeps a reserve."""
    supplier, morpho = deployment.supplier, deployment.morpho
    per_token: dict[str, int] = {}
    for m in deployment.markets:
        per_token[m.loan_symbol] = per_token.get(m.loan_symbol, 0) + whole_tokens * 10**m.loan_decimals
    txs: list[Tx] = []
    for symbol, amount in per_token.items():
        address, dec = deployment.tokens[symbol]
        balance = amount + RESERVE_TOKENS * 10**dec
        txs += [
            Tx(supplier, address, ERC20_MINT.encode(supplier, balance), GAS_SET_BALANCE, f"mint {symbol}"),
            Tx(supplier, address, ERC20_APPROVE.encode(morpho, MAX_UINT256), GAS_APPROVE, f"approve {symbol}"),
        ]
    txs += [
        Tx(supplier, morpho, SUPPLY.encode(m.params(), whole_tokens * 10**m.loan_decimals, 0, supplier, b""),
           GAS_SUPPLY, f"supply {m.loan_symbol} to {m.collateral_symbol}/{m.loan_symbol}")
        for m in deployment.markets
    ]  # fmt: skip
    node.send_many(txs)


def _market_index(deployment: MorphoDeployment, market_index: int) -> MorphoMarket:
    if not 0 <= market_index < len(deployment.markets):
        raise InputError(f"Morpho market index {market_index} out of range 0..{len(deployment.markets) - 1}")
    return deployment.markets[market_index]


def set_morpho_price(node: DevnetNode, deployment: MorphoDeployment, market_index: int, usd_price: float) -> int:
    """Set the market's OracleMock to ``usd_price`` loan tokens per collateral token (one mined
    block); returns the raw 1e36-scaled price."""
    m = _market_index(deployment, market_index)
    if not usd_price > 0:
        raise InputError(f"price of {m.collateral_symbol} must be positive, got {usd_price}")
    raw = oracle_price(usd_price, m.loan_decimals, m.collateral_decimals)
    if raw <= 0:
        raise InputError(f"price {usd_price} of {m.collateral_symbol} rounds to 0 in Morpho's 1e36 scale")
    node.impersonate_all()
    node.send(Tx(deployment.owner, m.oracle, ORACLE_SET_PRICE.encode(raw), GAS_SET_PRICE, "setPrice"))
    return raw


def call_all(node: DevnetNode, to: str, function: Fn, *args: Any, block: int | str = "latest") -> tuple[Any, ...]:
    """Every output of a view call (DevnetNode.call returns only the first)."""
    return function.decode(node.client.eth_call(to, function.encode(*args), block))


def read_position(
    node: DevnetNode, deployment: MorphoDeployment, market: MorphoMarket, account: str
) -> MorphoPositionState:
    """The position of ``account`` in ``market`` valued with Morpho's own rounding, at one block."""
    block = node.client.block_number()
    _supply_shares, borrow_shares, collateral = call_all(
        node, deployment.morpho, POSITION, market.id_bytes, account, block=block
    )
    totals = call_all(node, deployment.morpho, MARKET, market.id_bytes, block=block)
    price = int(node.call(market.oracle, ORACLE_PRICE, block=block))
    return MorphoPositionState(
        collateral=collateral,
        borrow_shares=borrow_shares,
        borrowed=to_assets_up(borrow_shares, totals[2], totals[3]),
        max_borrow=max_borrow(collateral, price, market.lltv),
    )


# -- seeding -------------------------------------------------------------------------------


def seed_morpho(
    node: DevnetNode,
    deployment: MorphoDeployment,
    count: int,
    *,
    seed: int = 1,
    first_index: int = 0,
    hf_range: tuple[float, float] = (1.05, 2.0),
    progress: Callable[[int, int], None] = lambda _done, _total: None,
) -> list[SeededMorpho]:
    """Open ``count`` reproducible positions, spread round-robin over the markets.

    Position ``i`` belongs to ``seed_account(seed + SEED_NAMESPACE, first_index + i)``; it
    supplies collateral worth 500..2,000,000 loan tokens at the current oracle price and
    borrows so that ``maxBorrow / borrowed`` is its target health factor in ``hf_range``
    (more positions near the low end). The same arguments give the same accounts and amounts.
    """
    if count < 0:
        raise InputError(f"position count must be >= 0, got {count}")
    if not 1.0 < hf_range[0] <= hf_range[1]:
        raise InputError(f"health factor range must satisfy 1 < low <= high, got {hf_range}")
    if not deployment.markets:
        raise InputError("the Morpho deployment has no markets")
    node.impersonate_all()
    rng = random.Random((seed + SEED_NAMESPACE) * 1_000_003 + first_index)
    prices = [int(node.call(m.oracle, ORACLE_PRICE)) for m in deployment.markets]
    accounts = [seed_account(seed + SEED_NAMESPACE, first_index + i) for i in range(count)]
    node.set_balances(accounts, ETH_FOR_GAS)
    low, high = hf_range
    morpho = deployment.morpho
    seeded: list[SeededMorpho] = []
    batches: list[list[Tx]] = []
    demand = [0] * len(deployment.markets)
    for i, account in enumerate(accounts):
        index = (first_index + i) % len(deployment.markets)
        m, price = deployment.markets[index], prices[index]
        value = min(2e6, max(500.0, rng.lognormvariate(9.8, 1.2)))  # loan tokens
        target = round(low + (high - low) * rng.random() ** 2, 6)
        collateral = int(value * 100) * 10**m.loan_decimals // 100 * ORACLE_PRICE_SCALE // price
        limit = max_borrow(collateral, price, m.lltv)
        borrowed = limit * 10**6 // round(target * 10**6)
        if collateral <= 0 or borrowed <= 0:
            raise DevnetError(f"position {first_index + i}: collateral {collateral} / debt {borrowed} round to 0")
        demand[index] += borrowed
        params = m.params()
        batches.append([
            Tx(account, m.collateral_token, ERC20_MINT.encode(account, collateral), GAS_SET_BALANCE,
               f"mint {m.collateral_symbol}"),
            Tx(account, m.collateral_token, ERC20_APPROVE.encode(morpho, collateral), GAS_APPROVE, "approve"),
            Tx(account, morpho, SUPPLY_COLLATERAL.encode(params, collateral, account, b""), GAS_SUPPLY_COLLATERAL,
               "supplyCollateral"),
            Tx(account, morpho, BORROW.encode(params, borrowed, 0, account, account), GAS_BORROW, "borrow"),
        ])  # fmt: skip
        seeded.append(SeededMorpho(account, m.id, collateral, borrowed, target))
    _check_liquidity(node, deployment, demand)
    per_call = 150  # accounts per send_many call (4 transactions each)
    total = sum(len(b) for b in batches)
    done = 0
    for start in range(0, len(batches), per_call):
        txs = [tx for b in batches[start : start + per_call] for tx in b]
        node.send_many(txs)
        done += len(txs)
        progress(done, total)
    return seeded


def _check_liquidity(node: DevnetNode, deployment: MorphoDeployment, demand: Sequence[int]) -> None:
    for m, wanted in zip(deployment.markets, demand, strict=True):
        if not wanted:
            continue
        supplied, _, borrowed, *_ = call_all(node, deployment.morpho, MARKET, m.id_bytes)
        if wanted > supplied - borrowed:
            raise DevnetError(
                f"Morpho market {m.collateral_symbol}/{m.loan_symbol}: seeding borrows {wanted} but only "
                f"{supplied - borrowed} is available; call supply_liquidity first"
            )
