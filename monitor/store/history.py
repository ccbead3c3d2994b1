"""Change-only, compact history of positions, legs, prices and reserve indexes (portable SQL).

What is written, and when (the decision lives here, in the write path; callers call
``Store.save_snapshot(snapshot)`` every block):

- ``position_rows``: one row per account when its balances change (scaled balances,
  collateral flags, eMode), when its HF crosses a band of :attr:`HistoryPolicy.hf_bands`,
  when its HF moved by :attr:`HistoryPolicy.hf_move` (relative) since its last written row,
  at the :attr:`HistoryPolicy.heartbeat_s` heartbeat, and when it leaves the snapshot
  (``closed``); ``reason`` holds the bits of :data:`REASONS`;
- ``position_legs``: one row per (account, asset) leg, only when that leg changes (a zero row
  closes a leg); a heartbeat or HF-only position row carries no legs;
- ``price_rows``: a reserve's price only when it changes; ``reserve_indexes``: its normalized
  indexes only when they change. So the exact HF at ANY stored block is the protocol's math
  over the legs, indexes and prices in force at that block (the latest rows at or before it).

Ids: ``account_ids`` / ``asset_ids`` map (market, address) to small integers, so the big
tables are keyed by integers (``WITHOUT ROWID`` on SQLite: the primary key is the table).
Exact integers (uint256) are decimal TEXT on both dialects. Every statement here is portable
(``?`` placeholders, ``INSERT ... ON CONFLICT``, ``NOT EXISTS``, ``IN (SELECT ...)``, no
SQLite-only functions) and runs through an :class:`Executor` (``execute`` -> list of tuples,
``executemany``) inside the caller's transaction: on SQLite :class:`SqliteExecutor` over the
store's connection, on PostgreSQL a :class:`monitor.store.connection.SqlConnection`.
Rows of a block listed in ``orphaned_blocks`` (market, block) are ignored by every read.
"""

from __future__ import annotations

import sqlite3
from bisect import bisect_right
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from monitor.models import MAX_UINT256, WAD, MarketSnapshot, Position

Dialect = Literal["sqlite", "postgresql"]

# reason bits of a position row
FIRST: Final = 1
BALANCES: Final = 2
BAND: Final = 4
MOVE: Final = 8
HEARTBEAT: Final = 16
CLOSED: Final = 32
MIGRATED: Final = 64
REASONS: Final = {
    "first": FIRST, "balances": BALANCES, "band": BAND, "move": MOVE, "heartbeat": HEARTBEAT, "closed": CLOSED,
    "migrated": MIGRATED,
}  # fmt: skip

AAVE: Final = "aave_v3"  # legs of this protocol: unscaled balances follow from scaled x index


def reason_names(reason: int) -> list[str]:
    return [name for name, bit in REASONS.items() if reason & bit]


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    """When a position row is written besides a balance change (``store.history`` config)."""

    hf_bands: tuple[float, ...] = (1.0, 1.05, 1.1, 1.25, 1.5, 2.0)
    hf_move: float = 0.05  # relative HF move since the last written row
    heartbeat_s: int = 3600  # at least one row per account this often (block time)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Downsampling of old rows (``store.retention`` config): rows younger than ``full_days``
    (block time) all stay; older ones are thinned to one scanned block per ``downsample_s``
    (the last of each interval), keeping at each kept block exactly the prices, indexes and
    position row in force there, so every kept block still rebuilds exactly. Leg rows (balance
    changes) and position rows written for a balance change, a band crossing, a first or a
    closing row always stay. ``full_days`` None: nothing is ever thinned."""

    full_days: float | None = 30.0
    downsample_s: int = 3600


_ALWAYS_KEPT: Final = BALANCES | BAND | FIRST | CLOSED | MIGRATED


class Executor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...


class SqliteExecutor:
    """Statements on an open sqlite3 connection, inside whatever transaction it is in (never commits)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self._conn.execute(sql, tuple(params))
        try:
            return [tuple(r) for r in cursor.fetchall()] if cursor.description is not None else []
        finally:
            cursor.close()

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._conn.executemany(sql, rows)


# --------------------------------------------------------------------------- schema

