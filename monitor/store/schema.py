"""Tables, indexes and migrations of the history database.

``meta.schema_version`` counts the applied entries of :data:`_MIGRATIONS`; each migration
runs in its own transaction. Adding a table is one function appended to :data:`_MIGRATIONS`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from monitor.errors import StoreError
from monitor.store.history_migration import schema_v9_compact_history
from monitor.store.schema_bot import schema_v10_telegram_bot
from monitor.store.schema_silences import schema_v8_silences
from monitor.store.views import create_views, views_current

Migration = Callable[[sqlite_utils.Database], None]

ACCOUNT_SOURCES = ("logs", "watchlist")
ADDRESS_KEYS = ("pool_addresses_provider", "pool", "oracle", "data_provider")


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
    schema_v8_silences,
    schema_v9_compact_history,
    schema_v10_telegram_bot,
)


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
        # WAL + NORMAL: a commit survives a crash of the process (not of the machine), and a
        # block's write does not wait for an fsync (~10 ms a commit here)
        db.execute("PRAGMA synchronous=NORMAL")
        _migrate(db, path)
        _refresh_views(db, path)
    except sqlite3.Error as exc:
        db.close()
        raise StoreError(_open_error(path, exc)) from exc
    except BaseException:
        db.close()
        raise
    return db


def _refresh_views(db: sqlite_utils.Database, path: Path) -> None:
    """The readable views of this liqmon's text (they hold no data: remade, not migrated)."""
    if _schema_version(db, path) < 9:
        return
    if not views_current(db):
        with _immediate_transaction(db):
            if not views_current(db):  # another process remade them first
                create_views(db)


def _open_error(path: Path, exc: BaseException) -> str:
    return (
        f"cannot open history database {path}: {exc} (check that the path is a writable"
        " liqmon SQLite database, or choose another file)"
    )
