"""One monitoring tick: advance the followed positions of every market to the head
(:class:`~monitor.positions.tracker.PositionTracker`), store what changed, assess the policy's
levels and oracle anomalies, record alerts (state + log + outbox in one transaction), deliver
what is due.

Levels come from :func:`monitor.risk.policy.position_levels` through one
:class:`~monitor.risk.policy.LevelCache` per monitor: recomputed when a position's composition
or the market's volatility moves, compared with the HF at every block.

The volatility window of each market (:class:`~monitor.risk.price_window.PriceWindow`) is read
from the store once, then kept in memory and appended with each block's prices.

Used by ``liqmon run`` (the daemon), ``liqmon demo`` and the tests; the clock is injected.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitor.alerts.channels import Channel
from monitor.alerts.hysteresis import near_subjects, peg_near
from monitor.alerts.outbox import DeliveryStats, deliver_due
from monitor.alerts.pipeline import EvaluationResult, evaluate_snapshot
from monitor.alerts.telegram_bot import with_bot_routes
from monitor.config import Config
from monitor.errors import StoreError
from monitor.metrics import NULL_METRICS, Metrics
from monitor.models import MarketSnapshot
from monitor.positions.tracker import PositionTracker, Tracked
from monitor.risk.anomalies import Anomaly, JumpDetector, divergence, stale_feeds
from monitor.risk.policy import LevelCache, MarketState, market_state_for
from monitor.risk.price_window import PriceWindow
from monitor.risk.thresholds import covariance_for
from monitor.scan import ScanResult
from monitor.store import Store

log = logging.getLogger("liqmon")
HISTORY_DAYS = 400  # stored prices read for volatility: a year of EWMA (lambda 0.94) and a margin


@dataclass(frozen=True, slots=True)
class TickResult:
    scans: tuple[ScanResult, ...]
    evaluations: tuple[EvaluationResult, ...]
    delivery: DeliveryStats
    anomalies: tuple[Anomaly, ...]


@dataclass
class Monitor:
    """Long-lived state across ticks: the followed positions (``tracker``), the jump detectors
    and volatility windows (one per market) and the level cache."""

    config: Config
    store: Store
    channels: Mapping[str, Channel]
    clock: Callable[[], float] = time.time
    metrics: Metrics = NULL_METRICS
    _detectors: dict[str, JumpDetector] = field(default_factory=dict)
    levels: LevelCache = field(default_factory=LevelCache)
    tracker: PositionTracker | None = None  # default: one for ``config``, made at construction
    _windows: dict[str, PriceWindow] = field(default_factory=dict)
    _seen_at: dict[str, float] = field(default_factory=dict)  # market -> the jump detector's last time
    _saved: dict[str, int] = field(default_factory=dict)  # market -> the block it saved last
    _near: dict[str, frozenset[str]] = field(default_factory=dict)  # oracle subjects within their exit band

    def __post_init__(self) -> None:
        if self.tracker is None:
            self.tracker = PositionTracker(self.config, metrics=self.metrics, clock=self.clock)

    @property
    def positions(self) -> PositionTracker:
        """The one home of the followed positions."""
        assert self.tracker is not None
        return self.tracker

    def poll(self) -> dict[str, tuple[int, str]]:
        """Every chain's head (number, hash); the next :meth:`tick` uses it without asking again."""
        return self.positions.poll()

    def close(self) -> None:
        self.positions.close()

    def tick(self) -> TickResult:
        with self.store.writer("scan", self.config.store.lease_ttl_s):  # `liqmon scan` on it: refused
            tracked = self.positions.advance(self.store)
            for t in tracked:
                if t.orphaned:  # its rows are hidden now: the window is read again (a proven reorg is rare)
                    self._windows.pop(t.snapshot.market, None)
                if t.new_block:
                    self._save(t)
        scans = [ScanResult(t.snapshot, t.new_accounts, None, t.feeds) for t in tracked]
        evaluations = []
        anomalies: list[Anomaly] = []
        for result in scans:
            found = self._anomalies(result.snapshot) + self._feed_anomalies(result)
            anomalies.extend(found)
            evaluations.append(self.assess(result.snapshot, found))
        delivery = self.deliver()
        return TickResult(tuple(scans), tuple(evaluations), delivery, tuple(anomalies))

    def _save(self, tracked: Tracked) -> None:
        snapshot = tracked.snapshot
        try:
            self.store.save_snapshot(snapshot, touched=self._touched(tracked))
        except StoreError as exc:
            if "not proven yet" not in str(exc):
                raise
            log.warning("not stored: %s", exc, extra={"market": snapshot.market, "block": snapshot.block})
            return
        self._saved[snapshot.market] = snapshot.block
        window = self._windows.get(snapshot.market)
        if window is not None:
            window.append(snapshot)

    def _touched(self, tracked: Tracked) -> frozenset[str] | None:
        """The accounts whose balances may have changed since the block saved last (the store
        compares only their legs): the step's, when it starts right after that block; else
        (the first block, a full read, a block not saved, an unwind, a resync) None: all."""
        step = tracked.step
        if step is None or step.resynced or self._saved.get(tracked.snapshot.market) != step.from_block - 1:
            return None
        return tracked.touched

    def window(self, snapshot: MarketSnapshot) -> PriceWindow:
        """The market's volatility window: the store's prices of the last ``HISTORY_DAYS``,
        read ONCE, then appended by each tick."""
        window = self._windows.get(snapshot.market)
        if window is None:
            since = snapshot.timestamp - HISTORY_DAYS * 86_400
            window = PriceWindow.of_rows(HISTORY_DAYS, self.store.price_history(snapshot.market, since_time=since))
            self._windows[snapshot.market] = window
        return window

    def market_state(self, snapshot: MarketSnapshot) -> MarketState:
        """:func:`market_state_of` from the in-memory window (no store read)."""
        symbols = [r.symbol for r in snapshot.reserves]
        ts = float(snapshot.timestamp)
        return market_state_for(symbols, self.window(snapshot).history(ts), ts)

    def assess(self, snapshot: MarketSnapshot, anomalies: list[Anomaly]) -> EvaluationResult:
        now = self.clock()
        market = self.market_state(snapshot)
        result = evaluate_snapshot(
            snapshot, self.store, with_bot_routes(self.config, self.store, now), market, now=now, anomalies=anomalies,
            cache=self.levels,
            observe_hours=self.config.daemon.interval_s / 3600.0, near=self._near.pop(snapshot.market, frozenset()),
        )  # fmt: skip
        source = market.source
        self.metrics.positions(snapshot.market, Counter(a.severity for a in result.assessments))
        if result.reasons:
            log.info(
                "alerts recorded",
                extra={"market": snapshot.market, "block": snapshot.block, "reasons": dict(result.reasons),
                       "volatility_source": source, "levels_recomputed": self.levels.recomputed},
            )  # fmt: skip
        return result

    def deliver(self) -> DeliveryStats:
        stats = deliver_due(
            self.store, self.channels, self.clock(), max_attempts=self.config.daemon.max_attempts,
            on_result=lambda channel, ok: self.metrics.alerts_delivered(channel, int(ok), int(not ok)),
            on_failure=lambda channel, kind, _reason: self.metrics.delivery_failed(channel, kind),
            grouping=self.config.alerts.grouping,  # one message per destination (alerts/grouping.py)
        )  # fmt: skip
        self.metrics.alerts_queued(len(self.store.outbox("pending")))
        if stats.sent or stats.retried or stats.failed:
            log.info("outbox delivered", extra={"sent": stats.sent, "retried": stats.retried, "failed": stats.failed,
                                                "held": stats.held})  # fmt: skip
        return stats

    def _history(self, snapshot: MarketSnapshot) -> dict[str, list[tuple[float, float]]]:
        return stored_history(self.store, snapshot)

    def _anomalies(self, snapshot: MarketSnapshot) -> list[Anomaly]:
        """Jumps of the protocol oracle's prices against their adaptive EWMA volatility."""
        unit = snapshot.base_currency_unit
        prices = {r.symbol: r.price / unit for r in snapshot.reserves if r.price > 0}
        detector = self._detectors.get(snapshot.market)
        if detector is None:
            cov, _ = covariance_for(list(prices), price_history=self._history(snapshot))
            sigma = {s: float(np.sqrt(cov[i, i])) for i, s in enumerate(prices)}
            cfg = self.config.alerts.oracle
            detector = JumpDetector(
                sigma, feeds=cfg.feed_specs(list(prices)), z_warning=cfg.jump_z_warning, z_critical=cfg.jump_z_critical
            )
            self._detectors[snapshot.market] = detector
        # a reorg's new branch may carry an earlier timestamp than the block it replaced: the
        # detector's clock does not go back (the observation counts as at the time last seen)
        t = max(float(snapshot.timestamp), self._seen_at.get(snapshot.market, 0.0))
        self._seen_at[snapshot.market] = t
        found = list(detector.observe(prices, t))
        pegged = {s: detector.score(s, p, t) for s, p in prices.items() if detector.spec(s).kind == "pegged"}
        self._near[snapshot.market] = peg_near(pegged, self.config.alerts.oracle)  # de-pegs within the exit band
        return found

    def _feed_anomalies(self, result: ScanResult) -> list[Anomaly]:
        """Stale reference feeds, and divergence between the protocol oracle and them."""
        if not result.feeds:
            return []
        cfg = self.config.alerts.oracle
        snapshot = result.snapshot
        unit = snapshot.base_currency_unit
        protocol = {r.symbol.upper(): r.price / unit for r in snapshot.reserves if r.price > 0}
        found = stale_feeds(
            {s: float(f.updated_at) for s, f in result.feeds.items()}, float(snapshot.timestamp),
            cfg.heartbeats(list(result.feeds)),
            margin_s=cfg.stale_margin_s,
        )  # fmt: skip
        reference = {s: f.price for s, f in result.feeds.items()}
        self._near[snapshot.market] = self._near.get(snapshot.market, frozenset()) | near_subjects(
            protocol, reference, cfg
        )
        found += divergence(
            {s: p for s, p in protocol.items() if s in result.feeds}, reference,
            warning_bps=cfg.divergence_warning_bps, critical_bps=cfg.divergence_critical_bps,
        )  # fmt: skip
        return found


