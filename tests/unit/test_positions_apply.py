"""FollowedMarket.apply: scaled balances exactly as the tokens keep them (3.0 amount semantics,
3.5+ scaled semantics solved from the local balance), the bitmap and eMode from the Pool's
events, dirty marks instead of guesses, comparison and replacement."""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.models import MAX_UINT256, AssetLeg, EModeCategory, MarketSnapshot, Position, Reserve
from monitor.positions import AccountState, ChainAccount, FollowedMarket, scaled_delta
from monitor.positions import aave_events as ev
from monitor.protocols.aave_revisions import rules_for
from monitor.risk.health import account_data, categories_by_id
from monitor.wadray import RAY, ray_div, ray_mul, ray_mul_ceil, ray_mul_floor

V30, V36 = rules_for(1), rules_for(10)
POOL = "0x1111111111111111111111111111111111111111"
PROVIDER = "0x5555555555555555555555555555555555555555"
WETH = to_checksum_address("0x" + "0e" * 20)
USDC = to_checksum_address("0x" + "0c" * 20)
ALICE = to_checksum_address("0x" + "a1" * 20)
BOB = to_checksum_address("0x" + "b0" * 20)
CAROL = to_checksum_address("0x" + "ca" * 20)
INDEX_C = 1_034_567_891_234_567_891_234_567_891
INDEX_D = 1_071_234_567_890_123_456_789_012_345


def _reserve(asset: str, symbol: str, rid: int, decimals: int, price: int, ltv: int, lt: int) -> Reserve:
    tag = asset[2:4]
    return Reserve(
        asset=asset, symbol=symbol, decimals=decimals, reserve_id=rid, ltv=ltv, liquidation_threshold=lt,
        liquidation_bonus=10500, emode_category=0, active=True, frozen=False, borrowing_enabled=True,
        a_token=to_checksum_address("0x" + tag * 19 + "aa"), stable_debt_token="0x" + "00" * 20,
        variable_debt_token=to_checksum_address("0x" + tag * 19 + "dd"), liquidity_index=INDEX_C,
        variable_borrow_index=INDEX_D, price=price,
    )  # fmt: skip


RESERVES = (_reserve(WETH, "WETH", 0, 18, 3000 * 10**8, 8050, 8300), _reserve(USDC, "USDC", 1, 6, 10**8, 7500, 7800))
CATEGORY = EModeCategory(1, 9300, 9500, 10100, "0x" + "00" * 20, "ETH", collateral_bitmap=1, borrowable_bitmap=1)


def _market(revision: int, positions: tuple[Position, ...] = ()) -> FollowedMarket:
    snapshot = MarketSnapshot(
        market="m", protocol="aave_v3", chain_id=1, block=100, block_hash="0x" + "00" * 32, timestamp=0,
        base_currency_unit=10**8, reserves=RESERVES, emode_categories=(CATEGORY,), positions=positions,
        addresses={"pool": POOL, "oracle": PROVIDER, "pool_addresses_provider": PROVIDER}, revision=revision,
    )  # fmt: skip
    return FollowedMarket(snapshot)


def _empty(account: str) -> Position:
    return Position("m", account, 100, MAX_UINT256, 0, 0, 0, 0, 0, 0, 0)


def _mint(asset: str, debt: bool, who: str, value: int, increase: int, index: int, n: int = 0) -> ev.TokenMint:
    return ev.TokenMint(POOL, 101, n, asset, debt, who, who, value, increase, index)


def _burn(asset: str, debt: bool, who: str, value: int, increase: int, index: int, n: int = 0) -> ev.TokenBurn:
    return ev.TokenBurn(POOL, 101, n, asset, debt, who, who, value, increase, index)


# -- the 3.5+ tokens, as ScaledBalanceTokenBase computes the events ----------------------------


def _v35_event(
    debt: bool, scaled: int, previous_index: int, index: int, delta: int
) -> tuple[str, int, int]:  # (kind, value, balanceIncrease)
    balance = ray_mul_ceil if debt else ray_mul_floor
    previous = balance(scaled, previous_index)
    increase = balance(scaled, index) - previous
    following = balance(scaled + delta, index)
    if following > previous:
        return "mint", following - previous, increase
    return "burn", previous - following, increase


