"""The SQLite history of liqmon (sqlite-utils): schema, migrations, writes and queries.

- WAL mode, so readers (``liqmon history``) never block the scanner.
- The schema is created and migrated by the program: ``meta.schema_version`` counts the
  applied entries of :data:`_MIGRATIONS`; each migration runs in its own transaction.
- Every write is one transaction (``BEGIN IMMEDIATE``): a crash mid-write leaves nothing.
- Big integers (wei, ray, wad, base-currency amounts, prices) exceed SQLite's int64, so
  they are stored exactly as decimal TEXT; a REAL companion column (``price_usd``, ``hf``,
  ``collateral_usd``, ``debt_usd``) exists only where sorting or plotting needs one.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlite_utils

from monitor.errors import StoreError
from monitor.models import (
    MAX_UINT256,
    WAD,
    AssetLeg,
    EModeCategory,
    MarketSnapshot,
    Position,
    Reserve,
    format_wad,
)

Migration = Callable[[sqlite_utils.Database], None]

ACCOUNT_SOURCES = ("logs", "watchlist")
ADDRESS_KEYS = ("pool_addresses_provider", "pool", "oracle", "data_provider")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """How far a scan of one kind (e.g. account discovery from logs) has got in a market."""

    block: int
    block_hash: str
    updated_at: float


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


# --------------------------------------------------------------------------- schema


def _create_table(
    db: sqlite_utils.Database,
    name: str,
    columns: dict[str, type],
    pk: str | tuple[str, ...],
    nullable: Sequence[str] = (),
) -> None:
    """A table whose columns are all NOT NULL (primary key included) except ``nullable``."""
    not_null = [column for column in columns if column not in nullable]
    db.table(name).create(columns, pk=pk, not_null=not_null)


def _create_meta(db: sqlite_utils.Database) -> None:
    _create_table(db, "meta", {"key": str, "value": str}, pk="key")


def _create_markets(db: sqlite_utils.Database) -> None:
    _create_table(
        db,
        "markets",
        {
            "name": str,
            "protocol": str,
            "chain_id": int,
            **{key: str for key in ADDRESS_KEYS},
            "base_currency_unit": str,
            "last_block": int,
            "updated_at": float,
        },
        pk="name",
        nullable=ADDRESS_KEYS,
    )


def _create_reserves(db: sqlite_utils.Database) -> None:
    _create_table(
        db,
        "reserves",
        {
            "market": str,
            "asset": str,
            "symbol": str,
            "decimals": int,
            "reserve_id": int,
            "ltv": int,
            "liquidation_threshold": int,
            "liquidation_bonus": int,
            "emode_category": int,
            "active": int,
            "frozen": int,
            "borrowing_enabled": int,
            "a_token": str,
            "stable_debt_token": str,
            "variable_debt_token": str,
            "updated_block": int,
        },
        pk=("market", "asset"),
    )


def _create_emode_categories(db: sqlite_utils.Database) -> None:
    _create_table(
        db,
        "emode_categories",
        {
            "market": str,
            "id": int,
            "ltv": int,
            "liquidation_threshold": int,
            "liquidation_bonus": int,
            "price_source": str,
            "label": str,
            "updated_block": int,
        },
        pk=("market", "id"),
    )


def _create_prices(db: sqlite_utils.Database) -> None:
    # The primary key (market, asset, block) is the prices(market, asset, block) index:
    # a second index on the same columns would only slow down writes.
    _create_table(
        db,
        "prices",
        {
            "market": str,
            "asset": str,
            "block": int,
            "symbol": str,
            "price": str,
            "price_usd": float,
            "timestamp": int,
        },
        pk=("market", "asset", "block"),
    )


def _create_positions(db: sqlite_utils.Database) -> None:
    _create_table(
        db,
        "positions",
        {
            "market": str,
            "account": str,
            "block": int,
            "timestamp": int,
            "health_factor": str,
            "health_factor_wad": str,
            "hf": float,
            "collateral_base": str,
            "debt_base": str,
            "collateral_usd": float,
            "debt_usd": float,
            "available_borrows_base": str,
            "liquidation_threshold": int,
            "ltv": int,
            "emode_category": int,
            "user_configuration": str,
            "legs": str,
        },
        pk=("market", "account", "block"),
        nullable=("hf",),
    )
    # Accounts are matched case-insensitively: an index on the NOCASE form of the column
    # serves ``account = ? COLLATE NOCASE``.
    db.execute("CREATE INDEX idx_positions_account_block ON positions (account COLLATE NOCASE, block)")
    db.table("positions").create_index(["market", "block"], "idx_positions_market_block")


def _create_scans(db: sqlite_utils.Database) -> None:
    # AUTOINCREMENT: a scan id is never reused, even after the newest scans are deleted.
    db.execute(
        "CREATE TABLE scans ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " market TEXT NOT NULL,"
        " block INTEGER NOT NULL,"
        " block_hash TEXT NOT NULL,"
        " timestamp INTEGER NOT NULL,"
        " positions INTEGER NOT NULL,"
        " created_at REAL NOT NULL)"
    )


def _create_accounts(db: sqlite_utils.Database) -> None:
    _create_table(
        db,
        "accounts",
        {"market": str, "account": str, "first_seen_block": int, "source": str},
        pk=("market", "account"),
    )
    # One row per account whatever the case of its hex digits.
    db.execute("CREATE UNIQUE INDEX idx_accounts_market_account_nocase ON accounts (market, account COLLATE NOCASE)")


def _create_checkpoints(db: sqlite_utils.Database) -> None:
    _create_table(
        db,
        "checkpoints",
        {"market": str, "kind": str, "block": int, "block_hash": str, "updated_at": float},
        pk=("market", "kind"),
    )


def _create_schema_v1(db: sqlite_utils.Database) -> None:
    """Version 1: every table and index of the history."""
    for create in (
        _create_meta,
        _create_markets,
        _create_reserves,
        _create_emode_categories,
        _create_prices,
        _create_positions,
        _create_scans,
        _create_accounts,
        _create_checkpoints,
    ):
        create(db)


def _schema_v2_risk_runs(db: sqlite_utils.Database) -> None:
    """Version 2: reserve indexes per block (so a stored snapshot can be rebuilt exactly),
    and risk runs (stress, calibration) with their per-position outcomes."""
    db.execute("ALTER TABLE prices ADD COLUMN liquidity_index TEXT")
    db.execute("ALTER TABLE prices ADD COLUMN variable_borrow_index TEXT")
    db.execute(
        "CREATE TABLE risk_runs ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " kind TEXT NOT NULL,"
        " market TEXT NOT NULL,"
        " block INTEGER NOT NULL,"
        " scenario TEXT NOT NULL,"
        " inputs TEXT NOT NULL,"
        " summary TEXT NOT NULL,"
        " created_at REAL NOT NULL)"
    )
    _create_table(
        db,
        "risk_outcomes",
        {
            "run_id": int,
            "account": str,
            "hf_before": float,
            "hf_after": float,
            "liquidatable": int,
            "debt_at_risk": float,
            "collateral_seized": float,
            "bad_debt": float,
        },
        pk=("run_id", "account"),
        nullable=("hf_before", "hf_after"),
    )


def _schema_v3_alerts(db: sqlite_utils.Database) -> None:
    """Version 3: alert state per (market, subject), the alert log and the delivery outbox.

    A subject is a checksummed account, or ``oracle:<kind>:<asset>`` for an oracle anomaly.
    """
    _create_table(
        db,
        "alert_state",
        {"market": str, "subject": str, "severity": str, "since": float, "last_sent_at": float, "last_block": int,
         "updated_at": float},
        pk=("market", "subject"),
        nullable=("last_sent_at",),
    )  # fmt: skip
    db.execute(
        "CREATE TABLE alerts ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT, market TEXT NOT NULL, subject TEXT NOT NULL,"
        " block INTEGER NOT NULL, severity TEXT NOT NULL, previous TEXT NOT NULL, reason TEXT NOT NULL,"
        " hf REAL, threshold REAL, detail TEXT NOT NULL, created_at REAL NOT NULL)"
    )
    db.execute("CREATE INDEX idx_alerts_subject ON alerts (subject COLLATE NOCASE, id)")
    db.execute(
        "CREATE TABLE outbox ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT, alert_id INTEGER NOT NULL REFERENCES alerts(id),"
        " channel TEXT NOT NULL, destination TEXT NOT NULL, message TEXT NOT NULL,"
        " status TEXT NOT NULL, attempts INTEGER NOT NULL, next_attempt_at REAL NOT NULL,"
        " last_error TEXT, sent_at REAL, created_at REAL NOT NULL)"
    )
    db.execute("CREATE INDEX idx_outbox_due ON outbox (status, next_attempt_at)")


def _schema_v4_discovery_blocks(db: sqlite_utils.Database) -> None:
    """Version 4: the (block, hash) of every discovery checkpoint, to find the common
    ancestor after a reorg."""
    _create_table(db, "discovery_blocks", {"market": str, "block": int, "hash": str}, pk=("market", "block"))


def _schema_v5_aave_revisions(db: sqlite_utils.Database) -> None:
    """Version 5: what newer Aave revisions add, so their snapshots rebuild exactly.

    - reserves: the liquidation protocol fee (bps), the paused flag, the liquidation grace
      period end (3.1+, a unix timestamp; 0 = none);
    - emode_categories: the 3.2+ collateral / borrowable bitmaps (uint128 as decimal TEXT,
      NULL = pre-3.2 membership by the reserve-config eMode bits) and the 3.6 LTV-zero bitmap;
    - scans: the Pool revision read at that block (0 = not read: older rows, other protocols).
    """
    db.execute("ALTER TABLE reserves ADD COLUMN liquidation_protocol_fee INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE reserves ADD COLUMN paused INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE reserves ADD COLUMN liquidation_grace_period_until INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE emode_categories ADD COLUMN collateral_bitmap TEXT")
    db.execute("ALTER TABLE emode_categories ADD COLUMN borrowable_bitmap TEXT")
    db.execute("ALTER TABLE emode_categories ADD COLUMN ltv_zero_bitmap TEXT NOT NULL DEFAULT '0'")
    db.execute("ALTER TABLE scans ADD COLUMN revision INTEGER NOT NULL DEFAULT 0")


def _schema_v6_market_params(db: sqlite_utils.Database) -> None:
    """Version 6: change-only history of each market's parameters (every reserve's
    configuration, the eMode categories), one JSON row per block where they changed, so a
    snapshot of ANY stored block rebuilds exactly (the ``reserves`` and ``emode_categories``
    tables keep only the newest, queryable view)."""
    _create_table(
        db, "market_params", {"market": str, "block": int, "reserves": str, "emode_categories": str},
        pk=("market", "block"),
    )  # fmt: skip


def _schema_v7_orphans_and_lease(db: sqlite_utils.Database) -> None:
    """Version 7: history is deleted only on proof.

    - ``orphaned_blocks``: blocks a confirmed reorg replaced. Their position, price, parameter
      and scan rows are KEPT (queries ignore them) until the canonical replacement of the same
      block is stored, or the block is found canonical again (the mark is lifted);
    - ``writer_lease``: one writer per database (``liqmon run``): pid, host and expiry of the
      holder, renewed while it runs.
    """
    _create_table(
        db, "orphaned_blocks", {"market": str, "block": int, "hash": str, "marked_at": float, "reason": str},
        pk=("market", "block"),
    )  # fmt: skip
    _create_table(
        db, "writer_lease",
        {"name": str, "kind": str, "pid": int, "host": str, "token": str, "acquired_at": float, "renewed_at": float,
         "expires_at": float},
        pk="name",
    )  # fmt: skip


# Append only: entry i brings the schema from version i to version i + 1.
_MIGRATIONS: tuple[Migration, ...] = (
    _create_schema_v1,
    _schema_v2_risk_runs,
    _schema_v3_alerts,
    _schema_v4_discovery_blocks,
    _schema_v5_aave_revisions,
    _schema_v6_market_params,
    _schema_v7_orphans_and_lease,
)


# --------------------------------------------------------------------------- migrations


@contextmanager
def _immediate_transaction(db: sqlite_utils.Database) -> Iterator[None]:
    """A top-level transaction that takes the write lock up front (no upgrade deadlock)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.commit()
    except BaseException:
        db.rollback()
        raise


