"""Morpho Blue on the devnet: compiled from @morpho-org/morpho-blue, deployed, seeded, liquidated."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from monitor.chain.rpc import RpcClient
from monitor.devnet import morpho as mb
from monitor.devnet.anvil import Anvil
from monitor.devnet.artifacts import abi_type
from monitor.devnet.node import DevnetNode, Tx
from monitor.errors import DevnetError

pytestmark = pytest.mark.devnet

SEED = 3
COUNT = 60


@dataclass
class MorphoDevnet:
    node: DevnetNode
    deployment: mb.MorphoDeployment
    seeded: list[mb.SeededMorpho]


@pytest.fixture(scope="module")
def morpho_devnet() -> Iterator[MorphoDevnet]:
    """Its own anvil with Morpho Blue, the two default markets and 60 seeded positions."""
    with Anvil() as anvil:
        client = RpcClient([anvil.url], timeout=120, max_retries=0)
        node = DevnetNode(client)
        deployment = mb.deploy_morpho(node)
        seeded = mb.seed_morpho(node, deployment, COUNT, seed=SEED)
        yield MorphoDevnet(node, deployment, seeded)
        client.close()


def position_hf(env: MorphoDevnet, market: mb.MorphoMarket, account: str) -> tuple[int, int, int, float]:
    """(collateral, borrowed, maxBorrow, HF) from raw calls, computed as Morpho's _isHealthy does."""
    node, morpho, key = env.node, env.deployment.morpho, market.id_bytes
    _supply, borrow_shares, collateral = mb.POSITION.decode(
        node.client.eth_call(morpho, mb.POSITION.encode(key, account))
    )
    totals = mb.MARKET.decode(node.client.eth_call(morpho, mb.MARKET.encode(key)))
    price = node.call(market.oracle, mb.ORACLE_PRICE)
    den = totals[3] + 10**6  # toAssetsUp with Morpho's virtual shares / assets
    borrowed = -(-borrow_shares * (totals[2] + 1) // den)
    limit = collateral * price // 10**36 * market.lltv // 10**18
    hf = collateral * price / 10**36 * market.lltv / 10**18 / borrowed
    return collateral, borrowed, limit, hf


# -- compilation ---------------------------------------------------------------------------


def test_artifacts_compile_then_come_from_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    artifacts = mb.morpho_artifacts()  # compiles on a cold cache (about 12 s), else loads it
    assert set(artifacts) == {"Morpho", "ERC20Mock", "OracleMock", "EventsLib"}
    for name in ("Morpho", "ERC20Mock", "OracleMock"):
        artifact = artifacts[name]
        assert artifact["bytecode"].startswith("0x60") and len(artifact["bytecode"]) > 200, name
        assert artifact["abi"], name
    path = mb.morpho_artifacts_path()
    assert path.is_file() and path.name.startswith("morpho-")
    mtime = path.stat().st_mtime_ns

    def no_compile(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("solc-js ran although the artifacts are cached")

    monkeypatch.setattr(subprocess, "run", no_compile)
    assert mb.morpho_artifacts() == artifacts
    assert path.stat().st_mtime_ns == mtime


def test_missing_node_or_package_says_to_run_setup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIQMON_CACHE", str(tmp_path / "cache"))  # a cold cache: the compiler is needed
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(DevnetError, match=r"node.*bash scripts/setup\.sh"):
        mb.morpho_artifacts()
    monkeypatch.setenv("LIQMON_ROOT", str(tmp_path))  # no node_modules there
    with pytest.raises(DevnetError, match=r"morpho-blue.*bash scripts/setup\.sh"):
        mb.morpho_artifacts()


def test_declared_functions_and_events_match_the_compiled_abi() -> None:
    artifacts = mb.morpho_artifacts()
    abi = artifacts["Morpho"]["abi"]
    functions = {f"{i['name']}({','.join(abi_type(p) for p in i['inputs'])})" for i in abi if i["type"] == "function"}
    events = {
        f"{i['name']}({','.join(abi_type(p) for p in i['inputs'])})"
        for i in artifacts["EventsLib"]["abi"]  # solc 0.8.19 leaves library events out of Morpho's ABI
        if i["type"] == "event"
    }
    for name, spec in mb.MORPHO_FNS.items():
        assert spec.signature in functions, name
        outputs = next(i["outputs"] for i in abi if i["type"] == "function" and i["name"] == name)
        assert spec.outputs == tuple(abi_type(p) for p in outputs), name
    for event in (mb.BORROW_EVENT, mb.CREATE_MARKET_EVENT, mb.SUPPLY_COLLATERAL_EVENT, mb.LIQUIDATE_EVENT):
        assert event in events
    assert mb.BORROW_EVENT == "Borrow(bytes32,address,address,address,uint256,uint256)"


# -- deployment ----------------------------------------------------------------------------


def test_deploy_creates_the_markets_with_computed_ids(morpho_devnet: MorphoDevnet) -> None:
    node, dep = morpho_devnet.node, morpho_devnet.deployment
    assert len(dep.markets) == 2
    assert node.call(dep.morpho, mb.OWNER).lower() == dep.owner.lower()
    assert node.call(dep.morpho, mb.IS_IRM_ENABLED, mb.ZERO_ADDRESS) is True
    expected_prices = [2000 * 10**24, 30000 * 10**46]  # 10**(36 + loan decimals - collateral decimals)
    for market, spec, price in zip(dep.markets, mb.DEFAULT_MARKETS, expected_prices, strict=True):
        assert market.id == mb.market_id(market.params())
        params = mb.call_all(node, dep.morpho, mb.ID_TO_MARKET_PARAMS, market.id_bytes)
        assert [str(a).lower() for a in params[:4]] == [str(a).lower() for a in market.params()[:4]]
        assert params[4] == market.lltv == spec.lltv
        assert node.call(dep.morpho, mb.IS_LLTV_ENABLED, market.lltv) is True
        assert (market.collateral_symbol, market.collateral_decimals) == (
            spec.collateral_symbol,
            spec.collateral_decimals,
        )
        assert (market.loan_symbol, market.loan_decimals) == (spec.loan_symbol, spec.loan_decimals)
        assert dep.tokens[market.loan_symbol] == (market.loan_token, market.loan_decimals)
        assert node.call(market.oracle, mb.ORACLE_PRICE) == price
        total_supply, _, total_borrow, _, last_update, fee = mb.call_all(node, dep.morpho, mb.MARKET, market.id_bytes)
        assert total_supply - total_borrow >= mb.LIQUIDITY_TOKENS * 10**market.loan_decimals // 2
        assert last_update > 0 and fee == 0
    assert [m.lltv for m in dep.markets] == [86 * 10**16, 77 * 10**16]
    assert mb.MorphoDeployment.from_json(dep.to_json()) == dep


# -- seeding -------------------------------------------------------------------------------


def test_seeding_is_reproducible(morpho_devnet: MorphoDevnet) -> None:
    node, dep, seeded = morpho_devnet.node, morpho_devnet.deployment, morpho_devnet.seeded
    assert len(seeded) == COUNT and len({p.account for p in seeded}) == COUNT
    assert {p.market_id for p in seeded} == {m.id for m in dep.markets}
    snapshot = node.snapshot()
    try:
        again = mb.seed_morpho(node, dep, COUNT, seed=SEED)  # the same accounts open the same amounts again
        assert again == seeded
        for p in seeded[:10]:
            collateral, *_ = position_hf(morpho_devnet, dep.market(p.market_id), p.account)
            assert collateral == 2 * p.collateral
        other = mb.seed_morpho(node, dep, 5, seed=SEED + 1)
        assert not {p.account for p in other} & {p.account for p in seeded}
    finally:
        node.revert(snapshot)


def test_seeded_positions_are_healthy_near_their_target(morpho_devnet: MorphoDevnet) -> None:
    for p in morpho_devnet.seeded:
        market = morpho_devnet.deployment.market(p.market_id)
        collateral, borrowed, limit, hf = position_hf(morpho_devnet, market, p.account)
        assert collateral == p.collateral
        assert p.borrowed <= borrowed <= p.borrowed + 1  # shares round up by at most one unit
        assert limit >= borrowed, p
        assert 1.05 <= p.target_hf <= 2.0
        assert abs(hf / p.target_hf - 1) < 0.01, (p, hf)


def test_price_drop_makes_positions_liquidatable(morpho_devnet: MorphoDevnet) -> None:
    node, dep = morpho_devnet.node, morpho_devnet.deployment
    weth = dep.market("WETH")
    snapshot = node.snapshot()
    try:
        raw = mb.set_morpho_price(node, dep, 0, 1400.0)  # WETH -30 %
        assert raw == 1400 * 10**24 == node.call(weth.oracle, mb.ORACLE_PRICE)
        unhealthy: list[mb.SeededMorpho] = []
        healthy: list[mb.SeededMorpho] = []
        for p in morpho_devnet.seeded:
            if p.market_id != weth.id:
                continue
            _collateral, borrowed, limit, _hf = position_hf(morpho_devnet, weth, p.account)
            (unhealthy if limit < borrowed else healthy).append(p)
            assert (limit < borrowed) == (p.target_hf * 0.7 < 1), p  # HF scales with the price
        assert unhealthy and healthy

        victim = unhealthy[0]
        collateral, borrowed, _, _ = position_hf(morpho_devnet, weth, victim.account)
        seized = collateral // 2
        receipt = node.send(
            Tx(
                dep.supplier,
                dep.morpho,
                mb.LIQUIDATE.encode(weth.params(), victim.account, seized, 0, b""),
                600_000,
                "liquidate",
            )
        )
        logs = [log for log in receipt["logs"] if log["topics"][0].lower() == mb.LIQUIDATE_TOPIC]
        assert len(logs) == 1 and logs[0]["topics"][1].lower() == weth.id
        after_collateral, after_borrowed, _, _ = position_hf(morpho_devnet, weth, victim.account)
        assert after_collateral == collateral - seized
        assert 0 < after_borrowed < borrowed
        assert node.call(weth.collateral_token, mb.ERC20_BALANCE_OF, dep.supplier) == seized

        survivor = healthy[0]
        with pytest.raises(DevnetError, match="position is healthy"):
            node.send(
                Tx(
                    dep.supplier,
                    dep.morpho,
                    mb.LIQUIDATE.encode(weth.params(), survivor.account, 1, 0, b""),
                    600_000,
                    "liquidate healthy",
                )
            )
    finally:
        node.revert(snapshot)
