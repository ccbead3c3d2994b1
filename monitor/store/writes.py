"""Writing a snapshot: one transaction per block."""

from __future__ import annotations

from collections.abc import Collection

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

    def save_snapshot(self, snapshot: MarketSnapshot, *, touched: Collection[str] | None = None) -> int:
        """Store a whole snapshot in ONE transaction; returns the id of its scans row.

        Saving the same block again replaces its price and position rows (never duplicates)
        and logs one more scan. Rows are change-only (:mod:`monitor.store.history`): call it
        every block with the whole market. ``touched``: the accounts whose balances may have
        changed since the previous saved block (a follower knows them from the block's events);
        the others' legs are not compared (None: every position is compared).
        """
        _check_pinned(snapshot)
        with self.transaction():
            self._replace_orphaned(snapshot.market, snapshot.block)
            self._check_same_block(snapshot)
            self._upsert_market(snapshot)
            if self._record_params(snapshot):
                self._upsert_reserves(snapshot)
                self._upsert_emode_categories(snapshot)
            self._history.write(snapshot, touched)
            scan_id = self._insert_scan(snapshot)
            self._retain_if_due(snapshot.market, snapshot.timestamp)
            return scan_id

    def _retain_if_due(self, market: str, now: int) -> None:
        """Thin what aged past ``retention.full_days`` once per ``downsample_s`` of block time
        (incremental: one interval's rows per pass), in the snapshot's transaction."""
        policy = self._retention
        if policy.full_days is None or now - self._retained_at.get(market, 0) < policy.downsample_s:
            return
        self._retained_at[market] = now
        self.apply_retention(market, now)

    def apply_retention(self, market: str, now: float) -> int:
        """Thin ``market``'s rows older than ``retention.full_days`` before block time ``now``
        (see :class:`~monitor.store.history.RetentionPolicy`); returns the rows deleted."""
        with self.transaction():
            done = self._db.execute(
                "SELECT block FROM checkpoints WHERE market = ? AND kind = 'history_retention'", [market]
            ).fetchone()
            end, deleted = self._history.retain(market, now, self._retention, int(done[0]) if done else -1)
            if end != (int(done[0]) if done else -1):
                self._db.table("checkpoints").upsert(
                    {"market": market, "kind": "history_retention", "block": end, "block_hash": "",
                     "updated_at": self._clock()}, pk=("market", "kind"),
                )  # fmt: skip
        return deleted

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
