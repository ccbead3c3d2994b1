"""Aave V3 reader: from the PoolAddressesProvider alone to exact positions at ONE block.

Reads (all ``eth_call`` at the same block number, batched through Multicall3):
1. provider -> Pool, AaveOracle, AaveProtocolDataProvider;
2. the Pool revision (``POOL_REVISION()``; a fork without it is placed by probing the getters
   each revision added), reserves list, symbols, base currency unit;
3. per reserve: configuration (protocol fee, paused, and the eMode bits before 3.2), indexes,
   token addresses, normalized income / debt, price, the liquidation grace period (3.1+), and
   before 3.2 whether its stable-debt token has any supply;
4. per account, in two passes over all accounts: first the user configuration and eMode (and,
   when asked, ``getUserAccountData``), then only over the reserves the configuration bitmap
   says the account uses (collateral or borrowing bit) the scaled aToken / variable-debt
   balances and (before 3.2, where there is any) the stable debt: ~2 + 2 x 2.5 sub-calls an
   account instead of 3 + 2R (``used_reserves_only=False``: every reserve, as before);
5. eMode categories: before 3.2 ``getEModeCategoryData`` of the ids reserves or accounts use;
   from 3.2 every configured id (ids 1..255 probed in one batch) plus those accounts use,
   with collateral config, collateral / borrowable bitmaps, label and (3.6+) LTV-zero bitmap.

Without ``getUserAccountData`` (the default) each position's HF and totals are recomputed
locally and exactly (:func:`monitor.risk.health.account_data`, the Pool revision's rounding;
before 3.2 with the eMode price sources' prices read with the balances); ``read_account_data``
reads the Pool's own figures instead (verification, reconciliation). Every batch is sized by
gas and the batches of one pass are in flight together (:class:`~monitor.chain.multicall.Multicall`).
What each revision has is in :mod:`monitor.protocols.aave_revisions`.
Borrowers are discovered from ``Borrow`` events (``onBehalfOf``), checkpointed in the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address

from monitor.chain.abi import Fn
from monitor.chain.blocks import BlockRef, block_ref, check_block
from monitor.chain.multicall import Call, Multicall, NoMulticallError
from monitor.chain.rpc import RpcClient
from monitor.errors import DecodeError, RpcError
from monitor.models import AssetLeg, EModeCategory, MarketSnapshot, Position, Reserve
from monitor.protocols import aave_v3_abi as abi
from monitor.protocols.aave_revisions import AaveRules, a_token_balance, rules_for, variable_debt_balance
from monitor.protocols.base import ReaderCore, accounts_from_events, required
from monitor.risk.health import account_data

PROTOCOL = "aave_v3"
ZERO = "0x0000000000000000000000000000000000000000"
DISCOVERY = "discovery"
ACCOUNT_CALLS = 3  # getUserAccountData, getUserConfiguration, getUserEMode
MAX_EMODE_ID = 255  # eMode category ids are uint8; 0 is "no eMode"

# A Pool without POOL_REVISION(): the newest getter it answers places it (IPool.sol per tag).
REVISION_PROBES: tuple[tuple[Fn, tuple[Any, ...], int], ...] = (
    (abi.GET_EMODE_LTVZERO_BITMAP, (1,), 10),  # v3.6.0
    (abi.RESERVE_INTEREST_RATE_STRATEGY, (), 8),  # v3.4.0 (3.5 adds no getter: taken as 3.4)
    (abi.GET_RESERVE_DEFICIT, (ZERO,), 7),  # v3.3.0
    (abi.GET_EMODE_COLLATERAL_CONFIG, (1,), 5),  # v3.2.0
    (abi.GET_LIQUIDATION_GRACE_PERIOD, (ZERO,), 4),  # v3.1.0
)
FALLBACK_REVISION = 1  # none answers: 3.0


def _unread_leg(reserve: Reserve, user_config: int) -> AssetLeg:
    """The leg of a reserve the configuration bitmap says the account does not use (no bit: no
    debt, no collateral that counts); its balances were not read (an aToken balance held with the
    collateral bit off is not seen: it weighs nothing in the HF)."""
    return AssetLeg(asset=reserve.asset, symbol=reserve.symbol, scaled_collateral=0, collateral=0,
                    scaled_variable_debt=0, variable_debt=0, stable_debt=0,
                    used_as_collateral=bool((user_config >> (2 * reserve.reserve_id + 1)) & 1))  # fmt: skip


def decoded_or_none(call: Call, result: tuple[bool, bytes]) -> tuple[Any, ...] | None:
    """A call's decoded answer, or ``None`` when it reverted or its data does not decode (a
    function the contract does not have, an EOA answering with empty data)."""
    success, data = result
    if not success:
        return None
    try:
        return call.fn.decode(data)
    except DecodeError:
        return None


def revision_from_answers(pool_revision: tuple[Any, ...] | None, probes: Sequence[bool]) -> int:
    """The revision ``POOL_REVISION()`` answered, else the first probe in
    :data:`REVISION_PROBES` that answered, else 3.0."""
    if pool_revision is not None and 0 < int(pool_revision[0]) < 2**32:
        return int(pool_revision[0])
    for (_fn, _args, revision), answered in zip(REVISION_PROBES, probes, strict=True):
        if answered:
            return revision
    return FALLBACK_REVISION


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
    paused: bool = False
    liquidation_protocol_fee: int = 0

    @classmethod
    def decode(cls, bitmap: int, *, liquid_emode: bool = False) -> ReserveConfig:
        """ReserveConfiguration.sol bit positions (the same in every revision); the eMode
        bits 168-175 are read only before 3.2 (``liquid_emode``: deprecated, left stale)."""
        return cls(
            ltv=bitmap & 0xFFFF,
            liquidation_threshold=(bitmap >> 16) & 0xFFFF,
            liquidation_bonus=(bitmap >> 32) & 0xFFFF,
            decimals=(bitmap >> 48) & 0xFF,
            active=bool((bitmap >> 56) & 1),
            frozen=bool((bitmap >> 57) & 1),
            borrowing_enabled=bool((bitmap >> 58) & 1),
            emode_category=0 if liquid_emode else (bitmap >> 168) & 0xFF,
            paused=bool((bitmap >> 60) & 1),
            liquidation_protocol_fee=(bitmap >> 152) & 0xFFFF,
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
        read_account_data: bool = False,
        used_reserves_only: bool = True,
    ) -> None:
        super().__init__(client, market=market, chain_id=chain_id, multicall=multicall, max_log_range=max_log_range)
        self.read_account_data = read_account_data  # the Pool's getUserAccountData, else recomputed locally
        self.used_reserves_only = used_reserves_only  # balances only where the configuration bitmap has a bit
        self.provider = to_checksum_address(pool_addresses_provider)
        self._addresses: MarketAddresses | None = None
        self._revision: tuple[int, int] | None = None  # (block, Pool revision at that block)
        self._stable_assets: frozenset[str] = frozenset()  # reserves with stable debt to read

    # -- market ---------------------------------------------------------------------------

    def addresses(self, block: int) -> MarketAddresses:
        if self._addresses is None:
            calls = [Call(self.provider, f) for f in (abi.GET_POOL, abi.GET_PRICE_ORACLE, abi.GET_POOL_DATA_PROVIDER)]
            try:
                pool, oracle, data_provider = (required(r)[0] for r in self.multicall.run(calls, block))
            except NoMulticallError:
                raise  # the Multicall3 address is at fault, not the provider
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

    def revision(self, block: int) -> int:
        """The Pool revision at ``block`` (read with the reserves; cached per block)."""
        if self._revision is None or self._revision[0] != block:
            pool = self.addresses(block).pool
            calls = self._revision_calls(pool)
            self._revision = (block, self._revision_from(calls, self.multicall.raw(calls, block)))
        return self._revision[1]

    def rules(self, block: int) -> AaveRules:
        """What the Pool at ``block`` has and how its math rounds (by its revision)."""
        return rules_for(self.revision(block))

    @staticmethod
    def _revision_calls(pool: str) -> list[Call]:
        return [Call(pool, abi.POOL_REVISION, allow_failure=True)] + [
            Call(pool, probe, args, allow_failure=True) for probe, args, _rev in REVISION_PROBES
        ]

    @staticmethod
    def _revision_from(calls: Sequence[Call], raw: Sequence[tuple[bool, bytes]]) -> int:
        answers = [decoded_or_none(c, r) for c, r in zip(calls, raw, strict=True)]
        return revision_from_answers(answers[0], [a is not None for a in answers[1:]])

    def read_reserves(self, block: int) -> tuple[tuple[Reserve, ...], int]:
        """Every reserve with its configuration, indexes and price; and the base currency unit.
        Also reads the Pool revision at ``block`` (see :meth:`revision`)."""
        addr = self.addresses(block)
        head_calls = [
            Call(addr.pool, abi.GET_RESERVES_LIST),
            Call(addr.oracle, abi.BASE_CURRENCY_UNIT),
            Call(addr.data_provider, abi.GET_ALL_RESERVES_TOKENS, allow_failure=True),
        ]
        revision_calls = self._revision_calls(addr.pool)
        raw = self.multicall.raw(head_calls + revision_calls, block)
        head = [decoded_or_none(c, r) for c, r in zip(head_calls, raw, strict=False)]
        for call, answer in zip(head_calls[:2], head, strict=False):
            if answer is None:
                raise DecodeError(f"{self.market}: {call.fn.signature} on {call.target} failed at block {block}")
        revision = self._revision_from(revision_calls, raw[len(head_calls) :])
        self._revision = (block, revision)
        rules = rules_for(revision)
        assets = [to_checksum_address(a) for a in required(head[0])[0]]
        base_unit = int(required(head[1])[0])
        symbols = {to_checksum_address(a): s for s, a in (head[2][0] if head[2] else [])}
        per_asset = 4 if rules.grace_period else 3
        calls: list[Call] = [Call(addr.oracle, abi.GET_ASSETS_PRICES, (assets,))]
        for asset in assets:
            calls += [
                Call(addr.pool, abi.GET_RESERVE_DATA, (asset,)),
                Call(addr.pool, abi.GET_NORMALIZED_INCOME, (asset,)),
                Call(addr.pool, abi.GET_NORMALIZED_DEBT, (asset,)),
            ]
            if rules.grace_period:
                calls.append(Call(addr.pool, abi.GET_LIQUIDATION_GRACE_PERIOD, (asset,), allow_failure=True))
        results = self.multicall.run(calls, block)
        prices = required(results[0])[0]
        if len(prices) != len(assets):
            raise DecodeError(f"{self.market}: oracle returned {len(prices)} prices for {len(assets)} assets")
        reserves = []
        for i, asset in enumerate(assets):
            at = 1 + per_asset * i
            data = required(results[at])[0]
            income = int(required(results[at + 1])[0])
            debt_index = int(required(results[at + 2])[0])
            grace = results[at + 3] if rules.grace_period else None
            cfg = ReserveConfig.decode(int(data[0][0]), liquid_emode=rules.liquid_emode)
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
                    liquidation_protocol_fee=cfg.liquidation_protocol_fee,
                    paused=cfg.paused,
                    liquidation_grace_period_until=int(grace[0]) if grace else 0,
                )
            )
        self._stable_assets = self._stable_debt_assets(reserves, rules, block)
        return tuple(reserves), base_unit

    def _stable_debt_assets(self, reserves: Sequence[Reserve], rules: AaveRules, block: int) -> frozenset[str]:
        """Reserves whose stable debt counts and may be non-zero: before 3.2 only, and only
        where the stable-debt token answers ``totalSupply()`` with more than 0. A token that
        reverts or is not a contract counts as no stable debt (never fails the scan)."""
        if not rules.stable_debt:
            return frozenset()
        with_token = [r for r in reserves if r.stable_debt_token != ZERO]
        calls = [Call(r.stable_debt_token, abi.TOTAL_SUPPLY, allow_failure=True) for r in with_token]
        raw = self.multicall.raw(calls, block) if calls else []
        supplies = [decoded_or_none(c, x) for c, x in zip(calls, raw, strict=True)]
        return frozenset(r.asset for r, supply in zip(with_token, supplies, strict=True) if supply and supply[0])

    def read_emode_categories(self, ids: Iterable[int], block: int) -> tuple[EModeCategory, ...]:
        """The categories named by ``ids`` (reserves' and accounts' eMode); from 3.2 also every
        configured category (liquid eMode: any reserve may be in any category)."""
        pool = self.addresses(block).pool
        rules = self.rules(block)
        if rules.liquid_emode:
            return self._liquid_emode_categories({i for i in ids if i}, pool, rules, block)
        wanted = sorted({i for i in ids if i})
        if not wanted:
            return ()
        results = self.multicall.run(
            [Call(pool, abi.GET_EMODE_CATEGORY_DATA, (i,), allow_failure=True) for i in wanted],
            block,
        )
        categories = []
        for category_id, result in zip(wanted, results, strict=True):
            if result is None:
                raise RpcError(
                    f"{self.market}: getEModeCategoryData({category_id}) failed on the Pool at block {block}"
                    f" (revision {rules.revision}, Aave {rules.label}): is it an Aave V3 Pool?"
                )
            ltv, lt, bonus, source, label = result[0]
            categories.append(EModeCategory(category_id, ltv, lt, bonus, to_checksum_address(source), label))
        return tuple(categories)

    def _liquid_emode_categories(
        self, used: set[int], pool: str, rules: AaveRules, block: int
    ) -> tuple[EModeCategory, ...]:
        probe = [Call(pool, abi.GET_EMODE_COLLATERAL_CONFIG, (i,)) for i in range(1, MAX_EMODE_ID + 1)]
        configs = {i + 1: required(r)[0] for i, r in enumerate(self.multicall.run(probe, block))}
        # PoolConfigurator.setEModeCategory requires a non-zero LT: LT 0 = never configured
        wanted = sorted(used | {i for i, (_ltv, lt, _bonus) in configs.items() if lt})
        per_id = [abi.GET_EMODE_COLLATERAL_BITMAP, abi.GET_EMODE_BORROWABLE_BITMAP, abi.GET_EMODE_LABEL]
        if rules.ltv_zero_bitmap:
            per_id.append(abi.GET_EMODE_LTVZERO_BITMAP)
        calls = [Call(pool, f, (i,), allow_failure=f is abi.GET_EMODE_LABEL) for i in wanted for f in per_id]
        results = self.multicall.run(calls, block)
        categories = []
        for n, category_id in enumerate(wanted):
            answers = results[n * len(per_id) : (n + 1) * len(per_id)]
            ltv, lt, bonus = configs[category_id]
            label = answers[2]  # deprecated in 3.6 (still answers); a failure is no label
            categories.append(
                EModeCategory(
                    category_id, int(ltv), int(lt), int(bonus), ZERO, str(label[0]) if label else "",
                    collateral_bitmap=int(required(answers[0])[0]),
                    borrowable_bitmap=int(required(answers[1])[0]),
                    ltv_zero_bitmap=int(required(answers[3])[0]) if rules.ltv_zero_bitmap else 0,
                )
            )  # fmt: skip
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
        """One account's calls over ``reserves`` in the one-pass layout (``getUserAccountData``,
        configuration, eMode, then per reserve the balances); the stable debt only of the reserves
        the last :meth:`read_reserves` found with stable debt (before 3.2), allowed to fail."""
        return [*self._head_calls(account, pool, True), *self._balance_calls(account, reserves)]

    def _head_calls(self, account: str, pool: str, with_account_data: bool) -> list[Call]:
        calls = [Call(pool, abi.GET_USER_ACCOUNT_DATA, (account,))] if with_account_data else []
        return [*calls, Call(pool, abi.GET_USER_CONFIGURATION, (account,)), Call(pool, abi.GET_USER_EMODE, (account,))]

    def _balance_calls(self, account: str, reserves: Sequence[Reserve]) -> list[Call]:
        calls: list[Call] = []
        for r in reserves:
            calls.append(Call(r.a_token, abi.SCALED_BALANCE_OF, (account,)))
            calls.append(Call(r.variable_debt_token, abi.SCALED_BALANCE_OF, (account,)))
            if r.asset in self._stable_assets:
                calls.append(Call(r.stable_debt_token, abi.BALANCE_OF, (account,), allow_failure=True))
        return calls

    def read_positions(
        self,
        accounts: Sequence[str],
        reserves: Sequence[Reserve],
        block: int,
        *,
        account_data: bool | None = None,
    ) -> list[Position]:
        """The positions of ``accounts`` at ``block`` (see the module docstring, step 4);
        ``account_data`` overrides the reader's ``read_account_data`` for this read."""
        return self._read_positions(accounts, reserves, block, account_data)[0]

    def _read_positions(
        self,
        accounts: Sequence[str],
        reserves: Sequence[Reserve],
        block: int,
        with_data: bool | None = None,
        reserve_emodes: Iterable[int] = (),
    ) -> tuple[list[Position], tuple[EModeCategory, ...] | None]:
        """Positions, and the eMode categories when this read needed them (local HF)."""
        pool = self.addresses(block).pool
        rules = self.rules(block)
        with_data = self.read_account_data if with_data is None else with_data
        if not self.used_reserves_only:
            groups = [self.account_calls(a, pool, reserves) for a in accounts]
            results = self.multicall.run_groups(groups, block)
            positions = [self._position(a, reserves, r, block, rules) for a, r in zip(accounts, results, strict=True)]
            return positions, None
        heads = self.multicall.run_groups([self._head_calls(a, pool, with_data) for a in accounts], block)
        at = 1 if with_data else 0
        configs = [int(required(h[at])[0]) for h in heads]
        emodes = [int(required(h[at + 1])[0]) for h in heads]
        used = [
            [r for r in reserves if (config >> (2 * r.reserve_id)) & 3] for config in configs
        ]  # fmt: skip
        categories: tuple[EModeCategory, ...] | None = None
        by_id: dict[int, EModeCategory] = {}
        if not with_data:
            categories = self.read_emode_categories([*reserve_emodes, *(r.emode_category for r in reserves), *emodes],
                                                    block)  # fmt: skip
            by_id = {c.id: c for c in categories}
        sources = self._price_sources(rules, categories or ())
        groups = [self._balance_calls(a, rs) for a, rs in zip(accounts, used, strict=True)]
        if sources:
            groups.append([Call(self.addresses(block).oracle, abi.GET_ASSETS_PRICES, (sources,))])
        balances = self.multicall.run_groups(groups, block)
        prices = {r.asset: r.price for r in reserves}
        if sources:
            prices |= dict(zip(sources, (int(p) for p in required(balances.pop()[0])[0]), strict=True))
        positions = []
        for account, head, config, emode, rs, answers in zip(
            accounts, heads, configs, emodes, used, balances, strict=True
        ):
            read = dict(zip((r.asset for r in rs), self._legs(rs, answers, config, rules), strict=True))
            legs = [read.get(r.asset) or _unread_leg(r, config) for r in reserves]  # one leg a reserve, as ever
            if with_data:
                data = tuple(int(x) for x in required(head[0]))
            else:
                local = account_data(legs, reserves, emode, config, by_id, prices, rules)
                data = (local.total_collateral_base, local.total_debt_base, local.available_borrows_base,
                        local.current_liquidation_threshold, local.ltv, local.health_factor)  # fmt: skip
            positions.append(self._make_position(account, block, data, config, emode, legs))
        return positions, categories

    @staticmethod
    def _price_sources(rules: AaveRules, categories: Sequence[EModeCategory]) -> list[str]:
        """Before 3.2: the eMode price sources the local HF needs the oracle's price of."""
        if not rules.emode_price_source:
            return []
        return sorted({c.price_source for c in categories if int(c.price_source, 16)})

    def _legs(
        self, reserves: Sequence[Reserve], results: Sequence[tuple[Any, ...] | None], user_config: int, rules: AaveRules
    ) -> list[AssetLeg]:
        legs = []
        at = 0
        for r in reserves:
            scaled_collateral = int(required(results[at])[0])
            scaled_debt = int(required(results[at + 1])[0])
            at += 2
            stable = 0
            if r.asset in self._stable_assets:
                answer = results[at]
                stable = int(answer[0]) if answer else 0  # a failing stable-debt token: none
                at += 1
            legs.append(
                AssetLeg(
                    asset=r.asset,
                    symbol=r.symbol,
                    scaled_collateral=scaled_collateral,
                    collateral=a_token_balance(scaled_collateral, r.liquidity_index, rules),
                    scaled_variable_debt=scaled_debt,
                    variable_debt=variable_debt_balance(scaled_debt, r.variable_borrow_index, rules),
                    stable_debt=stable,
                    used_as_collateral=bool((user_config >> (2 * r.reserve_id + 1)) & 1),
                )
            )
        return legs

    def _position(
        self,
        account: str,
        reserves: Sequence[Reserve],
        results: Sequence[tuple[Any, ...] | None],
        block: int,
        rules: AaveRules,
    ) -> Position:
        """One account from the one-pass layout of :meth:`account_calls`."""
        data = tuple(int(x) for x in required(results[0]))
        user_config = int(required(results[1])[0])
        emode = int(required(results[2])[0])
        legs = self._legs(reserves, results[ACCOUNT_CALLS:], user_config, rules)
        return self._make_position(account, block, data, user_config, emode, legs)

    def _make_position(
        self, account: str, block: int, data: Sequence[int], user_config: int, emode: int, legs: Sequence[AssetLeg]
    ) -> Position:
        total_collateral, total_debt, available, lt, ltv, hf = data
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
        positions, categories = self._read_positions(accounts, reserves, block.number)
        if categories is None:  # the Pool's figures were read: the categories are read apart
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
            revision=self.revision(block.number),
        )


__all__ = ["DISCOVERY", "PROTOCOL", "AaveV3Reader", "BlockRef", "block_ref"]
