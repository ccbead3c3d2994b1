#!/usr/bin/env python3
"""Benchmark: following Aave V3 positions by their events vs re-reading every account each block.

A benchmark, not a test. It starts the aave-v3-origin (3.6) devnet with ``--positions`` seeded
positions, then mines ``--blocks`` blocks of random activity (30 actors supplying, borrowing,
repaying, withdrawing, transferring aTokens, switching collateral and eMode; liquidations; price
moves every 4th block, time warps every 7th) and, at every block, measures in the same run:

1. ``follow``: :class:`monitor.positions.AaveFollower` (one eth_getLogs, one aggregate3 for the
   reserves and the touched accounts) + every HF recomputed locally;
2. ``follow+reconcile``: the same with a rotating reconciliation sample of ``--sample`` accounts
   per block (read in full through the reader);
3. ``full re-read``: ``AaveV3Reader.snapshot`` of every account (what ``liqmon scan`` does today).

Each method has its own RpcClient, so requests are counted apart. CPU is this process's
``time.process_time`` (decoding, state, HF); the node's own work is in the wall time. At every block
the followed HF of every account must equal the full re-read's ``getUserAccountData`` HF exactly
(exit 1 otherwise); the followed state is reconciled in full at the end (exit 1 on any difference).

Usage::

    .venv/bin/python scripts/bench_follow.py [--positions 240,2000] [--blocks 60] [--sample 24] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from monitor.chain.blocks import block_ref
from monitor.chain.multicall import Multicall
from monitor.chain.rpc import RpcClient
from monitor.devnet.aave_origin import FEED_SET_ANSWER, ORIGIN_EMODES, start_origin_devnet
from monitor.devnet.node import Tx
from monitor.models import MarketSnapshot
from monitor.positions import AaveFollower
from monitor.positions.devnet_replay import ReplayDriver
from monitor.protocols.aave_v3 import AaveV3Reader

LIQUIDATOR = "0x000000000000000000000000000000000000bEEF"
MODEL_RTT_S = 0.100
BORROWABLE = ("WETH", "wstETH", "WBTC", "USDC", "USDT", "DAI")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Figures:
    method: str
    positions: int
    blocks: int
    requests_median: float
    requests_max: int
    requests_total: int
    cpu_median_s: float
    cpu_max_s: float
    wall_median_s: float
    modelled_s: float  # median requests x 100 ms + median wall

    def row(self) -> str:
        return (
            f"| {self.method} | {self.positions:,} | {self.requests_median:g} | {self.requests_max} | "
            f"{self.cpu_median_s * 1000:.1f} | {self.cpu_max_s * 1000:.1f} | {self.wall_median_s * 1000:.1f} | "
            f"{self.modelled_s:.3f} |"
        )


def _reader(url: str, provider: str) -> AaveV3Reader:
    client = RpcClient([url], timeout=300, max_retries=0)
    return AaveV3Reader(client, market="bench", pool_addresses_provider=provider, chain_id=31337,
                        multicall=Multicall(client))  # fmt: skip


def _measure(client: RpcClient, work: Callable[[], Any]) -> tuple[int, float, float, Any]:
    before = client.total_requests
    cpu, wall = time.process_time(), time.perf_counter()
    value = work()
    return client.total_requests - before, time.process_time() - cpu, time.perf_counter() - wall, value


def _figures(method: str, positions: int, runs: Sequence[tuple[int, float, float]]) -> Figures:
    requests = [r for r, _c, _w in runs]
    cpu = [c for _r, c, _w in runs]
    wall = [w for _r, _c, w in runs]
    median_requests = statistics.median(requests)
    return Figures(
        method, positions, len(runs), median_requests, max(requests), sum(requests), statistics.median(cpu),
        max(cpu), statistics.median(wall), median_requests * MODEL_RTT_S + statistics.median(wall),
    )  # fmt: skip


def bench(positions: int, blocks: int, sample: int, seed: int) -> tuple[list[Figures], dict[str, Any]]:
    log(f"devnet: aave-v3-origin 3.6 with {positions} positions ...")
    with start_origin_devnet(positions, seed=seed) as origin:
        dep = origin.deployment
        accounts = [*origin.accounts, LIQUIDATOR]
        follow = AaveFollower(_reader(origin.url, dep.pool_addresses_provider), accounts)
        sampled = AaveFollower(_reader(origin.url, dep.pool_addresses_provider), accounts, reconcile_sample=sample)
        full = _reader(origin.url, dep.pool_addresses_provider)
        start_requests, start_cpu, start_wall, state = _measure(follow.client, follow.start)
        sampled.start(state.block)

        def move(symbol: str, answer: int) -> Tx:
            return Tx(dep.admin, dep.token(symbol).feed, FEED_SET_ANSWER.encode(answer), 200_000, f"price {symbol}")

        driver = ReplayDriver(
            origin.client, dep.pool, list(state.reserves.values()), origin.accounts[:30], LIQUIDATOR,
            price_move=move, emode_ids=[e.id for e in ORIGIN_EMODES], borrowable=BORROWABLE, seed=seed,
        )  # fmt: skip
        driver.fund()
        head = origin.client.block_number()
        follow.step(head)
        sampled.step(head)
        runs: dict[str, list[tuple[int, float, float]]] = {"follow": [], "follow+reconcile": [], "full re-read": []}
        mismatches = 0
        origin.client.request("evm_setAutomine", [False])
        try:
            for n in range(1, blocks + 1):
                block = driver.block(follow.state)

                def follow_block(f: AaveFollower = follow, b: int = block) -> dict[str, int]:
                    f.step(b)
                    return f.state.health_factors()

                def sampled_block(f: AaveFollower = sampled, b: int = block) -> dict[str, int]:
                    f.step(b)
                    return f.state.health_factors()

                r, c, w, local = _measure(follow.client, follow_block)
                runs["follow"].append((r, c, w))
                r, c, w, _ = _measure(sampled.client, sampled_block)
                runs["follow+reconcile"].append((r, c, w))

                def full_block(b: int = block) -> MarketSnapshot:
                    return full.snapshot(accounts, block_ref(full.client, b))

                r, c, w, snap = _measure(full.client, full_block)
                runs["full re-read"].append((r, c, w))
                chain = {p.account: p.health_factor for p in snap.positions}
                mismatches += sum(1 for a, hf in chain.items() if local.get(a) != hf)
                if n % 10 == 0:
                    log(f"  block {n}/{blocks}: {mismatches} HF mismatches so far")
        finally:
            origin.client.request("evm_setAutomine", [True])
        final = follow.reconcile() + sampled.reconcile()
        figures = [_figures(m, len(accounts), v) for m, v in runs.items()]
        extra = {
            "positions": len(accounts),
            "first_sync": {"requests": start_requests, "cpu_s": round(start_cpu, 3), "wall_s": round(start_wall, 3)},
            "hf_mismatches": mismatches,
            "final_reconcile_differences": len(final),
            "step_differences": follow.difference_counts.total() + sampled.difference_counts.total(),
            "activity": driver.activity.succeeded,
            "events_applied": follow.state.events_applied,
        }
        return figures, extra


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--positions", default="240", help="comma-separated seeded position counts")
    parser.add_argument("--blocks", type=int, default=60)
    parser.add_argument("--sample", type=int, default=24, help="reconciliation sample per block")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        counts = [int(x) for x in args.positions.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--positions: not a list of integers: {args.positions!r}")
    if not counts or min(counts) < 31 or args.blocks < 1:
        parser.error("--positions must be >= 31 (30 actors) and --blocks >= 1")
    results: list[dict[str, Any]] = []
    failed = False
    for n in counts:
        figures, extra = bench(n, args.blocks, args.sample, args.seed)
        results.append({"figures": [asdict(f) for f in figures], **extra})
        failed |= bool(extra["hf_mismatches"] or extra["final_reconcile_differences"] or extra["step_differences"])
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for result in results:
            figures = [Figures(**f) for f in result["figures"]]
            print(f"\n{result['positions']:,} followed accounts, {figures[0].blocks} blocks; first sync "
                  f"{result['first_sync']['requests']} requests, {result['first_sync']['wall_s']} s")  # fmt: skip
            print("| method | accounts | requests/block (median) | max | CPU ms/block (median) | CPU max | "
                  "wall ms/block | modelled s/block @100 ms |")  # fmt: skip
            print("|---|---:|---:|---:|---:|---:|---:|---:|")
            for f in figures:
                print(f.row())
            base = figures[0]
            rest = figures[-1]
            print(f"ratios full re-read / follow: requests {rest.requests_median / base.requests_median:.1f}x, "
                  f"CPU {rest.cpu_median_s / max(base.cpu_median_s, 1e-9):.1f}x, "
                  f"wall {rest.wall_median_s / max(base.wall_median_s, 1e-9):.1f}x, "
                  f"modelled {rest.modelled_s / base.modelled_s:.1f}x")  # fmt: skip
            print(f"HF mismatches {result['hf_mismatches']}, differences {result['step_differences']} in steps, "
                  f"{result['final_reconcile_differences']} at the final reconcile; events applied "
                  f"{result['events_applied']}; actions {result['activity']}")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
