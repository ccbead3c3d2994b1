"""Acceptance of the per-revision Aave math on the newest Pool (aave-v3-origin 3.6.0, revision 10)
on anvil, after 90 days of interest: the recomputed getUserAccountData equals the chain's for every
position; the predicted liquidatable set under three shocks equals the chain's after the prices
are set; real liquidationCalls equal the prediction to the wei (debt repaid, collateral to the
liquidator, protocol fee, deficit) and a predicted MustNotLeaveDust is the real revert.

Block timestamps are pinned (``anvil_setBlockTimestampInterval 0``) so the interest indexes do not
move between the read the prediction uses and the liquidation's block.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import replace

import numpy as np
import pytest

from monitor.chain.blocks import block_ref
from monitor.chain.multicall import Multicall
from monitor.devnet.aave_origin import (
    GET_RESERVE_DEFICIT,
    OriginDevnet,
    OriginPosition,
    liquidate,
    set_origin_answer,
)
from monitor.models import MAX_UINT256, WAD, MarketSnapshot, Position
from monitor.protocols.aave_revisions import variable_debt_balance
from monitor.protocols.aave_v3 import AaveV3Reader
from monitor.risk.book import book_from_snapshot
from monitor.risk.health import (
    V30,
    categories_by_id,
    effective_params,
    in_emode_category,
    position_account_data,
    rules_of,
    snapshot_account_data,
)
from monitor.risk.liquidation import (
    REVERT_DUST,
    LiquidationOutcome,
    exact_liquidation_price,
    predict_liquidation_call,
    snapshot_liquidation_call,
)
from monitor.risk.stress import position_outcomes

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

SHOCKS = [
    {"WETH": 0.72, "wstETH": 0.70},  # an ETH crash (eMode 1 and ETH collateral outside it)
    {"WBTC": 0.75, "WETH": 0.85, "DAI": 0.97},
    {"PTUSD": 0.85, "USDC": 0.96, "USDT": 1.03},  # a PT / stablecoin depeg (eMode 2 and 3)
]


@pytest.fixture
def pinned(origin_devnet: OriginDevnet) -> Iterator[OriginDevnet]:
    """Blocks keep one timestamp, so interest indexes do not move between reads."""
    origin_devnet.client.request("anvil_setBlockTimestampInterval", [0])
    origin_devnet.node.mine()
    yield origin_devnet
    origin_devnet.client.request("anvil_removeBlockTimestampInterval")


def read(origin: OriginDevnet) -> MarketSnapshot:
    reader = AaveV3Reader(
        origin.client, market="origin", pool_addresses_provider=origin.deployment.pool_addresses_provider,
        chain_id=31337, multicall=Multicall(origin.client, calls_per_batch=1000),
        read_account_data=True,  # the Pool's own HF: what the local recomputation is checked against
    )  # fmt: skip
    return reader.snapshot(origin.accounts, block_ref(origin.client))


def oracle(snapshot: MarketSnapshot) -> dict[str, int]:
    return {r.asset: r.price for r in snapshot.reserves}


def shocked(snapshot: MarketSnapshot, shock: Mapping[str, float]) -> dict[str, int]:
    return {r.asset: round(r.price * shock.get(r.symbol, 1.0)) for r in snapshot.reserves}


def set_prices(origin: OriginDevnet, snapshot: MarketSnapshot, prices: Mapping[str, int]) -> None:
    for r in snapshot.reserves:
        if prices[r.asset] != r.price:
            set_origin_answer(origin.node, origin.deployment, r.symbol, prices[r.asset])


def plans(origin: OriginDevnet) -> dict[str, OriginPosition]:
    return {p.account.lower(): p for p in origin.positions}


def test_recomputed_account_data_equals_chain_for_every_position(origin_devnet: OriginDevnet) -> None:
    snapshot = read(origin_devnet)
    rules = rules_of(snapshot)
    assert (snapshot.revision, rules.version, rules.rounding, rules.liquid_emode) == (10, "3.6", "v35", True)
    positions = [p for p in snapshot.positions if p.total_debt_base]
    assert len(positions) >= 200
    # the book the test stands on: mixed decimals, every eMode kind, multi-collateral and multi-debt
    by_plan = plans(origin_devnet)
    kinds = Counter(by_plan[p.account.lower()].kind for p in positions)
    assert len(kinds) >= 12 and min(kinds.values()) >= 5, kinds
    assert {r.decimals for r in snapshot.reserves} >= {6, 8, 18}
    assert {p.emode_category for p in positions} == {0, 1, 2, 3}
    assert sum(1 for p in positions if sum(1 for leg in p.legs if leg.collateral) >= 2) >= 50
    assert sum(1 for p in positions if sum(1 for leg in p.legs if leg.debt) >= 2) >= 30
    cats = categories_by_id(snapshot.emode_categories)
    outside = lt_zero = 0
    for p in positions:
        for leg, r in zip(p.legs, snapshot.reserves, strict=True):
            if leg.collateral and p.emode_category:
                outside += not in_emode_category(r, p.emode_category, cats, rules)
                lt_zero += r.liquidation_threshold == 0
    assert outside >= 20 and lt_zero >= 20  # collateral outside the bitmap; PT collateral only in eMode

    v30_mismatch = 0
    for p in positions:
        data = snapshot_account_data(snapshot, p)
        assert data.health_factor == p.health_factor, p.account
        assert (data.total_collateral_base, data.total_debt_base) == (p.total_collateral_base, p.total_debt_base)
        assert (data.current_liquidation_threshold, data.ltv) == (p.current_liquidation_threshold, p.ltv)
        assert data.available_borrows_base == p.available_borrows_base, p.account
        v30_mismatch += position_account_data(p, snapshot.reserves, cats, rules=V30).health_factor != p.health_factor
    # the 3.0 rules on this Pool are wrong for most positions (the reason for the revision rules)
    assert v30_mismatch > len(positions) // 2


@pytest.mark.parametrize("shock", SHOCKS, ids=["eth-crash", "btc-eth", "pt-stable-depeg"])
def test_predicted_liquidatable_set_equals_chain(pinned: OriginDevnet, shock: dict[str, float]) -> None:
    origin = pinned
    before = read(origin)
    prices = shocked(before, shock)
    exact = {p.account: snapshot_account_data(before, p, prices).health_factor for p in before.positions}
    predicted = {a for a, hf in exact.items() if hf < WAD}
    # the float engine, with the 3.6 book (no bps floor), agrees but for near-exact ties
    book = book_from_snapshot(before)
    assert book.lt_rounding == "exact" and book.close_factor == "v33"
    outcome = position_outcomes(book, np.array([shock.get(s, 1.0) for s in book.symbols]))
    float_set = {a for a, liq in zip(book.accounts, outcome.liquidatable, strict=True) if liq}
    near_one = {a for a, hf in zip(book.accounts, outcome.hf_after, strict=True) if abs(hf - 1) < 1e-9}
    assert float_set ^ predicted <= near_one

    set_prices(origin, before, prices)
    after = read(origin)
    assert oracle(after) == prices and after.block > before.block
    actual = {p.account for p in after.positions if p.health_factor < WAD}
    assert 0 < len(predicted) < len(before.positions)
    assert predicted == actual
    for p in after.positions:  # every HF, not just the verdict
        assert exact[p.account] == p.health_factor, p.account


# -- real liquidationCalls ---------------------------------------------------------------------


def _collateral_symbols(snapshot: MarketSnapshot, p: Position) -> list[str]:
    legs = zip(p.legs, snapshot.reserves, strict=True)
    return [r.symbol for leg, r in legs if leg.used_as_collateral and leg.collateral]


def _debt_symbols(snapshot: MarketSnapshot, p: Position) -> list[str]:
    return [r.symbol for leg, r in zip(p.legs, snapshot.reserves, strict=True) if leg.scaled_variable_debt]


def _value(snapshot: MarketSnapshot, p: Position, symbol: str, *, debt: bool) -> int:
    i = next(i for i, r in enumerate(snapshot.reserves) if r.symbol == symbol)
    leg, r = p.legs[i], snapshot.reserves[i]
    amount = leg.variable_debt if debt else leg.collateral
    return amount * r.price // 10**r.decimals


def _price_for_hf(snapshot: MarketSnapshot, p: Position, symbol: str, factor: float) -> dict[str, int] | None:
    """Prices with ``symbol`` at ``factor`` x the price where the position's HF reaches 1 (None
    when no fall of that price makes it liquidatable)."""
    found = exact_liquidation_price(
        p, snapshot.reserves, categories_by_id(snapshot.emode_categories), symbol, rules=rules_of(snapshot)
    )
    if found is None or found[1] != -1:
        return None
    asset = snapshot.reserve(symbol).asset
    return oracle(snapshot) | {asset: max(1, int(found[0] * factor))}


def _check(origin: OriginDevnet, snapshot: MarketSnapshot, p: Position, collateral: str, debt: str,
           cover: int, prices: dict[str, int]) -> LiquidationOutcome:  # fmt: skip
    """Predict, set the prices, run the real liquidationCall and compare to the wei."""
    dep, node = origin.deployment, origin.node
    predicted = snapshot_liquidation_call(snapshot, p, collateral, debt, cover, prices=prices)
    set_prices(origin, snapshot, prices)
    assert snapshot_account_data(read(origin), next(q for q in read(origin).positions if q.account == p.account)) \
        .health_factor == predicted.health_factor  # fmt: skip
    deficits_before = {r.asset: node.call(dep.pool, GET_RESERVE_DEFICIT, r.asset) for r in snapshot.reserves}
    real = liquidate(node, dep, p.account, collateral, debt, cover)
    if predicted.revert is not None:
        assert (real.success, real.revert_error) == (False, predicted.revert)
        return predicted
    assert real.success, real.revert_error
    (event,) = real.events("LiquidationCall")
    assert event.args["debtToCover"] == predicted.debt_repaid
    assert event.args["liquidatedCollateralAmount"] == predicted.collateral_to_liquidator
    a_token = dep.a_tokens[collateral].lower()
    treasury, borrower = dep.treasury.lower(), p.account.lower()
    fee = [e for e in real.events("Transfer") if e.address.lower() == a_token
           and e.args["from"].lower() == borrower and e.args["to"].lower() == treasury]  # fmt: skip
    scaled = [e for e in real.events("BalanceTransfer") if e.address.lower() == a_token
              and e.args["to"].lower() == treasury]  # fmt: skip
    if predicted.protocol_fee:
        assert [e.args["value"] for e in fee] == [predicted.protocol_fee]
        assert [e.args["value"] for e in scaled] == [predicted.protocol_fee_scaled]
    else:
        assert not fee
    created = {e.args["debtAsset"].lower(): e.args["amountCreated"] for e in real.events("DeficitCreated")}
    assert created == {a.lower(): v for a, v in predicted.deficit.items()}
    for r in snapshot.reserves:
        now = node.call(dep.pool, GET_RESERVE_DEFICIT, r.asset)
        assert now - deficits_before[r.asset] == predicted.deficit.get(r.asset, 0), r.symbol
    return predicted


def test_liquidation_of_a_position_under_2000_usd_takes_the_whole_debt(pinned: OriginDevnet) -> None:
    before = read(pinned)
    by_plan = plans(pinned)
    cats = categories_by_id(before.emode_categories)
    for p in before.positions:
        plan = by_plan[p.account.lower()]
        debts = _debt_symbols(before, p)
        if not plan.small or len(debts) != 1 or p.health_factor < WAD:
            continue
        coll = max(_collateral_symbols(before, p), key=lambda s: _value(before, p, s, debt=False))
        prices = _price_for_hf(before, p, coll, 0.985)
        if prices is None:
            continue
        hf = position_account_data(p, before.reserves, cats, prices, rules_of(before)).health_factor
        if not 95 * WAD // 100 < hf < WAD:
            continue
        out = predict_liquidation_call(p, before.reserves, cats, coll, debts[0], rules=rules_of(before), prices=prices)
        if not out.ok:
            continue
        # 3.3+: under 2,000 USD the whole debt is liquidatable at HF > 0.95; 3.0 would take half
        assert out.close_factor_bps == 10_000 and out.max_liquidatable_debt == p.legs[
            next(i for i, r in enumerate(before.reserves) if r.symbol == debts[0])
        ].variable_debt  # fmt: skip
        old_rule = replace(rules_of(before), close_factor="v30")  # the same math with 3.0's close factor
        v30 = predict_liquidation_call(p, before.reserves, cats, coll, debts[0], rules=old_rule, prices=prices)
        if v30.debt_repaid == out.debt_repaid:  # the collateral, not the close factor, is the cap
            continue
        assert v30.close_factor_bps == 5_000 and v30.debt_repaid < out.debt_repaid
        _check(pinned, before, p, coll, debts[0], MAX_UINT256, prices)
        return
    pytest.fail("no small single-debt position to liquidate at 0.95 < HF < 1 where the close factor binds")


def test_liquidation_of_a_multi_debt_position(pinned: OriginDevnet) -> None:
    before = read(pinned)
    cats = categories_by_id(before.emode_categories)
    rules = rules_of(before)
    candidates = []
    for p in before.positions:
        debts = _debt_symbols(before, p)
        if len(debts) < 2 or p.health_factor < WAD:
            continue
        coll = max(_collateral_symbols(before, p), key=lambda s: _value(before, p, s, debt=False))
        main_debt = max(debts, key=lambda s: _value(before, p, s, debt=True))
        prices = _price_for_hf(before, p, coll, 0.98)
        if prices is None:
            continue
        out = predict_liquidation_call(p, before.reserves, cats, coll, main_debt, rules=rules, prices=prices)
        if out.ok:
            candidates.append((out.close_factor_bps, p, coll, main_debt, prices))
    assert candidates
    # prefer one where 3.3's "50 % of the TOTAL debt" applies
    candidates.sort(key=lambda c: c[0])
    close, p, coll, debt, prices = candidates[0]
    assert close == 5_000, "no multi-debt position where the 50 % of total debt rule applies"
    out = _check(pinned, before, p, coll, debt, MAX_UINT256, prices)
    owed = p.legs[next(i for i, r in enumerate(before.reserves) if r.symbol == debt)].variable_debt
    assert out.max_liquidatable_debt != owed // 2  # 50 % of the total, not of this reserve


def test_liquidation_of_emode_collateral_outside_the_bitmap(pinned: OriginDevnet) -> None:
    before = read(pinned)
    cats = categories_by_id(before.emode_categories)
    rules = rules_of(before)
    for p in before.positions:
        if not p.emode_category or p.health_factor < WAD:
            continue
        outside = [s for s in _collateral_symbols(before, p)
                   if not in_emode_category(before.reserve(s), p.emode_category, cats, rules)
                   and before.reserve(s).liquidation_threshold]  # fmt: skip
        debts = _debt_symbols(before, p)
        if not outside or not debts:
            continue
        coll = max(outside, key=lambda s: _value(before, p, s, debt=False))
        reserve = before.reserve(coll)
        bonus = effective_params(reserve, p.emode_category, cats, rules)[2]
        assert bonus == reserve.liquidation_bonus != cats[p.emode_category].liquidation_bonus
        prices = _price_for_hf(before, p, coll, 0.97)
        if prices is None:
            continue
        debt = max(debts, key=lambda s: _value(before, p, s, debt=True))
        out = predict_liquidation_call(p, before.reserves, cats, coll, debt, rules=rules, prices=prices)
        if not out.ok or not out.collateral_to_liquidator:
            continue
        _check(pinned, before, p, coll, debt, MAX_UINT256, prices)
        return
    pytest.fail("no eMode position with liquidatable collateral outside its category's bitmap")


def test_predicted_dust_revert_is_the_real_revert_and_the_full_call_matches(pinned: OriginDevnet) -> None:
    before = read(pinned)
    cats = categories_by_id(before.emode_categories)
    rules = rules_of(before)
    for p in before.positions:
        debts = _debt_symbols(before, p)
        if len(debts) != 1 or p.health_factor < WAD:
            continue
        coll = max(_collateral_symbols(before, p), key=lambda s: _value(before, p, s, debt=False))
        debt_r = before.reserve(debts[0])
        i = next(i for i, r in enumerate(before.reserves) if r.symbol == debts[0])
        owed = variable_debt_balance(p.legs[i].scaled_variable_debt, debt_r.variable_borrow_index, rules)
        if owed * debt_r.price // 10**debt_r.decimals < 3_000 * 10**8:
            continue
        prices = _price_for_hf(before, p, coll, 0.9)  # HF < 0.95: the whole debt is liquidatable
        if prices is None:
            continue
        leave = 500 * 10**8 * 10**debt_r.decimals // debt_r.price  # leave 500 USD of debt
        out = predict_liquidation_call(p, before.reserves, cats, coll, debts[0], owed - leave, rules=rules,
                                       prices=prices)  # fmt: skip
        if out.revert != REVERT_DUST:
            continue
        _check(pinned, before, p, coll, debts[0], owed - leave, prices)  # the same revert, nothing sent
        full = _check(pinned, before, p, coll, debts[0], MAX_UINT256, oracle(before) | prices)
        assert full.ok
        return
    pytest.fail("no position for the dust case")


def test_bad_debt_over_two_debt_reserves_is_burnt_into_both_deficits(pinned: OriginDevnet) -> None:
    before = read(pinned)
    for p in before.positions:
        debts = _debt_symbols(before, p)
        colls = _collateral_symbols(before, p)
        if len(debts) < 2 or len(colls) != 1 or p.health_factor < WAD:
            continue
        prices = _price_for_hf(before, p, colls[0], 0.3)
        if prices is None:
            continue
        debt = max(debts, key=lambda s: _value(before, p, s, debt=True))
        out = snapshot_liquidation_call(before, p, colls[0], debt, prices=prices)
        if not out.ok or len(out.deficit) < 2:
            continue
        _check(pinned, before, p, colls[0], debt, MAX_UINT256, prices)
        return
    pytest.fail("no single-collateral multi-debt position for the bad-debt case")