def _schema_version(db: sqlite_utils.Database, path: Path) -> int:
    if not db.table("meta").exists():
        _refuse_foreign_database(db, path)
        return 0
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        return 0
    try:
        return int(row[0])
    except ValueError:
        raise StoreError(
            f"history database {path} has an invalid schema_version {row[0]!r} in its meta"
            " table: restore it from a backup or use another database file"
        ) from None


def _refuse_foreign_database(db: sqlite_utils.Database, path: Path) -> None:
    """A database with tables but no ``meta`` table belongs to some other program."""
    if db.table_names():
        raise StoreError(
            f"{path} is an SQLite database but not a liqmon history (it has no meta table):"
            " point liqmon at another file"
        )


def _set_schema_version(db: sqlite_utils.Database, version: int) -> None:
    db.table("meta").upsert({"key": "schema_version", "value": str(version)}, pk="key")


def _migrate(db: sqlite_utils.Database, path: Path) -> None:
    current = _schema_version(db, path)
    known = len(_MIGRATIONS)
    if current > known:
        raise StoreError(
            f"history database {path} has schema version {current}, newer than this liqmon"
            f" knows ({known}): upgrade liqmon or use another database file"
        )
    for version in range(current + 1, known + 1):
        _apply_migration(db, path, version, _MIGRATIONS[version - 1])


