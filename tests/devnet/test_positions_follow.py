"""Following positions by their events on both devnets, block by block, proven not to drift.

From ONE full read, a replay of random user actions (supply, borrow, repay, repay with aTokens,
withdraw, aToken transfers, collateral on / off, eMode switches, liquidations receiving aTokens
or the underlying) interleaved with price moves and time warps, one mined block at a time.
Two followers run side by side on their own clients:

- ``checked`` re-reads the accounts each block's events touched and compares them with the
  event-applied state before taking the chain's (plus a rotating reconciliation sample);
- ``events_only`` never re-reads an account: its state comes from the events alone.

Every ``RECONCILE_EVERY`` blocks both are reconciled against the reader's full read of every
account: ZERO differences in scaled balances, configuration bitmap, eMode, and the locally
recomputed HF and totals == ``getUserAccountData``. Steady state costs at most 3 requests a
block (2 measured: one eth_getLogs, one aggregate3 eth_call), at most 5 with the sample.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from monitor.chain.abi import fn
from monitor.chain.multicall import Multicall
from monitor.chain.rpc import RpcClient
from monitor.devnet import spec
from monitor.devnet.aave_origin import (
    BORROW,
    CONFIGURE_COLLATERAL,
    FEED_SET_ANSWER,
    ORIGIN_EMODES,
    SET_ASSET_COLLATERAL_IN_EMODE,
    OriginDevnet,
    user_account_data,
)
from monitor.devnet.deploy import Deployment
from monitor.devnet.node import DevnetNode, Tx
from monitor.devnet.seed import set_answer
from monitor.models import MAX_UINT256
from monitor.positions import AaveFollower, Difference, StepReport
from monitor.positions.devnet_replay import PriceMove, ReplayDriver
from monitor.protocols.aave_v3 import AaveV3Reader
from tests.support import Devnet

LIQUIDATOR = "0x000000000000000000000000000000000000bEEF"
RECONCILE_EVERY = 15
SET_STABLE_BORROWING = fn("setReserveStableRateBorrowing(address,bool)")
SWAP_RATE_MODE = fn("swapBorrowRateMode(address,uint256)")


def _follower(url: str, provider: str, accounts: Sequence[str], **options: int | bool) -> AaveFollower:
    client = RpcClient([url], timeout=120, max_retries=0)
    reader = AaveV3Reader(
        client, market="followed", pool_addresses_provider=provider, chain_id=31337, multicall=Multicall(client)
    )
    return AaveFollower(reader, [*accounts, LIQUIDATOR], **options)  # type: ignore[arg-type]


def _describe(differences: Sequence[Difference]) -> list[tuple[str, str, int, int, int, str]]:
    return [(d.account, d.field, d.local, d.chain, d.block, d.source) for d in differences[:10]]


def _replay(
    client: RpcClient,
    url: str,
    provider: str,
    pool: str,
    accounts: Sequence[str],
    actors: Sequence[str],
    price_move: PriceMove,
    emode_ids: Sequence[int],
    blocks: int,
    *,
    borrowable: Sequence[str] = (),
    seed: int = 5,
) -> tuple[AaveFollower, AaveFollower, ReplayDriver, list[StepReport]]:
    checked = _follower(url, provider, accounts, reconcile_sample=6)
    events_only = _follower(url, provider, accounts, verify_touched=False)
    state = checked.start()
    events_only.start(state.block)
    driver = ReplayDriver(
        client, pool, list(state.reserves.values()), actors, LIQUIDATOR, price_move=price_move,
        emode_ids=emode_ids, borrowable=borrowable, seed=seed,
    )  # fmt: skip
    driver.fund()
    head = int(client.request("eth_blockNumber"), 16)
    for follower in (checked, events_only):
        assert follower.step(head).differences == ()  # the funding blocks (mints, approvals)
    reports: list[StepReport] = []
    client.request("evm_setAutomine", [False])
    try:
        for n in range(1, blocks + 1):
            block = driver.block(checked.state)
            report = checked.step(block)
            quiet = events_only.step(block)
            assert report.to_block == block and quiet.to_block == block
            assert report.differences == (), _describe(report.differences)
            assert quiet.read == () and quiet.requests <= 2, quiet.requests_by_method  # logs + one eth_call
            assert report.requests <= 5, report.requests_by_method
            reports.append(report)
            if n % RECONCILE_EVERY == 0 or n == blocks:
                for follower in (checked, events_only):
                    differences = follower.reconcile()
                    assert differences == [], _describe(differences)
    finally:
        client.request("evm_setAutomine", [True])
    return checked, events_only, driver, reports


def _assert_replay(checked: AaveFollower, events_only: AaveFollower, driver: ReplayDriver) -> None:
    done = driver.activity.succeeded
    for kind in ("supply", "borrow", "repay", "repay_all", "withdraw_all", "transfer", "collateral", "emode"):
        assert done.get(kind, 0) >= 1, (kind, driver.activity)
    assert done.get("liquidation", 0) >= 3, driver.activity
    assert checked.difference_counts == {} and events_only.difference_counts == {}
    assert checked.state.inexact == 0 and events_only.state.inexact == 0  # no event needed a guess
    assert events_only.state.block == checked.state.block
    # the two followers agree on every account and every HF; a liquidated account is really followed
    assert events_only.state.health_factors() == checked.state.health_factors()
    assert any(hf != MAX_UINT256 for hf in checked.state.health_factors().values())


def _steady(reports: Sequence[StepReport]) -> list[int]:
    """Requests of the blocks without reconciliation sample reads beyond the block's own read."""
    return [r.requests - (2 if r.reconciled else 0) for r in reports]


