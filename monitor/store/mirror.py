"""The local store, mirrored into a shared history (``store.history_url``).

``Store(path, history_url="postgresql://...")`` writes as before into its SQLite file — the
source of truth for this instance's alerts, outbox, lease and checkpoints — and then the same
snapshot, orphan marks and dropped blocks into the shared history
(:class:`~monitor.store.shared.SharedHistory`), each in its own transaction there, once the
local transaction has committed (a caller's outer ``store.transaction()`` included: what it
rolls back is never sent).

Failures: the first open of a URL in a process raises (a wrong host or password stops
``liqmon scan`` / ``liqmon run`` at start with one line); after that, a shared write that fails
(the server restarting, the network) is logged as a warning and counted in
:attr:`MirrorMixin.shared_failures`, and the local write stands: monitoring and alerts never
wait for the shared database. A block missed there is a gap in its ``scans``; the history's
change-only rows stay exact, since each write compares with what the shared tables hold.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from monitor.errors import StoreError
from monitor.models import MarketSnapshot
from monitor.store.connection import display_url
from monitor.store.shared import SharedHistory, shared_history
from monitor.store.writes import WritesMixin

log = logging.getLogger("liqmon.store.shared")

_OPENED: set[str] = set()  # URLs this process has opened once (later failures only warn)
_OPENED_LOCK: Final = threading.Lock()


class MirrorMixin(WritesMixin):
    """``history_url``: mirror the history writes there (see the module docstring)."""

    shared_failures: int = 0

    def __init__(self, path: str | Path, *, history_url: str | None = None, **options: Any) -> None:
        super().__init__(path, **options)
        self._shared: SharedHistory | None = None
        self._shared_url = history_url
        self._pending: list[tuple[str, Callable[[SharedHistory], None]]] = []  # until the local commit
        if history_url is not None:
            self._shared = self._open_shared(history_url)

    def _open_shared(self, url: str) -> SharedHistory | None:
        policy = getattr(self._history, "policy", None)
        try:
            shared = shared_history(url, policy)
        except StoreError as exc:
            with _OPENED_LOCK:
                seen = url in _OPENED
            if not seen:
                raise
            self._shared_failed("open", exc)
            return None
        with _OPENED_LOCK:
            _OPENED.add(url)
        return shared

    @property
    def shared(self) -> SharedHistory | None:
        """The shared history this store mirrors into (None: none configured, or unreachable now)."""
        return self._shared

    def _mirror(self, what: str, write: Callable[[SharedHistory], None]) -> None:
        """Write to the shared history now, or, inside a caller's local transaction, once it
        has committed (a local rollback sends nothing)."""
        if self._shared is None:
            return
        if self._db.conn.in_transaction:
            self._pending.append((what, write))
            return
        self._send(what, write)

    def _send(self, what: str, write: Callable[[SharedHistory], None]) -> None:
        if self._shared is None:
            return
        try:
            write(self._shared)
        except StoreError as exc:
            self._shared_failed(what, exc)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        outermost = not self._db.conn.in_transaction
        try:
            with super().transaction():
                yield
        except BaseException:
            if outermost:
                self._pending.clear()
            raise
        if outermost:
            pending, self._pending = self._pending, []
            for what, write in pending:
                self._send(what, write)

    def _shared_failed(self, what: str, exc: StoreError) -> None:
        self.shared_failures += 1
        log.warning(
            "shared history write failed; the local store has it",
            extra={"what": what, "url": display_url(self._shared_url or ""), "error": str(exc)},
        )

    # ----------------------------------------------------------------- the mirrored writes

    def save_snapshot(self, snapshot: MarketSnapshot, **options: Any) -> int:
        scan_id = super().save_snapshot(snapshot, **options)  # e.g. touched= (accounts whose balances changed)
        touched = options.get("touched")
        retention = self._retention
        self._mirror(
            "save_snapshot", lambda shared: shared.save_snapshot(snapshot, touched=touched, retention=retention)
        )
        return scan_id

    def mark_orphaned(self, market: str, blocks: Sequence[tuple[int, str]], reason: str) -> int:
        marked = super().mark_orphaned(market, blocks, reason)
        self._mirror("mark_orphaned", lambda shared: shared.mark_orphaned(market, blocks, reason))
        return marked

    def unmark_orphaned(self, market: str, blocks: Sequence[int]) -> None:
        super().unmark_orphaned(market, blocks)
        self._mirror("unmark_orphaned", lambda shared: shared.unmark_orphaned(market, blocks))

    def drop_blocks(self, market: str, blocks: Sequence[int]) -> None:
        super().drop_blocks(market, blocks)
        self._mirror("drop_blocks", lambda shared: shared.drop_blocks(market, blocks))


def shared_url(store_config: Any) -> str | None:
    """The expanded ``store.history_url`` of a :class:`~monitor.config.StoreConfig` (None: unset)."""
    endpoint = getattr(store_config, "history_url", None)
    return None if endpoint is None else str(endpoint.url)
