"""The connection a store holds: open / close, transactions, row reads."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from monitor.errors import StoreError
from monitor.store.history import History, HistoryPolicy, RetentionPolicy, SqliteExecutor
from monitor.store.schema import _immediate_transaction, _open

_PARAMS_CACHE: dict[str, dict[str, tuple[int, tuple[str, str]]]] = {}
_RETAINED_AT: dict[str, dict[str, int]] = {}


class StoreBase:
    """An open history database: WAL mode, migrated; every public write is atomic."""

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        history: HistoryPolicy | None = None,
        retention: RetentionPolicy | None = None,
    ) -> None:
        """``history``: when a position row is written (``store.history``); ``retention``: how
        old rows are thinned (``store.retention``); both default to their dataclass defaults."""
        self.path = Path(path)
        self._clock = clock
        self._db = _open(self.path)
        key = str(self.path.resolve())
        self._history = History(SqliteExecutor(self._db.conn), history, cache_key=key)
        self._retention = retention or RetentionPolicy()
        # market -> (block, params) last written, shared by the stores of this process on this file
        self._params_cache: dict[str, tuple[int, tuple[str, str]]] = _PARAMS_CACHE.setdefault(key, {})
        self._retained_at: dict[str, int] = _RETAINED_AT.setdefault(key, {})  # market -> block time of the last pass

    def _forget_written(self, market: str) -> None:
        """What this store remembers of its last writes is no longer what is live (a reorg)."""
        self._history.invalidate(market)
        self._params_cache.pop(market, None)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
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

    def _rows(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        try:
            return [dict(row) for row in self._db.query(sql, params)]
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read history database {self.path}: {exc}") from exc

    def _count(self, table: str, market: str) -> int:
        return int(self._db.execute(f"SELECT count(*) FROM {table} WHERE market = ?", [market]).fetchone()[0])
