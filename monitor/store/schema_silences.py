"""Schema version 8: silences, acknowledgements, grouped sends and oracle hysteresis.

- ``silences``: mute alerts matching an account (or any subject), a market and / or a
  severity (that severity and milder) from ``starts_at`` to ``ends_at``; ``expired_at`` when
  ended early by ``liqmon silence expire``;
- ``acks``: an acknowledged alert episode (``alert_id``: the newest alert of the episode when
  acknowledged; ``severity``: its severity then); repeats stop until the episode escalates;
- ``outbox.batch``: the key of the grouped message that carried the row (written before the
  send, so a crash between send and mark is seen as an at-least-once re-send);
  ``outbox.silence_id``: the silence that muted the row (status ``silenced``: recorded, not sent);
- ``alerts.cause``: the oracle subject (``oracle:jump:WETH``) whose alert in the same tick moved
  this position (the position is listed under that alert);
- ``alert_state.seen_at`` / ``seen_block``: when an oracle anomaly was last seen at its alert
  severity (an oracle alert resolves only after it has been gone for a dwell).
"""

from __future__ import annotations

import sqlite_utils


def schema_v8_silences(db: sqlite_utils.Database) -> None:
    db.execute(
        "CREATE TABLE silences ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT, market TEXT, severity TEXT,"
        " starts_at REAL NOT NULL, ends_at REAL NOT NULL, expired_at REAL, comment TEXT NOT NULL,"
        " created_at REAL NOT NULL)"
    )
    db.execute(
        "CREATE TABLE acks ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT, market TEXT NOT NULL, subject TEXT NOT NULL,"
        " alert_id INTEGER NOT NULL REFERENCES alerts(id), severity TEXT NOT NULL, comment TEXT NOT NULL,"
        " acked_at REAL NOT NULL)"
    )
    db.execute("CREATE INDEX idx_acks_subject ON acks (market, subject)")
    db.execute("ALTER TABLE outbox ADD COLUMN batch TEXT")
    db.execute("ALTER TABLE outbox ADD COLUMN silence_id INTEGER")
    db.execute("ALTER TABLE alerts ADD COLUMN cause TEXT")
    db.execute("ALTER TABLE alert_state ADD COLUMN seen_at REAL")
    db.execute("ALTER TABLE alert_state ADD COLUMN seen_block INTEGER")
    db.execute("CREATE INDEX idx_alerts_market_subject ON alerts (market, subject, id)")
