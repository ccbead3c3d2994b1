"""Following Morpho Blue by its events on the real Morpho Blue, block by block, without drift.

From ONE full read, a replay of random user actions (supply and withdraw of loan tokens, borrow,
repay by assets and of all shares, collateral in and out, actions on behalf of another account,
liquidations by seized assets and by repaid shares, some leaving bad debt) interleaved with
oracle moves and time warps, one mined block at a time, on two markets (6 and 18 decimals).
Two followers run side by side on their own clients:

- ``checked`` re-reads the positions each block's events touched and compares them with the
  event-applied ones (plus a rotating reconciliation sample, in the same aggregate3);
- ``events_only`` never re-reads a position: its state comes from the events alone.

At EVERY block both followers' snapshots (every HF recomputed locally) must equal the reader's
full re-read exactly, and no difference may ever be found. Steady state: 2 requests a block
(one eth_getLogs, one aggregate3 eth_call), the sample included.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_utils import to_checksum_address

from monitor.chain.blocks import block_ref
from monitor.chain.multicall import Multicall
from monitor.chain.rpc import RpcClient
from monitor.devnet.anvil import Anvil
from monitor.devnet.morpho import (
    BORROW,
    ERC20_APPROVE,
    ERC20_MINT,
    SUPPLY_COLLATERAL,
    MorphoDeployment,
    deploy_morpho,
    seed_morpho,
)
from monitor.devnet.node import DevnetNode, Tx
from monitor.models import MAX_UINT256
from monitor.positions import morpho_events as ev
from monitor.positions.base import Follower
from monitor.positions.devnet_activity import GAS, REPAY, MorphoActivity
from monitor.positions.morpho_follow import MorphoFollower
from monitor.protocols.morpho_blue import MorphoBlueReader
from tests.devnet.support_follow import describe, position_rows

pytestmark = pytest.mark.devnet

LIQUIDATOR = "0x000000000000000000000000000000000000bEEF"
BLOCKS = 120


@dataclass
class Net:
    client: RpcClient
    node: DevnetNode
    url: str
    deployment: MorphoDeployment
    accounts: list[str]


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    with Anvil() as anvil:
        client = RpcClient([anvil.url], timeout=120, max_retries=0)
        node = DevnetNode(client)
        deployment = deploy_morpho(node)
        seeded = seed_morpho(node, deployment, 24, seed=9, hf_range=(1.02, 1.25))
        yield Net(client, node, anvil.url, deployment, [s.account for s in seeded])
        client.close()


def _reader(url: str, deployment: MorphoDeployment) -> MorphoBlueReader:
    client = RpcClient([url], timeout=120, max_retries=0)
    return MorphoBlueReader(client, market="morpho", morpho=deployment.morpho,
                            market_ids=[m.id for m in deployment.markets], chain_id=31337,
                            multicall=Multicall(client))  # fmt: skip


def test_follow_morpho_by_events_without_drift(net: Net) -> None:
    snapshot_id = net.node.snapshot()
    try:
        actors = net.accounts[:16]
        followed = [*net.accounts, LIQUIDATOR]
        reader = _reader(net.url, net.deployment)
        checked = MorphoFollower(_reader(net.url, net.deployment), followed, reconcile_sample=5,
                                 reconcile_all_every=25)  # fmt: skip
        events_only = MorphoFollower(_reader(net.url, net.deployment), followed, verify_touched=False)
        assert isinstance(checked, Follower)
        driver = MorphoActivity(net.node, net.deployment, actors, liquidator=LIQUIDATOR, seed=3)
        driver.fund()
        start = block_ref(net.client)
        checked.start(start)
        events_only.start(start.number)
        net.client.request("evm_setAutomine", [False])
        steady: list[int] = []
        try:
            for _ in range(BLOCKS):
                block = driver.block(checked)
                report = checked.step(block)
                quiet = events_only.step(block)
                assert report.differences == (), describe(report.differences)
                assert quiet.read == () and quiet.requests == 2, quiet.requests_by_method
                assert report.requests == 2, report.requests_by_method  # the sample rides in the same eth_call
                steady.append(report.requests)
                ref = block_ref(reader.client, block)
                full = position_rows(reader.snapshots(followed, ref))
                assert position_rows(checked.snapshots(ref.hash, ref.timestamp)) == full, block
                assert position_rows(events_only.snapshots(ref.hash, ref.timestamp)) == full, block
                for snap, m in zip(checked.snapshots(), net.deployment.markets, strict=True):
                    assert checked.health_factors(m.id) == {p.account: p.health_factor for p in snap.positions}
        finally:
            net.client.request("evm_setAutomine", [True])
        for follower in (checked, events_only):
            assert follower.reconcile() == []
            assert follower.difference_counts == {} and follower.inexact == 0
        for kind in ("supply", "withdraw", "borrow", "repay", "repay_all", "collateral_in", "collateral_out", "price"):
            assert driver.done.get(kind, 0) >= 2, (kind, driver.done)
        assert driver.done.get("liquidate", 0) >= 3, driver.done
        assert max(steady) == 2
        bad_debt = [e for e in ev.decode_logs(checked.logs(start.number + 1, checked.block), net.deployment.morpho)
                    if isinstance(e, ev.PositionChange) and e.bad_debt_shares]  # fmt: skip
        assert bad_debt, "no liquidation left bad debt"
    finally:
        net.node.revert(snapshot_id)


def test_unwind_rereads_what_the_dropped_blocks_touched(net: Net) -> None:
    """A reorg: the follower forgets the blocks after ``to_block``; the next step reads again
    exactly what they touched, and the state equals the chain's on the new branch."""
    snapshot_id = net.node.snapshot()
    try:
        followed = list(net.accounts)
        follower = MorphoFollower(_reader(net.url, net.deployment), followed)
        follower.start("latest")
        base = follower.block
        fork = net.node.snapshot()
        m = net.deployment.markets[0]
        who = followed[0]
        net.node.impersonate_all()
        net.node.set_balances([who], 10**21)
        token = net.deployment.tokens[m.loan_symbol][0]
        net.node.send_many([
            Tx(who, token, ERC20_MINT.encode(who, 10**30), 200_000, "mint"),
            Tx(who, token, ERC20_APPROVE.encode(net.deployment.morpho, MAX_UINT256), 100_000, "approve"),
            Tx(who, net.deployment.morpho, REPAY.encode(m.params(), 10**m.loan_decimals, 0, who, b""), GAS, "repay"),
        ])  # fmt: skip
        head = net.client.block_number()
        assert follower.step(head).touched == (who,)
        net.node.revert(fork)  # the branch is gone: a different block at the same heights
        net.client.request("anvil_mine", [hex(head - base + 1)])
        assert follower.unwind(base) == {who}
        report = follower.step(net.client.block_number())
        assert who in report.read and report.differences == ()
        assert follower.reconcile() == []
    finally:
        net.node.revert(snapshot_id)


