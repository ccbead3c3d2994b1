"""The reader against the real Aave V3 contracts on anvil."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from monitor.chain.multicall import Multicall
from monitor.chain.rpc import RpcClient
from monitor.cli import main
from monitor.devnet.seed import seed_positions
from monitor.models import MAX_UINT256, format_wad
from monitor.protocols import aave_v3_abi as abi
from monitor.protocols.aave_v3 import ACCOUNT_CALLS, DISCOVERY, AaveV3Reader, block_ref
from monitor.scan import scan_all
from monitor.store import Store
from tests.support import Devnet

pytestmark = pytest.mark.devnet


def direct_account_data(client: RpcClient, pool: str, accounts: list[str], block: int) -> dict[str, tuple[int, ...]]:
    """getUserAccountData per account as plain eth_calls (no Multicall), in JSON-RPC batches."""
    out: dict[str, tuple[int, ...]] = {}
    for start in range(0, len(accounts), 200):
        part = accounts[start : start + 200]
        calls = [
            ("eth_call", [{"to": pool, "data": "0x" + abi.GET_USER_ACCOUNT_DATA.encode(a).hex()}, hex(block)])
            for a in part
        ]
        for account, raw in zip(part, client.batch(calls), strict=True):
            out[account] = abi.GET_USER_ACCOUNT_DATA.decode(bytes.fromhex(raw[2:]))
    return out


def test_seeded_book_covers_emode_and_all_decimals(devnet: Devnet) -> None:
    decimals = {t.decimals for t in devnet.deployment.tokens.values()}
    assert {6, 8, 18} <= decimals
    assert sum(1 for s in devnet.seeded if s.emode) >= 50
    used = {c for s in devnet.seeded for c in s.collaterals} | {s.debt for s in devnet.seeded}
    assert used == set(devnet.deployment.tokens)


def test_stored_and_printed_hf_equal_get_user_account_data(devnet: Devnet, tmp_path: Path, capsys: Any) -> None:
    config_path = devnet.write_config(tmp_path / "devnet.yaml", tmp_path / "h.db")
    assert main(["scan", "--config", str(config_path), "--json"]) == 0
    printed = {row["account"]: row for row in json.loads(capsys.readouterr().out)}
    assert len(printed) == len(devnet.seeded)

    with Store(tmp_path / "h.db") as store:
        stored = {row["account"]: row for row in store.latest_positions()}
    block = next(iter(printed.values()))["block"]
    truth = direct_account_data(devnet.client, devnet.deployment.pool, [s.account for s in devnet.seeded], block)
    emode_seen = 0
    for account, data in truth.items():
        hf = data[5]
        assert printed[account]["health_factor"] == format_wad(hf)
        assert int(stored[account]["health_factor_wad"]) == hf
        assert stored[account]["block"] == block
        assert int(stored[account]["collateral_base"]) == data[0]
        assert int(stored[account]["debt_base"]) == data[1]
        emode_seen += printed[account]["emode_category"] == 1
    assert emode_seen >= 50
    hfs = [float(r["health_factor"]) for r in printed.values()]
    assert min(hfs) > 1.0 and max(hfs) < 3.0
    # @aave/core-v3 1.19.3 is Pool revision 1 (Aave 3.0): named in every row and stored per scan
    assert {(r["aave_revision"], r["aave_version"]) for r in printed.values()} == {(1, "3.0")}
    with Store(tmp_path / "h.db") as store:
        assert [s["revision"] for s in store.scans()] == [1]
        rebuilt = store.load_snapshot("aave-v3-devnet")
    assert rebuilt.revision == 1 and all(c.collateral_bitmap is None for c in rebuilt.emode_categories)
    cats = {c.id: c for c in rebuilt.emode_categories}
    reserves = {r.symbol: r for r in rebuilt.reserves}
    for account, row in printed.items():
        emode = row["emode"]
        assert emode["id"] == row["emode_category"]
        assert emode["label"] == (cats[emode["id"]].label if emode["id"] else "")
        for leg in emode["collateral"]:
            reserve = reserves[leg["symbol"]]
            member = bool(emode["id"]) and reserve.emode_category == emode["id"]  # 3.0: the reserve bits
            source = cats[emode["id"]] if member else reserve
            assert leg["in_emode"] == member, account
            assert leg["liquidation_threshold_bps"] == source.liquidation_threshold
            assert leg["liquidation_bonus_bps"] == source.liquidation_bonus
            assert leg["ltv_bps"] == (source.ltv if reserve.ltv else 0)


def test_json_fields(devnet: Devnet, tmp_path: Path, capsys: Any) -> None:
    # one account without debt: supply only (HF is type(uint256).max on chain)
    lender = devnet.deployment.whale
    config_path = tmp_path / "c.yaml"
    import yaml

    from monitor.devnet.session import devnet_config

    data = devnet_config(devnet.url, devnet.deployment, str(tmp_path / "j.db"))
    data["markets"][0]["accounts"] = [lender.lower(), devnet.seeded[0].account]
    config_path.write_text(yaml.safe_dump(data))
    assert main(["scan", "--config", str(config_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["account"] for r in rows] == [devnet.seeded[0].account, lender]  # sorted by HF, checksummed
    for row in rows:
        assert {"market", "account", "block", "health_factor", "collateral_usd", "debt_usd"} <= set(row)
        assert row["market"] == "aave-v3-devnet"
        assert isinstance(row["block"], int)
    assert rows[1]["health_factor"] == "inf"
    whole, frac = rows[0]["health_factor"].split(".")
    assert len(frac) == 18 and whole.isdigit()
    assert float(rows[1]["collateral_usd"]) > 1e8 and float(rows[1]["debt_usd"]) == 0


def test_reader_positions_have_exact_legs(devnet: Devnet) -> None:
    client = devnet.client
    reader = AaveV3Reader(
        client, market="m", pool_addresses_provider=devnet.deployment.pool_addresses_provider,
        chain_id=31337, multicall=Multicall(client, calls_per_batch=500),
    )  # fmt: skip
    head = block_ref(client)
    reserves, unit = reader.read_reserves(head.number)
    assert unit == 10**8
    assert reader.revision(head.number) == 1  # POOL_REVISION of @aave/core-v3 1.19.3
    assert {r.liquidation_protocol_fee for r in reserves} == {0}  # the 3.0 devnet sets no fee
    assert not any(r.paused for r in reserves) and {r.liquidation_grace_period_until for r in reserves} == {0}
    assert [r.symbol for r in reserves] == ["WETH", "WBTC", "USDC", "DAI", "SOL"]
    assert [r.decimals for r in reserves] == [18, 8, 6, 18, 18]
    assert {r.symbol: r.emode_category for r in reserves} == {"WETH": 0, "WBTC": 0, "USDC": 1, "DAI": 1, "SOL": 0}
    sample = [s.account for s in devnet.seeded[:40]]
    positions = reader.read_positions(sample, reserves, head.number)
    for pos in positions:
        for leg, reserve in zip(pos.legs, reserves, strict=True):
            a_balance = client.eth_call(reserve.a_token, abi.BALANCE_OF.encode(pos.account), head.number)
            debt = client.eth_call(reserve.variable_debt_token, abi.BALANCE_OF.encode(pos.account), head.number)
            assert leg.collateral == int.from_bytes(a_balance, "big")
            assert leg.variable_debt == int.from_bytes(debt, "big")


def test_new_accounts_found_without_rereading_logs(devnet: Devnet, tmp_path: Path, monkeypatch: Any) -> None:
    config = devnet.config(tmp_path / "d.db")
    ranges: list[tuple[int, int]] = []
    original = RpcClient.request

    def recording(self: RpcClient, method: str, params: Any = ()) -> Any:
        if method == "eth_getLogs":
            ranges.append((int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)))
        return original(self, method, params)

    monkeypatch.setattr(RpcClient, "request", recording)
    with Store(tmp_path / "d.db") as store:
        (first,) = scan_all(config, store)
        assert first.new_accounts == len(devnet.seeded)
        assert ranges[0][0] == 0
        checkpoint = store.get_checkpoint("aave-v3-devnet", DISCOVERY)
        assert checkpoint is not None and checkpoint.block == first.snapshot.block

        added = seed_positions(devnet.node, devnet.deployment, 5, seed=99)
        ranges.clear()
        (second,) = scan_all(config, store)
        assert second.new_accounts == 5
        assert ranges and ranges[0][0] == checkpoint.block + 1  # continues, no rescan from start_block
        assert all(lo > checkpoint.block for lo, _ in ranges)
        assert {p.account for p in second.snapshot.positions} >= {a.account for a in added}
        assert len(second.snapshot.positions) == len(devnet.seeded) + 5


def test_reading_1000_positions_is_batched(devnet: Devnet) -> None:
    client = RpcClient([devnet.url], timeout=120, max_retries=0)
    batch = 1000
    reader = AaveV3Reader(
        client, market="m", pool_addresses_provider=devnet.deployment.pool_addresses_provider,
        chain_id=31337, multicall=Multicall(client, calls_per_batch=batch),
    )  # fmt: skip
    accounts = [s.account for s in devnet.seeded]
    assert len(accounts) >= 1000
    head = block_ref(client)
    before = client.method_counts["eth_call"]
    snapshot = reader.snapshot(accounts, head)
    eth_calls = client.method_counts["eth_call"] - before
    calls_per_account = ACCOUNT_CALLS + 3 * len(snapshot.reserves)
    accounts_per_batch = batch // calls_per_account
    assert eth_calls <= math.ceil(len(accounts) / accounts_per_batch) + 5
    assert len(snapshot.positions) == len(accounts)
    assert all(p.health_factor != MAX_UINT256 for p in snapshot.positions)
    client.close()
