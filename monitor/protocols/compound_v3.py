"""Compound V3 (Comet) reader: base asset, collateral assets and their factors, prices from
Comet's own feeds, borrowers from ``Withdraw`` events; the liquidation verdict recomputed in
integers exactly as ``Comet.isLiquidatable``:

``liquidity = -mulPrice(borrowBalance, basePrice, baseScale)
             + sum over assets in assetsIn of mulFactor(mulPrice(balance_i, price_i, scale_i), liquidateCF_i)``
with ``mulPrice(n, p, s) = n * p / s`` and ``mulFactor(n, f) = n * f / 1e18``; liquidatable iff
liquidity < 0. liqmon's HF is the weighted collateral over the borrow value, as a WAD (floor),
so HF < 1 exactly when Comet would absorb the account. LTV is borrowCollateralFactor, the
liquidation threshold liquidateCollateralFactor, the bonus 2 - liquidationFactor (the discount
at which the protocol takes the collateral). Prices are USD with 8 decimals.
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
from monitor.protocols.base import ZERO_ADDRESS, OnChunk, ReaderCore, accounts_from_events, required, token_symbol

PROTOCOL = "compound_v3"
FACTOR_SCALE = 10**18
PRICE_UNIT = 10**8

BASE_TOKEN = fn("baseToken()", "address")
BASE_TOKEN_PRICE_FEED = fn("baseTokenPriceFeed()", "address")
BASE_SCALE = fn("baseScale()", "uint256")
NUM_ASSETS = fn("numAssets()", "uint8")
GET_ASSET_INFO = fn("getAssetInfo(uint8)", "(uint8,address,address,uint64,uint64,uint64,uint64,uint128)")
GET_PRICE = fn("getPrice(address)", "uint256")
BORROW_BALANCE_OF = fn("borrowBalanceOf(address)", "uint256")
COLLATERAL_BALANCE_OF = fn("collateralBalanceOf(address,address)", "uint128")
USER_BASIC = fn("userBasic(address)", "int104,uint64,uint64,uint16,uint8")
IS_LIQUIDATABLE = fn("isLiquidatable(address)", "bool")
SYMBOL = fn("symbol()", "string")
WITHDRAW_EVENT = "Withdraw(address,address,uint256)"
WITHDRAW_TOPIC = event_topic(WITHDRAW_EVENT)


@dataclass(frozen=True, slots=True)
class CometAsset:
    offset: int
    asset: str
    price_feed: str
    scale: int
    borrow_cf: int  # 1e18 scale
    liquidate_cf: int
    liquidation_factor: int
    symbol: str
    price: int  # 8-decimal USD


@dataclass(frozen=True, slots=True)
class CometState:
    base: str
    base_symbol: str
    base_scale: int
    base_price: int
    assets: tuple[CometAsset, ...]


def mul_price(n: int, price: int, scale: int) -> int:
    return n * price // scale


def mul_factor(n: int, factor: int) -> int:
    return n * factor // FACTOR_SCALE


def liquidity(state: CometState, borrow: int, assets_in: int, balances: Sequence[int]) -> tuple[int, int]:
    """(weighted collateral, borrow value) in 8-decimal USD, Comet's integer arithmetic."""
    weighted = 0
    for asset, balance in zip(state.assets, balances, strict=True):
        if (assets_in >> asset.offset) & 1:
            weighted += mul_factor(mul_price(balance, asset.price, asset.scale), asset.liquidate_cf)
    return weighted, mul_price(borrow, state.base_price, state.base_scale)


def is_liquidatable(state: CometState, borrow: int, assets_in: int, balances: Sequence[int]) -> bool:
    if borrow == 0:
        return False
    weighted, owed = liquidity(state, borrow, assets_in, balances)
    return weighted < owed