def test_a_new_borrower_is_discovered_from_its_events(net: Net) -> None:
    """``discover``: an account no one followed supplies collateral and borrows; the step names it
    in ``discovered``, reads it in full, and its HF equals the reader's."""
    snapshot_id = net.node.snapshot()
    try:
        follower = MorphoFollower(_reader(net.url, net.deployment), net.accounts[:3], discover=True)
        follower.start("latest")
        newcomer = to_checksum_address("0x00000000000000000000000000000000000c0ffe")
        activity = MorphoActivity(net.node, net.deployment, [newcomer], liquidator=LIQUIDATOR, seed=1)
        activity.fund()
        m = net.deployment.markets[0]
        collateral = 10 * 10**m.collateral_decimals
        net.node.send_many([
            Tx(newcomer, net.deployment.morpho, SUPPLY_COLLATERAL.encode(m.params(), collateral, newcomer, b""), GAS,
               "collateral"),
            Tx(newcomer, net.deployment.morpho, BORROW.encode(m.params(), 1_000 * 10**m.loan_decimals, 0, newcomer,
               newcomer), GAS, "borrow"),
        ])  # fmt: skip
        report = follower.step(net.client.block_number())
        assert newcomer in report.discovered and newcomer in follower.followed
        ref = block_ref(net.client)
        ours = position_rows(follower.snapshots(ref.hash, ref.timestamp))
        theirs = position_rows(_reader(net.url, net.deployment).snapshots(follower.followed, ref))
        assert ours == theirs and any(account == newcomer for _market, account in ours)
        assert follower.reconcile() == []
    finally:
        net.node.revert(snapshot_id)
