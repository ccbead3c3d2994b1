"""The newest Aave V3 Pool (aave-v3-origin 3.6.0) on anvil: deployed, configured and seeded as specified."""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from pathlib import Path

import pytest

from monitor.chain.abi import fn
from monitor.config import parse_config
from monitor.devnet.aave_origin import (
    GET_CONFIGURATION,
    GET_EMODE_BORROWABLE_BITMAP,
    GET_EMODE_COLLATERAL_BITMAP,
    GET_EMODE_COLLATERAL_CONFIG,
    GET_EMODE_LABEL,
    GET_EMODE_LTVZERO_BITMAP,
    GET_LIQUIDATION_PROTOCOL_FEE,
    GET_NORMALIZED_DEBT,
    GET_NORMALIZED_INCOME,
    GET_RESERVE_DEFICIT,
    GET_RESERVES_LIST,
    GET_USER_CONFIGURATION,
    GET_USER_EMODE,
    MAX_UINT256,
    ORIGIN_EMODES,
    ORIGIN_POOL_REVISION,
    ORIGIN_RESERVES,
    POOL_REVISION,
    RAY,
    USD,
    OriginDeployment,
    OriginDevnet,
    advance_days,
    balances,
    liquidate,
    liquidation_constants,
    origin_prices,
    plan_origin_positions,
    price_units,
    set_origin_price,
    set_reserve_pause,
    user_account_data,
)
from monitor.devnet.aave_origin_build import (
    ORIGIN_CONTRACTS,
    REMAPPINGS,
    link_origin,
    linked_libraries,
    origin_artifacts,
    origin_package_version,
)
from monitor.errors import DevnetError
from monitor.paths import node_modules

pytestmark = pytest.mark.devnet

# the first words of Pool.getReserveData (ReserveDataLegacy): configuration, liquidityIndex,
# currentLiquidityRate, variableBorrowIndex, currentVariableBorrowRate
GET_RESERVE_DATA_HEAD = fn("getReserveData(address)", "uint256,uint128,uint128,uint128,uint128")


def _bits(bitmap: int) -> set[int]:
    return {i for i in range(256) if bitmap >> i & 1}


def _reserve_ids(origin: OriginDevnet) -> dict[str, int]:
    listed = [a.lower() for a in origin.node.call(origin.deployment.pool, GET_RESERVES_LIST)]
    return {s: listed.index(t.address.lower()) for s, t in origin.deployment.tokens.items()}


def test_pool_revision_is_the_packages() -> None:
    source = (node_modules() / ORIGIN_CONTRACTS["PoolInstance"]).read_text()
    match = re.search(r"POOL_REVISION\s*=\s*(\d+)", source)
    assert match is not None
    assert origin_package_version() == "3.6.0"
    assert int(match.group(1)) == ORIGIN_POOL_REVISION == 10


def test_deployed_pool_answers_its_revision_and_constants(origin_devnet: OriginDevnet) -> None:
    node, dep = origin_devnet.node, origin_devnet.deployment
    assert node.call(dep.pool, POOL_REVISION) == ORIGIN_POOL_REVISION
    assert dep.revision == ORIGIN_POOL_REVISION
    constants = liquidation_constants(node, dep)
    assert constants == {
        "POOL_REVISION": 10,
        "CLOSE_FACTOR_HF_THRESHOLD": 95 * 10**16,
        "MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD": 2_000 * USD,
        "MIN_LEFTOVER_BASE": 1_000 * USD,
        "DEFAULT_LIQUIDATION_CLOSE_FACTOR": 5_000,
    }


def test_every_seeded_account_has_debt_and_answers(origin_devnet: OriginDevnet) -> None:
    data = user_account_data(origin_devnet.node, origin_devnet.deployment, origin_devnet.accounts)
    assert len(data) == len(origin_devnet.accounts) >= 240
    assert len(set(origin_devnet.accounts)) == len(origin_devnet.accounts)
    with_debt = [d for d in data if d[1] > 0]
    assert len(with_debt) >= 240
    assert all(0 < d[5] < MAX_UINT256 for d in with_debt)
    hfs = sorted(d[5] / 1e18 for d in with_debt)
    assert sum(1.0 <= hf <= 1.15 for hf in hfs) >= 40, hfs[:50]  # near the liquidation threshold
    assert sum(hf > 1.5 for hf in hfs) >= 40  # and healthy ones


