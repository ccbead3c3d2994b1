"""Aave V3 reader: from the PoolAddressesProvider alone to exact positions at ONE block.

Reads (all ``eth_call`` at the same block number, batched through Multicall3):
1. provider -> Pool, AaveOracle, AaveProtocolDataProvider;
2. reserves list, symbols, base currency unit;
3. per reserve: configuration, indexes, token addresses, normalized income / debt, price;
4. per account: ``getUserAccountData``, user configuration, eMode, and per reserve the
   scaled aToken / variable-debt balances and the stable-debt balance;
5. the eMode categories that reserves or accounts use.
Borrowers are discovered from ``Borrow`` events (``onBehalfOf``), checkpointed in the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address

from monitor.chain.blocks import BlockRef, block_ref, check_block
from monitor.chain.multicall import Call, Multicall
from monitor.chain.rpc import RpcClient
from monitor.errors import DecodeError, RpcError
from monitor.models import AssetLeg, EModeCategory, MarketSnapshot, Position, Reserve
from monitor.protocols import aave_v3_abi as abi
from monitor.protocols.base import ReaderCore, accounts_from_events, required
from monitor.wadray import ray_mul

PROTOCOL = "aave_v3"
ZERO = "0x0000000000000000000000000000000000000000"
DISCOVERY = "discovery"
ACCOUNT_CALLS = 3  # getUserAccountData, getUserConfiguration, getUserEMode


@dataclass(frozen=True, slots=True)
class ReserveConfig:
    """The fields of an Aave V3 ReserveConfigurationMap bitmap liqmon uses."""

    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    decimals: int
    active: bool
    frozen: bool
    borrowing_enabled: bool
    emode_category: int

    @classmethod
    def decode(cls, bitmap: int) -> ReserveConfig:
        return cls(
            ltv=bitmap & 0xFFFF,
            liquidation_threshold=(bitmap >> 16) & 0xFFFF,
            liquidation_bonus=(bitmap >> 32) & 0xFFFF,
            decimals=(bitmap >> 48) & 0xFF,
            active=bool((bitmap >> 56) & 1),
            frozen=bool((bitmap >> 57) & 1),
            borrowing_enabled=bool((bitmap >> 58) & 1),
            emode_category=(bitmap >> 168) & 0xFF,
        )


@dataclass(frozen=True, slots=True)
class MarketAddresses:
    pool_addresses_provider: str
    pool: str
    oracle: str
    data_provider: str

    def as_dict(self) -> dict[str, str]:
        return {
            "pool_addresses_provider": self.pool_addresses_provider,
            "pool": self.pool,
            "oracle": self.oracle,
            "data_provider": self.data_provider,
        }


class AaveV3Reader(ReaderCore):
    """Reads one Aave V3 (or same-interface fork) market."""

    protocol = PROTOCOL

    def __init__(
        self,
        client: RpcClient,
        *,
        market: str,
        pool_addresses_provider: str,
        chain_id: int,
        multicall: Multicall,
        max_log_range: int = 2000,
    ) -> None:
        super().__init__(client, market=market, chain_id=chain_id, multicall=multicall, max_log_range=max_log_range)
        self.provider = to_checksum_address(pool_addresses_provider)
        self._addresses: MarketAddresses | None = None

    # -- market ---------------------------------------------------------------------------

    def addresses(self, block: int) -> MarketAddresses:
        if self._addresses is None:
            calls = [Call(self.provider, f) for f in (abi.GET_POOL, abi.GET_PRICE_ORACLE, abi.GET_POOL_DATA_PROVIDER)]
            try:
                pool, oracle, data_provider = (required(r)[0] for r in self.multicall.run(calls, block))
            except DecodeError as exc:
                raise RpcError(
                    f"{self.market}: {self.provider} does not answer as an Aave V3 "
                    f"PoolAddressesProvider at block {block} ({exc})"
                ) from exc
            if ZERO in (pool, oracle):
                raise RpcError(f"{self.market}: PoolAddressesProvider {self.provider} has no Pool or oracle set")
            self._addresses = MarketAddresses(
                self.provider,
                to_checksum_address(pool),
                to_checksum_address(oracle),
                to_checksum_address(data_provider),
            )
        return self._addresses

    def read_reserves(self, block: int) -> tuple[tuple[Reserve, ...], int]:
        """Every reserve with its configuration, indexes and price; and the base currency unit."""
        addr = self.addresses(block)
        head = self.multicall.run(
            [
                Call(addr.pool, abi.GET_RESERVES_LIST),
                Call(addr.oracle, abi.BASE_CURRENCY_UNIT),
                Call(addr.data_provider, abi.GET_ALL_RESERVES_TOKENS, allow_failure=True),
            ],
            block,
        )
        assets = [to_checksum_address(a) for a in required(head[0])[0]]
        base_unit = int(required(head[1])[0])
        symbols = {to_checksum_address(a): s for s, a in (head[2][0] if head[2] else [])}
        calls: list[Call] = [Call(addr.oracle, abi.GET_ASSETS_PRICES, (assets,))]
        for asset in assets:
            calls += [
                Call(addr.pool, abi.GET_RESERVE_DATA, (asset,)),
                Call(addr.pool, abi.GET_NORMALIZED_INCOME, (asset,)),
                Call(addr.pool, abi.GET_NORMALIZED_DEBT, (asset,)),
            ]
        results = self.multicall.run(calls, block)
        prices = required(results[0])[0]
        if len(prices) != len(assets):
            raise DecodeError(f"{self.market}: oracle returned {len(prices)} prices for {len(assets)} assets")
        reserves = []
        for i, asset in enumerate(assets):
            data = required(results[1 + 3 * i])[0]
            income = int(required(results[2 + 3 * i])[0])
            debt_index = int(required(results[3 + 3 * i])[0])
            cfg = ReserveConfig.decode(int(data[0][0]))
            reserves.append(
                Reserve(
                    asset=asset,
                    symbol=symbols.get(asset, asset[:10]),
                    decimals=cfg.decimals,
                    reserve_id=int(data[7]),
                    ltv=cfg.ltv,
                    liquidation_threshold=cfg.liquidation_threshold,
                    liquidation_bonus=cfg.liquidation_bonus,
                    emode_category=cfg.emode_category,
                    active=cfg.active,
                    frozen=cfg.frozen,
                    borrowing_enabled=cfg.borrowing_enabled,
                    a_token=to_checksum_address(data[8]),
                    stable_debt_token=to_checksum_address(data[9]),
                    variable_debt_token=to_checksum_address(data[10]),
                    liquidity_index=income,
                    variable_borrow_index=debt_index,
                    price=int(prices[i]),
                )
            )
        return tuple(reserves), base_unit

    def read_emode_categories(self, ids: Iterable[int], block: int) -> tuple[EModeCategory, ...]:
        wanted = sorted({i for i in ids if i})
        if not wanted:
            return ()
        pool = self.addresses(block).pool
        results = self.multicall.run(
            [Call(pool, abi.GET_EMODE_CATEGORY_DATA, (i,), allow_failure=True) for i in wanted],
            block,
        )
        categories = []
        for category_id, result in zip(wanted, results, strict=True):
            if result is None:
                raise RpcError(
                    f"{self.market}: getEModeCategoryData({category_id}) failed; Aave V3.2+ eMode "
                    "(collateral bitmaps) is not supported yet"
                )
            ltv, lt, bonus, source, label = result[0]
            categories.append(EModeCategory(category_id, ltv, lt, bonus, to_checksum_address(source), label))
        return tuple(categories)

    # -- accounts -------------------------------------------------------------------------

    def discover(
        self,
        from_block: int,
        to_block: int,
        on_chunk: Callable[[int, int, list[str]], None],
    ) -> None:
        """Scan ``Borrow`` events in ``[from_block, to_block]``; ``on_chunk(start, end, borrowers)``
        is called after each range so the caller can store accounts and checkpoint together."""
        pool = self.addresses(to_block).pool
        accounts_from_events(
            self.client, pool, [abi.BORROW_TOPIC], 2, self.log_span, from_block, to_block, on_chunk,
            f"{self.market}: Borrow",
        )  # fmt: skip

    def account_calls(self, account: str, pool: str, reserves: Sequence[Reserve]) -> list[Call]:
        calls = [
            Call(pool, abi.GET_USER_ACCOUNT_DATA, (account,)),
            Call(pool, abi.GET_USER_CONFIGURATION, (account,)),
            Call(pool, abi.GET_USER_EMODE, (account,)),
        ]
        for r in reserves:
            calls.append(Call(r.a_token, abi.SCALED_BALANCE_OF, (account,)))
            calls.append(Call(r.variable_debt_token, abi.SCALED_BALANCE_OF, (account,)))
            if r.stable_debt_token != ZERO:
                calls.append(Call(r.stable_debt_token, abi.BALANCE_OF, (account,)))
        return calls

    def read_positions(self, accounts: Sequence[str], reserves: Sequence[Reserve], block: int) -> list[Position]:
        pool = self.addresses(block).pool
        groups = [self.account_calls(a, pool, reserves) for a in accounts]
        results = self.multicall.run_groups(groups, block)
        return [self._position(a, reserves, r, block) for a, r in zip(accounts, results, strict=True)]

    def _position(
        self,
        account: str,
        reserves: Sequence[Reserve],
        results: Sequence[tuple[Any, ...] | None],
        block: int,
    ) -> Position:
        total_collateral, total_debt, available, lt, ltv, hf = required(results[0])
        user_config = int(required(results[1])[0])
        emode = int(required(results[2])[0])
        legs = []
        at = ACCOUNT_CALLS
        for r in reserves:
            scaled_collateral = int(required(results[at])[0])
            scaled_debt = int(required(results[at + 1])[0])
            at += 2
            stable = 0
            if r.stable_debt_token != ZERO:
                stable = int(required(results[at])[0])
                at += 1
            legs.append(
                AssetLeg(
                    asset=r.asset,
                    symbol=r.symbol,
                    scaled_collateral=scaled_collateral,
                    collateral=ray_mul(scaled_collateral, r.liquidity_index),
                    scaled_variable_debt=scaled_debt,
                    variable_debt=ray_mul(scaled_debt, r.variable_borrow_index),
                    stable_debt=stable,
                    used_as_collateral=bool((user_config >> (2 * r.reserve_id + 1)) & 1),
                )
            )
        return Position(
            market=self.market,
            account=to_checksum_address(account),
            block=block,
            health_factor=int(hf),
            total_collateral_base=int(total_collateral),
            total_debt_base=int(total_debt),
            available_borrows_base=int(available),
            current_liquidation_threshold=int(lt),
            ltv=int(ltv),
            emode_category=emode,
            user_configuration=user_config,
            legs=tuple(legs),
        )

    # -- one snapshot ---------------------------------------------------------------------

    def snapshots(self, accounts: Sequence[str], block: BlockRef) -> list[MarketSnapshot]:
        return [self.snapshot(accounts, block)]

    def snapshot(self, accounts: Sequence[str], block: BlockRef) -> MarketSnapshot:
        """Market and positions, every read pinned to ``block.number``; the block hash is
        checked again at the end so a reorg during the scan is never stored."""
        reserves, base_unit = self.read_reserves(block.number)
        positions = self.read_positions(accounts, reserves, block.number)
        categories = self.read_emode_categories(
            [r.emode_category for r in reserves] + [p.emode_category for p in positions],
            block.number,
        )
        check_block(self.client, block, self.market)
        return MarketSnapshot(
            market=self.market,
            protocol=PROTOCOL,
            chain_id=self.chain_id,
            block=block.number,
            block_hash=block.hash,
            timestamp=block.timestamp,
            base_currency_unit=base_unit,
            reserves=reserves,
            emode_categories=categories,
            positions=tuple(positions),
            addresses=self.addresses(block.number).as_dict(),
        )


__all__ = ["DISCOVERY", "PROTOCOL", "AaveV3Reader", "BlockRef", "block_ref"]