class CompoundV3Reader(ReaderCore):
    protocol = PROTOCOL

    def __init__(
        self,
        client: RpcClient,
        *,
        market: str,
        comet: str,
        chain_id: int,
        multicall: Multicall,
        max_log_range: int = 2000,
    ) -> None:
        super().__init__(client, market=market, chain_id=chain_id, multicall=multicall, max_log_range=max_log_range)
        self.comet = to_checksum_address(comet)

    def discover(self, from_block: int, to_block: int, on_chunk: OnChunk) -> None:
        """Borrowing the base asset is a ``Withdraw`` (src = the borrower); suppliers who only
        withdraw are read too and drop out (no debt)."""
        accounts_from_events(
            self.client, self.comet, [WITHDRAW_TOPIC], 1, self.log_span, from_block, to_block, on_chunk,
            f"{self.market}: Withdraw",
        )  # fmt: skip

    def read_state(self, block: int) -> CometState:
        head = self.multicall.run(
            [Call(self.comet, f) for f in (BASE_TOKEN, BASE_TOKEN_PRICE_FEED, BASE_SCALE, NUM_ASSETS)], block
        )
        base, base_feed, base_scale, n = (required(r)[0] for r in head)
        infos = self.multicall.run([Call(self.comet, GET_ASSET_INFO, (i,)) for i in range(int(n))], block)
        rows = [required(r)[0] for r in infos]
        prices = self.multicall.run(
            [Call(self.comet, GET_PRICE, (base_feed,))] + [Call(self.comet, GET_PRICE, (row[2],)) for row in rows]
            + [Call(a, SYMBOL, allow_failure=True) for a in [base] + [row[1] for row in rows]],
            block,
        )  # fmt: skip
        symbols = prices[1 + len(rows) :]
        assets = tuple(
            CometAsset(
                offset=int(row[0]),
                asset=to_checksum_address(row[1]),
                price_feed=to_checksum_address(row[2]),
                scale=int(row[3]),
                borrow_cf=int(row[4]),
                liquidate_cf=int(row[5]),
                liquidation_factor=int(row[6]),
                symbol=token_symbol(symbols[1 + i], row[1]),
                price=int(required(prices[1 + i])[0]),
            )
            for i, row in enumerate(rows)
        )
        return CometState(to_checksum_address(base), token_symbol(symbols[0], base), int(base_scale),
                          int(required(prices[0])[0]), assets)  # fmt: skip

    def snapshots(self, accounts: Sequence[str], block: BlockRef) -> list[MarketSnapshot]:
        state = self.read_state(block.number)
        groups = [
            [Call(self.comet, BORROW_BALANCE_OF, (a,)), Call(self.comet, USER_BASIC, (a,))]
            + [Call(self.comet, COLLATERAL_BALANCE_OF, (a, x.asset)) for x in state.assets]
            for a in accounts
        ]
        results = self.multicall.run_groups(groups, block.number)
        check_block(self.client, block, self.market)
        positions = []
        for account, rows in zip(accounts, results, strict=True):
            borrow = int(required(rows[0])[0])
            assets_in = int(required(rows[1])[3])
            balances = [int(required(r)[0]) for r in rows[2:]]
            if borrow == 0 and not any(balances):
                continue
            positions.append(self._position(state, account, borrow, assets_in, balances, block.number))
        return [self._snapshot(state, positions, block)]

    def _position(
        self, state: CometState, account: str, borrow: int, assets_in: int, balances: list[int], block: int
    ) -> Position:
        weighted, owed = liquidity(state, borrow, assets_in, balances)
        collateral_value = sum(
            mul_price(b, x.price, x.scale)
            for x, b in zip(state.assets, balances, strict=True)
            if (assets_in >> x.offset) & 1
        )
        lt_bps = weighted * 10_000 // collateral_value if collateral_value else 0
        borrowable = sum(
            mul_factor(mul_price(b, x.price, x.scale), x.borrow_cf)
            for x, b in zip(state.assets, balances, strict=True)
            if (assets_in >> x.offset) & 1
        )
        legs = [
            AssetLeg(x.asset, x.symbol, b, b, 0, 0, 0, bool((assets_in >> x.offset) & 1))
            for x, b in zip(state.assets, balances, strict=True)
        ]
        legs.append(AssetLeg(state.base, state.base_symbol, 0, 0, borrow, borrow, 0, False))
        return Position(
            market=self.market, account=to_checksum_address(account), block=block,
            health_factor=MAX_UINT256 if borrow == 0 else (weighted * WAD // owed if owed else MAX_UINT256),
            total_collateral_base=collateral_value, total_debt_base=owed,
            available_borrows_base=max(0, borrowable - owed), current_liquidation_threshold=lt_bps,
            ltv=borrowable * 10_000 // collateral_value if collateral_value else 0,
            emode_category=0, user_configuration=assets_in, legs=tuple(legs),
        )  # fmt: skip

    def _snapshot(self, state: CometState, positions: list[Position], block: BlockRef) -> MarketSnapshot:
        reserves = [_collateral_reserve(i, x) for i, x in enumerate(state.assets)]
        reserves.append(
            Reserve(state.base, state.base_symbol, _decimals(state.base_scale), len(state.assets), 0, 0, 10_000, 0,
                    True, False, True, ZERO_ADDRESS, ZERO_ADDRESS, ZERO_ADDRESS, RAY, RAY, state.base_price)
        )  # fmt: skip
        return MarketSnapshot(
            market=self.market, protocol=PROTOCOL, chain_id=self.chain_id, block=block.number, block_hash=block.hash,
            timestamp=block.timestamp, base_currency_unit=PRICE_UNIT, reserves=tuple(reserves), emode_categories=(),
            positions=tuple(positions), addresses={"pool": self.comet},
        )  # fmt: skip


def _collateral_reserve(index: int, x: CometAsset) -> Reserve:
    to_bps = 10**14  # factors are 1e18-scaled
    return Reserve(
        x.asset, x.symbol, _decimals(x.scale), index, x.borrow_cf // to_bps, x.liquidate_cf // to_bps,
        (2 * FACTOR_SCALE - x.liquidation_factor) // to_bps, 0, True, False, False,
        ZERO_ADDRESS, ZERO_ADDRESS, ZERO_ADDRESS, RAY, RAY, x.price,
    )  # fmt: skip


def _decimals(scale: int) -> int:
    digits = len(str(scale)) - 1
    if 10**digits != scale:
        raise DecodeError(f"asset scale {scale} is not a power of ten")
    return digits
