"""The Morpho Blue reader against the real Morpho Blue (compiled from the npm package)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from monitor.chain.blocks import block_ref
from monitor.chain.multicall import Multicall
from monitor.chain.rpc import RpcClient
from monitor.devnet.anvil import Anvil
from monitor.devnet.morpho import LIQUIDATE, MorphoDeployment, deploy_morpho, seed_morpho, set_morpho_price
from monitor.devnet.node import DevnetNode, Tx
from monitor.errors import RpcResponseError
from monitor.models import WAD
from monitor.protocols.morpho_blue import MorphoBlueReader, liquidation_incentive_factor

pytestmark = pytest.mark.devnet


@dataclass
class MorphoNet:
    client: RpcClient
    node: DevnetNode
    deployment: MorphoDeployment
    accounts: list[str]


@pytest.fixture(scope="module")
def morpho() -> Iterator[MorphoNet]:
    with Anvil() as anvil:
        client = RpcClient([anvil.url], timeout=120, max_retries=0)
        node = DevnetNode(client)
        deployment = deploy_morpho(node)
        seeded = seed_morpho(node, deployment, 80, seed=5, hf_range=(1.03, 1.8))
        yield MorphoNet(client, node, deployment, [s.account for s in seeded])
        client.close()


def reader(net: MorphoNet) -> MorphoBlueReader:
    return MorphoBlueReader(
        net.client, market="morpho-devnet", morpho=net.deployment.morpho,
        market_ids=[m.id for m in net.deployment.markets], chain_id=31337, multicall=Multicall(net.client),
    )  # fmt: skip


def test_liquidate_succeeds_exactly_for_positions_the_reader_marks(morpho: MorphoNet) -> None:
    snapshot_id = morpho.node.snapshot()
    try:
        set_morpho_price(morpho.node, morpho.deployment, 0, 2000 * 0.80)  # WETH -20 %
        set_morpho_price(morpho.node, morpho.deployment, 1, 30000 * 0.85)  # WBTC -15 %
        head = block_ref(morpho.client)
        snapshots = reader(morpho).snapshots(morpho.accounts, head)
        assert len(snapshots) == 2 and all(s.positions for s in snapshots)
        checked = {True: 0, False: 0}
        supplier = morpho.deployment.supplier
        for snapshot, market in zip(snapshots, morpho.deployment.markets, strict=True):
            assert snapshot.reserves[0].symbol == market.collateral_symbol
            for position in snapshot.positions:
                liquidatable = position.health_factor < WAD
                data = LIQUIDATE.encode(market.params(), position.account, 1, 0, b"")
                call = {
                    "from": supplier,
                    "to": morpho.deployment.morpho,
                    "gas": hex(2_000_000),
                    "data": "0x" + data.hex(),
                }
                try:
                    morpho.client.request("eth_call", [call, hex(head.number)])
                    succeeded = True
                except RpcResponseError as exc:
                    assert "position is healthy" in str(exc)
                    succeeded = False
                assert succeeded == liquidatable, (position.account, position.health_factor)
                checked[liquidatable] += 1
        assert checked[True] >= 5 and checked[False] >= 5 and sum(checked.values()) >= 30
        # one real liquidation, mined
        victim = next(p for p in snapshots[0].positions if p.health_factor < WAD)
        data = LIQUIDATE.encode(morpho.deployment.markets[0].params(), victim.account, 10**15, 0, b"")
        receipt = morpho.node.send(Tx(supplier, morpho.deployment.morpho, data, 2_000_000, "liquidate"))
        assert int(receipt["status"], 16) == 1
    finally:
        morpho.node.revert(snapshot_id)


def test_snapshot_values_and_incentive(morpho: MorphoNet) -> None:
    snapshots = reader(morpho).snapshots(morpho.accounts, block_ref(morpho.client))
    weth = snapshots[0]
    assert weth.market.startswith("morpho-devnet:weth/usdc-86:")
    collateral, loan = weth.reserves
    assert (collateral.decimals, loan.decimals) == (18, 6)
    assert collateral.price == 2000 * 10**8 and loan.price == 10**8  # in loan-token units, 1e8 each
    assert collateral.liquidation_threshold == 8600
    assert collateral.liquidation_bonus == liquidation_incentive_factor(86 * 10**16) * 10_000 // WAD == 10438
    for position in weth.positions:
        assert 1.0 < position.health_factor / WAD < 1.9
        assert position.total_collateral_base > position.total_debt_base > 0
