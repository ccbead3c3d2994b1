"""A minimal portable SQL connection: the same statements on SQLite and on PostgreSQL.

:func:`connect` takes ``sqlite:///path`` (``sqlite:////abs/path``, ``sqlite://`` for memory),
a plain path, an open :class:`sqlite3.Connection`, or ``postgresql://user:pw@host:port/db``
(needs the ``postgres`` extra: ``pip install 'liqmon[postgres]'``, psycopg 3). Callers write
one SQL text with ``?`` placeholders; on PostgreSQL it is translated to psycopg's ``%s``.

The portable subset (what the history code may use, tested on both in tests/store/):

- column kinds from :data:`COLUMN_TYPES` (``int`` is 64-bit on both, ``float`` an 8-byte
  double on both; ``uint256`` is exact decimal TEXT on both, so both return the same ``str``),
  via :meth:`SqlConnection.create_table`;
- ``INSERT ... ON CONFLICT (key) DO UPDATE SET c = excluded.c`` / ``DO NOTHING``
  (:func:`upsert_sql`), ``RETURNING``, row values ``(a, b) IN (SELECT ...)``, window functions,
  ``NOT EXISTS`` — never ``INSERT OR REPLACE``, ``lastrowid``, SQLite's bare columns beside
  ``max()``, ``LIKE`` for case-insensitive matches, or a comparison of a TEXT column with a number;
- ``execute`` returns plain tuples of ``int`` / ``float`` / ``str`` / ``bytes`` / ``None`` on
  both (an integral PostgreSQL ``numeric``, e.g. ``sum()`` of a BIGINT, comes back as ``int``).

Outside :meth:`SqlConnection.transaction` every statement commits on its own; inside, all
commit together; a nested block is a savepoint. Every driver error becomes a
:class:`~monitor.errors.StoreError` naming the database by :func:`display_url` (no password).
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self
from urllib.parse import unquote, urlsplit, urlunsplit

from monitor.errors import StoreError

Dialect = Literal["sqlite", "postgresql"]
Row = tuple[Any, ...]

SECRET_MASK: Final = "<secret>"
SQLITE_BUSY_TIMEOUT_MS: Final = 10_000
PG_CONNECT_TIMEOUT_S: Final = 10

#: Logical column kind -> the column type per dialect.
COLUMN_TYPES: Final[Mapping[str, Mapping[Dialect, str]]] = {
    "int": {"sqlite": "INTEGER", "postgresql": "BIGINT"},  # int64 on both
    "float": {"sqlite": "REAL", "postgresql": "DOUBLE PRECISION"},  # PostgreSQL REAL is 4 bytes
    "text": {"sqlite": "TEXT", "postgresql": "TEXT"},
    "uint256": {"sqlite": "TEXT", "postgresql": "TEXT"},  # exact decimal text: the same str on both
    "bytes": {"sqlite": "BLOB", "postgresql": "BYTEA"},
}

_PG_SCHEMES: Final = ("postgresql", "postgres", "postgresql+psycopg")
COPY_MIN_ROWS: Final = 500  # executemany of a plain INSERT with this many rows goes as COPY (PostgreSQL)
_PLAIN_INSERT: Final = re.compile(
    r"\s*INSERT INTO (?P<table>[A-Za-z_][A-Za-z0-9_]*) \((?P<columns>[A-Za-z0-9_, ]+)\)"
    r" VALUES \(\?(?:, ?\?)*\)\s*"
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SqlIntegrityError(StoreError):
    """A constraint (primary key, NOT NULL, unique) refused a write."""


# --------------------------------------------------------------------------- URLs


def display_url(url: str | Path | sqlite3.Connection) -> str:
    """``url`` fit to print and log: the password (in ``user:pw@`` or ``?password=``) masked."""
    if isinstance(url, sqlite3.Connection):
        return "sqlite (an open connection)"
    text = str(url)
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return "<unparseable database URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{SECRET_MASK}@{hostport}" if colon else f"{user}@{hostport}"
    query = re.sub(r"((?:^|&)password=)[^&]*", rf"\1{SECRET_MASK}", parts.query, flags=re.I)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_dialect(url: str | Path | sqlite3.Connection) -> Dialect:
    """Which database ``url`` names (a plain path is SQLite); raises StoreError if neither."""
    if isinstance(url, (sqlite3.Connection, Path)) or "://" not in str(url):
        return "sqlite"
    scheme = str(url).partition("://")[0].lower()
    if scheme == "sqlite":
        return "sqlite"
    if scheme in _PG_SCHEMES:
        return "postgresql"
    raise StoreError(
        f"history URL {display_url(url)}: unknown database kind {scheme!r}"
        " (use sqlite:///path, a file path, or postgresql://user@host:port/database)"
    )


def _sqlite_target(url: str | Path) -> str:
    """The file (or ``:memory:``) an SQLite URL or path names."""
    text = str(url)
    if "://" not in text:
        return text
    rest = text.partition("://")[2]
    if rest in ("", "/", "/:memory:"):
        return ":memory:"
    if not rest.startswith("/"):
        raise StoreError(f"history URL {text}: expected sqlite:///relative/path or sqlite:////absolute/path")
    return unquote(rest[1:].partition("?")[0])


# --------------------------------------------------------------------------- SQL text


@lru_cache(maxsize=512)
def to_pyformat(sql: str) -> str:
    """``?`` placeholders -> ``%s`` (psycopg), ``%`` -> ``%%``; quoted text and comments kept."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in ("'", '"'):
            end = i + 1
            while end < n:
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:  # '' or "" escapes the quote
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i : end + 1].replace("%", "%%"))
            i = end + 1
        elif ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif ch == "?":
            out.append("%s")
            i += 1
        elif ch == "%":
            out.append("%%")
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def identifier(name: str) -> str:
    """``name`` if it is a plain SQL identifier (letters, digits, ``_``), else StoreError."""
    if not _IDENTIFIER.fullmatch(name):
        raise StoreError(f"{name!r} is not a plain SQL identifier (letters, digits and '_')")
    return name


