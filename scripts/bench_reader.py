#!/usr/bin/env python3
"""Benchmark: reading N Aave V3 positions the liqmon way vs one ``eth_call`` per datum.

A benchmark, not a test. It starts a local anvil, deploys the real Aave V3 contracts, seeds
N positions, then, in the same run and at the same block, measures:

1. ``liqmon``  -- ``AaveV3Reader.read_reserves`` + ``read_positions``: Multicall3
   ``aggregate3`` batches of ``--calls-per-batch`` sub-calls (getUserAccountData, user
   configuration, eMode and every per-reserve balance of every account);
2. ``naive A`` -- one ``eth_call`` of ``Pool.getUserAccountData(account)`` per account (the
   usual hand-written monitor; it gets the health factor but none of the per-asset legs);
3. ``naive B`` -- the same data as liqmon, one ``eth_call`` per datum
   (``reader.account_calls`` sent one by one; the reserve list is taken as known, which
   favours naive B).

It checks that liqmon's health factors equal naive A's and that every value naive B reads
equals liqmon's (exit 1 otherwise), then sweeps ``calls_per_batch`` for liqmon.

anvil answers on loopback in well under a millisecond, so the measured time ratio
understates the gain on a public RPC (50-200 ms per request); a modelled time for a 100 ms
round trip (requests x RTT + the locally measured time) is printed too.

Usage::

    .venv/bin/python scripts/bench_reader.py [--positions 1000] [--repeat 3]
        [--calls-per-batch 1000] [--sweep 100,250,500,1000,2000] [--json]

Exit codes: 0 done, 1 liqmon and a naive read disagree, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

from monitor.chain.multicall import Call, Multicall
from monitor.chain.rpc import RpcClient
from monitor.devnet.anvil import Anvil
from monitor.devnet.deploy import Deployment, deploy_aave
from monitor.devnet.node import DevnetNode
from monitor.devnet.seed import seed_positions
from monitor.models import Position, Reserve
from monitor.protocols import aave_v3_abi as abi
from monitor.protocols.aave_v3 import ZERO, AaveV3Reader, block_ref

MODEL_RTT_S = 0.100
DEFAULT_SWEEP = (100, 250, 500, 1000, 2000)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Run:
    """One timed read: wall seconds and the JSON-RPC requests it sent."""

    seconds: float
    eth_calls: int
    requests: int


@dataclass(frozen=True, slots=True)
class Result:
    """The median of ``repeat`` runs of one method."""

    method: str
    eth_calls: int
    requests: int
    seconds: float
    runs: tuple[float, ...]

    def modelled(self, rtt: float = MODEL_RTT_S) -> float:
        """Sequential requests at ``rtt`` each, plus the time measured locally."""
        return self.requests * rtt + self.seconds


def timed(client: RpcClient, work: Callable[[], Any]) -> tuple[Run, Any]:
    calls_before = client.method_counts["eth_call"]
    total_before = client.total_requests
    start = time.perf_counter()
    value = work()
    seconds = time.perf_counter() - start
    return (
        Run(
            seconds,
            client.method_counts["eth_call"] - calls_before,
            client.total_requests - total_before,
        ),
        value,
    )


def summarise(method: str, runs: Sequence[Run]) -> Result:
    counts = {(r.eth_calls, r.requests) for r in runs}
    if len(counts) != 1:
        raise RuntimeError(f"{method}: request counts differ between repeats: {sorted(counts)}")
    eth_calls, requests = counts.pop()
    times = tuple(r.seconds for r in runs)
    return Result(method, eth_calls, requests, statistics.median(times), times)


# -- the three ways to read -------------------------------------------------------------------


def make_reader(client: RpcClient, deployment: Deployment, calls_per_batch: int) -> AaveV3Reader:
    return AaveV3Reader(
        client,
        market="bench",
        pool_addresses_provider=deployment.pool_addresses_provider,
        chain_id=31337,
        multicall=Multicall(client, calls_per_batch=calls_per_batch),
    )


def read_liqmon(reader: AaveV3Reader, accounts: Sequence[str], block: int) -> list[Position]:
    reserves, _unit = reader.read_reserves(block)
    return reader.read_positions(accounts, reserves, block)


def read_naive_a(client: RpcClient, pool: str, accounts: Sequence[str], block: int, label: str) -> dict[str, int]:
    """Health factor per account, one eth_call of getUserAccountData each."""
    health: dict[str, int] = {}
    step = max(1, len(accounts) // 4)
    for i, account in enumerate(accounts, 1):
        data = client.eth_call(pool, abi.GET_USER_ACCOUNT_DATA.encode(account), block)
        health[account] = int(abi.GET_USER_ACCOUNT_DATA.decode(data)[5])
        if i % step == 0:
            log(f"  {label}: {i}/{len(accounts)} accounts")
    return health


def read_naive_b(
    client: RpcClient,
    reader: AaveV3Reader,
    pool: str,
    reserves: Sequence[Reserve],
    accounts: Sequence[str],
    block: int,
    label: str,
) -> dict[str, list[tuple[Any, ...]]]:
    """Every datum liqmon reads for each account, one eth_call per datum."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    step = max(1, len(accounts) // 4)
    for i, account in enumerate(accounts, 1):
        calls: list[Call] = reader.account_calls(account, pool, reserves)
        out[account] = [c.fn.decode(client.eth_call(c.target, c.fn.encode(*c.args), block)) for c in calls]
        if i % step == 0:
            log(f"  {label}: {i}/{len(accounts)} accounts")
    return out


