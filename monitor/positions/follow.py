"""Following one Aave V3 market block by block: the per-block read plan and reconciliation.

After ONE full read (:meth:`AaveFollower.start`, through :class:`~monitor.protocols.aave_v3.AaveV3Reader`),
each :meth:`AaveFollower.step` to a new block costs, in steady state:

1. ONE ``eth_getLogs`` over every watched contract of the market (the Pool, every aToken and
   variable debt token, the PoolConfigurator and the PoolAddressesProvider: an address list,
   and a topic0 OR-list of the events in :mod:`monitor.positions.aave_events`), applied to the
   followed state in (block, logIndex) order;
2. ONE Multicall3 ``eth_call`` holding both the reserve state at the block (the oracle's
   prices, each reserve's normalized income and variable debt, and before 3.2 the stable-debt
   supplies) and the accounts to read: those the events touched (``verify_touched``; their
   event-applied state is compared field by field with the chain before the chain's replaces
   it), the dirty ones (an event that could not be applied exactly, stable debt) and new
   borrowers (``discover``); each account only over the reserves it uses (configuration
   bits, balances, reserves its events named).

That is 2 requests per block (3 when the account read does not fit one batch). A PoolConfigurator
event adds a reserves / eMode re-read in that block; a PoolAddressesProvider event a full
re-read. Reconciliation (:meth:`AaveFollower.reconcile`) re-reads a rotating sample every block
(``reconcile_sample``) and every account every ``reconcile_all_every`` blocks, through the
reader's own full read, and compares exactly: each difference is returned, counted, logged
with the account, and the chain's state replaces the local one.

Every health factor then comes from :meth:`FollowedMarket.account_data` (local, exact).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from eth_utils import to_checksum_address

from monitor.chain.blocks import BlockRef, block_ref
from monitor.chain.logs import AdaptiveRange, Log, checked_logs, range_limit
from monitor.chain.multicall import Call
from monitor.chain.rpc import RpcClient
from monitor.errors import DecodeError, RpcResponseError
from monitor.models import MarketSnapshot
from monitor.positions import aave_events as ev
from monitor.positions.base import Difference, StepReport, note_differences, rotating_sample
from monitor.positions.state import ZERO, AccountState, ChainAccount, FollowedMarket
from monitor.protocols import aave_v3_abi as abi
from monitor.protocols.aave_v3 import AaveV3Reader
from monitor.protocols.base import required

log = logging.getLogger("liqmon")
TOUCHED_KEPT_BLOCKS = 256  # how long FollowedMarket.touched_accounts(block) answers for a past block


def _counts(client: RpcClient) -> Counter[str]:
    return Counter(client.method_counts)


class AaveFollower:
    """Follows ``accounts`` of the market ``reader`` reads (see the module docstring); a
    :class:`~monitor.positions.base.Follower`."""

    protocol = "aave_v3"

    def __init__(
        self,
        reader: AaveV3Reader,
        accounts: Sequence[str],
        *,
        verify_touched: bool = True,
        reconcile_sample: int = 0,
        reconcile_all_every: int = 0,
        discover: bool = False,
        read_account_data: bool = True,
        max_log_range: int = 2000,
    ) -> None:
        self.reader = reader
        self.client = reader.client
        self.multicall = reader.multicall
        self.accounts = [to_checksum_address(a) for a in dict.fromkeys(accounts)]
        self.verify_touched = verify_touched
        self.reconcile_sample = max(0, reconcile_sample)
        self.reconcile_all_every = max(0, reconcile_all_every)
        self.discover = discover
        self.read_account_data = read_account_data
        self.log_span = AdaptiveRange(max_log_range)
        self._state: FollowedMarket | None = None
        self._cursor = 0
        self._reader_stable: frozenset[str] = frozenset()  # stable-debt reserves the reader last saw
        self.difference_counts: Counter[str] = Counter()  # source -> differences found
        self.differences: list[Difference] = []

    @property
    def state(self) -> FollowedMarket:
        if self._state is None:
            raise RuntimeError("AaveFollower.start() must run before the state is read")
        return self._state

    @property
    def block(self) -> int:
        return -1 if self._state is None else self._state.block

    @property
    def followed(self) -> Sequence[str]:
        return list(self.accounts) if self._state is None else list(self._state.accounts)

    def add_accounts(self, accounts: Iterable[str]) -> None:
        """Follow ``accounts`` too: each new one is read in full at the next :meth:`step`."""
        known = set(self.accounts) if self._state is None else set(self._state.accounts)
        new = [a for a in map(to_checksum_address, accounts) if a not in known]
        self.accounts = list(dict.fromkeys([*self.accounts, *new]))
        if self._state is not None:
            self._state.discovered.update(new)

    def snapshots(self, block_hash: str = "", timestamp: int = 0) -> list[MarketSnapshot]:
        """The followed state at :attr:`block` (one snapshot: one Aave market)."""
        return [self.state.snapshot(block_hash, timestamp)]

    # -- the full read --------------------------------------------------------------------

    def start(self, block: BlockRef | int | str = "latest") -> FollowedMarket:
        """ONE full read of the market and every followed account at ``block``."""
        ref = block if isinstance(block, BlockRef) else block_ref(self.client, block)
        snapshot = self.reader.snapshot(self.accounts, ref)
        provider = snapshot.addresses.get("pool_addresses_provider", self.reader.provider)
        answer = self.multicall.run([Call(provider, abi.GET_POOL_CONFIGURATOR, allow_failure=True)], ref.number)[0]
        configurator = str(answer[0]) if answer and int(str(answer[0]), 16) else ""
        self._state = FollowedMarket(snapshot, configurator=configurator, discover=self.discover)
        self._read_block(ref.number, [])  # the stable-debt supplies (3.0 / 3.1) and the price sources
        self._reader_stable = self._state.stable_assets
        return self._state

    # -- one block ------------------------------------------------------------------------

    def step(self, to_block: int) -> StepReport:
        """Follow from the last followed block to ``to_block`` (one block, or a catch-up range)."""
        state = self.state
        cpu = time.process_time()
        before = _counts(self.client)
        first = state.block + 1
        if to_block < first:
            return StepReport(first, to_block, 0, 0, (), (), 0, (), 0, {}, 0.0)
        logs = self.logs(first, to_block)
        events = ev.decode_logs(logs, state.watched)
        touched = state.apply_events(events)
        refreshed = resynced = False
        differences: list[Difference] = []
        read: list[str] = []
        discovered: list[str] = []
        if state.needs_resync:
            self.reader = AaveV3Reader(
                self.client, market=self.reader.market, pool_addresses_provider=self.reader.provider,
                chain_id=self.reader.chain_id, multicall=self.multicall,
            )  # fmt: skip
            self.accounts = list(dict.fromkeys([*self.accounts, *map(to_checksum_address, state.accounts)]))
            self.start(to_block)
            resynced = True
        else:
            if state.needs_refresh:
                self._refresh(to_block)
                refreshed = True
            wanted = set(state.dirty) | state.stable_holders() | set(state.discovered)
            if self.verify_touched:
                wanted |= touched
            read = sorted(wanted)
            discovered = [a for a in read if a not in state.accounts]
            differences += self._read_block(to_block, read)
            differences += self.reconcile(self._sample(to_block), to_block)
        state.forget_touched(to_block - TOUCHED_KEPT_BLOCKS)
        after = _counts(self.client)
        by_method = {m: after[m] - before.get(m, 0) for m in after if after[m] - before.get(m, 0)}
        return StepReport(
            first, to_block, len(logs), len(events), tuple(sorted(touched)), tuple(read),
            len(self._last_sample), tuple(differences), sum(by_method.values()), by_method,
            time.process_time() - cpu, refreshed, resynced, tuple(discovered),
        )  # fmt: skip

    def unwind(self, to_block: int) -> set[str]:
        """A reorg replaced the blocks after ``to_block``: the accounts their events touched are
        read again at the next :meth:`step` (exactly, from the chain), a market change among them
        is read again too; deeper than the kept window (``TOUCHED_KEPT_BLOCKS``) the whole market
        is read again at ``to_block``. Returns the accounts to be read again."""
        accounts = self.state.unwind(to_block)
        if accounts is None:
            self.start(to_block)
            return set(self.state.accounts)
        return accounts

    def logs(self, first: int, last: int) -> list[Log]:
        """Every watched contract's logs in ``[first, last]``: ONE ``eth_getLogs`` (more only
        when the node limits the range), each log checked against the question."""
        addresses = self.state.watched_addresses()
        topics: list[str | list[str] | None] = [list(ev.WATCHED_TOPICS)]
        out: list[Log] = []
        start = first
        while start <= last:
            end = min(last, start + self.log_span.current - 1)
            query = {"address": addresses, "topics": topics, "fromBlock": hex(start), "toBlock": hex(end)}
            parsed: list[Log] = []

            def check(raw: Any, lo: int = start, hi: int = end, into: list[Log] = parsed) -> None:
                into[:] = checked_logs(raw, addresses, topics, lo, hi)

            try:
                self.client.request("eth_getLogs", [query], min_block=end, check=check)
            except RpcResponseError as exc:
                smaller = range_limit(exc, end - start + 1)
                if smaller is None or end == start:
                    raise
                self.log_span.shrink(smaller)
                continue
            self.log_span.succeeded()
            out += parsed
            start = end + 1
        return out

    def _refresh(self, block: int) -> None:
        state = self.state
        reserves, base_unit = self.reader.read_reserves(block)
        ids = [r.emode_category for r in reserves] + [a.emode for a in state.accounts.values()]
        categories = self.reader.read_emode_categories(ids, block)
        state.set_market(reserves, categories, base_unit, self.reader.revision(block))

    def _reserve_calls(self) -> list[Call]:
        state = self.state
        assets = list(state.reserves)
        calls = [Call(state.addresses["oracle"], abi.GET_ASSETS_PRICES, ([*assets, *state.price_source_addresses()],))]
        pool = state.addresses["pool"]
        for asset in assets:
            calls += [Call(pool, abi.GET_NORMALIZED_INCOME, (asset,)), Call(pool, abi.GET_NORMALIZED_DEBT, (asset,))]
        if state.rules.stable_debt:
            calls += [
                Call(r.stable_debt_token, abi.TOTAL_SUPPLY, allow_failure=True)
                for r in state.reserves.values()
                if r.stable_debt_token != ZERO
            ]
        return calls

    def _account_calls(self, account: str, assets: Sequence[str]) -> list[Call]:
        state = self.state
        pool = state.addresses["pool"]
        calls = [Call(pool, abi.GET_USER_ACCOUNT_DATA, (account,))] if self.read_account_data else []
        calls += [Call(pool, abi.GET_USER_CONFIGURATION, (account,)), Call(pool, abi.GET_USER_EMODE, (account,))]
        for asset in assets:
            r = state.reserves[asset]
            calls += [Call(r.a_token, abi.SCALED_BALANCE_OF, (account,)), Call(r.variable_debt_token,
                      abi.SCALED_BALANCE_OF, (account,))]  # fmt: skip
            if state.rules.stable_debt and r.stable_debt_token != ZERO:
                calls.append(Call(r.stable_debt_token, abi.BALANCE_OF, (account,), allow_failure=True))
        return calls

    def _chain_account(
        self, account: str, assets: Sequence[str], results: Sequence[tuple[Any, ...] | None], complete: bool
    ) -> ChainAccount:
        state = self.state
        at = 0
        data: tuple[int, int, int, int, int, int] | None = None
        if self.read_account_data:
            c, d, avail, lt, ltv, hf = (int(x) for x in required(results[0]))
            data = (c, d, avail, lt, ltv, hf)
            at = 1
        chain = AccountState(account, int(required(results[at + 1])[0]), int(required(results[at])[0]))
        at += 2
        for asset in assets:
            r = state.reserves[asset]
            scaled_c, scaled_d = int(required(results[at])[0]), int(required(results[at + 1])[0])
            at += 2
            if scaled_c:
                chain.collateral[asset] = scaled_c
            if scaled_d:
                chain.debt[asset] = scaled_d
            if state.rules.stable_debt and r.stable_debt_token != ZERO:
                answer = results[at]
                at += 1
                if answer and int(answer[0]):
                    chain.stable[asset] = int(answer[0])
        if at != len(results):
            raise DecodeError(f"{state.market}: {len(results)} answers for {account}'s read, used {at}")
        return ChainAccount(chain, None if complete else frozenset(assets), data)

    def _read_block(self, block: int, accounts: Sequence[str]) -> list[Difference]:
        """The block's ONE batched read: reserves and prices, then ``accounts`` (each over the
        reserves it uses; new accounts over all). Returns the differences of the accounts
        whose state was followed by events."""
        state = self.state
        reserve_calls = self._reserve_calls()
        plan: list[tuple[str, list[str], bool]] = []
        for account in accounts:
            complete = account not in state.accounts
            assets = sorted(state.reserves) if complete else sorted(state.assets_used(account))
            plan.append((account, assets, complete))
        groups = [reserve_calls] + [self._account_calls(a, assets) for a, assets, _ in plan]
        results = self.multicall.run_groups(groups, block)
        self._apply_reserves(block, results[0])
        differences: list[Difference] = []
        again: list[str] = []
        accruing = state.stable_holders()
        for (account, assets, complete), answers in zip(plan, results[1:], strict=True):
            chain = self._chain_account(account, assets, answers, complete)
            exact = account in state.accounts and account not in state.dirty
            if exact:
                compared = state.compare(chain, block, "touched", stable_as_read=account in accruing)
                differences += self._note(compared)
            state.replace_account(chain)
            if state.unread_bits(chain):
                again.append(account)
        state.discovered.clear()
        if again:  # the chain names reserves the local state did not: read those accounts in full
            groups = [self._account_calls(a, sorted(state.reserves)) for a in again]
            for account, answers in zip(again, self.multicall.run_groups(groups, block), strict=True):
                state.replace_account(self._chain_account(account, sorted(state.reserves), answers, True))
        return differences

    def _apply_reserves(self, block: int, results: Sequence[tuple[Any, ...] | None]) -> None:
        state = self.state
        assets = list(state.reserves)
        sources = state.price_source_addresses()
        prices = [int(p) for p in required(results[0])[0]]
        if len(prices) != len(assets) + len(sources):
            raise DecodeError(f"{state.market}: the oracle returned {len(prices)} prices for {len(assets)} assets")
        price_map = dict(zip([*assets, *sources], prices, strict=True))
        incomes = {a: int(required(results[1 + 2 * i])[0]) for i, a in enumerate(assets)}
        debts = {a: int(required(results[2 + 2 * i])[0]) for i, a in enumerate(assets)}
        stable: list[str] = []
        if state.rules.stable_debt:
            with_token = [a for a in assets if state.reserves[a].stable_debt_token != ZERO]
            for asset, answer in zip(with_token, results[1 + 2 * len(assets) :], strict=True):
                if answer and int(answer[0]):
                    stable.append(asset)
        state.update_reserves(block, incomes, debts, price_map, stable)

    # -- reconciliation -------------------------------------------------------------------

    _last_sample: Sequence[str] = ()

    def _sample(self, block: int) -> list[str]:
        self._last_sample, self._cursor = rotating_sample(
            list(self.state.accounts), self._cursor, block, self.reconcile_sample, self.reconcile_all_every
        )
        return self._last_sample

    def reconcile(self, accounts: Sequence[str] | None = None, block: int | None = None) -> list[Difference]:
        """Re-read ``accounts`` (default: all followed) in full through the reader at ``block``
        (default: the followed block, where the reserves are) and compare exactly: balances in
        every reserve, configuration, eMode, and the local HF / totals against
        ``getUserAccountData``. Every difference is returned, counted and logged, and the
        chain's state replaces the local one."""
        state = self.state
        at = state.block if block is None else block
        wanted = sorted(state.accounts) if accounts is None else list(accounts)
        if not wanted:
            return []
        if not state.stable_assets <= self._reader_stable:  # 3.0 / 3.1: the reader reads stable debt of
            self.reader.read_reserves(at)  # the reserves its last read_reserves found with any
            self._reader_stable = state.stable_assets
        differences: list[Difference] = []
        read_all = not getattr(self.reader, "used_reserves_only", False)
        for position in self.reader.read_positions(wanted, tuple(state.reserves.values()), at, account_data=True):
            config = position.user_configuration  # the reader read the reserves this bitmap names
            read = frozenset(r.asset for r in state.reserves.values() if (config >> (2 * r.reserve_id)) & 3)
            chain = ChainAccount(
                AccountState.of_position(position),
                None if read_all else read,
                (
                    position.total_collateral_base, position.total_debt_base, position.available_borrows_base,
                    position.current_liquidation_threshold, position.ltv, position.health_factor,
                ),
            )  # fmt: skip
            differences += self._note(state.compare(chain, at, "reconcile"))
            state.replace_account(chain)
        return differences

    def _note(self, differences: list[Difference]) -> list[Difference]:
        return note_differences(self.state.market, differences, self.difference_counts, self.differences)
