"""``liqmon doctor``: check a deployment end to end before trusting it with alerts.

Each check is one :class:`CheckRow` (check, target, status, detail, seconds); status is
``OK``, ``WARN`` (works, but something should be looked at) or ``FAIL`` (liqmon would not
work). The checks, in order:

- ``config``: the file loads and validates (a failure is the only row: nothing else can run);
- per chain and RPC endpoint (named by its display form, secrets masked):
  ``rpc`` (reachable, serves the configured chain id), ``head`` (latest block and its age:
  WARN when older than :data:`STALE_HEAD_S`), ``get_logs`` (``eth_getLogs`` of the Borrow
  events over the last ``max_log_range`` blocks: WARN with the node's message if it refuses),
  ``multicall3`` (code at ``multicall3``), ``latency`` (median ``eth_blockNumber``);
- per market: ``market`` (the PoolAddressesProvider has code and ``getPool()`` answers with a
  contract), through the first endpoint of its chain that passed ``rpc``;
- ``database``, ``db_integrity``, ``db_journal``, ``db_contents``: the history opens (and
  migrates), ``PRAGMA integrity_check``, WAL mode, row counts;
- ``channel`` per alert channel (it builds) and ``route`` per route (its destination is
  valid; with ``send_test`` a test message is sent through it, otherwise nothing is sent);
- ``delivery``, only for a channel that gave up on messages in the last
  :data:`DELIVERY_FAILURE_WINDOW_S` (chat not found, bad TLS, auth...): WARN with the newest reason.

No detail ever holds a secret: endpoints print in display form, tokens and passwords never,
and every row is passed through :func:`monitor.config.redact` as a last line of defence.
"""

from __future__ import annotations

import socket
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final, Literal, TextIO

from eth_utils.address import to_checksum_address

from monitor.alerts.channels import Channel
from monitor.alerts.console import ConsoleChannel
from monitor.alerts.factory import build_channel
from monitor.alerts.render import render_test
from monitor.chain.rpc import RpcClient, to_int
from monitor.config import ChainConfig, Config, MarketConfig, RpcEndpoint, load_config, redact
from monitor.errors import ConfigError, RpcError, RpcResponseError
from monitor.protocols.aave_v3_abi import BORROW_TOPIC, GET_POOL
from monitor.render import table
from monitor.store import Store
from monitor.store.shared import probe as probe_shared

__all__ = ["STALE_HEAD_S", "CheckRow", "Status", "exit_code", "render", "run_doctor"]

Status = Literal["OK", "WARN", "FAIL"]
STALE_HEAD_S: Final = 300.0
"""A latest block older than this (5 minutes) means the node is not following the chain."""
SLOW_RPC_MS: Final = 1000.0
"""A median ``eth_blockNumber`` round trip above this is reported as WARN."""
LATENCY_SAMPLES: Final = 3
HEADERS: Final = ("check", "target", "status", "detail", "seconds")

Outcome = tuple[Status, str]


@dataclass(frozen=True, slots=True)
class CheckRow:
    check: str
    target: str
    status: Status
    detail: str
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "target": self.target,
            "status": self.status,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
        }


def exit_code(rows: Sequence[CheckRow]) -> int:
    """0 when no row failed, 1 otherwise."""
    return 1 if any(r.status == "FAIL" for r in rows) else 0


