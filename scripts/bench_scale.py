#!/usr/bin/env python3
"""Benchmark: 10,000 Aave V3 positions on 60 reserves, followed block by block vs the full re-read.

A benchmark, not a test. It starts the 60-reserve aave-v3-origin 3.6 devnet
(:mod:`monitor.devnet.aave_wide`) with ``--positions`` seeded positions (1-4 reserves each, four
liquid eModes) and measures in ONE run, each method with its own RpcClient so requests are
counted apart:

1. first sync: ``AaveFollower.start`` through the reader's two-pass plan (configuration bitmaps of
   every account, then only the reserves each uses; batches sized by gas, ``--gas-budget``, at
   most ``--concurrency`` in flight) against the current full re-read (``used_reserves_only=False``,
   ``getUserAccountData`` per account, ``calls_per_batch`` 500, one request after another: what
   ``scan`` did before this change);
2. steady state over ``--blocks`` mined blocks of realistic activity: ``--touch`` of the accounts
   act in every block (supply, withdraw, borrow, repay, aToken transfers), prices of three reserves
   move every ``--price-every`` blocks: per block the requests, CPU (this process, every thread) and
   wall time of ``follow`` (logs + one read + every HF recomputed locally) and ``follow+reconcile``
   (the same with a rotating sample of ``--sample`` accounts re-read with ``getUserAccountData``
   and compared; and every position reconciled at every price block);
3. the full re-read of every account on ``--full-blocks`` of those blocks (it is too slow to run
   every block: that is the point).

Correctness in the same run: every reconciliation compares the local HF with the Pool's
``getUserAccountData`` (and every balance, the configuration and the eMode); any difference
exits 1. The full re-read's HF must also equal the followed HF of every account.

Usage::

    .venv/bin/python scripts/bench_scale.py [--positions 10000] [--blocks 30] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from monitor.alerts.telegram import TelegramChannel
from monitor.chain.blocks import block_ref
from monitor.chain.multicall import Multicall
from monitor.chain.rpc import RpcClient, to_int
from monitor.config import parse_config
from monitor.devnet.aave_origin import FEED_SET_ANSWER, GAS_MINT, OriginDevnet, OriginPosition, set_origin_answer
from monitor.devnet.aave_wide import start_wide_devnet
from monitor.devnet.node import Tx
from monitor.models import MAX_UINT256
from monitor.positions import AaveFollower
from monitor.positions.devnet_replay import TRANSFER, WITHDRAW
from monitor.protocols import aave_v3_abi as abi
from monitor.protocols.aave_v3 import AaveV3Reader
from monitor.service import Monitor
from monitor.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support_peers import TELEGRAM_TEST_TOKEN, TelegramServer

GAS = 2_000_000
PUBLIC_NODE_CAP = 50_000_000  # sent as every aggregate3's gas: a batch over it fails, as on a public node
MODEL_RTT_S = 0.100


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def reader(url: str, provider: str, *, legacy: bool, gas_budget: int, concurrency: int) -> AaveV3Reader:
    client = RpcClient([url], timeout=600, max_retries=0, max_concurrent_requests=1 if legacy else concurrency)
    if legacy:  # the current full re-read: every reserve, getUserAccountData, 500 sub-calls a batch, in turn
        multicall = Multicall(client, calls_per_batch=500, gas_budget=None, call_gas_limit=PUBLIC_NODE_CAP)
        return AaveV3Reader(
            client,
            market="bench",
            pool_addresses_provider=provider,
            chain_id=31337,
            multicall=multicall,
            read_account_data=True,
            used_reserves_only=False,
        )
    multicall = Multicall(client, gas_budget=gas_budget, call_gas_limit=PUBLIC_NODE_CAP)
    return AaveV3Reader(client, market="bench", pool_addresses_provider=provider, chain_id=31337, multicall=multicall)


def measure(client: RpcClient, work: Callable[[], Any]) -> tuple[dict[str, int], float, float, Any]:
    before = dict(client.method_counts)
    cpu, wall = time.process_time(), time.perf_counter()
    value = work()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    by_method = {m: n - before.get(m, 0) for m, n in client.method_counts.items() if n - before.get(m, 0)}
    return by_method, cpu, wall, value


class Activity:
    """``share`` of the accounts act in every block; three prices move every ``price_every`` blocks."""

    def __init__(self, origin: OriginDevnet, share: float, price_every: int, seed: int) -> None:
        self.origin = origin
        self.client = origin.client
        self.dep = origin.deployment
        self.positions = {p.account: p for p in origin.positions}
        self.accounts = list(self.positions)
        self.per_block = max(1, round(share * len(self.accounts)))
        self.price_every = price_every
        self.rng = random.Random(seed)
        self.blocks = 0
        self.sent = 0
        self.succeeded = 0
        self.answers = {
            s: int(self.client.eth_call(t.feed, bytes.fromhex("50d25bcd"), "latest").hex() or "0", 16)
            for s, t in self.dep.tokens.items()
        }

    def _txs(self, p: OriginPosition) -> list[Tx]:
        pool = self.dep.pool
        kind = self.rng.choice(("supply", "supply", "withdraw", "borrow", "repay", "repay", "transfer"))
        if not p.debts and kind in ("borrow", "repay"):
            kind = "supply"
        if kind in ("supply", "withdraw", "transfer"):
            symbol = self.rng.choice(sorted(p.collaterals))
            token = self.dep.token(symbol).address
            amount = max(1, p.collaterals[symbol] // self.rng.randint(50, 200))
            if kind == "supply":
                return [
                    Tx(p.account, token, abi.MINT.encode(p.account, amount), GAS_MINT, "mint"),
                    Tx(p.account, pool, abi.SUPPLY.encode(token, amount, p.account, 0), GAS, "supply"),
                ]
            if kind == "withdraw":
                return [Tx(p.account, pool, WITHDRAW.encode(token, amount, p.account), GAS, "withdraw")]
            to = self.rng.choice(self.accounts)
            return [Tx(p.account, self.dep.a_tokens[symbol], TRANSFER.encode(to, amount), GAS, "transfer")]
        symbol = self.rng.choice(sorted(p.debts))
        token = self.dep.token(symbol).address
        amount = max(1, p.debts[symbol] // self.rng.randint(50, 200))
        if kind == "borrow":
            return [Tx(p.account, pool, abi.BORROW.encode(token, amount, 2, 0, p.account), GAS, "borrow")]
        return [
            Tx(p.account, token, abi.MINT.encode(p.account, amount), GAS_MINT, "mint"),
            Tx(p.account, token, abi.APPROVE.encode(pool, MAX_UINT256), GAS_MINT, "approve"),
            Tx(p.account, pool, abi.REPAY.encode(token, amount, 2, p.account), GAS, "repay"),
        ]

    def block(self) -> tuple[int, bool]:
        """Send one block's actions and mine them into ONE block: (its number, prices moved)."""
        self.blocks += 1
        txs: list[Tx] = []
        for account in self.rng.sample(self.accounts, self.per_block):
            txs += self._txs(self.positions[account])
        moved = bool(self.price_every) and self.blocks % self.price_every == 0
        if moved:
            for symbol in self.rng.sample(sorted(self.answers), 3):
                self.answers[symbol] = max(1, int(self.answers[symbol] * (1 + self.rng.uniform(-0.05, 0.04))))
                txs.append(
                    Tx(
                        self.dep.admin,
                        self.dep.token(symbol).feed,
                        FEED_SET_ANSWER.encode(self.answers[symbol]),
                        200_000,
                        "price",
                    )
                )
        senders = sorted({t.sender for t in txs})
        counts = self.client.batch([("eth_getTransactionCount", [s, "pending"]) for s in senders])
        nonce = {s: to_int(c, "nonce") for s, c in zip(senders, counts, strict=True)}
        calls = []
        for tx in txs:
            calls.append(("eth_sendTransaction", [tx.as_rpc(nonce[tx.sender])]))
            nonce[tx.sender] += 1
        self.client.request("evm_setAutomine", [False])  # the block's transactions in ONE block
        try:
            hashes = [str(h) for h in self.client.batch(calls)]
            self.client.request("evm_mine")
        finally:
            self.client.request("evm_setAutomine", [True])
        receipts = self.client.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        if not all(isinstance(r, dict) for r in receipts):
            raise RuntimeError("a block's transactions did not fit in one block")
        head = to_int(self.client.request("eth_blockNumber"), "eth_blockNumber")
        if any(isinstance(r, dict) and to_int(r.get("blockNumber"), "blockNumber") != head for r in receipts):
            raise RuntimeError("a block's transactions were mined in more than one block")
        self.sent += len(txs)
        self.succeeded += sum(1 for r in receipts if isinstance(r, dict) and to_int(r.get("status"), "status") == 1)
        return head, moved


