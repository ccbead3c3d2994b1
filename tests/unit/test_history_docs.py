"""docs/schema.md: every table and view is documented, and every example query answers
through sqlite-utils (library and CLI) on a stored history."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlite_utils

from monitor.store import Store
from monitor.store.history import RetentionPolicy
from tests.unit.test_history import ACCOUNTS, MARKET, Market

DOC = Path(__file__).resolve().parents[2] / "docs" / "schema.md"
QUERIES = re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("docs") / "liqmon.db"
    market = Market()
    with Store(path, retention=RetentionPolicy(full_days=None)) as store:
        store.save_snapshot(market.snapshot())
        for _ in range(20):
            store.save_snapshot(market.step(3))
        market.prices = [p // 3 if i in (0, 2, 3) else p for i, p in enumerate(market.prices)]  # a crash
        snapshot = market.step(0, prices=False)
        store.save_snapshot(snapshot)
        risky = min(snapshot.positions, key=lambda p: p.health_factor)
        alert = {"subject": risky.account, "severity": "critical", "previous": "ok", "reason": "first",
                 "hf": risky.health_factor / 1e18, "threshold": 1.1, "detail": json.dumps({"lines": []})}  # fmt: skip
        state = {"subject": risky.account, "severity": "critical", "since": float(snapshot.timestamp),
                 "last_sent_at": None}  # fmt: skip
        store.record_alerts(MARKET, snapshot.block, [state], [(alert, [{"channel": "telegram", "destination": "-1",
                                                                     "message": "m"}])])  # fmt: skip
    return path


PARAMS = {"account": ACCOUNTS[0], "market": MARKET, "symbol": "WETH", "until": "2099-01-01T00:00:00Z"}


def _params(sql: str) -> dict[str, str]:
    return {k: v for k, v in PARAMS.items() if f":{k}" in sql}


def test_every_table_and_view_is_documented(db: Path) -> None:
    text = DOC.read_text()
    database = sqlite_utils.Database(db)
    try:
        names = database.table_names() + database.view_names()
    finally:
        database.close()
    missing = [n for n in names if f"`{n}`" not in text and not n.startswith("sqlite_")]
    assert not missing, f"docs/schema.md does not name {missing}"
    assert len(QUERIES) >= 8


@pytest.mark.parametrize("sql", QUERIES, ids=[q.split("FROM")[1].split()[0] for q in QUERIES])
def test_documented_query_answers(db: Path, sql: str) -> None:
    database = sqlite_utils.Database(db)
    try:
        found = list(database.query(sql, _params(sql)))
    finally:
        database.close()
    assert found, sql  # the stored history has an answer for each question
    for row in found:
        for key in ("time_utc", "severity_since_utc"):
            if row.get(key) is not None:
                assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row[key]), row
        if "health_factor" in row and row["health_factor"] is not None:
            assert isinstance(row["health_factor"], float)


def test_the_below_queries_find_the_crashed_positions(db: Path) -> None:
    database = sqlite_utils.Database(db)
    try:
        now = list(database.query(QUERIES[0]))
        at_risk = {r["account"]: r["severity"] for r in database.query(QUERIES[1])}
        log = list(database.query("SELECT * FROM alert_log"))
    finally:
        database.close()
    assert now and all(r["health_factor"] < 1.2 for r in now)
    assert [r["health_factor"] for r in now] == sorted(r["health_factor"] for r in now)
    assert "critical" in at_risk.values()
    assert log[0]["account"] in at_risk and log[0]["deliveries"] == "telegram:pending"


def test_the_sqlite_utils_command_line_answers_too(db: Path) -> None:
    sql = QUERIES[2]
    args = [sys.executable, "-m", "sqlite_utils", "query", str(db), sql]
    for key, value in _params(sql).items():
        args += ["-p", key, value]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout
    rows = json.loads(out)
    assert rows and all(r["market"] == MARKET for r in rows)
    assert rows[0]["written_because"].startswith("first")