def _apply_migration(db: sqlite_utils.Database, path: Path, version: int, migration: Migration) -> None:
    try:
        with _immediate_transaction(db):
            if _schema_version(db, path) >= version:  # another process migrated first
                return
            migration(db)
            _set_schema_version(db, version)
    except sqlite3.Error as exc:
        raise StoreError(
            f"cannot migrate history database {path} to schema version {version} ({migration.__name__}): {exc}"
        ) from exc


def _open(path: Path) -> sqlite_utils.Database:
    """Create the parent directory, connect, switch to WAL and migrate."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite_utils.Database(path, execute_plugins=False)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(_open_error(path, exc)) from exc
    try:
        db.enable_wal()
        _migrate(db, path)
    except sqlite3.Error as exc:
        db.close()
        raise StoreError(_open_error(path, exc)) from exc
    except BaseException:
        db.close()
        raise
    return db


def _open_error(path: Path, exc: BaseException) -> str:
    return (
        f"cannot open history database {path}: {exc} (check that the path is a writable"
        " liqmon SQLite database, or choose another file)"
    )


# --------------------------------------------------------------------------- rows


def _usd(amount: int, base_currency_unit: int) -> float:
    return amount / base_currency_unit


def _market_row(snapshot: MarketSnapshot, last_block: int, now: float) -> dict[str, Any]:
    addresses = getattr(snapshot, "addresses", {})
    row: dict[str, Any] = {
        "name": snapshot.market,
        "protocol": snapshot.protocol,
        "chain_id": snapshot.chain_id,
        "base_currency_unit": str(snapshot.base_currency_unit),
        "last_block": last_block,
        "updated_at": now,
    }
    row.update({key: addresses.get(key) for key in ADDRESS_KEYS})
    return row


def _emode_row(market: str, block: int, category: EModeCategory) -> dict[str, Any]:
    return {
        "market": market,
        "id": category.id,
        "ltv": category.ltv,
        "liquidation_threshold": category.liquidation_threshold,
        "liquidation_bonus": category.liquidation_bonus,
        "price_source": category.price_source,
        "label": category.label,
        "updated_block": block,
        "collateral_bitmap": _optional_text(category.collateral_bitmap),
        "borrowable_bitmap": _optional_text(category.borrowable_bitmap),
        "ltv_zero_bitmap": str(category.ltv_zero_bitmap),
    }


def _optional_text(value: int | None) -> str | None:
    return None if value is None else str(value)


def _optional_int(text: str | None) -> int | None:
    return None if text is None else int(text)


# Reserve fields read at every block (stored per block in ``prices``); the rest are parameters.
_PER_BLOCK = frozenset({"liquidity_index", "variable_borrow_index", "price"})
_RESERVE_PARAMS = tuple(f.name for f in fields(Reserve) if f.name not in _PER_BLOCK)
_EMODE_PARAMS = tuple(f.name for f in fields(EModeCategory))


def _params_json(snapshot: MarketSnapshot) -> tuple[str, str]:
    """The snapshot's parameters as (reserves, eMode categories) JSON; Python's json keeps
    integers of any size exactly (uint128 bitmaps included)."""
    reserves = [{name: getattr(r, name) for name in _RESERVE_PARAMS} for r in snapshot.reserves]
    categories = [{name: getattr(c, name) for name in _EMODE_PARAMS} for c in snapshot.emode_categories]
    return json.dumps(reserves, separators=(",", ":")), json.dumps(categories, separators=(",", ":"))


def _reserve_row(market: str, block: int, reserve: Reserve) -> dict[str, Any]:
    return {
        **reserve.as_row(market, block),
        "liquidation_protocol_fee": reserve.liquidation_protocol_fee,
        "paused": int(reserve.paused),
        "liquidation_grace_period_until": reserve.liquidation_grace_period_until,
    }


def _price_row(snapshot: MarketSnapshot, reserve: Reserve) -> dict[str, Any]:
    return {
        "market": snapshot.market,
        "asset": reserve.asset,
        "block": snapshot.block,
        "symbol": reserve.symbol,
        "price": str(reserve.price),
        "price_usd": _usd(reserve.price, snapshot.base_currency_unit),
        "timestamp": snapshot.timestamp,
        "liquidity_index": str(reserve.liquidity_index),
        "variable_borrow_index": str(reserve.variable_borrow_index),
    }


def _legs_json(position: Position) -> str:
    legs = [leg.as_dict() for leg in position.legs if leg.collateral or leg.debt]
    return json.dumps(legs, separators=(",", ":"))


def _position_row(snapshot: MarketSnapshot, position: Position) -> dict[str, Any]:
    unit = snapshot.base_currency_unit
    no_debt = position.health_factor == MAX_UINT256
    return {
        "market": snapshot.market,
        "account": position.account,
        "block": snapshot.block,
        "timestamp": snapshot.timestamp,
        "health_factor": format_wad(position.health_factor),
        "health_factor_wad": str(position.health_factor),
        "hf": None if no_debt else position.health_factor / WAD,
        "collateral_base": str(position.total_collateral_base),
        "debt_base": str(position.total_debt_base),
        "collateral_usd": _usd(position.total_collateral_base, unit),
        "debt_usd": _usd(position.total_debt_base, unit),
        "available_borrows_base": str(position.available_borrows_base),
        "liquidation_threshold": position.current_liquidation_threshold,
        "ltv": position.ltv,
        "emode_category": position.emode_category,
        "user_configuration": str(position.user_configuration),
        "legs": _legs_json(position),
    }


def _scan_row(snapshot: MarketSnapshot, now: float) -> dict[str, Any]:
    return {
        "market": snapshot.market,
        "block": snapshot.block,
        "block_hash": snapshot.block_hash,
        "timestamp": snapshot.timestamp,
        "positions": len(snapshot.positions),
        "created_at": now,
        "revision": getattr(snapshot, "revision", 0),
    }


def _check_pinned(snapshot: MarketSnapshot) -> None:
    """Every position of a snapshot belongs to its market and its one block."""
    for position in snapshot.positions:
        if position.market != snapshot.market or position.block != snapshot.block:
            raise StoreError(
                f"position of {position.account} is for {position.market}@{position.block},"
                f" not the snapshot's {snapshot.market}@{snapshot.block}: build the snapshot"
                " from one read pinned to one block"
            )


def _decode_position(row: dict[str, Any]) -> dict[str, Any]:
    row["legs"] = json.loads(row["legs"]) if row["legs"] else []
    return row


Clause = tuple[str, tuple[Any, ...]]


def _live(alias: str) -> str:
    """SQL: the row of ``alias`` is not on a block marked orphaned."""
    return (
        "NOT EXISTS (SELECT 1 FROM orphaned_blocks AS ob"
        f" WHERE ob.market = {alias}.market AND ob.block = {alias}.block)"
    )


def _where(clauses: Sequence[Clause]) -> tuple[str, list[Any]]:
    """``[("block >= ?", (5,)), ...]`` -> ``("WHERE block >= ? AND ...", [5, ...])``."""
    if not clauses:
        return "", []
    params = [value for _, values in clauses for value in values]
    return "WHERE " + " AND ".join(sql for sql, _ in clauses), params


def _market_clause(column: str, market: str | None) -> list[Clause]:
    return [] if market is None else [(f"{column} = ?", (market,))]


# --------------------------------------------------------------------------- store


class Store:
    """The history database. Open once per process; every public write is atomic."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._db = _open(self.path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ----------------------------------------------------------------- transactions

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all.

        A nested call joins the outer transaction (it commits only with it); an exception
        escaping a nested block undoes that block's writes (a savepoint) and propagates.
        """
        try:
            if self._db.conn.in_transaction:
                with self._db.atomic():
                    yield
            else:
                with _immediate_transaction(self._db):
                    yield
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write history database {self.path}: {exc}") from exc

    # ----------------------------------------------------------------- writer lease

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

    # ----------------------------------------------------------------- accounts

    def add_accounts(self, market: str, accounts: Iterable[tuple[str, int]], source: str) -> int:
        """Record ``(account, first_seen_block)`` pairs; known accounts stay unchanged.

        Returns how many accounts were new (accounts are compared case-insensitively).
        """
        if source not in ACCOUNT_SOURCES:
            raise StoreError(f"account source {source!r} is not one of {ACCOUNT_SOURCES}")
        rows = [
            {"market": market, "account": account, "first_seen_block": block, "source": source}
            for account, block in accounts
        ]
        with self.transaction():
            before = self._count_accounts(market)
            self._db.table("accounts").insert_all(rows, ignore=True)
            return self._count_accounts(market) - before

    def _count_accounts(self, market: str) -> int:
        row = self._db.execute("SELECT count(*) FROM accounts WHERE market = ?", [market])
        return int(row.fetchone()[0])

    def accounts(self, market: str) -> list[str]:
        rows = self._rows("SELECT account FROM accounts WHERE market = ?", [market])
        return sorted(row["account"] for row in rows)

    # ----------------------------------------------------------------- checkpoints

    def get_checkpoint(self, market: str, kind: str) -> Checkpoint | None:
        rows = self._rows(
            "SELECT block, block_hash, updated_at FROM checkpoints WHERE market = ? AND kind = ?",
            [market, kind],
        )
        return Checkpoint(**rows[0]) if rows else None

    def set_checkpoint(self, market: str, kind: str, block: int, block_hash: str) -> None:
        row = {
            "market": market,
            "kind": kind,
            "block": block,
            "block_hash": block_hash,
            "updated_at": self._clock(),
        }
        with self.transaction():
            self._db.table("checkpoints").upsert(row, pk=("market", "kind"))

    def record_discovery(self, market: str, kind: str, block: int, block_hash: str, accounts: Iterable[str]) -> int:
        """ONE transaction: borrowers found up to ``block``, the checkpoint, its hash record."""
        with self.transaction():
            new = self.add_accounts(market, [(a, block) for a in accounts], "logs")
            self.set_checkpoint(market, kind, block, block_hash)
            self._db.table("discovery_blocks").upsert({"market": market, "block": block, "hash": block_hash},
                                                      pk=("market", "block"))  # fmt: skip
        return new

    def discovery_blocks(self, market: str, limit: int = 256) -> list[tuple[int, str]]:
        rows = self._rows(
            "SELECT block, hash FROM discovery_blocks WHERE market = ? ORDER BY block DESC LIMIT ?", [market, limit]
        )
        return [(r["block"], r["hash"]) for r in rows]

    def rollback_discovery(self, market: str, kind: str, ancestor: tuple[int, str] | None) -> int:
        """After a reorg: forget borrowers first seen after the common ancestor (their Borrow
        may be gone) and move the checkpoint back to it. Returns the accounts removed."""
        block = ancestor[0] if ancestor else -1
        with self.transaction():
            cursor = self._db.execute(
                "DELETE FROM accounts WHERE market = ? AND source = 'logs' AND first_seen_block > ?", [market, block]
            )
            self._db.execute("DELETE FROM discovery_blocks WHERE market = ? AND block > ?", [market, block])
            if ancestor is None:
                self._db.execute("DELETE FROM checkpoints WHERE market = ? AND kind = ?", [market, kind])
            else:
                self.set_checkpoint(market, kind, ancestor[0], ancestor[1])
        return int(cursor.rowcount)

    def recent_scans(self, market: str, limit: int = 64) -> list[tuple[int, str]]:
        """(block, hash) of the newest scanned blocks not marked orphaned, newest first."""
        rows = self._rows(
            f"SELECT block, block_hash FROM scans AS s WHERE market = ? AND {_live('s')}"
            " GROUP BY block ORDER BY block DESC LIMIT ?",
            [market, limit],
        )
        return [(r["block"], r["block_hash"]) for r in rows]

    def mark_orphaned(self, market: str, blocks: Sequence[tuple[int, str]], reason: str) -> int:
        """Mark (block, stored hash) pairs orphaned, in ONE transaction: their rows are kept
        but no query returns them any more. Returns how many blocks were newly marked."""
        now = self._clock()
        with self.transaction():
            before = self._count("orphaned_blocks", market)
            self._db.table("orphaned_blocks").insert_all(
                ({"market": market, "block": b, "hash": h, "marked_at": now, "reason": reason} for b, h in blocks),
                ignore=True,
            )
            return self._count("orphaned_blocks", market) - before

    def unmark_orphaned(self, market: str, blocks: Sequence[int]) -> None:
        """The blocks are canonical after all (a node had lied or lagged): their rows count again."""
        if not blocks:
            return
        marks = ",".join("?" * len(blocks))
        with self.transaction():
            self._db.execute(f"DELETE FROM orphaned_blocks WHERE market = ? AND block IN ({marks})", [market, *blocks])

    def orphaned_blocks(self, market: str) -> list[tuple[int, str]]:
        rows = self._rows("SELECT block, hash FROM orphaned_blocks WHERE market = ? ORDER BY block", [market])
        return [(r["block"], r["hash"]) for r in rows]

    def _count(self, table: str, market: str) -> int:
        return int(self._db.execute(f"SELECT count(*) FROM {table} WHERE market = ?", [market]).fetchone()[0])

    def _replace_orphaned(self, market: str, block: int) -> None:
        """The canonical replacement of an orphaned block is being stored: the orphan's rows go now."""
        if not self._db.execute(
            "SELECT 1 FROM orphaned_blocks WHERE market = ? AND block = ?", [market, block]
        ).fetchone():
            return
        for table in ("positions", "prices", "scans", "market_params"):
            self._db.execute(f"DELETE FROM {table} WHERE market = ? AND block = ?", [market, block])
        self._db.execute("DELETE FROM orphaned_blocks WHERE market = ? AND block = ?", [market, block])

    def _check_same_block(self, snapshot: MarketSnapshot) -> None:
        """A block stored with another hash (and not marked orphaned) is not overwritten: the
        reorg that would justify it is not proven yet."""
        other = self._db.execute(
            f"SELECT block_hash FROM scans AS s WHERE market = ? AND block = ? AND block_hash != ? AND {_live('s')}"
            " LIMIT 1",
            [snapshot.market, snapshot.block, snapshot.block_hash],
        ).fetchone()
        if other is not None:
            raise StoreError(
                f"{snapshot.market}: block {snapshot.block} is stored with hash {str(other[0])[:12]}... and the node"
                f" now gives {snapshot.block_hash[:12]}...: a reorg not proven yet, so the stored rows stay and"
                " nothing is written; the next scan (a newer block) proceeds"
            )

    def drop_blocks(self, market: str, blocks: Sequence[int]) -> None:
        """ONE transaction: positions, prices and scans of blocks no longer canonical."""
        if not blocks:
            return
        marks = ",".join("?" * len(blocks))
        with self.transaction():
            for table in ("positions", "prices", "scans", "market_params"):
                self._db.execute(f"DELETE FROM {table} WHERE market = ? AND block IN ({marks})", [market, *blocks])

    # ----------------------------------------------------------------- snapshots

    def save_snapshot(self, snapshot: MarketSnapshot) -> int:
        """Store a whole snapshot in ONE transaction; returns the id of its scans row.

        Saving the same block again replaces its price and position rows (never duplicates)
        and logs one more scan.
        """
        _check_pinned(snapshot)
        with self.transaction():
            self._replace_orphaned(snapshot.market, snapshot.block)
            self._check_same_block(snapshot)
            self._upsert_market(snapshot)
            self._upsert_reserves(snapshot)
            self._upsert_emode_categories(snapshot)
            self._record_params(snapshot)
            self._upsert_prices(snapshot)
            self._upsert_positions(snapshot)
            return self._insert_scan(snapshot)

    def _upsert_market(self, snapshot: MarketSnapshot) -> None:
        previous = self._db.execute("SELECT last_block FROM markets WHERE name = ?", [snapshot.market]).fetchone()
        last_block = snapshot.block if previous is None else max(snapshot.block, previous[0])
        row = _market_row(snapshot, last_block, self._clock())
        self._db.table("markets").upsert(row, pk="name")

    def _upsert_reserves(self, snapshot: MarketSnapshot) -> None:
        rows = [_reserve_row(snapshot.market, snapshot.block, reserve) for reserve in snapshot.reserves]
        self._db.table("reserves").upsert_all(rows, pk=("market", "asset"))

    def _upsert_emode_categories(self, snapshot: MarketSnapshot) -> None:
        rows = [_emode_row(snapshot.market, snapshot.block, category) for category in snapshot.emode_categories]
        self._db.table("emode_categories").upsert_all(rows, pk=("market", "id"))

    def _record_params(self, snapshot: MarketSnapshot) -> None:
        """Change-only: a ``market_params`` row at this block only if the parameters differ
        from those in force just before it (a reorg drops a suffix of blocks, rows included)."""
        reserves, categories = _params_json(snapshot)
        before = self._db.execute(
            "SELECT reserves, emode_categories FROM market_params AS mp"
            f" WHERE market = ? AND block < ? AND {_live('mp')} ORDER BY block DESC LIMIT 1",
            [snapshot.market, snapshot.block],
        ).fetchone()
        table = self._db.table("market_params")
        if before is not None and tuple(before) == (reserves, categories):
            self._db.execute(
                "DELETE FROM market_params WHERE market = ? AND block = ?", [snapshot.market, snapshot.block]
            )
            return
        row = {"market": snapshot.market, "block": snapshot.block, "reserves": reserves, "emode_categories": categories}
        table.upsert(row, pk=("market", "block"))

    def _upsert_prices(self, snapshot: MarketSnapshot) -> None:
        rows = [_price_row(snapshot, reserve) for reserve in snapshot.reserves]
        self._db.table("prices").upsert_all(rows, pk=("market", "asset", "block"))

    def _upsert_positions(self, snapshot: MarketSnapshot) -> None:
        rows = [_position_row(snapshot, position) for position in snapshot.positions]
        self._db.table("positions").upsert_all(rows, pk=("market", "account", "block"))

    def _insert_scan(self, snapshot: MarketSnapshot) -> int:
        scan_id = self._db.table("scans").insert(_scan_row(snapshot, self._clock())).last_pk
        if not isinstance(scan_id, int):
            raise StoreError(f"history database {self.path} returned no id for the new scan")
        return scan_id

    # ----------------------------------------------------------------- queries

    def position_history(
        self,
        account: str,
        *,
        market: str | None = None,
        since_block: int | None = None,
        since_time: float | None = None,
    ) -> list[dict[str, Any]]:
        """An account's position rows ordered by block (``legs`` decoded from JSON)."""
        clauses: list[Clause] = [("account = ? COLLATE NOCASE", (account,)), (_live("positions"), ())]
        if market is not None:
            clauses.append(("market = ?", (market,)))
        if since_block is not None:
            clauses.append(("block >= ?", (since_block,)))
        if since_time is not None:
            clauses.append(("timestamp >= ?", (since_time,)))
        where, params = _where(clauses)
        rows = self._rows(f"SELECT * FROM positions {where} ORDER BY block, market", params)
        return [_decode_position(row) for row in rows]

    def latest_positions(self, market: str | None = None) -> list[dict[str, Any]]:
        """Each account's row at the newest scanned block of its market, riskiest first.

        Sorted by ``hf`` ascending; positions without debt (``hf`` NULL) come last.
        """
        where, params = _where(_market_clause("p.market", market))
        sql = (
            "SELECT p.* FROM positions AS p"
            f" JOIN (SELECT market, max(block) AS block FROM scans AS sc WHERE {_live('sc')} GROUP BY market) AS s"
            " ON p.market = s.market AND p.block = s.block"
            f" {where} ORDER BY p.hf IS NULL, p.hf, p.market, p.account"
        )
        return [_decode_position(row) for row in self._rows(sql, params)]

    def price_history(
        self,
        market: str,
        asset: str | None = None,
        *,
        since_block: int | None = None,
        since_time: float | None = None,
    ) -> list[dict[str, Any]]:
        """Price rows of a market ordered by block; ``asset`` is an address or a symbol."""
        clauses: list[Clause] = [("market = ?", (market,)), (_live("prices"), ())]
        if asset is not None:
            clauses.append(("(asset = ? COLLATE NOCASE OR symbol = ? COLLATE NOCASE)", (asset, asset)))
        if since_block is not None:
            clauses.append(("block >= ?", (since_block,)))
        if since_time is not None:
            clauses.append(("timestamp >= ?", (since_time,)))
        where, params = _where(clauses)
        return self._rows(f"SELECT * FROM prices {where} ORDER BY block, asset", params)

    def load_snapshot(self, market: str, block: int | None = None) -> MarketSnapshot:
        """Rebuild the snapshot stored for ``market`` at ``block`` (default: its newest scan),
        exact integers included, so risk questions need no node."""
        return snapshot_from_rows(self, market, block)

    # ----------------------------------------------------------------- risk runs

    def save_risk_run(
        self,
        kind: str,
        market: str,
        block: int,
        scenario: str,
        inputs: dict[str, Any],
        summary: dict[str, Any],
        outcomes: Sequence[dict[str, Any]] = (),
    ) -> int:
        """A stress or calibration run and its per-position outcomes, in one transaction."""
        with self.transaction():
            row = {
                "kind": kind, "market": market, "block": block, "scenario": scenario,
                "inputs": json.dumps(inputs, sort_keys=True, default=str),
                "summary": json.dumps(summary, sort_keys=True, default=str),
                "created_at": self._clock(),
            }  # fmt: skip
            run_id = self._db.table("risk_runs").insert(row).last_pk
            if not isinstance(run_id, int):
                raise StoreError(f"history database {self.path} returned no id for the new risk run")
            self._db.table("risk_outcomes").insert_all(({"run_id": run_id, **o} for o in outcomes), batch_size=2000)
            return run_id

    def risk_runs(self, market: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        clauses = _market_clause("market", market) + ([] if kind is None else [("kind = ?", (kind,))])
        where, params = _where(clauses)
        rows = self._rows(f"SELECT * FROM risk_runs {where} ORDER BY id", params)
        for row in rows:
            row["inputs"], row["summary"] = json.loads(row["inputs"]), json.loads(row["summary"])
        return rows

    def risk_outcomes(self, run_id: int) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM risk_outcomes WHERE run_id = ? ORDER BY hf_after, account", [run_id])

    # ----------------------------------------------------------------- alerts

    def alert_states(self, market: str) -> dict[str, dict[str, Any]]:
        """The current alert state of every subject of ``market``."""
        rows = self._rows("SELECT * FROM alert_state WHERE market = ?", [market])
        return {row["subject"]: row for row in rows}

    def record_alerts(
        self,
        market: str,
        block: int,
        states: Sequence[dict[str, Any]],
        alerts: Sequence[tuple[dict[str, Any], Sequence[dict[str, Any]]]],
    ) -> list[int]:
        """ONE transaction: new alert states, alert log rows and their outbox rows.

        ``states``: rows of alert_state (market, subject, severity, since, last_sent_at);
        ``alerts``: (alert row, outbox rows without alert_id) pairs. Returns the alert ids.
        """
        now = self._clock()
        ids: list[int] = []
        with self.transaction():
            for state in states:
                row = {"market": market, "last_block": block, "updated_at": now, **state}
                self._db.table("alert_state").upsert(row, pk=("market", "subject"))
            for alert, deliveries in alerts:
                alert_id = (
                    self._db.table("alerts")
                    .insert({"market": market, "block": block, "created_at": now, **alert})
                    .last_pk
                )
                if not isinstance(alert_id, int):
                    raise StoreError(f"history database {self.path} returned no id for a new alert")
                ids.append(alert_id)
                for delivery in deliveries:
                    self._db.table("outbox").insert(
                        {"alert_id": alert_id, "status": "pending", "attempts": 0, "next_attempt_at": now,
                         "created_at": now, **delivery}
                    )  # fmt: skip
        return ids

    def due_deliveries(self, now: float, limit: int = 100) -> list[dict[str, Any]]:
        """Pending rows due at ``now``, oldest first, FIFO per destination: a row waits while
        an older pending row for the same channel and destination is scheduled later."""
        return self._rows(
            "SELECT * FROM outbox AS o WHERE o.status = 'pending' AND o.next_attempt_at <= ?"
            " AND NOT EXISTS (SELECT 1 FROM outbox AS e WHERE e.status = 'pending' AND e.channel = o.channel"
            " AND e.destination = o.destination AND e.id < o.id AND e.next_attempt_at > ?)"
            " ORDER BY o.id LIMIT ?",
            [now, now, limit],
        )

    def mark_delivery(
        self, outbox_id: int, *, status: str, attempts: int, next_attempt_at: float, error: str | None = None
    ) -> None:
        now = self._clock()
        with self.transaction():
            self._db.execute(
                "UPDATE outbox SET status = ?, attempts = ?, next_attempt_at = ?, last_error = ?,"
                " sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END WHERE id = ?",
                [status, attempts, next_attempt_at, error, status, now, outbox_id],
            )

    def add_delivery(self, alert_id: int, channel: str, destination: str, message: str) -> int:
        """One more outbox row for an alert (a fallback route); returns its id."""
        now = self._clock()
        with self.transaction():
            row_id = self._db.table("outbox").insert(
                {"alert_id": alert_id, "channel": channel, "destination": destination, "message": message,
                 "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now}
            ).last_pk  # fmt: skip
        if not isinstance(row_id, int):
            raise StoreError(f"history database {self.path} returned no id for the new outbox row")
        return row_id

    def delivery_failures(self, since: float) -> list[dict[str, Any]]:
        """Outbox rows given up on at or after ``since`` (a failed row's next_attempt_at is
        the time it failed), newest first."""
        return self._rows(
            "SELECT id, alert_id, channel, destination, attempts, last_error, next_attempt_at AS failed_at"
            " FROM outbox WHERE status = 'failed' AND next_attempt_at >= ? ORDER BY next_attempt_at DESC, id DESC",
            [since],
        )

    def outbox(self, status: str | None = None) -> list[dict[str, Any]]:
        where, params = _where([] if status is None else [("status = ?", (status,))])
        return self._rows(f"SELECT * FROM outbox {where} ORDER BY id", params)

    def alerts(
        self, *, market: str | None = None, subject: str | None = None, since_block: int | None = None
    ) -> list[dict[str, Any]]:
        clauses = _market_clause("market", market)
        if subject is not None:
            clauses.append(("subject = ? COLLATE NOCASE", (subject,)))
        if since_block is not None:
            clauses.append(("block >= ?", (since_block,)))
        where, params = _where(clauses)
        return self._rows(f"SELECT * FROM alerts {where} ORDER BY id", params)

    def markets(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM markets ORDER BY name", [])

    def scans(self, market: str | None = None) -> list[dict[str, Any]]:
        """Scans of blocks not marked orphaned, in the order they were stored."""
        where, params = _where([*_market_clause("market", market), (_live("scans"), ())])
        return self._rows(f"SELECT * FROM scans {where} ORDER BY id", params)

    def _rows(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        try:
            return [dict(row) for row in self._db.query(sql, params)]
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read history database {self.path}: {exc}") from exc


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
            with Store(self.path) as store:
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
        with suppress(StoreError), Store(self.path) as store:
            store.release_lease(self.lease)


def _lease_row(lease: Lease) -> dict[str, Any]:
    return {
        "kind": lease.kind, "pid": lease.pid, "host": lease.host, "token": lease.token,
        "acquired_at": lease.acquired_at, "renewed_at": lease.renewed_at, "expires_at": lease.expires_at,
    }  # fmt: skip


# --------------------------------------------------------------------------- snapshot rebuild


def snapshot_from_rows(store: Store, market: str, block: int | None) -> MarketSnapshot:
    rows = store._rows
    found = rows("SELECT * FROM markets WHERE name = ?", [market])
    if not found:
        known = ", ".join(m["name"] for m in store.markets()) or "none"
        raise StoreError(
            f"no stored scan of market {market!r} in {store.path} (stored markets: {known}); run `liqmon scan` first"
        )
    meta = found[0]
    if block is None:
        block = rows(f"SELECT max(block) AS b FROM scans AS s WHERE market = ? AND {_live('s')}", [market])[0]["b"]
    scan = rows(
        f"SELECT * FROM scans AS s WHERE market = ? AND block = ? AND {_live('s')} ORDER BY id DESC LIMIT 1",
        [market, block],
    )
    if not scan:
        raise StoreError(f"market {market!r} has no stored scan at block {block} in {store.path}")
    prices = {r["asset"]: r for r in rows("SELECT * FROM prices WHERE market = ? AND block = ?", [market, block])}
    params = rows(
        f"SELECT * FROM market_params AS mp WHERE market = ? AND block <= ? AND {_live('mp')}"
        " ORDER BY block DESC LIMIT 1",
        [market, block],
    )
    if params:  # the parameters in force at the block
        reserve_params = json.loads(params[0]["reserves"])
        category_rows = json.loads(params[0]["emode_categories"])
    else:  # stored before schema 6: the newest parameters
        reserve_params = rows("SELECT * FROM reserves WHERE market = ? ORDER BY reserve_id", [market])
        category_rows = rows("SELECT * FROM emode_categories WHERE market = ? ORDER BY id", [market])
    if any(prices.get(r["asset"], {}).get("liquidity_index") is None for r in reserve_params):
        raise StoreError(f"the scan of {market} at block {block} predates reserve indexes: scan again")
    if params:
        reserves = tuple(_reserve_from_params(r, prices[r["asset"]]) for r in reserve_params)
        categories = tuple(EModeCategory(**c) for c in category_rows)
    else:
        reserves = tuple(_reserve_from_row(r, prices[r["asset"]]) for r in reserve_params)
        categories = tuple(_emode_from_row(c) for c in category_rows)
    positions = tuple(
        _position_from_row(p, reserves)
        for p in rows("SELECT * FROM positions WHERE market = ? AND block = ? ORDER BY account", [market, block])
    )
    return MarketSnapshot(
        market=market, protocol=meta["protocol"], chain_id=meta["chain_id"], block=block,
        block_hash=scan[0]["block_hash"], timestamp=scan[0]["timestamp"],
        base_currency_unit=int(meta["base_currency_unit"]), reserves=reserves, emode_categories=categories,
        positions=positions, addresses={k: meta[k] for k in ADDRESS_KEYS if meta.get(k)},
        revision=scan[0]["revision"],
    )  # fmt: skip


def _reserve_from_params(params: dict[str, Any], price: dict[str, Any]) -> Reserve:
    return Reserve(
        **params, liquidity_index=int(price["liquidity_index"]),
        variable_borrow_index=int(price["variable_borrow_index"]), price=int(price["price"]),
    )  # fmt: skip


def _emode_from_row(c: dict[str, Any]) -> EModeCategory:
    return EModeCategory(
        c["id"], c["ltv"], c["liquidation_threshold"], c["liquidation_bonus"], c["price_source"], c["label"],
        collateral_bitmap=_optional_int(c["collateral_bitmap"]),
        borrowable_bitmap=_optional_int(c["borrowable_bitmap"]), ltv_zero_bitmap=int(c["ltv_zero_bitmap"]),
    )  # fmt: skip


def _reserve_from_row(r: dict[str, Any], price: dict[str, Any]) -> Reserve:
    return Reserve(
        asset=r["asset"], symbol=r["symbol"], decimals=r["decimals"], reserve_id=r["reserve_id"], ltv=r["ltv"],
        liquidation_threshold=r["liquidation_threshold"], liquidation_bonus=r["liquidation_bonus"],
        emode_category=r["emode_category"], active=bool(r["active"]), frozen=bool(r["frozen"]),
        borrowing_enabled=bool(r["borrowing_enabled"]), a_token=r["a_token"], stable_debt_token=r["stable_debt_token"],
        variable_debt_token=r["variable_debt_token"], liquidity_index=int(price["liquidity_index"]),
        variable_borrow_index=int(price["variable_borrow_index"]), price=int(price["price"]),
        liquidation_protocol_fee=r["liquidation_protocol_fee"], paused=bool(r["paused"]),
        liquidation_grace_period_until=r["liquidation_grace_period_until"],
    )  # fmt: skip


def _position_from_row(p: dict[str, Any], reserves: Sequence[Reserve]) -> Position:
    stored = {leg["asset"]: leg for leg in json.loads(p["legs"] or "[]")}
    legs = []
    for r in reserves:
        leg = stored.get(r.asset)
        if leg is None:
            legs.append(AssetLeg(r.asset, r.symbol, 0, 0, 0, 0, 0, False))
            continue
        legs.append(
            AssetLeg(
                r.asset, r.symbol, int(leg["scaled_collateral"]), int(leg["collateral"]),
                int(leg["scaled_variable_debt"]), int(leg["variable_debt"]), int(leg["stable_debt"]),
                bool(leg["used_as_collateral"]),
            )
        )  # fmt: skip
    return Position(
        market=p["market"], account=p["account"], block=p["block"], health_factor=int(p["health_factor_wad"]),
        total_collateral_base=int(p["collateral_base"]), total_debt_base=int(p["debt_base"]),
        available_borrows_base=int(p["available_borrows_base"]),
        current_liquidation_threshold=p["liquidation_threshold"], ltv=p["ltv"], emode_category=p["emode_category"],
        user_configuration=int(p["user_configuration"]), legs=tuple(legs),
    )  # fmt: skip
