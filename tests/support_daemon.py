"""The real `liqmon run` as a subprocess, and reading its database while it runs (fault tests)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support_peers import TELEGRAM_TEST_TOKEN


def start_daemon(config: Path, log: Path, *, append: bool = False) -> subprocess.Popen[bytes]:
    """``liqmon run --config config`` with the Telegram test token; stderr into ``log``."""
    env = dict(os.environ, TG_TOKEN=TELEGRAM_TEST_TOKEN)
    return subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=log.open("ab" if append else "wb"), env=env,
    )  # fmt: skip


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    """``sql``'s rows, or none while the database or its tables do not exist yet."""
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
