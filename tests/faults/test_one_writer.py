"""One writer per database: the writer lease in the store (pid, host, expiry).

Two `liqmon run` on one database: exactly one runs, the other exits naming the holder's pid
and host, and the Telegram test peer gets no message twice. `scan` while `run` holds the
lease is refused. A stale lease (dead pid on this host, or expired) is taken over."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import parse_config
from monitor.devnet.seed import set_price
from monitor.devnet.session import devnet_config
from monitor.scan import scan_all
from monitor.store import LeaseHeld, Store, StoreError
from tests.faults.conftest import SmallDevnet
from tests.support_daemon import rows, start_daemon
from tests.support_peers import TelegramServer


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_second_writer_is_refused_naming_pid_and_host(tmp_path: Path) -> None:
    with Store(tmp_path / "l.db") as one, Store(tmp_path / "l.db") as two:
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            held = one.acquire_lease("run", 60, pid=sleeper.pid)
            with pytest.raises(LeaseHeld) as info:
                two.acquire_lease("run", 60)
            message = str(info.value)
            assert f"pid {sleeper.pid} on host {socket.gethostname()}" in message and "liqmon run" in message
            assert info.value.holder.token == held.token
        finally:
            sleeper.kill()
            sleeper.wait()
        # its process is gone: the lease is stale and taken over
        taken = two.acquire_lease("run", 60)
        assert taken.pid == os.getpid() and one.lease_holder() == taken


def test_dead_pid_on_this_host_and_expired_leases_are_taken_over(tmp_path: Path) -> None:
    clock = Clock()
    with Store(tmp_path / "l.db", clock=clock) as store:
        store.acquire_lease("run", 60, pid=dead_pid())
        taken = store.acquire_lease("run", 60)
        assert taken.pid == os.getpid()
        store.release_lease(taken)
        # another host: its pid cannot be checked, only the expiry counts
        other = store.acquire_lease("run", 60, pid=1, host="elsewhere.example")
        with pytest.raises(LeaseHeld, match=r"on host elsewhere\.example"):
            store.acquire_lease("run", 60)
        clock.now += 59
        with pytest.raises(LeaseHeld):
            store.acquire_lease("run", 60)
        clock.now += 2  # not renewed within its ttl
        mine = store.acquire_lease("run", 60)
        assert mine.host == socket.gethostname()
        with pytest.raises(StoreError, match="lost the writer lease"):
            store.renew_lease(other, 60)  # the old holder finds out and stops
        renewed = store.renew_lease(mine, 60)
        assert renewed.expires_at == clock.now + 60
        store.release_lease(renewed)
        assert store.lease_holder() is None


def test_scan_is_refused_while_run_holds_the_lease(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    data = {
        "chains": {"devnet": {"chain_id": 31337, "rpc_urls": ["http://127.0.0.1:9"]}},
        "markets": [{"name": "m", "protocol": "aave_v3", "chain": "devnet",
                     "pool_addresses_provider": "0x" + "12" * 20}],
        "store": {"path": str(db)},
    }  # fmt: skip
    config = parse_config(data, tmp_path / "c.yaml")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with Store(db) as store:
            store.acquire_lease("run", 60, pid=sleeper.pid)
            started = time.monotonic()
            with pytest.raises(LeaseHeld, match=f"liqmon run \\(pid {sleeper.pid} on host"):
                scan_all(config, store)  # refused before any request (the URL is dead anyway)
            assert time.monotonic() - started < 5
            assert store.lease_holder() is not None and store.lease_holder().pid == sleeper.pid  # type: ignore[union-attr]
    finally:
        sleeper.kill()
        sleeper.wait()


# --------------------------------------------------------------------------- two daemons


def wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.devnet
@pytest.mark.slow
def test_two_daemons_on_one_database_exactly_one_runs(small_devnet: SmallDevnet, tmp_path: Path) -> None:
    set_price(small_devnet.node, small_devnet.deployment, "WETH", 700)  # alerts to deliver
    db = tmp_path / "d.db"
    with TelegramServer() as telegram:
        data: dict[str, Any] = devnet_config(small_devnet.url, small_devnet.deployment, str(db))
        data["daemon"] = {"mode": "interval", "interval_s": 1, "deliver_interval_s": 0.3, "log_format": "json"}
        data["store"]["lease_ttl_s"] = 3
        data["alerts"] = {
            "channels": {"desk": {"type": "telegram", "token_env": "TG_TOKEN", "base_url": telegram.base_url,
                                  "min_interval_s": 0, "timeout_s": 2}},
            "routes": [{"channel": "desk", "to": "-100777", "min_severity": "watch"}],
        }  # fmt: skip
        config = tmp_path / "c.yaml"
        config.write_text(yaml.safe_dump(data))
        logs = [tmp_path / "a.log", tmp_path / "b.log"]
        daemons = [start_daemon(config, logs[0]), start_daemon(config, logs[1])]  # at the same moment
        try:
            wait(lambda: any(d.poll() is not None for d in daemons), 60, "one daemon to give up")
            loser = next(i for i, d in enumerate(daemons) if d.poll() is not None)
            winner = 1 - loser
            assert daemons[loser].returncode == 1
            holder = daemons[winner].pid
            refusal = logs[loser].read_text()
            assert f"pid {holder} on host {socket.gethostname()}" in refusal, refusal
            assert "Traceback" not in refusal
            wait(lambda: rows(db, "SELECT 1 FROM outbox WHERE status = 'sent'"), 60, "deliveries")
            time.sleep(2.5)  # several more delivery rounds (a second writer would double them)
            assert daemons[winner].poll() is None  # the winner keeps running
            # a third one while the winner runs is refused too
            third = start_daemon(config, tmp_path / "c.log")
            assert third.wait(60) == 1
            assert f"pid {holder}" in (tmp_path / "c.log").read_text()
        finally:
            for daemon in daemons:
                if daemon.poll() is None:
                    daemon.send_signal(signal.SIGTERM)
            codes = [d.wait(30) for d in daemons]
        assert codes[winner] == 0
        texts = [m.text for m in telegram.messages]
    sent = rows(db, "SELECT batch, id FROM outbox WHERE status = 'sent'")
    messages = {batch or outbox_id for batch, outbox_id in sent}  # a grouped message carries several rows
    assert texts and len(texts) == len(messages), (len(texts), len(messages))
    duplicates = [t for t, n in Counter(texts).items() if n > 1]
    assert duplicates == [], f"{len(duplicates)} message(s) delivered twice"
    assert rows(db, "SELECT * FROM writer_lease") == []  # released at SIGTERM


def test_a_long_job_keeps_its_lease_renewed_and_gives_it_back(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    with Store(db) as store, store.writer("scan", 0.6) as lease:
        assert lease is not None
        time.sleep(1.5)  # more than twice the ttl: only the keeper's renewals keep it
        holder = store.lease_holder()
        assert holder is not None and holder.token == lease.token and holder.renewed_at > lease.renewed_at
        assert holder.expires_at > time.time()
        with Store(db) as other, pytest.raises(LeaseHeld, match="liqmon scan"):
            other.acquire_lease("run", 60, pid=os.getpid() + 1_000_000)  # another process (fake pid)
    with Store(db) as store:
        assert store.lease_holder() is None
