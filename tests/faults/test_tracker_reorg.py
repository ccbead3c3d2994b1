"""Reorgs and lying or lagging nodes under the daemon's position tracker (Monitor.tick): a real
reorg is found from the headers already fetched, the follower unwinds and re-reads (no
difference with the chain after it), the stored rows of the replaced blocks are marked orphaned
once proven; a node whose block hashes change at every answer, or whose head falls behind what
was followed, makes nothing be deleted or marked."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from monitor.chain.blocks import block_ref
from monitor.devnet.seed import seed_positions, set_price
from monitor.errors import MonitorError
from monitor.positions import AaveFollower
from monitor.service import Monitor
from monitor.store import Store
from tests.faults.conftest import SmallDevnet, assert_history_kept, raw_rows, visible
from tests.support_proxy import HostileProxy

pytestmark = [pytest.mark.devnet]

MARKET = "aave-v3-devnet"


def _follower(monitor: Monitor) -> AaveFollower:
    follower = monitor.positions.markets[MARKET].follower
    assert isinstance(follower, AaveFollower)
    return follower


def test_reorg_unwinds_the_follower_and_marks_the_orphans_once_proven(
    small_devnet: SmallDevnet, tmp_path: Path
) -> None:
    db = tmp_path / "r.db"
    config = small_devnet.config([small_devnet.url], db)
    node = small_devnet.node
    with Store(db) as store:
        monitor = Monitor(config, store, {})
        try:
            monitor.tick()
            fork = node.snapshot()
            fork_block = node.client.block_number()
            (gone,) = seed_positions(node, small_devnet.deployment, 1, seed=4242)  # a Borrow on the doomed branch
            node.mine()
            stored = [monitor.tick().scans[0].snapshot.block]
            node.mine()
            stored.append(monitor.tick().scans[0].snapshot.block)
            follower = _follower(monitor)
            assert gone.account in follower.state.accounts  # found by its Borrow event
            assert gone.account in store.accounts(MARKET)

            node.revert(fork)  # another history: a price move, no such borrower, and longer
            set_price(node, small_devnet.deployment, "WETH", 1500)
            node.mine(stored[-1] - fork_block + 3)
            tick = monitor.tick()
            snapshot = tick.scans[0].snapshot
            assert snapshot.block == node.client.block_number()
            assert snapshot.block_hash == block_ref(node.client, snapshot.block).hash
            assert [b for b, _ in store.orphaned_blocks(MARKET)] == stored  # deep enough, asked twice: proven
            assert follower.reconcile() == []  # unwound and re-read: the chain's state exactly
            chain = {p.account: p.health_factor for p in monitor.positions.markets[MARKET].reader.snapshots(
                sorted(follower.state.accounts), block_ref(node.client, snapshot.block))[0].positions}  # fmt: skip
            assert {p.account: p.health_factor for p in snapshot.positions} == chain
            assert not follower.state.accounts[gone.account].debt  # its borrow is gone with its branch
            assert all(s["block"] not in stored for s in store.scans(MARKET))  # hidden from every query
        finally:
            monitor.close()


def test_flapping_hashes_mark_and_delete_nothing(small_devnet: SmallDevnet, tmp_path: Path) -> None:
    """A node whose every block answer carries a fresh random hash: each tick suspects a reorg,
    but no stored row is marked orphaned or lost (one lying answer is never proof)."""
    db = small_devnet.history(tmp_path)
    with HostileProxy(small_devnet.url, "hash_flip", after=10**9) as liar:
        config = small_devnet.config([liar.url], db)
        with Store(db) as store:
            monitor = Monitor(config, store, {})
            try:
                small_devnet.node.mine()
                monitor.tick()
                before_raw, before_visible = raw_rows(db), visible(db)
                liar.after = 0  # from now on every block hash is a lie
                for _ in range(3):
                    small_devnet.node.mine()
                    with contextlib.suppress(MonitorError):  # a tick may fail on the lies; it must not delete
                        monitor.tick()
                assert store.orphaned_blocks(MARKET) == []
            finally:
                monitor.close()
        assert liar.counts["attacked"] > 0
    assert_history_kept(db, before_raw, before_visible)


def test_lagging_node_steps_nothing_and_deletes_nothing(small_devnet: SmallDevnet, tmp_path: Path) -> None:
    db = small_devnet.history(tmp_path)
    with HostileProxy(small_devnet.url, "lag", lag=0) as node_proxy:
        config = small_devnet.config([node_proxy.url], db)
        with Store(db) as store:
            monitor = Monitor(config, store, {})
            try:
                small_devnet.node.mine(2)
                followed = monitor.tick().scans[0].snapshot.block
                before_raw, before_visible = raw_rows(db), visible(db)
                node_proxy.lag = 4  # the node falls 4 blocks behind what was followed
                small_devnet.node.mine()
                lagging = monitor.tick()
                assert lagging.scans == ()  # no step: nothing new to say
                assert monitor.positions.markets[MARKET].block == followed
                assert store.orphaned_blocks(MARKET) == []
                assert_history_kept(db, before_raw, before_visible)
                node_proxy.lag = 0  # caught up: it follows on, from where it was
                tick = monitor.tick()
                snapshot = tick.scans[0].snapshot
                assert snapshot.block == small_devnet.node.client.block_number() > followed
                assert snapshot.block_hash == block_ref(small_devnet.node.client, snapshot.block).hash
                assert _follower(monitor).reconcile() == []
            finally:
                monitor.close()