def test_every_position_kind_is_on_chain(origin_devnet: OriginDevnet) -> None:
    node, dep = origin_devnet.node, origin_devnet.deployment
    ids = _reserve_ids(origin_devnet)
    collateral_bitmaps = {e.id: node.call(dep.pool, GET_EMODE_COLLATERAL_BITMAP, e.id) for e in ORIGIN_EMODES}
    data = user_account_data(node, dep, origin_devnet.accounts)
    kinds: Counter[str] = Counter()
    for account, (collateral_base, debt_base, *_rest) in zip(origin_devnet.accounts, data, strict=True):
        emode = node.call(dep.pool, GET_USER_EMODE, account)
        config = node.call(dep.pool, GET_USER_CONFIGURATION, account)
        collateral_ids = {i for i in range(len(ids)) if config >> (2 * i + 1) & 1}
        borrowed_ids = {i for i in range(len(ids)) if config >> (2 * i) & 1}
        kinds[f"emode{emode}"] += 1
        if len(collateral_ids) >= 2:
            kinds["multi_collateral"] += 1
        if len(borrowed_ids) >= 2:
            kinds["multi_debt"] += 1
        if emode and collateral_ids - _bits(collateral_bitmaps[emode]):
            kinds[f"emode{emode}_outside"] += 1
        if emode and ids["PTUSD"] in collateral_ids:
            kinds[f"pt_emode{emode}"] += 1
        if emode == 2 and ids["DAI"] in collateral_ids:
            kinds["ltvzero_collateral"] += 1
        if debt_base > 0 and collateral_base < 2_000 * USD:
            kinds["small"] += 1
    for kind in ("emode1", "emode2", "emode3", "emode1_outside", "emode2_outside", "emode3_outside",
                 "pt_emode2", "pt_emode3", "multi_collateral", "multi_debt", "ltvzero_collateral"):  # fmt: skip
        assert kinds[kind] >= 3, (kind, kinds)
    assert kinds["small"] >= 30 and kinds["multi_debt"] >= 40, kinds
    assert kinds["emode0"] >= 60, kinds


def test_emode_categories_read_back_as_configured(origin_devnet: OriginDevnet) -> None:
    node, dep = origin_devnet.node, origin_devnet.deployment
    ids = _reserve_ids(origin_devnet)
    for e in ORIGIN_EMODES:
        assert node.call(dep.pool, GET_EMODE_COLLATERAL_CONFIG, e.id) == (
            e.ltv,
            e.liquidation_threshold,
            e.liquidation_bonus,
        )
        assert node.call(dep.pool, GET_EMODE_LABEL, e.id) == e.label
        assert _bits(node.call(dep.pool, GET_EMODE_COLLATERAL_BITMAP, e.id)) == {ids[s] for s in e.collateral}
        assert _bits(node.call(dep.pool, GET_EMODE_BORROWABLE_BITMAP, e.id)) == {ids[s] for s in e.borrowable}
        assert _bits(node.call(dep.pool, GET_EMODE_LTVZERO_BITMAP, e.id)) == {ids[s] for s in e.ltvzero}
    # the bitmaps do not cover every asset: something users hold is outside each category
    assert all(len(e.collateral) < len(ORIGIN_RESERVES) for e in ORIGIN_EMODES)
    assert any(e.ltvzero for e in ORIGIN_EMODES)


def test_reserve_parameters_and_protocol_fees_read_back(origin_devnet: OriginDevnet) -> None:
    node, dep = origin_devnet.node, origin_devnet.deployment
    fees = []
    for r in ORIGIN_RESERVES:
        asset = dep.token(r.symbol).address
        config = node.call(dep.pool, GET_CONFIGURATION, asset)
        ltv, lt, bonus = config & 0xFFFF, config >> 16 & 0xFFFF, config >> 32 & 0xFFFF
        assert (ltv, lt, bonus) == (r.ltv, r.liquidation_threshold, r.liquidation_bonus), r.symbol
        assert config >> 48 & 0xFF == r.decimals
        assert config >> 58 & 1 == int(r.borrowable)
        assert config >> 64 & 0xFFFF == r.reserve_factor
        assert config >> 152 & 0xFFFF == r.protocol_fee
        assert node.call(dep.data_provider, GET_LIQUIDATION_PROTOCOL_FEE, asset) == r.protocol_fee
        fees.append(r.protocol_fee)
    assert len({f for f in fees if f}) >= 2  # several distinct non-zero fees
    pt = dep.token("PTUSD").address
    assert node.call(dep.pool, GET_CONFIGURATION, pt) & 0xFFFFFFFF == 0  # PTUSD: LTV 0, LT 0 outside eMode
    assert {t.decimals for t in dep.tokens.values()} == {6, 8, 18}


def test_indexes_moved_after_ninety_days(origin_devnet: OriginDevnet) -> None:
    node, dep = origin_devnet.node, origin_devnet.deployment
    for r in ORIGIN_RESERVES:
        if not r.borrowable:
            continue
        asset = dep.token(r.symbol).address
        raw = node.client.eth_call(dep.pool, GET_RESERVE_DATA_HEAD.encode(asset))
        _config, liquidity_index, liquidity_rate, borrow_index, borrow_rate = GET_RESERVE_DATA_HEAD.decode(raw)
        assert borrow_rate > 0 and liquidity_rate > 0, r.symbol
        # stored (touched) indexes: 90 days at a few percent a year
        assert borrow_index > RAY * 1004 // 1000, (r.symbol, borrow_index)
        assert liquidity_index > RAY, (r.symbol, liquidity_index)
        assert node.call(dep.pool, GET_NORMALIZED_DEBT, asset) >= borrow_index
        assert node.call(dep.pool, GET_NORMALIZED_INCOME, asset) >= liquidity_index