# -- equality checks --------------------------------------------------------------------------


def check_health_factors(positions: Sequence[Position], naive: dict[str, int]) -> list[str]:
    problems = []
    if len(positions) != len(naive):
        problems.append(f"liqmon read {len(positions)} positions, naive A {len(naive)}")
    for p in positions:
        if naive.get(p.account) != p.health_factor:
            problems.append(f"{p.account}: health factor liqmon {p.health_factor} != naive A {naive.get(p.account)}")
    return problems


def naive_b_values(values: Sequence[tuple[Any, ...]], reserves: Sequence[Reserve]) -> list[int]:
    """The integers liqmon keeps from one account's calls, in ``account_calls`` order."""
    flat = [int(values[0][5]), int(values[1][0]), int(values[2][0])]
    at = 3
    for r in reserves:
        flat += [int(values[at][0]), int(values[at + 1][0])]
        at += 2
        if r.stable_debt_token != ZERO:
            flat.append(int(values[at][0]))
            at += 1
        else:
            flat.append(0)
    return flat


def liqmon_values(p: Position) -> list[int]:
    flat = [p.health_factor, p.user_configuration, p.emode_category]
    for leg in p.legs:
        flat += [leg.scaled_collateral, leg.scaled_variable_debt, leg.stable_debt]
    return flat


def check_same_data(
    positions: Sequence[Position],
    naive: dict[str, list[tuple[Any, ...]]],
    reserves: Sequence[Reserve],
) -> list[str]:
    problems = []
    for p in positions:
        got = naive.get(p.account)
        if got is None:
            problems.append(f"{p.account}: missing from naive B")
        elif naive_b_values(got, reserves) != liqmon_values(p):
            problems.append(f"{p.account}: naive B values differ from liqmon's")
    return problems


# -- output -----------------------------------------------------------------------------------


def ratio(a: float, b: float) -> str:
    if not b:
        return "n/a"
    value = a / b
    return f"{value:.2f}x" if value < 10 else f"{value:,.1f}x"


