"""Comet's two verdicts at a stale index, each against its on-chain counterpart.

``isLiquidatable`` values the debt at the stored borrow index; ``absorb`` accrues first. The reader
computes both in integers from ``totalsBasic()`` and the rate model for the block's timestamp;
here every account's "now" verdict must equal ``isLiquidatable`` and its "after accrual" verdict
the outcome of a real ``absorb`` (an eth_call pinned to the same block, which runs at that
block's timestamp; and a mined transaction inside evm_snapshot / evm_revert), over three price
levels, right after an accrual and after a one-year warp without one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from monitor.chain.blocks import BlockRef, block_ref
from monitor.chain.multicall import Multicall
from monitor.chain.rpc import RpcClient
from monitor.cli import main
from monitor.config import parse_config
from monitor.devnet import comet as cm
from monitor.devnet.anvil import Anvil
from monitor.devnet.deploy import install_multicall
from monitor.devnet.node import DevnetNode, Tx
from monitor.models import WAD, MarketSnapshot, format_wad
from monitor.protocols.compound_v3 import (
    CompoundV3Reader,
    accrued_indices,
    borrow_rate,
    is_liquidatable,
    present_value,
    supply_rate,
    utilization,
)
from monitor.service import Monitor
from monitor.store import Store

pytestmark = pytest.mark.devnet

SEED = 11
ACCOUNTS = 60
YEAR = cm.SECONDS_PER_YEAR
MARKET = "comet-usdc"


@dataclass
class Net:
    url: str
    client: RpcClient
    node: DevnetNode
    deployment: cm.CometDeployment
    accounts: list[str]

    def reader(self) -> CompoundV3Reader:
        return CompoundV3Reader(self.client, market=MARKET, comet=self.deployment.comet, chain_id=31337,
                                multicall=Multicall(self.client))  # fmt: skip

    def snapshot(self) -> tuple[BlockRef, MarketSnapshot]:
        head = block_ref(self.client)
        (snap,) = self.reader().snapshots(self.accounts, head)
        return head, snap

    def view(self, f: Any, *args: Any, block: int | str = "latest") -> Any:
        return self.node.call(self.deployment.comet, f, *args, block=block)


@pytest.fixture(scope="module")
def session() -> Iterator[Net]:
    with Anvil() as anvil:
        client = RpcClient([anvil.url], timeout=120, max_retries=0)
        node = DevnetNode(client)
        install_multicall(node)
        deployment = cm.deploy_comet(node)  # cUSDCv3's rate model
        seeded = cm.seed_comet(node, deployment, ACCOUNTS, seed=SEED, hf_range=(1.0, 1.5), utilization=0.9)
        yield Net(anvil.url, client, node, deployment, [s.account for s in seeded])
        client.close()


@pytest.fixture
def net(session: Net) -> Iterator[Net]:
    snapshot = session.node.snapshot()
    yield session
    session.node.revert(snapshot)


def test_rate_model_and_accrual_equal_the_contract(net: Net) -> None:
    state = net.reader().read_state(block_ref(net.client).number)
    assert state.totals is not None and state.rates is not None
    assert state.rates.borrow_base == 15 * 10**15 // YEAR and state.rates.borrow_kink == 8 * 10**17
    u = utilization(state.totals)
    assert 0.8 < u / 1e18 < 1.0  # above the kink: the high slope applies
    assert u == net.view(cm.GET_UTILIZATION)
    assert borrow_rate(state.totals, state.rates) == net.view(cm.GET_BORROW_RATE, u)
    assert supply_rate(state.totals, state.rates) == net.view(cm.GET_SUPPLY_RATE, u)
    for seconds in (68, 86_400, YEAR):
        block = cm.warp(net.node, seconds)
        number, timestamp = int(block["number"], 16), int(block["timestamp"], 16)
        state = net.reader().read_state(number)
        assert state.totals is not None and state.rates is not None
        supply_index, borrow_index = accrued_indices(state.totals, state.rates, timestamp)
        assert borrow_index > state.totals.base_borrow_index  # stale: interest not yet in the stored index
        for account in net.accounts[:5]:
            principal = net.node.call(net.deployment.comet, cm.USER_BASIC, account, block=number)
            assert principal < 0
            assert present_value(-principal, borrow_index) == net.view(cm.BORROW_BALANCE_OF, account, block=number)
        total_supply = present_value(state.totals.total_supply_base, supply_index)
        assert total_supply == net.node.call(net.deployment.comet, cm.fn("totalSupply()", "uint256"), block=number)
    # accrueAccount writes exactly the predicted indices for its own block's timestamp
    before = net.reader().read_state(block_ref(net.client).number)
    assert before.totals is not None and before.rates is not None
    receipt = net.node.send(Tx(net.deployment.owner, net.deployment.comet, cm.ACCRUE_ACCOUNT.encode(net.accounts[0]),
                               cm.MUTATOR_GAS, "accrueAccount"))  # fmt: skip
    mined = int(receipt["blockNumber"], 16)
    stamp = int(net.client.request("eth_getBlockByNumber", [hex(mined), False])["timestamp"], 16)
    after = net.reader().read_state(mined)
    assert after.totals is not None
    expected = accrued_indices(before.totals, before.rates, stamp)
    assert (after.totals.base_supply_index, after.totals.base_borrow_index) == expected
    assert after.totals.last_accrual_time == stamp


def _compare(net: Net, head: BlockRef, snap: MarketSnapshot) -> tuple[int, int, int]:
    """Each position's two verdicts against isLiquidatable and a real absorb at the block:
    returns (liquidatable now, after accrual, differing)."""
    now = after = differ = 0
    assert len(snap.positions) == len(net.accounts)
    for p in snap.positions:
        onchain_now = net.view(cm.IS_LIQUIDATABLE, p.account, block=head.number)
        onchain_absorb = cm.absorb_succeeds(net.node, net.deployment, p.account, head.number)
        assert p.liquidatable_now == onchain_now, (p.account, p.health_factor_stored_index)
        assert p.liquidatable_after_accrual == onchain_absorb, (p.account, p.health_factor)
        assert (p.health_factor < WAD) == onchain_absorb
        assert p.legs[-1].debt == net.view(cm.BORROW_BALANCE_OF, p.account, block=head.number)
        assert p.health_factor_stored_index is not None and p.health_factor <= p.health_factor_stored_index
        now += onchain_now
        after += onchain_absorb
        differ += onchain_now != onchain_absorb
    return now, after, differ


def test_both_verdicts_equal_their_onchain_counterparts_over_prices_and_a_year(net: Net) -> None:
    results: dict[tuple[str, int], tuple[int, int, int]] = {}
    for stage in ("accrued", "one-year warp"):
        if stage == "accrued":
            net.node.send(Tx(net.deployment.owner, net.deployment.comet, cm.ACCRUE_ACCOUNT.encode(net.accounts[0]),
                             cm.MUTATOR_GAS, "accrueAccount"))  # fmt: skip
        else:
            cm.warp(net.node, YEAR)
        for weth in (2000, 1800, 1600):
            cm.set_comet_price(net.node, net.deployment, "WETH", weth)  # a feed update: no accrual
            head, snap = net.snapshot()
            results[(stage, weth)] = _compare(net, head, snap)
    checked = len(results) * ACCOUNTS
    assert checked == 360 and ACCOUNTS >= 40
    # right after an accrual the two verdicts are a few seconds of interest apart: (almost) never different
    assert sum(results[("accrued", w)][2] for w in (2000, 1800, 1600)) <= 1
    # a year without accrual (cUSDCv3's model at 90 % utilization: 6.8 % a year) separates them
    for weth in (2000, 1800, 1600):
        now, after, differ = results[("one-year warp", weth)]
        assert differ > 0 and after == now + differ, results
    assert all(results[("one-year warp", w)][1] > results[("accrued", w)][1] for w in (2000, 1800, 1600))


def test_a_mined_absorb_succeeds_where_is_liquidatable_says_false(net: Net) -> None:
    cm.warp(net.node, YEAR)
    head, snap = net.snapshot()
    stale = [p for p in snap.positions if p.liquidatable_after_accrual and not p.liquidatable_now]
    healthy = [p for p in snap.positions if not p.liquidatable_after_accrual]
    assert stale and healthy
    state = net.reader().read_state(head.number)
    assert state.totals is not None and state.rates is not None
    for p in (stale[0], healthy[0]):
        snapshot_id = net.node.snapshot()
        try:
            stamp = head.timestamp + 1
            net.client.request("evm_setNextBlockTimestamp", [stamp])
            _, index = accrued_indices(state.totals, state.rates, stamp)
            basic = cm.USER_BASIC.decode(net.client.eth_call(net.deployment.comet, cm.USER_BASIC.encode(p.account)))
            principal, assets_in = int(basic[0]), int(basic[3])
            balances = [leg.collateral for leg in p.legs[:-1]]
            predicted = is_liquidatable(state, present_value(-principal, index), assets_in, balances)
            tx = Tx(net.deployment.owner, net.deployment.comet, cm.ABSORB.encode(net.deployment.owner, [p.account]),
                    cm.ABSORB_GAS, "absorb")  # fmt: skip
            if predicted:
                receipt = net.node.send(tx)
                topics = [log["topics"] for log in receipt["logs"]]
                absorbed = [t for t in topics if t[0] == cm.ABSORB_DEBT_TOPIC]
                assert [t[2][-40:] for t in absorbed] == [p.account[2:].lower()]
                assert net.view(cm.BORROW_BALANCE_OF, p.account) == 0
                assert p is stale[0]
            else:
                with pytest.raises(Exception, match="reverted"):
                    net.node.send(tx)
                assert p is healthy[0]
        finally:
            net.node.revert(snapshot_id)


def test_scan_json_carries_both_verdicts(net: Net, tmp_path: Path, capsys: Any) -> None:
    cm.warp(net.node, YEAR)
    config = {
        "chains": {"devnet": {"chain_id": 31337, "rpc_urls": [net.url], "max_log_range": 5000}},
        "markets": [{"name": MARKET, "protocol": "compound_v3", "chain": "devnet", "comet": net.deployment.comet,
                     "start_block": 0}],
        "store": {"path": str(tmp_path / "c.db")},
    }  # fmt: skip
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(config))
    assert main(["scan", "--config", str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["account"] for r in rows} >= set(net.accounts)
    _, snap = net.snapshot()
    by_account = {p.account: p for p in snap.positions}
    stale = 0
    for row in rows:
        p = by_account.get(row["account"])
        if p is None:  # the supplier that sets the utilization: no collateral, no debt
            continue
        assert row["liquidatable_now"] is p.liquidatable_now
        assert row["liquidatable_after_accrual"] is p.liquidatable_after_accrual
        assert p.health_factor_stored_index is not None
        assert row["health_factor_stored_index"] == format_wad(p.health_factor_stored_index)
        assert float(row["health_factor"]) <= float(row["health_factor_stored_index"])
        stale += row["liquidatable_after_accrual"] and not row["liquidatable_now"]
    assert stale > 0
    assert main(["scan", "--config", str(path)]) == 0
    assert "only after interest accrual" in capsys.readouterr().out


def test_the_alert_says_when_the_verdicts_differ(net: Net, tmp_path: Path) -> None:
    cm.warp(net.node, YEAR)
    cm.set_comet_price(net.node, net.deployment, "WETH", 1600)
    data = {
        "chains": {"devnet": {"chain_id": 31337, "rpc_urls": [net.url], "max_log_range": 5000}},
        "markets": [{"name": MARKET, "protocol": "compound_v3", "chain": "devnet", "comet": net.deployment.comet,
                     "accounts": net.accounts}],
        "store": {"path": str(tmp_path / "a.db")},
    }  # fmt: skip
    config = parse_config(data, tmp_path / "a.yaml", env={})
    with Store(config.store.path) as store:
        (tick,) = [Monitor(config, store, {}).tick()]
        (scan,) = tick.scans
        alerts = {a["subject"]: json.loads(a["detail"]) for a in store.alerts(market=MARKET)}
    stale = {p.account for p in scan.snapshot.positions if p.liquidatable_after_accrual and not p.liquidatable_now}
    agree = {p.account for p in scan.snapshot.positions if p.liquidatable_after_accrual and p.liquidatable_now}
    assert stale and agree and stale | agree <= set(alerts)
    for account in stale:
        assert alerts[account]["severity"] == "liquidatable"
        (line,) = [x for x in alerts[account]["lines"] if x.startswith("verdicts differ")]
        assert "not liquidatable at the stored index (isLiquidatable now), liquidatable after interest accrual" in line
    for account in agree:
        assert not any(x.startswith("verdicts differ") for x in alerts[account]["lines"])
