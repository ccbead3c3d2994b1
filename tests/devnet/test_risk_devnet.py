"""The risk engine against reality: the real Aave V3 on anvil."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from monitor.chain.multicall import Multicall
from monitor.devnet.node import Tx
from monitor.devnet.seed import set_answer
from monitor.models import MAX_UINT256, WAD, MarketSnapshot
from monitor.protocols import aave_v3_abi as abi
from monitor.protocols.aave_v3 import AaveV3Reader, block_ref
from monitor.risk.book import book_from_snapshot
from monitor.risk.health import categories_by_id, position_account_data, rules_of, snapshot_account_data
from monitor.risk.liquidation import liquidation_call_amounts, liquidation_direction, liquidation_multipliers
from monitor.risk.stress import position_outcomes
from tests.support import Devnet

pytestmark = pytest.mark.devnet

SHOCKS = [
    {"WETH": 0.70},
    {"WETH": 0.80, "WBTC": 0.75, "SOL": 0.85},
    {"SOL": 0.55, "USDC": 0.90},  # an alt crash and a stablecoin depeg (hits eMode positions)
]


@pytest.fixture
def pinned_time(devnet: Devnet) -> Iterator[Devnet]:
    """Blocks keep one timestamp, so interest indexes do not move between reads."""
    devnet.client.request("anvil_setBlockTimestampInterval", [0])
    devnet.node.mine()
    yield devnet
    devnet.client.request("anvil_removeBlockTimestampInterval")


def read(devnet: Devnet) -> MarketSnapshot:
    reader = AaveV3Reader(
        devnet.client, market="m", pool_addresses_provider=devnet.deployment.pool_addresses_provider,
        chain_id=31337, multicall=Multicall(devnet.client, calls_per_batch=1000),
        read_account_data=True,  # the Pool's own HF: what the local recomputation is checked against
    )  # fmt: skip
    return reader.snapshot([s.account for s in devnet.seeded], block_ref(devnet.client))


def shocked_prices(snapshot: MarketSnapshot, shock: dict[str, float]) -> dict[str, int]:
    return {r.asset: round(r.price * shock.get(r.symbol, 1.0)) for r in snapshot.reserves}


def add_second_debts(devnet: Devnet, count: int) -> int:
    """Make ``count`` healthy no-eMode positions multi-debt: each borrows a second asset for a
    fifth of its available borrows (the 3.0 seed has one debt asset per position)."""
    snapshot = read(devnet)
    done = 0
    for p in snapshot.positions:
        if done == count:
            break
        if p.emode_category or not p.available_borrows_base or p.health_factor < 12 * WAD // 10:
            continue
        borrowed = {leg.symbol for leg in p.legs if leg.debt}
        other = next((r for r in snapshot.reserves if r.symbol in ("DAI", "USDC", "WETH") and r.symbol not in borrowed
                      and r.borrowing_enabled), None)  # fmt: skip
        if other is None:
            continue
        amount = p.available_borrows_base // 5 * 10**other.decimals // other.price
        devnet.node.send(Tx(p.account, devnet.deployment.pool, abi.BORROW.encode(other.asset, amount, 2, 0, p.account),
                            600_000, "borrow a second asset"))  # fmt: skip
        done += 1
    return done


def test_recomputed_hf_equals_chain_for_every_position(devnet: Devnet) -> None:
    assert add_second_debts(devnet, 40) == 40
    devnet.client.request("evm_increaseTime", [90 * 86_400])  # 90 days of interest
    devnet.node.mine(100)
    snapshot = read(devnet)
    assert rules_of(snapshot).version == "3.0" and snapshot.revision == 1
    assert len(snapshot.positions) >= 200
    assert sum(1 for p in snapshot.positions if p.emode_category) >= 50
    assert {r.decimals for r in snapshot.reserves} >= {6, 8, 18}
    assert sum(1 for p in snapshot.positions if sum(1 for leg in p.legs if leg.debt) >= 2) >= 40
    assert sum(1 for p in snapshot.positions if sum(1 for leg in p.legs if leg.collateral) >= 2) >= 40
    assert all(r.liquidity_index > 10**27 for r in snapshot.reserves if r.symbol in ("WETH", "USDC"))
    for position in snapshot.positions:
        data = snapshot_account_data(snapshot, position)
        assert data.health_factor == position.health_factor, position.account
        assert data.total_collateral_base == position.total_collateral_base
        assert data.total_debt_base == position.total_debt_base
        assert data.current_liquidation_threshold == position.current_liquidation_threshold
        assert data.ltv == position.ltv
        assert data.available_borrows_base == position.available_borrows_base


@pytest.mark.parametrize("shock", SHOCKS, ids=["eth-30", "eth-btc-sol", "sol-usdc-depeg"])
def test_predicted_liquidatable_set_equals_chain(pinned_time: Devnet, shock: dict[str, float]) -> None:
    devnet = pinned_time
    before = read(devnet)
    cats = categories_by_id(before.emode_categories)
    prices = shocked_prices(before, shock)
    predicted = {
        p.account
        for p in before.positions
        if position_account_data(p, before.reserves, cats, prices).health_factor < WAD
    }
    # the float engine (with the protocol's avg-LT floor) agrees with the exact one
    book = book_from_snapshot(before)
    outcome = position_outcomes(book, book.prices * 0 + [shock.get(s, 1.0) for s in book.symbols])
    float_set = {a for a, liq in zip(book.accounts, outcome.liquidatable, strict=True) if liq}
    near_one = {a for a, hf in zip(book.accounts, outcome.hf_after, strict=True) if abs(hf - 1) < 1e-7}
    assert float_set ^ predicted <= near_one

    for r in before.reserves:
        if r.symbol in shock:
            set_answer(devnet.node, devnet.deployment, r.symbol, prices[r.asset], mine=False)
    devnet.node.mine()
    after = read(devnet)
    actual = {p.account for p in after.positions if p.health_factor < WAD}
    assert 0 < len(predicted) < len(before.positions)
    assert predicted == actual
    # every HF, not just the verdict, is exact
    by_account = {p.account: p.health_factor for p in after.positions}
    for p in before.positions:
        assert position_account_data(p, before.reserves, cats, prices).health_factor == by_account[p.account]


def test_liquidation_call_seizes_what_the_engine_predicts(pinned_time: Devnet) -> None:
    devnet = pinned_time
    shock = SHOCKS[0]
    before = read(devnet)
    cats = categories_by_id(before.emode_categories)
    prices = shocked_prices(before, shock)
    symbols = [r.symbol for r in before.reserves]
    candidates = []
    for p in before.positions:
        hf = position_account_data(p, before.reserves, cats, prices).health_factor
        debts = [leg for leg in p.legs if leg.debt]
        weth = p.legs[symbols.index("WETH")]
        if hf < WAD and len(debts) == 1 and weth.collateral and weth.used_as_collateral:
            candidates.append((p, debts[0]))
    assert candidates
    position, debt_leg = candidates[0]
    predicted = liquidation_call_amounts(
        position, before.reserves, cats, "WETH", debt_leg.symbol, MAX_UINT256, prices=prices
    )
    for r in before.reserves:
        if r.symbol in shock:
            set_answer(devnet.node, devnet.deployment, r.symbol, prices[r.asset], mine=False)
    devnet.node.mine()

    liquidator = devnet.deployment.whale
    debt_token = devnet.deployment.token(debt_leg.symbol).address
    weth = devnet.deployment.token("WETH").address
    pool = devnet.deployment.pool
    devnet.node.send_many([
        Tx(liquidator, debt_token, abi.MINT.encode(liquidator, predicted.debt_repaid * 2), 200_000, "mint"),
        Tx(liquidator, debt_token, abi.APPROVE.encode(pool, MAX_UINT256), 100_000, "approve"),
    ])  # fmt: skip
    weth_before = devnet.node.call(weth, abi.BALANCE_OF, liquidator)
    debt_before = devnet.node.call(debt_token, abi.BALANCE_OF, liquidator)
    devnet.node.send(
        Tx(liquidator, pool, abi.LIQUIDATION_CALL.encode(weth, debt_token, position.account, MAX_UINT256, False),
           1_500_000, "liquidationCall")
    )  # fmt: skip
    seized = devnet.node.call(weth, abi.BALANCE_OF, liquidator) - weth_before
    repaid = debt_before - devnet.node.call(debt_token, abi.BALANCE_OF, liquidator)
    assert seized == predicted.collateral_to_liquidator
    assert repaid == predicted.debt_repaid
    assert predicted.close_factor_bps in (5_000, 10_000)


def test_liquidation_price_moves_hf_to_one(devnet: Devnet) -> None:
    snapshot = read(devnet)
    book = book_from_snapshot(snapshot)
    x = liquidation_multipliers(book)
    direction = liquidation_direction(book)
    col = book.column("WETH")
    # where WETH is a sizeable part of the position, a 0.5 % move past the liquidation price
    # outweighs Aave's avg-LT floor (at most 1.25e-4 of HF), so the verdict flips cleanly
    share = np.abs(book.collateral[:, col] * book.lt[:, col] - book.debt[:, col]) / book.debt.sum(axis=1)
    rows = [i for i in range(book.size) if x[i, col] == x[i, col] and share[i] > 0.2][:80]
    assert {direction[i, col] for i in rows} == {-1.0, 1.0}  # WETH suppliers and WETH borrowers
    for i in rows:
        one = book.with_rows([i])
        m = [1.0] * len(book.symbols)
        m[col] = float(x[i, col])
        # at the liquidation price HF is 1 up to Aave's avg-LT floor to whole bps
        assert position_outcomes(one, m).hf_after[0] == pytest.approx(1.0, abs=2e-4)
        towards = 1.005 if direction[i, col] > 0 else 0.995  # past the price, in its direction
        m[col] = float(x[i, col]) * towards
        assert position_outcomes(one, m).liquidatable[0]
        m[col] = float(x[i, col]) / towards
        assert not position_outcomes(one, m).liquidatable[0]


def test_snapshot_rebuilt_from_store_is_exact(devnet: Devnet, tmp_path: Path) -> None:
    from monitor.store import Store

    snapshot = read(devnet)
    with Store(tmp_path / "s.db") as store:
        store.save_snapshot(snapshot)
        rebuilt = store.load_snapshot("m")
    assert rebuilt.block == snapshot.block and rebuilt.reserves == snapshot.reserves
    assert rebuilt.emode_categories == snapshot.emode_categories
    original = {p.account: p for p in snapshot.positions}
    cats = categories_by_id(rebuilt.emode_categories)
    for p in rebuilt.positions:
        assert p == original[p.account]
        assert position_account_data(p, rebuilt.reserves, cats).health_factor == p.health_factor
