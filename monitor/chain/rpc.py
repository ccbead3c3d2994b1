"""JSON-RPC transport with endpoint failover, retries and request accounting.

Retry policy (conventions: retries live here, never in readers):
- transport failures (timeout, refused, reset), HTTP 5xx / 429 and unparseable bodies are
  retried with jittered exponential backoff, moving to the next endpoint each time;
  ``Retry-After`` is honoured;
- a JSON-RPC error object is the node's answer (revert, bad params, range limit): it is
  raised at once as :class:`RpcResponseError`, except for rate-limit codes, which are retried.

Error messages name endpoints by their *display* form, so secrets in URLs never leak.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests

from monitor.errors import RpcError, RpcResponseError

RATE_LIMIT_CODES = frozenset({-32029, 429})
RATE_LIMIT_WORDS = (
    "rate limit", "too many requests", "exceeded the rps", "request limit", "requests per second", "capacity exceeded",
    "daily request count", "throttled",
)  # fmt: skip


class RpcObserver(Protocol):
    """Receives request, error and failover events (``monitor.metrics.Metrics`` implements it)."""

    def rpc_request(self, endpoint: str, method: str) -> None: ...
    def rpc_error(self, endpoint: str, kind: str) -> None: ...
    def rpc_failover(self, from_endpoint: str, to_endpoint: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An RPC URL and the form of it that may be printed (secrets replaced)."""

    url: str
    display: str

    @classmethod
    def of(cls, value: object) -> Endpoint:
        url = getattr(value, "url", value)
        display = getattr(value, "display", url)
        return cls(str(url), str(display))

    def __repr__(self) -> str:
        return f"Endpoint({self.display})"


@dataclass(slots=True)
class EndpointStats:
    """Health of one endpoint: after a failure it cools down (exponentially longer after each
    consecutive failure) and is tried again when the cooldown ends, so the preferred endpoint
    comes back on its own once it answers."""

    requests: int = 0
    errors: int = 0
    consecutive_failures: int = 0
    cooldown_until: float = 0.0
    last_error: str = ""
    next_slot: float = 0.0  # rate limit: earliest time of the next request
    by_method: Counter[str] = field(default_factory=Counter)


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None, kind: str = "transport") -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.kind = kind