# (table, columns {name: kind}, primary key, nullable); kinds as monitor.store.connection.COLUMN_TYPES
TableSpec = tuple[str, dict[str, str], tuple[str, ...], tuple[str, ...]]

TABLES: Final[tuple[TableSpec, ...]] = (
    ("account_ids", {"id": "int", "market": "text", "account": "text"}, ("id",), ()),
    ("asset_ids", {"id": "int", "market": "text", "asset": "text", "symbol": "text", "decimals": "int"}, ("id",), ()),
    (
        "position_rows",
        {"account_id": "int", "block": "int", "timestamp": "int", "reason": "int", "health_factor": "uint256",
         "collateral_base": "uint256", "debt_base": "uint256", "available_borrows_base": "uint256",
         "liquidation_threshold": "int", "ltv": "int", "emode_category": "int", "user_configuration": "uint256",
         "hf_stored_index": "uint256"},
        ("account_id", "block"),
        ("health_factor", "hf_stored_index"),
    ),
    (
        "position_legs",
        {"account_id": "int", "asset_id": "int", "block": "int", "scaled_collateral": "uint256",
         "scaled_variable_debt": "uint256", "stable_debt": "uint256", "used_as_collateral": "int",
         "collateral": "uint256", "variable_debt": "uint256"},
        ("account_id", "asset_id", "block"),
        ("collateral", "variable_debt"),
    ),
    (
        "price_rows",
        {"asset_id": "int", "block": "int", "timestamp": "int", "price": "uint256", "price_usd": "float"},
        ("asset_id", "block"),
        (),
    ),
    (
        "reserve_indexes",
        {"asset_id": "int", "block": "int", "liquidity_index": "uint256", "variable_borrow_index": "uint256"},
        ("asset_id", "block"),
        (),
    ),
)  # fmt: skip

# foreign keys (column, table, column): datasette and sqlite-utils link rows by them
FOREIGN_KEYS: Final[Mapping[str, tuple[tuple[str, str, str], ...]]] = {
    "account_ids": (("market", "markets", "name"),),
    "asset_ids": (("market", "markets", "name"),),
    "position_rows": (("account_id", "account_ids", "id"),),
    "position_legs": (("account_id", "account_ids", "id"), ("asset_id", "asset_ids", "id")),
    "price_rows": (("asset_id", "asset_ids", "id"),),
    "reserve_indexes": (("asset_id", "asset_ids", "id"),),
}

INDEXES: Final = (
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_account_ids_market_account ON account_ids (market, account)",
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_asset_ids_market_asset ON asset_ids (market, asset)",
    "CREATE INDEX IF NOT EXISTS idx_price_rows_time ON price_rows (asset_id, timestamp)",
)

_TYPES: Final[Mapping[str, Mapping[str, str]]] = {
    "int": {"sqlite": "INTEGER", "postgresql": "BIGINT"},
    "float": {"sqlite": "REAL", "postgresql": "DOUBLE PRECISION"},
    "text": {"sqlite": "TEXT", "postgresql": "TEXT"},
    "uint256": {"sqlite": "TEXT", "postgresql": "TEXT"},
}


def ddl(dialect: Dialect) -> list[str]:
    """CREATE statements of the history tables (``WITHOUT ROWID`` on SQLite) and their indexes."""
    statements = []
    for name, columns, pk, nullable in TABLES:
        cols = [f"{c} {_TYPES[k][dialect]}{'' if c in nullable else ' NOT NULL'}" for c, k in columns.items()]
        cols.append(f"PRIMARY KEY ({', '.join(pk)})")
        cols += [f"FOREIGN KEY ({c}) REFERENCES {table} ({ref})" for c, table, ref in FOREIGN_KEYS.get(name, ())]
        suffix = " WITHOUT ROWID" if dialect == "sqlite" and pk != ("id",) else ""
        statements.append(f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(cols)}){suffix}")
    return [*statements, *INDEXES]


def create_tables(db: Executor, dialect: Dialect) -> None:
    for statement in ddl(dialect):
        db.execute(statement)


# --------------------------------------------------------------------------- SQL

