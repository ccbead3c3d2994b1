"""The followed state of one Aave V3 market: ONE home of "what does this account hold now".

Exact integers only: per reserve the configuration, the normalized indexes and the oracle price
at the followed block (:class:`~monitor.models.Reserve`), the eMode categories; per account the
scaled aToken and variable-debt balances per reserve, the user-configuration bitmap, the eMode
category (and, before 3.2, the stable debt as read: it accrues at the user's own rate, so an
account holding any is re-read every block instead of guessed).

:meth:`FollowedMarket.apply` updates the accounts from the market's logs in chain order
(block, logIndex), as the tokens themselves do:

- 3.0-3.4: a token ``Mint`` / ``Burn`` names the amount at ``index`` (``value -/+
  balanceIncrease``) and the token moved ``amount.rayDiv(index)`` (half up) scaled units;
- 3.5+: the Pool passed the scaled amount and the event names ``balance(scaled + delta, index) -
  balance(scaled, index)`` (aToken ``rayMulFloor``, debt ``rayMulCeil``); both are strictly
  increasing in ``scaled`` (index >= 1 ray), so the delta is the unique integer that reproduces
  the event from the local scaled balance; when none does, the account is marked dirty (re-read),
  never guessed;
- ``BalanceTransfer`` carries the scaled amount in every revision;
- the collateral bits follow ``ReserveUsedAsCollateralEnabled`` / ``Disabled`` (every revision
  emits them whenever the bit changes); the borrowing bit, which has no event, is set by a debt
  mint and cleared as the Pool clears it: from 3.4 when the burn leaves no scaled debt
  (``noMoreDebt``; a liquidation of a reserve without debt also clears it), before 3.4 when the
  repaid or liquidated amount equals the whole debt (``stableDebt + variableDebt - paybackAmount
  == 0`` / ``userTotalDebt == actualDebtToLiquidate``);
- ``UserEModeSet`` sets the category.

Health factors are recomputed locally with :func:`monitor.risk.health.account_data` under the
Pool revision's rules at the current reserve state. :meth:`FollowedMarket.compare` returns every
field where the local state and a chain read differ (:class:`Difference`); the caller then
replaces the local account with the chain's (:meth:`FollowedMarket.replace_account`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from eth_utils import to_checksum_address

from monitor.chain.logs import Log
from monitor.models import AssetLeg, EModeCategory, MarketSnapshot, Position, Reserve
from monitor.positions import aave_events as ev
from monitor.positions.base import Difference
from monitor.protocols.aave_revisions import AaveRules, a_token_balance, rules_for, variable_debt_balance
from monitor.risk.health import AccountData, account_data
from monitor.wadray import RAY, ray_div, ray_mul_ceil, ray_mul_floor

ZERO = "0x0000000000000000000000000000000000000000"
NO_MORE_DEBT_REVISION = 8  # v3.4.0 BorrowLogic / LiquidationLogic: setBorrowing(false) iff the burn leaves 0


@dataclass(slots=True)
class AccountState:
    """What one account holds in the market (non-zero balances only), exact."""

    account: str  # checksummed
    emode: int = 0
    configuration: int = 0
    collateral: dict[str, int] = field(default_factory=dict)  # asset -> scaled aToken balance
    debt: dict[str, int] = field(default_factory=dict)  # asset -> scaled variable debt
    stable: dict[str, int] = field(default_factory=dict)  # asset -> stable debt balance (3.0 / 3.1)

    def copy(self) -> AccountState:
        return AccountState(
            self.account, self.emode, self.configuration, dict(self.collateral), dict(self.debt), dict(self.stable)
        )

    def held(self) -> set[str]:
        return {a for book in (self.collateral, self.debt, self.stable) for a, v in book.items() if v}

    @classmethod
    def of_position(cls, position: Position) -> AccountState:
        """The state a reader's :class:`~monitor.models.Position` describes."""
        return cls(
            to_checksum_address(position.account),
            position.emode_category,
            position.user_configuration,
            {leg.asset: leg.scaled_collateral for leg in position.legs if leg.scaled_collateral},
            {leg.asset: leg.scaled_variable_debt for leg in position.legs if leg.scaled_variable_debt},
            {leg.asset: leg.stable_debt for leg in position.legs if leg.stable_debt},
        )


