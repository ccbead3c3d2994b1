"""Multicall3 ``aggregate3``: many view calls in one ``eth_call``, pinned to one block.

The same code serves mainnet (the canonical Multicall3) and the devnet (our own
``LiqmonMulticall`` put at the canonical address with ``anvil_setCode``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from eth_abi import encode as abi_encode
from eth_utils import keccak

from monitor.chain.abi import Fn, fn
from monitor.chain.rpc import RpcClient, to_int
from monitor.errors import DecodeError, RpcResponseError

CANONICAL_MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
AGGREGATE3 = fn("aggregate3((address,bool,bytes)[])", "(bool,bytes)[]")
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class Call:
    """One view call: ``fn`` on ``target`` with ``args``."""

    target: str
    fn: Fn
    args: tuple[Any, ...] = ()
    allow_failure: bool = False


def encode_aggregate3(calls: Sequence[Call]) -> bytes:
    """``aggregate3`` calldata, encoded by hand (eth-abi is ~20x slower on thousands of calls;
    tests/unit/test_chain_codec.py checks the bytes equal eth-abi's)."""
    n = len(calls)
    heads: list[bytes] = []
    tails: list[bytes] = []
    offset = 32 * n
    for call in calls:
        data = call.fn.encode(*call.args)
        padded = data + b"\x00" * (-len(data) % 32)
        element = b"".join((
            _address_word(call.target),
            (1 if call.allow_failure else 0).to_bytes(32, "big"),
            (96).to_bytes(32, "big"),
            len(data).to_bytes(32, "big"),
            padded,
        ))  # fmt: skip
        heads.append(offset.to_bytes(32, "big"))
        tails.append(element)
        offset += len(element)
    return b"".join((AGGREGATE3.selector, (32).to_bytes(32, "big"), n.to_bytes(32, "big"), *heads, *tails))


def _address_word(address: str) -> bytes:
    raw = bytes.fromhex(address[2:] if address.startswith(("0x", "0X")) else address)
    if len(raw) != 20:
        raise ValueError(f"not a 20-byte address: {address!r}")
    return b"\x00" * 12 + raw


def encode_aggregate3_reference(calls: Sequence[Call]) -> bytes:
    """The same calldata through eth-abi (the reference the hand encoder is tested against)."""
    items = [(c.target, c.allow_failure, c.fn.encode(*c.args)) for c in calls]
    return AGGREGATE3.selector + abi_encode(["(address,bool,bytes)[]"], [items])


def decode_aggregate3(data: bytes, expected: int) -> list[tuple[bool, bytes]]:
    """Decode ``Result[]`` strictly (bounds-checked, without eth-abi's per-item overhead)."""
    view = memoryview(data)

    def word(offset: int) -> int:
        if offset + 32 > len(view):
            raise DecodeError(f"aggregate3: answer truncated at byte {offset} of {len(view)}")
        return int.from_bytes(view[offset : offset + 32], "big")

    base = word(0)
    count = word(base)
    if count != expected:
        raise DecodeError(f"aggregate3: expected {expected} results, got {count}")
    heads = base + 32
    results: list[tuple[bool, bytes]] = []
    for i in range(count):
        item = heads + word(heads + 32 * i)
        success = word(item)
        if success > 1:
            raise DecodeError(f"aggregate3: result {i} has a non-boolean success flag")
        data_at = item + word(item + 32)
        length = word(data_at)
        start = data_at + 32
        if start + length > len(view):
            raise DecodeError(f"aggregate3: result {i} runs past the end of the answer")
        results.append((bool(success), bytes(view[start : start + length])))
    return results


_TOO_BIG_WORDS = (
    "out of gas", "gas required exceeds", "exceeds block gas limit", "gas limit", "too large", "payload too large",
    "request entity too large", "response size", "exceeds the limit", "execution timeout", "timeout exceeded",
    "max calldata", "batch too large", "return data",
)  # fmt: skip


def too_big(exc: RpcResponseError) -> bool:
    """The node refused the eth_call for its size (gas cap, body or response size)."""
    text = str(exc).lower()
    return exc.code == 413 or any(word in text for word in _TOO_BIG_WORDS)


class NoMulticallError(DecodeError):
    """The configured Multicall3 address has no contract (its aggregate3 answers 0 bytes): a
    configuration problem, never to be blamed on the contract the calls were meant for."""


DEFAULT_GAS_BUDGET = 30_000_000
"""Gas one aggregate3 ``eth_call`` is planned to use (public nodes cap ``eth_call`` at 50 M, geth's
``RPCGasCap`` default; Infura / Alchemy at 50-550 M): well under the common cap, so a batch the
estimates get wrong by 60 % still passes."""
DEFAULT_CALLS_PER_BATCH = 5_000
"""Hard cap of sub-calls per aggregate3 (bounds the request and answer bodies: ~1.1 MB / 0.8 MB)."""
DEFAULT_SUBCALL_GAS = 60_000
"""A sub-call of a kind with neither a table entry nor a measurement."""
COLD_TARGET_GAS = 6_000
"""First call to a target within one aggregate3: cold account access (2,600) and, behind a proxy,
its implementation (2,600 more)."""
MEASURE_SAMPLE = 16  # sub-calls of one shape measured together with eth_estimateGas
MEASURE_MARGIN = 1.25  # measured gas x this: the sample's accounts may be cheaper than the rest

# Gas per sub-call kind, measured with eth_estimateGas on the aave-v3-origin 3.6 devnet (the average
# of 50 sub-calls in one aggregate3 minus the empty aggregate3) with about 40 % margin; the
# per-target cold access is planned apart (COLD_TARGET_GAS). Keys: 4-byte selectors.
_FIXED_GAS: dict[str, int] = {
    "getUserConfiguration(address)": 9_000,  # measured 6,478
    "getUserEMode(address)": 9_000,  # 6,409
    "scaledBalanceOf(address)": 10_000,  # 7,002 (7 targets)
    "balanceOf(address)": 12_000,
    "totalSupply()": 10_000,
    "getReserveNormalizedIncome(address)": 8_000,  # 5,188
    "getReserveNormalizedVariableDebt(address)": 8_000,  # 5,245
    "getReserveData(address)": 16_000,  # 11,628
    "getLiquidationGracePeriod(address)": 8_000,
    "getUserAccountData(address)": 90_000,  # 43,792 with 2-3 reserves used; ~12 k more per reserve
    "getEModeCategoryCollateralConfig(uint8)": 8_000,
    "getEModeCategoryCollateralBitmap(uint8)": 8_000,
    "getEModeCategoryBorrowableBitmap(uint8)": 8_000,
    "getEModeCategoryLtvzeroBitmap(uint8)": 8_000,
}
PRICE_GAS_PER_ASSET = 16_000  # getAssetsPrices: ~11.5 k per asset (oracle -> feed, cold)


def _gas_table() -> dict[bytes, int]:
    return {keccak(text=signature)[:4]: gas for signature, gas in _FIXED_GAS.items()}


_GAS_BY_SELECTOR = _gas_table()
_PRICES_SELECTOR = fn("getAssetsPrices(address[])", "uint256[]").selector


class GasModel:
    """Gas per sub-call: a measurement of its shape (selector and calldata length) when one was
    made (:meth:`Multicall.measure`), else the table of known kinds, else a default."""

    def __init__(self, default: int = DEFAULT_SUBCALL_GAS) -> None:
        self.default = default
        self.measured: dict[tuple[bytes, int], int] = {}

    @staticmethod
    def shape(call: Call) -> tuple[bytes, int]:
        return call.fn.selector, len(call.args[0]) if call.fn.selector == _PRICES_SELECTOR and call.args else -1

    def of(self, call: Call) -> int:
        measured = self.measured.get(self.shape(call))
        if measured is not None:
            return measured
        if call.fn.selector == _PRICES_SELECTOR and call.args:
            return 15_000 + PRICE_GAS_PER_ASSET * len(call.args[0])
        return _GAS_BY_SELECTOR.get(call.fn.selector, self.default)


class Multicall:
    """Run many calls through ``aggregate3``, in batches sized by GAS, several in flight at once.

    Each batch is planned to use at most ``gas_budget`` gas (:class:`GasModel`: per sub-call kind,
    plus the cold access of each new target) and to hold at most ``calls_per_batch`` sub-calls (a
    hard cap on the bodies); ``measure_gas`` measures each call shape once with
    ``eth_estimateGas`` and plans with that. The batches of one read go to the node through the
    client's bounded pool (``RpcClient.run_concurrently``: at most ``max_concurrent_requests``
    in flight per endpoint) and the results come back in call order.

    A batch the node refuses for its size (gas cap, request or response size) is split in two,
    and both the gas budget and ``calls_per_batch`` are lowered for the rest of the run; a
    single call that is still too big is an error. ``call_gas_limit`` is sent as the
    ``eth_call``'s gas (None: the node's own cap).
    """

    def __init__(
        self,
        client: RpcClient,
        address: str = CANONICAL_MULTICALL3,
        calls_per_batch: int = DEFAULT_CALLS_PER_BATCH,
        *,
        gas_budget: int | None = DEFAULT_GAS_BUDGET,
        measure_gas: bool = False,
        call_gas_limit: int | None = None,
        config_key: str = "multicall3 in this chain's config",
    ) -> None:
        self.client = client
        self.address = address
        self.config_key = config_key  # named when there is no contract at ``address``
        self.calls_per_batch = max(1, calls_per_batch)
        self.gas_budget = None if gas_budget is None else max(1, gas_budget)
        self.measure_gas = measure_gas
        self.call_gas_limit = call_gas_limit
        self.gas = GasModel()
        self.splits = 0
        self.batches = 0  # aggregate3 eth_calls sent (splits included)
        self._lock = threading.Lock()
        self._base_gas: int | None = None

    # -- planning -------------------------------------------------------------------------

    def plan(self, calls: Sequence[Call]) -> list[tuple[int, int]]:
        """The batches ``calls`` go in: ``[start, end)`` slices, each within the gas budget and
        ``calls_per_batch`` (a call alone over the budget is a batch of its own)."""
        return self._cut(calls, 0, len(calls))

    def _cut(self, calls: Sequence[Call], start: int, end: int) -> list[tuple[int, int]]:
        cap, budget = self.calls_per_batch, self.gas_budget
        out: list[tuple[int, int]] = []
        lo, gas = start, 0
        targets: set[str] = set()
        for i in range(start, end):
            call = calls[i]
            cost = self.gas.of(call) + (0 if call.target in targets else COLD_TARGET_GAS)
            if i > lo and (i - lo >= cap or (budget is not None and gas + cost > budget)):
                out.append((lo, i))
                lo, gas, targets = i, 0, set()
                cost = self.gas.of(call) + COLD_TARGET_GAS
            gas += cost
            targets.add(call.target)
        if lo < end:
            out.append((lo, end))
        return out

    def plan_groups(self, groups: Sequence[Sequence[Call]]) -> list[tuple[int, int]]:
        """Batches over the flattened ``groups``, cut at group boundaries where a group fits a
        batch (a group larger than one batch is cut inside)."""
        cap, budget = self.calls_per_batch, self.gas_budget
        flat = [c for g in groups for c in g]
        out: list[tuple[int, int]] = []
        lo = at = 0
        gas, size = 0, 0
        targets: set[str] = set()
        for group in groups:
            cost = 0
            new: set[str] = set()
            for call in group:
                cold = call.target not in targets and call.target not in new
                cost += self.gas.of(call) + (COLD_TARGET_GAS if cold else 0)
                new.add(call.target)
            fits = size + len(group) <= cap and (budget is None or gas + cost <= budget)
            if not fits and size:
                out.append((lo, at))
                lo, gas, size, targets = at, 0, 0, set()
                cost = sum(self.gas.of(c) for c in group) + COLD_TARGET_GAS * len({c.target for c in group})
            if len(group) > cap or (budget is not None and cost > budget):  # the group alone is too big
                if size:
                    out.append((lo, at))
                out += self._cut(flat, at, at + len(group))
                at += len(group)
                lo, gas, size, targets = at, 0, 0, set()
                continue
            gas += cost
            size += len(group)
            targets |= {c.target for c in group}
            at += len(group)
        if lo < at:
            out.append((lo, at))
        return out

    def measure(self, calls: Sequence[Call], block: int) -> None:
        """Measure every call shape in ``calls`` not measured yet: ONE ``eth_estimateGas`` per shape
        over up to :data:`MEASURE_SAMPLE` of its calls (and one of the empty aggregate3), run through
        the client's pool; the per-call figure (x :data:`MEASURE_MARGIN`) is kept for the run."""
        samples: dict[tuple[bytes, int], list[Call]] = {}
        for call in calls:
            key = self.gas.shape(call)
            if key in self.gas.measured:
                continue
            sample = samples.setdefault(key, [])
            if len(sample) < MEASURE_SAMPLE:
                sample.append(call)
        if not samples:
            return
        keys = list(samples)
        jobs: list[Sequence[Call]] = [samples[k] for k in keys]
        if self._base_gas is None:
            jobs.append([])
        estimates = self._concurrently(lambda sample: self._estimate(sample, block), jobs)
        if self._base_gas is None:
            self._base_gas = estimates.pop()
        for key, gas in zip(keys, estimates, strict=False):
            per_call = max(1, gas - self._base_gas) / len(samples[key])
            self.gas.measured[key] = int(per_call * MEASURE_MARGIN) + 1

    def _estimate(self, calls: Sequence[Call], block: int) -> int:
        tx = {"to": self.address, "data": "0x" + encode_aggregate3(calls).hex()}
        answer = self.client.request("eth_estimateGas", [tx, hex(block)], min_block=block)
        return to_int(answer, "eth_estimateGas")

    # -- running --------------------------------------------------------------------------

    def raw(self, calls: Sequence[Call], block: int) -> list[tuple[bool, bytes]]:
        """Each call's (success, return data), all read at ``block``."""
        if self.measure_gas:
            self.measure(calls, block)
        return self._run_plan(calls, self.plan(calls), block)

    def _run_plan(self, calls: Sequence[Call], plan: Sequence[tuple[int, int]], block: int) -> list[tuple[bool, bytes]]:
        chunks = self._concurrently(lambda span: self._chunk(calls[span[0] : span[1]], block), plan)
        return [result for chunk in chunks for result in chunk]

    def _concurrently(self, work: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
        runner = getattr(self.client, "run_concurrently", None)
        if runner is None or len(items) < 2:
            return [work(item) for item in items]
        return list(runner(work, items))

    def _chunk(self, chunk: Sequence[Call], block: int) -> list[tuple[bool, bytes]]:
        with self._lock:
            self.batches += 1
        try:
            data = encode_aggregate3(chunk)
            if self.call_gas_limit is None:
                answer = self.client.eth_call(self.address, data, block)
            else:
                answer = self.client.eth_call(self.address, data, block, gas=self.call_gas_limit)
        except RpcResponseError as exc:
            if not too_big(exc) or len(chunk) == 1:
                raise
            half = len(chunk) // 2
            with self._lock:
                self.calls_per_batch = max(1, min(self.calls_per_batch, half))
                planned = sum(self.gas.of(c) for c in chunk)
                if self.gas_budget is not None:
                    self.gas_budget = max(1, min(self.gas_budget, planned // 2))
                self.splits += 1
            return self._chunk(chunk[:half], block) + self._chunk(chunk[half:], block)
        if not answer:  # an eth_call to an address without code answers nothing
            raise NoMulticallError(
                f"no Multicall3 contract at {self.address} at block {block} (the eth_call answered 0 bytes): deploy an "
                f"aggregate3-compatible contract there, or set {self.config_key} to the address of one"
            )
        return decode_aggregate3(answer, len(chunk))

    def run(self, calls: Sequence[Call], block: int) -> list[tuple[Any, ...] | None]:
        """Decoded results; ``None`` where a call with ``allow_failure`` failed."""
        return [_decoded(call, result) for call, result in zip(calls, self.raw(calls, block), strict=True)]

    def run_groups(self, groups: Sequence[Sequence[Call]], block: int) -> list[list[tuple[Any, ...] | None]]:
        """Run groups of calls (e.g. all calls for one account); batches are cut at group
        boundaries when they can be; returns results grouped the same way."""
        flat = [call for group in groups for call in group]
        if self.measure_gas:
            self.measure(flat, block)
        raw = self._run_plan(flat, self.plan_groups(groups), block)
        out: list[list[tuple[Any, ...] | None]] = []
        index = 0
        for group in groups:
            out.append([_decoded(call, raw[index + i]) for i, call in enumerate(group)])
            index += len(group)
        return out


def _decoded(call: Call, result: tuple[bool, bytes]) -> tuple[Any, ...] | None:
    success, data = result
    if not success:
        if not call.allow_failure:
            raise DecodeError(f"{call.fn.signature} on {call.target} failed in aggregate3")
        return None
    return call.fn.decode(data)
