"""One history shared by several liqmon instances, on PostgreSQL (issue 14 part 6).

A :class:`SharedHistory` holds, in the database ``store.history_url`` names, the tables that
answer the history questions — the change-only tables of :mod:`monitor.store.history`
(``account_ids``, ``asset_ids``, ``position_rows``, ``position_legs``, ``price_rows``,
``reserve_indexes``) and what their reads join (:data:`COMPANION_TABLES`: ``markets``,
``reserves``, ``emode_categories``, ``market_params``, ``scans``, ``orphaned_blocks``) — with
the columns of the local SQLite schema: the PostgreSQL DDL is derived from the SQLite tables
that :mod:`monitor.store.schema` creates (types mapped by :func:`pg_column_type`), so the two
cannot drift apart. The writes are those of the local store, in portable SQL through a
:class:`~monitor.store.connection.SqlConnection`; the reads are the local store's own
(:class:`~monitor.store.queries.QueriesMixin`: ``latest_positions``, ``position_history``,
``price_history``, ``load_snapshot``, ``scans``; :class:`~monitor.store.desk.DeskMixin`:
``positions_below``, ``positions_below_between``, ``portfolio``), unchanged.

What stays local (SQLite, per instance): the writer lease, accounts and checkpoints,
alerts, the outbox, silences, risk runs — everything one process decides alone.

Writers: one per market, enforced by a session advisory lock per schema and market
(:data:`MARKET_LOCK`, held while the writer's connection lives; another instance is refused,
the holder named); the saves of all instances are serialized by one transaction-level advisory
lock per schema (:data:`WRITER_LOCK`), which also keeps the integer id allocation of
``account_ids`` / ``asset_ids`` free of races. One connection per process and URL
(:func:`shared_connection`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Literal, cast

import sqlite_utils

from monitor.errors import StoreError
from monitor.models import MarketSnapshot
from monitor.store import history as history_tables
from monitor.store.connection import Dialect, SqlConnection, connect, upsert_sql
from monitor.store.desk import DeskMixin
from monitor.store.history import History, HistoryPolicy, RetentionPolicy
from monitor.store.queries import QueriesMixin
from monitor.store.rows import _check_pinned, _emode_row, _market_row, _params_json, _reserve_row, _scan_row
from monitor.store.schema import _MIGRATIONS, _migrate

COMPANION_TABLES: Final = ("markets", "reserves", "emode_categories", "market_params", "scans", "orphaned_blocks")
HISTORY_TABLES: Final = tuple(spec[0] for spec in history_tables.TABLES)
META_TABLE: Final = "liqmon_meta"
# advisory lock classes (int4), each with hashtext(the schema [+ market]) as the object: deployments
# in other schemas of the same database never wait for each other
WRITER_LOCK: Final = 0x6C71_6D77  # pg_advisory_xact_lock: the writers of one schema, one save at a time
MARKET_LOCK: Final = 0x6C71_6D6E  # pg_try_advisory_lock (session): a market's one writer

_SQLITE_TO_PG: Final = {"INTEGER": "BIGINT", "REAL": "DOUBLE PRECISION", "FLOAT": "DOUBLE PRECISION",
                        "TEXT": "TEXT", "BLOB": "BYTEA", "": "TEXT"}  # fmt: skip


def pg_column_type(sqlite_type: str) -> str:
    """The PostgreSQL type of an SQLite column type (64-bit integers, 8-byte floats)."""
    try:
        return _SQLITE_TO_PG[sqlite_type.upper()]
    except KeyError:
        raise StoreError(f"no PostgreSQL type for the SQLite column type {sqlite_type!r}") from None


@lru_cache(maxsize=1)
def _reference_schema() -> tuple[tuple[str, tuple[tuple[Any, ...], ...], tuple[str, ...]], ...]:
    """(table, PRAGMA table_info rows, CREATE INDEX texts) of the companion tables, from a
    fresh in-memory SQLite database migrated by this liqmon."""
    db = sqlite_utils.Database(memory=True)
    try:
        _migrate(db, Path(":memory:"))
        out = []
        for table in COMPANION_TABLES:
            columns = tuple(tuple(row) for row in db.execute(f"PRAGMA table_info({table})").fetchall())
            indexes = tuple(
                str(row[0])
                for row in db.execute(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", [table]
                ).fetchall()
            )
            out.append((table, columns, indexes))
        return tuple(out)
    finally:
        db.close()


def companion_ddl(dialect: Dialect) -> list[str]:
    """CREATE statements of :data:`COMPANION_TABLES` with the local schema's columns."""
    statements: list[str] = []
    for table, columns, indexes in _reference_schema():
        pk = [str(c[1]) for c in sorted(columns, key=lambda c: int(c[5])) if int(c[5])]
        parts = []
        for _cid, name, kind, notnull, default, _pk in columns:
            if pk == [name] and str(kind).upper() == "INTEGER" and name == "id":
                parts.append(
                    f"{name} BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
                    if dialect == "postgresql"
                    else f"{name} INTEGER PRIMARY KEY AUTOINCREMENT"
                )
                continue
            kind_sql = pg_column_type(str(kind)) if dialect == "postgresql" else str(kind)
            parts.append(
                f"{name} {kind_sql}{' NOT NULL' if notnull else ''}{'' if default is None else f' DEFAULT {default}'}"
            )
        if pk and pk != ["id"]:
            parts.append(f"PRIMARY KEY ({', '.join(pk)})")
        statements.append(f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(parts)})")
        for index in indexes:
            head, on, tail = index.partition(" ON ")
            statements.append(f"{head.replace(' INDEX ', ' INDEX IF NOT EXISTS ', 1)}{on}{tail}")
    return statements


