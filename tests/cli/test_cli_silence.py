"""``liqmon silence add | list | expire`` and ``liqmon ack`` on a history database (offline)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor import cli_silence
from monitor.alerts.outbox import deliver_due
from monitor.cli import main
from monitor.config.alerts import GroupingConfig
from monitor.store import Store
from tests.faults.test_grouping import alert

T0 = 1_700_000_000.0
ACCOUNT = "0x0000000000000000000000000000000000000001"  # account(0) of test_grouping, checksummed


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data: dict[str, Any] = {
        "chains": {"devnet": {"chain_id": 31337, "rpc_urls": ["http://127.0.0.1:9/${RPC_KEY_UNSET}"]}},
        "markets": [{"name": "m", "protocol": "aave_v3", "chain": "devnet",
                     "pool_addresses_provider": "0x" + "12" * 20}],
        "store": {"path": str(tmp_path / "h.db")},
        "alerts": {"channels": {"tg": {"type": "telegram", "token_env": "LIQMON_TEST_TOKEN_UNSET"}},
                   "routes": [{"channel": "tg", "to": "-100123"}]},
    }  # fmt: skip
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setattr(cli_silence, "clock", lambda: T0)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_silence_add_list_expire_round_trip(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "silence", "add", "--config", str(config), "--account", ACCOUNT.lower(),
                       "--severity", "warning", "--for", "6h", "--comment", "rebalancing")  # fmt: skip
    assert code == 0 and out.startswith("silence 1: ") and ACCOUNT in out and "2023-11-15 04:13" in out
    code, out, _ = run(capsys, "silence", "list", "--config", str(config), "--json")
    (row,) = json.loads(out)
    assert (row["account"], row["severity"], row["ends_at"] - row["starts_at"], row["state"]) == (
        ACCOUNT, "warning", 21600, "active")  # fmt: skip
    assert run(capsys, "silence", "list", "--config", str(config))[1].count("rebalancing") == 1
    assert run(capsys, "silence", "expire", "1", "--config", str(config))[0] == 0
    assert "no silences in force" in run(capsys, "silence", "list", "--config", str(config))[1]
    assert "expired" in run(capsys, "silence", "list", "--config", str(config), "--all")[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["silence", "add", "--for", "6h", "--comment", "x"], "give at least one of --account"),
        (["silence", "add", "--market", "m", "--for", "6 days", "--comment", "x"], "duration '6 days' is invalid"),
        (["silence", "add", "--market", "nope", "--for", "1h", "--comment", "x"], "--market 'nope' is not in"),
        (["silence", "add", "--account", "0x12", "--for", "1h", "--comment", "x"], "is not an address"),
        (["silence", "expire", "7"], "silence 7 does not exist"),
        (["ack", ACCOUNT], "no open alert episode"),
        (["ack", "42"], "alert 42 does not exist"),
    ],
)
def test_user_errors_are_one_line(
    config: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = (
        run(capsys, *argv[:2], "--config", str(config), *argv[2:])
        if argv[0] == "silence"
        else run(capsys, *argv, "--config", str(config))
    )
    assert code == 1 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_history_shows_a_silenced_alert_recorded_not_sent(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "silence", "add", "--config", str(config), "--market", "m", "--for", "1h",
               "--comment", "maintenance")[0] == 0  # fmt: skip
    with Store(Path(yaml.safe_load(config.read_text())["store"]["path"]), clock=lambda: T0) as store:
        store.record_alerts("m", 5, [], [alert(0)])
        stats = deliver_due(store, {}, T0 + 1, grouping=GroupingConfig())  # silenced before any channel is asked
    assert stats.silenced == 1 and stats.failed == 0
    code, out, _ = run(capsys, "history", "--config", str(config), "--alerts", "--format", "json")
    (row,) = json.loads(out)
    assert code == 0 and row["delivery"] == "silenced by #1" and row["deliveries"][0]["status"] == "silenced"


def test_ack_by_account_and_by_alert_id(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Store(Path(yaml.safe_load(config.read_text())["store"]["path"]), clock=lambda: T0) as store:
        (first,) = store.record_alerts("m", 5, [], [alert(0)])
    code, out, _ = run(capsys, "ack", ACCOUNT.lower(), "--config", str(config), "--comment", "on it")
    assert code == 0 and f"acknowledged {ACCOUNT} in m at warning (alert {first})" in out
    code, out, _ = run(capsys, "ack", str(first), "--config", str(config))
    assert code == 0 and "acknowledged" in out
    with Store(Path(yaml.safe_load(config.read_text())["store"]["path"])) as store:
        assert store.active_acks("m")[ACCOUNT]["severity"] == "warning"


def test_ack_of_an_alert_of_an_ended_episode_is_refused(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Store(Path(yaml.safe_load(config.read_text())["store"]["path"]), clock=lambda: T0) as store:
        (old,) = store.record_alerts("m", 5, [], [alert(0)])
        resolved = alert(0, "ok", reason="resolved")
        resolved[0]["previous"] = "warning"
        store.record_alerts("m", 6, [], [resolved])
        (new,) = store.record_alerts("m", 7, [], [alert(0)])
    code, _, err = run(capsys, "ack", str(old), "--config", str(config))
    assert code == 1 and f"alert {old} belongs to an episode" in err and f"alert {new}" in err
    assert run(capsys, "ack", str(new), "--config", str(config))[0] == 0
