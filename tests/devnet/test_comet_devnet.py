"""CometLike on anvil: Compound III's view functions and liquidation rule, checked against an
independent integer re-implementation over the same view data. The market here has a zero rate
model (indices move only when a test sets them); accrual, base transfers and absorb are tested
in test_comet_accrual.py and test_comet_discovery.py."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak, to_checksum_address

from monitor.chain.abi import Fn, fn
from monitor.chain.rpc import RpcClient
from monitor.contracts import load_artifact
from monitor.devnet import comet as cm
from monitor.devnet.anvil import Anvil
from monitor.devnet.node import DevnetNode, Tx
from monitor.devnet.seed import seed_account
from monitor.errors import DevnetError, InputError, RpcResponseError

pytestmark = pytest.mark.devnet

ROOT = Path(__file__).resolve().parents[2]
SEED = 5
SEEDED = 60
SYMBOL = fn("symbol()", "string")
DECIMALS = fn("decimals()", "uint8")


@dataclass
class CometNet:
    anvil: Anvil
    client: RpcClient
    node: DevnetNode
    deployment: cm.CometDeployment
    seeded: list[cm.SeededComet]

    def call(self, f: Fn, *args: Any) -> Any:
        return self.node.call(self.deployment.comet, f, *args)

    def call_all(self, f: Fn, *args: Any) -> tuple[Any, ...]:
        return f.decode(self.client.eth_call(self.deployment.comet, f.encode(*args)))

    def mutate(self, f: Fn, *args: Any) -> dict[str, Any]:
        tx = Tx(self.deployment.owner, self.deployment.comet, f.encode(*args), cm.MUTATOR_GAS, f.name)
        return self.node.send(tx)


@pytest.fixture(scope="module")
def comet_session() -> Iterator[CometNet]:
    with Anvil() as anvil:
        client = RpcClient([anvil.url], timeout=120, max_retries=0)
        node = DevnetNode(client)
        deployment = cm.deploy_comet(node, rates=cm.ZERO_RATES)
        seeded = cm.seed_comet(node, deployment, SEEDED, seed=SEED)
        yield CometNet(anvil, client, node, deployment, seeded)
        client.close()


@pytest.fixture
def net(comet_session: CometNet) -> Iterator[CometNet]:
    snapshot = comet_session.node.snapshot()
    yield comet_session
    comet_session.node.revert(snapshot)


# -- an independent re-implementation of Comet's rule over the view data ------------------------------


def trunc_div(n: int, d: int) -> int:
    """Solidity's signed division (truncates toward zero)."""
    q = abs(n) // abs(d)
    return q if (n >= 0) == (d > 0) else -q


def liquidity_from_views(net: CometNet, account: str, factor_index: int) -> int:
    """factor_index 5 = liquidateCollateralFactor, 4 = borrowCollateralFactor (fields of getAssetInfo)."""
    base_feed = net.call(cm.BASE_TOKEN_PRICE_FEED)
    base_scale = net.call(cm.BASE_SCALE)
    borrow = net.call(cm.BORROW_BALANCE_OF, account)
    assets_in = net.call_all(cm.USER_BASIC, account)[3]
    liquidity = trunc_div(-borrow * net.call(cm.GET_PRICE, base_feed), base_scale)
    for i in range(net.call(cm.NUM_ASSETS)):
        info = net.call(cm.GET_ASSET_INFO, i)
        offset, asset, feed, scale = info[0], info[1], info[2], info[3]
        if not (assets_in >> offset) & 1:
            continue
        value = net.call(cm.COLLATERAL_BALANCE_OF, account, asset) * net.call(cm.GET_PRICE, feed) // scale
        liquidity += value * info[factor_index] // 10**18
    return int(liquidity)


def py_is_liquidatable(net: CometNet, account: str) -> bool:
    return net.call(cm.BORROW_BALANCE_OF, account) > 0 and liquidity_from_views(net, account, 5) < 0


def py_is_borrow_collateralized(net: CometNet, account: str) -> bool:
    return net.call(cm.BORROW_BALANCE_OF, account) == 0 or liquidity_from_views(net, account, 4) >= 0