# --------------------------------------------------------------------------- connections

_CONNECTIONS: dict[str, SqlConnection] = {}
_HISTORIES: dict[tuple[str, HistoryPolicy], SharedHistory] = {}
_CONNECTIONS_LOCK = threading.Lock()


def shared_connection(url: str) -> SqlConnection:
    """This process's one connection to ``url`` (reopened if the server dropped it)."""
    with _CONNECTIONS_LOCK:
        conn = _CONNECTIONS.get(url)
        if conn is None or not conn.usable:
            conn = _CONNECTIONS[url] = connect(url)
        return conn


def close_shared_connections() -> None:
    """Close every connection :func:`shared_connection` opened (tests, process exit)."""
    with _CONNECTIONS_LOCK:
        for conn in _CONNECTIONS.values():
            conn.close()
        _CONNECTIONS.clear()
        _HISTORIES.clear()


def shared_history(url: str, policy: HistoryPolicy | None = None) -> SharedHistory:
    """This process's one :class:`SharedHistory` of ``url`` and ``policy``: a daemon that opens
    its store every tick keeps the history's last-written state (no rebuild per tick)."""
    key = (url, policy or HistoryPolicy())
    with _CONNECTIONS_LOCK:
        found = _HISTORIES.get(key)
        if found is not None and found.conn.usable:
            return found
    opened = SharedHistory(url, policy=policy)  # connects: outside the lock
    with _CONNECTIONS_LOCK:
        found = _HISTORIES.get(key)
        if found is not None and found.conn.usable:
            return found
        _HISTORIES[key] = opened
        return opened


# --------------------------------------------------------------------------- the history


