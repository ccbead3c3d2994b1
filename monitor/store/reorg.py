"""Reorgs: blocks marked orphaned (rows kept until proven), unmarked, dropped."""

from __future__ import annotations

from collections.abc import Sequence

from monitor.errors import StoreError
from monitor.models import MarketSnapshot
from monitor.store.base import StoreBase
from monitor.store.sql import _live


class ReorgMixin(StoreBase):
    """``orphaned_blocks``, and the removal of a non-canonical block's rows."""

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
            self._forget_written(market)
            return self._count("orphaned_blocks", market) - before

    def unmark_orphaned(self, market: str, blocks: Sequence[int]) -> None:
        """The blocks are canonical after all (a node had lied or lagged): their rows count again."""
        if not blocks:
            return
        marks = ",".join("?" * len(blocks))
        with self.transaction():
            self._db.execute(f"DELETE FROM orphaned_blocks WHERE market = ? AND block IN ({marks})", [market, *blocks])
            self._forget_written(market)

    def orphaned_blocks(self, market: str) -> list[tuple[int, str]]:
        rows = self._rows("SELECT block, hash FROM orphaned_blocks WHERE market = ? ORDER BY block", [market])
        return [(r["block"], r["hash"]) for r in rows]

    def _replace_orphaned(self, market: str, block: int) -> None:
        """The canonical replacement of an orphaned block is being stored: the orphan's rows go now."""
        if not self._db.execute(
            "SELECT 1 FROM orphaned_blocks WHERE market = ? AND block = ?", [market, block]
        ).fetchone():
            return
        self._history.delete_blocks(market, [block])
        for table in ("scans", "market_params"):
            self._db.execute(f"DELETE FROM {table} WHERE market = ? AND block = ?", [market, block])
        self._forget_written(market)
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
        """ONE transaction: every history row (positions, legs, prices, indexes, parameters, scans)
        of blocks no longer canonical."""
        if not blocks:
            return
        marks = ",".join("?" * len(blocks))
        with self.transaction():
            self._history.delete_blocks(market, blocks)
            for table in ("scans", "market_params"):
                self._db.execute(f"DELETE FROM {table} WHERE market = ? AND block IN ({marks})", [market, *blocks])
            self._forget_written(market)