def chain_time(client: RpcClient) -> float:
    """Dwell and repeat intervals run on chain time (moved 10 min a round)."""
    return float(int(client.get_block("latest")["timestamp"], 16))


def timed(monitor: Monitor, phases: dict[str, list[float]]) -> None:
    """Record the wall time of each phase of ``monitor.tick``: the tracker's advance (follow the
    block + the snapshot), the assessment (levels, alert rules, messages rendered) and delivery."""
    tracker = monitor.positions
    for owner, name, key in ((tracker, "advance", "advance"), (monitor, "assess", "assess"),
                             (monitor, "deliver", "deliver")):  # fmt: skip
        original = getattr(owner, name)

        def wrapper(*args: Any, _original: Any = original, _key: str = key, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                phases[_key].append(time.perf_counter() - started)

        setattr(owner, name, wrapper)


def alert_latency(origin: OriginDevnet, rounds: int, poll_s: float = 0.05) -> dict[str, Any]:
    """The daemon's path: ``Monitor.tick`` (the tracker follows the market by its events, stores,
    assesses, delivers) in block mode against a local Telegram Bot API peer. Each round mines ONE
    block moving WETH (-8 %, then back); the time from that block to the round's first message."""
    with TelegramServer() as telegram, tempfile.TemporaryDirectory() as tmp:
        data = origin.config_data(str(Path(tmp) / "scale.db"))
        data["chains"]["devnet"]["calls_per_batch"] = 5_000
        data["alerts"] = {
            "channels": {"tg": {"type": "telegram", "token_env": "TG", "base_url": telegram.base_url,
                                "min_interval_s": 0}},
            "routes": [{"channel": "tg", "to": "-100555", "min_severity": "watch"}],
            "min_dwell_s": 60,
        }  # fmt: skip
        config = parse_config(data, Path(tmp) / "scale.yaml", env={"TG": TELEGRAM_TEST_TOKEN})
        ready, stop = threading.Event(), threading.Event()
        ticks: list[float] = []
        phases: dict[str, list[float]] = {"advance": [], "assess": [], "deliver": []}
        warm: dict[str, float] = {}
        errors: list[BaseException] = []

        def loop() -> None:
            store = Store(config.store.path)
            clock_client = RpcClient([origin.url], timeout=60, max_retries=0)
            watcher = RpcClient([origin.url], timeout=60, max_retries=0)
            channels = {"tg": TelegramChannel("tg", TELEGRAM_TEST_TOKEN, base_url=telegram.base_url,
                                              min_interval_per_chat_s=0)}  # fmt: skip
            monitor = Monitor(config, store, channels, clock=lambda: chain_time(clock_client))
            timed(monitor, phases)  # where a tick's time goes: follow + store, assess (alerts), deliver
            try:
                started = time.perf_counter()
                monitor.tick()  # discovery, the ONE full read, the initial alerts
                warm["first_tick_s"] = time.perf_counter() - started
                last = watcher.block_number()
                ready.set()
                while not stop.is_set():
                    head = watcher.block_number()
                    if head == last:
                        time.sleep(poll_s)
                        continue
                    last = head
                    started = time.perf_counter()
                    monitor.tick()
                    ticks.append(time.perf_counter() - started)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)
                ready.set()
            finally:
                monitor.close()
                store.close()
                clock_client.close()
                watcher.close()

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        ready.wait(1_800)
        if errors:
            raise errors[0]
        weth = origin.deployment.token("WETH")
        answer = int(origin.client.eth_call(weth.feed, bytes.fromhex("50d25bcd"), "latest").hex(), 16)
        latencies: list[float] = []
        try:
            for k in range(rounds):
                time.sleep(1.0)
                origin.client.request("evm_increaseTime", [600])
                before = len(telegram.messages)
                set_origin_answer(origin.node, origin.deployment, "WETH", answer * 92 // 100 if k % 2 == 0 else answer)
                mined = time.monotonic()
                got = telegram.wait_for(before + 1, timeout=60)
                latencies.append(got[before].time - mined)
                time.sleep(1.0)  # the round's other messages arrive before the next move
                log(f"  latency round {k + 1}: first message after {latencies[-1] * 1000:.0f} ms "
                    f"({len(telegram.messages) - before} messages)")  # fmt: skip
        finally:
            stop.set()
            thread.join(120)
        if errors:
            raise errors[0]
        return {
            "rounds": rounds,
            "latency_median_s": round(statistics.median(latencies), 3),
            "latency_max_s": round(max(latencies), 3),
            "tick_median_s": round(statistics.median(ticks), 3) if ticks else None,
            "first_tick_s": round(warm.get("first_tick_s", 0.0), 1),
            "tick_phases_median_s": {k: round(statistics.median(v[1:]), 3) for k, v in phases.items() if v[1:]},
            "messages": len(telegram.messages),
        }


def summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    requests = [sum(r["requests"].values()) for r in rows]
    cpu = [r["cpu_s"] for r in rows]
    wall = [r["wall_s"] for r in rows]
    return {
        "blocks": len(rows),
        "requests_median": statistics.median(requests),
        "requests_max": max(requests),
        "cpu_median_s": round(statistics.median(cpu), 4),
        "cpu_max_s": round(max(cpu), 4),
        "wall_median_s": round(statistics.median(wall), 4),
        "wall_max_s": round(max(wall), 4),
        "modelled_s_at_100ms": round(statistics.median(requests) * MODEL_RTT_S + statistics.median(wall), 3),
    }


def bench(args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    started = time.perf_counter()
    with start_wide_devnet(args.positions, seed=args.seed, days=30, progress=log) as origin:
        seeded_s = time.perf_counter() - started
        provider = origin.deployment.pool_addresses_provider
        accounts = origin.accounts
        log(f"devnet ready in {seeded_s:.0f} s: {len(accounts):,} positions on 60 reserves")

        def new_reader() -> AaveV3Reader:
            return reader(origin.url, provider, legacy=False, gas_budget=args.gas_budget, concurrency=args.concurrency)

        follow = AaveFollower(new_reader(), accounts, read_account_data=False)
        checked = AaveFollower(new_reader(), accounts, read_account_data=False, reconcile_sample=args.sample)
        full = reader(origin.url, provider, legacy=True, gas_budget=0, concurrency=1)
        head = block_ref(origin.client)

        log("first sync: follower (two-pass plan) ...")
        sync_req, sync_cpu, sync_wall, state = measure(follow.client, lambda: follow.start(head))
        checked.start(head)
        log(f"  {sum(sync_req.values())} requests, {sync_wall:.1f} s; full re-read (current) ...")
        full_req, full_cpu, full_wall, snap = measure(full.client, lambda: full.snapshot(accounts, head))
        log(f"  {sum(full_req.values())} requests, {full_wall:.1f} s")
        local = state.health_factors()
        mismatches = sum(1 for p in snap.positions if local.get(p.account) != p.health_factor)
        used = [sum(1 for leg in p.legs if leg.collateral or leg.variable_debt) for p in snap.positions]

        activity = Activity(origin, args.touch, args.price_every, args.seed)
        rows: dict[str, list[dict[str, Any]]] = {
            "follow": [],
            "follow+reconcile (sample)": [],
            "follow+reconcile (all, price blocks)": [],
            "full re-read": [],
        }
        differences = 0
        full_every = max(1, args.blocks // max(1, args.full_blocks))
        for n in range(1, args.blocks + 1):
            block, moved = activity.block()

            def step(f: AaveFollower = follow, b: int = block) -> dict[str, int]:
                f.step(b)
                return f.state.health_factors()

            def step_checked(f: AaveFollower = checked, b: int = block, everyone: bool = moved) -> int:
                report = f.step(b)
                found = len(report.differences)
                if everyone:  # a price block: every position against getUserAccountData
                    found += len(f.reconcile(None, b))
                f.state.health_factors()
                return found

            req, cpu, wall, hfs = measure(follow.client, step)
            rows["follow"].append({"block": block, "requests": req, "cpu_s": cpu, "wall_s": wall})
            req, cpu, wall, found = measure(checked.client, step_checked)
            differences += found
            key = "follow+reconcile (all, price blocks)" if moved else "follow+reconcile (sample)"
            rows[key].append({"block": block, "requests": req, "cpu_s": cpu, "wall_s": wall})
            if args.full_blocks and n % full_every == 0 and len(rows["full re-read"]) < args.full_blocks:

                def reread(b: int = block) -> Any:
                    return full.snapshot(accounts, block_ref(full.client, b))

                req, cpu, wall, snap = measure(full.client, reread)
                rows["full re-read"].append({"block": block, "requests": req, "cpu_s": cpu, "wall_s": wall})
                mismatches += sum(1 for p in snap.positions if hfs.get(p.account) != p.health_factor)
            log(
                f"  block {n}/{args.blocks}: follow {sum(rows['follow'][-1]['requests'].values())} requests "
                f"{rows['follow'][-1]['cpu_s']:.3f} s CPU; differences {differences}, HF mismatches {mismatches}"
            )
        final = checked.reconcile()
        differences += len(final)
        latency = alert_latency(origin, args.latency_rounds) if args.latency_rounds else None
        result = {
            "machine": f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "positions": len(accounts),
            "reserves": len(state.reserves),
            "reserves_used_per_position": {"mean": round(statistics.mean(used), 2), "max": max(used)},
            "seeding_s": round(seeded_s, 1),
            "first_sync": {
                "follow": {
                    "requests": sum(sync_req.values()),
                    "by_method": sync_req,
                    "cpu_s": round(sync_cpu, 2),
                    "wall_s": round(sync_wall, 2),
                },
                "full re-read": {
                    "requests": sum(full_req.values()),
                    "by_method": full_req,
                    "cpu_s": round(full_cpu, 2),
                    "wall_s": round(full_wall, 2),
                },
            },
            "steady": {k: summary(v) for k, v in rows.items() if v},
            "touched_per_block": activity.per_block,
            "actions": {"sent": activity.sent, "succeeded": activity.succeeded},
            "events_applied": follow.state.events_applied,
            "differences": differences,
            "hf_mismatches": mismatches,
            "gas_budget": args.gas_budget,
            "concurrency": args.concurrency,
            "follow_batches_split": follow.multicall.splits,
            "alert_latency": latency,
        }
        return result, bool(differences or mismatches)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--positions", type=int, default=10_000)
    parser.add_argument("--blocks", type=int, default=30)
    parser.add_argument("--touch", type=float, default=0.01, help="share of the accounts acting in every block")
    parser.add_argument("--price-every", type=int, default=10)
    parser.add_argument("--sample", type=int, default=200, help="reconciliation sample per block")
    parser.add_argument("--full-blocks", type=int, default=2, help="blocks the full re-read is measured on")
    parser.add_argument("--gas-budget", type=int, default=30_000_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--latency-rounds", type=int, default=6, help="price moves timed to Telegram (0: none)")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.positions < 10 or args.blocks < 1 or not 0 < args.touch <= 1:
        parser.error("--positions must be >= 10, --blocks >= 1, --touch in (0, 1]")
    result, failed = bench(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        sync = result["first_sync"]
        print(
            f"\n{result['positions']:,} positions on {result['reserves']} reserves "
            f"(reserves used per position: mean {result['reserves_used_per_position']['mean']}, "
            f"max {result['reserves_used_per_position']['max']}); {result['machine']}"
        )
        print("\nfirst sync | requests | CPU s | wall s")
        for name, f in sync.items():
            print(f"{name} | {f['requests']:,} | {f['cpu_s']} | {f['wall_s']}")
        a, b = sync["full re-read"], sync["follow"]
        print(f"ratio: requests {a['requests'] / b['requests']:.0f}x, wall {a['wall_s'] / max(b['wall_s'], 1e-9):.1f}x")
        print("\nper block | blocks | requests median | max | CPU s median | max | wall s median | modelled s @100 ms")
        for name, s in result["steady"].items():
            print(
                f"{name} | {s['blocks']} | {s['requests_median']:g} | {s['requests_max']} | {s['cpu_median_s']} | "
                f"{s['cpu_max_s']} | {s['wall_median_s']} | {s['modelled_s_at_100ms']}"
            )
        steady = result["steady"]
        if "full re-read" in steady:
            f, g = steady["full re-read"], steady["follow"]
            print(
                f"ratio full re-read / follow: requests {f['requests_median'] / g['requests_median']:.0f}x, "
                f"CPU {f['cpu_median_s'] / max(g['cpu_median_s'], 1e-9):.1f}x, "
                f"wall {f['wall_median_s'] / max(g['wall_median_s'], 1e-9):.1f}x"
            )
        if result["alert_latency"]:
            lat = result["alert_latency"]
            print(f"\nblock moving a price -> first Telegram message through Monitor.tick: median "
                  f"{lat['latency_median_s']} s, max {lat['latency_max_s']} s over {lat['rounds']} rounds; tick median "
                  f"{lat['tick_median_s']} s ({lat.get('tick_phases_median_s')})")  # fmt: skip
        print(
            f"\ntouched per block {result['touched_per_block']}; actions {result['actions']}; events applied "
            f"{result['events_applied']}; differences {result['differences']}; HF mismatches "
            f"{result['hf_mismatches']}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
