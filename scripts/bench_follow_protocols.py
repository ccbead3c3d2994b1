#!/usr/bin/env python3
"""Benchmark: following Morpho Blue / Compound III positions by their events vs re-reading every
account each block.

A benchmark, not a test. For each ``--protocol`` it starts a devnet (the real Morpho Blue with two
markets; the CometLike market with three collaterals and the cUSDCv3 rate model) with
``--positions`` seeded positions, then mines ``--blocks`` blocks of random activity
(:mod:`monitor.positions.devnet_activity`: 30 actors; price moves every 4th block, time warps) and,
at every block, measures in the same run, each method on its own RpcClient:

1. ``follow``: the follower's ``step`` (one eth_getLogs, one aggregate3 for the market state and
   the touched accounts) + every HF recomputed locally (the follower's snapshots);
2. ``follow+reconcile``: the same with a rotating sample of ``--sample`` accounts a block,
   compared field by field (in the same aggregate3);
3. ``full re-read``: the reader's ``snapshots`` of every account (what ``liqmon scan`` does today).

CPU is this process's ``time.process_time``. At every block both followers' snapshots must equal
the full re-read's exactly (every HF; exit 1 otherwise); both are reconciled in full at the end
(exit 1 on any difference). Comet's event-less debt changes by base transfers (caught by the
principal-totals check, one more request in that block) are counted apart.

Usage::

    .venv/bin/python scripts/bench_follow_protocols.py [--protocol morpho,comet] [--positions 240,2000]
        [--blocks 60] [--sample 24] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from monitor.chain.blocks import BlockRef, block_ref
from monitor.chain.multicall import Multicall
from monitor.chain.rpc import RpcClient
from monitor.devnet import comet as cm
from monitor.devnet.anvil import Anvil
from monitor.devnet.deploy import install_multicall
from monitor.devnet.morpho import deploy_morpho, seed_morpho
from monitor.devnet.node import DevnetNode
from monitor.models import MarketSnapshot
from monitor.positions.comet_follow import CometFollower
from monitor.positions.devnet_activity import CometActivity, MorphoActivity
from monitor.positions.morpho_follow import MorphoFollower
from monitor.protocols.compound_v3 import CompoundV3Reader
from monitor.protocols.morpho_blue import MorphoBlueReader

LIQUIDATOR = "0x000000000000000000000000000000000000bEEF"
MODEL_RTT_S = 0.100
ACTORS = 30
Follower = MorphoFollower | CometFollower
Key = tuple[str, str]
Row = tuple[object, ...]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Figures:
    method: str
    positions: int
    blocks: int
    requests_median: float
    requests_max: int
    cpu_median_s: float
    cpu_max_s: float
    wall_median_s: float
    modelled_s: float  # median requests x 100 ms + median wall

    def row(self, protocol: str) -> str:
        return (
            f"| {protocol} | {self.method} | {self.positions:,} | {self.requests_median:g} | {self.requests_max} | "
            f"{self.cpu_median_s * 1000:.1f} | {self.cpu_max_s * 1000:.1f} | {self.wall_median_s * 1000:.1f} | "
            f"{self.modelled_s:.3f} |"
        )


def _client(url: str) -> RpcClient:
    return RpcClient([url], timeout=300, max_retries=0)


def _measure(client: RpcClient, work: Callable[[], Any]) -> tuple[int, float, float, Any]:
    before = client.total_requests
    cpu, wall = time.process_time(), time.perf_counter()
    value = work()
    return client.total_requests - before, time.process_time() - cpu, time.perf_counter() - wall, value


def _figures(method: str, positions: int, runs: Sequence[tuple[int, float, float]]) -> Figures:
    requests = [r for r, _c, _w in runs]
    cpu = [c for _r, c, _w in runs]
    wall = [w for _r, _c, w in runs]
    median = statistics.median(requests)
    return Figures(method, positions, len(runs), median, max(requests), statistics.median(cpu), max(cpu),
                   statistics.median(wall), median * MODEL_RTT_S + statistics.median(wall))  # fmt: skip


def _rows(snapshots: Sequence[MarketSnapshot]) -> dict[Key, tuple[object, ...]]:
    return {
        (s.market, p.account): (p.health_factor, p.health_factor_stored_index, p.total_collateral_base,
                                p.total_debt_base, p.legs)
        for s in snapshots
        for p in s.positions
    }  # fmt: skip


@dataclass
class Setup:
    node: DevnetNode
    url: str
    accounts: list[str]
    make_follower: Callable[..., Follower]
    full: MorphoBlueReader | CompoundV3Reader
    activity: MorphoActivity | CometActivity


@contextmanager
def _devnet(protocol: str, positions: int, seed: int) -> Iterator[Setup]:
    with Anvil() as anvil:
        client = _client(anvil.url)
        node = DevnetNode(client)
        if protocol == "morpho":
            dep = deploy_morpho(node)
            accounts = [s.account for s in seed_morpho(node, dep, positions, seed=seed, hf_range=(1.02, 1.4))]
            ids = [m.id for m in dep.markets]

            def morpho_reader() -> MorphoBlueReader:
                c = _client(anvil.url)
                return MorphoBlueReader(c, market="bench", morpho=dep.morpho, market_ids=ids, chain_id=31337,
                                        multicall=Multicall(c))  # fmt: skip

            def morpho_follower(**options: Any) -> MorphoFollower:
                return MorphoFollower(morpho_reader(), [*accounts, LIQUIDATOR], **options)

            morpho_activity = MorphoActivity(node, dep, accounts[:ACTORS], liquidator=LIQUIDATOR, seed=seed)
            morpho_activity.fund()
            yield Setup(node, anvil.url, [*accounts, LIQUIDATOR], morpho_follower, morpho_reader(), morpho_activity)
        else:
            install_multicall(node)
            cdep = cm.deploy_comet(node)
            seeded = cm.seed_comet(node, cdep, positions, seed=seed, hf_range=(1.02, 1.4), utilization=0.8)
            accounts = [s.account for s in seeded] + [cm.supplier_account(seed)]
            node.set_balances([*accounts, LIQUIDATOR], 10**21)

            def comet_reader() -> CompoundV3Reader:
                c = _client(anvil.url)
                return CompoundV3Reader(c, market="bench", comet=cdep.comet, chain_id=31337, multicall=Multicall(c))

            def comet_follower(**options: Any) -> CometFollower:
                return CometFollower(comet_reader(), [*accounts, LIQUIDATOR], discover=True, **options)

            comet_activity = CometActivity(node, cdep, accounts[:ACTORS], liquidator=LIQUIDATOR, seed=seed)
            yield Setup(node, anvil.url, [*accounts, LIQUIDATOR], comet_follower, comet_reader(), comet_activity)
        client.close()


def bench(protocol: str, positions: int, blocks: int, sample: int, seed: int) -> tuple[list[Figures], dict[str, Any]]:
    log(f"devnet: {protocol} with {positions} positions ...")
    with _devnet(protocol, positions, seed) as setup:
        follow = setup.make_follower()
        sampled = setup.make_follower(reconcile_sample=sample)
        head = block_ref(setup.node.client)
        start_requests, _cpu, start_wall, _ = _measure(follow.client, lambda: follow.start(head))
        sampled.start(head)
        runs: dict[str, list[tuple[int, float, float]]] = {"follow": [], "follow+reconcile": [], "full re-read": []}
        mismatches = 0
        hidden = 0
        setup.node.client.request("evm_setAutomine", [False])
        try:
            for n in range(1, blocks + 1):
                block = setup.activity.block(follow)  # type: ignore[arg-type]
                ref = block_ref(setup.full.client, block)
                got: list[dict[Key, tuple[object, ...]]] = []
                for name, f in (("follow", follow), ("follow+reconcile", sampled)):

                    def follow_block(f: Follower = f, b: int = block, at: BlockRef = ref) -> dict[Key, Row]:
                        f.step(b)
                        return _rows(f.snapshots(at.hash, at.timestamp))

                    r, c, w, rows = _measure(f.client, follow_block)
                    runs[name].append((r, c, w))
                    got.append(rows)

                def full_block(at: BlockRef = ref) -> list[MarketSnapshot]:
                    return setup.full.snapshots(setup.accounts, at)

                r, c, w, snaps = _measure(setup.full.client, full_block)
                runs["full re-read"].append((r, c, w))
                chain = _rows(snaps)
                mismatches += sum(1 for rows in got if rows != chain)
                hidden += int(isinstance(setup.activity, CometActivity) and block in setup.activity.hidden_blocks)
                if n % 10 == 0:
                    log(f"  block {n}/{blocks}: {mismatches} snapshot mismatches so far")
        finally:
            setup.node.client.request("evm_setAutomine", [True])
        final = follow.reconcile() + sampled.reconcile()
        steps = {k: v for f in (follow, sampled) for k, v in f.difference_counts.items()}
        return [_figures(m, len(setup.accounts), v) for m, v in runs.items()], {
            "protocol": protocol,
            "positions": len(setup.accounts),
            "first_sync": {"requests": start_requests, "wall_s": round(start_wall, 3)},
            "snapshot_mismatches": mismatches,
            "final_reconcile_differences": len(final),
            "step_differences": steps,
            "hidden_debt_blocks": hidden,
            "activity": setup.activity.done,
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--protocol", default="morpho,comet", help="comma-separated: morpho, comet")
    parser.add_argument("--positions", default="240", help="comma-separated seeded position counts")
    parser.add_argument("--blocks", type=int, default=60)
    parser.add_argument("--sample", type=int, default=24, help="reconciliation sample per block")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    protocols = [p.strip() for p in args.protocol.split(",") if p.strip()]
    if not protocols or set(protocols) - {"morpho", "comet"}:
        parser.error(f"--protocol: {args.protocol!r} is not a list of morpho / comet")
    try:
        counts = [int(x) for x in args.positions.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--positions: not a list of integers: {args.positions!r}")
    if not counts or min(counts) <= ACTORS or args.blocks < 1:
        parser.error(f"--positions must be > {ACTORS} (the actors) and --blocks >= 1")
    results: list[dict[str, Any]] = []
    failed = False
    for protocol in protocols:
        for n in counts:
            figures, extra = bench(protocol, n, args.blocks, args.sample, args.seed)
            results.append({"figures": [asdict(f) for f in figures], **extra})
            unexplained = {k: v for k, v in extra["step_differences"].items() if k not in ("totals", "reconcile")}
            failed |= bool(extra["snapshot_mismatches"] or extra["final_reconcile_differences"] or unexplained)
    if args.json:
        print(json.dumps(results, indent=2))
        return 1 if failed else 0
    print("| protocol | method | accounts | requests/block (median) | max | CPU ms/block (median) | CPU max | "
          "wall ms/block | modelled s/block @100 ms |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for result in results:
        for f in result["figures"]:
            print(Figures(**f).row(result["protocol"]))
    for result in results:
        base, full = Figures(**result["figures"][0]), Figures(**result["figures"][-1])
        print(f"\n{result['protocol']} {result['positions']:,} accounts: first sync {result['first_sync']['requests']} "
              f"requests; full re-read / follow: requests {full.requests_median / base.requests_median:.1f}x, CPU "
              f"{full.cpu_median_s / max(base.cpu_median_s, 1e-9):.1f}x, "
              f"modelled {full.modelled_s / base.modelled_s:.1f}x; "
              f"snapshot mismatches {result['snapshot_mismatches']}, step differences {result['step_differences']} "
              f"({result['hidden_debt_blocks']} blocks with an event-less debt change), final reconcile "
              f"{result['final_reconcile_differences']}; actions {result['activity']}")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