@settings(max_examples=400, deadline=None)
@given(
    debt=st.booleans(),
    scaled=st.integers(0, 10**30),
    previous=st.integers(RAY, 3 * RAY),
    growth=st.integers(0, RAY),
    delta=st.integers(-(10**30), 10**30),
)
def test_v35_scaled_delta_is_recovered_exactly_from_the_event(
    debt: bool, scaled: int, previous: int, growth: int, delta: int
) -> None:
    delta = max(delta, -scaled)
    if delta == 0:
        return
    index = previous + growth
    kind, value, increase = _v35_event(debt, scaled, previous, index, delta)
    event = (
        _mint(WETH, debt, ALICE, value, increase, index)
        if kind == "mint"
        else _burn(WETH, debt, ALICE, value, increase, index)
    )
    assert scaled_delta(event.amount, debt, scaled, index, V36) == delta


def test_v30_scaled_delta_is_the_half_up_ray_div_of_the_amount() -> None:
    assert scaled_delta(1_000_000, False, 0, INDEX_C, V30) == ray_div(1_000_000, INDEX_C)
    assert scaled_delta(-1_000_000, True, 5 * 10**6, INDEX_D, V30) == -ray_div(1_000_000, INDEX_D)
    assert scaled_delta(0, True, 5, INDEX_D, V30) == 0


def test_v35_scaled_delta_with_a_wrong_local_balance_is_none_or_exposed() -> None:
    # floor(x * index / ray) jumps 0 -> 2 at x = 1 when the index exceeds 2 rays: a balance change of 1 is impossible
    assert scaled_delta(1, False, 0, 2 * RAY + 1, V36) is None
    assert scaled_delta(-5, False, 1, INDEX_C, V36) is None  # more than the balance


# -- apply ---------------------------------------------------------------------------------


