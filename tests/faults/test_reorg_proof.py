"""A real reorg, proven: rows of orphaned blocks are marked and kept (hidden from queries)
until the canonical block of the same number is stored; a rollback deeper than
max_reorg_depth stops with a clear error and changes nothing; a shallow mismatch waits."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from monitor.chain.reorg import ReorgTooDeep
from monitor.devnet.seed import set_price
from monitor.scan import scan_all
from monitor.store import Store, StoreError
from tests.faults.conftest import SmallDevnet, raw_rows
from tests.unit.test_store import make_snapshot

pytestmark = [pytest.mark.devnet]

MARKET = "aave-v3-devnet"


def fork(small: SmallDevnet, snapshot: str, blocks: int) -> None:
    """Another history from ``snapshot``: a different first block (a price change), then more."""
    small.node.revert(snapshot)
    set_price(small.node, small.deployment, "WETH", 1234)
    small.node.mine(blocks)


def test_orphaned_rows_are_marked_kept_and_hidden(small_devnet: SmallDevnet, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    config = small_devnet.config([small_devnet.url], db)
    before_fork = small_devnet.node.snapshot()
    small_devnet.node.mine(2)
    with Store(db) as store:
        (first,) = scan_all(config, store)
        orphan = first.snapshot.block
        positions_before = len(raw_rows(db)["positions"])
        fork(small_devnet, before_fork, 1)  # the fork's head is only just past the stored block
        assert small_devnet.node.client.get_block(orphan)["hash"] != first.snapshot.block_hash
        with pytest.raises(StoreError, match="not proven yet"):  # 0 blocks deep: not proven, nothing written
            scan_all(config, store)
        assert store.orphaned_blocks(MARKET) == []
        assert len(raw_rows(db)["positions"]) == positions_before
        assert orphan in [s["block"] for s in store.scans()]
        small_devnet.node.mine(3)
        (third,) = scan_all(config, store)  # now deep enough, asked twice: proven
        assert [b for b, _ in store.orphaned_blocks(MARKET)] == [orphan]
        assert orphan not in [s["block"] for s in store.scans()]  # hidden from every query
        assert all(p["block"] != orphan for p in store.latest_positions())
        assert all(p["block"] != orphan for a in store.accounts(MARKET) for p in store.position_history(a))
        assert len(raw_rows(db)["positions"]) == positions_before + len(third.snapshot.positions)  # kept
        assert store.load_snapshot(MARKET).block == third.snapshot.block


def test_canonical_replacement_removes_the_orphan_and_unmark_restores(tmp_path: Path) -> None:
    with Store(tmp_path / "u.db") as store:
        old = make_snapshot(100)
        store.save_snapshot(old)
        store.save_snapshot(make_snapshot(101))
        assert store.mark_orphaned(old.market, [(100, old.block_hash)], "test") == 1
        assert [s["block"] for s in store.scans()] == [101]
        store.unmark_orphaned(old.market, [100])  # canonical after all: it counts again
        assert [s["block"] for s in store.scans()] == [100, 101]
        store.mark_orphaned(old.market, [(100, old.block_hash)], "test")
        replacement = replace(make_snapshot(100, positions=old.positions[:1]), block_hash="0x" + "ab" * 32)
        store.save_snapshot(replacement)  # the canonical block 100: the orphan's rows go now
        assert store.orphaned_blocks(old.market) == []
        scans = store.scans(old.market)
        assert [(s["block"], s["block_hash"]) for s in scans] == [(101, make_snapshot(101).block_hash),
                                                                   (100, "0x" + "ab" * 32)]  # fmt: skip
        assert len(store.load_snapshot(old.market, 100).positions) == 1  # no stale row of the orphan


def test_rollback_deeper_than_the_limit_stops_and_changes_nothing(small_devnet: SmallDevnet, tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    config = small_devnet.config([small_devnet.url], db, max_reorg_depth=3)
    before_fork = small_devnet.node.snapshot()
    with Store(db) as store:
        for _ in range(3):
            small_devnet.node.mine(2)
            scan_all(config, store)
        stored = raw_rows(db)
        shown = [s["block"] for s in store.scans()]
        fork(small_devnet, before_fork, 10)
        with pytest.raises(ReorgTooDeep) as info:
            scan_all(config, store)
        message = str(info.value)
        assert "deeper than max_reorg_depth 3" in message and "nothing" in message and "\n" not in message
        assert raw_rows(db) == stored and [s["block"] for s in store.scans()] == shown
        assert store.orphaned_blocks(MARKET) == []
