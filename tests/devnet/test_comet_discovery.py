"""Comet borrowers found from every event that can make or change one, checkpointed and reorg-safe.

A borrow by base ``transfer`` emits no ``Withdraw`` and no event naming the borrower at all (the
real ``transferBase`` emits Transfer only for supply withdrawn or added); the borrower's own
events are the collateral ones (``SupplyCollateral`` dst, ``TransferCollateral`` to). A
Withdraw-only discovery misses it; liqmon's must not.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_utils import to_checksum_address

from monitor.chain.multicall import Multicall
from monitor.chain.rpc import RpcClient
from monitor.config import Config, parse_config
from monitor.devnet import comet as cm
from monitor.devnet.anvil import Anvil
from monitor.devnet.deploy import install_multicall
from monitor.devnet.node import DevnetNode, Tx
from monitor.devnet.seed import seed_account
from monitor.errors import DevnetError
from monitor.protocols.compound_v3 import CompoundV3Reader
from monitor.scan import scan_all
from monitor.store import Store

pytestmark = pytest.mark.devnet

MARKET = "comet-usdc"
USDC = 10**6


@dataclass
class Net:
    url: str
    client: RpcClient
    node: DevnetNode
    deployment: cm.CometDeployment
    seeded: list[str]

    def send(self, sender: str, data: bytes, what: str) -> dict[str, object]:
        if sender != self.deployment.owner:
            self.node.set_balances([sender], 10**18)  # gas for an impersonated user
        return self.node.send(Tx(sender, self.deployment.comet, data, cm.MUTATOR_GAS, what))

    def govern(self, data: bytes, what: str) -> dict[str, object]:
        return self.send(self.deployment.owner, data, what)

    def config(self, tmp_path: Path) -> Config:
        data = {
            "chains": {"devnet": {"chain_id": 31337, "rpc_urls": [self.url], "max_log_range": 5000}},
            "markets": [{"name": MARKET, "protocol": "compound_v3", "chain": "devnet",
                         "comet": self.deployment.comet, "start_block": 0}],
            "store": {"path": str(tmp_path / "d.db")},
        }  # fmt: skip
        return parse_config(data, tmp_path / "d.yaml", env={})

    def reader(self) -> CompoundV3Reader:
        return CompoundV3Reader(self.client, market=MARKET, comet=self.deployment.comet, chain_id=31337,
                                multicall=Multicall(self.client))  # fmt: skip

    def found(self, from_block: int, to_block: int) -> set[str]:
        out: set[str] = set()
        self.reader().discover(from_block, to_block, lambda _a, _b, accounts: out.update(accounts))
        return out

    def head(self) -> int:
        return int(self.client.request("eth_blockNumber"), 16)


@pytest.fixture(scope="module")
def session() -> Iterator[Net]:
    with Anvil() as anvil:
        client = RpcClient([anvil.url], timeout=120, max_retries=0)
        node = DevnetNode(client)
        install_multicall(node)
        deployment = cm.deploy_comet(node)
        seeded = cm.seed_comet(node, deployment, 12, seed=4, utilization=0.8)
        yield Net(anvil.url, client, node, deployment, [s.account for s in seeded])
        client.close()


@pytest.fixture
def net(session: Net) -> Iterator[Net]:
    snapshot = session.node.snapshot()
    yield session
    session.node.revert(snapshot)


def _fresh(i: int) -> str:
    return seed_account(777, i)


def _names(receipt: dict[str, object], account: str) -> bool:
    """Whether any log of the receipt names ``account`` in a topic."""
    logs = receipt["logs"]
    assert isinstance(logs, list)
    return any(t[-40:] == account[2:].lower() for log in logs for t in log["topics"][1:])


def _borrow_by_transfer(net: Net, account: str, weth: int, amount: int) -> dict[str, object]:
    """Collateral for ``account`` (SupplyCollateral), then ``account`` itself sends base it does not have."""
    net.govern(cm.SET_COLLATERAL.encode(account, net.deployment.collateral("WETH").address, weth), "collateral")
    return net.send(account, cm.TRANSFER.encode(_fresh(99), amount), "transfer")


def _withdraw_only(net: Net) -> set[str]:
    logs = net.client.request("eth_getLogs", [{"address": net.deployment.comet, "fromBlock": "0x0",
                                               "toBlock": "latest", "topics": [cm.WITHDRAW_TOPIC]}])  # fmt: skip
    return {to_checksum_address("0x" + log["topics"][1][-40:]) for log in logs}


def test_a_borrower_made_by_base_transfer_is_discovered_and_read(net: Net, tmp_path: Path) -> None:
    x = _fresh(1)
    receipt = _borrow_by_transfer(net, x, 10**18, 1000 * USDC)  # 2,000 USD of WETH, 1,000 USDC sent
    assert not _names(receipt, x)  # transferBase: no Withdraw, no Transfer naming the borrower
    principal = net.node.call(net.deployment.comet, cm.USER_BASIC, x)
    assert principal < 0 and net.node.call(net.deployment.comet, cm.BORROW_BALANCE_OF, x) >= 1000 * USDC
    # collateral received by TransferCollateral: the borrower's only event names it as `to`
    w, z = _fresh(2), _fresh(3)
    wbtc = net.deployment.collateral("WBTC").address
    net.govern(cm.SET_COLLATERAL.encode(w, wbtc, 10**8), "collateral")
    moved = net.send(w, cm.TRANSFER_ASSET.encode(z, wbtc, 10**8 // 2), "transferAsset")
    assert [log["topics"][0] for log in moved["logs"]] == [cm.TRANSFER_COLLATERAL_TOPIC]  # type: ignore[index]
    receipt = net.send(z, cm.TRANSFER.encode(_fresh(99), 5000 * USDC), "transfer")
    assert not _names(receipt, z)
    assert x not in _withdraw_only(net) and z not in _withdraw_only(net)  # what a Withdraw-only scan sees

    config = net.config(tmp_path)
    with Store(config.store.path) as store:
        (result,) = scan_all(config, store)
        accounts = set(store.accounts(MARKET))
    assert {x, z, w} | set(net.seeded) <= accounts
    positions = {p.account: p for p in result.snapshot.positions}
    assert positions[x].total_debt_base > 0 and positions[z].total_debt_base > 0
    assert positions[x].liquidatable_now is False and positions[x].health_factor > 10**18
    assert positions[w].total_debt_base == 0 and positions[w].total_collateral_base > 0  # collateral only: kept
    supplier = cm.supplier_account(4)
    assert supplier not in accounts  # Supply / Transfer(0, dst) cannot make a borrower: not a candidate
    assert set(net.seeded) <= set(positions)


def test_each_event_kind_names_its_account(net: Net) -> None:
    # base Transfer(from): a supplier who sends more than its supply into debt
    s = _fresh(4)
    net.govern(cm.SET_COLLATERAL.encode(s, net.deployment.collateral("WETH").address, 10**18), "collateral")
    net.govern(cm.SUPPLY.encode(s, 200 * USDC), "supply")
    start = net.head() + 1
    receipt = net.send(s, cm.TRANSFER.encode(_fresh(98), 700 * USDC), "transfer")
    topics = [log["topics"] for log in receipt["logs"]]  # type: ignore[union-attr]
    assert [t[0] for t in topics] == [cm.TRANSFER_TOPIC, cm.TRANSFER_TOPIC]  # supply withdrawn, supply added
    assert net.node.call(net.deployment.comet, cm.USER_BASIC, s) < 0
    assert net.found(start, net.head()) == {s}  # Transfer(s, 0): from; Transfer(0, dst) is a mint: skipped
    # NotLiquidatable: absorbing a healthy borrower reverts
    with pytest.raises(DevnetError, match="reverted"):
        net.node.send(Tx(net.deployment.owner, net.deployment.comet,
                         cm.ABSORB.encode(net.deployment.owner, [s]), cm.ABSORB_GAS, "absorb"))  # fmt: skip


def test_discovery_is_checkpointed_and_rolls_back_a_reorg(net: Net, tmp_path: Path) -> None:
    config = net.config(tmp_path)
    with Store(config.store.path) as store:
        (first,) = scan_all(config, store)
        assert first.log_range is not None and first.new_accounts == len(set(store.accounts(MARKET)))
        checkpoint = first.log_range.to_block
        fork = net.node.snapshot()
        x = _fresh(5)
        _borrow_by_transfer(net, x, 10**18, 900 * USDC)
        (second,) = scan_all(config, store)
        assert second.log_range is not None and second.log_range.from_block == checkpoint + 1  # only new blocks
        assert second.new_accounts == 1 and x in store.accounts(MARKET)
        # a reorg: the blocks that made x a borrower are replaced by longer, different history
        net.node.revert(fork)
        y = _fresh(6)
        net.node.mine(3)
        _borrow_by_transfer(net, y, 10**18, 800 * USDC)
        (third,) = scan_all(config, store)
        accounts = store.accounts(MARKET)
        assert y in accounts and x not in accounts
        assert {p.account for p in third.snapshot.positions} >= {y} and x not in {
            p.account for p in third.snapshot.positions
        }
    # AbsorbDebt(borrower): after absorb the account has no debt; discovery still names it
    victim = net.seeded[0]
    cm.set_comet_price(net.node, net.deployment, "WETH", 500)
    cm.set_comet_price(net.node, net.deployment, "WBTC", 15000)
    cm.set_comet_price(net.node, net.deployment, "COMP", 10)
    assert cm.absorb_succeeds(net.node, net.deployment, victim)
    start = net.head() + 1
    absorbed = net.node.send(Tx(net.deployment.owner, net.deployment.comet,
                                cm.ABSORB.encode(net.deployment.owner, [victim]), cm.ABSORB_GAS, "absorb"))  # fmt: skip
    kinds = {log["topics"][0] for log in absorbed["logs"]}
    assert {cm.ABSORB_DEBT_TOPIC, cm.ABSORB_COLLATERAL_TOPIC} <= kinds
    assert net.found(start, net.head()) == {victim}
    assert net.node.call(net.deployment.comet, cm.BORROW_BALANCE_OF, victim) == 0