def test_supply_borrow_repay_on_36_keeps_scaled_balances_bits_and_emode() -> None:
    market = _market(10, (_empty(ALICE),))
    supply = 5 * 10**18
    d_supply = supply * RAY // INDEX_C  # the Pool's getATokenMintScaledAmount (rayDivFloor)
    _k, value, increase = _v35_event(False, 0, INDEX_C, INDEX_C, d_supply)
    borrow = 4_000 * 10**6
    d_borrow = -(-borrow * RAY // INDEX_D)  # getVTokenMintScaledAmount (rayDivCeil)
    _k, v_value, v_increase = _v35_event(True, 0, INDEX_D, INDEX_D, d_borrow)
    touched = market.apply_events([
        ev.CollateralFlag(POOL, 101, 1, WETH, ALICE, True),
        _mint(WETH, False, ALICE, value, increase, INDEX_C, 2),
        ev.UserEModeSet(POOL, 101, 3, ALICE, 1),
        _mint(USDC, True, ALICE, v_value, v_increase, INDEX_D, 4),
        ev.Borrow(POOL, 101, 5, USDC, ALICE, ALICE, borrow, 2, 0, 0),
        ev.CollateralFlag(POOL, 101, 6, USDC, BOB, True),  # not followed
    ])  # fmt: skip
    acct = market.accounts[ALICE]
    assert touched == {ALICE} and market.touched_accounts(101) == {ALICE} and market.touched_accounts(102) == set()
    assert acct.collateral == {WETH: d_supply} and acct.debt == {USDC: d_borrow}
    assert acct.configuration == 0b0110 and acct.emode == 1  # WETH collateral bit 1, USDC borrowing bit 2
    # repay everything: the burn leaves 0 scaled -> the borrowing bit goes (3.4+ noMoreDebt)
    _k, b_value, b_increase = _v35_event(True, d_borrow, INDEX_D, INDEX_D, -d_borrow)
    market.apply_events([_burn(USDC, True, ALICE, b_value, b_increase, INDEX_D, 7)])
    assert acct.debt == {} and acct.configuration == 0b0010
    assert market.dirty == set() and market.inexact == 0
    data = market.account_data(ALICE)
    assert (
        data.health_factor == MAX_UINT256
        and data.total_collateral_base == ray_mul_floor(d_supply, INDEX_C) * 3000 * 10**8 // 10**18
    )


def test_v30_borrowing_bit_clears_only_when_the_whole_debt_is_repaid() -> None:
    scaled = 123_456_789
    debt_now = ray_mul(scaled, INDEX_D)
    start = Position("m", ALICE, 100, 0, 0, 0, 0, 0, 0, 0, 0b0100, legs=(
        AssetLeg(USDC, "USDC", 0, 0, scaled, debt_now, 0, False),))  # fmt: skip
    market = _market(1, (start,))
    acct = market.accounts[ALICE]
    # 3.0 burn of less than the whole debt: value = amount - balanceIncrease
    market.apply_events([_burn(USDC, True, ALICE, debt_now - 1, 0, INDEX_D)])
    assert acct.debt[USDC] == scaled - ray_div(debt_now - 1, INDEX_D) and acct.configuration & 0b0100
    rest = acct.debt[USDC]
    market.apply_events([_burn(USDC, True, ALICE, ray_mul(rest, INDEX_D), 0, INDEX_D, 1)])
    assert USDC not in acct.debt and acct.configuration == 0


def test_transfers_move_scaled_amounts_and_mark_what_cannot_be_exact() -> None:
    alice = Position("m", ALICE, 100, MAX_UINT256, 0, 0, 0, 0, 0, 0, 0b10, legs=(
        AssetLeg(WETH, "WETH", 1_000, 0, 0, 0, 0, True),))  # fmt: skip
    market = _market(10, (alice, _empty(BOB)))
    market.apply_events([
        _mint(WETH, False, ALICE, 7, 7, INDEX_C, 0),  # the interest-only Mint of a transfer: no scaled change
        ev.BalanceTransfer(POOL, 101, 1, WETH, ALICE, BOB, 400, INDEX_C),
        ev.BalanceTransfer(POOL, 101, 2, WETH, CAROL, BOB, 50, INDEX_C),  # from an account not followed
    ])  # fmt: skip
    assert market.accounts[ALICE].collateral == {WETH: 600} and market.accounts[BOB].collateral == {WETH: 450}
    market.apply_events([ev.BalanceTransfer(POOL, 102, 0, WETH, BOB, ALICE, 451, INDEX_C)])  # more than Bob has
    assert market.dirty == {BOB} and market.inexact == 1
    market.apply_events([_burn(WETH, False, ALICE, 10**30, 0, INDEX_C, 1)])  # burns more than Alice holds
    assert market.dirty == {ALICE, BOB}


def test_stable_borrows_new_borrowers_and_config_events() -> None:
    market = _market(1, (_empty(ALICE),))
    market.discover = True
    market.apply_events([
        ev.Borrow(POOL, 101, 0, USDC, ALICE, ALICE, 10, ev.STABLE_RATE_MODE, 0, 0),
        ev.Borrow(POOL, 101, 1, USDC, CAROL, CAROL, 10, 2, 0, 0),
        ev.MarketChanged(POOL, 101, 2, "ReservePaused(address,bool)", False),
    ])  # fmt: skip
    assert market.dirty == {ALICE} and market.discovered == {CAROL}
    assert market.needs_refresh and not market.needs_resync
    market.apply_events([ev.MarketChanged(POOL, 101, 3, "PoolUpdated(address,address)", True)])
    assert market.needs_resync


def test_apply_decodes_logs_of_the_watched_contracts() -> None:
    from monitor.chain.logs import Log

    market = _market(10, (_empty(ALICE),))
    topic = "0x" + "00" * 12 + ALICE[2:].lower()
    logs = [Log(POOL, (ev.T_USER_EMODE_SET, topic), (1).to_bytes(32, "big"), 101, "0x" + "00" * 32, 0)]
    assert market.apply(logs) == {ALICE} and market.accounts[ALICE].emode == 1
    assert RESERVES[0].a_token in market.watched_addresses() and POOL in market.watched_addresses()


# -- compare / replace / HF ---------------------------------------------------------------------------


def test_compare_names_each_field_and_replace_takes_only_what_was_read() -> None:
    alice = Position("m", ALICE, 100, MAX_UINT256, 0, 0, 0, 0, 0, 0, 0b0110, legs=(
        AssetLeg(WETH, "WETH", 1_000, 0, 0, 0, 0, True), AssetLeg(USDC, "USDC", 0, 0, 77, 0, 0, False)))  # fmt: skip
    market = _market(10, (alice,))
    chain = ChainAccount(AccountState(ALICE, 1, 0b0110, {WETH: 999}, {}, {}), frozenset({WETH}), None)
    differences = market.compare(chain, 101, "touched")
    assert [(d.field, d.local, d.chain) for d in differences] == [("collateral[WETH]", 1_000, 999), ("emode", 0, 1)]
    market.replace_account(chain)
    assert market.accounts[ALICE].collateral == {WETH: 999} and market.accounts[ALICE].debt == {USDC: 77}
    assert market.compare(chain, 101, "touched") == []
    assert market.unread_bits(chain)  # USDC's borrowing bit (2) names a reserve the read skipped
    assert not market.unread_bits(replace(chain, assets=frozenset({WETH, USDC})))
    assert not market.unread_bits(replace(chain, assets=None))


def test_local_hf_equals_the_health_module_on_the_same_legs() -> None:
    scaled_c, scaled_d = 10**18, 1_500 * 10**6
    legs = (
        AssetLeg(WETH, "WETH", scaled_c, ray_mul_floor(scaled_c, INDEX_C), 0, 0, 0, True),
        AssetLeg(USDC, "USDC", 0, 0, scaled_d, ray_mul_ceil(scaled_d, INDEX_D), 0, False),
    )
    position = Position("m", ALICE, 100, 0, 0, 0, 0, 0, 0, 1, 0b0110, legs=legs)
    market = _market(10, (position,))
    expected = account_data(legs, RESERVES, 1, 0b0110, categories_by_id((CATEGORY,)), None, V36)
    assert market.account_data(ALICE) == expected
    assert market.position(ALICE).health_factor == expected.health_factor < MAX_UINT256
    assert market.snapshot().positions[0].health_factor == expected.health_factor
    market.update_reserves(105, {WETH: INDEX_C, USDC: INDEX_C}, {WETH: INDEX_D, USDC: INDEX_D},
                           {WETH: 1500 * 10**8, USDC: 10**8})  # fmt: skip
    assert market.block == 105 and market.account_data(ALICE).health_factor < expected.health_factor


@pytest.mark.parametrize("revision", [1, 10])
def test_unfollowed_accounts_are_left_alone(revision: int) -> None:
    market = _market(revision, (_empty(ALICE),))
    assert market.apply_events([_mint(WETH, False, BOB, 100, 0, INDEX_C)]) == set()
    assert set(market.accounts) == {ALICE} and market.events_applied == 1


def test_stable_debt_as_read_is_not_a_difference_but_counts_in_the_hf() -> None:
    legs = (AssetLeg(WETH, "WETH", 10**18, 0, 0, 0, 0, True), AssetLeg(USDC, "USDC", 0, 0, 0, 0, 10**9, False))
    alice = Position("m", ALICE, 100, 0, 0, 0, 0, 0, 0, 0, 0b0110, legs=legs)
    market = _market(1, (alice,))
    assert market.stable_holders() == {ALICE}
    grown = AccountState(ALICE, 0, 0b0110, {WETH: 10**18}, {}, {USDC: 1_001 * 10**6})
    expected = market._account_data(grown)
    chain = ChainAccount(grown, None, (expected.total_collateral_base, expected.total_debt_base, 0, 0, 0,
                                       expected.health_factor))  # fmt: skip
    strict = market.compare(chain, 101, "touched")
    assert {d.field for d in strict} == {"stable[USDC]", "health_factor", "total_debt_base"}
    assert market.compare(chain, 101, "touched", stable_as_read=True) == []
