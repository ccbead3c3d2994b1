"""Compound V3 (Comet) reader: base asset, collateral assets and their factors, prices from
Comet's own feeds, borrowers from every event that can make or change one; the liquidation
verdict recomputed in integers exactly as ``Comet.isLiquidatable``:

``liquidity = -mulPrice(borrowBalance, basePrice, baseScale)
             + sum over assets in assetsIn of mulFactor(mulPrice(balance_i, price_i, scale_i), liquidateCF_i)``
with ``mulPrice(n, p, s) = n * p / s`` and ``mulFactor(n, f) = n * f / 1e18``; liquidatable iff
liquidity < 0. liqmon's HF is the weighted collateral over the borrow value, as a WAD (floor),
so HF < 1 exactly when Comet would absorb the account. LTV is borrowCollateralFactor, the
liquidation threshold liquidateCollateralFactor, the bonus 2 - liquidationFactor (the discount
at which the protocol takes the collateral). Prices are USD with 8 decimals.

Two verdicts. Comet accrues interest only when something calls ``accrueInternal`` (any base
movement, ``absorb``, ``accrueAccount``); between accruals its stored indices go stale.
``isLiquidatable`` (and ``isBorrowCollateralized``) value the debt at the STORED borrow index;
``absorb`` accrues first and then asks ``isLiquidatable``, so it sees the debt at the index
projected to its block's timestamp (``accruedInterestIndices``: index += index x rate x elapsed
/ 1e18, the rate from ``getBorrowRate(getUtilization())`` on the stored totals). The reader
reads ``totalsBasic()`` (stored indices, totals, ``lastAccrualTime``) and the rate model's
immutables at the block and computes both in integers for the block's timestamp:
``Position.health_factor`` is the HF after accrual (what ``absorb`` sees, and what
``borrowBalanceOf`` reports), ``Position.health_factor_stored_index`` the one ``isLiquidatable``
sees now. They differ only for positions whose HF crosses 1 within the unaccrued interest.

Borrowers: an account can become one without a ``Withdraw`` (a base ``transfer`` beyond its
balance emits no event naming it, see ``transferBase``), but every borrower needs collateral,
so discovery takes the accounts named by ``Withdraw`` (src), base ``Transfer`` (from: a supply
withdrawn, possibly into debt), ``SupplyCollateral`` (dst), ``TransferCollateral`` (to) and
``AbsorbDebt`` (borrower); the snapshot keeps those holding collateral or a negative principal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from eth_utils import to_checksum_address

from monitor.chain.abi import event_topic, fn
from monitor.chain.blocks import BlockRef, check_block
from monitor.chain.logs import iter_log_chunks
from monitor.chain.multicall import Call, Multicall
from monitor.chain.rpc import RpcClient
from monitor.errors import DecodeError
from monitor.models import MAX_UINT256, RAY, WAD, AssetLeg, MarketSnapshot, Position, Reserve
from monitor.protocols.base import ZERO_ADDRESS, OnChunk, ReaderCore, checksum, required, token_symbol

PROTOCOL = "compound_v3"
FACTOR_SCALE = 10**18
PRICE_UNIT = 10**8
BASE_INDEX_SCALE = 10**15
UINT64_MAX = 2**64 - 1

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
# CometExt.totalsBasic(): baseSupplyIndex, baseBorrowIndex, trackingSupplyIndex, trackingBorrowIndex,
# totalSupplyBase, totalBorrowBase, lastAccrualTime, pauseFlags (the stored values, not projected)
TOTALS_BASIC = fn("totalsBasic()", "(uint64,uint64,uint64,uint64,uint104,uint104,uint40,uint8)")
# the rate model (Comet immutables, per second, 1e18 scale), in CometRates field order
RATE_PARAMS = tuple(
    fn(f"{name}()", "uint256")
    for name in (
        "supplyKink", "supplyPerSecondInterestRateBase", "supplyPerSecondInterestRateSlopeLow",
        "supplyPerSecondInterestRateSlopeHigh", "borrowKink", "borrowPerSecondInterestRateBase",
        "borrowPerSecondInterestRateSlopeLow", "borrowPerSecondInterestRateSlopeHigh",
    )
)  # fmt: skip
GET_UTILIZATION = fn("getUtilization()", "uint256")
GET_BORROW_RATE = fn("getBorrowRate(uint256)", "uint64")
GET_SUPPLY_RATE = fn("getSupplyRate(uint256)", "uint64")
ABSORB = fn("absorb(address,address[])")
ACCRUE_ACCOUNT = fn("accrueAccount(address)")

WITHDRAW_EVENT = "Withdraw(address,address,uint256)"
WITHDRAW_TOPIC = event_topic(WITHDRAW_EVENT)
TRANSFER_EVENT = "Transfer(address,address,uint256)"
TRANSFER_TOPIC = event_topic(TRANSFER_EVENT)
SUPPLY_COLLATERAL_EVENT = "SupplyCollateral(address,address,address,uint256)"
SUPPLY_COLLATERAL_TOPIC = event_topic(SUPPLY_COLLATERAL_EVENT)
TRANSFER_COLLATERAL_EVENT = "TransferCollateral(address,address,address,uint256)"
TRANSFER_COLLATERAL_TOPIC = event_topic(TRANSFER_COLLATERAL_EVENT)
ABSORB_DEBT_EVENT = "AbsorbDebt(address,address,uint256,uint256)"
ABSORB_DEBT_TOPIC = event_topic(ABSORB_DEBT_EVENT)
# event topic0 -> the topic naming the account that may now be (or have been) a borrower
DISCOVERY_TOPICS: Mapping[str, int] = {
    WITHDRAW_TOPIC: 1,  # src
    TRANSFER_TOPIC: 1,  # from (base supply withdrawn by a transfer; the zero address is a mint)
    SUPPLY_COLLATERAL_TOPIC: 2,  # dst
    TRANSFER_COLLATERAL_TOPIC: 2,  # to
    ABSORB_DEBT_TOPIC: 2,  # borrower
}


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
class CometRates:
    """The interest rate model, per second (1e18 scale), as Comet stores it."""

    supply_kink: int
    supply_base: int
    supply_slope_low: int
    supply_slope_high: int
    borrow_kink: int
    borrow_base: int
    borrow_slope_low: int
    borrow_slope_high: int


@dataclass(frozen=True, slots=True)
class CometTotals:
    """The stored market totals of ``totalsBasic()`` that accrual needs."""

    base_supply_index: int  # 1e15 scale
    base_borrow_index: int
    total_supply_base: int  # principals
    total_borrow_base: int
    last_accrual_time: int


@dataclass(frozen=True, slots=True)
class CometState:
    base: str
    base_symbol: str
    base_scale: int
    base_price: int
    assets: tuple[CometAsset, ...]
    totals: CometTotals | None = None
    rates: CometRates | None = None


def mul_price(n: int, price: int, scale: int) -> int:
    return n * price // scale


def mul_factor(n: int, factor: int) -> int:
    return n * factor // FACTOR_SCALE


def present_value(principal: int, index: int) -> int:
    """CometCore.presentValueSupply / presentValueBorrow: principal x index / 1e15 (floor)."""
    return principal * index // BASE_INDEX_SCALE


def utilization(totals: CometTotals) -> int:
    """Comet.getUtilization: borrows over supply at the stored indices (1e18), 0 without supply."""
    supplied = present_value(totals.total_supply_base, totals.base_supply_index)
    borrowed = present_value(totals.total_borrow_base, totals.base_borrow_index)
    return 0 if supplied == 0 else borrowed * FACTOR_SCALE // supplied


def kinked_rate(util: int, kink: int, base: int, slope_low: int, slope_high: int) -> int:
    """Comet.getSupplyRate / getBorrowRate: per-second rate (1e18) of the kinked model."""
    if util <= kink:
        rate = base + mul_factor(slope_low, util)
    else:
        rate = base + mul_factor(slope_low, kink) + mul_factor(slope_high, util - kink)
    if rate > UINT64_MAX:
        raise DecodeError(f"Comet rate {rate} at utilization {util} overflows uint64 (Comet itself reverts)")
    return rate


def borrow_rate(totals: CometTotals, rates: CometRates) -> int:
    return kinked_rate(utilization(totals), rates.borrow_kink, rates.borrow_base, rates.borrow_slope_low,
                       rates.borrow_slope_high)  # fmt: skip


def supply_rate(totals: CometTotals, rates: CometRates) -> int:
    return kinked_rate(utilization(totals), rates.supply_kink, rates.supply_base, rates.supply_slope_low,
                       rates.supply_slope_high)  # fmt: skip


def accrued_indices(totals: CometTotals, rates: CometRates, timestamp: int) -> tuple[int, int]:
    """Comet.accruedInterestIndices for ``timestamp``: (supply, borrow) index after
    index += mulFactor(index, rate x elapsed), the rates at the stored utilization."""
    elapsed = timestamp - totals.last_accrual_time
    if elapsed < 0:
        raise DecodeError(f"Comet lastAccrualTime {totals.last_accrual_time} is after the block time {timestamp}")
    supply_index, borrow_index = totals.base_supply_index, totals.base_borrow_index
    if elapsed == 0:
        return supply_index, borrow_index
    supply_step = mul_factor(supply_index, supply_rate(totals, rates) * elapsed)
    borrow_step = mul_factor(borrow_index, borrow_rate(totals, rates) * elapsed)
    if max(supply_index + supply_step, borrow_index + borrow_step) > UINT64_MAX:
        raise DecodeError(f"Comet index overflows uint64 after {elapsed} s without accrual (Comet itself reverts)")
    return supply_index + supply_step, borrow_index + borrow_step


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
        """Accounts named by any event that can make or change a borrower (``DISCOVERY_TOPICS``),
        one ``eth_getLogs`` per range for all five; suppliers read this way drop out at the
        snapshot (no collateral, no debt)."""
        topics: list[str | list[str] | None] = [list(DISCOVERY_TOPICS)]
        for start, end, logs in iter_log_chunks(self.client, self.comet, topics, from_block, to_block, self.log_span):
            found = []
            for log in logs:
                position = DISCOVERY_TOPICS.get(log.topics[0].lower()) if log.topics else None
                if position is None:
                    continue  # another event of the same contract (a node that ignores the topic filter)
                if len(log.topics) <= position:
                    raise DecodeError(f"{self.market}: Comet log without its account topic at block {log.block_number}")
                account = to_checksum_address("0x" + log.topics[position][-40:])
                if account != ZERO_ADDRESS:
                    found.append(account)
            on_chunk(start, end, list(dict.fromkeys(found)))

    def read_state(self, block: int) -> CometState:
        head = self.multicall.run(
            [Call(self.comet, f) for f in (BASE_TOKEN, BASE_TOKEN_PRICE_FEED, BASE_SCALE, NUM_ASSETS, TOTALS_BASIC)]
            + [Call(self.comet, f) for f in RATE_PARAMS],
            block,
        )
        base, base_feed, base_scale, n = (required(r)[0] for r in head[:4])
        basic = required(head[4])[0]
        totals = CometTotals(int(basic[0]), int(basic[1]), int(basic[4]), int(basic[5]), int(basic[6]))
        rates = CometRates(*(int(required(r)[0]) for r in head[5:]))
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
                          int(required(prices[0])[0]), assets, totals, rates)  # fmt: skip

    def snapshots(self, accounts: Sequence[str], block: BlockRef) -> list[MarketSnapshot]:
        state = self.read_state(block.number)
        if state.totals is None or state.rates is None:
            raise DecodeError(f"{self.market}: Comet totals or rate model missing")
        stored_index = state.totals.base_borrow_index
        _, accrued_index = accrued_indices(state.totals, state.rates, block.timestamp)
        groups = [
            [Call(self.comet, USER_BASIC, (a,))]
            + [Call(self.comet, COLLATERAL_BALANCE_OF, (a, x.asset)) for x in state.assets]
            for a in accounts
        ]
        results = self.multicall.run_groups(groups, block.number)
        check_block(self.client, block, self.market)
        positions = []
        for account, rows in zip(accounts, results, strict=True):
            basic = required(rows[0])
            principal, assets_in = int(basic[0]), int(basic[3])
            balances = [int(required(r)[0]) for r in rows[1:]]
            if principal >= 0 and not any(balances):
                continue  # a supplier only (or nothing): never liquidatable
            owed_principal = -principal if principal < 0 else 0
            borrow = present_value(owed_principal, accrued_index)
            stored = present_value(owed_principal, stored_index)
            positions.append(self._position(state, account, borrow, stored, assets_in, balances, block.number))
        return [self._snapshot(state, positions, block)]

    def _position(
        self,
        state: CometState,
        account: str,
        borrow: int,
        borrow_stored: int,
        assets_in: int,
        balances: list[int],
        block: int,
    ) -> Position:
        """``borrow``: the debt after accrual to the block's timestamp; ``borrow_stored``: at the stored index."""
        weighted, owed = liquidity(state, borrow, assets_in, balances)
        _, owed_stored = liquidity(state, borrow_stored, assets_in, balances)
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
            market=self.market, account=checksum(account), block=block,
            health_factor=_hf(weighted, borrow, owed), total_collateral_base=collateral_value, total_debt_base=owed,
            available_borrows_base=max(0, borrowable - owed), current_liquidation_threshold=lt_bps,
            ltv=borrowable * 10_000 // collateral_value if collateral_value else 0,
            emode_category=0, user_configuration=assets_in, legs=tuple(legs),
            health_factor_stored_index=_hf(weighted, borrow_stored, owed_stored),
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


def _hf(weighted: int, borrow: int, owed: int) -> int:
    """weighted x 1e18 // owed (floor), so HF < 1 exactly when ``isLiquidatable`` would say true."""
    return MAX_UINT256 if borrow == 0 or owed == 0 else weighted * WAD // owed


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
