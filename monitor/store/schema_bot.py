"""Schema v10: the Telegram bot's tables (read and written by :mod:`monitor.store.bot`)."""

from __future__ import annotations

import sqlite_utils


def schema_v10_telegram_bot(db: sqlite_utils.Database) -> None:
    db.execute(
        "CREATE TABLE bot_chats ("
        " chat_id TEXT PRIMARY KEY, allowed INTEGER NOT NULL, muted_until REAL, title TEXT NOT NULL DEFAULT '',"
        " joined_at REAL NOT NULL)"
    )
    db.execute(
        "CREATE TABLE bot_watches ("
        " chat_id TEXT NOT NULL REFERENCES bot_chats(chat_id), account TEXT NOT NULL, label TEXT NOT NULL DEFAULT '',"
        " created_at REAL NOT NULL, PRIMARY KEY (chat_id, account))"
    )
    db.execute("CREATE INDEX idx_bot_watches_account ON bot_watches (account COLLATE NOCASE)")