def liquidation_hf(net: CometNet, account: str) -> float:
    borrow_value = net.call(cm.BORROW_BALANCE_OF, account) * net.call(cm.GET_PRICE, net.deployment.base.feed)
    borrow_value //= 10**net.deployment.base.decimals
    return float((liquidity_from_views(net, account, 5) + borrow_value) / borrow_value)


def revert_selector(exc: RpcResponseError) -> str:
    """The custom error's selector from the revert data anvil returns with the JSON-RPC error."""
    data = exc.data
    assert isinstance(data, str), data
    return data[:10]


def error_selector(signature: str) -> str:
    return "0x" + keccak(text=signature)[:4].hex()


# -- build and interface ------------------------------------------------------------------------------


def test_build_is_reproducible() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compile_contracts.py"), "--check"],
        capture_output=True, text=True, cwd=ROOT, timeout=600, check=False,
    )  # fmt: skip
    if proc.returncode == 2:
        pytest.skip(f"node / solc-js missing: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    artifact = load_artifact("CometLike")
    assert artifact["compiler"].startswith("0.8.19+")
    source = (ROOT / "contracts" / "src" / "CometLike.sol").read_bytes()
    assert artifact["sourceSha256"] == hashlib.sha256(source).hexdigest()


def _canonical(param: dict[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        return "(" + ",".join(_canonical(c) for c in param["components"]) + ")" + kind[len("tuple") :]
    return kind


def test_view_constants_match_the_contract_abi() -> None:
    abi = load_artifact("CometLike")["abi"]
    functions = {
        f"{e['name']}({','.join(_canonical(p) for p in e['inputs'])})": [_canonical(p) for p in e["outputs"]]
        for e in abi
        if e["type"] == "function"
    }
    views = [
        cm.BASE_TOKEN, cm.BASE_TOKEN_PRICE_FEED, cm.BASE_SCALE, cm.NUM_ASSETS, cm.GET_ASSET_INFO,
        cm.GET_ASSET_INFO_BY_ADDRESS, cm.GET_PRICE, cm.BORROW_BALANCE_OF, cm.BALANCE_OF, cm.COLLATERAL_BALANCE_OF,
        cm.USER_BASIC, cm.USER_COLLATERAL, cm.IS_LIQUIDATABLE, cm.IS_BORROW_COLLATERALIZED,
    ]  # fmt: skip
    for f in views:
        assert functions[f.signature] == list(f.outputs), f.signature
    views += [cm.TOTALS_BASIC, *cm.RATE_PARAMS, cm.GET_UTILIZATION, cm.GET_BORROW_RATE, cm.GET_SUPPLY_RATE,
              cm.TRANSFER, cm.TRANSFER_FROM]  # fmt: skip
    for f in views:
        assert functions[f.signature] == list(f.outputs), f.signature
    mutators = (cm.ADD_ASSET, cm.SET_COLLATERAL, cm.BORROW, cm.SUPPLY, cm.SET_BORROW_INDEX, cm.SET_SUPPLY_INDEX,
                cm.ABSORB, cm.ACCRUE_ACCOUNT, cm.TRANSFER_ASSET, cm.ALLOW)  # fmt: skip
    for f in mutators:
        assert functions[f.signature] == [], f.signature
    assert cm.GET_ASSET_INFO.outputs == ("(uint8,address,address,uint64,uint64,uint64,uint64,uint128)",)
    events = {
        f"{e['name']}({','.join(_canonical(p) for p in e['inputs'])})": [p["indexed"] for p in e["inputs"]]
        for e in abi
        if e["type"] == "event"
    }
    assert events[cm.WITHDRAW_EVENT] == [True, True, False]
    assert events[cm.SUPPLY_COLLATERAL_EVENT] == [True, True, True, False]
    # the events discovery reads, with Comet's signatures and indexed fields (CometMainInterface)
    assert events["Transfer(address,address,uint256)"] == [True, True, False]
    assert events["TransferCollateral(address,address,address,uint256)"] == [True, True, True, False]
    assert events["AbsorbDebt(address,address,uint256,uint256)"] == [True, True, False, False]
    assert events["AbsorbCollateral(address,address,address,uint256,uint256)"] == [True, True, True, False, False]
    for signature, topic in [("Transfer(address,address,uint256)", cm.TRANSFER_TOPIC),
                             ("TransferCollateral(address,address,address,uint256)", cm.TRANSFER_COLLATERAL_TOPIC),
                             ("AbsorbDebt(address,address,uint256,uint256)", cm.ABSORB_DEBT_TOPIC)]:  # fmt: skip
        assert "0x" + keccak(text=signature).hex() == topic
    assert keccak(text="Withdraw(address,address,uint256)") == bytes.fromhex(cm.WITHDRAW_TOPIC[2:])


# -- deployment and seeding ---------------------------------------------------------------------------


def test_deployment_views(net: CometNet) -> None:
    d = net.deployment
    assert to_checksum_address(net.call(cm.BASE_TOKEN)) == d.base.address
    assert to_checksum_address(net.call(cm.BASE_TOKEN_PRICE_FEED)) == d.base.feed
    assert net.call(cm.BASE_SCALE) == 10**6
    assert net.call(cm.NUM_ASSETS) == len(d.collaterals) == 3
    assert net.call(cm.GET_PRICE, d.base.feed) == 10**8
    prices = {"USDC": 1, "WETH": 2000, "WBTC": 60000, "COMP": 50}
    assert cm.comet_prices(net.node, d) == {symbol: usd * 10**8 for symbol, usd in prices.items()}
    expected = {"WETH": (18, 825, 895, 950), "WBTC": (8, 700, 770, 950), "COMP": (18, 650, 700, 880)}
    for i, c in enumerate(d.collaterals):
        info = net.call(cm.GET_ASSET_INFO, i)
        assert info == net.call(cm.GET_ASSET_INFO_BY_ADDRESS, c.address)
        offset, asset, feed, scale, bcf, lcf, lf, cap = info
        dec, *milli = expected[c.symbol]
        assert (offset, to_checksum_address(asset), to_checksum_address(feed)) == (i, c.address, c.feed)
        assert (scale, c.decimals) == (10**dec, dec)
        assert [bcf, lcf, lf] == [m * 10**15 for m in milli]
        assert (bcf, lcf, lf, cap) == (c.factors.borrow_cf, c.factors.liquidate_cf, c.factors.liquidation_factor,
                                       c.factors.supply_cap)  # fmt: skip
        assert net.node.call(c.address, SYMBOL) == c.symbol and net.node.call(c.address, DECIMALS) == dec
    assert net.node.call(d.base.address, SYMBOL) == "USDC" and net.node.call(d.base.address, DECIMALS) == 6
    with pytest.raises(RpcResponseError) as bad:
        net.call(cm.GET_ASSET_INFO, 3)
    assert revert_selector(bad.value) == error_selector("BadAsset()")
    assert cm.CometDeployment.from_json(d.to_json()) == d


def test_seeded_accounts_are_reproducible_and_on_chain(net: CometNet) -> None:
    assert [s.account for s in net.seeded] == [seed_account(SEED + 20_000, i) for i in range(SEEDED)]
    assert {len(s.collaterals) for s in net.seeded} == {1, 2, 3}
    for s in net.seeded:
        assets_in = 0
        for c in net.deployment.collaterals:
            balance = net.call(cm.COLLATERAL_BALANCE_OF, s.account, c.address)
            assert balance == s.collaterals.get(c.symbol, 0)
            assert net.call_all(cm.USER_COLLATERAL, s.account, c.address) == (balance, 0)
            assets_in |= (balance > 0) << (net.call(cm.GET_ASSET_INFO_BY_ADDRESS, c.address)[0])
        principal, tracking_index, tracking_accrued, user_assets_in, reserved = net.call_all(cm.USER_BASIC, s.account)
        assert (user_assets_in, tracking_index, tracking_accrued, reserved) == (assets_in, 0, 0, 0)
        assert principal == -s.borrowed  # index 1e15: principal == present value
        assert net.call(cm.BORROW_BALANCE_OF, s.account) == s.borrowed
        assert net.call(cm.BALANCE_OF, s.account) == 0
        assert liquidation_hf(net, s.account) == pytest.approx(s.target_hf, rel=1e-6)
        assert 1.02 <= s.target_hf <= 2.0
        assert not net.call(cm.IS_LIQUIDATABLE, s.account)
    # the same seed on a fresh market gives the same accounts and amounts
    again = cm.seed_comet(net.node, cm.deploy_comet(net.node), SEEDED, seed=SEED)
    assert again == net.seeded


def test_seeding_emits_compound_events(net: CometNet) -> None:
    logs = net.client.request(
        "eth_getLogs", [{"address": net.deployment.comet, "fromBlock": "0x0", "toBlock": "latest"}]
    )
    withdraws = [log for log in logs if log["topics"][0] == cm.WITHDRAW_TOPIC]
    supplies = [log for log in logs if log["topics"][0] == cm.SUPPLY_COLLATERAL_TOPIC]
    borrowers = [to_checksum_address("0x" + log["topics"][1][-40:]) for log in withdraws]
    assert borrowers == [s.account for s in net.seeded]
    assert [int(log["data"], 16) for log in withdraws] == [s.borrowed for s in net.seeded]
    assert len(supplies) == sum(len(s.collaterals) for s in net.seeded)
    first = net.seeded[0]
    mine = [log for log in supplies if log["topics"][2][-40:] == first.account[2:].lower()]
    by_asset = {to_checksum_address("0x" + log["topics"][3][-40:]): int(log["data"], 16) for log in mine}
    assert by_asset == {net.deployment.collateral(sym).address: amount for sym, amount in first.collaterals.items()}


# -- the liquidation rule -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weth_move", "usdc_price"),
    [(-0.10, 1.0), (-0.25, 1.0), (-0.40, 0.9997)],
    ids=["weth-10%", "weth-25%", "weth-40%+usdc-depeg"],
)
def test_python_rule_equals_is_liquidatable(net: CometNet, weth_move: float, usdc_price: float) -> None:
    cm.set_comet_price(net.node, net.deployment, "WETH", 2000.0 * (1 + weth_move))
    cm.set_comet_price(net.node, net.deployment, "USDC", usdc_price)
    verdicts = []
    for s in net.seeded:
        onchain = net.call(cm.IS_LIQUIDATABLE, s.account)
        assert py_is_liquidatable(net, s.account) == onchain, s
        assert py_is_borrow_collateralized(net, s.account) == net.call(cm.IS_BORROW_COLLATERALIZED, s.account), s
        assert onchain == (liquidation_hf(net, s.account) < 1.0)
        if onchain:
            assert not net.call(cm.IS_BORROW_COLLATERALIZED, s.account)
        verdicts.append(onchain)
    assert any(verdicts) and not all(verdicts), f"{sum(verdicts)} of {len(verdicts)} liquidatable"


def _fresh(index: int) -> str:
    return seed_account(999, index)


def test_exactly_zero_liquidity_is_not_liquidatable(net: CometNet) -> None:
    weth = net.deployment.collateral("WETH")
    account = _fresh(1)
    net.mutate(cm.SET_COLLATERAL, account, weth.address, 10**18)  # 2,000 USD x 0.895 = 1,790 USD
    net.mutate(cm.BORROW, account, 1790 * 10**6)
    assert liquidity_from_views(net, account, 5) == 0
    assert net.call(cm.IS_LIQUIDATABLE, account) is False
    assert net.call(cm.IS_BORROW_COLLATERALIZED, account) is False  # 1,790 > 2,000 x 0.825
    net.mutate(cm.BORROW, account, 1)  # one base unit (1e-6 USD) more
    assert liquidity_from_views(net, account, 5) == -100
    assert net.call(cm.IS_LIQUIDATABLE, account) is True

    exact = _fresh(2)  # borrow-collateralized boundary: 2,000 x 0.825 = 1,650 USD
    net.mutate(cm.SET_COLLATERAL, exact, weth.address, 10**18)
    net.mutate(cm.BORROW, exact, 1650 * 10**6)
    assert net.call(cm.IS_BORROW_COLLATERALIZED, exact) is True
    net.mutate(cm.BORROW, exact, 1)
    assert net.call(cm.IS_BORROW_COLLATERALIZED, exact) is False
    assert net.call(cm.IS_LIQUIDATABLE, exact) is False


def test_negative_base_value_truncates_toward_zero(net: CometNet) -> None:
    """signedMulPrice rounds -borrow x price / scale toward zero: a fractional unit of debt is forgiven."""
    cm.set_comet_price(net.node, net.deployment, "USDC", 0.9997)
    borrow = 1_000_001  # x 99_970_000 / 1e6 = 99_970_099.97 -> liquidity -99_970_099
    owed = borrow * 99_970_000 // 10**6
    weighted_target = owed  # find WETH units whose weighted value is exactly that
    value = -(-weighted_target * 1000 // 895)  # smallest k with k x 0.895 >= target
    assert value * 895 // 1000 == weighted_target
    units = value * 5 * 10**6  # 1e18 / 2,000e8 per 8-decimal USD unit
    account = _fresh(3)
    weth = net.deployment.collateral("WETH")
    net.mutate(cm.SET_COLLATERAL, account, weth.address, units)
    net.mutate(cm.BORROW, account, borrow)
    assert liquidity_from_views(net, account, 5) == 0
    assert net.call(cm.IS_LIQUIDATABLE, account) is False  # flooring the negative value would say True
    net.mutate(cm.SET_COLLATERAL, account, weth.address, units - 5 * 10**6)  # one 8-decimal USD unit less
    assert net.call(cm.IS_LIQUIDATABLE, account) is True


def test_assets_in_decides_and_the_loop_returns_early(net: CometNet) -> None:
    weth, wbtc, comp = (net.deployment.collateral(s) for s in ("WETH", "WBTC", "COMP"))
    account = _fresh(4)
    net.mutate(cm.SET_COLLATERAL, account, weth.address, 10**18)
    net.mutate(cm.SET_COLLATERAL, account, comp.address, 100 * 10**18)  # 5,000 USD x 0.70 = 3,500
    net.mutate(cm.BORROW, account, 5000 * 10**6)  # 1,790 + 3,500 = 5,290 > 5,000
    assert net.call_all(cm.USER_BASIC, account)[3] == 0b101
    assert net.call(cm.IS_LIQUIDATABLE, account) is False
    receipt = net.mutate(cm.SET_COLLATERAL, account, comp.address, 0)
    assert [log["topics"][0] for log in receipt["logs"]] == [cm.WITHDRAW_COLLATERAL_TOPIC]
    assert net.call_all(cm.USER_BASIC, account)[3] == 0b001
    assert net.call(cm.IS_LIQUIDATABLE, account) is True
    # once WETH alone covers the debt, the loop returns before reading WBTC's price (a broken feed)
    net.mutate(cm.SET_COLLATERAL, account, weth.address, 10 * 10**18)
    net.mutate(cm.SET_COLLATERAL, account, wbtc.address, 10**8)
    cm.set_comet_answer(net.node, net.deployment, "WBTC", 0)
    assert net.call(cm.IS_LIQUIDATABLE, account) is False
    assert net.call(cm.IS_BORROW_COLLATERALIZED, account) is True
    with pytest.raises(RpcResponseError) as bad:
        net.call(cm.GET_PRICE, wbtc.feed)
    assert revert_selector(bad.value) == error_selector("BadPrice()")


def test_a_supplier_is_never_liquidatable(net: CometNet) -> None:
    account = _fresh(5)
    net.mutate(cm.SUPPLY, account, 10**6)
    assert net.call(cm.IS_LIQUIDATABLE, account) is False
    assert net.call(cm.IS_BORROW_COLLATERALIZED, account) is True
    assert net.call(cm.BORROW_BALANCE_OF, account) == 0 and net.call(cm.BALANCE_OF, account) == 10**6


# -- present values and principals --------------------------------------------------------------------


def test_borrow_balance_rounding_with_an_index(net: CometNet) -> None:
    index = 1_234_567_890_123_457  # 1.234567890123457
    net.mutate(cm.SET_BORROW_INDEX, index)
    account = _fresh(6)
    amount = 1_000_000_007
    receipt = net.mutate(cm.BORROW, account, amount)
    (log,) = receipt["logs"]
    assert log["topics"] == [cm.WITHDRAW_TOPIC, "0x" + account[2:].lower().rjust(64, "0"),
                             "0x" + account[2:].lower().rjust(64, "0")]  # fmt: skip
    assert int(log["data"], 16) == amount
    principal = -(-(amount * 10**15) // index)  # principalValueBorrow rounds up
    assert principal * index > amount * 10**15  # a real rounding case
    assert net.call_all(cm.USER_BASIC, account)[0] == -principal
    balance = principal * index // 10**15  # presentValueBorrow rounds down
    assert net.call(cm.BORROW_BALANCE_OF, account) == balance
    assert balance == amount  # up then down: the borrower owes exactly what was taken
    # interest: a larger index, the same principal
    later = 1_300_000_000_000_001
    net.mutate(cm.SET_BORROW_INDEX, later)
    assert net.call(cm.BORROW_BALANCE_OF, account) == principal * later // 10**15
    assert principal * later % 10**15 != 0
    # a second borrow adds to the present value, then rounds the principal up again
    net.mutate(cm.BORROW, account, 333)
    owed = principal * later // 10**15 + 333
    principal2 = -(-(owed * 10**15) // later)
    assert net.call_all(cm.USER_BASIC, account)[0] == -principal2
    assert net.call(cm.BORROW_BALANCE_OF, account) == principal2 * later // 10**15
    # a repayment larger than the debt turns the account into a supplier (principal rounds down)
    supply_index = 1_050_000_000_000_003
    net.mutate(cm.SET_SUPPLY_INDEX, supply_index)
    net.mutate(cm.SUPPLY, account, 2 * owed)
    credit = 2 * owed - principal2 * later // 10**15
    supplied = credit * 10**15 // supply_index
    assert net.call_all(cm.USER_BASIC, account)[0] == supplied
    assert net.call(cm.BALANCE_OF, account) == supplied * supply_index // 10**15 <= credit
    assert net.call(cm.BORROW_BALANCE_OF, account) == 0


# -- guards and helpers -------------------------------------------------------------------------------


def test_mutators_are_governor_only_and_checked(net: CometNet) -> None:
    weth = net.deployment.collateral("WETH")
    other = _fresh(7)
    calls = [
        cm.SET_COLLATERAL.encode(other, weth.address, 1),
        cm.BORROW.encode(other, 1),
        cm.SET_BORROW_INDEX.encode(10**15),
        cm.ADD_ASSET.encode(_fresh(8), weth.feed, 10**18, 1, 2, 3, 4),
    ]
    for data in calls:
        with pytest.raises(RpcResponseError) as bad:
            net.client.request("eth_call", [{"from": other, "to": net.deployment.comet, "data": "0x" + data.hex()}])
        assert revert_selector(bad.value) == error_selector("Unauthorized()")
    with pytest.raises(DevnetError, match="reverted"):
        net.mutate(cm.SET_COLLATERAL, other, weth.address, weth.factors.supply_cap + 1)
    with pytest.raises(DevnetError, match="reverted"):
        net.mutate(cm.SET_COLLATERAL, other, net.deployment.base.address, 1)  # not a collateral
    with pytest.raises(DevnetError, match="reverted"):  # borrowCF must stay below liquidateCF
        net.mutate(cm.ADD_ASSET, _fresh(8), weth.feed, 10**18, 9 * 10**17, 9 * 10**17, 10**18, 1)
    with pytest.raises(InputError):
        cm.set_comet_price(net.node, net.deployment, "WETH", 0)
    with pytest.raises(InputError, match="known: USDC, WETH, WBTC, COMP"):
        cm.set_comet_price(net.node, net.deployment, "DAI", 1.0)
    assert cm.set_comet_price(net.node, net.deployment, "weth", 1234.5) == 123_450_000_000
    assert net.call(cm.GET_PRICE, weth.feed) == 123_450_000_000