def upsert_sql(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """A portable insert-or-update: ``INSERT ... ON CONFLICT (key) DO UPDATE SET ...``
    (``DO NOTHING`` when every column is in the key)."""
    cols = [identifier(c) for c in columns]
    keys = [identifier(k) for k in key]
    missing = [k for k in keys if k not in cols]
    if missing:
        raise StoreError(f"upsert into {table}: key column(s) {', '.join(missing)} not among the columns")
    updates = [f"{c} = excluded.{c}" for c in cols if c not in keys]
    action = f"DO UPDATE SET {', '.join(updates)}" if updates else "DO NOTHING"
    return (
        f"INSERT INTO {identifier(table)} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
        f" ON CONFLICT ({', '.join(keys)}) {action}"
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, memoryview):
        return value.tobytes()
    return value


# --------------------------------------------------------------------------- connection


class SqlConnection:
    """One open database connection (see the module docstring for the portable subset)."""

    def __init__(self, raw: Any, dialect: Dialect, display: str, *, owned: bool = True) -> None:
        self._raw = raw
        self.dialect: Dialect = dialect
        self.display = display  # the URL without its password
        self._owned = owned
        self._depth = 0
        self._closed = False
        # one statement or transaction at a time: threads of one process may share a connection
        self._lock = threading.RLock()

    # ----------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Close the connection (an open sqlite3 connection handed in stays open)."""
        if self._closed:
            return
        self._closed = True
        if self._owned:
            try:
                self._raw.close()
            except Exception as exc:  # pragma: no cover - a driver failing to close
                raise self._error("cannot close", exc) from exc

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def usable(self) -> bool:
        """False once closed, or when the server dropped the connection (PostgreSQL)."""
        if self._closed:
            return False
        if self.dialect == "postgresql":
            return not (self._raw.closed or self._raw.broken)
        return True

    # ----------------------------------------------------------------- statements

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement; its result rows (none for a write)."""
        rows, _, _ = self._run(sql, params)
        return rows

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one query; its rows as dicts keyed by column name."""
        rows, _, names = self._run(sql, params)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def execute_count(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write; how many rows it changed."""
        _, count, _ = self._run(sql, params)
        return count

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one write for each of ``rows`` (one pipelined round trip on PostgreSQL; a plain
        ``INSERT INTO t (cols) VALUES (?, ...)`` of :data:`COPY_MIN_ROWS` rows or more is sent
        as one ``COPY``, several times faster)."""
        batch = [tuple(row) for row in rows]
        if not batch:
            return
        with self._autocommit("cannot write"):
            if self.dialect == "postgresql":
                plain = _PLAIN_INSERT.fullmatch(sql) if len(batch) >= COPY_MIN_ROWS else None
                with self._raw.cursor() as cursor:
                    if plain is not None:
                        with cursor.copy(f"COPY {plain['table']} ({plain['columns']}) FROM STDIN") as copy:
                            for row in batch:
                                copy.write_row(row)
                    else:
                        cursor.executemany(to_pyformat(sql), batch)
            else:
                self._raw.executemany(sql, batch)

    def _run(self, sql: str, params: Sequence[Any]) -> tuple[list[Row], int, list[str]]:
        """(rows, rows changed, column names) of one statement."""
        with self._autocommit("cannot read or write"):
            if self.dialect == "postgresql":
                with self._raw.cursor() as cursor:
                    cursor.execute(to_pyformat(sql), tuple(params))
                    count = cursor.rowcount
                    if cursor.description is None:
                        return [], count, []
                    names = [column.name for column in cursor.description]
                    return [tuple(_plain(v) for v in row) for row in cursor.fetchall()], count, names
            cursor = self._raw.execute(sql, tuple(params))
            try:
                if cursor.description is None:
                    return [], cursor.rowcount, []
                names = [column[0] for column in cursor.description]
                return [tuple(row) for row in cursor.fetchall()], cursor.rowcount, names
            finally:
                cursor.close()

    @contextmanager
    def _autocommit(self, doing: str) -> Iterator[None]:
        """Driver errors -> StoreError; outside :meth:`transaction` a statement commits alone."""
        with self._lock:
            outside = self._depth == 0
            with self._driver_errors(doing, outside):
                yield

    @contextmanager
    def _driver_errors(self, doing: str, outside: bool) -> Iterator[None]:
        try:
            yield
            if outside and self.dialect == "sqlite" and self._raw.in_transaction:
                self._raw.commit()  # an implicit transaction of a shared sqlite3 connection
        except Exception as exc:
            if outside and self.dialect == "sqlite" and self._raw.in_transaction:
                self._raw.rollback()
            if isinstance(exc, StoreError):
                raise
            if _is_driver_error(exc):
                raise self._error(doing, exc) from exc
            raise

    # ----------------------------------------------------------------- transactions

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all; nested: a savepoint.

        On SQLite the outermost block takes the write lock up front (``BEGIN IMMEDIATE``),
        so two writers wait for each other (busy timeout) instead of deadlocking."""
        with self._lock:  # another thread's statements wait for the whole transaction
            depth = self._depth
            savepoint = f"liqmon_sp{depth}"
            self._begin(depth, savepoint)
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                self._end(depth, savepoint, commit=False)
                raise
            self._depth -= 1
            self._end(depth, savepoint, commit=True)

    def _begin(self, depth: int, savepoint: str) -> None:
        try:
            if depth:
                self._command(f"SAVEPOINT {savepoint}")
            elif self.dialect == "sqlite":
                if self._raw.in_transaction:  # a shared connection's implicit transaction
                    self._raw.commit()
                self._raw.execute("BEGIN IMMEDIATE")
            else:
                self._command("BEGIN")
        except Exception as exc:
            if _is_driver_error(exc):
                raise self._error("cannot begin a transaction on", exc) from exc
            raise

    def _end(self, depth: int, savepoint: str, *, commit: bool) -> None:
        try:
            if depth:
                if not commit:
                    self._command(f"ROLLBACK TO SAVEPOINT {savepoint}")
                self._command(f"RELEASE SAVEPOINT {savepoint}")
            elif commit:
                self._command("COMMIT")
            else:
                self._command("ROLLBACK")
        except Exception as exc:
            if depth == 0 and commit:
                with _suppress_driver_errors():
                    self._command("ROLLBACK")
            if _is_driver_error(exc):
                raise self._error("cannot commit to" if commit else "cannot roll back", exc) from exc
            raise

    def _command(self, sql: str) -> None:
        if self.dialect == "postgresql":
            self._raw.execute(sql)
        else:
            self._raw.execute(sql).close()

    # ----------------------------------------------------------------- schema

    def column_type(self, kind: str) -> str:
        """The column type of a logical ``kind`` (:data:`COLUMN_TYPES`) in this dialect."""
        try:
            return COLUMN_TYPES[kind][self.dialect]
        except KeyError:
            raise StoreError(f"unknown column kind {kind!r} (known: {', '.join(COLUMN_TYPES)})") from None

    def create_table(
        self,
        name: str,
        columns: Mapping[str, str],
        primary_key: Sequence[str],
        *,
        nullable: Sequence[str] = (),
        if_not_exists: bool = True,
    ) -> None:
        """``CREATE TABLE`` from logical column kinds; every column NOT NULL but ``nullable``."""
        parts = [
            f"{identifier(col)} {self.column_type(kind)}{'' if col in nullable else ' NOT NULL'}"
            for col, kind in columns.items()
        ]
        parts.append(f"PRIMARY KEY ({', '.join(identifier(k) for k in primary_key)})")
        exists = " IF NOT EXISTS" if if_not_exists else ""
        self.execute(f"CREATE TABLE{exists} {identifier(name)} ({', '.join(parts)})")

    def tables(self) -> list[str]:
        """The tables of this database (PostgreSQL: of the current schema), sorted."""
        if self.dialect == "postgresql":
            sql = (
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            )
        else:
            sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        return sorted(str(row[0]) for row in self.execute(sql))

    def table_exists(self, name: str) -> bool:
        return name in self.tables()

    # ----------------------------------------------------------------- errors

    def _error(self, doing: str, exc: BaseException) -> StoreError:
        message = " ".join(str(exc).split()) or type(exc).__name__
        cls = SqlIntegrityError if _is_integrity_error(exc) else StoreError
        return cls(f"{doing} history database {self.display}: {message}")


def _is_driver_error(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        return True
    module = type(exc).__module__
    return module.startswith("psycopg") and isinstance(exc, Exception)


def _is_integrity_error(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.IntegrityError):
        return True
    return type(exc).__module__.startswith("psycopg") and any(
        base.__name__ == "IntegrityError" for base in type(exc).__mro__
    )


@contextmanager
def _suppress_driver_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if not _is_driver_error(exc):
            raise


# --------------------------------------------------------------------------- connect


def connect(url: str | Path | sqlite3.Connection) -> SqlConnection:
    """Open the database ``url`` names (see the module docstring); StoreError if it cannot."""
    if isinstance(url, sqlite3.Connection):
        return SqlConnection(url, "sqlite", display_url(url), owned=False)
    if url_dialect(url) == "postgresql":
        return _connect_postgresql(str(url))
    return _connect_sqlite(url)


def _connect_sqlite(url: str | Path) -> SqlConnection:
    target = _sqlite_target(url)
    display = display_url(url)
    try:
        if target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        raw = sqlite3.connect(target, isolation_level=None, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open history database {display}: {exc} (check the path, or choose another)") from exc
    try:
        if target != ":memory:":
            raw.execute("PRAGMA journal_mode=WAL").close()
        raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}").close()
    except sqlite3.Error as exc:
        raw.close()
        raise StoreError(f"cannot open history database {display}: {exc} (is it an SQLite database?)") from exc
    return SqlConnection(raw, "sqlite", display)


def _connect_postgresql(url: str) -> SqlConnection:
    display = display_url(url)
    try:
        import psycopg
    except ImportError:
        raise StoreError(
            f"history URL {display} needs the PostgreSQL driver: pip install 'liqmon[postgres]' (psycopg 3)"
        ) from None
    dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
    # who we are, for pg_stat_activity (and the one-writer-per-market refusal, which names it)
    options: dict[str, Any] = {
        "autocommit": True,
        "application_name": f"liqmon pid {os.getpid()} on {socket.gethostname()}"[:63],
    }
    if "connect_timeout" not in dsn:
        options["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    try:
        raw = psycopg.connect(dsn, **options)
    except psycopg.Error as exc:
        message = " ".join(str(exc).split())
        password = urlsplit(dsn).password
        if password:
            message = message.replace(password, SECRET_MASK)
        raise StoreError(
            f"cannot connect to history database {display}: {message}"
            " (check the host, port, user, password and database name)"
        ) from None
    return SqlConnection(raw, "postgresql", display)