def render(rows: Sequence[CheckRow]) -> str:
    """The rows as a table plus a one-line summary."""
    body = table([(r.check, r.target, r.status, r.detail, f"{r.seconds:.3f}") for r in rows], list(HEADERS), "<<<<>")
    counts = {s: sum(1 for r in rows if r.status == s) for s in ("OK", "WARN", "FAIL")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    return f"{body}\n\ndoctor: {summary}"


def run_doctor(
    config_path: str | Path,
    *,
    send_test: bool = False,
    offline: bool = False,
    clock: Callable[[], float] = time.time,
    stream_for_console: TextIO | None = None,
) -> list[CheckRow]:
    """Run every check of the config at ``config_path``; never raises for a failed check.

    ``stream_for_console``: where a console route's test message goes (default: stderr, so
    stdout keeps the table or the JSON). ``offline``: only the checks that need no network (the
    config, the database, the channels and routes), e.g. right after ``liqmon init``.
    """
    started = time.perf_counter()
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return [CheckRow("config", str(config_path), "FAIL", str(exc), time.perf_counter() - started)]
    doctor = _Doctor(config, send_test=send_test and not offline, clock=clock, console=stream_for_console or sys.stderr)
    doctor.offline = offline
    doctor.rows.append(
        CheckRow(
            "config", str(config_path), "OK",
            f"{len(config.chains)} chain(s), {len(config.markets)} market(s), {len(config.alerts.channels)} "
            f"channel(s), {len(config.alerts.routes)} route(s)",
            time.perf_counter() - started,
        )
    )  # fmt: skip
    doctor.run()
    return [_redacted(r, config) for r in doctor.rows]


def _redacted(row: CheckRow, config: Config) -> CheckRow:
    return CheckRow(row.check, redact(row.target, config), row.status, redact(row.detail, config), row.seconds)


class _Doctor:
    def __init__(self, config: Config, *, send_test: bool, clock: Callable[[], float], console: TextIO) -> None:
        self.config = config
        self.send_test = send_test
        self.clock = clock
        self.console = console
        self.rows: list[CheckRow] = []
        self.healthy: dict[str, RpcEndpoint] = {}  # chain -> first endpoint that passed ``rpc``

    offline = False  # no RPC, market or delivery check: what can be known without a network

    def run(self) -> None:
        if self.offline:
            self.database_checks()
            self.alert_checks()
            return
        for chain in self.config.chains.values():
            for endpoint in chain.rpc_urls:
                self.endpoint_checks(chain, endpoint)
        for market in self.config.markets:
            self.market_check(market)
        self.database_checks()
        self.alert_checks()

    def check(self, name: str, target: str, probe: Callable[[], Outcome]) -> Status:
        """Run ``probe``, time it and record its row; an exception is a FAIL with its message.

        Every exception is caught on purpose: the doctor reports, it does not crash.
        """
        started = time.perf_counter()
        try:
            status, detail = probe()
        except Exception as exc:
            status, detail = "FAIL", _error_text(exc)
        self.rows.append(CheckRow(name, target, status, detail, time.perf_counter() - started))
        return status

    # ------------------------------------------------------------------ RPC endpoints

    def endpoint_checks(self, chain: ChainConfig, endpoint: RpcEndpoint) -> None:
        target = f"{chain.name} {endpoint.display}"
        client = RpcClient(
            [endpoint], timeout=chain.request_timeout_s, max_retries=0, rate_limit_per_s=chain.rate_limit_per_s
        )
        try:
            if self.check("rpc", target, lambda: _probe_chain_id(client, chain)) == "FAIL":
                return
            self.healthy.setdefault(chain.name, endpoint)
            self.check("head", target, lambda: _probe_head(client, self.clock()))
            self.check("get_logs", target, lambda: self.probe_logs(client, chain))
            self.check("multicall3", target, lambda: _probe_multicall(client, chain))
            self.check("latency", target, lambda: _probe_latency(client))
        finally:
            client.close()

    def probe_logs(self, client: RpcClient, chain: ChainConfig) -> Outcome:
        head = client.block_number()
        first = max(0, head - chain.max_log_range + 1)
        pools = [p for p in (_pool_or_none(client, m) for m in self.config.markets if m.chain == chain.name) if p]
        query: dict[str, Any] = {"topics": [BORROW_TOPIC], "fromBlock": hex(first), "toBlock": hex(head)}
        if pools:
            query["address"] = pools
        span = f"blocks {first}-{head} ({head - first + 1} blocks, max_log_range {chain.max_log_range})"
        try:
            logs = client.request("eth_getLogs", [query])
        except RpcResponseError as exc:
            return "WARN", f"the node refused eth_getLogs over {span}: {exc}; lower max_log_range"
        except RpcError as exc:
            return (
                "FAIL",
                f"eth_getLogs over {span} failed: {exc}; if the node cannot serve the range, lower max_log_range",
            )
        if not isinstance(logs, list):
            return "FAIL", f"eth_getLogs over {span}: expected a list, got {type(logs).__name__}"
        return "OK", f"{len(logs)} Borrow log(s) in {span}"

    # ------------------------------------------------------------------ markets

    def market_check(self, market: MarketConfig) -> None:
        endpoint = self.healthy.get(market.chain)
        if endpoint is None:
            self.rows.append(
                CheckRow("market", market.name, "FAIL", f"not checked: no working RPC endpoint on chain {market.chain}",
                         0.0)
            )  # fmt: skip
            return
        chain = self.config.chain_for(market)
        client = RpcClient(
            [endpoint], timeout=chain.request_timeout_s, max_retries=0, rate_limit_per_s=chain.rate_limit_per_s
        )
        try:
            self.check("market", market.name, lambda: _probe_market(client, market))
        finally:
            client.close()

    # ------------------------------------------------------------------ database

    def database_checks(self) -> None:
        path = self.config.store.path
        target = str(path)
        existed = path.exists()
        if self.check("database", target, lambda: _probe_open(path, existed)) == "FAIL":
            return
        self.check("db_integrity", target, lambda: _probe_integrity(path))
        self.check("db_journal", target, lambda: _probe_journal(path))
        self.check("db_contents", target, lambda: _probe_contents(path))
        shared = self.config.store.history_url
        if shared is not None and not self.offline:  # a server on the network
            self.check("shared_history", shared.display, lambda: probe_shared(shared.url, self.clock()))

    # ------------------------------------------------------------------ alerts

    def alert_checks(self) -> None:
        channels: dict[str, Channel] = {}
        for name in self.config.alerts.channels:
            self.check("channel", name, partial(self.build, name, channels))
        for i, route in enumerate(self.config.alerts.routes):
            target = f"alerts.routes[{i}]"
            channel = channels.get(route.channel)
            if channel is None:
                self.rows.append(
                    CheckRow("route", target, "FAIL", f"channel {route.channel!r} did not build (see above)", 0.0)
                )
                continue
            self.check("route", target, partial(self.probe_route, channel, i))
        self.delivery_failure_checks()

    def delivery_failure_checks(self) -> None:
        """A WARN row per channel that gave up on messages in the last
        :data:`DELIVERY_FAILURE_WINDOW_S` (permanent failures: chat not found, bad TLS, auth)."""
        path = self.config.store.path
        if not path.exists():
            return
        since = self.clock() - DELIVERY_FAILURE_WINDOW_S
        try:
            with closing(_connect(path)) as db:
                failures = db.execute(
                    "SELECT channel, destination, last_error, next_attempt_at FROM outbox"
                    " WHERE status = 'failed' AND next_attempt_at >= ? ORDER BY next_attempt_at DESC",
                    [since],
                ).fetchall()
        except sqlite3.Error:
            return  # no outbox yet (or an unreadable file, reported by the database checks)
        by_channel: dict[str, list[tuple[str, str, str, float]]] = {}
        for row in failures:
            by_channel.setdefault(str(row[0]), []).append(row)
        for name in self.config.alerts.channels:
            rows = by_channel.pop(name, [])
            window = _duration(DELIVERY_FAILURE_WINDOW_S)
            if not rows:  # nothing to tell: no row (a healthy report stays short)
                continue
            _, destination, error, at = rows[0]
            ago = _duration(max(0.0, self.clock() - float(at)))
            self.rows.append(CheckRow(
                "delivery", name, "WARN",
                f"{len(rows)} message(s) given up on in the last {window}; newest {ago} ago to {destination}: "
                f"{_error_text(Exception(error or 'no reason recorded'))} (see liqmon history --alerts)",
                0.0,
            ))  # fmt: skip
        for name, rows in by_channel.items():  # channels no longer configured
            self.rows.append(CheckRow("delivery", name, "WARN",
                                      f"{len(rows)} message(s) for a channel no longer configured", 0.0))  # fmt: skip

    def build(self, name: str, channels: dict[str, Channel]) -> Outcome:
        """Build channel ``name`` into ``channels`` (the console one writes to the doctor's console stream)."""
        cfg = self.config.alerts.channels[name]
        channels[name] = ConsoleChannel(name, stream=self.console) if cfg.type == "console" else build_channel(cfg)
        where = f" ({cfg.url.display})" if cfg.url is not None else _channel_where(cfg.type, cfg.base_url, cfg.host,
                                                                                   cfg.port)  # fmt: skip
        return "OK", f"{cfg.type} channel built{where}"

    def probe_route(self, channel: Channel, index: int) -> Outcome:
        route = self.config.alerts.routes[index]
        where = f"{route.channel} -> {route.to}" if route.to else route.channel
        if route.to:
            try:
                channel.validate_destination(route.to)
            except ConfigError as exc:
                return "FAIL", f"{where}: {exc}"
        if not self.send_test:
            return "OK", f"{where}: destination valid; not sent; use --send-test"
        message = render_test(f"alerts.routes[{index}] ({where})", socket.gethostname(), self.config.source.name,
                              self.config.alerts, key=f"doctor-{index}-{int(self.clock())}")  # fmt: skip
        channel.send(message, route.to)  # DeliveryError -> FAIL with its (secret-free) message
        return "OK", f"{where}: test message delivered"


DELIVERY_FAILURE_WINDOW_S = 86_400.0
"""How far back ``doctor`` looks for messages given up on."""


# ---------------------------------------------------------------------------- probes


def _probe_chain_id(client: RpcClient, chain: ChainConfig) -> Outcome:
    actual = client.chain_id()
    if actual != chain.chain_id:
        return (
            "FAIL",
            f"serves chain id {actual}, but chains.{chain.name}.chain_id is {chain.chain_id}: fix chain_id or rpc_urls",
        )
    try:
        version = str(client.request("web3_clientVersion"))[:60]
    except RpcError:
        version = ""
    return "OK", f"chain id {actual}" + (f", {version}" if version else "")


def _probe_head(client: RpcClient, now: float) -> Outcome:
    block = client.get_block("latest")
    number = to_int(block.get("number"), "block.number")
    stamp = to_int(block.get("timestamp"), "block.timestamp")
    age = now - stamp
    if age > STALE_HEAD_S:
        return (
            "WARN",
            f"block {number} is {_duration(age)} old (more than {_duration(STALE_HEAD_S)}): is the node synced?",
        )
    if age < -60:
        return "WARN", f"block {number} is {_duration(-age)} in the future: check this machine's clock"
    return "OK", f"block {number}, {_duration(max(age, 0.0))} old"


def _probe_multicall(client: RpcClient, chain: ChainConfig) -> Outcome:
    code = _code(client, chain.multicall3)
    if not code:
        return (
            "FAIL",
            f"no contract at {chain.multicall3}: set chains.{chain.name}.multicall3 to this chain's Multicall3 address",
        )
    return "OK", f"{len(code)} bytes of code at {chain.multicall3}"


def _probe_latency(client: RpcClient) -> Outcome:
    samples = []
    for _ in range(LATENCY_SAMPLES):
        started = time.perf_counter()
        client.block_number()
        samples.append((time.perf_counter() - started) * 1000)
    median = statistics.median(samples)
    detail = f"eth_blockNumber {median:.1f} ms (median of {LATENCY_SAMPLES}, max {max(samples):.1f} ms)"
    return ("WARN", f"{detail}: slow endpoint") if median > SLOW_RPC_MS else ("OK", detail)


def _probe_market(client: RpcClient, market: MarketConfig) -> Outcome:
    provider = market.pool_addresses_provider
    if not _code(client, provider):
        return "FAIL", f"no contract at pool_addresses_provider {provider}: check the address and the chain"
    try:
        pool = str(to_checksum_address(GET_POOL.decode_one(client.eth_call(provider, GET_POOL.encode()))))
    except RpcResponseError as exc:
        return "FAIL", f"getPool() on {provider} failed ({exc}): is this an Aave V3 PoolAddressesProvider?"
    if int(pool, 16) == 0 or not _code(client, pool):
        return "FAIL", f"getPool() on {provider} returned {pool}, which has no code"
    return "OK", f"provider {provider}, pool {pool}"


def _pool_or_none(client: RpcClient, market: MarketConfig) -> str | None:
    try:
        pool = str(GET_POOL.decode_one(client.eth_call(market.pool_addresses_provider, GET_POOL.encode())))
    except Exception:  # the market check reports it
        return None
    return pool if int(pool, 16) else None


def _code(client: RpcClient, address: str) -> bytes:
    result = client.request("eth_getCode", [address, "latest"])
    if not isinstance(result, str) or not result.startswith("0x"):
        raise RpcError(f"eth_getCode: expected hex data, got {str(result)[:60]!r}")
    return bytes.fromhex(result[2:])


def _probe_open(path: Path, existed: bool) -> Outcome:
    with Store(path):
        pass
    return "OK", "opened, schema up to date" if existed else "created (did not exist yet), schema up to date"


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)


