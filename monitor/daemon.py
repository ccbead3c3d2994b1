"""``liqmon run``: the monitoring daemon on APScheduler 3.

Two jobs on ONE worker thread (so the SQLite connection stays on the thread that opened
it): ``scan`` polls the head every ``interval_s`` (ONE request per endpoint, through the
position tracker's own clients) and runs a tick on each new block (mode ``block``) or on every
run (mode ``interval``); a tick follows the positions by their events
(:mod:`monitor.positions.tracker`), not a full re-read; ``deliver`` drains the outbox every
``deliver_interval_s``. coalesce=True and max_instances=1: a slow scan never piles up.
SIGTERM and Ctrl-C stop the scheduler and let the running job finish; nothing is lost
because state, alerts and outbox rows are committed together and delivery is retried.

One writer per database: the daemon takes the store's writer lease (pid, host, expiry) at
start and a keeper thread renews it every ``store.lease_ttl_s / 3``. A second ``liqmon run``
on the same database exits at once naming the holder's pid and host; ``liqmon scan`` is
refused while the daemon holds it. A lease whose holder died (its pid is gone on this host)
or that was not renewed within its ttl is taken over. A daemon that finds its lease taken
(it was frozen past the ttl) stops instead of writing beside the new holder.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler

from monitor.alerts.channels import Channel
from monitor.alerts.factory import build_channels, channel_names
from monitor.alerts.telegram_bot import start_bot
from monitor.config import Config, redact
from monitor.logs import error_fields, setup_logging
from monitor.metrics import Metrics
from monitor.scan import open_client
from monitor.service import Monitor, describe
from monitor.store import Lease, LeaseKeeper, Store
from monitor.store.mirror import shared_url

log = logging.getLogger("liqmon")


@dataclass
class _Worker:
    """The jobs' shared state. Each job opens the store for its own run, so no SQLite
    connection crosses threads; the jump detectors live on in the Monitor."""

    config: Config
    clock: Callable[[], float]
    channels: Mapping[str, Channel]
    metrics: Metrics
    monitor: Monitor | None = None
    last_head: dict[str, tuple[int, str]] | None = None
    ticks: int = 0

    @contextmanager
    def _monitor(self) -> Iterator[Monitor]:
        cfg = self.config.store
        with Store(cfg.path, history=cfg.history, retention=cfg.retention, history_url=shared_url(cfg)) as store:
            if self.monitor is None:
                self.monitor = Monitor(self.config, store, self.channels, clock=self.clock, metrics=self.metrics)
            self.monitor.store = store
            yield self.monitor

    def scan(self) -> None:
        started = time.monotonic()
        with self._monitor() as monitor:
            if self.config.daemon.mode == "block":
                head = monitor.poll()  # the tick below follows to this head without asking again
                if head == self.last_head:
                    return
                self.last_head = head
            tick = monitor.tick()
        self.ticks += 1
        log.info("tick", extra={**describe(tick), "seconds": round(time.monotonic() - started, 3)})

    def deliver(self) -> None:
        with self._monitor() as monitor:
            monitor.deliver()

    def close(self) -> None:
        if self.monitor is not None:
            self.monitor.close()


def take_lease(config: Config) -> Lease:
    """The database's writer lease for this daemon, or LeaseHeld naming the holder."""
    with Store(config.store.path) as store:
        return store.acquire_lease("run", config.store.lease_ttl_s)


def run_daemon(config: Config, *, max_ticks: int | None = None, clock: Callable[[], float] = time.time) -> int:
    """Run until SIGTERM / Ctrl-C (or ``max_ticks`` scans, for tests); returns an exit code."""
    setup_logging(config.daemon.log_format, lambda text: redact(text, config))
    channels = build_channels(config.alerts)  # bad channel config fails here, at start
    lease = take_lease(config)  # another daemon on this database: LeaseHeld, before anything runs
    lost: list[str] = []
    keeper: LeaseKeeper | None = None
    try:
        keeper = LeaseKeeper(config.store.path, lease, config.store.lease_ttl_s, lost.append)
        code = _run(config, channels, max_ticks, clock, keeper, lost)
    finally:
        if keeper is not None:
            keeper.release()
    return code


def _run(
    config: Config,
    channels: Mapping[str, Channel],
    max_ticks: int | None,
    clock: Callable[[], float],
    keeper: LeaseKeeper,
    lost: list[str],
) -> int:
    for chain in {config.chain_for(m).name: config.chain_for(m) for m in config.markets}.values():
        open_client(chain, str(config.source)).close()  # unreachable node or wrong chain id: fail at start
    log.info("starting", extra={"markets": [m.name for m in config.markets], "channels": channel_names(channels),
                                "mode": config.daemon.mode, "interval_s": config.daemon.interval_s,
                                "store": str(config.store.path), "lease": keeper.lease.describe()})  # fmt: skip
    metrics = Metrics()
    if config.daemon.metrics_port is not None:
        host = os.environ.get("LIQMON_METRICS_HOST", "127.0.0.1")  # 0.0.0.0 in the container image
        metrics.serve(config.daemon.metrics_port, host)  # a port in use fails here, at start
        log.info("metrics", extra={"url": f"http://{host}:{config.daemon.metrics_port}/metrics"})
    worker = _Worker(config, clock, channels, metrics)
    scheduler = BlockingScheduler(
        executors={"default": ThreadPoolExecutor(1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
    )
    stop = threading.Event()

    def lease_lost(reason: str) -> None:
        lost.append(reason)
        log.error("stopping: writer lease lost", extra={"error": reason})
        stop.set()
        threading.Thread(target=lambda: scheduler.shutdown(wait=False), daemon=True).start()

    keeper.on_lost = lease_lost

    def scan_job() -> None:
        if lost:
            return
        worker.scan()
        if max_ticks is not None and worker.ticks >= max_ticks:
            worker.deliver()  # a trial run hands over what it recorded before it ends
            stop.set()
            threading.Thread(target=lambda: scheduler.shutdown(wait=False), daemon=True).start()

    def on_error(event: JobExecutionEvent) -> None:
        fields = error_fields(event.exception, lambda text: redact(text, config))
        log.error("job failed", extra={"job": event.job_id, **fields})

    scheduler.add_job(scan_job, "interval", seconds=config.daemon.interval_s, id="scan", next_run_time=_now())
    scheduler.add_job(worker.deliver, "interval", seconds=config.daemon.deliver_interval_s, id="deliver")
    scheduler.add_listener(on_error, EVENT_JOB_ERROR)

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()
        scheduler.shutdown(wait=False)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    keeper.start()
    bot = start_bot(config, stop)  # alerts.telegram_bot: getUpdates in its own thread
    try:
        scheduler.start()  # blocks until shutdown
    finally:
        stop.set()
        if bot is not None:
            bot.join(timeout=config.alerts.bot.poll_timeout_s + 15)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if scheduler.running:
            scheduler.shutdown(wait=True)
    worker.close()
    metrics.close()
    log.info("stopped", extra={"ticks": worker.ticks})
    return 1 if lost else 0


def _now() -> Any:
    from datetime import datetime

    return datetime.now(UTC)  # APScheduler's first run time (not decision logic)
