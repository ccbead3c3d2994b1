"""The 60-reserve aave-v3-origin 3.6 devnet (300 positions): the reader's two-pass full read (only
the reserves each bitmap names, batches sized by gas, in flight together) against the Pool."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monitor.chain.blocks import block_ref
from monitor.chain.multicall import Multicall
from monitor.chain.rpc import RpcClient
from monitor.devnet.aave_origin import OriginDevnet, user_account_data
from monitor.devnet.aave_wide import WIDE_EMODES, WIDE_RESERVES, plan_wide_positions, start_wide_devnet
from monitor.models import MarketSnapshot
from monitor.protocols import aave_v3_abi as abi
from monitor.protocols.aave_v3 import AaveV3Reader

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wide() -> Iterator[OriginDevnet]:
    with start_wide_devnet(300, days=10) as origin:
        yield origin


def reader_of(
    origin: OriginDevnet,
    *,
    gas_budget: int = 5_000_000,
    measure: bool = False,
    used_reserves_only: bool = True,
    read_account_data: bool = False,
) -> tuple[AaveV3Reader, Multicall]:
    client = RpcClient([origin.url], timeout=120, max_retries=0, max_concurrent_requests=4)
    # the eth_call gets exactly the planned budget as its gas: a batch the gas table under-estimates fails
    multicall = Multicall(client, gas_budget=gas_budget, call_gas_limit=gas_budget, measure_gas=measure)
    reader = AaveV3Reader(
        client, market="wide", pool_addresses_provider=origin.deployment.pool_addresses_provider, chain_id=31337,
        multicall=multicall, used_reserves_only=used_reserves_only, read_account_data=read_account_data,
    )  # fmt: skip
    return reader, multicall


def test_the_market_has_60_reserves_four_emodes_and_positions_of_1_to_4_reserves(wide: OriginDevnet) -> None:
    assert len(WIDE_RESERVES) == 60 and [e.id for e in WIDE_EMODES] == [1, 2, 3, 4]
    reserves = wide.node.call(wide.deployment.pool, abi.GET_RESERVES_LIST)
    assert len(reserves) == 60
    used = [len(set(p.collaterals) | set(p.debts)) for p in wide.positions]
    assert min(used) >= 1 and max(used) <= 4
    assert {p.emode for p in wide.positions} == {0, 1, 2, 3, 4}
    assert plan_wide_positions(40, {r.symbol: 10**8 for r in WIDE_RESERVES}) == plan_wide_positions(
        40, {r.symbol: 10**8 for r in WIDE_RESERVES}
    )  # reproducible


def test_two_pass_read_equals_the_pool_and_its_gas_estimates_hold(wide: OriginDevnet) -> None:
    reader, multicall = reader_of(wide)
    head = block_ref(wide.client)
    before = reader.client.total_requests
    snapshot: MarketSnapshot = reader.snapshot(wide.accounts, head)
    requests = reader.client.total_requests - before
    assert multicall.splits == 0  # no batch went over its planned gas (sent as the eth_call's gas)
    chain = user_account_data(wide.node, wide.deployment, wide.accounts)
    for position, data in zip(snapshot.positions, chain, strict=True):
        assert position.health_factor == data[5], position.account  # recomputed locally, exact
        assert (position.total_collateral_base, position.total_debt_base) == data[:2], position.account
        assert position.available_borrows_base == data[2] and position.ltv == data[4], position.account
    legacy, legacy_multicall = reader_of(wide, used_reserves_only=False, read_account_data=True, gas_budget=30_000_000)
    before = legacy.client.total_requests
    full = legacy.snapshot(wide.accounts, head)
    legacy_requests = legacy.client.total_requests - before
    assert [p.health_factor for p in full.positions] == [p.health_factor for p in snapshot.positions]
    for mine, theirs in zip(snapshot.positions, full.positions, strict=True):
        for leg, other, reserve in zip(mine.legs, theirs.legs, snapshot.reserves, strict=True):
            if (mine.user_configuration >> (2 * reserve.reserve_id)) & 3:  # read: as the full read
                assert leg == other, (mine.account, leg.symbol)
            else:  # not read: zero, and no debt there on chain either
                assert leg.collateral == leg.variable_debt == other.variable_debt == 0, (mine.account, leg.symbol)
    # 300 accounts x 2 + ~2.6 x 2 sub-calls at 5 M gas a batch vs 300 x 123 at 30 M
    assert requests <= 12 and legacy_requests >= requests + 5  # measured: 12 and 20
    assert legacy_multicall.splits == 0


def test_measured_gas_plans_batches_the_node_accepts(wide: OriginDevnet) -> None:
    reader, multicall = reader_of(wide, measure=True, gas_budget=3_000_000)
    head = block_ref(wide.client)
    positions = reader.read_positions(wide.accounts, reader.read_reserves(head.number)[0], head.number)
    assert multicall.splits == 0 and len(positions) == 300
    estimates = reader.client.method_counts["eth_estimateGas"]
    shapes = len(multicall.gas.measured)
    assert estimates == shapes + 1 and shapes >= 5  # once per shape (and the empty aggregate3), cached
    reader.read_positions(wide.accounts[:50], reader.read_reserves(head.number)[0], head.number)
    assert reader.client.method_counts["eth_estimateGas"] == estimates