def test_price_helper_moves_the_oracle(origin_devnet: OriginDevnet) -> None:
    node, dep = origin_devnet.node, origin_devnet.deployment
    before = origin_prices(node, dep)
    assert before["WETH"] == 3000 * USD and before["PTUSD"] == 97 * USD // 100
    set_origin_price(node, dep, "WETH", 1234.5)
    after = origin_prices(node, dep)
    assert after["WETH"] == 123_450_000_000
    assert {k: v for k, v in after.items() if k != "WETH"} == {k: v for k, v in before.items() if k != "WETH"}


def test_liquidation_helper_liquidates_and_decodes(origin_devnet: OriginDevnet) -> None:
    node, dep = origin_devnet.node, origin_devnet.deployment
    healthy = next(p for p in origin_devnet.positions if p.kind == "single" and p.target_hf > 1.5)
    collateral, debt = next(iter(healthy.collaterals)), next(iter(healthy.debts))
    refused = liquidate(node, dep, healthy.account, collateral, debt, MAX_UINT256)
    assert not refused.success and refused.receipt is None
    assert refused.revert_error == "HealthFactorNotBelowThreshold"

    # an eMode-1 position (wstETH collateral, WETH debt): crash wstETH until it is liquidatable
    target = next(p for p in origin_devnet.positions if p.kind == "emode1" and set(p.collaterals) == {"wstETH"})
    set_origin_price(node, dep, "wstETH", 3600 * 0.3)
    (before,) = user_account_data(node, dep, [target.account])
    assert before[5] < 10**18
    outcome = liquidate(node, dep, target.account, "wstETH", "WETH", MAX_UINT256)
    assert outcome.success, outcome.revert_error
    (event,) = outcome.events("LiquidationCall")
    assert event.args["user"].lower() == target.account.lower()
    assert event.args["debtAsset"].lower() == dep.token("WETH").address.lower()
    assert event.args["debtToCover"] > 0 and event.args["liquidatedCollateralAmount"] > 0
    (after,) = user_account_data(node, dep, [target.account])
    assert after[1] < before[1]


def test_the_book_is_reproducible_from_its_seed(origin_devnet: OriginDevnet) -> None:
    prices = {r.symbol: price_units(r.price_usd) for r in ORIGIN_RESERVES}
    again = plan_origin_positions(len(origin_devnet.positions), prices, seed=origin_devnet.seed)
    assert again == origin_devnet.positions
    other = plan_origin_positions(len(origin_devnet.positions), prices, seed=origin_devnet.seed + 1)
    assert [p.account for p in other] != origin_devnet.accounts
    assert [p.collaterals for p in other] != [p.collaterals for p in origin_devnet.positions]


def test_deployment_round_trips_and_config_names_the_market(origin_devnet: OriginDevnet, tmp_path: Path) -> None:
    dep = origin_devnet.deployment
    assert OriginDeployment.from_json(dep.to_json()) == dep
    assert set(dep.a_tokens) == set(dep.variable_debt_tokens) == set(dep.tokens)
    config = parse_config(origin_devnet.config_data(str(tmp_path / "x.db")), tmp_path / "devnet.yaml")
    assert [m.name for m in config.markets] == ["aave-v3-origin-devnet"]


def test_paused_reserve_and_grace_period_make_liquidations_revert(origin_devnet: OriginDevnet) -> None:
    node, dep = origin_devnet.node, origin_devnet.deployment
    target = next(p for p in origin_devnet.positions if p.kind == "emode1" and set(p.collaterals) == {"wstETH"})
    set_origin_price(node, dep, "wstETH", 3600 * 0.3)
    set_reserve_pause(node, dep, "wstETH", True)
    paused = liquidate(node, dep, target.account, "wstETH", "WETH", MAX_UINT256)
    assert (paused.success, paused.revert_error) == (False, "ReservePaused")
    set_reserve_pause(node, dep, "wstETH", False, grace_period=3_600)
    graced = liquidate(node, dep, target.account, "wstETH", "WETH", MAX_UINT256)
    assert (graced.success, graced.revert_error) == (False, "LiquidationGraceSentinelCheckFailed")
    advance_days(node, 1 / 12)  # two hours: the grace period is over
    done = liquidate(node, dep, target.account, "wstETH", "WETH", MAX_UINT256)
    assert done.success, done.revert_error
    assert done.events("LiquidationCall")


