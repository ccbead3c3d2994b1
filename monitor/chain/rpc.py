"""JSON-RPC transport with endpoint failover, retries and request accounting.

Retry policy (conventions: retries live here, never in readers):
- transport failures (timeout, refused, reset), HTTP 5xx / 429 and unparseable bodies are
  retried with jittered exponential backoff, moving to the next endpoint each time;
  ``Retry-After`` is honoured. Retries are a *budget*: at least ``max_retries`` retries,
  and more as long as ``retry_budget_s`` seconds since the first attempt are not spent, so
  a burst of faults does not fail a scan while a dead node still fails in bounded time;
- each HTTP attempt has ONE deadline (``timeout``: connect + send + the whole answer), the
  body is capped (``max_response_bytes``) and read as a stream, redirects are refused
  (:mod:`monitor.chain.http`);
- a JSON-RPC error object is the node's answer (revert, bad params, range limit): it is
  raised at once as :class:`RpcResponseError`, except for rate-limit codes, which are retried;
- an answer that does not fit the question (``check`` of :meth:`RpcClient.request`: logs of
  another contract, a block outside the range, a malformed hash) is a lie or a bug of that
  endpoint: it is asked no more within the request, the next endpoint is, and when none
  is left the error says what was wrong;
- the head of every endpoint is tracked; reads pinned to block N (``min_block``) skip
  endpoints known to be behind N; a ``null`` block above an endpoint's head is lag;
- the chain id is re-checked when the client fails over to another endpoint: a node that
  now serves another chain is dropped for the life of the client;
- the client is safe to share between threads: :meth:`RpcClient.run_concurrently` runs work
  (e.g. the batches of one multicall read) on a bounded pool, and at most
  ``max_concurrent_requests`` HTTP requests are in flight per endpoint whoever sends them
  (request ids, counters and endpoint health are updated under a lock; each request has its
  own pooled connection).

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
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from monitor.chain.http import HttpFailure, HttpTransport, mask_url
from monitor.errors import MonitorError, RpcError, RpcResponseError

DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024
"""The library's cap on one answer (devnet state dumps included); configs default lower
(``chains.<name>.max_response_bytes``)."""

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
    head: int | None = None  # the newest block this endpoint is known to have
    disabled: str = ""  # why this endpoint is not used any more (it serves another chain)


class _Retryable(Exception):
    def __init__(
        self, reason: str, retry_after: float | None = None, kind: str = "transport", *, final: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.kind = kind
        self.final = final  # the same endpoint would answer the same: ask the others only


class Lagging(RpcError):
    """Raised by a ``check``: this endpoint has not got the block yet (its head is lower)."""

    def __init__(self, message: str, head: int) -> None:
        super().__init__(message)
        self.head = head


Finish = Callable[[Any], Any]
_T = TypeVar("_T")
_R = TypeVar("_R")
DEFAULT_MAX_CONCURRENT_REQUESTS = 4
"""HTTP requests in flight at once per endpoint (``chains.<name>.max_concurrent_requests``)."""
_POOL = threading.local()  # .inside: this thread is one of a client's pool workers

START_BUDGET_S = 6.0
"""At most this long (seconds) is spent retrying the start-up chain-id check when no
endpoint answered at once: a passing fault is ridden out, a dead node fails fast."""


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
        retry_budget_s: float | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        observer: RpcObserver | None = None,
        max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
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
        self.retry_budget_s = retry_budget_s
        self.observer = observer
        self.expected_chain_id: int | None = None  # set by check_chain_id; re-checked on failover
        self._sleep = sleep
        self._rng = rng
        self._clock = clock
        self._ids = itertools.count(1)
        self._active = 0
        self._active_checked = 0  # the endpoint whose chain id was checked last (on failover)
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()  # request ids, method counts, endpoint counters
        self._http = HttpTransport(max_response_bytes)
        self.stats = {e.display: EndpointStats() for e in self.endpoints}
        self.method_counts: Counter[str] = Counter()
        self.max_concurrent_requests = max(1, int(max_concurrent_requests))
        self._in_flight = {e.display: threading.BoundedSemaphore(self.max_concurrent_requests)
                           for e in self.endpoints}  # fmt: skip
        self._executor: ThreadPoolExecutor | None = None
        self.peak_in_flight = 0  # the most HTTP requests this client had in flight at once
        self._in_flight_now = 0

    # -- public API -----------------------------------------------------------------------

    def request(
        self,
        method: str,
        params: Sequence[Any] = (),
        *,
        min_block: int | None = None,
        check: Callable[[Any], None] | None = None,
    ) -> Any:
        """Send one call; return its ``result`` or raise RpcError / RpcResponseError.

        ``min_block``: the call reads block N, so endpoints known to be behind N are skipped
        while another one has it. ``check(result)`` raises a MonitorError when the answer
        does not fit the question; that endpoint is then not asked again for this call.
        """
        return self.request_from(method, params, min_block=min_block, check=check)[0]

    def request_from(
        self,
        method: str,
        params: Sequence[Any] = (),
        *,
        min_block: int | None = None,
        check: Callable[[Any], None] | None = None,
        only: Endpoint | None = None,
        budget_s: float | None = None,
    ) -> tuple[Any, Endpoint]:
        """:meth:`request`, also naming the endpoint that answered; ``only`` asks that one;
        ``budget_s`` replaces the retry budget for this call.
        Without ``min_block``, a call pinned to a block number (eth_call, eth_getLogs'
        toBlock, eth_getBlockByNumber...) is routed as if ``min_block`` were that number."""
        if min_block is None:
            min_block = _pinned_block(method, params)
        with self._count_lock:
            self.method_counts[method] += 1
            request_id = next(self._ids)
        payload = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}

        def finish(body: Any) -> Any:
            result = _result_of(body, method)
            if check is not None:
                check(result)
            return result

        result, endpoint = self._send_with_retries(
            payload, method, finish, min_block=min_block, only=only, budget_s=budget_s
        )
        self._note_answer(endpoint, method, result)
        return result, endpoint

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]], *, min_block: int | None = None) -> list[Any]:
        """Send a JSON-RPC batch; results in call order. Any error object raises."""
        return self.batch_from(calls, min_block=min_block)[0]

    def batch_from(
        self,
        calls: Sequence[tuple[str, Sequence[Any]]],
        *,
        min_block: int | None = None,
        check: Callable[[list[Any]], None] | None = None,
        only: Endpoint | None = None,
    ) -> tuple[list[Any], Endpoint]:
        """:meth:`batch`, all calls answered by ONE endpoint, which is named."""
        if not calls:
            return [], only or self.active_endpoint
        with self._count_lock:
            first_id = next(self._ids)
            self._ids = itertools.count(first_id + len(calls))
            for method, _ in calls:
                self.method_counts[method] += 1
        payload = [
            {"jsonrpc": "2.0", "id": first_id + i, "method": m, "params": list(p)} for i, (m, p) in enumerate(calls)
        ]

        def finish(body: Any) -> list[Any]:
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
            if check is not None:
                check(results)
            return results

        results, endpoint = self._send_with_retries(payload, "batch", finish, min_block=min_block, only=only)
        for (method, _), result in zip(calls, results, strict=True):
            self._note_answer(endpoint, method, result)
        return results, endpoint

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        self._http.close()

    def _next_id(self) -> int:
        with self._count_lock:
            return next(self._ids)

    def run_concurrently(self, work: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
        """``work(item)`` for every item, up to ``max_concurrent_requests`` at once on the
        client's pool; results in ``items`` order. The first failure (in ``items`` order) is
        raised once every started item has finished; items not started yet are cancelled.
        Called from a pool worker (nested), or with one slot, it runs the items one by one."""
        todo = list(items)
        if self.max_concurrent_requests == 1 or len(todo) < 2 or getattr(_POOL, "inside", False):
            return [work(item) for item in todo]
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.max_concurrent_requests, thread_name_prefix="liqmon-rpc")
            executor = self._executor

        def run(item: _T) -> _R:
            _POOL.inside = True
            try:
                return work(item)
            finally:
                _POOL.inside = False

        futures: list[Future[_R]] = [executor.submit(run, item) for item in todo]
        results: list[_R] = []
        failure: BaseException | None = None
        for future in futures:
            if failure is not None:
                future.cancel()
                continue
            try:
                results.append(future.result())
            except BaseException as exc:  # re-raised below, once the started ones stopped
                failure = exc
                for rest in futures:
                    rest.cancel()
        if failure is not None:
            wait(futures)  # started ones finish (their connections go back to the pool) first
            raise failure
        return results

    def distrust(self, endpoint: Endpoint, reason: str) -> None:
        """``endpoint`` gave answers that contradict themselves: it cools down for the longest
        cooldown, so the other endpoints serve meanwhile (it stays the last resort)."""
        stats = self.stats[endpoint.display]
        stats.errors += 1
        stats.last_error = reason
        stats.cooldown_until = self._clock() + self.cooldown_cap
        if self.observer is not None:
            self.observer.rpc_error(endpoint.display, "distrusted")

    def usable_endpoints(self) -> list[Endpoint]:
        """The endpoints not dropped (a node found on another chain is dropped)."""
        return [e for e in self.endpoints if not self.stats[e.display].disabled]

    def heads(self) -> dict[str, int]:
        """Ask every usable endpoint for its head once (no retries); {display: head}.
        Endpoints that do not answer are left out (and cool down)."""
        heads: dict[str, int] = {}
        now = self._clock()
        for endpoint in self.usable_endpoints():
            stats = self.stats[endpoint.display]
            if stats.cooldown_until > now:
                continue  # failing lately: not waited for (the reads fail over as usual)
            try:
                body = self._post(endpoint, {"jsonrpc": "2.0", "id": self._next_id(), "method": "eth_blockNumber",
                                             "params": []})  # fmt: skip
                head = _to_int(_result_of(body, "eth_blockNumber"), "eth_blockNumber")
            except _Retryable as exc:
                self._failed(endpoint, stats, exc)
                continue
            except MonitorError:
                continue
            stats.head = head
            heads[endpoint.display] = head
        return heads

    def freshest_head(self) -> int:
        """The highest head among the endpoints (each asked once); with none answering, the
        head through the ordinary retries. Reads pinned to it then skip lagging endpoints."""
        heads = self.heads()
        return max(heads.values()) if heads else self.block_number()

    def check_chain_id(self, expected: int) -> list[str]:
        """Ask EVERY endpoint for its chain id. A node on another chain is a config error
        (RpcError naming it); an unreachable one starts cooling down (failover) and is
        reported in the returned warnings; all unreachable is an RpcError."""
        self.expected_chain_id = expected
        warnings: list[str] = []
        for endpoint in self.endpoints:
            stats = self.stats[endpoint.display]
            try:
                body = self._post(
                    endpoint, {"jsonrpc": "2.0", "id": self._next_id(), "method": "eth_chainId", "params": []}
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
            # none answered at once: the ordinary retries (budget, failover) decide, so a
            # passing fault at start-up is ridden out like any other
            try:
                budget = None if self.retry_budget_s is None else min(self.retry_budget_s, START_BUDGET_S)
                answer, endpoint = self.request_from("eth_chainId", budget_s=budget)
            except RpcError as exc:
                raise RpcError(
                    f"no RPC endpoint answered eth_chainId ({'; '.join(warnings)}; then: {exc}); check rpc_urls"
                ) from None
            actual = _to_int(answer, "eth_chainId")
            if actual != expected:
                raise RpcError(
                    f"the node at {endpoint.display} serves chain {actual}, not the configured chain {expected}"
                )
            warnings = [w for w in warnings if not w.startswith(f"{endpoint.display}: ")]
        return warnings

    @property
    def total_requests(self) -> int:
        with self._count_lock:
            return sum(self.method_counts.values())

    # -- convenience ----------------------------------------------------------------------

    def chain_id(self) -> int:
        return _to_int(self.request("eth_chainId"), "eth_chainId")

    def block_number(self) -> int:
        return _to_int(self.request("eth_blockNumber"), "eth_blockNumber")

    def get_block(self, block: int | str) -> dict[str, Any]:
        """A block object with a checked ``number`` and 32-byte ``hash``. A ``null`` answer
        for block N is that endpoint lagging: the others are asked; RpcError when none has it."""
        tag = hex(block) if isinstance(block, int) else block

        def check(result: Any) -> None:
            if result is None and isinstance(block, int):
                known = self.stats[self.active_endpoint.display].head
                raise Lagging(f"eth_getBlockByNumber({block}): block not found on the node (it lags)",
                              block - 1 if known is None else min(known, block - 1))  # fmt: skip
            if result is None:
                raise RpcError(f"eth_getBlockByNumber({block}): block not found on the node")
            check_block_object(result, f"eth_getBlockByNumber({block})")
            if isinstance(block, int) and _to_int(result.get("number"), "block.number") != block:
                raise RpcError(f"eth_getBlockByNumber({block}): the node answered block {result.get('number')!r}")

        try:
            result: dict[str, Any] = self.request_from(
                "eth_getBlockByNumber", [tag, False], min_block=block if isinstance(block, int) else None, check=check
            )[0]
        except Lagging as exc:
            raise RpcError(f"{exc}; no endpoint has block {block} yet: retry later") from None
        if block == "latest":
            self.stats[self.active_endpoint.display].head = _to_int(result["number"], "block.number")
        return result

    def eth_call(self, to: str, data: bytes, block: int | str = "latest", gas: int | None = None) -> bytes:
        tag = hex(block) if isinstance(block, int) else block
        call: dict[str, Any] = {"to": to, "data": "0x" + data.hex()}
        if gas is not None:
            call["gas"] = hex(gas)
        result = self.request_from(
            "eth_call", [call, tag], min_block=block if isinstance(block, int) else None, check=_check_hex_data
        )[0]
        return _hex_bytes(result, "eth_call")

    # -- internals ------------------------------------------------------------------------

    def _send_with_retries(
        self,
        payload: object,
        what: str,
        finish: Finish,
        *,
        min_block: int | None = None,
        only: Endpoint | None = None,
        budget_s: float | None = None,
    ) -> tuple[Any, Endpoint]:
        started = self._clock()
        budget = self.retry_budget_s if budget_s is None else budget_s
        failures: list[str] = []
        done: set[int] = set()  # endpoints not to ask again for this call
        invalid: MonitorError | None = None
        attempt = 0
        while True:
            index = self._pick(done, min_block, only)
            if index is None:
                break
            endpoint = self.endpoints[index]
            stats = self.stats[endpoint.display]
            if not self._chain_still_right(index):
                done.add(index)
                continue
            self._throttle(stats)
            with self._count_lock:
                stats.requests += 1
                stats.by_method[what] += 1
            if self.observer is not None:
                self.observer.rpc_request(endpoint.display, what)
            try:
                body = self._post(endpoint, payload)
                if isinstance(body, dict) and _is_rate_limited(body.get("error")):
                    raise _Retryable("rate limited (JSON-RPC error)", kind="429")
                result = finish(body)
            except _Retryable as exc:
                self._failed(endpoint, stats, exc)
                failures.append(f"{endpoint.display}: {exc.reason}")
                if exc.final:
                    done.add(index)
                attempt += 1
                delay = self._backoff(attempt - 1, exc.retry_after)
                if not self._may_retry(attempt, started, delay, budget):
                    break
                if not (exc.final and self._pick(done, min_block, only) is not None):
                    self._sleep(delay)  # a final failure moves on to the next endpoint at once
                continue
            except RpcResponseError:
                self._succeeded(stats)  # the node answered; the answer is an error object
                raise
            except Lagging as exc:
                stats.head = exc.head if stats.head is None else min(stats.head, exc.head)
                invalid = exc
                done.add(index)
                if self.observer is not None:
                    self.observer.rpc_error(endpoint.display, "lag")
                continue
            except MonitorError as exc:  # the answer does not fit the question
                self._failed(endpoint, stats, _Retryable(str(exc), kind="invalid"))
                invalid = _named(exc, endpoint)
                done.add(index)
                continue
            self._succeeded(stats)
            return result, endpoint
        disabled = [f"{e.display}: {self.stats[e.display].disabled}" for e in self.endpoints
                    if self.stats[e.display].disabled]  # fmt: skip
        if invalid is not None and not failures and not disabled:
            raise invalid
        if not failures and invalid is None:
            raise RpcError(f"{what}: no usable RPC endpoint ({'; '.join(disabled)}); fix rpc_urls or chain_id")
        tried = "; ".join([*dict.fromkeys(failures[-2 * len(self.endpoints) :]), *disabled,
                           *([str(invalid)] if invalid is not None else [])])  # fmt: skip
        elapsed = self._clock() - started
        raise RpcError(
            f"{what}: no RPC endpoint answered after {attempt} attempt(s) in {elapsed:.1f} s ({tried}); "
            "check the node URL and that it is reachable"
        )

    def _may_retry(self, attempts: int, started: float, delay: float, budget: float | None) -> bool:
        """``max_retries`` retries always; more while the retry budget (seconds) lasts."""
        if attempts <= self.max_retries:
            return True
        if budget is None:
            return False
        return self._clock() - started + delay < budget

    def _succeeded(self, stats: EndpointStats) -> None:
        stats.consecutive_failures = 0
        stats.cooldown_until = 0.0

    def _note_answer(self, endpoint: Endpoint, method: str, result: Any) -> None:
        if method == "eth_blockNumber" and isinstance(result, str) and _QUANTITY.fullmatch(result):
            self.stats[endpoint.display].head = int(result, 16)

    def _chain_still_right(self, index: int) -> bool:
        """On failover (another endpoint than the active one), ask the new one its chain id.
        Another chain: the endpoint is dropped for good. No answer: it is tried anyway (the
        request itself will fail over if it is down)."""
        if self.expected_chain_id is None or index == self._active_checked:
            return True
        endpoint = self.endpoints[index]
        stats = self.stats[endpoint.display]
        try:
            body = self._post(endpoint, {"jsonrpc": "2.0", "id": self._next_id(), "method": "eth_chainId",
                                         "params": []})  # fmt: skip
            actual = _to_int(_result_of(body, "eth_chainId"), "eth_chainId")
        except (_Retryable, MonitorError):
            return True
        if actual != self.expected_chain_id:
            stats.disabled = f"serves chain {actual}, not the configured chain {self.expected_chain_id}"
            if self.observer is not None:
                self.observer.rpc_error(endpoint.display, "wrong_chain")
            return False
        self._active_checked = index
        return True

    def _failed(self, endpoint: Endpoint, stats: EndpointStats, exc: _Retryable) -> None:
        with self._count_lock:
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
        body = json.dumps(payload).encode()
        slots = self._in_flight[endpoint.display]
        slots.acquire()  # at most max_concurrent_requests in flight to this endpoint
        with self._count_lock:
            self._in_flight_now += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight_now)
        try:
            answer = self._http.post(endpoint.url, body, self.timeout, shown=endpoint.display)
        except HttpFailure as exc:
            raise _Retryable(exc.reason, kind=exc.kind, final=exc.final) from None
        finally:
            with self._count_lock:
                self._in_flight_now -= 1
            slots.release()
        status = answer.status
        if status == 429:
            raise _Retryable("HTTP 429 Too Many Requests", _retry_after(answer.headers.get("Retry-After")), kind="429")
        if status == 413:  # the request is too big for this node: the caller must send less, not retry
            raise RpcResponseError(f"request too large for {endpoint.display} (HTTP 413)", 413)
        if status >= 500:
            raise _Retryable(f"HTTP {status}", _retry_after(answer.headers.get("Retry-After")), kind="5xx")
        if status >= 400 and status != 400:
            raise _Retryable(f"HTTP {status}", kind="4xx")
        try:
            return json.loads(answer.body)
        except (ValueError, RecursionError) as exc:
            raise _Retryable("answer is not JSON (truncated or an error page)", kind="bad_json") from exc

    def _pick(self, done: set[int], min_block: int | None = None, only: Endpoint | None = None) -> int | None:
        """The first endpoint, in configured order of preference, that is not cooling down;
        when all are, the one whose cooldown ends first. Skipped: endpoints done with for
        this call, dropped ones and, while another has the block, those behind ``min_block``.
        None when no endpoint is left."""
        with self._lock:
            now = self._clock()
            left = [
                i for i, e in enumerate(self.endpoints)
                if i not in done and not self.stats[e.display].disabled and (only is None or e == only)
            ]  # fmt: skip
            if not left:
                return None
            if min_block is not None:
                fresh = [i for i in left if (self.stats[self.endpoints[i].display].head or min_block) >= min_block]
                left = fresh or left
            healthy = [i for i in left if self.stats[self.endpoints[i].display].cooldown_until <= now]
            if healthy:
                chosen = healthy[0]
            else:
                chosen = min(left, key=lambda i: self.stats[self.endpoints[i].display].cooldown_until)
            if chosen != self._active:
                if self.observer is not None:
                    self.observer.rpc_failover(self.endpoints[self._active].display, self.endpoints[chosen].display)
                self._active = chosen
            return chosen

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


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


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


_BLOCK_LAST_PARAM = frozenset({"eth_call", "eth_getBalance", "eth_getCode", "eth_getTransactionCount"})


def _pinned_block(method: str, params: Sequence[Any]) -> int | None:
    """The block number a read is pinned to, when its params name one (else None)."""
    tag: Any = None
    if method == "eth_getBlockByNumber" and params:
        tag = params[0]
    elif method in _BLOCK_LAST_PARAM and params:
        tag = params[-1]
    elif method == "eth_getStorageAt" and len(params) >= 3:
        tag = params[2]
    elif method == "eth_getLogs" and params and isinstance(params[0], dict) and "blockHash" not in params[0]:
        tag = params[0].get("toBlock")
    if isinstance(tag, str) and _QUANTITY.fullmatch(tag):
        return int(tag, 16)
    return None


def _check_hex_data(value: Any) -> None:
    _hex_bytes(value, "eth_call")


def to_int(value: Any, what: str) -> int:
    """Public form of the hex-quantity parser for readers."""
    return _to_int(value, what)


_HASH32 = re.compile(r"0x[0-9a-fA-F]{64}")


def check_hash(value: Any, what: str) -> str:
    """A 32-byte hash as 0x + 64 hex digits (lower-cased); anything else is an RpcError."""
    if isinstance(value, str) and _HASH32.fullmatch(value):
        return value.lower()
    raise RpcError(f"{what}: expected a 32-byte hash (0x + 64 hex digits), got {str(value)[:60]!r}")


def check_block_object(value: Any, what: str) -> None:
    """A block object: a dict with a hex ``number`` and ``timestamp`` and a 32-byte ``hash``."""
    if not isinstance(value, dict) or not value:
        raise RpcError(f"{what}: expected a block object, got {str(value)[:60]!r}")
    if "hash" not in value:
        raise RpcError(f"{what}: the block object has no hash")
    check_hash(value.get("hash"), f"{what}.hash")
    _to_int(value.get("number"), f"{what}.number")
    _to_int(value.get("timestamp"), f"{what}.timestamp")


def _named(exc: MonitorError, endpoint: Endpoint) -> MonitorError:
    """``exc`` with the answering endpoint named (same type, so callers still tell them apart)."""
    if endpoint.display in str(exc) or isinstance(exc, RpcResponseError):
        return exc
    try:
        named = type(exc)(f"{exc} (answer of {endpoint.display})")
    except TypeError:
        return exc
    return named


__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "Endpoint", "Lagging", "RpcClient", "check_block_object", "check_hash",
           "mask_url", "to_int"]  # fmt: skip