@pytest.mark.slow
def test_follow_origin_devnet_by_events_without_drift(origin_devnet: OriginDevnet) -> None:
    """Aave 3.6 (aave-v3-origin): 240 seeded positions with every eMode kind, 200 blocks."""
    dep = origin_devnet.deployment

    def move(symbol: str, answer: int) -> Tx:
        return Tx(dep.admin, dep.token(symbol).feed, FEED_SET_ANSWER.encode(answer), 200_000, f"price {symbol}")

    checked, events_only, driver, reports = _replay(
        origin_devnet.client, origin_devnet.url, dep.pool_addresses_provider, dep.pool, origin_devnet.accounts,
        origin_devnet.accounts[:30], move, [e.id for e in ORIGIN_EMODES], 200,
        borrowable=("WETH", "wstETH", "WBTC", "USDC", "USDT", "DAI"),
    )  # fmt: skip
    assert checked.state.revision == 10
    _assert_replay(checked, events_only, driver)
    assert max(_steady(reports)) <= 3
    assert sum(len(r.touched) for r in reports) >= 200  # the replay really touched followed accounts


@pytest.mark.slow
def test_follow_v30_devnet_by_events_without_drift(devnet: Devnet) -> None:
    """Aave 3.0 (@aave/core-v3): 300 of the seeded positions, 200 blocks."""
    dep: Deployment = devnet.deployment
    node: DevnetNode = devnet.node

    def move(symbol: str, answer: int) -> None:
        set_answer(node, dep, symbol, answer, mine=False)  # MockAggregator storage: no log at all

    accounts = [s.account for s in devnet.seeded[:300]]
    checked, events_only, driver, reports = _replay(
        devnet.client, devnet.url, dep.pool_addresses_provider, dep.pool, accounts, accounts[:30], move,
        [e.id for e in spec.EMODES], 200,
    )  # fmt: skip
    assert checked.state.revision == 1
    _assert_replay(checked, events_only, driver)
    assert max(_steady(reports)) <= 3