class _Result:
    """What the local reads take from an sqlite-utils ``execute``: ``fetchone`` / ``fetchall``."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._rows = rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows


class _Database:
    """The slice of :class:`sqlite_utils.Database` the local reads use, over a SqlConnection."""

    def __init__(self, conn: SqlConnection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Result:
        return _Result(self.conn.execute(sql, params))


class SharedHistory(QueriesMixin, DeskMixin):
    """The history tables in a shared database (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        policy: HistoryPolicy | None = None,
        clock: Callable[[], float] | None = None,
        conn: SqlConnection | None = None,
    ) -> None:
        """``url``: ``postgresql://...`` (or ``sqlite:///...``); ``conn``: an open connection
        to use instead of this process's shared one."""
        self.conn = conn if conn is not None else shared_connection(url)
        # what the inherited reads name in their errors: the URL as text (a Path would fold its //)
        self.path = cast(Path, self.conn.display)
        self.display = self.conn.display
        self._clock = clock or time.time
        self._db = cast(sqlite_utils.Database, _Database(self.conn))
        self._history = History(self.conn, policy)  # its last-written state lives as long as this object
        self._retained_at: dict[str, int] = {}  # market -> block time of the last retention pass
        self._claimed: set[str] = set()  # markets whose writer lock this connection holds
        self._params_cache: dict[str, tuple[int, tuple[str, str]]] = {}  # market -> (block, params) last saved
        self._in_step: dict[str, bool] = {}  # market -> its last save here succeeded (touched= can be trusted)
        if self.conn.dialect == "postgresql":  # the server notices a dead instance (and frees its locks) in ~1 min
            for setting, value in (
                ("tcp_keepalives_idle", 30),
                ("tcp_keepalives_interval", 10),
                ("tcp_keepalives_count", 3),
            ):
                self.conn.execute(f"SET {setting} = {value}")
        self._ensure_schema()

    def close(self) -> None:
        """Nothing to close: the connection is the process's (see :func:`close_shared_connections`)."""

    # ----------------------------------------------------------------- schema

    def _ensure_schema(self) -> None:
        known = len(_MIGRATIONS)
        conn = self.conn
        with conn.transaction():
            self._lock()
            conn.create_table(META_TABLE, {"key": "text", "value": "text"}, ("key",))
            found = conn.execute(f"SELECT value FROM {META_TABLE} WHERE key = 'schema_version'")
            if found and found[0][0] != str(known):
                raise StoreError(
                    f"shared history {self.display} has schema version {found[0][0]}, this liqmon writes {known}:"
                    " give this liqmon another database (or schema), or run the liqmon version that created it"
                )
            if not found:
                foreign = sorted(set(conn.tables()) & {*COMPANION_TABLES, *HISTORY_TABLES})
                if foreign:
                    raise StoreError(
                        f"shared history {self.display} already has tables {', '.join(foreign)} but no {META_TABLE}:"
                        " they are not liqmon's; give liqmon another database, or a schema of its own"
                        " (?options=-c%20search_path%3Dliqmon)"
                    )
                for statement in [*companion_ddl(conn.dialect), *history_tables.ddl(conn.dialect)]:
                    conn.execute(statement)
                conn.execute(f"INSERT INTO {META_TABLE} (key, value) VALUES ('schema_version', ?)", [str(known)])

    def _lock(self) -> None:
        """Serialize the writers of every instance (PostgreSQL; SQLite's BEGIN IMMEDIATE does it)."""
        if self.conn.dialect == "postgresql":
            self.conn.execute("SELECT pg_advisory_xact_lock(?, hashtext(current_schema()))", [WRITER_LOCK])

    def _claim(self, market: str) -> None:
        """One writer per market: this connection takes the market's session advisory lock on
        its first write and keeps it while it lives (a dead instance's lock goes with its
        connection: TCP keepalives of about a minute); another instance is refused, named."""
        if self.conn.dialect != "postgresql" or market in self._claimed:
            return
        key = "hashtext(current_schema() || '/' || ?)"
        if self.conn.execute(f"SELECT pg_try_advisory_lock(?, {key})", [MARKET_LOCK, market])[0][0]:
            self._claimed.add(market)
            return
        holder = self.conn.execute(
            "SELECT a.application_name, host(a.client_addr), a.backend_start::text FROM pg_locks l"
            " JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted"
            f" AND l.classid = ? AND l.objid = ({key})::oid LIMIT 1",
            [MARKET_LOCK, market],
        )
        who = "another session"
        if holder:
            who = f"{holder[0][0]} from {holder[0][1] or 'a local socket'} since {holder[0][2]}"
        raise StoreError(
            f"market {market!r} is written into the shared history {self.display} by {who}: one writer per market"
            " (configure each market in one instance only); nothing is written there by this one"
        )

    # ----------------------------------------------------------------- reads (QueriesMixin)

    def _rows(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        return self.conn.query(sql, params)

    def _count(self, table: str, market: str) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {table} WHERE market = ?", [market])[0][0])

    # ----------------------------------------------------------------- writes

    def save_snapshot(
        self,
        snapshot: MarketSnapshot,
        *,
        touched: Collection[str] | None = None,
        retention: RetentionPolicy | None = None,
    ) -> None:
        """What the local store writes for ``snapshot``, in ONE transaction of the shared database.

        ``touched`` (the accounts whose balances may have changed since the previous save) is
        used only when the previous save of this market here succeeded too: after a failure,
        a reorg or a restart every position is compared, so a block missed here cannot hide a
        balance change. ``retention``: thin old rows as the local store does (``store.retention``),
        once per ``downsample_s`` of block time, in the same transaction."""
        _check_pinned(snapshot)
        market, block = snapshot.market, snapshot.block
        in_step = self._in_step.get(market, False)  # the memory of the last save can be trusted
        if not in_step:
            touched = None
            self._params_cache.pop(market, None)
        self._in_step[market] = False
        self._claim(market)
        with self.conn.transaction():
            orphaned, other_hash = self._lock_and_check(snapshot)  # one round trip
            if orphaned:
                self._replace_orphaned(market, block)
            elif other_hash is not None:
                raise StoreError(
                    f"{market}: block {block} is stored in the shared history {self.display} with hash"
                    f" {other_hash[:12]}... and the node now gives {snapshot.block_hash[:12]}...: a reorg not"
                    " proven yet, so nothing is written there"
                )
            self._upsert_market(snapshot)
            if self._record_params(snapshot):
                self._upsert(
                    "reserves", [_reserve_row(market, block, r) for r in snapshot.reserves], ("market", "asset")
                )
                self._upsert(
                    "emode_categories",
                    [_emode_row(market, block, c) for c in snapshot.emode_categories],
                    ("market", "id"),
                )
            self._history.write(snapshot, touched)
            row = _scan_row(snapshot, self._clock())
            self.conn.execute(
                f"INSERT INTO scans ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", list(row.values())
            )
            if retention is not None:
                self._retain_if_due(market, snapshot.timestamp, retention)
        self._in_step[market] = True

    def _retain_if_due(self, market: str, now: int, policy: RetentionPolicy) -> None:
        if policy.full_days is None or now - self._retained_at.get(market, 0) < policy.downsample_s:
            return
        self._retained_at[market] = now
        self.apply_retention(market, now, policy)

    def apply_retention(self, market: str, now: float, policy: RetentionPolicy) -> int:
        """Thin ``market``'s rows older than ``policy.full_days`` (the local store's
        :meth:`~monitor.store.writes.WritesMixin.apply_retention`, its progress in liqmon_meta)."""
        key = f"history_retention:{market}"
        with self.conn.transaction():
            self._lock()
            found = self.conn.execute(f"SELECT value FROM {META_TABLE} WHERE key = ?", [key])
            done = int(found[0][0]) if found else -1
            end, deleted = self._history.retain(market, now, policy, done)
            if end != done:
                self.conn.execute(upsert_sql(META_TABLE, ["key", "value"], ["key"]), [key, str(end)])
        return deleted

    def _upsert(self, table: str, rows: Sequence[dict[str, Any]], key: Sequence[str]) -> None:
        if rows:
            self.conn.executemany(upsert_sql(table, list(rows[0]), key), [list(r.values()) for r in rows])

    def _lock_and_check(self, snapshot: MarketSnapshot) -> tuple[bool, str | None]:
        """The writers' lock (PostgreSQL), whether the block is marked orphaned, and the hash of
        a live scan of the block with another hash (a reorg not proven yet), in one statement."""
        lock = "pg_advisory_xact_lock(?, hashtext(current_schema())), " if self.conn.dialect == "postgresql" else ""
        row = self.conn.execute(
            f"SELECT {lock}EXISTS (SELECT 1 FROM orphaned_blocks WHERE market = ? AND block = ?),"
            " (SELECT block_hash FROM scans AS s WHERE market = ? AND block = ? AND block_hash != ? AND NOT EXISTS"
            " (SELECT 1 FROM orphaned_blocks ob WHERE ob.market = s.market AND ob.block = s.block) LIMIT 1)",
            [*([WRITER_LOCK] if lock else []), snapshot.market, snapshot.block, snapshot.market, snapshot.block,
             snapshot.block_hash],
        )[0]  # fmt: skip
        orphaned, other = row[-2], row[-1]
        return bool(orphaned), None if other is None else str(other)

    def _upsert_market(self, snapshot: MarketSnapshot) -> None:
        """The markets row, its ``last_block`` the highest saved (one statement)."""
        row = _market_row(snapshot, snapshot.block, self._clock())
        columns = list(row)
        updates = [f"{c} = excluded.{c}" for c in columns if c not in ("name", "last_block")]
        updates.append(
            "last_block = CASE WHEN excluded.last_block > markets.last_block THEN excluded.last_block"
            " ELSE markets.last_block END"
        )
        self.conn.execute(
            f"INSERT INTO markets ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
            f" ON CONFLICT (name) DO UPDATE SET {', '.join(updates)}",
            list(row.values()),
        )

    def _record_params(self, snapshot: MarketSnapshot) -> bool:
        """Change-only ``market_params`` (as the local store); True when they changed. Compared
        in memory with the last saved block's when that save succeeded (no query then)."""
        params = _params_json(snapshot)
        reserves, categories = params
        cached = self._params_cache.get(snapshot.market)
        if cached is not None and cached[0] < snapshot.block and cached[1] == params:
            self._params_cache[snapshot.market] = (snapshot.block, params)
            return False
        self._params_cache[snapshot.market] = (snapshot.block, params)
        before = self.conn.execute(
            "SELECT reserves, emode_categories FROM market_params AS mp WHERE market = ? AND block < ?"
            " AND NOT EXISTS (SELECT 1 FROM orphaned_blocks ob WHERE ob.market = mp.market AND ob.block = mp.block)"
            " ORDER BY block DESC LIMIT 1",
            [snapshot.market, snapshot.block],
        )
        if before and tuple(before[0]) == (reserves, categories):
            self.conn.execute(
                "DELETE FROM market_params WHERE market = ? AND block = ?", [snapshot.market, snapshot.block]
            )
            return False
        self._upsert(
            "market_params",
            [
                {
                    "market": snapshot.market,
                    "block": snapshot.block,
                    "reserves": reserves,
                    "emode_categories": categories,
                }
            ],
            ("market", "block"),
        )
        return True

    def _replace_orphaned(self, market: str, block: int) -> None:
        if not self.conn.execute("SELECT 1 FROM orphaned_blocks WHERE market = ? AND block = ?", [market, block]):
            return
        self._history.delete_blocks(market, [block])
        for table in ("scans", "market_params", "orphaned_blocks"):
            self.conn.execute(f"DELETE FROM {table} WHERE market = ? AND block = ?", [market, block])
        self._history.invalidate(market)

    # ----------------------------------------------------------------- reorgs (as the local store)

    def mark_orphaned(self, market: str, blocks: Sequence[tuple[int, str]], reason: str) -> None:
        now = self._clock()
        self._claim(market)
        with self.conn.transaction():
            self._lock()
            self.conn.executemany(
                "INSERT INTO orphaned_blocks (market, block, hash, marked_at, reason) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (market, block) DO NOTHING",
                [(market, b, h, now, reason) for b, h in blocks],
            )
            self._history.invalidate(market)
            self._in_step[market] = False

    def unmark_orphaned(self, market: str, blocks: Sequence[int]) -> None:
        if not blocks:
            return
        with self.conn.transaction():
            self._lock()
            marks = ", ".join("?" for _ in blocks)
            self.conn.execute(f"DELETE FROM orphaned_blocks WHERE market = ? AND block IN ({marks})", [market, *blocks])
            self._history.invalidate(market)
            self._in_step[market] = False

    def drop_blocks(self, market: str, blocks: Sequence[int]) -> None:
        if not blocks:
            return
        with self.conn.transaction():
            self._lock()
            self._history.delete_blocks(market, blocks)
            marks = ", ".join("?" for _ in blocks)
            for table in ("scans", "market_params"):
                self.conn.execute(f"DELETE FROM {table} WHERE market = ? AND block IN ({marks})", [market, *blocks])
            self._history.invalidate(market)
            self._in_step[market] = False

    def orphaned_blocks(self, market: str) -> list[tuple[int, str]]:
        rows = self.conn.execute("SELECT block, hash FROM orphaned_blocks WHERE market = ? ORDER BY block", [market])
        return [(int(b), str(h)) for b, h in rows]


def probe(url: str, now: float) -> tuple[Literal["OK", "WARN"], str]:
    """``liqmon doctor``'s check of ``store.history_url``: ("OK" | "WARN", detail); raises
    StoreError when the database cannot be reached. Creates nothing."""
    with connect(url) as conn:
        version = str(conn.execute("SHOW server_version")[0][0]) if conn.dialect == "postgresql" else "SQLite"
        if not conn.table_exists(META_TABLE):
            return "WARN", f"PostgreSQL {version} reached; no shared history yet (the first scan creates it)"
        found = conn.execute(f"SELECT value FROM {META_TABLE} WHERE key = 'schema_version'")
        known = str(len(_MIGRATIONS))
        if not found or found[0][0] != known:
            have = found[0][0] if found else "none"
            return "WARN", f"schema version {have}, this liqmon writes {known}: it will refuse this database"
        newest = conn.execute(
            "SELECT market, max(block), max(timestamp) FROM scans AS s WHERE NOT EXISTS (SELECT 1 FROM orphaned_blocks"
            " ob WHERE ob.market = s.market AND ob.block = s.block) GROUP BY market ORDER BY market"
        )
        markets = ", ".join(f"{m} @ {b} ({max(0, int(now) - int(t))} s ago)" for m, b, t in newest) or "no scans yet"
        return "OK", f"PostgreSQL {version}, schema {known}; {markets}"
