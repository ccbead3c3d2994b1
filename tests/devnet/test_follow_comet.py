"""Following a Compound III market by its events on the devnet's CometLike, block by block.

From ONE full read, a replay of random actions (base supplied, repaid and withdrawn into debt,
base transfers, collateral in / out and transferred, accruals, absorbs of accounts the follower
finds under HF 1) interleaved with price moves and time warps (interest accrues: the
cUSDCv3 rate model at ~80 % utilization), one mined block at a time. Two followers run side by
side on their own clients, both following every account of the market (so every borrower):

- ``checked`` re-reads the accounts each block's events touched and compares them with the
  event-applied ones, plus a rotating reconciliation sample in the same aggregate3;
- ``events_only`` never re-reads an account its events explain.

At EVERY block both followers' snapshots (both HFs recomputed locally, after accrual to the
block's timestamp and at the stored index) must equal the reader's full re-read exactly. No
difference may be found by the touched read or by reconciliation. Comet emits no event for a
debt a base transfer grows or repays: those blocks, and only those, must be caught by the
principal-totals check (source ``"totals"``). Steady state: 2 requests a block.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_utils import to_checksum_address

from monitor.chain.blocks import block_ref
from monitor.chain.multicall import Multicall
from monitor.chain.rpc import RpcClient
from monitor.devnet import comet as cm
from monitor.devnet.anvil import Anvil
from monitor.devnet.deploy import install_multicall
from monitor.devnet.node import DevnetNode, Tx
from monitor.positions.base import Follower
from monitor.positions.comet_follow import CometFollower
from monitor.positions.devnet_activity import CometActivity
from monitor.protocols.compound_v3 import CompoundV3Reader
from tests.devnet.support_follow import describe, position_rows

pytestmark = pytest.mark.devnet

LIQUIDATOR = "0x000000000000000000000000000000000000bEEF"
SEED = 4
BLOCKS = 120
GAS = 1_000_000


@dataclass
class Net:
    url: str
    client: RpcClient
    node: DevnetNode
    deployment: cm.CometDeployment
    accounts: list[str]  # every account holding anything: the seeded borrowers and the supplier


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    with Anvil() as anvil:
        client = RpcClient([anvil.url], timeout=120, max_retries=0)
        node = DevnetNode(client)
        install_multicall(node)
        deployment = cm.deploy_comet(node)
        seeded = cm.seed_comet(node, deployment, 24, seed=SEED, hf_range=(1.02, 1.3), utilization=0.8)
        node.set_balances([s.account for s in seeded] + [LIQUIDATOR], 10**21)
        yield Net(anvil.url, client, node, deployment, [s.account for s in seeded] + [cm.supplier_account(SEED)])
        client.close()


def _reader(url: str, comet: str) -> CompoundV3Reader:
    client = RpcClient([url], timeout=120, max_retries=0)
    return CompoundV3Reader(client, market="comet", comet=comet, chain_id=31337, multicall=Multicall(client))


def test_follow_comet_by_events_without_drift(net: Net) -> None:
    snapshot_id = net.node.snapshot()
    try:
        comet = net.deployment.comet
        followed = [*net.accounts, LIQUIDATOR]
        reader = _reader(net.url, comet)
        checked = CometFollower(_reader(net.url, comet), followed, reconcile_sample=5, reconcile_all_every=25,
                                discover=True)  # fmt: skip
        events_only = CometFollower(_reader(net.url, comet), followed, verify_touched=False, discover=True)
        assert isinstance(checked, Follower)
        start = block_ref(net.client)
        checked.start(start)
        events_only.start(start.number)
        driver = CometActivity(net.node, net.deployment, net.accounts[:16], liquidator=LIQUIDATOR, seed=SEED)
        net.client.request("evm_setAutomine", [False])
        steady: list[int] = []
        caught: set[int] = set()
        try:
            for _ in range(BLOCKS):
                block = driver.block(checked)
                report = checked.step(block)
                quiet = events_only.step(block)
                for r in (report, quiet):  # a difference only where a transfer changed a debt unnamed: caught
                    if r.differences:  # by the totals check (or a read of the account in the same call)
                        assert block in driver.hidden_blocks, (block, describe(r.differences))
                        caught.add(block)
                if block not in driver.hidden_blocks and not report.discovered:
                    steady.append(report.requests)
                    assert report.requests == 2, report.requests_by_method  # the sample rides in the same call
                ref = block_ref(reader.client, block)
                full = position_rows(reader.snapshots(followed, ref))
                assert position_rows(checked.snapshots(ref.hash, ref.timestamp)) == full, block
                assert position_rows(events_only.snapshots(ref.hash, ref.timestamp)) == full, block
        finally:
            net.client.request("evm_setAutomine", [True])
        for follower in (checked, events_only):
            assert follower.reconcile() == []
            assert follower.inexact == 0
            assert follower.principal_sums() == (follower.totals.total_supply_base, follower.totals.total_borrow_base)
            assert follower.totals_checked
        assert checked.difference_counts.total() > 0 and events_only.difference_counts.keys() == {"totals"}
        for kind in ("supply", "borrow", "collateral_in", "collateral_out", "transfer", "transfer_hidden",
                     "transfer_collateral", "accrue", "price"):  # fmt: skip
            assert driver.done.get(kind, 0) >= 2, (kind, driver.done)
        assert driver.done.get("absorb", 0) >= 2, driver.done
        assert caught, "no hidden debt change was caught by the totals check"
        assert max(steady) == 2
    finally:
        net.node.revert(snapshot_id)


def test_transfer_between_borrowers_names_no_one_and_reconciliation_finds_it(net: Net) -> None:
    """Comet's limit: a base transfer between two accounts that both stay in debt emits no event.
    The follower sees nothing in that block's events; the totals check catches it unless both
    principal changes cancel exactly; reconciliation always does, and takes the chain's state."""
    snapshot_id = net.node.snapshot()
    try:
        comet = net.deployment.comet
        follower = CometFollower(_reader(net.url, comet), [*net.accounts, LIQUIDATOR])
        follower.start("latest")
        hfs = follower.health_factors()
        src, dst = sorted((a for a, acct in follower.book.items() if acct.principal < 0), key=lambda a: -hfs[a])[:2]
        receipt = net.node.send(Tx(src, comet, cm.TRANSFER.encode(dst, 100 * 10**6), GAS, "transfer"))
        block = int(receipt["blockNumber"], 16)
        report = follower.step(block)
        assert report.events == 0 and report.touched == ()
        found = {d.account for d in report.differences} | {d.account for d in follower.reconcile()}
        assert found == {src, dst}
        assert follower.reconcile() == []
        assert follower.principal_sums() == (follower.totals.total_supply_base, follower.totals.total_borrow_base)
    finally:
        net.node.revert(snapshot_id)