def test_reconcile_finds_and_repairs_a_corrupted_account(origin_devnet: OriginDevnet) -> None:
    """The zero-difference assertions can fail: a local balance, bit and eMode changed by hand
    are each reported (account, field, local, chain), counted, and replaced by the chain's."""
    dep = origin_devnet.deployment
    follower = _follower(origin_devnet.url, dep.pool_addresses_provider, origin_devnet.accounts[:20])
    state = follower.start()
    account = next(a for a in origin_devnet.accounts[:20] if state.accounts[a].debt)
    acct = state.accounts[account]
    asset = sorted(acct.debt)[0]
    symbol = state.reserves[asset].symbol
    chain_debt, chain_config, chain_emode = acct.debt[asset], acct.configuration, acct.emode
    acct.debt[asset] += 1
    acct.configuration ^= 1 << (2 * 63)
    corrupted_emode = 0 if chain_emode else 1
    acct.emode = corrupted_emode
    differences = follower.reconcile([account])
    fields = {d.field: (d.local, d.chain) for d in differences}
    assert fields[f"debt[{symbol}]"] == (chain_debt + 1, chain_debt)
    assert fields["configuration"] == (chain_config ^ (1 << 126), chain_config)
    assert fields["emode"] == (corrupted_emode, chain_emode)
    assert "health_factor" in fields and {d.source for d in differences} == {"reconcile"}
    assert follower.difference_counts["reconcile"] == len(differences)
    assert follower.reconcile([account]) == []  # repaired from the chain
    assert state.accounts[account].debt[asset] == chain_debt


def test_config_changes_refresh_the_market_and_new_borrowers_are_discovered(origin_devnet: OriginDevnet) -> None:
    """A PoolConfigurator event (WETH's LT lowered, WBTC taken out of an eMode's collateral
    bitmap) makes the follower read the reserves and categories again in that block; a Borrow by
    an account it did not follow adds it (``discover``), read in full. Local HF == chain after."""
    dep = origin_devnet.deployment
    node = origin_devnet.node
    followed = origin_devnet.accounts[:40]
    follower = _follower(origin_devnet.url, dep.pool_addresses_provider, followed, discover=True)
    state = follower.start()
    weth = dep.token("WETH").address
    holders = [a for a in followed if state.accounts[a].collateral.get(weth) and state.accounts[a].debt]
    assert holders
    before = {a: state.account_data(a).health_factor for a in holders}
    node.send(Tx(dep.admin, dep.pool_configurator, CONFIGURE_COLLATERAL.encode(weth, 7500, 7800, 10500),
                 1_000_000, "lower WETH LT"))  # fmt: skip
    node.send(Tx(dep.admin, dep.pool_configurator, SET_ASSET_COLLATERAL_IN_EMODE.encode(
        dep.token("WETH").address, 1, False), 1_000_000, "WETH out of eMode 1"))  # fmt: skip
    report = follower.step(origin_devnet.client.block_number())
    assert report.refreshed and report.differences == ()
    assert state.reserves[weth].liquidation_threshold == 7800
    assert (
        not state.categories[1].collateral_bitmap
        or not (state.categories[1].collateral_bitmap >> state.reserves[weth].reserve_id) & 1
    )
    assert all(state.account_data(a).health_factor < before[a] for a in holders)
    assert follower.reconcile() == []
    candidates = [p.account for p in origin_devnet.positions[40:80] if p.emode != 1]
    room = dict(zip(candidates, (d[2] for d in user_account_data(node, dep, candidates)), strict=True))
    newcomer = max(candidates, key=lambda a: room[a])
    usdc = dep.token("USDC").address
    node.send(Tx(newcomer, dep.pool, BORROW.encode(usdc, 10**6, 2, 0, newcomer), 1_500_000, "borrow"))
    report = follower.step(origin_devnet.client.block_number())
    assert newcomer in state.accounts and newcomer in report.read and state.accounts[newcomer].debt.get(usdc)
    assert follower.reconcile([newcomer]) == []


