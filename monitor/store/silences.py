"""Silences, acknowledgements and the grouped-send bookkeeping of the outbox (schema v8)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monitor.errors import InputError, StoreError
from monitor.store.base import StoreBase

ACK_ENDS: tuple[str, ...] = ("first", "resolved", "severity_up")
"""Reasons of a later alert that end an acknowledgement: a new episode, its end, an escalation."""


class SilencesMixin(StoreBase):
    """The ``silences`` and ``acks`` tables; ``outbox.batch`` / ``silence_id``."""

    # ----------------------------------------------------------------- silences

    def add_silence(
        self,
        *,
        account: str | None,
        market: str | None,
        severity: str | None,
        starts_at: float,
        ends_at: float,
        comment: str,
    ) -> int:
        with self.transaction():
            row_id = self._db.table("silences").insert(
                {"account": account, "market": market, "severity": severity, "starts_at": starts_at,
                 "ends_at": ends_at, "expired_at": None, "comment": comment, "created_at": self._clock()}
            ).last_pk  # fmt: skip
        if not isinstance(row_id, int):
            raise StoreError(f"history database {self.path} returned no id for the new silence")
        return row_id

    def silences(self, *, active_at: float | None = None) -> list[dict[str, Any]]:
        """Every silence (newest first), or only those in force at ``active_at``."""
        if active_at is None:
            return self._rows("SELECT * FROM silences ORDER BY id DESC", [])
        return self._rows(
            "SELECT * FROM silences WHERE starts_at <= ? AND ends_at > ? AND expired_at IS NULL ORDER BY id",
            [active_at, active_at],
        )

    def expire_silence(self, silence_id: int, now: float) -> dict[str, Any]:
        """End silence ``silence_id`` at ``now``; returns its row. Unknown or already over: InputError."""
        rows = self._rows("SELECT * FROM silences WHERE id = ?", [silence_id])
        if not rows:
            raise InputError(f"silence {silence_id} does not exist (liqmon silence list shows the ids)")
        row = rows[0]
        if row["expired_at"] is not None or row["ends_at"] <= now:
            raise InputError(f"silence {silence_id} is already over")
        with self.transaction():
            self._db.execute("UPDATE silences SET expired_at = ? WHERE id = ?", [now, silence_id])
        return {**row, "expired_at": now}

    # ----------------------------------------------------------------- acknowledgements

    def alert(self, alert_id: int) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM alerts WHERE id = ?", [alert_id])
        return rows[0] if rows else None

    def latest_alerts(self, subject: str, market: str | None = None) -> list[dict[str, Any]]:
        """The newest alert of ``subject`` in each market (or in ``market``)."""
        where = " AND a.market = ?" if market is not None else ""
        params: list[Any] = [subject] + ([market] if market is not None else [])
        return self._rows(
            "SELECT a.* FROM alerts AS a WHERE a.subject = ? COLLATE NOCASE" + where +
            " AND a.id = (SELECT max(b.id) FROM alerts AS b WHERE b.market = a.market AND b.subject = a.subject)"
            " ORDER BY a.market",
            params,
        )  # fmt: skip

    def add_ack(self, market: str, subject: str, alert_id: int, severity: str, comment: str, now: float) -> int:
        with self.transaction():
            row_id = self._db.table("acks").insert(
                {"market": market, "subject": subject, "alert_id": alert_id, "severity": severity,
                 "comment": comment, "acked_at": now}
            ).last_pk  # fmt: skip
        if not isinstance(row_id, int):
            raise StoreError(f"history database {self.path} returned no id for the new acknowledgement")
        return row_id

    def active_acks(self, market: str) -> dict[str, dict[str, Any]]:
        """Per subject of ``market``, its acknowledgement still in force: no alert of a new
        episode, of its end or of an escalation came after the acknowledged one."""
        ends = ", ".join("?" for _ in ACK_ENDS)
        rows = self._rows(
            "SELECT k.* FROM acks AS k WHERE k.market = ? AND NOT EXISTS (SELECT 1 FROM alerts AS a"
            f" WHERE a.market = k.market AND a.subject = k.subject AND a.id > k.alert_id AND a.reason IN ({ends}))"
            " ORDER BY k.id",
            [market, *ACK_ENDS],
        )
        return {row["subject"]: row for row in rows}

    # ----------------------------------------------------------------- grouped sends

    def alerts_by_id(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        unique = sorted(set(ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            for row in self._rows(f"SELECT * FROM alerts WHERE id IN ({marks})", chunk):
                out[row["id"]] = row
        return out

    def set_batch(self, outbox_ids: Sequence[int], batch: str) -> None:
        """Name the grouped message about to carry these rows (before it is sent)."""
        with self.transaction():
            self._db.conn.executemany("UPDATE outbox SET batch = ? WHERE id = ?", [(batch, i) for i in outbox_ids])

    def mark_deliveries(
        self,
        outbox_ids: Sequence[int],
        *,
        status: str,
        attempts: Sequence[int],
        next_attempt_at: float,
        error: str | None = None,
        silence_id: int | None = None,
        batch: str | None = None,
    ) -> None:
        """Mark several rows at once, in ONE transaction (the rows of one grouped message, ``batch``
        its key)."""
        now = self._clock()
        sent_at = now if status == "sent" else None
        with self.transaction():
            self._db.conn.executemany(
                "UPDATE outbox SET status = ?, attempts = ?, next_attempt_at = ?, last_error = ?,"
                " sent_at = coalesce(?, sent_at), silence_id = coalesce(?, silence_id), batch = coalesce(?, batch)"
                " WHERE id = ?",
                [(status, n, next_attempt_at, error, sent_at, silence_id, batch, i)
                 for i, n in zip(outbox_ids, attempts, strict=True)],
            )  # fmt: skip

    def last_repeat_sent(self, channel: str, destination: str) -> float | None:
        """When a repeat reminder last went to this destination (None: never)."""
        row = self._db.execute(
            "SELECT max(o.sent_at) FROM outbox AS o JOIN alerts AS a ON a.id = o.alert_id WHERE o.channel = ?"
            " AND o.destination = ? AND o.status = 'sent' AND a.reason = 'repeat'",
            [channel, destination],
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])
