"""monitor.store.connection: one SQL text, the same answers on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from monitor.errors import StoreError
from monitor.store.connection import (
    SqlConnection,
    SqlIntegrityError,
    connect,
    display_url,
    to_pyformat,
    upsert_sql,
    url_dialect,
)

BIG = 2**256 - 1
INT64_MAX = 2**63 - 1


def _make_table(db: SqlConnection) -> None:
    db.create_table(
        "t",
        {"market": "text", "block": "int", "amount": "uint256", "hf": "float", "note": "text", "raw": "bytes"},
        primary_key=("market", "block"),
        nullable=("note", "raw"),
    )


# --------------------------------------------------------------------------- pure


def test_placeholders_become_pyformat_outside_quotes_and_comments() -> None:
    sql = "SELECT '?', \"a?\", x FROM t WHERE a = ? AND b LIKE 'x%' -- why? 5%\n AND c = ?"
    assert to_pyformat(sql) == ("SELECT '?', \"a?\", x FROM t WHERE a = %s AND b LIKE 'x%%' -- why? 5%%\n AND c = %s")
    assert to_pyformat("SELECT 'it''s ?' , ? % 2") == "SELECT 'it''s ?' , %s %% 2"


def test_display_url_masks_the_password_only() -> None:
    assert (
        display_url("postgresql://desk:hunter22@db.local:5433/liqmon")
        == "postgresql://desk:<secret>@db.local:5433/liqmon"
    )
    assert display_url("postgresql://desk@db/liqmon?password=pw1&sslmode=require") == (
        "postgresql://desk@db/liqmon?password=<secret>&sslmode=require"
    )
    assert display_url("/var/lib/liqmon/history.db") == "/var/lib/liqmon/history.db"


def test_unknown_scheme_is_named() -> None:
    with pytest.raises(StoreError, match=r"mysql://u:<secret>@h/d: unknown database kind 'mysql'"):
        url_dialect("mysql://u:pw@h/d")
    assert url_dialect("postgres://h/d") == "postgresql"
    assert url_dialect(Path("x.db")) == "sqlite"


def test_upsert_sql_is_on_conflict() -> None:
    assert upsert_sql("prices", ["market", "asset", "price"], ["market", "asset"]) == (
        "INSERT INTO prices (market, asset, price) VALUES (?, ?, ?)"
        " ON CONFLICT (market, asset) DO UPDATE SET price = excluded.price"
    )
    assert upsert_sql("k", ["a"], ["a"]).endswith("ON CONFLICT (a) DO NOTHING")
    with pytest.raises(StoreError, match="not a plain SQL identifier"):
        upsert_sql("t; DROP TABLE x", ["a"], ["a"])


def test_missing_driver_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(StoreError, match=r"needs the PostgreSQL driver: pip install 'liqmon\[postgres\]'") as info:
        connect("postgresql://desk:hunter22@127.0.0.1:1/x")
    assert "hunter22" not in str(info.value)


def test_sqlite_url_forms(tmp_path: Path) -> None:
    with connect(f"sqlite:///{tmp_path}/a/b.db") as db:
        db.execute("CREATE TABLE x (a INTEGER)")
    assert (tmp_path / "a" / "b.db").exists()
    with connect("sqlite://") as memory:
        assert memory.execute("SELECT 1 + 1") == [(2,)]
    with pytest.raises(StoreError, match="sqlite:///relative/path or sqlite:////absolute/path"):
        connect("sqlite://host/x.db")


def test_a_shared_sqlite_connection_is_used_not_closed() -> None:
    raw = sqlite3.connect(":memory:")  # Python's implicit transactions (sqlite-utils' default)
    db = connect(raw)
    db.execute("CREATE TABLE x (a INTEGER)")
    db.execute("INSERT INTO x VALUES (?)", [1])
    assert not raw.in_transaction  # committed on its own
    with db.transaction():
        db.execute("INSERT INTO x VALUES (?)", [2])
    db.close()
    assert raw.execute("SELECT count(*) FROM x").fetchone() == (2,)
    raw.close()


# --------------------------------------------------------------------------- both dialects


def test_types_round_trip_exactly(db: SqlConnection) -> None:
    _make_table(db)
    rows = [
        ("m", INT64_MAX, str(BIG), 1.0000000000000002, None, None),
        ("m", 0, "0", 1e300, "n%?'", b"\x00\xff"),
    ]
    db.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)", rows)
    got = db.execute("SELECT market, block, amount, hf, note, raw FROM t ORDER BY block DESC")
    assert got == rows
    assert int(got[0][2]) == BIG
    assert db.execute("SELECT sum(block), count(*), max(hf) FROM t") == [(INT64_MAX, 2, 1e300)]
    assert db.execute("SELECT note FROM t WHERE note LIKE 'n%'") == [("n%?'",)]


def test_upsert_returning_window_and_row_values(db: SqlConnection) -> None:
    _make_table(db)
    sql = upsert_sql("t", ["market", "block", "amount", "hf"], ["market", "block"])
    db.executemany(sql, [("a", 1, "10", 1.5), ("a", 2, "20", 1.2), ("b", 1, "5", 3.0)])
    db.execute(sql, ["a", 2, "21", 1.1])
    assert db.execute("SELECT amount FROM t WHERE market = ? AND block = ?", ["a", 2]) == [("21",)]
    returning = "INSERT INTO t (market, block, amount, hf) VALUES (?, ?, ?, ?) RETURNING block"
    assert db.execute(returning, ["c", 9, "1", 2.0]) == [(9,)]
    latest = db.execute(
        "SELECT market, block, amount FROM t WHERE (market, block) IN"
        " (SELECT market, max(block) FROM t GROUP BY market) ORDER BY market"
    )
    assert latest == [("a", 2, "21"), ("b", 1, "5"), ("c", 9, "1")]
    ranked = db.execute(
        "SELECT market, block FROM (SELECT market, block, row_number() OVER"
        " (PARTITION BY market ORDER BY block DESC) AS r FROM t) AS x WHERE r = 1 ORDER BY market"
    )
    assert ranked == [("a", 2), ("b", 1), ("c", 9)]
    assert db.execute_count("DELETE FROM t WHERE market = ?", ["a"]) == 2
    assert db.tables() == ["t"] and db.table_exists("t") and not db.table_exists("u")


def test_transactions_commit_together_and_savepoints_roll_back_alone(db: SqlConnection) -> None:
    _make_table(db)
    insert = "INSERT INTO t (market, block, amount, hf) VALUES (?, ?, ?, ?)"
    with pytest.raises(RuntimeError), db.transaction():
        db.execute(insert, ["m", 1, "1", 1.0])
        raise RuntimeError("crash mid-write")
    assert db.execute("SELECT count(*) FROM t") == [(0,)]
    with db.transaction():
        db.execute(insert, ["m", 1, "1", 1.0])
        with pytest.raises(SqlIntegrityError), db.transaction():
            db.execute(insert, ["m", 2, "2", 2.0])
            db.execute(insert, ["m", 1, "dup", 1.0])  # primary key: the inner block is undone
        assert db.in_transaction
        db.execute(insert, ["m", 3, "3", 3.0])
    assert not db.in_transaction
    assert db.execute("SELECT block FROM t ORDER BY block") == [(1,), (3,)]


def test_errors_name_the_database_without_its_password(db: SqlConnection) -> None:
    with pytest.raises(StoreError) as info:
        db.execute("SELECT * FROM no_such_table")
    message = str(info.value)
    assert message.startswith(f"cannot read or write history database {db.display}:")
    assert "no_such_table" in message
    assert "liqmon-test" not in message  # the test server's password
    assert db.execute("SELECT 1") == [(1,)]  # the connection is still usable


# --------------------------------------------------------------------------- PostgreSQL only


def test_postgres_wrong_password_is_one_line_without_it(postgres_database: str) -> None:
    parts = urlsplit(postgres_database)
    wrong = postgres_database.replace(f":{parts.password}@", ":not-the-password@", 1)
    with pytest.raises(StoreError) as info:
        connect(wrong)
    message = str(info.value)
    assert "\n" not in message
    assert "not-the-password" not in message
    assert f"{parts.username}:<secret>@{parts.hostname}:{parts.port}" in message
    assert "password authentication failed" in message


def test_postgres_instances_share_committed_rows_only(postgres_url: str) -> None:
    with connect(postgres_url) as writer, connect(postgres_url) as reader:
        _make_table(writer)
        with writer.transaction():
            writer.execute("INSERT INTO t (market, block, amount, hf) VALUES (?, ?, ?, ?)", ["m", 1, "1", 1.0])
            assert reader.execute("SELECT count(*) FROM t") == [(0,)]
        assert reader.execute("SELECT count(*) FROM t") == [(1,)]
        assert writer.dialect == "postgresql" and writer.column_type("int") == "BIGINT"


def test_a_big_plain_insert_batch_is_exact(db: SqlConnection) -> None:
    """PostgreSQL sends it as COPY: the same values as row-by-row inserts, NULLs and quotes included."""
    from monitor.store.connection import COPY_MIN_ROWS

    _make_table(db)
    rows = [
        ("m", i, str(BIG - i), i / 3, None if i % 7 else "it's \\ \t%?", b"\x00\n" if i % 5 == 0 else None)
        for i in range(COPY_MIN_ROWS + 100)
    ]
    db.executemany("INSERT INTO t (market, block, amount, hf, note, raw) VALUES (?, ?, ?, ?, ?, ?)", rows)
    assert db.execute("SELECT market, block, amount, hf, note, raw FROM t ORDER BY block") == rows
    with pytest.raises(SqlIntegrityError):  # a duplicate key fails the whole batch, as executemany does
        db.executemany("INSERT INTO t (market, block, amount, hf) VALUES (?, ?, ?, ?)", [r[:4] for r in rows])
