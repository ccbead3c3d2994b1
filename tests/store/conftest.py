"""Fixtures for the portable store: a PostgreSQL server for the session, a fresh schema per test.

The server: ``LIQMON_TEST_POSTGRES_DSN`` (``.ci/run`` starts one with scripts/postgres.sh and
exports it); without it, outside CI, the fixture starts its own with the same script (which
installs the Debian package when root) and stops it at the end. In CI (``CI=true``) a missing
DSN fails the PostgreSQL tests with the reason: they never pass by being skipped.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from monitor.store.connection import SqlConnection, connect

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "postgres.sh"
DSN_VAR = "LIQMON_TEST_POSTGRES_DSN"


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def with_schema(dsn: str, schema: str) -> str:
    """``dsn`` whose connections use ``schema`` (libpq ``options=-c search_path=...``)."""
    parts = urlsplit(dsn)
    option = "options=" + quote(f"-c search_path={schema}", safe="")
    query = f"{parts.query}&{option}" if parts.query else option
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The DSN of a running PostgreSQL server (see the module docstring)."""
    dsn = os.environ.get(DSN_VAR, "").strip()
    if dsn:
        yield dsn
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(
            f"{DSN_VAR} is not set in CI: .ci/run must start PostgreSQL with scripts/postgres.sh"
            " and export its DSN (the PostgreSQL tests are never skipped in CI)"
        )
    directory = f"/tmp/liqmon-pg-pytest-{os.getpid()}"
    started = subprocess.run(
        ["bash", str(SCRIPT), "start", directory], capture_output=True, text=True, timeout=600, check=False
    )
    if started.returncode != 0:
        pytest.fail(
            f"no PostgreSQL for the store tests: set {DSN_VAR}, or let scripts/postgres.sh start one"
            f" (it said: {started.stderr.strip()[-500:]})"
        )
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", directory], capture_output=True, timeout=120, check=False)


@pytest.fixture(scope="session")
def postgres_database(postgres_server: str) -> Iterator[str]:
    """A fresh database on the server for this test session, dropped at its end."""
    name = f"liqmon_test_{uuid.uuid4().hex[:12]}"
    with connect(postgres_server) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield with_database(postgres_server, name)
    finally:
        with connect(postgres_server) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def fresh_schema(database_url: str) -> Iterator[str]:
    """A URL whose connections see only a fresh, empty schema (dropped at the end)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with connect(database_url) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_schema(database_url, schema)
    finally:
        with connect(database_url) as admin:
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def postgres_url(postgres_database: str) -> Iterator[str]:
    """A fresh, empty schema for this test."""
    with fresh_schema(postgres_database) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a fresh SQLite file and on a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[SqlConnection]:
    with connect(db_url) as conn:
        yield conn