def _probe_integrity(path: Path) -> Outcome:
    with closing(_connect(path)) as db:
        result = [str(row[0]) for row in db.execute("PRAGMA integrity_check")]
    if result == ["ok"]:
        return "OK", "integrity_check: ok"
    return "FAIL", f"integrity_check: {'; '.join(result[:3])}: restore a backup or move the file away"


def _probe_journal(path: Path) -> Outcome:
    with closing(_connect(path)) as db:
        mode = str(db.execute("PRAGMA journal_mode").fetchone()[0])
    if mode.lower() == "wal":
        return "OK", "journal_mode: wal"
    return "WARN", f"journal_mode: {mode} (expected wal; readers may block the scanner)"


def _probe_contents(path: Path) -> Outcome:
    with closing(_connect(path)) as db:

        def count(sql: str) -> int:
            return int(db.execute(sql).fetchone()[0])

        pending = count("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
        counts = (
            f"markets {count('SELECT COUNT(*) FROM markets')}",
            f"positions {count('SELECT COUNT(*) FROM positions')}",
            f"alerts {count('SELECT COUNT(*) FROM alerts')}",
            f"outbox pending {pending}",
        )
    return "OK", ", ".join(counts)


# ---------------------------------------------------------------------------- helpers


def _channel_where(kind: str, base_url: str, host: str, port: int) -> str:
    if kind == "telegram":
        return f" ({base_url})"
    if kind == "email":
        return f" ({host}:{port})"
    return ""


def _error_text(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if text else type(exc).__name__


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
