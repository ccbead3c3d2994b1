"""`liqmon run` follows positions by their events: after its start (chain ids, discovery, ONE
full read), the only JSON-RPC requests are the head polls (one eth_getBlockByNumber each) and,
per new block, one eth_getLogs + one aggregate3 eth_call; no client is opened again per poll
(no eth_chainId) and no 64-block reorg batch is sent."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from monitor.daemon import run_daemon
from monitor.store import Store
from tests.faults.conftest import SmallDevnet
from tests.support_proxy import FaultProxy

pytestmark = [pytest.mark.devnet]

BLOCKS = 4


def test_daemon_follows_each_block_with_polls_logs_and_one_call(small_devnet: SmallDevnet, tmp_path: Path) -> None:
    db = small_devnet.history(tmp_path)
    with FaultProxy(small_devnet.url) as proxy:
        config = small_devnet.config([proxy.url], db)
        config = replace(config, daemon=replace(config.daemon, interval_s=0.1, mode="block", reconcile_sample=0))
        marks: list[int] = []  # the proxy's request count when each block was mined
        stop = threading.Event()

        def methods_of(entry: dict[str, object]) -> list[str]:
            return list(entry.get("methods") or [entry.get("method")])  # type: ignore[call-overload]

        def wait_idle(after: int) -> None:
            """Until the daemon only polls again (5 head polls in a row after request ``after``)."""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not stop.is_set():
                tail = list(proxy.log[max(after, len(proxy.log) - 5) :])
                if len(tail) == 5 and all(methods_of(e) == ["eth_getBlockByNumber"] for e in tail):
                    return
                time.sleep(0.05)

        def mine() -> None:
            wait_idle(0)  # the start: chain ids, discovery, the one full read
            for _ in range(BLOCKS):
                marks.append(len(proxy.log))
                small_devnet.node.mine()
                wait_idle(marks[-1] + 1)  # its tick, then polls again
            marks.append(len(proxy.log))
            os.kill(os.getpid(), signal.SIGTERM)  # the daemon stops as on `kill`

        miner = threading.Thread(target=mine)
        miner.start()
        try:
            code = run_daemon(config)
        finally:
            stop.set()
            miner.join()
        log = list(proxy.log)
    assert code == 0
    assert len(marks) == BLOCKS + 1
    steady = log[marks[0] : marks[-1]]
    methods = Counter(m for entry in steady for m in (entry.get("methods") or [entry.get("method")]))
    assert set(methods) <= {"eth_getBlockByNumber", "eth_getLogs", "eth_call"}, methods
    assert methods["eth_getLogs"] == BLOCKS and methods["eth_call"] <= 2 * BLOCKS, methods  # + sample reads
    with Store(db) as store:
        newest = store.recent_scans("aave-v3-devnet", 1)[0][0]
    assert newest == small_devnet.node.client.block_number()  # the last followed block is stored
