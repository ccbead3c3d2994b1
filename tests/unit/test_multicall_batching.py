"""Multicall batches sized by gas, grouped, measured once per call shape, run concurrently in order."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from eth_abi import encode

from monitor.chain.abi import fn
from monitor.chain.multicall import (
    COLD_TARGET_GAS,
    MEASURE_MARGIN,
    Call,
    GasModel,
    Multicall,
    encode_aggregate3,
)
from monitor.chain.rpc import RpcClient
from monitor.config import Config, parse_config
from monitor.errors import ConfigError, RpcResponseError
from monitor.protocols import aave_v3_abi as abi
from monitor.scan import make_reader

T = TypeVar("T")
R = TypeVar("R")
POOL = "0x" + "1" * 40
TOKENS = ["0x" + f"{i + 2:x}" * 40 for i in range(6)]
USERS = ["0x" + f"{i:040x}" for i in range(1, 2_001)]
ECHO = fn("echo(uint256)", "uint256")


def planned_gas(multicall: Multicall, calls: Sequence[Call]) -> int:
    model = multicall.gas
    return sum(model.of(c) for c in calls) + COLD_TARGET_GAS * len({c.target for c in calls})


def test_batches_are_sized_by_gas_not_count() -> None:
    multicall = Multicall(None, gas_budget=1_000_000)  # type: ignore[arg-type]
    cheap = [Call(POOL, abi.GET_USER_CONFIGURATION, (u,)) for u in USERS[:500]]  # 9,000 gas each
    costly = [Call(POOL, abi.GET_USER_ACCOUNT_DATA, (u,)) for u in USERS[:500]]  # 90,000 each
    cheap_plan, costly_plan = multicall.plan(cheap), multicall.plan(costly)
    assert len(cheap_plan) == 5 and len(costly_plan) == 46  # 110 vs 11 sub-calls a batch
    for calls, plan in ((cheap, cheap_plan), (costly, costly_plan)):
        assert plan[0][0] == 0 and plan[-1][1] == len(calls)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(plan))  # contiguous, in order
        assert all(planned_gas(multicall, calls[lo:hi]) <= 1_000_000 for lo, hi in plan)


def test_calls_per_batch_stays_a_hard_cap() -> None:
    multicall = Multicall(None, calls_per_batch=40, gas_budget=10**9)  # type: ignore[arg-type]
    calls = [Call(POOL, abi.GET_USER_EMODE, (u,)) for u in USERS[:100]]
    assert [hi - lo for lo, hi in multicall.plan(calls)] == [40, 40, 20]


def test_a_call_over_the_budget_is_a_batch_of_its_own() -> None:
    multicall = Multicall(None, gas_budget=50_000)  # type: ignore[arg-type]
    calls = [Call(POOL, abi.GET_USER_CONFIGURATION, (USERS[0],)), Call(POOL, abi.GET_USER_ACCOUNT_DATA, (USERS[1],)),
             Call(POOL, abi.GET_USER_CONFIGURATION, (USERS[2],))]  # fmt: skip
    assert multicall.plan(calls) == [(0, 1), (1, 2), (2, 3)]


def test_prices_are_planned_per_asset_and_targets_cold_once() -> None:
    model = GasModel()
    few = Call(POOL, abi.GET_ASSETS_PRICES, (TOKENS[:2],))
    many = Call(POOL, abi.GET_ASSETS_PRICES, (TOKENS * 10,))
    empty = model.of(Call(POOL, abi.GET_ASSETS_PRICES, ([],)))
    assert model.of(many) - empty == 30 * (model.of(few) - empty)  # 60 assets vs 2
    multicall = Multicall(None, gas_budget=10**9)  # type: ignore[arg-type]
    same = [Call(TOKENS[0], abi.SCALED_BALANCE_OF, (u,)) for u in USERS[:10]]
    spread = [Call(TOKENS[i % 6], abi.SCALED_BALANCE_OF, (u,)) for i, u in enumerate(USERS[:10])]
    assert planned_gas(multicall, spread) - planned_gas(multicall, same) == 5 * COLD_TARGET_GAS


def account_groups(n: int, reserves: int) -> list[list[Call]]:
    return [
        [Call(POOL, abi.GET_USER_CONFIGURATION, (u,)), *(Call(TOKENS[r % 6], abi.SCALED_BALANCE_OF, (u,))
                                                          for r in range(reserves))]
        for u in USERS[:n]
    ]  # fmt: skip


def test_groups_are_kept_whole_when_they_fit() -> None:
    multicall = Multicall(None, gas_budget=500_000)  # type: ignore[arg-type]
    groups = account_groups(200, 3)
    plan = multicall.plan_groups(groups)
    bounds = {4 * i for i in range(201)}
    assert all(lo in bounds and hi in bounds for lo, hi in plan)  # cut at group boundaries only
    flat = [c for g in groups for c in g]
    assert plan[-1][1] == len(flat) and all(planned_gas(multicall, flat[lo:hi]) <= 500_000 for lo, hi in plan)


def test_a_group_larger_than_a_batch_is_cut_inside() -> None:
    multicall = Multicall(None, gas_budget=100_000)  # type: ignore[arg-type]
    groups = [*account_groups(1, 2), *account_groups(1, 40), *account_groups(1, 2)]
    plan = multicall.plan_groups(groups)
    assert plan[0] == (0, 3) and plan[-1] == (44, 47)
    inner = plan[1:-1]
    assert inner[0][0] == 3 and inner[-1][1] == 44 and len(inner) > 1


class EstimatingNode:
    """Answers eth_estimateGas as 21,000 + 5,000 + per-call gas x sub-calls (selector-dependent)."""

    def __init__(self, per_call: dict[bytes, int]) -> None:
        self.per_call = per_call
        self.estimates = 0

    def request(self, method: str, params: Sequence[Any], **_: Any) -> str:
        assert method == "eth_estimateGas"
        data = bytes.fromhex(params[0]["data"][2:])
        n = int.from_bytes(data[36:68], "big")
        selector = data[4 + 64 + 32 * n + 128 : 4 + 64 + 32 * n + 132] if n else b""
        self.estimates += 1
        return hex(26_000 + n * self.per_call.get(selector, 0))


def test_measure_gas_once_per_shape_and_plan_with_it() -> None:
    node = EstimatingNode({abi.GET_USER_CONFIGURATION.selector: 20_000, abi.GET_USER_EMODE.selector: 2_000})
    multicall = Multicall(node, gas_budget=1_000_000, measure_gas=True)  # type: ignore[arg-type]
    calls = [Call(POOL, f, (u,)) for u in USERS[:300] for f in (abi.GET_USER_CONFIGURATION, abi.GET_USER_EMODE)]
    multicall.measure(calls, 5)
    assert node.estimates == 3  # the empty aggregate3 and one per shape
    assert multicall.gas.of(calls[0]) == int(20_000 * MEASURE_MARGIN) + 1
    assert multicall.gas.of(calls[1]) == int(2_000 * MEASURE_MARGIN) + 1
    multicall.measure(calls, 6)
    assert node.estimates == 3  # cached for the run
    # 25,001 + 2,501 gas a pair (+ one cold target) in 1 M: 36 pairs a batch
    assert [hi - lo for lo, hi in multicall.plan(calls)] == [72] * 8 + [24]


def test_the_hand_encoder_matches_what_the_estimating_node_reads() -> None:
    data = encode_aggregate3([Call(POOL, abi.GET_USER_EMODE, (USERS[0],))])
    assert data[4 + 64 + 32 + 128 : 4 + 64 + 32 + 132] == abi.GET_USER_EMODE.selector


class PoolClient:
    """A client with ``run_concurrently`` (threads) and an ``eth_call`` answering every ECHO(x)
    sub-call with x + 1, after a delay that makes later batches finish first."""

    def __init__(self, workers: int, refuse_over: int | None = None) -> None:
        self.workers = workers
        self.refuse_over = refuse_over
        self.sizes: list[int] = []
        self.in_flight = 0
        self.peak = 0
        self.lock = threading.Lock()

    def run_concurrently(self, work: Callable[[T], R], items: Sequence[T]) -> list[R]:
        client = RpcClient(["http://127.0.0.1:9"], max_concurrent_requests=self.workers)
        try:
            return client.run_concurrently(work, items)
        finally:
            client.close()

    def eth_call(self, to: str, data: bytes, block: Any, gas: int | None = None) -> bytes:
        n = int.from_bytes(data[36:68], "big")
        with self.lock:
            self.sizes.append(n)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            if self.refuse_over is not None and n > self.refuse_over:
                raise RpcResponseError("eth_call: node error -32000: out of gas", -32000)
            heads = 4 + 64
            values = []
            for i in range(n):
                at = heads + int.from_bytes(data[heads + 32 * i : heads + 32 * i + 32], "big")
                arg = int.from_bytes(data[at + 128 + 4 : at + 128 + 36], "big")
                values.append(arg)
            time.sleep(0.02 if values and values[0] < 50 else 0.001)  # the first batches answer last
            return encode(["(bool,bytes)[]"], [[(True, (v + 1).to_bytes(32, "big")) for v in values]])
        finally:
            with self.lock:
                self.in_flight -= 1


def echo_calls(n: int) -> list[Call]:
    return [Call(POOL, ECHO, (i,)) for i in range(n)]


def test_batches_run_concurrently_and_come_back_in_order() -> None:
    node = PoolClient(workers=4)
    multicall = Multicall(node, calls_per_batch=25)  # type: ignore[arg-type]
    assert multicall.run(echo_calls(400), 1) == [(i + 1,) for i in range(400)]
    assert len(node.sizes) == 16 and 1 < node.peak <= 4
    groups = [echo_calls(400)[i : i + 7] for i in range(0, 400, 7)]
    results = multicall.run_groups(groups, 1)
    assert [len(g) for g in results] == [len(g) for g in groups]
    assert [v for g in results for v in g] == [(i + 1,) for i in range(400)]


def test_a_refused_batch_among_concurrent_ones_is_split_and_learnt() -> None:
    node = PoolClient(workers=3, refuse_over=30)
    multicall = Multicall(node, calls_per_batch=100)  # type: ignore[arg-type]
    assert multicall.run(echo_calls(500), 1) == [(i + 1,) for i in range(500)]
    assert multicall.splits > 0 and multicall.calls_per_batch <= 30
    node.sizes.clear()
    assert multicall.run(echo_calls(500), 2) == [(i + 1,) for i in range(500)]
    assert max(node.sizes) <= 30  # the next read starts at the learnt size


def test_run_concurrently_orders_results_and_raises_the_first_failure() -> None:
    client = RpcClient(["http://127.0.0.1:9"], max_concurrent_requests=4)
    try:

        def slow_square(x: int) -> int:
            time.sleep(0.001 * (20 - x))
            return x * x

        assert client.run_concurrently(slow_square, range(20)) == [x * x for x in range(20)]
        started: list[int] = []

        def fail_at(x: int) -> int:
            started.append(x)
            if x in (3, 7):
                time.sleep(0.01 if x == 3 else 0.0)
                raise ValueError(f"item {x}")
            time.sleep(0.005)
            return x

        with pytest.raises(ValueError, match="item 3"):  # the first in item order, not in time
            client.run_concurrently(fail_at, range(200))
        assert len(started) < 200  # the rest was cancelled

        def nested(x: int) -> list[int]:  # a worker asking again runs its items in turn: no deadlock
            return client.run_concurrently(lambda y: x * y, range(3))

        assert client.run_concurrently(nested, range(8)) == [[0, x, 2 * x] for x in range(8)]
    finally:
        client.close()
    one = RpcClient(["http://127.0.0.1:9"], max_concurrent_requests=1)
    seen: list[str] = []

    def where(x: int) -> int:
        seen.append(threading.current_thread().name)
        return x

    assert one.run_concurrently(where, [1, 2]) == [1, 2]
    assert seen == [threading.current_thread().name] * 2  # one slot: in the caller's thread


def batching_config(tmp_path: Path, **chain: Any) -> Config:
    data: dict[str, Any] = {
        "chains": {"ethereum": {"chain_id": 1, "rpc_urls": ["http://127.0.0.1:9"], **chain}},
        "markets": [{"name": "m", "protocol": "aave_v3", "chain": "ethereum",
                     "pool_addresses_provider": "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e"}],
    }  # fmt: skip
    return parse_config(data, tmp_path / "config.yaml")


def test_batching_keys_reach_the_reader_and_bad_values_are_named(tmp_path: Path) -> None:
    config = batching_config(tmp_path, call_gas_budget=12_000_000, max_concurrent_requests=2, calls_per_batch=900)
    chain = config.chains["ethereum"]
    client = RpcClient(chain.rpc_urls, max_concurrent_requests=chain.max_concurrent_requests)
    try:
        reader = make_reader(client, config.markets[0], chain)
        assert isinstance(reader.multicall, Multicall)
        assert (reader.multicall.gas_budget, reader.multicall.calls_per_batch) == (12_000_000, 900)
        assert client.max_concurrent_requests == 2
    finally:
        client.close()
    for key, value in (("call_gas_budget", 10), ("max_concurrent_requests", 0), ("max_concurrent_requests", 65)):
        with pytest.raises(ConfigError) as info:
            batching_config(tmp_path, **{key: value})
        assert f"chains.ethereum.{key}" in str(info.value) and "\n" not in str(info.value)
