"""Following one Compound III (Comet) market block by block: accounts from events, indices read.

After ONE full read (:meth:`CometFollower.start`: the market through
:meth:`~monitor.protocols.compound_v3.CompoundV3Reader.read_state`, every followed account's
``userBasic`` and collateral balances), each :meth:`CometFollower.step` costs, in steady state:

1. ONE ``eth_getLogs`` on the Comet (every event of :mod:`monitor.positions.comet_events`);
2. ONE Multicall3 ``eth_call`` at the block: ``totalsBasic()`` (stored indices, principal totals,
   ``lastAccrualTime``), every price Comet uses (``getPrice`` of the base and collateral feeds),
   the block's timestamp (Multicall3 ``getCurrentBlockTimestamp``), and the accounts to read:
   those the events touched (``verify_touched``: the event-applied account is compared with the
   chain's, each difference counted, the chain's taken), the ones to read in full (new, unwound,
   the sender of a lone base ``Transfer(src, 0)``, which may have gone into debt) and the
   reconciliation sample — reconciliation rides in the same ``eth_call``.

An ``Upgraded`` event of the Comet's proxy (a Configurator deployment: new asset infos, feeds or
rate model) makes that step a full read again.

Events are applied exactly with Comet's integer rules (``presentValue`` / ``principalValue``,
borrow rounding up) at the block's indices: every base movement accrues first, so the indices
all of a block's base events used are the stored indices at the end of the block
(``lastAccrualTime`` == the block's timestamp); in a catch-up range the earlier blocks' indices
are unknown and those accounts are read instead.

Comet emits NO event for the borrow halves of a base ``transfer``: a debt that grows (the
sender had no supply left) or is partly repaid (the recipient still owes) by a transfer names
no one. Every borrower once held collateral (Comet checks it at each borrow), so an account
discovery from the market's deployment (``SupplyCollateral`` / ``TransferCollateral`` name it)
follows every borrower; then the followed borrow principals sum to ``totalBorrowBase``, read
every block. :meth:`CometFollower.start` finds out whether they do (:attr:`totals_checked`);
while they do, a block whose sum differs reads every account that may owe at once (``userBasic``
only, one more ``eth_call``; the differences found are returned with source ``"totals"``). When
the followed set is not every borrower (an explicit account list), the check is off; it turns on
at the first block whose followed borrow principals sum to the total (e.g. after accounts added
by a historical discovery were read, or a full reconciliation). A transfer between two borrowers
whose principal changes cancel exactly leaves the total unchanged: only reconciliation finds it
(the protocol's limit).

With ``discover``, an account an event names that may now be a borrower (``Withdraw`` src, a
lone ``Transfer(src, 0)``, ``SupplyCollateral`` dst, ``TransferCollateral`` to, ``AbsorbDebt``)
is followed from then on (read in full in that block).

Every health factor then comes from the local principal and balances with the reader's own
exact math (:meth:`CompoundV3Reader._position`): the debt at the indices accrued to the block's
timestamp (what ``absorb`` sees) and at the stored ones (what ``isLiquidatable`` answers now).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from eth_utils import to_checksum_address

from monitor.chain.abi import fn
from monitor.chain.blocks import BlockRef, block_ref
from monitor.chain.logs import Log, iter_log_chunks
from monitor.chain.multicall import Call
from monitor.errors import DecodeError
from monitor.models import MarketSnapshot, Position
from monitor.positions import comet_events as ev
from monitor.positions.base import Difference, StepReport, note_differences, rotating_sample
from monitor.protocols.base import required
from monitor.protocols.compound_v3 import (
    BASE_INDEX_SCALE,
    BASE_TOKEN_PRICE_FEED,
    COLLATERAL_BALANCE_OF,
    GET_PRICE,
    PROTOCOL,
    TOTALS_BASIC,
    USER_BASIC,
    CometState,
    CometTotals,
    CompoundV3Reader,
    accrued_indices,
    present_value,
)

log = logging.getLogger("liqmon")
GET_CURRENT_BLOCK_TIMESTAMP = fn("getCurrentBlockTimestamp()", "uint256")  # Multicall3
TOUCHED_KEPT_BLOCKS = 256
# events after which the account they name may be a borrower (the reader's discovery set)
BORROWER_KINDS = frozenset({"withdraw", "transfer_out", "supply_collateral", "transfer_collateral", "absorb_debt"})


@dataclass(slots=True)
class CometAccount:
    """``userBasic(account)`` (principal, assetsIn) and the collateral balances, exact."""

    principal: int = 0
    assets_in: int = 0
    balances: dict[str, int] = field(default_factory=dict)  # asset -> balance (non-zero only)

    def copy(self) -> CometAccount:
        return CometAccount(self.principal, self.assets_in, dict(self.balances))

    def is_position(self) -> bool:
        """What the reader keeps in a snapshot: a borrower or a collateral holder."""
        return self.principal < 0 or any(self.balances.values())


# -- Comet's integer rules (CometCore) ------------------------------------------------------


def present(principal: int, supply_index: int, borrow_index: int) -> int:
    """CometCore.presentValue (signed)."""
    if principal >= 0:
        return present_value(principal, supply_index)
    return -present_value(-principal, borrow_index)


def principal_of(value: int, supply_index: int, borrow_index: int) -> int:
    """CometCore.principalValue (signed): supply rounds down, borrow up."""
    if value >= 0:
        return value * BASE_INDEX_SCALE // supply_index
    return -((-value * BASE_INDEX_SCALE + borrow_index - 1) // borrow_index)


def supply_principal_of(present_supply: int, supply_index: int) -> int | None:
    """The supply principal ``s`` with ``presentValueSupply(index, s) == present_supply`` (unique
    for an index >= 1e15), or None when there is none."""
    s = (present_supply * BASE_INDEX_SCALE + supply_index - 1) // supply_index
    return s if present_value(s, supply_index) == present_supply else None


class CometFollower:
    """Follows ``accounts`` of the Comet ``reader`` reads (see the module docstring); a
    :class:`~monitor.positions.base.Follower`."""

    protocol = PROTOCOL

    def __init__(
        self,
        reader: CompoundV3Reader,
        accounts: Sequence[str],
        *,
        verify_touched: bool = True,
        reconcile_sample: int = 0,
        reconcile_all_every: int = 0,
        discover: bool = False,
    ) -> None:
        self.reader = reader
        self.client = reader.client
        self.multicall = reader.multicall
        self.comet = reader.comet
        self.verify_touched = verify_touched
        self.reconcile_sample = max(0, reconcile_sample)
        self.reconcile_all_every = max(0, reconcile_all_every)
        self.discover = discover
        self.totals_checked = False  # the followed borrow principals sum to totalBorrowBase (every borrower followed)
        self.accounts: list[str] = [to_checksum_address(a) for a in dict.fromkeys(accounts)]
        self.state: CometState | None = None
        self.timestamp = 0
        self.base_feed = ""
        self.book: dict[str, CometAccount] = {}
        self.touched: dict[int, set[str]] = {}
        self.dirty: set[str] = set()
        self.kept_from = 0
        self.inexact = 0  # events that could not be applied exactly (the account was read instead)
        self.read_instead = 0  # events whose outcome no event says (a lone base Transfer out, ...): read
        self.sweeps = 0  # blocks whose principal totals the events did not explain (everyone read)
        self.difference_counts: Counter[str] = Counter()
        self.differences: list[Difference] = []
        self._block = -1
        self._cursor = 0
        self._accrued: tuple[tuple[CometTotals, int], int] | None = None  # (totals, timestamp) -> borrow index

    # -- the Follower protocol's accessors --------------------------------------------------

    @property
    def block(self) -> int:
        return self._block

    @property
    def followed(self) -> Sequence[str]:
        return list(self.accounts)

    def add_accounts(self, accounts: Iterable[str]) -> None:
        known = set(self.accounts)
        for account in map(to_checksum_address, accounts):
            if account not in known:
                known.add(account)
                self.accounts.append(account)
                self.dirty.add(account)

    @property
    def market(self) -> CometState:
        if self.state is None:
            raise RuntimeError("CometFollower.start() must run before the state is read")
        return self.state

    @property
    def totals(self) -> CometTotals:
        totals = self.market.totals
        if totals is None:
            raise DecodeError(f"{self.reader.market}: Comet totals missing")
        return totals

    # -- the full read --------------------------------------------------------------------

    def start(self, block: BlockRef | int | str = "latest") -> CometState:
        """ONE full read of the market and every followed account at ``block``."""
        ref = block if isinstance(block, BlockRef) else block_ref(self.client, block)
        self.state = self.reader.read_state(ref.number)
        if self.state.totals is None or self.state.rates is None:
            raise DecodeError(f"{self.reader.market}: Comet totals or rate model missing")
        self.base_feed = str(required(self.multicall.run([Call(self.comet, BASE_TOKEN_PRICE_FEED)], ref.number)[0])[0])
        self.timestamp = ref.timestamp
        self.book = {}
        self.touched = {}
        self.dirty = set()
        self._block = ref.number
        self.kept_from = ref.number
        results = self.multicall.run_groups([self._account_calls(a) for a in self.accounts], ref.number)
        for account, rows in zip(self.accounts, results, strict=True):
            self._take(account, self._chain_account(account, rows))
        self.totals_checked = self._borrows_explained()
        return self.state

    # -- one block ------------------------------------------------------------------------

    def step(self, to_block: int) -> StepReport:
        """Follow from :attr:`block` + 1 to ``to_block`` (one block, or a catch-up range)."""
        if self._block < 0:
            raise RuntimeError("CometFollower.start() must run before step()")
        cpu = time.process_time()
        before = Counter(self.client.method_counts)
        first = self._block + 1
        if to_block < first:
            return StepReport(first, to_block, 0, 0, (), (), 0, (), 0, {}, 0.0)
        logs = self.logs(first, to_block)
        events = ev.decode_logs(logs, self.comet)
        if any(e.kind == "upgraded" for e in events):  # a new implementation: read everything again
            self.start(to_block)
            by_method = {m: n - before.get(m, 0) for m, n in Counter(self.client.method_counts).items()
                         if n - before.get(m, 0)}  # fmt: skip
            return StepReport(first, to_block, len(logs), len(events), (), tuple(self.accounts), 0, (),
                              sum(by_method.values()), by_method, time.process_time() - cpu, resynced=True)  # fmt: skip
        followed = set(self.accounts)
        touched: set[str] = set()
        discovered: list[str] = []
        skip: set[str] = set(self.dirty)  # read in full, their events not applied
        for event in events:
            for account in (event.account, event.other if event.kind == "transfer_collateral" else ""):
                if not account or account == ev.ZERO:
                    continue
                if account not in followed and self.discover and event.kind in BORROWER_KINDS:
                    followed.add(account)
                    self.accounts.append(account)
                    discovered.append(account)
                if account not in followed:
                    continue
                self.touched.setdefault(event.block, set()).add(account)
                touched.add(account)
                lone_out = event.kind == "transfer_out" and not event.companion
                if event.kind == "transfer_both" or lone_out or (event.moves_base and event.block != to_block):
                    skip.add(account)  # its new principal does not follow from the events alone
                    self.read_instead += 1
        skip |= set(discovered)
        sample = [a for a in self._sample(to_block) if a not in skip]
        verify = sorted(touched - skip - set(sample)) if self.verify_touched else []
        plan = [*sorted(skip), *sample, *verify]
        groups = [self._market_calls()] + [self._account_calls(a) for a in plan]
        results = self.multicall.run_groups(groups, to_block)
        self._apply_market(results[0])
        chain = {a: self._chain_account(a, rows) for a, rows in zip(plan, results[1:], strict=True)}
        late: set[str] = set()  # accounts an event could not be applied to exactly
        for event in events:
            self._apply(event, followed, skip, late)
        differences: list[Difference] = []
        compared = set(sample) | set(verify)
        for account, theirs in chain.items():
            if account in compared and account not in late:
                source = "reconcile" if account in sample else "touched"
                differences += self._note(self._compare(account, theirs, to_block, source))
            self._take(account, theirs)
        self.dirty = late - set(chain)  # read at the next step
        self._block = to_block
        differences += self._check_totals(to_block)
        self._forget(to_block - TOUCHED_KEPT_BLOCKS)
        after = Counter(self.client.method_counts)
        by_method = {m: after[m] - before.get(m, 0) for m in after if after[m] - before.get(m, 0)}
        return StepReport(
            first, to_block, len(logs), len(events), tuple(sorted(touched)), tuple(sorted(chain)), len(sample),
            tuple(differences), sum(by_method.values()), by_method, time.process_time() - cpu,
            discovered=tuple(discovered),
        )  # fmt: skip

    def logs(self, first: int, last: int) -> list[Log]:
        """The Comet's logs in ``[first, last]``: ONE ``eth_getLogs`` (more only when the node
        limits the range)."""
        topics: list[str | list[str] | None] = [list(ev.WATCHED_TOPICS)]
        out: list[Log] = []
        for _s, _e, chunk in iter_log_chunks(self.client, self.comet, topics, first, last, self.reader.log_span):
            out += chunk
        return out

    # -- applying events ------------------------------------------------------------------

    def _apply(self, event: ev.CometEvent, followed: set[str], full: set[str], late: set[str]) -> None:
        """Apply ``event`` to the followed accounts it changes that are not read in full this step."""
        kind = event.kind
        if event.companion or kind in ("buy_collateral", "withdraw_reserves", "upgraded"):
            return
        if kind == "transfer_collateral":
            for account, delta in ((event.account, -event.amount), (event.other, event.amount)):
                if account in followed and account not in full:
                    self._move_collateral(account, event.asset, delta, late)
            return
        account = event.account
        if account not in followed or account in full:
            return
        totals = self.totals
        s_index, b_index = totals.base_supply_index, totals.base_borrow_index
        if event.moves_base and totals.last_accrual_time != self.timestamp:
            self._inexact(account, late)  # no accrual at this block: the index its events used is unknown
            return
        if kind in ("supply_collateral", "withdraw_collateral", "absorb_collateral"):
            self._move_collateral(account, event.asset, event.amount if kind == "supply_collateral" else -event.amount,
                                  late)  # fmt: skip
            return
        acct = self.book.setdefault(account, CometAccount())
        if kind == "supply":
            acct.principal = principal_of(present(acct.principal, s_index, b_index) + event.amount, s_index, b_index)
        elif kind == "withdraw":
            acct.principal = principal_of(present(acct.principal, s_index, b_index) - event.amount, s_index, b_index)
        elif kind == "transfer_in":
            added = supply_principal_of(event.amount, s_index)
            if added is None:
                self._inexact(account, late)
                return
            acct.principal = max(acct.principal, 0) + added
        elif kind == "absorb_debt":
            acct.principal = principal_of(present(acct.principal, s_index, b_index) + event.amount, s_index, b_index)
            acct.assets_in = 0
        self._drop_if_empty(account)

    def _move_collateral(self, account: str, asset: str, delta: int, late: set[str]) -> None:
        info = next((x for x in self.market.assets if x.asset == asset), None)
        acct = self.book.setdefault(account, CometAccount())
        before = acct.balances.get(asset, 0)
        after = before + delta
        if info is None or after < 0:
            self._inexact(account, late)
            return
        if after:
            acct.balances[asset] = after
        else:
            acct.balances.pop(asset, None)
        flag = 1 << info.offset
        if before == 0 and after:
            acct.assets_in |= flag
        elif before and after == 0:
            acct.assets_in &= ~flag
        self._drop_if_empty(account)

    def _inexact(self, account: str, late: set[str]) -> None:
        late.add(account)
        self.inexact += 1

    def _drop_if_empty(self, account: str) -> None:
        acct = self.book.get(account)
        if acct is not None and not acct.principal and not acct.assets_in and not acct.balances:
            del self.book[account]

    # -- the block's ONE batched read -----------------------------------------------------

    def _assets(self) -> list[str]:
        return [x.asset for x in self.market.assets]

    def _market_calls(self) -> list[Call]:
        state = self.market
        feeds = [self.base_feed] + [x.price_feed for x in state.assets]
        return (
            [Call(self.comet, TOTALS_BASIC)]
            + [Call(self.comet, GET_PRICE, (f,)) for f in feeds]
            + [Call(self.multicall.address, GET_CURRENT_BLOCK_TIMESTAMP)]
        )

    def _account_calls(self, account: str) -> list[Call]:
        return [Call(self.comet, USER_BASIC, (account,))] + [
            Call(self.comet, COLLATERAL_BALANCE_OF, (account, a)) for a in self._assets()
        ]

    def _chain_account(self, account: str, rows: Sequence[tuple[Any, ...] | None]) -> CometAccount:
        basic = required(rows[0])
        balances = {a: int(required(r)[0]) for a, r in zip(self._assets(), rows[1:], strict=True)}
        return CometAccount(int(basic[0]), int(basic[3]), {a: b for a, b in balances.items() if b})

    def _apply_market(self, results: Sequence[tuple[Any, ...] | None]) -> None:
        state = self.market
        if len(results) != len(state.assets) + 3:
            raise DecodeError(f"{self.reader.market}: {len(results)} market answers for {len(state.assets)} assets")
        basic = required(results[0])[0]
        totals = CometTotals(int(basic[0]), int(basic[1]), int(basic[4]), int(basic[5]), int(basic[6]))
        prices = [int(required(r)[0]) for r in results[1 : 2 + len(state.assets)]]
        assets = tuple(replace(x, price=p) for x, p in zip(state.assets, prices[1:], strict=True))
        self.state = replace(state, base_price=prices[0], assets=assets, totals=totals)
        self.timestamp = int(required(results[-1])[0])

    # -- comparison, totals, reconciliation -----------------------------------------------

    def _take(self, account: str, chain: CometAccount) -> None:
        if chain.principal or chain.assets_in or chain.balances:
            self.book[account] = chain.copy()
        else:
            self.book.pop(account, None)

    def _compare(self, account: str, chain: CometAccount, block: int, source: str) -> list[Difference]:
        mine = self.book.get(account) or CometAccount()
        out: list[Difference] = []

        def differ(name: str, a: int, b: int) -> None:
            if a != b:
                out.append(Difference(account, name, a, b, block, source))

        differ("principal", mine.principal, chain.principal)
        differ("assets_in", mine.assets_in, chain.assets_in)
        for x in self.market.assets:
            differ(f"collateral[{x.symbol}]", mine.balances.get(x.asset, 0), chain.balances.get(x.asset, 0))
        return out

    def principal_sums(self) -> tuple[int, int]:
        """(sum of supply principals, sum of borrow principals) over the followed accounts."""
        supply = sum(a.principal for a in self.book.values() if a.principal > 0)
        borrow = sum(-a.principal for a in self.book.values() if a.principal < 0)
        return supply, borrow

    def _borrows_explained(self) -> bool:
        return self.principal_sums()[1] == self.totals.total_borrow_base

    def _check_totals(self, block: int) -> list[Difference]:
        """While every borrower is followed: the followed borrow principals must sum to
        ``totalBorrowBase``; if they do not, a base transfer changed a debt without an event:
        the ``userBasic`` of every account that may owe is read (one more ``eth_call``) and what
        differs is returned (source ``"totals"``)."""
        if self._borrows_explained():
            self.totals_checked = True
            return []
        if not self.totals_checked:
            return []  # not every borrower is followed (yet): nothing to learn from the total
        self.sweeps += 1
        # a base transfer moves principals only: userBasic of every account that may owe, no balances
        suspects = sorted(a for a, acct in self.book.items() if acct.principal <= 0)
        results = self.multicall.run([Call(self.comet, USER_BASIC, (a,)) for a in suspects], block)
        differences: list[Difference] = []
        for account, row in zip(suspects, results, strict=True):
            basic = required(row)
            local = self.book[account]
            chain = CometAccount(int(basic[0]), int(basic[3]), dict(local.balances))
            differences += self._note(self._compare(account, chain, block, "totals"))
            self._take(account, chain)
        self.totals_checked = self._borrows_explained()
        if not self.totals_checked:
            log.info("%s: the followed borrowers' principals %d differ from Comet's totalBorrowBase %d at block %d: "
                     "not every borrower is followed, the totals check is off until they sum up again",
                     self.reader.market, self.principal_sums()[1], self.totals.total_borrow_base, block)  # fmt: skip
        return differences

    def _sample(self, block: int) -> list[str]:
        sample, self._cursor = rotating_sample(
            list(self.accounts), self._cursor, block, self.reconcile_sample, self.reconcile_all_every
        )
        return sample

    def reconcile(self, accounts: Sequence[str] | None = None, block: int | None = None) -> list[Difference]:
        """Re-read ``accounts`` (default: all followed) at ``block`` (default: :attr:`block`) and
        compare exactly; every difference is returned, counted and logged, the chain's taken."""
        at = self._block if block is None else block
        wanted = list(self.accounts) if accounts is None else [to_checksum_address(a) for a in accounts]
        results = self.multicall.run_groups([self._account_calls(a) for a in wanted], at)
        differences: list[Difference] = []
        for account, rows in zip(wanted, results, strict=True):
            chain = self._chain_account(account, rows)
            differences += self._note(self._compare(account, chain, at, "reconcile"))
            self._take(account, chain)
        return differences

    def _note(self, differences: list[Difference]) -> list[Difference]:
        return note_differences(self.reader.market, differences, self.difference_counts, self.differences)

    # -- reorgs ---------------------------------------------------------------------------

    def _forget(self, before: int) -> None:
        for b in [b for b in self.touched if b < before]:
            del self.touched[b]
        self.kept_from = max(self.kept_from, before)

    def unwind(self, to_block: int) -> set[str]:
        """Forget the blocks after ``to_block``: the accounts their events touched are read in
        full at the next :meth:`step` (totals, prices and the timestamp are read every block);
        deeper than the kept window the whole state is read again at ``to_block``."""
        if to_block >= self._block:
            return set()
        if to_block + 1 < self.kept_from:
            self.start(to_block)
            return set(self.accounts)
        accounts: set[str] = set()
        for b in [b for b in self.touched if b > to_block]:
            accounts |= self.touched.pop(b)
        self.dirty |= accounts
        self._block = to_block
        return accounts

    # -- health factors and snapshots -----------------------------------------------------

    def position(self, account: str) -> Position | None:
        """``account`` as a :class:`~monitor.models.Position` with both HFs recomputed locally
        (None for a supplier only, as the reader)."""
        acct = self.book.get(account)
        if acct is None or not acct.is_position():
            return None
        state, totals = self.market, self.totals
        if state.rates is None:
            raise DecodeError(f"{self.reader.market}: Comet rate model missing")
        key = (totals, self.timestamp)
        if self._accrued is None or self._accrued[0] != key:
            self._accrued = (key, accrued_indices(totals, state.rates, self.timestamp)[1])
        accrued = self._accrued[1]
        owed = -acct.principal if acct.principal < 0 else 0
        balances = [acct.balances.get(x.asset, 0) for x in state.assets]
        return self.reader._position(state, account, present_value(owed, accrued),
                                     present_value(owed, totals.base_borrow_index), acct.assets_in, balances,
                                     self._block)  # fmt: skip

    def health_factors(self) -> dict[str, int]:
        """Every followed position's HF after accrual (WAD; MAX_UINT256 without debt)."""
        out: dict[str, int] = {}
        for account in self.accounts:
            p = self.position(account)
            if p is not None:
                out[account] = p.health_factor
        return out

    def snapshots(self, block_hash: str = "", timestamp: int = 0) -> list[MarketSnapshot]:
        """The followed state at :attr:`block` as the reader's one snapshot."""
        ref = BlockRef(self._block, block_hash, timestamp or self.timestamp)
        positions = [p for a in self.accounts if (p := self.position(a)) is not None]
        return [self.reader._snapshot(self.market, positions, ref)]