_LIVE = "{col} NOT IN (SELECT ob.block FROM orphaned_blocks ob WHERE ob.market = ?)"
_ACCOUNTS_OF = "account_id IN (SELECT id FROM account_ids WHERE market = ?)"
_ASSETS_OF = "asset_id IN (SELECT id FROM asset_ids WHERE market = ?)"
_TABLES_OF: Final = (("position_rows", _ACCOUNTS_OF), ("position_legs", _ACCOUNTS_OF), ("price_rows", _ASSETS_OF),
                     ("reserve_indexes", _ASSETS_OF))  # fmt: skip

POSITION_COLUMNS: Final = tuple(TABLES[2][1])
LEG_COLUMNS: Final = tuple(TABLES[3][1])
_INSERT_POSITION = (
    f"INSERT INTO position_rows ({', '.join(POSITION_COLUMNS)}) VALUES ({', '.join('?' * len(POSITION_COLUMNS))})"
)
_INSERT_LEG = f"INSERT INTO position_legs ({', '.join(LEG_COLUMNS)}) VALUES ({', '.join('?' * len(LEG_COLUMNS))})"
_INSERT_PRICE = "INSERT INTO price_rows (asset_id, block, timestamp, price, price_usd) VALUES (?, ?, ?, ?, ?)"
_INSERT_INDEX = (
    "INSERT INTO reserve_indexes (asset_id, block, liquidity_index, variable_borrow_index) VALUES (?, ?, ?, ?)"
)


def _latest(table: str, key: str, of: str, upto: str) -> str:
    """Rows of ``table`` that are the latest live one per ``key`` with block ``upto``."""
    return (
        f"SELECT t.* FROM {table} t JOIN (SELECT {key}, MAX(block) AS mb FROM {table}"
        f" WHERE {of} AND block {upto} AND {_LIVE.format(col='block')} GROUP BY {key}) m"
        f" ON {' AND '.join(f'm.{k} = t.{k}' for k in key.split(', '))} AND m.mb = t.block"
    )


# --------------------------------------------------------------------------- in-memory state


LegKey = tuple[int, int, int, bool, int | None, int | None]  # scaled c, scaled vd, stable, flag, c, vd


@dataclass(slots=True)
class _Written:
    """The last written row of an account, and its legs in force."""

    block: int
    timestamp: int
    hf: int | None  # None without debt
    band: int
    closed: bool
    key: tuple[Any, ...]  # (emode, configuration, legs...) as last compared; (emode, configuration) after a reload
    legs: dict[int, LegKey] = field(default_factory=dict)  # asset id -> nonzero leg
    legs_ref: Any = None  # the legs tuple last compared (the same object: the same balances)
    seen_hf: int = -1  # the HF of the last snapshot (unchanged: no band / move check)


@dataclass(slots=True)
class _MarketState:
    block: int  # newest block written (the state below is "in force after" it)
    accounts: dict[str, int]
    assets: dict[str, int]
    written: dict[int, _Written]
    prices: dict[int, int]
    indexes: dict[int, tuple[int, int]]
    open: int = -1  # accounts not closed (-1: count them)
    fresh: bool = True  # rebuilt from the tables: a caller's touched hint (relative to its last block) is not used


_SHARED_STATES: dict[tuple[str, HistoryPolicy], dict[str, _MarketState]] = {}


@dataclass(slots=True)
class WriteCounts:
    positions: int = 0
    legs: int = 0
    prices: int = 0
    indexes: int = 0


def _leg_key(leg: Any, aave: bool) -> LegKey:
    if aave:
        return (leg.scaled_collateral, leg.scaled_variable_debt, leg.stable_debt, leg.used_as_collateral, None, None)
    return (leg.scaled_collateral, leg.scaled_variable_debt, leg.stable_debt, leg.used_as_collateral,
            leg.collateral, leg.variable_debt)  # fmt: skip


_ZERO_LEG: Final[LegKey] = (0, 0, 0, False, None, None)


def _nonzero(key: LegKey) -> bool:
    return bool(key[0] or key[1] or key[2] or key[3] or key[4] or key[5])


