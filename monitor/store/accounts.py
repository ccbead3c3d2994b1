"""Accounts to follow, scan checkpoints and discovery blocks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from monitor.errors import StoreError
from monitor.store.base import StoreBase
from monitor.store.schema import ACCOUNT_SOURCES


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """How far a scan of one kind (e.g. account discovery from logs) has got in a market."""

    block: int
    block_hash: str
    updated_at: float


class AccountsMixin(StoreBase):
    """The ``accounts``, ``checkpoints`` and ``discovery_blocks`` tables."""

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
