"""A near-tie stress case on Comet: liqmon's stress predicts exactly what the chain decides.

Two positions hold WETH and COMP in a mix whose collateral-weighted liquidation threshold is
8000.91 bps, with debts that put them at HF 1.00005 and 0.99995 after a -20 % WETH shock. Comet
weighs each collateral by its own factor (no rounding of an average), so after the real shock
the first stays healthy (``isLiquidatable`` false, ``absorb`` reverts ``NotLiquidatable``) and the
second is absorbed. Aave 3.0's floor of the average LT to whole bps would lower the first to
about 0.99994 (a wrong "liquidatable"); the stress engine must use Comet's rule instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor.chain.blocks import block_ref
from monitor.chain.multicall import Multicall
from monitor.chain.rpc import RpcClient
from monitor.cli import main
from monitor.devnet import comet as cm
from monitor.devnet.anvil import Anvil
from monitor.devnet.deploy import install_multicall
from monitor.devnet.node import DevnetNode, Tx
from monitor.devnet.seed import seed_account
from monitor.protocols.compound_v3 import CompoundV3Reader
from monitor.risk.book import book_from_snapshot, floored_weighted, hf_of
from monitor.risk.stress import position_outcomes

pytestmark = pytest.mark.devnet

MARKET = "comet-usdc"
WETH_UNITS = 3 * 10**18
COMP_UNITS = 9103 * 10**16  # 91.03 COMP
SHOCK = 0.8  # WETH 2,000 -> 1,600 USD
TARGETS = {"healthy": 100_005, "liquidatable": 99_995}  # HF after the shock, x 1e5


@dataclass
class Net:
    url: str
    client: RpcClient
    node: DevnetNode
    deployment: cm.CometDeployment
    accounts: dict[str, str]  # name -> account


def _weighted_after_shock(d: cm.CometDeployment) -> int:
    """Comet's weighted collateral (8-decimal USD) of the mix at the shocked prices, in its integers."""
    weth, comp = d.collateral("WETH"), d.collateral("COMP")
    v_weth = cm.mul_price(WETH_UNITS, int(2000 * SHOCK) * 10**8, 10**18)
    v_comp = cm.mul_price(COMP_UNITS, 50 * 10**8, 10**18)
    return cm.mul_factor(v_weth, weth.factors.liquidate_cf) + cm.mul_factor(v_comp, comp.factors.liquidate_cf)


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    with Anvil() as anvil:
        client = RpcClient([anvil.url], timeout=120, max_retries=0)
        node = DevnetNode(client)
        install_multicall(node)
        d = cm.deploy_comet(node)
        cm.seed_comet(node, d, 20, seed=8, utilization=0.85)  # a market around them
        weighted = _weighted_after_shock(d)
        accounts = {}
        txs = []
        for i, (name, target) in enumerate(TARGETS.items()):
            account = seed_account(4242, i)
            accounts[name] = account
            borrow = weighted * 10**5 // (target * 100)  # base units (1e6) at 1 USD (1e8): owed = borrow x 100
            for symbol, units in (("WETH", WETH_UNITS), ("COMP", COMP_UNITS)):
                data = cm.SET_COLLATERAL.encode(account, d.collateral(symbol).address, units)
                txs.append(Tx(d.owner, d.comet, data, cm.MUTATOR_GAS, "collateral"))
            txs.append(Tx(d.owner, d.comet, cm.BORROW.encode(account, borrow), cm.MUTATOR_GAS, "borrow"))
        node.send_many(txs)
        yield Net(anvil.url, client, node, d, accounts)
        client.close()


def test_near_tie_stress_predicts_the_onchain_verdict(net: Net, tmp_path: Path, capsys: Any) -> None:
    reader = CompoundV3Reader(net.client, market=MARKET, comet=net.deployment.comet, chain_id=31337,
                              multicall=Multicall(net.client))  # fmt: skip
    (snapshot,) = reader.snapshots(list(net.accounts.values()), block_ref(net.client))
    book = book_from_snapshot(snapshot)
    m = np.ones(len(book.symbols))
    m[book.column("WETH")] = SHOCK
    predicted = position_outcomes(book, m)
    rows = {a: i for i, a in enumerate(book.accounts)}
    healthy, liquidatable = rows[net.accounts["healthy"]], rows[net.accounts["liquidatable"]]
    assert predicted.hf_after[healthy] == pytest.approx(1.00005, abs=2e-7)
    assert predicted.hf_after[liquidatable] == pytest.approx(0.99995, abs=2e-7)
    # the case is a real one: Aave 3.0's average-LT floor would call the healthy position liquidatable
    coll = book.collateral[[healthy]] * m
    avg_bps = (coll * book.lt[[healthy]]).sum() / coll.sum() * 1e4
    assert 0.8 < avg_bps % 1 < 1.0
    assert hf_of(floored_weighted(coll, book.lt[[healthy]]), (book.debt[[healthy]] * m).sum(axis=1))[0] < 1.0

    # the chain: apply the shock, ask isLiquidatable and a real absorb
    cm.set_comet_price(net.node, net.deployment, "WETH", 2000 * SHOCK)
    onchain = {}
    for name, account in net.accounts.items():
        view = net.node.call(net.deployment.comet, cm.IS_LIQUIDATABLE, account)
        absorb = cm.absorb_succeeds(net.node, net.deployment, account)
        assert view == absorb, name  # seconds of interest cannot move a 5e-5 margin
        onchain[name] = absorb
    assert onchain == {"healthy": False, "liquidatable": True}
    assert bool(predicted.liquidatable[healthy]) is onchain["healthy"]
    assert bool(predicted.liquidatable[liquidatable]) is onchain["liquidatable"]

    # and `liqmon stress` from a stored scan (taken before the shock) says the same
    cm.set_comet_price(net.node, net.deployment, "WETH", 2000)
    config = {
        "chains": {"devnet": {"chain_id": 31337, "rpc_urls": [net.url], "max_log_range": 5000}},
        "markets": [{"name": MARKET, "protocol": "compound_v3", "chain": "devnet", "comet": net.deployment.comet,
                     "start_block": 0, "accounts": list(net.accounts.values())}],
        "store": {"path": str(tmp_path / "s.db")},
    }  # fmt: skip
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps(config))
    assert main(["scan", "--config", str(path)]) == 0
    capsys.readouterr()
    assert main(["stress", "--config", str(path), "--shock", "WETH=-20%", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    verdict = {p["account"]: p["liquidatable"] for p in report["positions"]}
    assert verdict == {net.accounts["healthy"]: False, net.accounts["liquidatable"]: True}
