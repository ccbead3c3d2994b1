"""The daemon's tick through the position tracker, on both devnets: ONE full read, then per
block the head's header + the follower's eth_getLogs + one batched read; every followed HF ==
getUserAccountData at every reconciled block of a random replay; a price move alerts with at
most 3 requests; the volatility window equals the old per-tick re-read of the store."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor.chain.blocks import block_ref
from monitor.config import Config, parse_config
from monitor.devnet.aave_origin import FEED_SET_ANSWER, ORIGIN_EMODES, OriginDevnet, user_account_data
from monitor.devnet.node import Tx
from monitor.devnet.seed import seed_positions, set_answer
from monitor.devnet.session import MARKET_NAME, devnet_config
from monitor.models import WAD, Position
from monitor.positions import AaveFollower
from monitor.positions.devnet_replay import ReplayDriver
from monitor.positions.tracker import PositionTracker
from monitor.protocols.aave_v3 import DISCOVERY
from monitor.risk.policy import market_state_for
from monitor.service import Monitor, TickResult, stored_history
from monitor.store import Store
from tests.support import Devnet

pytestmark = [pytest.mark.devnet]

LIQUIDATOR = "0x000000000000000000000000000000000000bEEF"


def _config(data: dict[str, Any], tmp_path: Path, **daemon: int) -> Config:
    data["daemon"] = {"reconcile_sample": 0, "reconcile_all_every": 0, **daemon}
    return parse_config(data, tmp_path / "c.yaml")


def _requests(monitor: Monitor) -> Counter[str]:
    return Counter({m: n for c in monitor.positions.clients.values() for m, n in c.method_counts.items()})


def _tick(monitor: Monitor) -> tuple[TickResult, dict[str, int]]:
    before = _requests(monitor)
    tick = monitor.tick()
    after = _requests(monitor)
    return tick, {m: after[m] - before[m] for m in after if after[m] != before[m]}


def _held(p: Position) -> list[tuple[str, int, int]]:
    return [(g.asset, g.collateral, g.debt) for g in p.legs if g.collateral or g.debt]


def _follower(monitor: Monitor, market: str) -> AaveFollower:
    follower = monitor.positions.markets[market].follower
    assert isinstance(follower, AaveFollower)
    return follower


@pytest.mark.slow
def test_daemon_tick_follows_a_random_replay_with_hf_equal_to_the_chain(
    origin_devnet: OriginDevnet, tmp_path: Path
) -> None:
    """Aave 3.6: 240 positions, 60 blocks of random actions and price moves through Monitor.tick;
    every 10th block all are reconciled (no difference) and every followed HF and total equals
    getUserAccountData read independently; a block without reconciliation costs <= 3 requests."""
    dep = origin_devnet.deployment
    db = tmp_path / "t.db"
    config = _config(origin_devnet.config_data(str(db)), tmp_path, reconcile_all_every=10)
    name = config.markets[0].name

    def move(symbol: str, answer: int) -> Tx:
        return Tx(dep.admin, dep.token(symbol).feed, FEED_SET_ANSWER.encode(answer), 200_000, f"price {symbol}")

    client = origin_devnet.client
    with Store(db) as store:
        monitor = Monitor(config, store, {})
        try:
            first, _ = _tick(monitor)
            follower = _follower(monitor, name)
            state = follower.state
            assert len(first.scans[0].snapshot.positions) >= 200
            actors = origin_devnet.accounts[:30]
            driver = ReplayDriver(client, dep.pool, list(state.reserves.values()), actors, LIQUIDATOR,
                                  price_move=move, emode_ids=[e.id for e in ORIGIN_EMODES], seed=7)  # fmt: skip
            driver.fund()
            monitor.tick()  # the funding blocks, in one catch-up step
            client.request("evm_setAutomine", [False])
            checked = 0
            steady: list[int] = []
            try:
                for _ in range(60):
                    block = driver.block(state)
                    tick, used = _tick(monitor)
                    (scan,) = tick.scans
                    step = monitor.positions.markets[name].last[0].step
                    assert scan.snapshot.block == block and step is not None
                    assert step.differences == (), step.differences[:5]
                    if block % 10:
                        steady.append(sum(used.values()))
                        continue
                    positions = {p.account: p for p in scan.snapshot.positions}
                    accounts = sorted(positions)
                    for account, chain in zip(accounts, user_account_data(origin_devnet.node, dep, accounts),
                                              strict=True):  # fmt: skip
                        p = positions[account]
                        assert (p.total_collateral_base, p.total_debt_base, p.health_factor) == (
                            chain[0], chain[1], chain[5]), account  # fmt: skip
                    stored = {p.account: p for p in store.load_snapshot(name).positions}  # change-only rows
                    for account, p in positions.items():
                        if p.total_collateral_base or p.total_debt_base:
                            q = stored[account]
                            assert (q.health_factor, q.total_debt_base) == (p.health_factor, p.total_debt_base)
                            assert _held(q) == _held(p), account
                    checked += 1
            finally:
                client.request("evm_setAutomine", [True])
        finally:
            monitor.close()
    assert checked == 6
    assert max(steady) <= 3, steady  # header + eth_getLogs + one aggregate3
    done = driver.activity.succeeded
    assert done.get("borrow", 0) and done.get("repay", 0) and done.get("transfer", 0)
    assert follower.difference_counts == {}


def test_price_move_alerts_through_the_tracker_in_three_requests(devnet: Devnet, tmp_path: Path) -> None:
    """Aave 3.0: the first tick reads everything once; then a WETH crash in one block is
    alerted (watch or worse recorded) by a tick of at most 3 requests, and a tick on the same
    block asks only for the head."""
    db = tmp_path / "a.db"
    config = _config(_data(devnet, db), tmp_path)
    with Store(db) as store:
        monitor = Monitor(config, store, {})
        try:
            first, used_first = _tick(monitor)
            assert len(first.scans[0].snapshot.positions) == len(devnet.seeded)
            again, used_again = _tick(monitor)
            assert used_again == {"eth_getBlockByNumber": 1}  # the head only: nothing new
            assert again.scans[0].snapshot.block == first.scans[0].snapshot.block
            alerts_before = len(store.alerts())
            set_answer(devnet.node, devnet.deployment, "WETH", 1100 * 10**8)
            crash, used = _tick(monitor)
            assert sum(used.values()) <= 3, used
            assert set(used) <= {"eth_getBlockByNumber", "eth_getLogs", "eth_call"}
            snapshot = crash.scans[0].snapshot
            assert snapshot.block == first.scans[0].snapshot.block + 1
            before = {p.account: p.health_factor for p in first.scans[0].snapshot.positions}
            low = {p.account for p in snapshot.positions if p.health_factor < WAD <= before[p.account]}
            assert low  # the crash made these liquidatable
            states = store.alert_states(snapshot.market)
            assert all(states[a]["severity"] == "liquidatable" for a in low)
            new = [a for a in store.alerts()[alerts_before:] if a["severity"] != "ok" and a["block"] == snapshot.block]
            assert len(new) >= 5 and sum(crash.evaluations[0].reasons.values()) >= len(new)
        finally:
            monitor.close()
    assert sum(used_first.values()) < 30  # the first sync: discovery + one full read


def _data(devnet: Devnet, db: Path) -> dict[str, Any]:
    return devnet_config(devnet.url, devnet.deployment, str(db))


def test_volatility_window_equals_the_stored_re_read(devnet: Devnet, tmp_path: Path) -> None:
    """The in-memory window, loaded once and appended each tick, gives the same market state
    (daily log returns) as the old re-read of 400 days of stored prices at every tick."""
    db = tmp_path / "w.db"
    config = _config(_data(devnet, db), tmp_path)
    prices = [2000, 1990, 2100, 1700, 1700, 1850]
    with Store(db) as store:
        monitor = Monitor(config, store, {})
        try:
            for i, usd in enumerate(prices):
                devnet.client.request("evm_increaseTime", [6 * 86_400 + i * 3600])
                set_answer(devnet.node, devnet.deployment, "WETH", usd * 10**8)
                tick = monitor.tick()
                snapshot = tick.scans[0].snapshot
                symbols = [r.symbol for r in snapshot.reserves]
                now = float(snapshot.timestamp)
                old = market_state_for(symbols, stored_history(store, snapshot), now)
                new = monitor.market_state(snapshot)
                assert old.source == new.source
                np.testing.assert_array_equal(old.log_returns, new.log_returns)
                assert np.isfinite(new.log_returns).any() or i < 2
        finally:
            monitor.close()


def test_catch_up_in_bounded_steps_records_new_borrowers(devnet: Devnet, tmp_path: Path) -> None:
    """Behind by more than ``daemon.catch_up_blocks``: steps of at most that many blocks, each
    at a block whose header was fetched; a borrower that appeared meanwhile is followed and
    recorded in the store's accounts with the discovery checkpoint."""
    db = tmp_path / "c.db"
    config = _config(_data(devnet, db), tmp_path, catch_up_blocks=3)
    with Store(db) as store:
        monitor = Monitor(config, store, {})
        try:
            start = monitor.tick().scans[0].snapshot.block
            (newcomer,) = seed_positions(devnet.node, devnet.deployment, 1, seed=777)
            devnet.node.mine(7)
            head = devnet.client.block_number()
            blocks = [start]
            while blocks[-1] < head:
                snapshot = monitor.tick().scans[0].snapshot
                assert snapshot.block_hash == block_ref(devnet.client, snapshot.block).hash
                blocks.append(snapshot.block)
            assert all(0 < b - a <= 3 for a, b in itertools.pairwise(blocks)), blocks
            follower = _follower(monitor, MARKET_NAME)
            assert newcomer.account in follower.state.accounts and follower.state.accounts[newcomer.account].debt
            assert newcomer.account in store.accounts(MARKET_NAME)
            checkpoint = store.get_checkpoint(MARKET_NAME, DISCOVERY)
            assert checkpoint is not None and start < checkpoint.block <= head
            assert follower.reconcile() == []
        finally:
            monitor.close()


def test_a_market_without_follower_is_read_in_full_at_each_head(devnet: Devnet, tmp_path: Path) -> None:
    """A reader without a follower (the factory says None) keeps the full read at every new head,
    with the same positions as the follower gives at the same block."""
    db, other = tmp_path / "f.db", tmp_path / "g.db"
    config, config_b = _config(_data(devnet, db), tmp_path), _config(_data(devnet, other), tmp_path)
    with Store(db) as store, Store(other) as store_b:
        full = Monitor(config, store, {}, tracker=PositionTracker(config, followers=lambda *_: None))
        followed = Monitor(config_b, store_b, {})
        try:
            for move in (None, 1500, 1300):
                if move is not None:
                    set_answer(devnet.node, devnet.deployment, "WETH", move * 10**8)
                (a,) = full.tick().scans
                (b,) = followed.tick().scans
                assert a.snapshot.block == b.snapshot.block
                assert {p.account: p.health_factor for p in a.snapshot.positions} == {
                    p.account: p.health_factor for p in b.snapshot.positions}  # fmt: skip
            assert full.positions.markets[MARKET_NAME].follower is None
            assert full.positions.markets[MARKET_NAME].last[0].step is None  # a full read, not a step
        finally:
            full.close()
            followed.close()
