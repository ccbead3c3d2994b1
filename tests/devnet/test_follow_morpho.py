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

import random
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from monitor.chain.abi import fn
from monitor.chain.blocks import block_ref
from monitor.chain.multicall import Multicall
from monitor.chain.rpc import RpcClient
from monitor.devnet.anvil import Anvil
from monitor.devnet.morpho import (
    BORROW,
    ERC20_APPROVE,
    ERC20_MINT,
    LIQUIDATE,
    MARKET_PARAMS,
    ORACLE_SET_PRICE,
    SUPPLY,
    SUPPLY_COLLATERAL,
    MorphoDeployment,
    MorphoMarket,
    deploy_morpho,
    seed_morpho,
)
from monitor.devnet.node import DevnetNode, Tx
from monitor.models import MAX_UINT256, WAD
from monitor.positions import morpho_events as ev
from monitor.positions.base import Follower
from monitor.positions.morpho_follow import MorphoFollower
from monitor.protocols.morpho_blue import ORACLE_PRICE_SCALE, MorphoBlueReader
from tests.devnet.support_follow import describe, mine_block, position_rows

pytestmark = pytest.mark.devnet

WITHDRAW = fn(f"withdraw({MARKET_PARAMS},uint256,uint256,address,address)", "uint256,uint256")
REPAY = fn(f"repay({MARKET_PARAMS},uint256,uint256,address,bytes)", "uint256,uint256")
WITHDRAW_COLLATERAL = fn(f"withdrawCollateral({MARKET_PARAMS},uint256,address,address)")
SET_AUTHORIZATION = fn("setAuthorization(address,bool)")
LIQUIDATOR = "0x000000000000000000000000000000000000bEEF"
GAS = 1_500_000
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


class Driver:
    """Random Morpho activity of ``actors`` (and the liquidator), one block at a time."""

    def __init__(self, net: Net, actors: list[str], seed: int) -> None:
        self.net = net
        self.dep = net.deployment
        self.actors = actors
        self.rng = random.Random(seed)
        self.prices = {m.id: int(net.node.call(m.oracle, fn("price()", "uint256"))) for m in self.dep.markets}
        self.done: dict[str, int] = {}
        self.blocks = 0

    def fund(self) -> None:
        txs: list[Tx] = []
        for who in [*self.actors, LIQUIDATOR]:
            for symbol, (token, decimals) in self.dep.tokens.items():
                amount = 10**9 * 10**decimals
                approve = ERC20_APPROVE.encode(self.dep.morpho, MAX_UINT256)
                txs += [Tx(who, token, ERC20_MINT.encode(who, amount), 200_000, f"mint {symbol}"),
                        Tx(who, token, approve, 100_000, "approve")]  # fmt: skip
        # every actor may act for every other (repay / withdraw on behalf)
        txs += [Tx(a, self.dep.morpho, SET_AUTHORIZATION.encode(b, True), 100_000, "auth")
                for a in self.actors for b in self.actors if a != b][:200]  # fmt: skip
        self.net.node.set_balances([*self.actors, LIQUIDATOR], 10**21)
        self.net.node.send_many(txs)

    def _loan(self, m: MorphoMarket, low: float, high: float) -> int:
        return max(1, int(self.rng.uniform(low, high) * 10**m.loan_decimals))

    def _collateral(self, m: MorphoMarket, low: float, high: float) -> int:
        loan_units = self._loan(m, low, high)
        return max(1, loan_units * ORACLE_PRICE_SCALE // self.prices[m.id])

    def block(self, follower: MorphoFollower) -> int:
        self.blocks += 1
        txs: list[tuple[str, Tx]] = []
        owner = self.dep.owner
        if self.blocks % 4 == 0:
            m = self.rng.choice(self.dep.markets)
            move = self.rng.choice((-0.3, -0.12, -0.06, -0.02, 0.02, 0.05, 0.1))
            self.prices[m.id] = max(1, int(self.prices[m.id] * (1 + move)))
            txs.append(("price", Tx(owner, m.oracle, ORACLE_SET_PRICE.encode(self.prices[m.id]), 100_000, "price")))
        if self.blocks % 7 == 0:
            self.net.client.request("evm_increaseTime", [self.rng.choice((600, 86_400, 30 * 86_400))])
        for _ in range(self.rng.randint(1, 4)):
            txs.append(self._action(follower))
        txs += self._liquidations(follower)
        block, ok = mine_block(self.net.client, [t for _, t in txs])
        for (kind, _), good in zip(txs, ok, strict=True):
            if good:
                self.done[kind] = self.done.get(kind, 0) + 1
        return block

    def _action(self, follower: MorphoFollower) -> tuple[str, Tx]:
        who = self.rng.choice(self.actors)
        other = self.rng.choice(self.actors) if self.rng.random() < 0.25 else who
        m = self.rng.choice(self.dep.markets)
        p = m.params()
        pos = follower.positions.get((m.id, other))
        kind = self.rng.choice(("supply", "withdraw", "borrow", "borrow", "repay", "repay_all", "collateral_in",
                                "collateral_in", "collateral_out"))  # fmt: skip
        if kind == "supply":
            data = SUPPLY.encode(p, self._loan(m, 10, 50_000), 0, other, b"")
        elif kind == "withdraw":
            shares = pos.supply_shares // self.rng.choice((1, 2, 5)) if pos and pos.supply_shares else 10**12
            data = WITHDRAW.encode(p, 0, shares, other, who)
        elif kind == "borrow":
            data = BORROW.encode(p, self._loan(m, 10, 20_000), 0, other, who)
        elif kind == "repay":
            data = REPAY.encode(p, self._loan(m, 1, 5_000), 0, other, b"")
        elif kind == "repay_all":
            data = REPAY.encode(p, 0, pos.borrow_shares if pos and pos.borrow_shares else 1, other, b"")
        elif kind == "collateral_in":
            data = SUPPLY_COLLATERAL.encode(p, self._collateral(m, 50, 40_000), other, b"")
        else:
            amount = pos.collateral // self.rng.choice((1, 3, 10)) if pos and pos.collateral else 1
            data = WITHDRAW_COLLATERAL.encode(p, max(1, amount), other, who)
        return kind, Tx(who, self.dep.morpho, data, GAS, kind)

    def _liquidations(self, follower: MorphoFollower) -> list[tuple[str, Tx]]:
        out: list[tuple[str, Tx]] = []
        for m in self.dep.markets:
            hfs = follower.health_factors(m.id)
            under = sorted(a for a, hf in hfs.items() if hf < WAD)
            for borrower in under[:2] if self.rng.random() < 0.5 else []:  # some sink deeper first
                pos = follower.positions[(m.id, borrower)]
                if self.rng.random() < 0.5:  # seize everything: bad debt when it does not cover the debt
                    seized = pos.collateral if self.rng.random() < 0.5 else max(1, pos.collateral // 4)
                    data = LIQUIDATE.encode(m.params(), borrower, seized, 0, b"")
                else:
                    data = LIQUIDATE.encode(m.params(), borrower, 0, max(1, pos.borrow_shares // 3), b"")
                out.append(("liquidate", Tx(LIQUIDATOR, self.dep.morpho, data, GAS, "liquidate")))
        return out


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
        driver = Driver(net, actors, seed=3)
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
