"""The Compound V3 reader against our Comet-semantics contract: its "now" verdict equals
`isLiquidatable` and its post-accrual verdict the outcome of `absorb` for every account at
several price levels (the stale-index cases are in test_comet_accrual.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from monitor.chain.blocks import block_ref
from monitor.chain.multicall import Multicall
from monitor.chain.rpc import RpcClient
from monitor.devnet.anvil import Anvil
from monitor.devnet.comet import CometDeployment, absorb_succeeds, deploy_comet, seed_comet, set_comet_price
from monitor.devnet.deploy import install_multicall
from monitor.devnet.node import DevnetNode
from monitor.models import WAD
from monitor.protocols.compound_v3 import IS_LIQUIDATABLE, CompoundV3Reader

pytestmark = pytest.mark.devnet


@dataclass
class CometNet:
    client: RpcClient
    node: DevnetNode
    deployment: CometDeployment
    accounts: list[str]


@pytest.fixture(scope="module")
def comet() -> Iterator[CometNet]:
    with Anvil() as anvil:
        client = RpcClient([anvil.url], timeout=120, max_retries=0)
        node = DevnetNode(client)
        install_multicall(node)
        deployment = deploy_comet(node)
        seeded = seed_comet(node, deployment, 60, seed=9, hf_range=(1.02, 1.8))
        yield CometNet(client, node, deployment, [s.account for s in seeded])
        client.close()


@pytest.mark.parametrize("weth_usd", [2000, 1700, 1400, 1100])
def test_reader_verdict_equals_is_liquidatable(comet: CometNet, weth_usd: float) -> None:
    snapshot_id = comet.node.snapshot()
    try:
        set_comet_price(comet.node, comet.deployment, "WETH", weth_usd)
        reader = CompoundV3Reader(comet.client, market="comet-usdc", comet=comet.deployment.comet, chain_id=31337,
                                  multicall=Multicall(comet.client))  # fmt: skip
        head = block_ref(comet.client)
        (snapshot,) = reader.snapshots(comet.accounts, head)
        assert len(snapshot.positions) == len(comet.accounts) >= 30
        verdicts = []
        for position in snapshot.positions:
            onchain = comet.node.call(comet.deployment.comet, IS_LIQUIDATABLE, position.account, block=head.number)
            assert position.liquidatable_now == onchain, (position.account, position.health_factor_stored_index)
            after = absorb_succeeds(comet.node, comet.deployment, position.account, head.number)
            assert (position.health_factor < WAD) == position.liquidatable_after_accrual == after, position.account
            verdicts.append(onchain)
        if weth_usd <= 1400:
            assert any(verdicts) and not all(verdicts)
        assert [r.symbol for r in snapshot.reserves] == ["WETH", "WBTC", "COMP", "USDC"]
        assert snapshot.reserves[0].liquidation_threshold == 8950 and snapshot.reserves[0].ltv == 8250
    finally:
        comet.node.revert(snapshot_id)