@dataclass(frozen=True, slots=True)
class ChainAccount:
    """An account as read from the chain at one block: its state over ``assets`` (the reserves
    read; ``None`` = all) and, when read, ``getUserAccountData``."""

    state: AccountState
    assets: frozenset[str] | None
    account_data: tuple[int, int, int, int, int, int] | None  # collateral, debt, available, LT, LTV, HF


def scaled_delta(amount: int, debt: bool, scaled_before: int, index: int, rules: AaveRules) -> int | None:
    """The scaled change a token made when its event names the signed ``amount`` at ``index``
    (``TokenMint.amount`` / ``TokenBurn.amount``); ``None`` when no integer reproduces it
    (3.5+ only: the local balance is not the chain's)."""
    if amount == 0:
        return 0
    if rules.rounding != "v35":  # ScaledBalanceTokenBase: amount.rayDiv(index), half up
        scaled = ray_div(abs(amount), index)
        return scaled if amount > 0 else -scaled
    balance = ray_mul_ceil if debt else ray_mul_floor  # TokenMath.getVTokenBalance / getATokenBalance
    target = balance(scaled_before, index) + amount
    if target < 0:
        return None
    guess = target * RAY // index
    for candidate in (guess, guess + 1, guess - 1):
        if candidate >= 0 and balance(candidate, index) == target:
            return candidate - scaled_before
    return None


