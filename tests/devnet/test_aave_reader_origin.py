"""The version-aware reader against the newest Aave V3 Pool (aave-v3-origin 3.6.0, revision 10)
on anvil: revision, liquid eMode categories with their bitmaps and labels, protocol fees,
paused flags and grace periods exactly as configured; a scan stores and prints every seeded
position with the chain's own HF, and ``scan --json`` names the revision and eMode params."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.chain.blocks import block_ref
from monitor.chain.multicall import Multicall
from monitor.cli import main
from monitor.config import load_config
from monitor.devnet.aave_origin import (
    ORIGIN_EMODES,
    ORIGIN_RESERVES,
    OriginDevnet,
    liquidation_constants,
    set_reserve_pause,
    user_account_data,
)
from monitor.devnet.session import devnet_config
from monitor.models import format_wad
from monitor.protocols import aave_v3_abi as abi
from monitor.protocols.aave_v3 import AaveV3Reader
from monitor.scan import scan_all
from monitor.store import Store

pytestmark = pytest.mark.devnet

SPECS = {r.symbol: r for r in ORIGIN_RESERVES}
EMODES = {e.id: e for e in ORIGIN_EMODES}


def reader_of(origin: OriginDevnet) -> AaveV3Reader:
    return AaveV3Reader(
        origin.client, market="origin", pool_addresses_provider=origin.deployment.pool_addresses_provider,
        chain_id=31337, multicall=Multicall(origin.client, calls_per_batch=1000),
    )  # fmt: skip


def reserve_ids(origin: OriginDevnet) -> dict[str, int]:
    """symbol -> reserve id, from the Pool's own reserves list (no reserve was ever dropped)."""
    listed = [a.lower() for a in origin.node.call(origin.deployment.pool, abi.GET_RESERVES_LIST)]
    return {symbol: listed.index(origin.deployment.token(symbol).address.lower()) for symbol in SPECS}


def bitmap(symbols: tuple[str, ...], ids: dict[str, int]) -> int:
    return sum(1 << ids[s] for s in symbols)


def test_revision_reserves_and_liquid_emode_as_configured(origin_devnet: OriginDevnet) -> None:
    reader = reader_of(origin_devnet)
    head = block_ref(origin_devnet.client)
    reserves, unit = reader.read_reserves(head.number)
    assert unit == 10**8
    assert (
        reader.revision(head.number)
        == 10
        == liquidation_constants(origin_devnet.node, origin_devnet.deployment)["POOL_REVISION"]
    )
    ids = reserve_ids(origin_devnet)
    by_symbol = {r.symbol: r for r in reserves}
    assert set(by_symbol) == set(SPECS)
    for symbol, spec in SPECS.items():
        r = by_symbol[symbol]
        assert r.reserve_id == ids[symbol] and r.decimals == spec.decimals
        assert (r.ltv, r.liquidation_threshold, r.liquidation_bonus) == (
            spec.ltv, spec.liquidation_threshold, spec.liquidation_bonus,
        )  # fmt: skip
        assert r.liquidation_protocol_fee == spec.protocol_fee, symbol
        assert r.borrowing_enabled == spec.borrowable
        assert not r.paused and r.liquidation_grace_period_until == 0
        assert r.emode_category == 0  # 3.2+: the reserve-config eMode bits are not read
    categories = reader.read_emode_categories([], head.number)
    assert [c.id for c in categories] == sorted(EMODES)  # every configured category, none used
    for c in categories:
        spec = EMODES[c.id]
        assert (c.ltv, c.liquidation_threshold, c.liquidation_bonus, c.label) == (
            spec.ltv, spec.liquidation_threshold, spec.liquidation_bonus, spec.label,
        )  # fmt: skip
        assert c.collateral_bitmap == bitmap(spec.collateral, ids)
        assert c.borrowable_bitmap == bitmap(spec.borrowable, ids)
        assert c.ltv_zero_bitmap == bitmap(spec.ltvzero, ids)
        assert int(c.price_source, 16) == 0
        for symbol in SPECS:
            assert c.covers(by_symbol[symbol]) == (symbol in spec.collateral)


def test_paused_and_grace_period_exactly_as_set(origin_devnet: OriginDevnet) -> None:
    node, deployment = origin_devnet.node, origin_devnet.deployment
    set_reserve_pause(node, deployment, "USDT", True)
    paused_at = block_ref(origin_devnet.client)
    reserves, _unit = reader_of(origin_devnet).read_reserves(paused_at.number)
    assert [r.symbol for r in reserves if r.paused] == ["USDT"]

    set_reserve_pause(node, deployment, "USDT", False, 3600)
    unpaused = block_ref(origin_devnet.client)
    reserves, _unit = reader_of(origin_devnet).read_reserves(unpaused.number)
    grace = {r.symbol: r.liquidation_grace_period_until for r in reserves}
    assert grace == {s: (unpaused.timestamp + 3600 if s == "USDT" else 0) for s in SPECS}
    assert not any(r.paused for r in reserves)
    # the earlier block still reads as it was (every read pinned to its block)
    earlier, _unit = reader_of(origin_devnet).read_reserves(paused_at.number)
    assert {r.symbol: r.liquidation_grace_period_until for r in earlier}["USDT"] == 0


