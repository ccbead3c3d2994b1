"""The version-aware Aave V3 reader against an in-memory Pool: config-bit decoding, revision
detection (POOL_REVISION and the probe fallback), liquid eMode categories, grace periods, and
stable-debt tokens that fail without failing the scan."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, cast

import pytest
from eth_abi import encode as abi_encode

from monitor.chain.blocks import BlockRef
from monitor.chain.multicall import Call, Multicall
from monitor.chain.rpc import RpcClient
from monitor.cli import aave_position_json
from monitor.errors import DecodeError
from monitor.models import EModeCategory, Reserve
from monitor.protocols import aave_v3_abi as abi
from monitor.protocols.aave_revisions import a_token_balance, rules_for, variable_debt_balance
from monitor.protocols.aave_v3 import (
    ZERO,
    AaveV3Reader,
    ReserveConfig,
    decoded_or_none,
    revision_from_answers,
)
from monitor.risk.health import effective_params, in_emode_category
from monitor.wadray import RAY

PROVIDER = "0x" + "10" * 20
POOL = "0x" + "20" * 20
ORACLE = "0x" + "30" * 20
DATA_PROVIDER = "0x" + "40" * 20
USER = "0x" + "aa" * 20
WETH, USDC, PT = ("0x" + f"{n:02x}" * 20 for n in (0x51, 0x52, 0x53))
A_TOKEN = {WETH: "0x" + "61" * 20, USDC: "0x" + "62" * 20, PT: "0x" + "63" * 20}
V_TOKEN = {WETH: "0x" + "71" * 20, USDC: "0x" + "72" * 20, PT: "0x" + "73" * 20}
S_TOKEN = {WETH: "0x" + "81" * 20, USDC: "0x" + "82" * 20, PT: ZERO}
SYMBOLS = {WETH: "WETH", USDC: "USDC", PT: "PT"}
DECIMALS = {WETH: 18, USDC: 6, PT: 18}
INCOME = RAY + 123_456_789_012_345_678_901_234_567  # odd remainders: half-up, floor and ceil differ
DEBT_INDEX = RAY + 987_654_321_098_765_432_109_876_543


class Revert(Exception):
    """The call reverts (the function does not exist or refuses)."""


def config_bitmap(
    ltv: int, lt: int, bonus: int, decimals: int, *, emode: int = 0, fee: int = 0, paused: bool = False,
    active: bool = True, frozen: bool = False, borrowing: bool = True,
) -> int:  # fmt: skip
    return (
        ltv | lt << 16 | bonus << 32 | decimals << 48 | int(active) << 56 | int(frozen) << 57
        | int(borrowing) << 58 | int(paused) << 60 | fee << 152 | emode << 168
        | 1 << 64 | 2**35 << 80  # a reserve factor and a borrow cap around them: must be ignored
    )  # fmt: skip


class FakePool:
    """Answers the calls the reader makes, as a Pool of ``revision`` would (None: no POOL_REVISION)."""

    def __init__(self, revision: int | None, *, has: int | None = None) -> None:
        self.revision = revision
        self.has = revision if has is None else has  # which getters exist (by revision)
        self.configs = {
            WETH: config_bitmap(8000, 8250, 10500, 18, emode=1, fee=1000),
            USDC: config_bitmap(7500, 7800, 10450, 6, fee=0, paused=True),
            PT: config_bitmap(0, 0, 10800, 18, emode=2, fee=2500),
        }
        self.grace = {WETH: 0, USDC: 1_800_000_000, PT: 0}
        self.emode = {  # id -> (ltv, lt, bonus, collateral bitmap, borrowable bitmap, ltv0 bitmap, label)
            1: (9000, 9300, 10100, 0b101, 0b001, 0b100, "ETH"),
            2: (7000, 7500, 10500, 0b100, 0b010, 0, "PT stables"),
            200: (5000, 6000, 11000, 1 << 127, 0, 0, "far id"),
        }
        self.balances: dict[tuple[str, str], int] = {
            (A_TOKEN[WETH], USER): 10**18 + 7, (V_TOKEN[USDC], USER): 1_000_000_001, (A_TOKEN[PT], USER): 5 * 10**17,
        }  # fmt: skip
        self.stable_supply: dict[str, Callable[[], int]] = {S_TOKEN[WETH]: lambda: 0, S_TOKEN[USDC]: lambda: 5}
        self.stable_balance: dict[str, Callable[[str], int]] = {S_TOKEN[USDC]: lambda user: 3}
        self.user_emode = 1
        self.seen: list[str] = []

    def answer(self, call: Call) -> Any:
        name, args, target = call.fn.name, call.args, call.target
        self.seen.append(name)
        if target == PROVIDER:
            return {"getPool": POOL, "getPriceOracle": ORACLE, "getPoolDataProvider": DATA_PROVIDER}[name]
        if target == ORACLE:
            if name == "BASE_CURRENCY_UNIT":
                return 10**8
            return [2000 * 10**8, 10**8, 98 * 10**6]
        if target == DATA_PROVIDER:
            return [(SYMBOLS[a], a) for a in (WETH, USDC, PT)]
        if target == POOL:
            return self.pool(name, args)
        if name == "totalSupply":
            if target not in self.stable_supply:
                return b""  # not a contract: empty answer
            return self.stable_supply[target]()
        if name == "balanceOf":
            return self.stable_balance[target](args[0])
        if name == "scaledBalanceOf":
            return self.balances.get((target, args[0]), 0)
        raise AssertionError(f"unexpected call {call}")

    def pool(self, name: str, args: tuple[Any, ...]) -> Any:
        since = {
            "getLiquidationGracePeriod": 4, "getEModeCategoryCollateralConfig": 5,
            "getEModeCategoryCollateralBitmap": 5, "getEModeCategoryBorrowableBitmap": 5, "getEModeCategoryLabel": 5,
            "getReserveDeficit": 7,
            "RESERVE_INTEREST_RATE_STRATEGY": 8, "getEModeCategoryLtvzeroBitmap": 10,
        }  # fmt: skip
        if name in since and self.has < since[name]:
            raise Revert(name)
        if name == "POOL_REVISION":
            if self.revision is None:
                raise Revert(name)
            return self.revision
        if name == "getReservesList":
            return [WETH, USDC, PT]
        if name == "getReserveData":
            a = args[0]
            i = [WETH, USDC, PT].index(a)
            return ((self.configs[a],), RAY, 0, RAY, 0, 0, 0, i, A_TOKEN[a], S_TOKEN[a], V_TOKEN[a], ZERO, 0, 0, 0)
        if name == "getReserveNormalizedIncome":
            return INCOME
        if name == "getReserveNormalizedVariableDebt":
            return DEBT_INDEX
        if name == "getLiquidationGracePeriod":
            return self.grace.get(args[0], 0)
        if name in ("getReserveDeficit",):
            return 0
        if name == "RESERVE_INTEREST_RATE_STRATEGY":
            return ZERO
        if name == "getEModeCategoryData":
            ltv, lt, bonus, *_rest, label = self.emode.get(args[0], (0, 0, 0, 0, 0, 0, ""))
            return (ltv, lt, bonus, ZERO, label)
        category = self.emode.get(args[0], (0, 0, 0, 0, 0, 0, ""))
        if name == "getEModeCategoryCollateralConfig":
            return category[:3]
        if name == "getEModeCategoryCollateralBitmap":
            return category[3]
        if name == "getEModeCategoryBorrowableBitmap":
            return category[4]
        if name == "getEModeCategoryLtvzeroBitmap":
            return category[5]
        if name == "getEModeCategoryLabel":
            return category[6]
        if name == "getUserAccountData":
            return (1, 2, 3, 4, 5, 6)
        if name == "getUserConfiguration":
            return 0b11_00_10  # reserve 0 collateral, reserve 2 collateral+borrowed pattern (not checked)
        if name == "getUserEMode":
            return self.user_emode
        raise AssertionError(f"unexpected Pool call {name}{args}")


class FakeMulticall(Multicall):
    def __init__(self, pool: FakePool) -> None:
        super().__init__(cast(RpcClient, None), calls_per_batch=10_000)
        self.fake = pool

    def _chunk(self, chunk: Sequence[Call], block: int) -> list[tuple[bool, bytes]]:
        out = []
        for call in chunk:
            try:
                value = self.fake.answer(call)
            except Revert:
                out.append((False, b""))
                continue
            if isinstance(value, bytes):
                out.append((True, value))
                continue
            values = value if len(call.fn.outputs) > 1 else (value,)
            out.append((True, abi_encode(list(call.fn.outputs), list(values))))
        return out


def reader_for(pool: FakePool, **plan: bool) -> AaveV3Reader:
    """The reader in the one-pass layout of every reserve with the Pool's figures (what these
    fakes answer); the two-pass plan over the used reserves has its own tests."""
    plan = {"read_account_data": True, "used_reserves_only": False, **plan}
    return AaveV3Reader(
        cast(RpcClient, None), market="m", pool_addresses_provider=PROVIDER, chain_id=1, multicall=FakeMulticall(pool),
        **plan,
    )  # fmt: skip


# --------------------------------------------------------------------------- pure decoding


def test_config_bits_fee_paused_and_emode_by_revision() -> None:
    bitmap = config_bitmap(7000, 7500, 10500, 6, emode=3, fee=0xFFFF, paused=True, frozen=True, borrowing=False)
    old = ReserveConfig.decode(bitmap)
    assert (old.ltv, old.liquidation_threshold, old.liquidation_bonus, old.decimals) == (7000, 7500, 10500, 6)
    assert (old.paused, old.frozen, old.borrowing_enabled, old.active) == (True, True, False, True)
    assert (old.liquidation_protocol_fee, old.emode_category) == (0xFFFF, 3)
    liquid = ReserveConfig.decode(bitmap, liquid_emode=True)
    assert liquid.emode_category == 0 and liquid.liquidation_protocol_fee == 0xFFFF
    lone = ReserveConfig.decode(1 << 60)
    assert lone.paused and not lone.active and lone.liquidation_protocol_fee == 0
    assert ReserveConfig.decode(1 << 151).liquidation_protocol_fee == 0  # bit 151 is the supply cap
    assert ReserveConfig.decode(1 << 168).liquidation_protocol_fee == 0  # bit 168 is the eMode field


def test_revision_from_answers() -> None:
    assert revision_from_answers((10,), [False] * 5) == 10
    assert revision_from_answers((42,), [True] * 5) == 42  # the Pool's word wins over probes
    assert revision_from_answers(None, [True, True, True, True, True]) == 10
    assert revision_from_answers(None, [False, True, True, True, True]) == 8
    assert revision_from_answers(None, [False, False, True, True, True]) == 7
    assert revision_from_answers(None, [False, False, False, True, True]) == 5
    assert revision_from_answers(None, [False, False, False, False, True]) == 4
    assert revision_from_answers(None, [False] * 5) == 1
    assert revision_from_answers((0,), [False, False, False, True, True]) == 5  # 0 is not a revision


def test_decoded_or_none() -> None:
    call = Call(ZERO, abi.TOTAL_SUPPLY, allow_failure=True)
    assert decoded_or_none(call, (False, b"")) is None
    assert decoded_or_none(call, (True, b"")) is None  # an EOA answers with no data
    assert decoded_or_none(call, (True, (7).to_bytes(32, "big"))) == (7,)


def test_balance_rounding_by_revision() -> None:
    scaled = 10**18 + 7
    exact = scaled * INCOME
    assert a_token_balance(scaled, INCOME, rules_for(10)) == exact // RAY
    assert variable_debt_balance(scaled, INCOME, rules_for(10)) == exact // RAY + 1
    assert exact % RAY  # not a whole number: floor and ceil differ
    half_up = (exact + RAY // 2) // RAY
    assert a_token_balance(scaled, INCOME, rules_for(8)) == half_up
    assert variable_debt_balance(scaled, INCOME, rules_for(1)) == half_up


# --------------------------------------------------------------------------- the reader


def test_3_6_pool_liquid_emode_fees_paused_grace() -> None:
    pool = FakePool(10)
    reader = reader_for(pool)
    reserves, unit = reader.read_reserves(100)
    assert unit == 10**8 and reader.revision(100) == 10
    assert [(r.symbol, r.emode_category) for r in reserves] == [("WETH", 0), ("USDC", 0), ("PT", 0)]
    assert [r.liquidation_protocol_fee for r in reserves] == [1000, 0, 2500]
    assert [r.paused for r in reserves] == [False, True, False]
    assert [r.liquidation_grace_period_until for r in reserves] == [0, 1_800_000_000, 0]
    assert "totalSupply" not in pool.seen  # 3.2+: stable debt is not read at all
    categories = reader.read_emode_categories([0, 1], 100)
    assert [c.id for c in categories] == [1, 2, 200]  # every configured id, not only the used one
    eth = categories[0]
    assert (eth.ltv, eth.liquidation_threshold, eth.liquidation_bonus, eth.label) == (9000, 9300, 10100, "ETH")
    assert (eth.collateral_bitmap, eth.borrowable_bitmap, eth.ltv_zero_bitmap) == (0b101, 0b001, 0b100)
    assert eth.price_source == ZERO
    assert categories[2].collateral_bitmap == 1 << 127
    assert eth.covers(reserves[2]) and not eth.covers(reserves[1]) and not categories[1].covers(reserves[0])

    (position,) = reader.read_positions([USER], reserves, 100)
    weth, usdc, pt = position.legs
    assert weth.collateral == (10**18 + 7) * INCOME // RAY  # rayMulFloor
    assert usdc.variable_debt == -(-1_000_000_001 * DEBT_INDEX // RAY)  # rayMulCeil
    assert usdc.stable_debt == 0 and pt.collateral == 5 * 10**17 * INCOME // RAY


def test_unused_unconfigured_id_is_read_when_an_account_uses_it() -> None:
    reader = reader_for(FakePool(7))
    reader.read_reserves(5)
    categories = reader.read_emode_categories([9], 5)
    assert [c.id for c in categories] == [1, 2, 9, 200]
    assert categories[2].liquidation_threshold == 0 and categories[2].collateral_bitmap == 0
    assert all(c.ltv_zero_bitmap == 0 for c in categories)  # 3.3: no LTV-zero bitmap to read


def test_pool_without_pool_revision_is_placed_by_probing() -> None:
    for has, expected in ((10, 10), (9, 8), (7, 7), (6, 5), (4, 4), (1, 1)):
        reader = reader_for(FakePool(None, has=has))
        reader.read_reserves(1)
        assert reader.revision(1) == expected, has


def test_3_0_pool_emode_by_reserve_bits_and_stable_debt() -> None:
    pool = FakePool(1)
    reader = reader_for(pool)
    reserves, _unit = reader.read_reserves(3)
    assert [r.emode_category for r in reserves] == [1, 0, 2]
    assert [r.liquidation_grace_period_until for r in reserves] == [0, 0, 0]  # no grace before 3.1
    assert pool.seen.count("getLiquidationGracePeriod") == 1  # the revision probe only, no per-reserve read
    assert [r.liquidation_protocol_fee for r in reserves] == [1000, 0, 2500]
    categories = reader.read_emode_categories([r.emode_category for r in reserves] + [1], 3)
    assert [(c.id, c.collateral_bitmap) for c in categories] == [(1, None), (2, None)]
    (position,) = reader.read_positions([USER], reserves, 3)
    assert [leg.stable_debt for leg in position.legs] == [0, 3, 0]  # USDC's stable token has supply
    weth = position.legs[0]
    assert weth.collateral == ((10**18 + 7) * INCOME + RAY // 2) // RAY  # half-up rayMul


def test_failing_stable_debt_tokens_never_fail_the_scan() -> None:
    pool = FakePool(1)

    def reverts(*_args: Any) -> int:
        raise Revert("stable")

    pool.stable_supply[S_TOKEN[WETH]] = reverts  # totalSupply reverts: no stable debt read
    pool.stable_balance[S_TOKEN[USDC]] = reverts  # balanceOf reverts: counted as 0
    reader = reader_for(pool)
    reserves, _unit = reader.read_reserves(3)
    (position,) = reader.read_positions([USER], reserves, 3)
    assert [leg.stable_debt for leg in position.legs] == [0, 0, 0]
    assert pool.seen.count("balanceOf") == 1  # only the token with supply was asked


def test_a_required_call_failing_is_an_error_naming_it() -> None:
    pool = FakePool(10)
    original = pool.pool

    def no_bitmap(name: str, args: tuple[Any, ...]) -> Any:
        if name == "getEModeCategoryCollateralBitmap":
            raise Revert(name)
        return original(name, args)

    pool.pool = no_bitmap  # type: ignore[method-assign]
    reader = reader_for(pool)
    reader.read_reserves(1)
    with pytest.raises(DecodeError, match="getEModeCategoryCollateralBitmap"):
        reader.read_emode_categories([1], 1)


def test_snapshot_names_the_revision(monkeypatch: pytest.MonkeyPatch) -> None:
    reader = reader_for(FakePool(10))
    monkeypatch.setattr("monitor.protocols.aave_v3.check_block", lambda *_args: None)
    snapshot = reader.snapshot([USER], BlockRef(100, "0x" + "00" * 32, 1_700_000_000))
    assert snapshot.revision == 10
    assert [c.id for c in snapshot.emode_categories] == [1, 2, 200]
    assert snapshot.positions[0].emode_category == 1


# --------------------------------------------------------------------------- scan --json fields


def test_effective_collateral_params_per_revision() -> None:
    def reserve(rid: int, ltv: int, lt: int, bonus: int, emode: int = 0) -> Reserve:
        return Reserve(
            asset=f"0x{rid + 1:040x}", symbol=f"R{rid}", decimals=18, reserve_id=rid, ltv=ltv, liquidation_threshold=lt,
            liquidation_bonus=bonus, emode_category=emode, active=True, frozen=False, borrowing_enabled=True,
            a_token=ZERO, stable_debt_token=ZERO, variable_debt_token=ZERO, liquidity_index=RAY,
            variable_borrow_index=RAY, price=10**8,
        )  # fmt: skip

    weth, dai, pt = reserve(0, 8000, 8250, 10500, emode=1), reserve(5, 6300, 7700, 10500), reserve(6, 0, 0, 0, emode=1)
    v36, v32, v30 = rules_for(10), rules_for(5), rules_for(1)
    liquid = EModeCategory(2, 9000, 9300, 10200, ZERO, "Stablecoins", collateral_bitmap=(1 << 5) | (1 << 6),
                           ltv_zero_bitmap=1 << 5)  # fmt: skip
    old = EModeCategory(1, 9300, 9500, 10100, ZERO, "ETH")

    def eff(reserve: Reserve, category: EModeCategory | None, rules: Any) -> tuple[int, int, int, bool]:
        """What a scan --json leg says: risk.health's effective params and membership."""
        cats = {category.id: category} if category else {}
        user = category.id if category else 0
        return (*effective_params(reserve, user, cats, rules), in_emode_category(reserve, user, cats, rules))

    assert eff(dai, liquid, v36) == (0, 9300, 10200, True)  # LTV-zero inside the category
    assert eff(pt, liquid, v36) == (9000, 9300, 10200, True)  # collateral only inside an eMode
    assert eff(pt, None, v36) == (0, 0, 0, False)
    assert eff(weth, liquid, v36) == (8000, 8250, 10500, False)  # not in the bitmap: reserve params
    assert eff(dai, liquid, v32) == (9000, 9300, 10200, True)  # no LTV-zero bitmap before 3.6
    assert eff(pt, liquid, v32) == (0, 0, 10200, True)  # an LT-0 reserve does not count before 3.6
    assert eff(weth, old, v30) == (9300, 9500, 10100, True)  # 3.0: by the reserve eMode bits
    assert eff(dai, old, v30) == (6300, 7700, 10500, False)


def test_position_json_names_revision_and_emode(monkeypatch: pytest.MonkeyPatch) -> None:
    reader = reader_for(FakePool(10))
    monkeypatch.setattr("monitor.protocols.aave_v3.check_block", lambda *_args: None)
    snapshot = reader.snapshot([USER], BlockRef(100, "0x" + "00" * 32, 1_700_000_000))
    row = aave_position_json(snapshot, snapshot.positions[0])
    assert row["aave_revision"] == 10 and row["aave_version"] == "3.6"
    assert row["emode"]["id"] == 1 and row["emode"]["label"] == "ETH"
    # user configuration 0b110010: collateral bits of reserves 0 and 2 (WETH, PT)
    assert [(leg["symbol"], leg["in_emode"], leg["ltv_bps"], leg["liquidation_threshold_bps"],
             leg["liquidation_bonus_bps"]) for leg in row["emode"]["collateral"]] == [
        ("WETH", True, 9000, 9300, 10100),
        ("PT", True, 0, 9300, 10100),  # in eMode 1's bitmap and its LTV-zero bitmap
    ]  # fmt: skip
    unknown = aave_position_json(replace(snapshot, revision=77), snapshot.positions[0])
    assert unknown["aave_version"] == "3.7 (revision 77 unknown)"