class FollowedMarket:
    """The followed state of one Aave V3 market, from one full read onwards."""

    def __init__(self, snapshot: MarketSnapshot, *, configurator: str = "", discover: bool = False) -> None:
        self.market = snapshot.market
        self.chain_id = snapshot.chain_id
        self.block = snapshot.block
        self.addresses = dict(snapshot.addresses)
        self.configurator = to_checksum_address(configurator) if configurator else ""
        self.discover = discover
        self.accounts: dict[str, AccountState] = {}
        self.touched: dict[int, set[str]] = defaultdict(set)  # block -> followed accounts its events touched
        self.named: dict[str, set[str]] = defaultdict(set)  # account -> assets its events named since the last read
        self.dirty: set[str] = set()  # accounts whose events could not be applied exactly
        self.discovered: set[str] = set()  # new borrowers (``discover``), to be read in full
        self.needs_refresh = False  # a PoolConfigurator event: reserves / eMode categories changed
        self.needs_resync = False  # a PoolAddressesProvider event: read the whole market again
        self.stored: dict[str, ev.ReserveDataUpdated] = {}  # asset -> the last stored indexes and rates
        self.kept_from = snapshot.block + 1  # ``touched`` is complete from this block on (unwind window)
        self.changed_at: list[int] = []  # blocks with a PoolConfigurator event
        self.stable_assets: frozenset[str] = frozenset()
        self.events_applied = 0
        self.inexact = 0  # events that marked an account dirty
        self.set_market(snapshot.reserves, snapshot.emode_categories, snapshot.base_currency_unit, snapshot.revision)
        for position in snapshot.positions:
            self.accounts[to_checksum_address(position.account)] = AccountState.of_position(position)

    # -- market ---------------------------------------------------------------------------

    def set_market(
        self, reserves: Sequence[Reserve], categories: Sequence[EModeCategory], base_currency_unit: int, revision: int
    ) -> None:
        """Reserves, eMode categories and Pool revision as read (the full read or a refresh)."""
        self.revision = revision
        self.rules = rules_for(revision) if revision else rules_for(1)
        self.base_currency_unit = base_currency_unit
        self.reserves: dict[str, Reserve] = {r.asset: r for r in reserves}
        # the leg of each reserve an account does not use, in the reserves' order (shared: legs are frozen)
        self._zero_legs = tuple(AssetLeg(r.asset, r.symbol, 0, 0, 0, 0, 0, False) for r in reserves)
        self._leg_index = {r.asset: i for i, r in enumerate(reserves)}
        self._asset_of_id = {r.reserve_id: r.asset for r in reserves}
        self.categories: dict[int, EModeCategory] = {c.id: c for c in categories}
        self.price_sources: dict[str, int] = {}
        self._prices = {r.asset: r.price for r in reserves}
        self.watched: dict[str, ev.Watched] = {self.addresses["pool"].lower(): ev.Watched("pool")}
        for r in reserves:
            self.watched[r.a_token.lower()] = ev.Watched("a_token", r.asset)
            self.watched[r.variable_debt_token.lower()] = ev.Watched("variable_debt_token", r.asset)
        if self.configurator:
            self.watched.setdefault(self.configurator.lower(), ev.Watched("configurator"))
        provider = self.addresses.get("pool_addresses_provider")
        if provider:
            self.watched.setdefault(provider.lower(), ev.Watched("provider"))
        self.needs_refresh = False

    def watched_addresses(self) -> list[str]:
        """Every contract whose logs the market's one ``eth_getLogs`` asks for."""
        return [to_checksum_address(a) for a in self.watched]

    def price_source_addresses(self) -> list[str]:
        """Before 3.2: the eMode price sources the oracle must price too."""
        if not self.rules.emode_price_source:
            return []
        return sorted({c.price_source for c in self.categories.values() if int(c.price_source, 16)})

    def update_reserves(
        self,
        block: int,
        incomes: Mapping[str, int],
        debt_indexes: Mapping[str, int],
        prices: Mapping[str, int],
        stable_assets: Iterable[str] = (),
    ) -> None:
        """The reserves' normalized indexes and prices at ``block`` (and the eMode price sources'
        prices in ``prices``); the reserves with stable debt (3.0 / 3.1)."""
        self.reserves = {
            a: replace(r, liquidity_index=incomes[a], variable_borrow_index=debt_indexes[a], price=prices[a])
            for a, r in self.reserves.items()
        }
        self.price_sources = {s: prices[s] for s in self.price_source_addresses() if s in prices}
        self._prices = {a: r.price for a, r in self.reserves.items()} | self.price_sources
        self.stable_assets = frozenset(stable_assets)
        self.block = block

    # -- events ---------------------------------------------------------------------------

    def apply(self, logs: Sequence[Log]) -> set[str]:
        """Decode ``logs`` (of the watched contracts) and apply them in (block, logIndex) order;
        returns the followed accounts they touched."""
        return self.apply_events(ev.decode_logs(logs, self.watched))

    def apply_events(self, events: Sequence[ev.AaveEvent]) -> set[str]:
        touched: set[str] = set()
        for event in sorted(events, key=lambda e: e.order):
            self.events_applied += 1
            for who in ev.user_accounts(event):
                if who in self.accounts:
                    touched.add(who)
                    self.touched[event.block].add(who)
            self._apply(event)
        return touched

    def touched_accounts(self, block: int) -> set[str]:
        """The followed accounts the events of ``block`` touched."""
        return set(self.touched.get(block, ()))

    def forget_touched(self, before: int) -> None:
        """Keep what each block touched only from ``before`` on (the unwind window)."""
        for block in [b for b in self.touched if b < before]:
            del self.touched[block]
        self.kept_from = max(self.kept_from, before)
        self.changed_at = [b for b in self.changed_at if b >= before]

    def unwind(self, to_block: int) -> set[str] | None:
        """Forget the blocks after ``to_block`` (a reorg replaced them): every account their
        events touched is marked dirty (read again, exactly, at the next block), a market change
        among them asks for a refresh; returns those accounts, or ``None`` when the window kept
        does not reach back to ``to_block`` (then only a full read is right)."""
        if to_block >= self.block:
            return set()
        if to_block + 1 < self.kept_from:
            return None
        dropped = [b for b in self.touched if b > to_block]
        accounts: set[str] = set()
        for block in dropped:
            accounts |= self.touched.pop(block)
        accounts |= self.discovered
        self.dirty |= accounts & set(self.accounts)
        if any(b > to_block for b in self.changed_at):
            self.needs_refresh = True
        self.changed_at = [b for b in self.changed_at if b <= to_block]
        self.needs_resync = False
        self.block = to_block
        return accounts

    def _mark_dirty(self, account: str) -> None:
        self.dirty.add(account)
        self.inexact += 1

    def _bit(self, asset: str) -> int:
        return self.reserves[asset].reserve_id * 2

    def _apply(self, event: ev.AaveEvent) -> None:
        if isinstance(event, ev.TokenMint | ev.TokenBurn):
            self._apply_token(event)
        elif isinstance(event, ev.BalanceTransfer):
            self._apply_transfer(event)
        elif isinstance(event, ev.CollateralFlag):
            acct = self.accounts.get(event.user)
            if acct is not None and event.reserve in self.reserves:
                self.named[acct.account].add(event.reserve)
                bit = 1 << (self._bit(event.reserve) + 1)
                acct.configuration = acct.configuration | bit if event.enabled else acct.configuration & ~bit
        elif isinstance(event, ev.UserEModeSet):
            acct = self.accounts.get(event.user)
            if acct is not None:
                acct.emode = event.category
        elif isinstance(event, ev.Borrow):
            acct = self.accounts.get(event.on_behalf_of)
            if acct is None:
                if self.discover:
                    self.discovered.add(event.on_behalf_of)
                    self.touched[event.block].add(event.on_behalf_of)  # an unwind past it reads it again
                return
            self.named[acct.account].add(event.reserve)
            if event.reserve in self.reserves:
                acct.configuration |= 1 << self._bit(event.reserve)
            if event.rate_mode == ev.STABLE_RATE_MODE:
                self._mark_dirty(acct.account)
        elif isinstance(event, ev.Repay):
            acct = self.accounts.get(event.user)
            if acct is not None:
                self.named[acct.account].add(event.reserve)
                if acct.stable.get(event.reserve):
                    self._mark_dirty(acct.account)
        elif isinstance(event, ev.LiquidationCall):
            acct = self.accounts.get(event.user)
            if acct is not None:
                self.named[acct.account].update((event.collateral_asset, event.debt_asset))
                if acct.stable.get(event.debt_asset):
                    self._mark_dirty(acct.account)
                elif (
                    self.rules.revision >= NO_MORE_DEBT_REVISION
                    and not acct.debt.get(event.debt_asset)
                    and event.debt_asset in self.reserves
                ):
                    acct.configuration &= ~(1 << self._bit(event.debt_asset))
            liquidator = self.accounts.get(event.liquidator)
            if liquidator is not None:
                self.named[liquidator.account].add(event.collateral_asset)
        elif isinstance(event, ev.StableRateChange):
            if event.user in self.accounts:
                self._mark_dirty(event.user)
        elif isinstance(event, ev.Supply | ev.MintUnbacked):
            if event.on_behalf_of in self.accounts:
                self.named[event.on_behalf_of].add(event.reserve)
        elif isinstance(event, ev.Withdraw):
            if event.user in self.accounts:
                self.named[event.user].add(event.reserve)
        elif isinstance(event, ev.DeficitCreated):
            if event.user in self.accounts:
                self.named[event.user].add(event.debt_asset)
        elif isinstance(event, ev.ReserveDataUpdated):
            self.stored[event.reserve] = event
        elif isinstance(event, ev.MarketChanged):
            self.changed_at.append(event.block)
            if event.resync:
                self.needs_resync = True
            else:
                self.needs_refresh = True

    def _apply_token(self, event: ev.TokenMint | ev.TokenBurn) -> None:
        acct = self.accounts.get(event.account)
        if acct is None or event.asset not in self.reserves:
            return
        self.named[acct.account].add(event.asset)
        book = acct.debt if event.debt else acct.collateral
        before = book.get(event.asset, 0)
        delta = scaled_delta(event.amount, event.debt, before, event.index, self.rules)
        if delta is None or before + delta < 0:
            self._mark_dirty(acct.account)
            return
        after = before + delta
        if after:
            book[event.asset] = after
        else:
            book.pop(event.asset, None)
        if not event.debt:
            return
        bit = 1 << self._bit(event.asset)
        if delta > 0:
            acct.configuration |= bit
        elif delta < 0:
            if self.rules.revision >= NO_MORE_DEBT_REVISION:
                cleared = after == 0
            else:  # stableDebt + variableDebt - paybackAmount == 0 (stable holders are re-read)
                cleared = not acct.stable.get(event.asset) and -event.amount == variable_debt_balance(
                    before, event.index, self.rules
                )
            if cleared:
                acct.configuration &= ~bit

    def _apply_transfer(self, event: ev.BalanceTransfer) -> None:
        if event.asset not in self.reserves:
            return
        sender = self.accounts.get(event.sender)
        if sender is not None:
            self.named[sender.account].add(event.asset)
            have = sender.collateral.get(event.asset, 0)
            if have < event.scaled:
                self._mark_dirty(sender.account)
            elif have == event.scaled:
                sender.collateral.pop(event.asset, None)
            else:
                sender.collateral[event.asset] = have - event.scaled
        recipient = self.accounts.get(event.recipient)
        if recipient is not None:
            self.named[recipient.account].add(event.asset)
            if event.scaled:
                recipient.collateral[event.asset] = recipient.collateral.get(event.asset, 0) + event.scaled

    # -- reads, comparison ----------------------------------------------------------------

    def assets_used(self, account: str) -> set[str]:
        """The reserves ``account`` uses: its configuration bits, its non-zero balances and the
        reserves its events named since it was last read."""
        acct = self.accounts.get(account)
        if acct is None:
            return set(self.reserves)
        used = acct.held() | (self.named.get(account, set()) & set(self.reserves))
        config = acct.configuration
        for asset, reserve in self.reserves.items():
            if (config >> (2 * reserve.reserve_id)) & 3:
                used.add(asset)
        return used

    def compare(
        self, chain: ChainAccount, block: int, source: str, *, stable_as_read: bool = False
    ) -> list[Difference]:
        """Every field where the local account differs from ``chain`` (over the reserves read);
        the HF and totals too when ``getUserAccountData`` was read. A missing local account is
        compared as empty. ``stable_as_read``: the stable debt (which accrues at the user's own
        rate, 3.0 / 3.1) is not compared but taken from ``chain`` for the HF."""
        account = chain.state.account
        local = self.accounts.get(account) or AccountState(account)
        if stable_as_read:
            local = local.copy()
            for asset in chain.assets if chain.assets is not None else self.reserves:
                local.stable.pop(asset, None)
                if chain.state.stable.get(asset):
                    local.stable[asset] = chain.state.stable[asset]
        out: list[Difference] = []

        def differ(name: str, mine: int, theirs: int) -> None:
            if mine != theirs:
                out.append(Difference(account, name, mine, theirs, block, source))

        assets = chain.assets if chain.assets is not None else frozenset(self.reserves)
        for asset in sorted(assets):
            symbol = self.reserves[asset].symbol if asset in self.reserves else asset
            differ(f"collateral[{symbol}]", local.collateral.get(asset, 0), chain.state.collateral.get(asset, 0))
            differ(f"debt[{symbol}]", local.debt.get(asset, 0), chain.state.debt.get(asset, 0))
            differ(f"stable[{symbol}]", local.stable.get(asset, 0), chain.state.stable.get(asset, 0))
        differ("configuration", local.configuration, chain.state.configuration)
        differ("emode", local.emode, chain.state.emode)
        if chain.account_data is not None and account in self.accounts:
            data = self._account_data(local)
            total_collateral, total_debt, _available, _lt, _ltv, hf = chain.account_data
            differ("health_factor", data.health_factor, hf)
            differ("total_collateral_base", data.total_collateral_base, total_collateral)
            differ("total_debt_base", data.total_debt_base, total_debt)
        return out

    def replace_account(self, chain: ChainAccount) -> None:
        """Take the chain's state for the reserves read (all of them when ``assets`` is None)."""
        account = chain.state.account
        local = self.accounts.get(account)
        if local is None or chain.assets is None:
            self.accounts[account] = chain.state.copy()
        else:
            for book, theirs in (
                (local.collateral, chain.state.collateral),
                (local.debt, chain.state.debt),
                (local.stable, chain.state.stable),
            ):
                for asset in chain.assets:
                    if theirs.get(asset):
                        book[asset] = theirs[asset]
                    else:
                        book.pop(asset, None)
            local.configuration = chain.state.configuration
            local.emode = chain.state.emode
        self.dirty.discard(account)
        self.named.pop(account, None)

    def unread_bits(self, chain: ChainAccount) -> bool:
        """Whether the chain's configuration names a reserve the read did not cover."""
        if chain.assets is None:
            return False
        config = chain.state.configuration
        return any(
            (config >> (2 * r.reserve_id)) & 3 and asset not in chain.assets for asset, r in self.reserves.items()
        )

    def stable_holders(self) -> set[str]:
        """Accounts holding stable debt (3.0 / 3.1): it accrues at each user's own rate, so
        they are re-read every block."""
        return {a for a, s in self.accounts.items() if any(s.stable.values())}

    # -- health factors -------------------------------------------------------------------

    def _legs(self, acct: AccountState) -> tuple[list[AssetLeg], list[Reserve]]:
        legs: list[AssetLeg] = []
        reserves: list[Reserve] = []
        config = acct.configuration
        for asset in sorted(acct.held() | self._configured(config)):
            reserve = self.reserves.get(asset)
            if reserve is None:
                continue
            scaled_c = acct.collateral.get(asset, 0)
            scaled_d = acct.debt.get(asset, 0)
            legs.append(
                AssetLeg(
                    asset=asset,
                    symbol=reserve.symbol,
                    scaled_collateral=scaled_c,
                    collateral=a_token_balance(scaled_c, reserve.liquidity_index, self.rules),
                    scaled_variable_debt=scaled_d,
                    variable_debt=variable_debt_balance(scaled_d, reserve.variable_borrow_index, self.rules),
                    stable_debt=acct.stable.get(asset, 0),
                    used_as_collateral=bool((config >> (2 * reserve.reserve_id + 1)) & 1),
                )
            )
            reserves.append(reserve)
        return legs, reserves

    def _configured(self, config: int) -> set[str]:
        """The reserves whose configuration bits (borrowing or collateral) are set in ``config``."""
        out: set[str] = set()
        while config:
            low = config & -config
            asset = self._asset_of_id.get((low.bit_length() - 1) >> 1)
            if asset is not None:
                out.add(asset)
            config ^= low
        return out

    def account_data(self, account: str) -> AccountData:
        """``getUserAccountData`` of ``account`` recomputed locally at the current reserve state."""
        return self._account_data(self.accounts[account])

    def _account_data(self, acct: AccountState) -> AccountData:
        return self._data_of(acct, *self._legs(acct))

    def _data_of(self, acct: AccountState, legs: list[AssetLeg], reserves: list[Reserve]) -> AccountData:
        return account_data(legs, reserves, acct.emode, acct.configuration, self.categories, self._prices, self.rules)

    def health_factors(self) -> dict[str, int]:
        """Every followed account's HF (WAD; MAX_UINT256 without debt), recomputed locally."""
        return {a: self.account_data(a).health_factor for a in self.accounts}

    def position(self, account: str) -> Position:
        """The account as a :class:`~monitor.models.Position` (local HF and totals), for the
        consumers that speak the reader's models (store, alerts, risk)."""
        acct = self.accounts[account]
        legs, reserves = self._legs(acct)
        data = self._data_of(acct, legs, reserves)  # the legs built once, the HF computed once
        every = list(self._zero_legs)  # one leg a reserve, as the readers give
        for leg in legs:
            every[self._leg_index[leg.asset]] = leg
        return Position(
            market=self.market,
            account=account,
            block=self.block,
            health_factor=data.health_factor,
            total_collateral_base=data.total_collateral_base,
            total_debt_base=data.total_debt_base,
            available_borrows_base=data.available_borrows_base,
            current_liquidation_threshold=data.current_liquidation_threshold,
            ltv=data.ltv,
            emode_category=acct.emode,
            user_configuration=acct.configuration,
            legs=tuple(every),
        )

    def snapshot(self, block_hash: str = "", timestamp: int = 0) -> MarketSnapshot:
        """The followed state as a :class:`~monitor.models.MarketSnapshot` at :attr:`block`."""
        return MarketSnapshot(
            market=self.market,
            protocol="aave_v3",
            chain_id=self.chain_id,
            block=self.block,
            block_hash=block_hash,
            timestamp=timestamp,
            base_currency_unit=self.base_currency_unit,
            reserves=tuple(self.reserves.values()),
            emode_categories=tuple(self.categories.values()),
            positions=tuple(self.position(a) for a in self.accounts),
            addresses=dict(self.addresses),
            revision=self.revision,
        )
