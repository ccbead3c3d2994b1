"""The Telegram bot's subscriptions (schema v10): which chats may use it, what each watches,
mutes, and the getUpdates offset (so a restart neither loses nor repeats a command)."""

from __future__ import annotations

from typing import Any

from monitor.store.base import StoreBase

_OFFSET_KEY = "telegram_bot_offset"


class BotMixin(StoreBase):
    """The ``bot_chats`` / ``bot_watches`` tables and the bot's update offset (``meta``)."""

    def bot_offset(self) -> int:
        """The next getUpdates offset (0: none confirmed yet)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", [_OFFSET_KEY]).fetchone()
        return int(row[0]) if row else 0

    def set_bot_offset(self, offset: int) -> None:
        with self.transaction():
            self._db.table("meta").upsert({"key": _OFFSET_KEY, "value": str(offset)}, pk="key")

    def bot_chat(self, chat_id: str) -> dict[str, Any] | None:
        rows = list(self._db.query("SELECT * FROM bot_chats WHERE chat_id = ?", [chat_id]))
        return rows[0] if rows else None

    def bot_join(self, chat_id: str, *, allowed: bool, title: str = "") -> None:
        """Record the chat (allowed or not); an allowed chat stays allowed."""
        now = self._clock()
        with self.transaction():
            old = self.bot_chat(chat_id)
            self._db.table("bot_chats").upsert(
                {"chat_id": chat_id, "allowed": int(allowed or bool(old and old["allowed"])), "title": title,
                 "muted_until": old["muted_until"] if old else None, "joined_at": old["joined_at"] if old else now},
                pk="chat_id",
            )  # fmt: skip

    def bot_mute(self, chat_id: str, until: float | None) -> None:
        with self.transaction():
            self._db.execute("UPDATE bot_chats SET muted_until = ? WHERE chat_id = ?", [until, chat_id])

    def bot_watch(self, chat_id: str, account: str, label: str = "") -> bool:
        """Subscribe ``chat_id`` to ``account``; False when it already was (the label is updated)."""
        with self.transaction():
            existed = self._db.execute(
                "SELECT 1 FROM bot_watches WHERE chat_id = ? AND account = ? COLLATE NOCASE", [chat_id, account]
            ).fetchone()
            if existed:
                self._db.execute("UPDATE bot_watches SET label = ? WHERE chat_id = ? AND account = ? COLLATE NOCASE",
                                 [label, chat_id, account])  # fmt: skip
                return False
            self._db.table("bot_watches").insert(
                {"chat_id": chat_id, "account": account, "label": label, "created_at": self._clock()}
            )
            return True

    def bot_unwatch(self, chat_id: str, account: str) -> bool:
        with self.transaction():
            cursor = self._db.execute(
                "DELETE FROM bot_watches WHERE chat_id = ? AND account = ? COLLATE NOCASE", [chat_id, account]
            )
            return bool(cursor.rowcount)

    def bot_watches(self, chat_id: str | None = None) -> list[dict[str, Any]]:
        """Subscriptions (of one chat, or all) with the chat's mute, oldest first."""
        sql = ("SELECT w.chat_id, w.account, w.label, w.created_at, c.muted_until FROM bot_watches w"
               " JOIN bot_chats c ON c.chat_id = w.chat_id WHERE c.allowed = 1")  # fmt: skip
        params: list[Any] = []
        if chat_id is not None:
            sql += " AND w.chat_id = ?"
            params.append(chat_id)
        return list(self._db.query(sql + " ORDER BY w.created_at, w.account", params))

    def bot_accounts(self) -> list[str]:
        """Every wallet an allowed chat watches (joined to each watch-list market's accounts)."""
        rows = self._db.execute(
            "SELECT DISTINCT w.account FROM bot_watches w JOIN bot_chats c ON c.chat_id = w.chat_id"
            " WHERE c.allowed = 1 ORDER BY w.account"
        ).fetchall()
        return [str(r[0]) for r in rows]
