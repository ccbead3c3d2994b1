"""The SQLite history of liqmon (sqlite-utils): schema, migrations, writes and queries.

- WAL mode, so readers (``liqmon history``) never block the scanner.
- The schema is created and migrated by the program (:mod:`monitor.store.schema`).
- Every write is one transaction (``BEGIN IMMEDIATE``): a crash mid-write leaves nothing.
- Big integers are stored exactly as decimal TEXT (:mod:`monitor.store.rows`).

Modules: ``schema`` (tables, migrations, open), ``base`` (connection, transactions),
``rows`` (model <-> row), ``writes`` (save_snapshot), ``queries`` (history reads, snapshot
rebuild), ``reorg`` (orphaned blocks), ``accounts`` (accounts, checkpoints), ``lease`` (one
writer), ``alert_log`` (alert state, log, outbox), ``runs`` (risk runs); ``core`` composes
them into :class:`Store`. A history shared on PostgreSQL (``store.history_url``):
``connection`` (one SQL text on SQLite and PostgreSQL), ``shared`` (the shared tables, their
writes and the same reads), ``mirror`` (the local store's writes sent there too).
"""

from monitor.errors import StoreError
from monitor.store.accounts import Checkpoint
from monitor.store.core import Store
from monitor.store.lease import Lease, LeaseHeld, LeaseKeeper, pid_alive
from monitor.store.queries import snapshot_from_rows
from monitor.store.schema import ACCOUNT_SOURCES, ADDRESS_KEYS

__all__ = [
    "ACCOUNT_SOURCES",
    "ADDRESS_KEYS",
    "Checkpoint",
    "Lease",
    "LeaseHeld",
    "LeaseKeeper",
    "Store",
    "StoreError",
    "pid_alive",
    "snapshot_from_rows",
]