class RpcClient:
    """A synchronous JSON-RPC client over one or more HTTP endpoints."""

    def __init__(
        self,
        endpoints: Sequence[object],
        *,
        timeout: float = 15.0,
        max_retries: int = 4,
        backoff_base: float = 0.2,
        backoff_cap: float = 8.0,
        rate_limit_per_s: float | None = None,
        cooldown_base: float = 1.0,
        cooldown_cap: float = 60.0,
        observer: RpcObserver | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not endpoints:
            raise RpcError("no RPC endpoint configured: add at least one URL to rpc_urls")
        self.endpoints = [Endpoint.of(e) for e in endpoints]
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.rate_limit_per_s = rate_limit_per_s
        self.cooldown_base = cooldown_base
        self.cooldown_cap = cooldown_cap
        self.observer = observer
        self._sleep = sleep
        self._rng = rng
        self._clock = clock
        self._ids = itertools.count(1)
        self._active = 0
        self._lock = threading.Lock()
        self._session = requests.Session()
        self.stats = {e.display: EndpointStats() for e in self.endpoints}
        self.method_counts: Counter[str] = Counter()

    # -- public API -----------------------------------------------------------------------

    def request(self, method: str, params: Sequence[Any] = ()) -> Any:
        """Send one call; return its ``result`` or raise RpcError / RpcResponseError."""
        self.method_counts[method] += 1
        payload = {
            "jsonrpc": "2.0",
            "id": next(self._ids),
            "method": method,
            "params": list(params),
        }
        body = self._send_with_retries(payload, method)
        return _result_of(body, method)

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Send a JSON-RPC batch; results in call order. Any error object raises."""
        if not calls:
            return []
        first_id = next(self._ids)
        payload = [
            {"jsonrpc": "2.0", "id": first_id + i, "method": m, "params": list(p)} for i, (m, p) in enumerate(calls)
        ]
        self._ids = itertools.count(first_id + len(calls))
        for method, _ in calls:
            self.method_counts[method] += 1
        body = self._send_with_retries(payload, "batch")
        if not isinstance(body, list):
            if isinstance(body, dict) and "error" in body:
                _result_of(body, "batch")
            raise RpcError(f"batch request: expected a JSON list, got {type(body).__name__}")
        by_id = {item["id"]: item for item in body if isinstance(item, dict) and isinstance(item.get("id"), int)}
        results = []
        for i, (method, _) in enumerate(calls):
            item = by_id.get(first_id + i)
            if item is None:
                raise RpcError(f"batch request: no answer for call {i} ({method})")
            results.append(_result_of(item, method))
        return results

    def close(self) -> None:
        self._session.close()

    def check_chain_id(self, expected: int) -> list[str]:
        """Ask EVERY endpoint for its chain id. A node on another chain is a config error
        (RpcError naming it); an unreachable one starts cooling down (failover) and is
        reported in the returned warnings; all unreachable is an RpcError."""
        warnings: list[str] = []
        for endpoint in self.endpoints:
            stats = self.stats[endpoint.display]
            try:
                body = self._post(
                    endpoint, {"jsonrpc": "2.0", "id": next(self._ids), "method": "eth_chainId", "params": []}
                )
                actual = _to_int(_result_of(body, "eth_chainId"), "eth_chainId")
            except _Retryable as exc:
                self._failed(endpoint, stats, exc)
                warnings.append(f"{endpoint.display}: {exc.reason}")
                continue
            if actual != expected:
                raise RpcError(
                    f"the node at {endpoint.display} serves chain {actual}, not the configured chain {expected}"
                )
        if len(warnings) == len(self.endpoints):
            raise RpcError(f"no RPC endpoint answered eth_chainId ({'; '.join(warnings)}); check rpc_urls")
        return warnings

    @property
    def total_requests(self) -> int:
        return sum(self.method_counts.values())

    # -- convenience ----------------------------------------------------------------------

    def chain_id(self) -> int:
        return _to_int(self.request("eth_chainId"), "eth_chainId")

    def block_number(self) -> int:
        return _to_int(self.request("eth_blockNumber"), "eth_blockNumber")

    def get_block(self, block: int | str) -> dict[str, Any]:
        tag = hex(block) if isinstance(block, int) else block
        result = self.request("eth_getBlockByNumber", [tag, False])
        if result is None:
            raise RpcError(f"eth_getBlockByNumber({block}): block not found on the node")
        if not isinstance(result, dict) or not result:
            raise RpcError(f"eth_getBlockByNumber({block}): expected a block object, got {str(result)[:60]!r}")
        return result

    def eth_call(self, to: str, data: bytes, block: int | str = "latest", gas: int | None = None) -> bytes:
        tag = hex(block) if isinstance(block, int) else block
        call: dict[str, Any] = {"to": to, "data": "0x" + data.hex()}
        if gas is not None:
            call["gas"] = hex(gas)
        result = self.request("eth_call", [call, tag])
        return _hex_bytes(result, "eth_call")

    # -- internals ------------------------------------------------------------------------

    def _send_with_retries(self, payload: object, what: str) -> Any:
        failures: list[str] = []
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            endpoint = self._pick()
            stats = self.stats[endpoint.display]
            self._throttle(stats)
            stats.requests += 1
            stats.by_method[what] += 1
            if self.observer is not None:
                self.observer.rpc_request(endpoint.display, what)
            try:
                body = self._post(endpoint, payload)
                if isinstance(body, dict) and _is_rate_limited(body.get("error")):
                    raise _Retryable("rate limited (JSON-RPC error)", kind="429")
            except _Retryable as exc:
                self._failed(endpoint, stats, exc)
                failures.append(f"{endpoint.display}: {exc.reason}")
                if attempt + 1 < attempts:
                    self._sleep(self._backoff(attempt, exc.retry_after))
                continue
            stats.consecutive_failures = 0
            stats.cooldown_until = 0.0
            return body
        tried = "; ".join(dict.fromkeys(failures[-2 * len(self.endpoints) :]))
        raise RpcError(
            f"{what}: no RPC endpoint answered after {attempts} attempts ({tried}); "
            "check the node URL and that it is reachable"
        )

    def _failed(self, endpoint: Endpoint, stats: EndpointStats, exc: _Retryable) -> None:
        stats.errors += 1
        stats.consecutive_failures += 1
        stats.last_error = exc.reason
        cooldown = min(self.cooldown_cap, self.cooldown_base * (1 << min(stats.consecutive_failures - 1, 16)))
        stats.cooldown_until = self._clock() + max(cooldown, exc.retry_after or 0.0)
        if self.observer is not None:
            self.observer.rpc_error(endpoint.display, exc.kind)

    def _throttle(self, stats: EndpointStats) -> None:
        """Per-endpoint request-rate limit (``rate_limit_per_s`` from the config)."""
        if not self.rate_limit_per_s:
            return
        with self._lock:
            now = self._clock()
            wait = stats.next_slot - now
            stats.next_slot = max(now, stats.next_slot) + 1.0 / self.rate_limit_per_s
        if wait > 0:
            self._sleep(wait)

    def _post(self, endpoint: Endpoint, payload: object) -> Any:
        try:
            response = self._session.post(
                endpoint.url,
                data=json.dumps(payload),
                headers={"Content-Type": "application/json"},
                timeout=self.timeout,
            )
        except requests.Timeout as exc:
            raise _Retryable(f"timed out after {self.timeout:g} s", kind="timeout") from exc
        except requests.ConnectionError as exc:
            raise _Retryable(_connection_reason(exc), kind="connection") from exc
        except requests.RequestException as exc:
            raise _Retryable(type(exc).__name__, kind="transport") from exc
        status = response.status_code
        if status == 429:
            raise _Retryable("HTTP 429 Too Many Requests", _retry_after(response), kind="429")
        if status == 413:  # the request is too big for this node: the caller must send less, not retry
            raise RpcResponseError(f"request too large for {endpoint.display} (HTTP 413)", 413)
        if status >= 500:
            raise _Retryable(f"HTTP {status}", _retry_after(response), kind="5xx")
        if status >= 400 and status != 400:
            raise _Retryable(f"HTTP {status}", kind="4xx")
        try:
            return response.json()
        except (ValueError, RecursionError) as exc:
            raise _Retryable("answer is not JSON (truncated or an error page)", kind="bad_json") from exc

    def _pick(self) -> Endpoint:
        """The first endpoint, in configured order of preference, that is not cooling down;
        when all are, the one whose cooldown ends first."""
        with self._lock:
            now = self._clock()
            healthy = [i for i, e in enumerate(self.endpoints) if self.stats[e.display].cooldown_until <= now]
            if healthy:
                chosen = healthy[0]
            else:
                chosen = min(
                    range(len(self.endpoints)), key=lambda i: self.stats[self.endpoints[i].display].cooldown_until
                )
            if chosen != self._active:
                if self.observer is not None:
                    self.observer.rpc_failover(self.endpoints[self._active].display, self.endpoints[chosen].display)
                self._active = chosen
            return self.endpoints[chosen]

    @property
    def active_endpoint(self) -> Endpoint:
        return self.endpoints[self._active]

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        delay = min(self.backoff_cap, self.backoff_base * (1 << attempt))
        delay = delay * (0.5 + self._rng() / 2)  # jitter in [delay/2, delay]
        if retry_after is not None:
            delay = max(delay, min(retry_after, 60.0))
        return delay


def _result_of(body: Any, method: str) -> Any:
    if not isinstance(body, dict):
        raise RpcError(f"{method}: expected a JSON object, got {type(body).__name__}")
    error = body.get("error")
    if error is not None:
        if isinstance(error, dict):
            message = str(error.get("message", "unknown error"))
            code = error.get("code")
            raise RpcResponseError(
                f"{method}: node error {code}: {message}",
                code if isinstance(code, int) else None,
                error.get("data"),
            )
        raise RpcResponseError(f"{method}: node error: {error}")
    if "result" not in body:
        raise RpcError(f"{method}: answer has neither result nor error")
    return body["result"]


def _is_rate_limited(error: object) -> bool:
    """A JSON-RPC error that means "slow down" (retried), as opposed to the node's answer.
    Infura's -32005 is also "query returned more than 10000 results" (a range error for the
    caller to handle), so the code alone does not decide: the message does."""
    if not isinstance(error, dict):
        return False
    message = str(error.get("message", "")).lower()
    code = error.get("code")
    if isinstance(code, int) and code in RATE_LIMIT_CODES:
        return True
    return any(word in message for word in RATE_LIMIT_WORDS)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _connection_reason(exc: Exception) -> str:
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "reset" in text or "aborted" in text:
        return "connection reset"
    if "name or service" in text or "nodename" in text or "resolve" in text:
        return "host name not found"
    return "connection failed"


_QUANTITY = re.compile(r"0x[0-9a-fA-F]{1,16}")  # block numbers, timestamps, ids, indexes: < 2**64
_DATA = re.compile(r"0x(?:[0-9a-fA-F]{2})*")


def _to_int(value: Any, what: str) -> int:
    if isinstance(value, str) and _QUANTITY.fullmatch(value):
        return int(value, 16)
    raise RpcError(f"{what}: expected a hex quantity below 2**64, got {str(value)[:60]!r}")


def _hex_bytes(value: Any, what: str) -> bytes:
    if isinstance(value, str) and _DATA.fullmatch(value):
        return bytes.fromhex(value[2:])
    raise RpcError(f"{what}: expected hex data, got {str(value)[:60]!r}")


def to_int(value: Any, what: str) -> int:
    """Public form of the hex-quantity parser for readers."""
    return _to_int(value, what)
