"""`liqmon doctor` checks store.history_url: reachable, schema, the newest scan per market."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from monitor.doctor import CheckRow, run_doctor
from monitor.store.connection import connect
from monitor.store.shared import SharedHistory
from tests.store import replay


def _config(tmp_path: Path) -> Path:
    data = {
        "chains": {"eth": {"chain_id": 1, "rpc_urls": ["http://127.0.0.1:1"], "max_retries": 0}},
        "markets": [{"name": "aave-a", "protocol": "aave_v3", "chain": "eth",
                     "pool_addresses_provider": "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e"}],
        "store": {"path": str(tmp_path / "local.db"), "history_url": "${LIQMON_TEST_HISTORY_URL}"},
    }  # fmt: skip
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _row(rows: list[CheckRow], name: str = "shared_history") -> CheckRow:
    [row] = [r for r in rows if r.check == name]
    return row


def test_doctor_reports_the_shared_history(postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIQMON_TEST_HISTORY_URL", postgres_url)
    cfg = _config(tmp_path)
    row = _row(run_doctor(cfg))
    assert row.status == "WARN" and "no shared history yet" in row.detail
    shared = SharedHistory(postgres_url, conn=connect(postgres_url))
    for _, snapshot in replay.operations(markets=("aave-a",), blocks=3, accounts=3, reorgs=False):
        shared.save_snapshot(snapshot)  # type: ignore[arg-type]
    now = replay.FIRST_TIME + 2 * replay.BLOCK_TIME + 30
    row = _row(run_doctor(cfg, clock=lambda: now))
    assert row.status == "OK", row.detail
    assert row.detail.startswith("PostgreSQL ") and f"aave-a @ {replay.FIRST_BLOCK + 2} (30 s ago)" in row.detail
    password = str(urlsplit(postgres_url).password)
    assert password not in row.target and "<secret>" in row.target
    assert all(r.check != "shared_history" for r in run_doctor(cfg, offline=True))


def test_doctor_fails_a_wrong_password_in_one_line(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = str(urlsplit(postgres_url).password)
    monkeypatch.setenv("LIQMON_TEST_HISTORY_URL", postgres_url.replace(f":{password}@", ":wrong-pw@", 1))
    row = _row(run_doctor(_config(tmp_path)))
    assert row.status == "FAIL" and "password authentication failed" in row.detail
    assert "wrong-pw" not in row.detail + row.target and "\n" not in row.detail
