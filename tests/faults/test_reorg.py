"""A reorg that removes a Borrow event: the account leaves discovery, orphaned rows go."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.devnet.seed import seed_positions
from monitor.protocols.aave_v3 import DISCOVERY
from monitor.scan import scan_all
from monitor.store import Store
from tests.support import Devnet

pytestmark = pytest.mark.devnet


def test_reorg_removes_borrower_and_orphaned_rows(devnet: Devnet, tmp_path: Path) -> None:
    config = devnet.config(tmp_path / "r.db")
    with Store(tmp_path / "r.db") as store:
        (first,) = scan_all(config, store)
        before_fork = devnet.node.snapshot()  # the common ancestor's state
        fork_block = devnet.client.block_number()
        (gone,) = seed_positions(devnet.node, devnet.deployment, 1, seed=4242)  # Borrow in the soon-orphaned history
        devnet.node.mine(3)
        (second,) = scan_all(config, store)
        assert gone.account in store.accounts("aave-v3-devnet")
        orphan_block = second.snapshot.block
        assert store.position_history(gone.account)

        devnet.node.revert(before_fork)  # another history from the fork: no Borrow by that account
        devnet.node.mine(orphan_block - fork_block + 5)  # and longer, so the old block numbers exist again
        (third,) = scan_all(config, store)

        accounts = store.accounts("aave-v3-devnet")
        assert gone.account not in accounts
        assert len(accounts) == len(devnet.seeded)
        assert {p.account for p in third.snapshot.positions} == {s.account for s in devnet.seeded}
        assert store.position_history(gone.account) == []  # its rows were on orphaned blocks only
        assert not [s for s in store.scans("aave-v3-devnet") if s["block"] == orphan_block]
        checkpoint = store.get_checkpoint("aave-v3-devnet", DISCOVERY)
        assert checkpoint is not None and checkpoint.block == third.snapshot.block
        assert third.log_range is not None and third.log_range.from_block <= first.snapshot.block + 1
        # everything stored is canonical now
        canonical = {b: devnet.client.get_block(b)["hash"] for b in {s["block"] for s in store.scans("aave-v3-devnet")}}
        assert all(s["block_hash"] == canonical[s["block"]] for s in store.scans("aave-v3-devnet"))