def test_bad_debt_liquidation_burns_a_deficit_and_pays_the_protocol_fee(origin_devnet: OriginDevnet) -> None:
    node, dep = origin_devnet.node, origin_devnet.deployment
    target = next(p for p in origin_devnet.positions if p.kind == "emode1" and set(p.collaterals) == {"wstETH"})
    set_origin_price(node, dep, "wstETH", 3600 * 0.3)  # collateral worth far less than the debt
    assert node.call(dep.pool, GET_RESERVE_DEFICIT, dep.token("WETH").address) == 0
    outcome = liquidate(node, dep, target.account, "wstETH", "WETH", MAX_UINT256)
    assert outcome.success, outcome.revert_error
    (deficit,) = outcome.events("DeficitCreated")
    assert deficit.args["amountCreated"] > 0
    assert node.call(dep.pool, GET_RESERVE_DEFICIT, dep.token("WETH").address) == deficit.args["amountCreated"]
    fee = [e for e in outcome.events("BalanceTransfer") if e.args["to"].lower() == dep.treasury.lower()]
    assert len(fee) == 1 and fee[0].address == dep.a_tokens["wstETH"] and fee[0].args["value"] > 0
    (after,) = user_account_data(node, dep, [target.account])
    assert after[:2] == (0, 0)  # all collateral seized, the rest of the debt burned


def test_balances_match_the_seeded_amounts_plus_interest(origin_devnet: OriginDevnet) -> None:
    node, dep = origin_devnet.node, origin_devnet.deployment
    untouched = [p for p in origin_devnet.positions if p.account not in set(origin_devnet.acted)]
    for p in untouched[:24]:
        held = balances(node, dep, p.account)
        assert set(held) == set(p.collaterals) | set(p.debts)
        for symbol, amount in p.collaterals.items():
            assert amount - 1 <= held[symbol][0] <= amount * 1_002 // 1_000 + 1  # 90 days of supply yield
        for symbol, amount in p.debts.items():
            assert amount < held[symbol][1] < amount * 1_030 // 1_000  # 90 days of borrow interest


def _resolve(unit: str) -> str:
    """A source unit name after REMAPPINGS (the longest matching prefix wins, as in solc)."""
    prefixes = sorted((r.split("=") for r in REMAPPINGS), key=lambda pair: -len(pair[0]))
    return next((target + unit[len(prefix) :] for prefix, target in prefixes if unit.startswith(prefix)), unit)


def test_every_import_of_the_compiled_contracts_resolves_through_the_remappings() -> None:
    pending = list(ORIGIN_CONTRACTS.values())
    seen: set[str] = set()
    remapped: set[str] = set()
    while pending:
        unit = pending.pop()
        if unit in seen:
            continue
        seen.add(unit)
        path = node_modules() / unit
        assert path.is_file(), unit
        for m in re.finditer(r"""^import\s[^;'"]*['"]([^'"]+)['"]""", path.read_text(), re.M):
            name = m.group(1)
            if name.startswith("."):
                pending.append(posixpath.normpath(posixpath.join(posixpath.dirname(unit), name)))
            else:
                assert not name.startswith("forge-std/"), (unit, name)
                remapped.add(name.split("/")[0])
                pending.append(_resolve(name))
    assert "openzeppelin-contracts" in remapped
    assert any(u.startswith("@openzeppelin/contracts/") for u in seen)
    # the other two remappings (used by sources the devnet does not compile) land on real files too
    for name in (
        "solidity-utils/contracts/transparent-proxy/TransparentProxyFactory.sol",
        "openzeppelin-contracts-upgradeable/contracts/utils/PausableUpgradeable.sol",
    ):
        assert (node_modules() / _resolve(name)).is_file(), name


def test_pool_links_its_libraries_and_refuses_without_them() -> None:
    artifacts = origin_artifacts()
    assert linked_libraries(artifacts["PoolInstance"]) == [
        "BorrowLogic", "FlashLoanLogic", "LiquidationLogic", "PoolLogic", "SupplyLogic",
    ]  # fmt: skip
    assert linked_libraries(artifacts["PoolConfiguratorInstance"]) == ["ConfiguratorLogic"]
    assert linked_libraries(artifacts["FlashLoanLogic"]) == ["BorrowLogic"]
    with pytest.raises(DevnetError, match="needs library"):
        link_origin(artifacts["PoolInstance"], {"BorrowLogic": "0x" + "11" * 20}, "PoolInstance")
    libs = {name: "0x" + f"{i + 1:02x}" * 20 for i, name in enumerate(linked_libraries(artifacts["PoolInstance"]))}
    code = link_origin(artifacts["PoolInstance"], libs, "PoolInstance")
    for address in libs.values():
        assert bytes.fromhex(address[2:]) in code
