#!/usr/bin/env python3
"""Benchmark: from the block that moves a price to the message at the Telegram server.

A devnet with N seeded Aave V3 positions (default 1,000) is watched by liqmon's monitor
loop in block mode (head polled every --poll-ms), with a Telegram channel pointed at the
local Telegram peer. Each round mines ONE block that moves WETH far enough to change the
alert state of some positions, and measures the time until the first message of that
round reaches the server. Rounds alternate a drop and a recovery (with chain time moved
past the dwell so recoveries resolve). In the same run, the naive approach — one
``getUserAccountData`` eth_call per account after each block — is timed for detection.

    .venv/bin/python scripts/bench_alert_latency.py [--positions 1000] [--rounds 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.alerts.telegram import TelegramChannel  # noqa: E402
from monitor.chain.rpc import RpcClient  # noqa: E402
from monitor.config import parse_config  # noqa: E402
from monitor.devnet.anvil import Anvil  # noqa: E402
from monitor.devnet.deploy import deploy_aave  # noqa: E402
from monitor.devnet.node import DevnetNode  # noqa: E402
from monitor.devnet.seed import seed_positions, set_price  # noqa: E402
from monitor.devnet.session import devnet_config  # noqa: E402
from monitor.protocols import aave_v3_abi as abi  # noqa: E402
from monitor.service import Monitor  # noqa: E402
from monitor.store import Store  # noqa: E402
from tests.support_peers import TELEGRAM_TEST_TOKEN, TelegramServer  # noqa: E402


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def monitor_loop(monitor_factory: Any, client: RpcClient, poll_s: float, stop: threading.Event,
                 ticks: list[tuple[int, float]]) -> None:  # fmt: skip
    """liqmon's block mode: poll the head; on a new block, one tick (scan, assess, deliver)."""
    monitor, store = monitor_factory()
    last = client.block_number()
    try:
        while not stop.is_set():
            head = client.block_number()
            if head != last:
                last = head
                started = time.perf_counter()
                monitor.tick()
                ticks.append((head, time.perf_counter() - started))
            else:
                time.sleep(poll_s)
    finally:
        store.close()


def chain_time(client: RpcClient) -> float:
    """Dwell and repeat intervals run on chain time: the benchmark moves it 10 min a round."""
    return float(int(client.get_block("latest")["timestamp"], 16))


def naive_detection(client: RpcClient, pool: str, accounts: list[str]) -> float:
    started = time.perf_counter()
    for account in accounts:
        abi.GET_USER_ACCOUNT_DATA.decode(client.eth_call(pool, abi.GET_USER_ACCOUNT_DATA.encode(account), "latest"))
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--positions", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--poll-ms", type=float, default=50.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with Anvil() as anvil, TelegramServer() as telegram, __import__("tempfile").TemporaryDirectory() as tmp:
        client = RpcClient([anvil.url], timeout=120, max_retries=0)
        node = DevnetNode(client)
        deployment = deploy_aave(node)
        say(f"seeding {args.positions} positions ...")
        seeded = seed_positions(node, deployment, args.positions, seed=11, hf_range=(1.05, 1.6))
        data = devnet_config(anvil.url, deployment, str(Path(tmp) / "bench.db"))
        data["alerts"] = {
            "channels": {"tg": {"type": "telegram", "token_env": "TG", "base_url": telegram.base_url,
                                "min_interval_s": 0}},
            "routes": [{"channel": "tg", "to": "-100555", "min_severity": "watch"}],
            "min_dwell_s": 60,
        }  # fmt: skip
        config = parse_config(data, Path(tmp) / "c.yaml", env={"TG": TELEGRAM_TEST_TOKEN})

        def factory() -> tuple[Monitor, Store]:
            store = Store(config.store.path)
            channels = {"tg": TelegramChannel("tg", TELEGRAM_TEST_TOKEN, base_url=telegram.base_url,
                                              min_interval_per_chat_s=0)}  # fmt: skip
            clock_client = RpcClient([anvil.url], timeout=60, max_retries=0)
            return Monitor(config, store, channels, clock=lambda: chain_time(clock_client)), store

        # warm up: the first scan discovers all borrowers and records the initial alerts
        monitor, store = factory()
        monitor.tick()
        store.close()
        ticks: list[tuple[int, float]] = []
        stop = threading.Event()
        watcher = RpcClient([anvil.url], timeout=60, max_retries=0)
        thread = threading.Thread(target=monitor_loop, args=(factory, watcher, args.poll_ms / 1000, stop, ticks))
        thread.start()
        latencies: list[float] = []
        naive: list[float] = []
        try:
            for k in range(args.rounds):
                time.sleep(1.5)
                client.request("evm_increaseTime", [600])  # past the dwell, so recoveries resolve
                before = len(telegram.messages)
                price = 1700.0 if k % 2 == 0 else 2000.0
                set_price(node, deployment, "WETH", price, mine=False)
                node.mine()
                mined = time.monotonic()
                got = telegram.wait_for(before + 1, timeout=30)
                latency = got[before].time - mined
                latencies.append(latency)
                naive.append(naive_detection(client, deployment.pool, [s.account for s in seeded]))
                time.sleep(1.0)  # let the round's remaining messages arrive before the next move
                say(f"round {k + 1}: WETH -> {price:.0f}: first message after {latency * 1000:.0f} ms "
                    f"({len(telegram.messages) - before} messages)")  # fmt: skip
        finally:
            stop.set()
            thread.join(60)
        tick_times = [t for _, t in ticks]
        result = {
            "positions": args.positions,
            "rounds": args.rounds,
            "poll_ms": args.poll_ms,
            "latency_median_s": statistics.median(latencies),
            "latency_p90_s": sorted(latencies)[max(0, int(0.9 * len(latencies)) - 1)],
            "latency_max_s": max(latencies),
            "tick_median_s": statistics.median(tick_times) if tick_times else None,
            "naive_detection_median_s": statistics.median(naive),
            "messages": len(telegram.messages),
        }
        # the naive monitor has not even finished reading the HFs when liqmon's message has arrived
        result["naive_detection_over_liqmon_latency"] = result["naive_detection_median_s"] / result["latency_median_s"]
    print(json.dumps(result, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    print(f"target median <= 1 s: {'YES' if result['latency_median_s'] <= 1.0 else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