def test_v30_stable_debt_is_re_read_every_block(devnet: Devnet) -> None:
    """Aave 3.0 stable debt accrues at each user's own rate, which no scaled balance records: a
    stable borrower (and a SwapBorrowRateMode) is marked dirty and re-read every block, so its
    local HF still equals getUserAccountData as time passes."""
    dep: Deployment = devnet.deployment
    node = devnet.node
    usdc = dep.token("USDC").address
    node.send(Tx(dep.admin, dep.pool_configurator, SET_STABLE_BORROWING.encode(usdc, True), 1_000_000, "stable"))
    accounts = [s.account for s in devnet.seeded[:40]]
    borrower = next(s.account for s in devnet.seeded[:40] if s.debt == "WETH" and "USDC" not in s.collaterals)
    follower = _follower(devnet.url, dep.pool_addresses_provider, accounts)
    state = follower.start()
    node.impersonate_all()
    node.send(Tx(borrower, dep.pool, BORROW.encode(usdc, 50 * 10**6, 1, 0, borrower), 1_500_000, "stable borrow"))
    report = follower.step(devnet.client.block_number())
    assert borrower in report.read and state.accounts[borrower].stable.get(usdc)
    first = state.accounts[borrower].stable[usdc]
    for _ in range(3):
        devnet.client.request("evm_increaseTime", [30 * 86_400])
        node.mine()
        report = follower.step(devnet.client.block_number())
        assert report.read == (borrower,) and report.differences == ()
    assert state.accounts[borrower].stable[usdc] > first  # accrued, as read
    assert follower.reconcile() == []  # the reader is told of the new stable-debt reserve first
    node.send(Tx(borrower, dep.pool, SWAP_RATE_MODE.encode(usdc, 1), 1_500_000, "swap to variable"))
    report = follower.step(devnet.client.block_number())
    assert borrower in report.read and not state.accounts[borrower].stable.get(usdc)
    assert state.accounts[borrower].debt.get(usdc)
    assert follower.reconcile() == []


def test_unwind_after_a_reorg_leaves_no_difference(origin_devnet: OriginDevnet) -> None:
    """Blocks followed, then replaced (evm_revert + other actions at the same heights): after
    ``unwind(fork)`` the follower re-reads exactly the accounts the dropped blocks touched and
    ends with zero differences; a follower that does not unwind is caught by reconciliation."""
    dep = origin_devnet.deployment
    client = origin_devnet.client

    def move(symbol: str, answer: int) -> Tx:
        return Tx(dep.admin, dep.token(symbol).feed, FEED_SET_ANSWER.encode(answer), 200_000, f"price {symbol}")

    followed = origin_devnet.accounts[:60]
    unwinding = _follower(origin_devnet.url, dep.pool_addresses_provider, followed)
    blind = _follower(origin_devnet.url, dep.pool_addresses_provider, followed)
    state = unwinding.start()
    driver = ReplayDriver(client, dep.pool, list(state.reserves.values()), followed[:20], LIQUIDATOR,
                          price_move=move, emode_ids=[1, 2, 3], actions_per_block=(4, 6), seed=11)  # fmt: skip
    driver.fund()
    head = client.block_number()
    unwinding.step(head)
    blind.start(head)
    fork = origin_devnet.node.snapshot()
    client.request("evm_setAutomine", [False])
    try:
        for _ in range(6):
            block = driver.block(state)
            unwinding.step(block)
            blind.step(block)
        dropped = {a for b in range(head + 1, block + 1) for a in state.touched_accounts(b)}
        assert dropped
        origin_devnet.node.revert(fork)
        driver.rng.seed(12)  # another branch at the same heights
        for _ in range(7):
            block = driver.block(state)
        assert unwinding.unwind(head) == dropped and state.block == head
        report = unwinding.step(block)
        assert set(report.read) >= dropped and report.differences == ()
        assert unwinding.reconcile() == []
        blind.step(block)
        assert blind.reconcile() != []  # following the dead branch's events left it wrong
    finally:
        client.request("evm_setAutomine", [True])
