"""A seeded replay of lending history for the store tests: positions changing over blocks
(supplies, borrows, repays, withdrawals, accounts leaving and joining), indexes accruing,
prices moving (a crash included, so HFs cross bands), and reorgs (blocks orphaned then
replaced, a block dropped), as a list of operations any history store can apply."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

from monitor.models import MAX_UINT256, RAY, WAD, AssetLeg, EModeCategory, MarketSnapshot, Position, Reserve
from monitor.protocols.aave_revisions import a_token_balance, rules_for, variable_debt_balance

REVISION = 10
RULES = rules_for(REVISION)
BASE = 10**8
FIRST_BLOCK = 20_000_000
FIRST_TIME = 1_720_000_000
BLOCK_TIME = 12


@dataclass(frozen=True, slots=True)
class Asset:
    address: str
    symbol: str
    decimals: int
    lt: int
    price: int


ASSETS = (
    Asset("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", "WETH", 18, 8300, 3_000 * BASE),
    Asset("0x2260FAC5E5542a773Aa44fBCfeDf7C193bc2C599", "WBTC", 8, 7800, 60_000 * BASE),
    Asset("0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "USDC", 6, 8000, BASE),
)


class HistoryStore(Protocol):
    def save_snapshot(self, snapshot: MarketSnapshot) -> object: ...

    def mark_orphaned(self, market: str, blocks: list[tuple[int, str]], reason: str) -> object: ...

    def drop_blocks(self, market: str, blocks: list[int]) -> None: ...


Op = tuple[str, object]


@dataclass(slots=True)
class _Account:
    address: str
    scaled_collateral: dict[int, int]  # asset index -> scaled aToken balance
    scaled_debt: dict[int, int]


def _address(market: int, i: int) -> str:
    from eth_utils import to_checksum_address

    return to_checksum_address(f"0x{market + 1:02x}{i:038x}")


class Replay:
    """One market's chain: call :meth:`snapshot` for each block."""

    def __init__(self, market: str, seed: int, accounts: int) -> None:
        self.market, self.seed = market, seed
        self.rng = random.Random(seed)
        self.prices = [a.price for a in ASSETS]
        self.liquidity = [RAY + 10**24 * (i + 1) for i in range(len(ASSETS))]
        self.borrow = [RAY + 3 * 10**24 * (i + 1) for i in range(len(ASSETS))]
        self.accounts = [self._new_account(seed * 1000 + i) for i in range(accounts)]
        self.next_account = accounts

    def _new_account(self, i: int) -> _Account:
        rng = self.rng
        main = rng.randrange(2)
        coll = {main: rng.randrange(1, 50) * 10 ** ASSETS[main].decimals}
        value = coll[main] * self.prices[main] // 10 ** ASSETS[main].decimals
        debt = {2: value * rng.randrange(30, 80) // 100 * 10**6 // BASE} if rng.random() < 0.8 else {}
        return _Account(_address(self.seed, i), coll, debt)

    def step(self, block: int) -> None:
        rng = self.rng
        for i in range(len(ASSETS)):  # interest
            self.liquidity[i] += self.liquidity[i] // 2_000_000
            self.borrow[i] += self.borrow[i] // 1_000_000
        if block % 5 == 0:  # an oracle update
            for i in range(2):
                self.prices[i] = self.prices[i] * rng.randrange(985, 1016) // 1000
        if block % 47 == 0:  # a crash: many HFs cross bands at once
            self.prices[0] = self.prices[0] * 82 // 100
        for account in rng.sample(self.accounts, k=min(3, len(self.accounts))):
            action = rng.randrange(4)
            if action == 0:
                a = rng.randrange(2)
                account.scaled_collateral[a] = account.scaled_collateral.get(a, 0) + rng.randrange(1, 5) * 10 ** (
                    ASSETS[a].decimals - 1
                )
            elif action == 1:
                account.scaled_debt[2] = account.scaled_debt.get(2, 0) + rng.randrange(100, 5_000) * 10**6
            elif action == 2 and account.scaled_debt:
                account.scaled_debt[2] = account.scaled_debt[2] // 2
            else:
                for a in list(account.scaled_collateral):
                    account.scaled_collateral[a] = account.scaled_collateral[a] * 9 // 10
        if block % 13 == 0 and len(self.accounts) > 2:  # one leaves, one joins
            self.accounts.pop(rng.randrange(len(self.accounts)))
            self.accounts.append(self._new_account(self.next_account))
            self.next_account += 1

    def snapshot(self, block: int, block_hash: str | None = None) -> MarketSnapshot:
        reserves = tuple(
            Reserve(
                asset=a.address, symbol=a.symbol, decimals=a.decimals, reserve_id=i, ltv=a.lt - 500,
                liquidation_threshold=a.lt, liquidation_bonus=10500, emode_category=0, active=True, frozen=False,
                borrowing_enabled=True, a_token=a.address, stable_debt_token=a.address, variable_debt_token=a.address,
                liquidity_index=self.liquidity[i], variable_borrow_index=self.borrow[i], price=self.prices[i],
            )
            for i, a in enumerate(ASSETS)
        )  # fmt: skip
        positions = tuple(self._position(account, block) for account in self.accounts)
        return MarketSnapshot(
            market=self.market, protocol="aave_v3", chain_id=1, block=block,
            block_hash=block_hash or f"0x{block:064x}", timestamp=FIRST_TIME + (block - FIRST_BLOCK) * BLOCK_TIME,
            base_currency_unit=BASE, reserves=reserves,
            emode_categories=(EModeCategory(1, 9000, 9300, 10100, "0x" + "0" * 40, "stables"),),
            positions=positions, addresses={"pool": "0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2"}, revision=REVISION,
        )  # fmt: skip

    def _position(self, account: _Account, block: int) -> Position:
        legs, coll_base, weighted, debt_base, config = [], 0, 0, 0, 0
        for i, a in enumerate(ASSETS):
            sc, sd = account.scaled_collateral.get(i, 0), account.scaled_debt.get(i, 0)
            if not sc and not sd:
                continue
            c = a_token_balance(sc, self.liquidity[i], RULES)
            d = variable_debt_balance(sd, self.borrow[i], RULES)
            legs.append(AssetLeg(a.address, a.symbol, sc, c, sd, d, 0, bool(sc)))
            value_c = c * self.prices[i] // 10**a.decimals
            coll_base += value_c
            weighted += value_c * a.lt
            debt_base += d * self.prices[i] // 10**a.decimals
            config |= (1 << (2 * i + 1) if sc else 0) | (1 << (2 * i) if sd else 0)
        hf = MAX_UINT256 if debt_base == 0 else weighted * WAD // 10_000 // debt_base
        lt = weighted // coll_base if coll_base else 0
        return Position(
            market=self.market, account=account.address, block=block, health_factor=hf,
            total_collateral_base=coll_base, total_debt_base=debt_base,
            available_borrows_base=max(0, coll_base * (lt - 500) // 10_000 - debt_base),
            current_liquidation_threshold=lt, ltv=max(0, lt - 500), emode_category=0, user_configuration=config,
            legs=tuple(legs),
        )  # fmt: skip


def operations(
    markets: tuple[str, ...] = ("aave-a", "aave-b"), blocks: int = 120, accounts: int = 25, *, reorgs: bool = True
) -> list[Op]:
    """The replay of ``markets`` interleaved block by block, with two reorgs per market
    (unless ``reorgs`` is False): three blocks saved, marked orphaned and replaced by other
    contents; one block dropped and saved again."""
    replays = [Replay(m, seed=i + 1, accounts=accounts) for i, m in enumerate(markets)]
    ops: list[Op] = []
    for n in range(blocks):
        block = FIRST_BLOCK + n
        for replay in replays:
            replay.step(block)
            ops.append(("save", replay.snapshot(block)))
            if reorgs and n == blocks // 2:  # a 3-block reorg: the stored blocks turn out non-canonical
                orphans = [(block - k, f"0x{block - k:064x}") for k in range(3)]
                ops.append(("orphan", (replay.market, orphans, "reorg in the replay")))
                for b, _ in sorted(orphans):
                    ops.append(("save", replay.snapshot(b, block_hash=f"0x{b + 10**9:064x}")))
            if reorgs and n == blocks - 10:  # a block saved, then dropped (no longer canonical), then saved again
                ops.append(("drop", (replay.market, [block])))
                replay.step(block)
                ops.append(("save", replay.snapshot(block, block_hash=f"0x{block + 2 * 10**9:064x}")))
    return ops


def apply(store: HistoryStore, ops: list[Op]) -> None:
    for kind, arg in ops:
        if kind == "save":
            assert isinstance(arg, MarketSnapshot)
            store.save_snapshot(arg)
        elif kind == "orphan":
            market, blocks, reason = arg  # type: ignore[misc]
            store.mark_orphaned(market, blocks, reason)
        else:
            market, dropped = arg  # type: ignore[misc]
            store.drop_blocks(market, dropped)
