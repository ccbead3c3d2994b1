"""Metrics: each call shows in the exposition text, registries are independent, /metrics is served."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from monitor.errors import ConfigError
from monitor.metrics import NULL_METRICS, SEVERITIES, Metrics, NullMetrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition text: (name, sorted labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.text())
        for s in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    m = Metrics()
    yield m
    m.close()


def test_scan_finished_observes_duration_and_timestamp(metrics: Metrics) -> None:
    assert value(metrics, "liqmon_scan_duration_seconds_count", market="aave-eth") is None
    metrics.scan_finished("aave-eth", 1.5, 1_700_000_000.0)
    metrics.scan_finished("aave-eth", 0.2, 1_700_000_012.0)
    assert value(metrics, "liqmon_scan_duration_seconds_count", market="aave-eth") == 2
    assert value(metrics, "liqmon_scan_duration_seconds_sum", market="aave-eth") == pytest.approx(1.7)
    assert value(metrics, "liqmon_scan_duration_seconds_bucket", market="aave-eth", le="0.25") == 1
    assert value(metrics, "liqmon_scan_duration_seconds_bucket", market="aave-eth", le="+Inf") == 2
    assert value(metrics, "liqmon_last_successful_scan_timestamp_seconds", market="aave-eth") == 1_700_000_012.0


def test_scan_failed_counts(metrics: Metrics) -> None:
    metrics.scan_failed("m1")
    metrics.scan_failed("m1")
    metrics.scan_failed("m2")
    assert value(metrics, "liqmon_scan_failures_total", market="m1") == 2
    assert value(metrics, "liqmon_scan_failures_total", market="m2") == 1
    # A failure does not pretend a scan succeeded.
    assert value(metrics, "liqmon_last_successful_scan_timestamp_seconds", market="m1") is None


def test_rpc_counters(metrics: Metrics) -> None:
    endpoint = "https://eth.example/v2/<secret>"
    metrics.rpc_request(endpoint, "eth_call")
    metrics.rpc_request(endpoint, "eth_call")
    metrics.rpc_request(endpoint, "eth_getLogs")
    metrics.rpc_error(endpoint, "timeout")
    metrics.rpc_failover(endpoint, "http://backup:8545")
    assert value(metrics, "liqmon_rpc_requests_total", endpoint=endpoint, method="eth_call") == 2
    assert value(metrics, "liqmon_rpc_requests_total", endpoint=endpoint, method="eth_getLogs") == 1
    assert value(metrics, "liqmon_rpc_errors_total", endpoint=endpoint, kind="timeout") == 1
    assert value(metrics, "liqmon_rpc_failovers_total", **{"from": endpoint, "to": "http://backup:8545"}) == 1
    assert 'liqmon_rpc_failovers_total{from="https://eth.example/v2/<secret>",to="http://backup:8545"} 1.0' in (
        metrics.text()
    )


def test_active_endpoint_is_one_hot_per_chain(metrics: Metrics) -> None:
    metrics.active_endpoint("eth", "http://a")
    assert value(metrics, "liqmon_rpc_active_endpoint", chain="eth", endpoint="http://a") == 1
    metrics.active_endpoint("eth", "http://b")
    metrics.active_endpoint("base", "http://c")
    assert value(metrics, "liqmon_rpc_active_endpoint", chain="eth", endpoint="http://a") == 0
    assert value(metrics, "liqmon_rpc_active_endpoint", chain="eth", endpoint="http://b") == 1
    assert value(metrics, "liqmon_rpc_active_endpoint", chain="base", endpoint="http://c") == 1
    metrics.active_endpoint("eth", "http://a")
    assert value(metrics, "liqmon_rpc_active_endpoint", chain="eth", endpoint="http://a") == 1
    assert value(metrics, "liqmon_rpc_active_endpoint", chain="eth", endpoint="http://b") == 0
    assert value(metrics, "liqmon_rpc_active_endpoint", chain="base", endpoint="http://c") == 1


def test_positions_sets_every_severity(metrics: Metrics) -> None:
    assert SEVERITIES == ("ok", "watch", "warning", "critical", "liquidatable")
    metrics.positions("m", {"ok": 90, "warning": 7, "liquidatable": 3, "anomaly": 5})
    got = {s: value(metrics, "liqmon_positions", market="m", severity=s) for s in SEVERITIES}
    assert got == {"ok": 90, "watch": 0, "warning": 7, "critical": 0, "liquidatable": 3}
    assert value(metrics, "liqmon_positions", market="m", severity="anomaly") is None
    metrics.positions("m", {"ok": 100})  # the next scan replaces, it does not add
    got = {s: value(metrics, "liqmon_positions", market="m", severity=s) for s in SEVERITIES}
    assert got == {"ok": 100, "watch": 0, "warning": 0, "critical": 0, "liquidatable": 0}


def test_alert_counters_and_queue(metrics: Metrics) -> None:
    metrics.alerts_delivered("desk", 3, 0)
    metrics.alerts_delivered("desk", 1, 2)
    metrics.alerts_delivered("mail", 0, 0)
    assert value(metrics, "liqmon_alerts_sent_total", channel="desk") == 4
    assert value(metrics, "liqmon_alerts_failed_total", channel="desk") == 2
    assert value(metrics, "liqmon_alerts_sent_total", channel="mail") == 0  # the series exists from the first call
    with pytest.raises(ValueError, match="negative"):
        metrics.alerts_delivered("desk", -1, 0)
    metrics.alerts_queued(5)
    assert value(metrics, "liqmon_alerts_queued") == 5
    metrics.alerts_queued(0)
    assert value(metrics, "liqmon_alerts_queued") == 0


def test_registries_are_independent_and_not_global() -> None:
    a, b = Metrics(), Metrics()
    a.scan_failed("m")
    assert value(a, "liqmon_scan_failures_total", market="m") == 1
    assert value(b, "liqmon_scan_failures_total", market="m") is None
    assert a.registry is not b.registry
    assert a.registry is not REGISTRY
    assert REGISTRY.get_sample_value("liqmon_scan_failures_total", {"market": "m"}) is None


def test_null_metrics_accepts_everything_and_records_nothing() -> None:
    public = {n for n in vars(Metrics) if not n.startswith("_")}
    assert public <= set(vars(NullMetrics)), "NullMetrics must override every Metrics method"
    assert isinstance(NULL_METRICS, Metrics)
    NULL_METRICS.scan_finished("m", 1.0, 2.0)
    NULL_METRICS.scan_failed("m")
    NULL_METRICS.rpc_request("e", "eth_call")
    NULL_METRICS.rpc_error("e", "timeout")
    NULL_METRICS.rpc_failover("a", "b")
    NULL_METRICS.active_endpoint("c", "e")
    NULL_METRICS.positions("m", {"ok": 1})
    NULL_METRICS.alerts_delivered("c", 1, 1)
    NULL_METRICS.alerts_queued(3)
    NULL_METRICS.serve(free_port())  # does not listen
    NULL_METRICS.close()
    assert NULL_METRICS.text() == ""
    assert list(NULL_METRICS.registry.collect()) == []


def test_serve_answers_http_with_the_metrics(metrics: Metrics) -> None:
    port = free_port()
    metrics.serve(port)
    metrics.scan_failed("served")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        body = response.read().decode()
    assert 'liqmon_scan_failures_total{market="served"} 1.0' in body
    metrics.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_serve_port_in_use_is_a_config_error(metrics: Metrics) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"^daemon\.metrics_port: port {port} is in use$"):
            metrics.serve(port)


def test_serve_twice_on_one_port_is_a_config_error() -> None:
    a, b = Metrics(), Metrics()
    port = free_port()
    try:
        a.serve(port)
        with pytest.raises(ConfigError, match="is in use"):
            b.serve(port)
    finally:
        a.close()
        b.close()