def table(results: Sequence[Result], base: Result) -> list[str]:
    lines = [
        "| method | requests (eth_call) | seconds (median) | requests ratio naive/liqmon "
        "| time ratio naive/liqmon | modelled s @ 100 ms RTT | modelled ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        is_base = r is base
        lines.append(
            f"| {r.method} | {r.requests:,} ({r.eth_calls:,}) | {r.seconds:.3f} "
            f"| {'1.0x' if is_base else ratio(r.requests, base.requests)} "
            f"| {'1.0x' if is_base else ratio(r.seconds, base.seconds)} "
            f"| {r.modelled():,.1f} "
            f"| {'1.0x' if is_base else ratio(r.modelled(), base.modelled())} |"
        )
    return lines


def sweep_table(rows: Sequence[tuple[int, Result]]) -> list[str]:
    lines = [
        "| calls_per_batch | requests (eth_call) | seconds (median) | modelled s @ 100 ms RTT |",
        "|---:|---:|---:|---:|",
    ]
    for size, r in rows:
        lines.append(f"| {size:,} | {r.requests:,} ({r.eth_calls:,}) | {r.seconds:.3f} | {r.modelled():,.2f} |")
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--positions", type=int, default=1000, help="accounts to seed and read")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per method (median)")
    parser.add_argument("--calls-per-batch", type=int, default=1000, help="aggregate3 sub-calls per eth_call")
    parser.add_argument(
        "--sweep",
        default=",".join(str(s) for s in DEFAULT_SWEEP),
        help="calls_per_batch values for the liqmon sweep (comma-separated; empty: skip)",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed for the positions")
    parser.add_argument("--json", action="store_true", help="also print a JSON summary")
    args = parser.parse_args(argv)
    if args.positions < 1 or args.repeat < 1 or args.calls_per_batch < 1:
        parser.error("--positions, --repeat and --calls-per-batch must be >= 1")
    try:
        args.sweep_sizes = [int(s) for s in args.sweep.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sweep: expected comma-separated integers, got {args.sweep!r}")
    if any(s < 1 for s in args.sweep_sizes):
        parser.error("--sweep values must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    n: int = args.positions
    with Anvil() as anvil:
        client = RpcClient([anvil.url], timeout=120, max_retries=0)
        node = DevnetNode(client)
        started = time.perf_counter()
        log("deploying Aave V3 on anvil ...")
        deployment = deploy_aave(node, progress=lambda msg: log(f"  deploy: {msg}"))
        log(f"  deployed in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        log(f"seeding {n} positions (seed {args.seed}) ...")
        seeded = seed_positions(
            node,
            deployment,
            n,
            seed=args.seed,
            progress=lambda done, total: log(f"  seed: {done}/{total} transactions"),
        )
        log(f"  seeded in {time.perf_counter() - started:.1f} s")
        accounts = [s.account for s in seeded]
        head = block_ref(client)
        block = head.number

        reader = make_reader(client, deployment, args.calls_per_batch)
        pool = reader.addresses(block).pool  # static config, resolved once outside timing
        # warm-up (untimed): fills anvil's state caches; its reserves serve naive B
        reserves, _unit = reader.read_reserves(block)
        reader.read_positions(accounts, reserves, block)
        calls_per_account = len(reader.account_calls(accounts[0], pool, reserves))

        liqmon_runs: list[Run] = []
        naive_a_runs: list[Run] = []
        naive_b_runs: list[Run] = []
        problems: list[str] = []
        for i in range(1, args.repeat + 1):
            log(f"repeat {i}/{args.repeat}: liqmon ...")
            run, positions = timed(client, lambda: read_liqmon(reader, accounts, block))
            liqmon_runs.append(run)
            log(f"  liqmon: {run.requests} requests, {run.seconds:.3f} s")
            log(f"repeat {i}/{args.repeat}: naive A ({n} eth_calls) ...")
            run, health = timed(client, lambda: read_naive_a(client, pool, accounts, block, "naive A"))
            naive_a_runs.append(run)
            log(f"  naive A: {run.requests} requests, {run.seconds:.3f} s")
            log(f"repeat {i}/{args.repeat}: naive B ({n * calls_per_account} eth_calls) ...")
            run, naive_b = timed(
                client,
                lambda: read_naive_b(client, reader, pool, reserves, accounts, block, "naive B"),
            )
            naive_b_runs.append(run)
            log(f"  naive B: {run.requests} requests, {run.seconds:.3f} s")
            problems += check_health_factors(positions, health)
            problems += check_same_data(positions, naive_b, reserves)
        if problems:
            for p in problems[:20]:
                log(f"MISMATCH {p}")
            log(f"FAILED: {len(problems)} mismatches between liqmon and the naive reads")
            return 1

        sweep: list[tuple[int, Result]] = []
        for size in args.sweep_sizes:
            log(f"sweep: calls_per_batch={size} ...")
            sized = make_reader(client, deployment, size)
            sized.addresses(block)
            runs = []
            for _ in range(args.repeat):
                run, got = timed(client, partial(read_liqmon, sized, accounts, block))
                runs.append(run)
            if [p.health_factor for p in got] != [p.health_factor for p in positions]:
                log(f"FAILED: calls_per_batch={size} read different health factors")
                return 1
            sweep.append((size, summarise(f"liqmon cpb={size}", runs)))
        client.close()

    liqmon = summarise(f"liqmon (aggregate3, calls_per_batch={args.calls_per_batch})", liqmon_runs)
    naive_a = summarise("naive A (getUserAccountData per account)", naive_a_runs)
    naive_b = summarise(f"naive B (same data, {calls_per_account} eth_calls/account)", naive_b_runs)
    results = [liqmon, naive_a, naive_b]

    print(
        f"Reading {n} Aave V3 positions at block {block} on local anvil "
        f"({len(reserves)} reserves, {calls_per_account} calls per account, "
        f"median of {args.repeat} runs)"
    )
    print()
    print("\n".join(table(results, liqmon)))
    print()
    print(
        f"Checked: liqmon's health factors equal naive A's for all {n} accounts, and every "
        "value naive B read equals liqmon's."
    )
    print(
        "liqmon includes read_reserves (reserve data and prices); naive A reads only the "
        "health factor; naive B takes the reserve list as already known."
    )
    print(
        "anvil is local (sub-millisecond RTT), so the time ratio UNDERSTATES the gain on a "
        "public RPC (50-200 ms RTT). Modelled time = requests x 0.1 s + the local time above "
        "(sequential requests)."
    )
    if sweep:
        print()
        print(f"liqmon calls_per_batch sweep ({n} positions, median of {args.repeat} runs):")
        print()
        print("\n".join(sweep_table(sweep)))
    if args.json:
        summary = {
            "positions": n,
            "block": block,
            "reserves": len(reserves),
            "calls_per_account": calls_per_account,
            "repeat": args.repeat,
            "model_rtt_s": MODEL_RTT_S,
            "results": [{**asdict(r), "modelled_s": r.modelled()} for r in results],
            "ratios": {
                name: {
                    "requests": r.requests / liqmon.requests,
                    "time": r.seconds / liqmon.seconds,
                    "modelled_time": r.modelled() / liqmon.modelled(),
                }
                for name, r in (("naive_a", naive_a), ("naive_b", naive_b))
            },
            "sweep": [{"calls_per_batch": size, **asdict(r), "modelled_s": r.modelled()} for size, r in sweep],
            "health_factors_match": True,
        }
        print()
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