def test_unwind_rereads_what_the_dropped_blocks_touched(net: Net) -> None:
    snapshot_id = net.node.snapshot()
    try:
        comet = net.deployment.comet
        follower = CometFollower(_reader(net.url, comet), net.accounts)
        follower.start("latest")
        base = follower.block
        fork = net.node.snapshot()
        who = net.accounts[0]
        net.node.send(Tx(net.deployment.owner, comet, cm.SUPPLY.encode(who, 50 * 10**6), GAS, "supply"))
        head = net.client.block_number()
        assert follower.step(head).touched == (who,)
        net.node.revert(fork)
        net.client.request("anvil_mine", [hex(head - base + 1)])
        assert follower.unwind(base) == {who}
        report = follower.step(net.client.block_number())
        assert who in report.read and report.differences == ()
        assert follower.reconcile() == []
    finally:
        net.node.revert(snapshot_id)


def test_a_new_borrower_is_discovered_from_its_events(net: Net) -> None:
    """``discover``: an account no one followed supplies collateral and borrows; the step names it
    in ``discovered``, reads it in full, and its HF equals the reader's; a supplier only is not
    followed (the totals check needs only the borrowers); with only 3 of the borrowers followed
    the totals check is off."""
    snapshot_id = net.node.snapshot()
    try:
        comet, owner = net.deployment.comet, net.deployment.owner
        follower = CometFollower(_reader(net.url, comet), net.accounts[:3], discover=True)
        follower.start("latest")
        newcomer = to_checksum_address("0x00000000000000000000000000000000000c0ffe")
        saver = to_checksum_address("0x0000000000000000000000000000000000005afe")
        weth = net.deployment.collateral("WETH")
        net.node.send_many([
            Tx(owner, comet, cm.SET_COLLATERAL.encode(newcomer, weth.address, 10 * 10**18), GAS, "collateral"),
            Tx(owner, comet, cm.BORROW.encode(newcomer, 5_000 * 10**6), GAS, "borrow"),
            Tx(owner, comet, cm.SUPPLY.encode(saver, 1_000 * 10**6), GAS, "supply"),
        ])  # fmt: skip
        report = follower.step(net.client.block_number())
        assert newcomer in report.discovered and saver not in follower.followed
        assert not follower.totals_checked and follower.sweeps == 0
        ref = block_ref(net.client)
        ours = position_rows(follower.snapshots(ref.hash, ref.timestamp))
        theirs = position_rows(_reader(net.url, comet).snapshots(follower.followed, ref))
        assert ours == theirs and any(account == newcomer for _market, account in ours)
        assert follower.reconcile() == []
    finally:
        net.node.revert(snapshot_id)
