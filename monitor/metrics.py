"""Prometheus metrics of the monitor, served on ``daemon.metrics_port``.

Every :class:`Metrics` owns its own :class:`~prometheus_client.CollectorRegistry` (never
prometheus_client's global one), so two instances (two daemons in one test process) never
share or collide on series.

Series (all names prefixed ``liqmon_``):

================================================  =========  =====================
name                                              type       labels
================================================  =========  =====================
``liqmon_scan_duration_seconds``                  histogram  market
``liqmon_last_successful_scan_timestamp_seconds`` gauge      market
``liqmon_scan_failures_total``                    counter    market
``liqmon_rpc_requests_total``                     counter    endpoint, method
``liqmon_rpc_errors_total``                       counter    endpoint, kind
``liqmon_rpc_failovers_total``                    counter    from, to
``liqmon_rpc_active_endpoint``                    gauge      chain, endpoint
``liqmon_positions``                              gauge      market, severity
``liqmon_alerts_sent_total``                      counter    channel
``liqmon_alerts_failed_total``                    counter    channel
``liqmon_alerts_undeliverable_total``             counter    channel, kind
``liqmon_alerts_queued``                          gauge      -
================================================  =========  =====================

Endpoint labels: the metrics page is scraped without authentication, so every
``endpoint`` / ``from`` / ``to`` label must be the *display* form of the RPC URL, with
secrets masked: callers pass ``endpoint.display`` (:class:`monitor.config.RpcEndpoint` or
:class:`monitor.chain.rpc.Endpoint`), never ``endpoint.url``.

Code paths without metrics take :data:`NULL_METRICS`, which accepts every call and records
nothing.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Mapping
from typing import Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

from monitor.config.alerts import SEVERITY_NAMES
from monitor.errors import ConfigError

__all__ = ["NULL_METRICS", "SCAN_BUCKETS", "SEVERITIES", "Metrics", "NullMetrics"]

SEVERITIES: Final[tuple[str, ...]] = ("ok", *SEVERITY_NAMES)
"""The ``severity`` label values of ``liqmon_positions``: ok, watch, warning, critical, liquidatable."""

SCAN_BUCKETS: Final[tuple[float, ...]] = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
"""Scan durations range from sub-second (a watchlist on a local node) to minutes (discovery)."""


class Metrics:
    """The monitor's metrics in a registry of their own. Thread-safe."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self._scan_duration = Histogram(
            "liqmon_scan_duration_seconds", "Duration of successful market scans.", ["market"],
            registry=r, buckets=SCAN_BUCKETS,
        )  # fmt: skip
        self._last_scan = Gauge(
            "liqmon_last_successful_scan_timestamp_seconds",
            "Unix time at which the last successful scan of the market finished.",
            ["market"],
            registry=r,
        )
        self._scan_failures = Counter("liqmon_scan_failures_total", "Market scans that failed.", ["market"], registry=r)
        self._rpc_requests = Counter(
            "liqmon_rpc_requests_total", "JSON-RPC requests sent, per endpoint (display form) and method.",
            ["endpoint", "method"], registry=r,
        )  # fmt: skip
        self._rpc_errors = Counter(
            "liqmon_rpc_errors_total", "JSON-RPC failures, per endpoint (display form) and kind.",
            ["endpoint", "kind"], registry=r,
        )  # fmt: skip
        self._rpc_failovers = Counter(
            "liqmon_rpc_failovers_total", "Switches from one RPC endpoint to the next.", ["from", "to"], registry=r
        )
        self._active_endpoint = Gauge(
            "liqmon_rpc_active_endpoint", "1 for the RPC endpoint in use on the chain, 0 for the others.",
            ["chain", "endpoint"], registry=r,
        )  # fmt: skip
        self._positions = Gauge(
            "liqmon_positions", "Positions of the market by alert severity (last scan).", ["market", "severity"],
            registry=r,
        )  # fmt: skip
        self._alerts_sent = Counter(
            "liqmon_alerts_sent_total", "Alert messages delivered, per channel.", ["channel"], registry=r
        )
        self._alerts_failed = Counter(
            "liqmon_alerts_failed_total", "Alert delivery attempts that failed, per channel.", ["channel"], registry=r
        )
        self._alerts_undeliverable = Counter(
            "liqmon_alerts_undeliverable",
            "Alert messages given up on (permanent failure or out of attempts), per channel and cause.",
            ["channel", "kind"],
            registry=r,
        )
        self._alerts_queued = Gauge("liqmon_alerts_queued", "Alert messages waiting in the outbox.", registry=r)
        self._lock = threading.Lock()
        self._endpoints: dict[str, set[str]] = {}  # chain -> endpoints seen in liqmon_rpc_active_endpoint
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ scans

    def scan_finished(self, market: str, seconds: float, finished_at: float) -> None:
        """A scan of ``market`` succeeded after ``seconds``; ``finished_at`` is a Unix time."""
        self._scan_duration.labels(market=market).observe(seconds)
        self._last_scan.labels(market=market).set(finished_at)

    def scan_failed(self, market: str) -> None:
        self._scan_failures.labels(market=market).inc()

    # ------------------------------------------------------------------ RPC (endpoint = display form)

    def rpc_request(self, endpoint: str, method: str) -> None:
        """One request to ``endpoint`` (pass ``endpoint.display``, never the URL)."""
        self._rpc_requests.labels(endpoint=endpoint, method=method).inc()

    def rpc_error(self, endpoint: str, kind: str) -> None:
        """One failure at ``endpoint`` (``endpoint.display``); ``kind`` e.g. timeout, refused, http_5xx."""
        self._rpc_errors.labels(endpoint=endpoint, kind=kind).inc()

    def rpc_failover(self, from_endpoint: str, to_endpoint: str) -> None:
        """The client moved from one endpoint to another (both ``.display``)."""
        self._rpc_failovers.labels(**{"from": from_endpoint, "to": to_endpoint}).inc()

    def active_endpoint(self, chain: str, endpoint: str) -> None:
        """``endpoint`` (``.display``) is now the one in use on ``chain``: 1 for it, 0 for the chain's others."""
        with self._lock:
            seen = self._endpoints.setdefault(chain, set())
            seen.add(endpoint)
            for other in seen:
                self._active_endpoint.labels(chain=chain, endpoint=other).set(1 if other == endpoint else 0)

    # ------------------------------------------------------------------ positions and alerts

    def positions(self, market: str, by_severity: Mapping[str, int]) -> None:
        """Set the position count of every severity of :data:`SEVERITIES` (absent ones are 0).

        Keys outside :data:`SEVERITIES` (e.g. ``anomaly``) are ignored: they are not positions.
        """
        for severity in SEVERITIES:
            self._positions.labels(market=market, severity=severity).set(by_severity.get(severity, 0))

    def alerts_delivered(self, channel: str, sent: int, failed: int) -> None:
        """``sent`` messages delivered and ``failed`` attempts failed on ``channel`` (both >= 0)."""
        if sent < 0 or failed < 0:
            raise ValueError(f"alert counts cannot be negative (sent={sent}, failed={failed})")
        self._alerts_sent.labels(channel=channel).inc(sent)
        self._alerts_failed.labels(channel=channel).inc(failed)

    def delivery_failed(self, channel: str, kind: str) -> None:
        """A message ``channel`` will never deliver (permanent failure, or out of attempts);
        ``kind`` is the cause's short label (``chat_not_found``, ``tls``, ``auth``...)."""
        self._alerts_undeliverable.labels(channel=channel, kind=kind).inc()

    def alerts_queued(self, n: int) -> None:
        """Messages pending in the outbox now."""
        self._alerts_queued.set(n)

    # ------------------------------------------------------------------ exposition

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` (any path, in fact) on ``host:port`` from a daemon thread.

        Raises ConfigError when the port is taken or the address cannot be bound.
        """
        try:
            server, thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"daemon.metrics_port: port {port} is in use") from None
            reason = exc.strerror or type(exc).__name__
            raise ConfigError(f"daemon.metrics_port: cannot listen on {host}:{port} ({reason})") from None
        with self._lock:
            self._server, self._thread = server, thread

    def close(self) -> None:
        """Stop the server started by :meth:`serve` (no-op if none)."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def text(self) -> str:
        """The Prometheus text exposition of this instance's registry."""
        return generate_latest(self.registry).decode()


class NullMetrics(Metrics):
    """Accepts every :class:`Metrics` call and records nothing (for code paths without metrics)."""

    def __init__(self) -> None:  # no series: an empty registry of its own
        self.registry = CollectorRegistry(auto_describe=True)

    def scan_finished(self, market: str, seconds: float, finished_at: float) -> None:
        return None

    def scan_failed(self, market: str) -> None:
        return None

    def rpc_request(self, endpoint: str, method: str) -> None:
        return None

    def rpc_error(self, endpoint: str, kind: str) -> None:
        return None

    def rpc_failover(self, from_endpoint: str, to_endpoint: str) -> None:
        return None

    def active_endpoint(self, chain: str, endpoint: str) -> None:
        return None

    def positions(self, market: str, by_severity: Mapping[str, int]) -> None:
        return None

    def alerts_delivered(self, channel: str, sent: int, failed: int) -> None:
        return None

    def alerts_queued(self, n: int) -> None:
        return None

    def delivery_failed(self, channel: str, kind: str) -> None:
        return None

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        return None

    def close(self) -> None:
        return None

    def text(self) -> str:
        return ""


NULL_METRICS: Final[Metrics] = NullMetrics()
"""The shared no-op :class:`Metrics` (a :class:`NullMetrics`)."""
