"""Morpho Blue reader: markets by id, borrowers from ``Borrow`` events, health exactly as
``Morpho._isHealthy`` decides it.

For a market (loanToken, collateralToken, oracle, irm, lltv) and a borrower:
``borrowed = toAssetsUp(borrowShares, totalBorrowAssets, totalBorrowShares)`` (virtual shares
1e6, virtual assets 1), ``maxBorrow = wMulDown(mulDivDown(collateral, price, 1e36), lltv)``,
healthy iff ``maxBorrow >= borrowed``. liqmon's HF is ``maxBorrow * 1e18 // borrowed`` (a WAD),
so HF < 1 exactly when Morpho lets the position be liquidated. The liquidation incentive factor
is ``min(1.15, 1 / (1 - 0.3 * (1 - lltv)))``. Values are in units of the loan token (the
snapshot's base unit is 1e8 per loan token); interest accrued since ``lastUpdate`` is not
added (``market()`` as stored), like Morpho's own view of the position before ``accrueInterest``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_utils import to_checksum_address

from monitor.chain.abi import event_topic, fn
from monitor.chain.blocks import BlockRef, check_block
from monitor.chain.multicall import Call, Multicall
from monitor.chain.rpc import RpcClient
from monitor.errors import DecodeError
from monitor.models import MAX_UINT256, RAY, WAD, AssetLeg, MarketSnapshot, Position, Reserve
from monitor.protocols.base import (
    ZERO_ADDRESS,
    OnChunk,
    ReaderCore,
    accounts_from_events,
    checksum,
    required,
    token_symbol,
)

PROTOCOL = "morpho_blue"
ORACLE_PRICE_SCALE = 10**36
VIRTUAL_SHARES = 10**6
VIRTUAL_ASSETS = 1
LIQUIDATION_CURSOR = 3 * 10**17
MAX_LIQUIDATION_INCENTIVE_FACTOR = 115 * 10**16
BASE_UNIT = 10**8  # 1 loan token

POSITION = fn("position(bytes32,address)", "uint256,uint128,uint128")
MARKET = fn("market(bytes32)", "uint128,uint128,uint128,uint128,uint128,uint128")
ID_TO_MARKET_PARAMS = fn("idToMarketParams(bytes32)", "address,address,address,address,uint256")
PRICE = fn("price()", "uint256")
DECIMALS = fn("decimals()", "uint8")
SYMBOL = fn("symbol()", "string")
BORROW_EVENT = "Borrow(bytes32,address,address,address,uint256,uint256)"
BORROW_TOPIC = event_topic(BORROW_EVENT)


def mul_div_down(x: int, y: int, d: int) -> int:
    return x * y // d


def mul_div_up(x: int, y: int, d: int) -> int:
    return (x * y + (d - 1)) // d


def to_assets_up(shares: int, total_assets: int, total_shares: int) -> int:
    return mul_div_up(shares, total_assets + VIRTUAL_ASSETS, total_shares + VIRTUAL_SHARES)


def max_borrow(collateral: int, price: int, lltv: int) -> int:
    return mul_div_down(mul_div_down(collateral, price, ORACLE_PRICE_SCALE), lltv, WAD)


def health_factor(collateral: int, price: int, lltv: int, borrowed: int) -> int:
    """WAD; < 1e18 exactly when ``_isHealthy`` is false. No borrow: MAX_UINT256."""
    if borrowed == 0:
        return MAX_UINT256
    return max_borrow(collateral, price, lltv) * WAD // borrowed


def liquidation_incentive_factor(lltv: int) -> int:
    return min(MAX_LIQUIDATION_INCENTIVE_FACTOR, WAD * WAD // (WAD - LIQUIDATION_CURSOR * (WAD - lltv) // WAD))


@dataclass(frozen=True, slots=True)
class MorphoMarketState:
    id: str
    loan_token: str
    collateral_token: str
    oracle: str
    irm: str
    lltv: int
    loan_decimals: int
    collateral_decimals: int
    loan_symbol: str
    collateral_symbol: str
    total_borrow_assets: int
    total_borrow_shares: int
    price: int  # oracle price, 1e36-scaled loan units per collateral unit


class MorphoBlueReader(ReaderCore):
    protocol = PROTOCOL

    def __init__(
        self,
        client: RpcClient,
        *,
        market: str,
        morpho: str,
        market_ids: Sequence[str],
        chain_id: int,
        multicall: Multicall,
        max_log_range: int = 2000,
    ) -> None:
        super().__init__(client, market=market, chain_id=chain_id, multicall=multicall, max_log_range=max_log_range)
        self.morpho = to_checksum_address(morpho)
        self.market_ids = [m.lower() for m in market_ids]

    def discover(self, from_block: int, to_block: int, on_chunk: OnChunk) -> None:
        topics: list[str | list[str] | None] = [BORROW_TOPIC, list(self.market_ids)]  # only the watched markets
        accounts_from_events(
            self.client, self.morpho, topics, 2, self.log_span, from_block, to_block, on_chunk, f"{self.market}: Borrow"
        )

    def read_markets(self, block: int) -> list[MorphoMarketState]:
        params = self.multicall.run(
            [Call(self.morpho, ID_TO_MARKET_PARAMS, (bytes.fromhex(i[2:]),)) for i in self.market_ids], block
        )
        states = self.multicall.run(
            [Call(self.morpho, MARKET, (bytes.fromhex(i[2:]),)) for i in self.market_ids], block
        )
        calls: list[Call] = []
        for p in params:
            loan, collateral, oracle, _irm, _lltv = required(p)
            if loan == ZERO_ADDRESS:
                raise DecodeError(f"{self.market}: a configured market id does not exist on Morpho {self.morpho}")
            calls += [
                Call(oracle, PRICE), Call(loan, DECIMALS), Call(collateral, DECIMALS),
                Call(loan, SYMBOL, allow_failure=True), Call(collateral, SYMBOL, allow_failure=True),
            ]  # fmt: skip
        extra = self.multicall.run(calls, block)
        out = []
        for k, (market_id, p, st) in enumerate(zip(self.market_ids, params, states, strict=True)):
            loan, collateral, oracle, irm, lltv = required(p)
            price, loan_dec, coll_dec, loan_sym, coll_sym = extra[5 * k : 5 * k + 5]
            out.append(
                MorphoMarketState(
                    id=market_id,
                    loan_token=to_checksum_address(loan),
                    collateral_token=to_checksum_address(collateral),
                    oracle=to_checksum_address(oracle),
                    irm=to_checksum_address(irm),
                    lltv=int(lltv),
                    loan_decimals=int(required(loan_dec)[0]),
                    collateral_decimals=int(required(coll_dec)[0]),
                    loan_symbol=token_symbol(loan_sym, loan),
                    collateral_symbol=token_symbol(coll_sym, collateral),
                    total_borrow_assets=int(required(st)[2]),
                    total_borrow_shares=int(required(st)[3]),
                    price=int(required(price)[0]),
                )
            )
        return out

    def snapshots(self, accounts: Sequence[str], block: BlockRef) -> list[MarketSnapshot]:
        markets = self.read_markets(block.number)
        groups = [[Call(self.morpho, POSITION, (bytes.fromhex(m.id[2:]), a)) for m in markets] for a in accounts]
        results = self.multicall.run_groups(groups, block.number)
        check_block(self.client, block, self.market)
        out = []
        for k, m in enumerate(markets):
            positions = []
            name = market_name(self.market, m)
            for account, rows in zip(accounts, results, strict=True):
                _supply, borrow_shares, collateral = required(rows[k])
                if borrow_shares == 0 and collateral == 0:
                    continue
                positions.append(self._position(name, account, m, int(borrow_shares), int(collateral), block.number))
            out.append(self._snapshot(name, m, positions, block))
        return out

    def _position(
        self, name: str, account: str, m: MorphoMarketState, shares: int, collateral: int, block: int
    ) -> Position:
        borrowed = to_assets_up(shares, m.total_borrow_assets, m.total_borrow_shares) if shares else 0
        headroom = max(0, max_borrow(collateral, m.price, m.lltv) - borrowed)
        lt_bps = m.lltv * 10_000 // WAD
        coll_base = collateral * _collateral_price(m) // 10**m.collateral_decimals
        debt_base = borrowed * BASE_UNIT // 10**m.loan_decimals
        legs = (
            AssetLeg(m.collateral_token, m.collateral_symbol, collateral, collateral, 0, 0, 0, True),
            AssetLeg(m.loan_token, m.loan_symbol, 0, 0, shares, borrowed, 0, False),
        )
        return Position(
            market=name, account=checksum(account), block=block,
            health_factor=health_factor(collateral, m.price, m.lltv, borrowed),
            total_collateral_base=coll_base, total_debt_base=debt_base,
            available_borrows_base=headroom * BASE_UNIT // 10**m.loan_decimals,
            current_liquidation_threshold=lt_bps, ltv=lt_bps, emode_category=0, user_configuration=0, legs=legs,
        )  # fmt: skip

    def _snapshot(self, name: str, m: MorphoMarketState, positions: list[Position], block: BlockRef) -> MarketSnapshot:
        lt_bps = m.lltv * 10_000 // WAD
        bonus_bps = liquidation_incentive_factor(m.lltv) * 10_000 // WAD
        reserves = (
            Reserve(m.collateral_token, m.collateral_symbol, m.collateral_decimals, 0, lt_bps, lt_bps, bonus_bps, 0,
                    True, False, False, ZERO_ADDRESS, ZERO_ADDRESS, ZERO_ADDRESS, RAY, RAY, _collateral_price(m)),
            Reserve(m.loan_token, m.loan_symbol, m.loan_decimals, 1, 0, 0, 10_000, 0,
                    True, False, True, ZERO_ADDRESS, ZERO_ADDRESS, ZERO_ADDRESS, RAY, RAY, BASE_UNIT),
        )  # fmt: skip
        return MarketSnapshot(
            market=name, protocol=PROTOCOL, chain_id=self.chain_id, block=block.number, block_hash=block.hash,
            timestamp=block.timestamp, base_currency_unit=BASE_UNIT, reserves=reserves, emode_categories=(),
            positions=tuple(positions), addresses={"pool": self.morpho, "oracle": m.oracle},
        )  # fmt: skip


def market_name(config_name: str, m: MorphoMarketState) -> str:
    lltv = f"{m.lltv * 100 / WAD:g}".replace(".", "_")
    return f"{config_name}:{m.collateral_symbol}/{m.loan_symbol}-{lltv}:{m.id[2:10]}".lower()


def _collateral_price(m: MorphoMarketState) -> int:
    """Price of one whole collateral token in base units (1e8 per loan token)."""
    scaled: int = m.price * 10**m.collateral_decimals * BASE_UNIT
    return int(scaled // (ORACLE_PRICE_SCALE * 10**m.loan_decimals))
