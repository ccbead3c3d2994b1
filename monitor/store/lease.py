"""One writer per database: the lease, and the thread that renews it."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.errors import StoreError
from monitor.store.base import StoreBase


@dataclass(frozen=True, slots=True)
class Lease:
    """Who writes a database: one ``liqmon run`` (or one ``liqmon scan``) at a time."""

    kind: str  # "run" or "scan"
    pid: int
    host: str
    token: str
    acquired_at: float
    renewed_at: float
    expires_at: float

    def describe(self) -> str:
        return f"liqmon {self.kind} (pid {self.pid} on host {self.host})"


class LeaseHeld(StoreError):
    """Another live process holds the database's writer lease."""

    def __init__(self, message: str, holder: Lease) -> None:
        super().__init__(message)
        self.holder = holder


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class LeaseMixin(StoreBase):
    """The ``writer_lease`` table."""

    def lease_holder(self) -> Lease | None:
        rows = self._rows("SELECT * FROM writer_lease WHERE name = 'writer'", [])
        if not rows:
            return None
        row = rows[0]
        return Lease(row["kind"], row["pid"], row["host"], row["token"], row["acquired_at"], row["renewed_at"],
                     row["expires_at"])  # fmt: skip

    def lease_is_live(self, lease: Lease, *, host: str | None = None) -> bool:
        """Held: not expired, and when it is on this host, its process still exists."""
        if lease.expires_at <= self._clock():
            return False
        here = socket.gethostname() if host is None else host
        return not (lease.host == here and not pid_alive(lease.pid))

    def acquire_lease(self, kind: str, ttl_s: float, *, pid: int | None = None, host: str | None = None) -> Lease:
        """Take the writer lease, or raise :class:`LeaseHeld` naming the live holder. A stale
        lease (expired, or its pid is dead on this host) is taken over."""
        pid = os.getpid() if pid is None else pid
        host = socket.gethostname() if host is None else host
        with self.transaction():  # BEGIN IMMEDIATE: two processes cannot both see it free
            holder = self.lease_holder()
            mine = holder is not None and (holder.pid, holder.host) == (pid, host)
            if holder is not None and not mine and self.lease_is_live(holder, host=host):
                since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(holder.acquired_at))
                raise LeaseHeld(
                    f"{self.path} is being written by {holder.describe()}, since {since}: only one liqmon run"
                    f" (or scan) may write a database; stop that process first, or read meanwhile with liqmon"
                    f" history (its lease expires {max(0.0, holder.expires_at - self._clock()):.0f} s after its"
                    " last renewal if it stops renewing)",
                    holder,
                )
            now = self._clock()
            lease = Lease(kind, pid, host, uuid.uuid4().hex, now, now, now + ttl_s)
            self._db.table("writer_lease").upsert({"name": "writer", **_lease_row(lease)}, pk="name")
        return lease

    def renew_lease(self, lease: Lease, ttl_s: float) -> Lease:
        """Extend ``lease``; StoreError when it is no longer ours (taken over after expiry)."""
        now = self._clock()
        with self.transaction():
            cursor = self._db.execute(
                "UPDATE writer_lease SET renewed_at = ?, expires_at = ? WHERE name = 'writer' AND token = ?",
                [now, now + ttl_s, lease.token],
            )
            if cursor.rowcount != 1:
                holder = self.lease_holder()
                raise StoreError(
                    f"lost the writer lease of {self.path}"
                    f"{' to ' + holder.describe() if holder else ''}: stopping so that only one process writes"
                )
        return Lease(lease.kind, lease.pid, lease.host, lease.token, lease.acquired_at, now, now + ttl_s)

    def release_lease(self, lease: Lease) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM writer_lease WHERE name = 'writer' AND token = ?", [lease.token])

    @contextmanager
    def writer(self, kind: str, ttl_s: float) -> Iterator[Lease | None]:
        """Hold the writer lease for a block of work, renewed meanwhile by a
        :class:`LeaseKeeper`. Re-entrant for this process (the daemon's own scans run under
        its lease): then nothing is taken or released."""
        holder = self.lease_holder()
        if holder is not None and (holder.pid, holder.host) == (os.getpid(), socket.gethostname()):
            yield None
            return
        lease = self.acquire_lease(kind, ttl_s)
        keeper = LeaseKeeper(self.path, lease, ttl_s)
        keeper.start()
        try:
            yield lease
        finally:
            keeper.release()


class LeaseKeeper(threading.Thread):
    """Renews a writer lease every ``ttl_s / 3`` on its own thread and connection, so a long
    job never lets it expire; ``on_lost(reason)`` when another process has taken it."""

    def __init__(
        self, path: Path, lease: Lease, ttl_s: float, on_lost: Callable[[str], None] = lambda _reason: None
    ) -> None:
        super().__init__(name="liqmon-lease", daemon=True)
        self.path = path
        self.lease = lease
        self.ttl_s = ttl_s
        self.on_lost = on_lost
        self.lost = ""
        self._stopped = threading.Event()

    def run(self) -> None:
        try:
            with LeaseMixin(self.path) as store:
                while not self._stopped.wait(self.ttl_s / 3):
                    try:
                        self.lease = store.renew_lease(self.lease, self.ttl_s)
                    except StoreError as exc:
                        if "lost the writer lease" in str(exc):
                            self._lose(str(exc))
                            return
                        # busy or locked for a moment: the next round renews
        except StoreError as exc:
            self._lose(str(exc))

    def _lose(self, reason: str) -> None:
        self.lost = reason
        self.on_lost(reason)

    def release(self) -> None:
        """Stop renewing and give the lease back (unless it was lost)."""
        self._stopped.set()
        if self.is_alive():
            self.join(timeout=10)
        if self.lost:
            return
        with suppress(StoreError), LeaseMixin(self.path) as store:
            store.release_lease(self.lease)


def _lease_row(lease: Lease) -> dict[str, Any]:
    return {
        "kind": lease.kind, "pid": lease.pid, "host": lease.host, "token": lease.token,
        "acquired_at": lease.acquired_at, "renewed_at": lease.renewed_at, "expires_at": lease.expires_at,
    }  # fmt: skip
