"""Writing a snapshot: one transaction per block."""

from __future__ import annotations

from monitor.errors import StoreError
from monitor.models import MarketSnapshot
from monitor.store.reorg import ReorgMixin
from monitor.store.rows import (
    _check_pinned,
    _emode_row,
    _market_row,
    _params_json,
    _reserve_row,
    _scan_row,
)
from monitor.store.sql import _live


class WritesMixin(ReorgMixin):
    """``save_snapshot`` and its per-table writes."""

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
            if self._record_params(snapshot):
                self._upsert_reserves(snapshot)
                self._upsert_emode_categories(snapshot)
            self._history.write(snapshot)
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

    def _record_params(self, snapshot: MarketSnapshot) -> bool:
        """Change-only: a ``market_params`` row at this block only if the parameters differ
        from those in force just before it (a reorg drops a suffix of blocks, rows included).
        True when they differ from what this store last wrote (so the newest-parameter tables
        ``reserves`` / ``emode_categories`` need writing); compared in memory."""
        params = _params_json(snapshot)
        cached = self._params_cache.get(snapshot.market)
        if cached is not None and cached[0] < snapshot.block and cached[1] == params:
            return False
        reserves, categories = params
        before = self._db.execute(
            "SELECT reserves, emode_categories FROM market_params AS mp"
            f" WHERE market = ? AND block < ? AND {_live('mp')} ORDER BY block DESC LIMIT 1",
            [snapshot.market, snapshot.block],
        ).fetchone()
        self._params_cache[snapshot.market] = (snapshot.block, params)
        if before is not None and tuple(before) == (reserves, categories):
            self._db.execute(
                "DELETE FROM market_params WHERE market = ? AND block = ?", [snapshot.market, snapshot.block]
            )
            return cached is None or cached[1] != params
        row = {"market": snapshot.market, "block": snapshot.block, "reserves": reserves, "emode_categories": categories}
        self._db.table("market_params").upsert(row, pk=("market", "block"))
        return True

    def _insert_scan(self, snapshot: MarketSnapshot) -> int:
        scan_id = self._db.table("scans").insert(_scan_row(snapshot, self._clock())).last_pk
        if not isinstance(scan_id, int):
            raise StoreError(f"history database {self.path} returned no id for the new scan")
        return scan_id
