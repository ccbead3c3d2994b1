"""Reorg detection that needs proof: recorded (block, hash) pairs against the canonical chain.

One node's word is not enough to throw history away. A recorded block counts as orphaned
only when every observation agrees:

1. the answering endpoint has the block with ANOTHER hash (a ``null`` block is never proof:
   above the node's own head it is lag, below it a broken node);
2. the mismatch is *at depth*: the node's head is at least ``confirmations`` blocks past it,
   so a competing tip that may still lose is not taken for the chain;
3. the same endpoint, asked again, gives the same new hash (no flapping answer);
4. where another endpoint is configured, it too has the block with that same new hash (an
   endpoint that still has our hash, or none answering, means: not proven, keep the rows).

Each observation is one JSON-RPC batch to ONE endpoint: ``eth_blockNumber`` (that node's
head) followed by ``eth_getBlockByNumber`` of every block asked about.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from monitor.chain.rpc import Endpoint, RpcClient, check_block_object, check_hash, to_int
from monitor.errors import MonitorError, RpcError


class ReorgTooDeep(RpcError):
    """A rollback deeper than ``max_reorg_depth`` blocks: nothing is deleted."""


@dataclass(frozen=True, slots=True)
class Observation:
    endpoint: Endpoint
    head: int
    hashes: dict[int, str | None]  # None: the node has no such block (lag)


@dataclass(slots=True)
class Verdict:
    """What the recorded blocks turned out to be."""

    orphaned: list[int] = field(default_factory=list)  # proven replaced
    canonical: list[int] = field(default_factory=list)  # the first endpoint has our hash
    unproven: list[int] = field(default_factory=list)  # a mismatch not (yet) proven: rows kept
    lagging: list[int] = field(default_factory=list)  # above the answering node's head
    notes: list[str] = field(default_factory=list)  # why something was not proven, for the log


def observe(client: RpcClient, blocks: Sequence[int], only: Endpoint | None = None) -> Observation:
    """One endpoint's head and its hash of each block (``only``: that endpoint; else one
    not known to lag behind the newest block asked about)."""
    calls: list[tuple[str, Sequence[object]]] = [("eth_blockNumber", [])]
    calls += [("eth_getBlockByNumber", [hex(b), False]) for b in blocks]

    def check(answers: list[object]) -> None:
        to_int(answers[0], "eth_blockNumber")
        for block, answer in zip(blocks, answers[1:], strict=True):
            if answer is not None:
                check_block_object(answer, f"eth_getBlockByNumber({block})")

    answers, endpoint = client.batch_from(calls, check=check, only=only, min_block=max(blocks, default=None))
    head = to_int(answers[0], "eth_blockNumber")
    hashes: dict[int, str | None] = {}
    for block, answer in zip(blocks, answers[1:], strict=True):
        hashes[block] = check_hash(answer["hash"], f"eth_getBlockByNumber({block}).hash") if answer else None
    return Observation(endpoint, head, hashes)


def canonical_hashes(client: RpcClient, blocks: Sequence[int]) -> dict[int, str | None]:
    """The canonical hash of each block number as one endpoint sees it (None: it has none)."""
    if not blocks:
        return {}
    return observe(client, blocks).hashes


def verify(client: RpcClient, recorded: Sequence[tuple[int, str]], confirmations: int = 2) -> Verdict:
    """Which recorded blocks are proven orphaned (see the module docstring)."""
    verdict = Verdict()
    if not recorded:
        return verdict
    stored = {b: h.lower() for b, h in recorded}
    first = observe(client, sorted(stored))
    suspects: list[int] = []
    for block, ours in sorted(stored.items()):
        theirs = first.hashes.get(block)
        if theirs == ours:
            verdict.canonical.append(block)
        elif theirs is None:
            (verdict.lagging if block > first.head else verdict.unproven).append(block)
        elif first.head - block < confirmations:
            verdict.unproven.append(block)
            verdict.notes.append(f"block {block}: another hash at {first.endpoint.display}, only "
                                 f"{first.head - block} block(s) deep; waiting for {confirmations}")  # fmt: skip
        else:
            suspects.append(block)
    if verdict.lagging:
        verdict.notes.append(f"{first.endpoint.display} is at block {first.head}, behind stored block(s) "
                             f"{_span(verdict.lagging)}: lag, not a reorg")  # fmt: skip
    if not suspects:
        return verdict
    proven = _confirmed_again(client, first, suspects, verdict)
    proven = _confirmed_elsewhere(client, first, proven, verdict)
    verdict.orphaned = sorted(proven)
    return verdict


def _confirmed_again(client: RpcClient, first: Observation, suspects: list[int], verdict: Verdict) -> list[int]:
    try:
        again = observe(client, suspects, only=first.endpoint)
    except MonitorError as exc:
        verdict.unproven.extend(suspects)
        verdict.notes.append(f"{first.endpoint.display} could not be asked again ({exc}): reorg not proven")
        return []
    same = [b for b in suspects if again.hashes.get(b) == first.hashes[b]]
    flapping = [b for b in suspects if b not in same]
    if flapping:
        client.distrust(first.endpoint, f"answered other hashes when asked again for block(s) {_span(flapping)}")
        verdict.unproven.extend(flapping)
        verdict.notes.append(f"{first.endpoint.display} answered other hashes when asked again for block(s) "
                             f"{_span(flapping)}: not believed")  # fmt: skip
    return same


def _confirmed_elsewhere(client: RpcClient, first: Observation, suspects: list[int], verdict: Verdict) -> list[int]:
    others = [e for e in client.usable_endpoints() if e != first.endpoint]
    if not suspects or not others:
        return suspects
    reasons: list[str] = []
    for endpoint in others:
        try:
            second = observe(client, suspects, only=endpoint)
        except MonitorError as exc:
            reasons.append(f"{endpoint.display}: {exc}")
            continue
        agreed = [b for b in suspects if second.hashes.get(b) == first.hashes[b]]
        disagreed = [b for b in suspects if b not in agreed]
        if disagreed:
            verdict.unproven.extend(disagreed)
            verdict.notes.append(f"{endpoint.display} does not confirm the new hash of block(s) {_span(disagreed)} "
                                 f"seen at {first.endpoint.display}: reorg not proven, rows kept")  # fmt: skip
        return agreed
    verdict.unproven.extend(suspects)
    verdict.notes.append(f"no second endpoint could confirm the reorg ({'; '.join(reasons)}): rows kept")
    return []


def orphaned(client: RpcClient, recorded: Sequence[tuple[int, str]], confirmations: int = 2) -> list[int]:
    """Recorded blocks proven replaced by a reorg."""
    return verify(client, recorded, confirmations).orphaned


def common_ancestor(client: RpcClient, recorded: Sequence[tuple[int, str]]) -> tuple[int, str] | None:
    """The newest recorded (block, hash) still canonical; None when none is (roll back all).
    Blocks the node does not have (lag) are neither: the search goes on below them."""
    newest_first = sorted(recorded, reverse=True)
    hashes = canonical_hashes(client, [b for b, _ in newest_first])
    for block, block_hash in newest_first:
        if hashes.get(block) == block_hash.lower():
            return block, block_hash
    return None


def _span(blocks: Sequence[int]) -> str:
    ordered = sorted(blocks)
    if len(ordered) <= 4:
        return ", ".join(str(b) for b in ordered)
    return f"{ordered[0]}..{ordered[-1]} ({len(ordered)} blocks)"
