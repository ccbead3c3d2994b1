"""Alert state, the alert log and the delivery outbox."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monitor.errors import StoreError
from monitor.store.base import StoreBase
from monitor.store.sql import _market_clause, _where


class AlertLogMixin(StoreBase):
    """The ``alert_state``, ``alerts`` and ``outbox`` tables."""

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
        now: float | None = None,
    ) -> list[int]:
        """ONE transaction: new alert states, alert log rows and their outbox rows.

        ``states``: rows of alert_state (market, subject, severity, since, last_sent_at);
        ``alerts``: (alert row, outbox rows without alert_id) pairs. Returns the alert ids.
        ``now``: the caller's clock (the daemon's), so the outbox rows are due by the same clock
        that delivers them; default the store's.
        """
        now = self._clock() if now is None else now
        ids: list[int] = []
        conn = self._db.conn  # plain statements: sqlite-utils' insert asks for the table list each row
        with self.transaction():
            for state in states:
                row = {"market": market, "last_block": block, "updated_at": now, **state}
                cols = list(row)
                updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in ("market", "subject"))
                conn.execute(
                    f"INSERT INTO alert_state ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
                    f" ON CONFLICT (market, subject) DO UPDATE SET {updates}",
                    [row[c] for c in cols],
                )
            for alert, deliveries in alerts:
                row = {"market": market, "block": block, "created_at": now, **alert}
                cursor = conn.execute(
                    f"INSERT INTO alerts ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values())
                )
                alert_id = cursor.lastrowid
                if not isinstance(alert_id, int):
                    raise StoreError(f"history database {self.path} returned no id for a new alert")
                ids.append(alert_id)
                for delivery in deliveries:
                    out = {"alert_id": alert_id, "status": "pending", "attempts": 0, "next_attempt_at": now,
                           "created_at": now, **delivery}  # fmt: skip
                    marks = ", ".join("?" * len(out))
                    conn.execute(f"INSERT INTO outbox ({', '.join(out)}) VALUES ({marks})", list(out.values()))
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