def stored_history(store: Store, snapshot: MarketSnapshot) -> dict[str, list[tuple[float, float]]]:
    """The stored oracle prices of the last ``HISTORY_DAYS`` (older ones weigh ~1e-10 in
    the EWMA, and the table grows by a row per asset per scanned block)."""
    history: dict[str, list[tuple[float, float]]] = {}
    since = snapshot.timestamp - HISTORY_DAYS * 86_400
    for row in store.price_history(snapshot.market, since_time=since):
        history.setdefault(row["symbol"], []).append((float(row["timestamp"]), float(row["price_usd"])))
    return history


def market_state_of(store: Store, snapshot: MarketSnapshot) -> MarketState:
    """The policy's market state at the snapshot: the store's daily oracle returns once every
    asset has 30 days of them, else the shipped daily prices (no data after the snapshot)."""
    symbols = [r.symbol for r in snapshot.reserves]
    return market_state_for(symbols, stored_history(store, snapshot), float(snapshot.timestamp))


def describe(tick: TickResult) -> dict[str, Any]:
    return {
        "blocks": {s.snapshot.market: s.snapshot.block for s in tick.scans},
        "positions": sum(len(s.snapshot.positions) for s in tick.scans),
        "alerts": sum(sum(e.reasons.values()) for e in tick.evaluations),
        "sent": tick.delivery.sent,
        "pending_retry": tick.delivery.retried,
        "failed": tick.delivery.failed,
    }