def test_legs_equal_token_balances_with_3_5_rounding(origin_devnet: OriginDevnet) -> None:
    client = origin_devnet.client
    reader = reader_of(origin_devnet)
    head = block_ref(client)
    reserves, _unit = reader.read_reserves(head.number)
    sample = origin_devnet.accounts[:60]
    for pos in reader.read_positions(sample, reserves, head.number):
        assert [leg.asset for leg in pos.legs] == [r.asset for r in reserves]  # one leg a reserve
        legs = {leg.asset: leg for leg, r in zip(pos.legs, reserves, strict=True)
                if (pos.user_configuration >> (2 * r.reserve_id)) & 3}  # the reserves read: bitmap bits  # fmt: skip
        assert legs
        for reserve in reserves:
            a_balance = client.eth_call(reserve.a_token, abi.BALANCE_OF.encode(pos.account), head.number)
            debt = client.eth_call(reserve.variable_debt_token, abi.BALANCE_OF.encode(pos.account), head.number)
            leg = legs.get(reserve.asset)
            if leg is None:  # not used: no debt (a borrowing bit); collateral held with its bit off is not read
                assert int.from_bytes(debt, "big") == 0, (pos.account, reserve.symbol)
                continue
            assert leg.collateral == int.from_bytes(a_balance, "big"), (pos.account, reserve.symbol)
            assert leg.variable_debt == int.from_bytes(debt, "big"), (pos.account, reserve.symbol)
            assert leg.stable_debt == 0


def test_scan_stores_prints_every_position_and_names_revision_and_emode(
    origin_devnet: OriginDevnet, tmp_path: Path, capsys: Any
) -> None:
    db = tmp_path / "origin.db"
    config_path = tmp_path / "origin.yaml"
    config_path.write_text(yaml.safe_dump(devnet_config(origin_devnet.url, origin_devnet.deployment, str(db))))
    assert main(["scan", "--config", str(config_path), "--json"]) == 0
    printed = {row["account"]: row for row in json.loads(capsys.readouterr().out)}
    seeded = {p.account for p in origin_devnet.positions}
    assert set(printed) >= seeded and len(seeded) >= 200

    truth = dict(zip(origin_devnet.accounts, user_account_data(
        origin_devnet.node, origin_devnet.deployment, origin_devnet.accounts), strict=True))  # fmt: skip
    with Store(db) as store:
        stored = {row["account"]: row for row in store.latest_positions()}
        assert [s["revision"] for s in store.scans()] == [10]
    ids = reserve_ids(origin_devnet)
    kinds_seen: set[int] = set()
    outside_bitmap = 0
    for account in seeded:
        data = truth[account]
        row = printed[account]
        assert row["health_factor"] == format_wad(data[5])
        assert int(stored[account]["health_factor_wad"]) == data[5]
        assert (int(stored[account]["collateral_base"]), int(stored[account]["debt_base"])) == data[:2]
        assert (row["aave_revision"], row["aave_version"]) == (10, "3.6")
        emode = row["emode"]
        assert emode["id"] == row["emode_category"]
        kinds_seen.add(emode["id"])
        spec = EMODES.get(emode["id"])
        assert emode["label"] == (spec.label if spec else "")
        assert emode["collateral"], account  # every seeded position has collateral
        for leg in emode["collateral"]:
            reserve = SPECS[leg["symbol"]]
            member = spec is not None and leg["symbol"] in spec.collateral
            outside_bitmap += spec is not None and not member
            assert leg["in_emode"] == member
            if member and spec is not None:
                ltv = 0 if leg["symbol"] in spec.ltvzero else spec.ltv
                expected = (ltv, spec.liquidation_threshold, spec.liquidation_bonus)
            else:
                expected = (reserve.ltv, reserve.liquidation_threshold, reserve.liquidation_bonus)
            got = (leg["ltv_bps"], leg["liquidation_threshold_bps"], leg["liquidation_bonus_bps"])
            assert got == expected, (account, leg["symbol"], ids[leg["symbol"]])
    assert kinds_seen == {0, 1, 2, 3}
    assert outside_bitmap > 0  # positions holding collateral outside their category's bitmap


def test_stored_origin_snapshot_rebuilds_exactly(origin_devnet: OriginDevnet, tmp_path: Path) -> None:
    db = tmp_path / "rebuild.db"
    config_path = tmp_path / "rebuild.yaml"
    config_path.write_text(yaml.safe_dump(devnet_config(origin_devnet.url, origin_devnet.deployment, str(db))))
    set_reserve_pause(origin_devnet.node, origin_devnet.deployment, "DAI", False, 7200)  # a grace period to keep
    graced = block_ref(origin_devnet.client)
    config = load_config(config_path)
    with Store(db) as store:
        (result,) = scan_all(config, store)
        rebuilt = store.load_snapshot(result.snapshot.market)
    assert rebuilt == result.snapshot
    assert rebuilt.revision == 10
    assert rebuilt.reserve("DAI").liquidation_grace_period_until == graced.timestamp + 7200
    assert {c.id: c.ltv_zero_bitmap for c in rebuilt.emode_categories}[2] != 0