def _position_key(p: Position, aave: bool) -> tuple[Any, ...]:
    """What a balance change is: eMode, configuration and every leg's scaled balances (Aave:
    the unscaled ones follow from the indexes; other protocols: compared as well)."""
    if aave:
        return (p.emode_category, p.user_configuration,
                *((g.asset, g.scaled_collateral, g.scaled_variable_debt, g.stable_debt, g.used_as_collateral)
                  for g in p.legs))  # fmt: skip
    return (p.emode_category, p.user_configuration,
            *((g.asset, g.scaled_collateral, g.scaled_variable_debt, g.stable_debt, g.used_as_collateral, g.collateral,
               g.variable_debt) for g in p.legs))  # fmt: skip


def _text(value: int | None) -> str | None:
    return None if value is None else str(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


class History:
    """Writes and reads of the change-only tables through one :class:`Executor`."""

    def __init__(self, db: Executor, policy: HistoryPolicy | None = None, *, cache_key: str | None = None) -> None:
        """``cache_key`` (the database's path or URL): the last-written state is shared by every
        History of this process on that database (a daemon that opens its store each tick
        does not rebuild it); it is checked against the newest scan at every write."""
        self.db = db
        self.policy = policy or HistoryPolicy()
        self._bands = tuple(sorted(self.policy.hf_bands))
        self._states: dict[str, _MarketState] = (
            {} if cache_key is None else _SHARED_STATES.setdefault((cache_key, self.policy), {})
        )

    # ----------------------------------------------------------------- cache

    def invalidate(self, market: str | None = None) -> None:
        """Forget the in-memory last-written state (after a reorg changed what is live)."""
        if market is None:
            self._states.clear()
        else:
            self._states.pop(market, None)

    def _band(self, hf: int | None) -> int:
        return len(self._bands) + 1 if hf is None else bisect_right(self._bands, hf / WAD)

    def _state(self, market: str, block: int, aave: bool = False) -> _MarketState:
        """The state in force before ``block``; rebuilt from the tables when the cache cannot
        be trusted (first use, a block at or below the newest written, another writer)."""
        state = self._states.get(market)
        found = self.db.execute(  # the (market, block) index read backwards: one step, not the whole market
            "SELECT s.block FROM scans s WHERE s.market = ? AND NOT EXISTS (SELECT 1 FROM orphaned_blocks ob"
            " WHERE ob.market = s.market AND ob.block = s.block) ORDER BY s.block DESC LIMIT 1",
            [market],
        )
        newest = found[0][0] if found else None
        if state is None or state.block >= block or state.block != newest:
            state = self._load(market, block, aave)
            self._states[market] = state
        return state

    def _load(self, market: str, block: int, aave: bool) -> _MarketState:
        db = self.db
        accounts = {a: i for i, a in db.execute("SELECT id, account FROM account_ids WHERE market = ?", [market])}
        assets = {a: i for i, a in db.execute("SELECT id, asset FROM asset_ids WHERE market = ?", [market])}
        written: dict[int, _Written] = {}
        for row in db.execute(
            _latest("position_rows", "account_id", _ACCOUNTS_OF, "< ?") + " ", [market, block, market]
        ):
            r = dict(zip(POSITION_COLUMNS, row, strict=True))
            hf = _int(r["health_factor"])
            written[r["account_id"]] = _Written(
                r["block"], r["timestamp"], hf, self._band(hf), bool(r["reason"] & CLOSED),
                (r["emode_category"], int(r["user_configuration"])), {},
            )  # fmt: skip
        for row in db.execute(_latest("position_legs", "account_id, asset_id", _ACCOUNTS_OF, "< ?"),
                              [market, block, market]):  # fmt: skip
            r = dict(zip(LEG_COLUMNS, row, strict=True))
            key: LegKey = (int(r["scaled_collateral"]), int(r["scaled_variable_debt"]), int(r["stable_debt"]),
                           bool(r["used_as_collateral"]), None if aave else _int(r["collateral"]),
                           None if aave else _int(r["variable_debt"]))  # fmt: skip
            if _nonzero(key) and r["account_id"] in written:
                written[r["account_id"]].legs[r["asset_id"]] = key
        prices = {
            r[0]: int(r[3])
            for r in db.execute(_latest("price_rows", "asset_id", _ASSETS_OF, "< ?"), [market, block, market])
        }
        indexes = {
            r[0]: (int(r[2]), int(r[3]))
            for r in db.execute(_latest("reserve_indexes", "asset_id", _ASSETS_OF, "< ?"), [market, block, market])
        }
        # a re-save of a block: its rows are replaced
        for table, of in _TABLES_OF:
            db.execute(f"DELETE FROM {table} WHERE {of} AND block = ? AND {_LIVE.format(col='block')}",
                       [market, block, market])  # fmt: skip
        return _MarketState(block - 1, accounts, assets, written, prices, indexes)

    def _ids(self, table: str, market: str, new: list[tuple[Any, ...]]) -> list[int]:
        """Ids for new (address, ...) rows of ``account_ids`` / ``asset_ids``."""
        start = int(self.db.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")[0][0]) + 1
        ids = list(range(start, start + len(new)))
        if table == "account_ids":
            self.db.executemany("INSERT INTO account_ids (id, market, account) VALUES (?, ?, ?)",
                                [(i, market, *row) for i, row in zip(ids, new, strict=True)])  # fmt: skip
        else:
            self.db.executemany("INSERT INTO asset_ids (id, market, asset, symbol, decimals) VALUES (?, ?, ?, ?, ?)",
                                [(i, market, *row) for i, row in zip(ids, new, strict=True)])  # fmt: skip
        return ids

    # ----------------------------------------------------------------- write

    def write(self, snapshot: MarketSnapshot, touched: Collection[str] | None = None) -> WriteCounts:
        """Write what changed at ``snapshot.block``; call inside the store's transaction,
        before the block's ``scans`` row is inserted. ``touched``: the accounts whose balances
        may have changed since the previous block (a follower knows them from the block's
        events); the others' legs are then not compared (their HF still is)."""
        market, block, ts = snapshot.market, snapshot.block, snapshot.timestamp
        state = self._state(market, block, snapshot.protocol == AAVE)
        counts = WriteCounts()
        unit = snapshot.base_currency_unit
        new_assets = [(r.asset, r.symbol, r.decimals) for r in snapshot.reserves if r.asset not in state.assets]
        if new_assets:
            for (asset, *_), i in zip(new_assets, self._ids("asset_ids", market, new_assets), strict=True):
                state.assets[asset] = i
        prices, indexes = [], []
        for r in snapshot.reserves:
            aid = state.assets[r.asset]
            if state.prices.get(aid) != r.price:
                state.prices[aid] = r.price
                prices.append((aid, block, ts, str(r.price), r.price / unit))
            pair = (r.liquidity_index, r.variable_borrow_index)
            if state.indexes.get(aid) != pair:
                state.indexes[aid] = pair
                indexes.append((aid, block, str(pair[0]), str(pair[1])))
        self.db.executemany(_INSERT_PRICE, prices)
        self.db.executemany(_INSERT_INDEX, indexes)
        counts.prices, counts.indexes = len(prices), len(indexes)

        ids = state.accounts
        if len(ids) < len(snapshot.positions) or any(p.account not in ids for p in snapshot.positions):
            new_accounts = list(dict.fromkeys((p.account,) for p in snapshot.positions if p.account not in ids))
            for (account,), i in zip(new_accounts, self._ids("account_ids", market, new_accounts), strict=True):
                ids[account] = i
        aave = snapshot.protocol == AAVE
        if state.fresh:
            touched, state.fresh = None, False
        rows: list[tuple[Any, ...]] = []
        legs: list[tuple[Any, ...]] = []
        policy, written = self.policy, state.written
        band_of, move, heartbeat = self._band, policy.hf_move, policy.heartbeat_s
        open_before = sum(1 for w in written.values() if not w.closed) if state.open < 0 else state.open
        still_open = 0  # of those open before: every one in the snapshot -> nobody closed
        for p in snapshot.positions:
            acc = ids[p.account]
            raw_hf = p.health_factor
            last = written.get(acc)
            reason = 0
            if last is None or last.closed:
                reason |= FIRST
            else:
                still_open += 1
            # balances: the same legs object / an account the caller says is untouched / the same key
            if last is None or not (
                (p.legs is last.legs_ref or (touched is not None and p.account not in touched))
                and p.user_configuration == last.key[1]
                and p.emode_category == last.key[0]
            ):
                key = _position_key(p, aave)
                if last is None or key != last.key:
                    now = {state.assets[g.asset]: _leg_key(g, aave) for g in p.legs if g.asset in state.assets}
                    before = last.legs if last is not None else {}
                    changed = [(a, k) for a, k in now.items() if _nonzero(k) and before.get(a) != k]
                    changed += [(a, _ZERO_LEG) for a in before if a not in now or not _nonzero(now[a])]
                    for a, k in changed:
                        legs.append((acc, a, block, str(k[0]), str(k[1]), str(k[2]), int(k[3]), _text(k[4]),
                                     _text(k[5])))  # fmt: skip
                    legs_now = {a: k for a, k in now.items() if _nonzero(k)}
                    if changed or last is None or key[:2] != last.key[:2]:
                        reason |= BALANCES
                    if last is None:
                        hf0 = None if raw_hf == MAX_UINT256 else raw_hf
                        last = written[acc] = _Written(block, ts, hf0, band_of(hf0), False, key, legs_now)
                    else:
                        last.key, last.legs = key, legs_now
            last.legs_ref = p.legs
            if raw_hf != last.seen_hf or reason:
                last.seen_hf = raw_hf
                hf = None if raw_hf == MAX_UINT256 else raw_hf
                band = band_of(hf)
                if band != last.band:
                    reason |= BAND
                elif hf is not None and last.hf is not None and hf != last.hf and abs(hf - last.hf) >= move * last.hf:
                    reason |= MOVE
            if ts - last.timestamp >= heartbeat:
                reason |= HEARTBEAT
            if reason:
                hf = None if raw_hf == MAX_UINT256 else raw_hf
                rows.append((acc, block, ts, reason, _text(hf), str(p.total_collateral_base), str(p.total_debt_base),
                             str(p.available_borrows_base), p.current_liquidation_threshold, p.ltv, p.emode_category,
                             str(p.user_configuration), _text(p.health_factor_stored_index)))  # fmt: skip
                last.block, last.timestamp, last.hf, last.band, last.closed = block, ts, hf, band_of(hf), False
        if still_open < open_before:  # an account followed before is not in this snapshot: it is closed
            seen = {ids[p.account] for p in snapshot.positions}
            for acc, last in written.items():
                if acc not in seen and not last.closed:
                    rows.append((acc, block, ts, CLOSED, _text(last.hf), "0", "0", "0", 0, 0, 0, "0", None))
                    last.closed, last.block, last.timestamp = True, block, ts
        state.open = len(snapshot.positions) if still_open >= open_before else -1
        self.db.executemany(_INSERT_POSITION, rows)
        self.db.executemany(_INSERT_LEG, legs)
        counts.positions, counts.legs = len(rows), len(legs)
        state.block = block
        return counts

    def delete_blocks(self, market: str, blocks: Sequence[int]) -> None:
        """Every history row of ``market`` at ``blocks`` (a reorg's non-canonical blocks)."""
        if not blocks:
            return
        marks = ", ".join("?" * len(blocks))
        for table, of in _TABLES_OF:
            self.db.execute(f"DELETE FROM {table} WHERE {of} AND block IN ({marks})", [market, *blocks])
        self.invalidate(market)

    # ----------------------------------------------------------------- retention

    def retain(self, market: str, now: float, policy: RetentionPolicy, done_block: int) -> tuple[int, int]:
        """Thin the rows of scanned blocks in (``done_block``, the end of the last whole
        ``downsample_s`` interval older than ``full_days``]; returns (the new done block,
        rows deleted). Incremental: each call handles only what aged since the last one."""
        if policy.full_days is None:
            return done_block, 0
        step = policy.downsample_s
        cutoff = int(now - policy.full_days * 86_400) // step * step
        scans = self.db.execute(
            f"SELECT block, timestamp FROM scans WHERE market = ? AND block > ? AND timestamp < ?"
            f" AND {_LIVE.format(col='block')} ORDER BY block",
            [market, done_block, cutoff, market],
        )
        if not scans:
            return done_block, 0
        last_of: dict[int, int] = {}
        for block, ts in scans:
            last_of[int(ts) // step] = int(block)
        kept = sorted(last_of.values())
        end = kept[-1]
        deleted = 0
        drop_scans = [(market, int(b)) for b, _ in scans if int(b) not in set(kept)]
        self.db.executemany("DELETE FROM scans WHERE market = ? AND block = ?", drop_scans)
        deleted += len(drop_scans)
        # position_legs stay: a leg row is a balance change (the account's balance history),
        # and every slice query here is a primary-key range per key, (key, block)
        for table, key, of, reason in (
            ("position_rows", ("account_id",), _ACCOUNTS_OF, True),
            ("price_rows", ("asset_id",), _ASSETS_OF, False),
            ("reserve_indexes", ("asset_id",), _ASSETS_OF, False),
        ):
            cols = ", ".join((*key, "block", "reason" if reason else "0"))
            rows = self.db.execute(
                f"SELECT {cols} FROM {table} WHERE {of} AND block > ? AND block <= ?"
                f" AND {_LIVE.format(col='block')} ORDER BY {', '.join(key)}, block",
                [market, done_block, end, market],
            )
            gone = _thinned(rows, len(key), kept)
            where = " AND ".join(f"{k} = ?" for k in (*key, "block"))
            self.db.executemany(f"DELETE FROM {table} WHERE {where}", gone)
            deleted += len(gone)
        # the newest row of every key stays (only rows a newer one replaces go): the
        # in-memory last-written state is still right
        return end, deleted

    # ----------------------------------------------------------------- read

    def account_id(self, account: str, market: str | None = None) -> list[tuple[int, str, str]]:
        """(id, market, account) of ``account`` (any case of its hex digits)."""
        sql = "SELECT id, market, account FROM account_ids WHERE LOWER(account) = LOWER(?)"
        params: list[Any] = [account]
        if market is not None:
            sql, params = sql + " AND market = ?", [*params, market]
        return [(int(i), str(m), str(a)) for i, m, a in self.db.execute(sql, params)]

    def assets(self, market: str) -> dict[int, tuple[str, str, int]]:
        """asset id -> (asset, symbol, decimals) of ``market``."""
        rows = self.db.execute("SELECT id, asset, symbol, decimals FROM asset_ids WHERE market = ?", [market])
        return {int(i): (str(a), str(s), int(d)) for i, a, s, d in rows}

    def positions_at(self, market: str, block: int) -> list[dict[str, Any]]:
        """Each account's latest live row at or before ``block`` (closed accounts left out),
        with ``account``; ordered by account."""
        rows = self.db.execute(
            "SELECT a.account, p.* FROM (" + _latest("position_rows", "account_id", _ACCOUNTS_OF, "<= ?")
            + ") p JOIN account_ids a ON a.id = p.account_id ORDER BY a.account",
            [market, block, market],
        )  # fmt: skip
        out = [dict(zip(("account", *POSITION_COLUMNS), r, strict=True)) for r in rows]
        return [r for r in out if not r["reason"] & CLOSED]

    def legs_at(self, market: str, block: int) -> dict[int, dict[int, dict[str, Any]]]:
        """account id -> asset id -> the leg in force at ``block`` (zero legs left out)."""
        out: dict[int, dict[int, dict[str, Any]]] = {}
        for row in self.db.execute(_latest("position_legs", "account_id, asset_id", _ACCOUNTS_OF, "<= ?"),
                                   [market, block, market]):  # fmt: skip
            r = dict(zip(LEG_COLUMNS, row, strict=True))
            if (
                r["scaled_collateral"] != "0"
                or r["scaled_variable_debt"] != "0"
                or r["stable_debt"] != "0"
                or r["used_as_collateral"]
                or (r["collateral"] or "0") != "0"
                or (r["variable_debt"] or "0") != "0"
            ):
                out.setdefault(r["account_id"], {})[r["asset_id"]] = r  # fmt: skip
        return out

    def reserve_state_at(self, market: str, block: int) -> dict[int, dict[str, Any]]:
        """asset id -> price, price_usd, timestamp (of the price row), liquidity_index,
        variable_borrow_index in force at ``block``."""
        out: dict[int, dict[str, Any]] = {}
        for aid, _b, ts, price, usd in self.db.execute(
            _latest("price_rows", "asset_id", _ASSETS_OF, "<= ?"), [market, block, market]
        ):
            out[aid] = {"price": price, "price_usd": usd, "timestamp": ts}
        for aid, _b, li, vbi in self.db.execute(
            _latest("reserve_indexes", "asset_id", _ASSETS_OF, "<= ?"), [market, block, market]
        ):
            out.setdefault(aid, {}).update(liquidity_index=li, variable_borrow_index=vbi)
        return out

    def account_rows(
        self, account_id: int, market: str, since_block: int | None = None, since_time: float | None = None
    ) -> list[dict[str, Any]]:
        """An account's live position rows ordered by block."""
        sql = f"SELECT * FROM position_rows WHERE account_id = ? AND {_LIVE.format(col='block')}"
        params: list[Any] = [account_id, market]
        if since_block is not None:
            sql, params = sql + " AND block >= ?", [*params, since_block]
        if since_time is not None:
            sql, params = sql + " AND timestamp >= ?", [*params, since_time]
        return [dict(zip(POSITION_COLUMNS, r, strict=True)) for r in self.db.execute(sql + " ORDER BY block", params)]

    def account_legs(self, account_id: int, market: str, upto: int | None = None) -> list[dict[str, Any]]:
        """An account's live leg rows (every change) ordered by block, asset."""
        sql = f"SELECT * FROM position_legs WHERE account_id = ? AND {_LIVE.format(col='block')}"
        params: list[Any] = [account_id, market]
        if upto is not None:
            sql, params = sql + " AND block <= ?", [*params, upto]
        return [dict(zip(LEG_COLUMNS, r, strict=True))
                for r in self.db.execute(sql + " ORDER BY block, asset_id", params)]  # fmt: skip

    def price_rows(
        self,
        market: str,
        asset_ids: Sequence[int] | None = None,
        *,
        since_block: int | None = None,
        since_time: float | None = None,
        after_block: int | None = None,
    ) -> list[tuple[int, int, int, str, float]]:
        """Live (asset_id, block, timestamp, price, price_usd) rows ordered by block, asset id:
        one index range per asset (``since_time`` by ``(asset_id, timestamp)``, blocks by the
        primary key), so a daemon's incremental read (``after_block``) costs what it returns."""
        ids = list(self.assets(market)) if asset_ids is None else list(asset_ids)
        if not ids:
            return []
        sql = (
            f"SELECT asset_id, block, timestamp, price, price_usd FROM price_rows WHERE asset_id IN"
            f" ({', '.join('?' * len(ids))}) AND {_LIVE.format(col='block')}"
        )
        params: list[Any] = [*ids, market]
        for clause, value in (("block >= ?", since_block), ("timestamp >= ?", since_time), ("block > ?", after_block)):
            if value is not None:
                sql, params = f"{sql} AND {clause}", [*params, value]
        return [(int(a), int(b), int(t), str(p), float(u)) for a, b, t, p, u in
                self.db.execute(sql + " ORDER BY block, asset_id", params)]  # fmt: skip


def _thinned(rows: Sequence[tuple[Any, ...]], width: int, kept: Sequence[int]) -> list[tuple[Any, ...]]:
    """Primary keys of ``rows`` ((key..., block, reason) ordered by key, block) no kept block
    needs: a row stays when it is the latest of its key at or before some kept block, or its
    reason is one always kept."""
    gone: list[tuple[Any, ...]] = []
    for i, row in enumerate(rows):
        key, block, reason = row[:width], int(row[width]), int(row[width + 1])
        if reason & _ALWAYS_KEPT:
            continue
        j = bisect_right(kept, block - 1)  # the first kept block >= this row's block
        if j == len(kept):
            continue
        nxt = rows[i + 1] if i + 1 < len(rows) else None
        if nxt is not None and nxt[:width] == key and int(nxt[width]) <= kept[j]:
            gone.append((*key, block))  # a newer row of the key is in force at that kept block
    return gone
