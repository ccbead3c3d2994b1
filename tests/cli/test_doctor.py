"""`liqmon doctor` against the real Aave V3 devnet, a local Telegram peer, and broken setups."""

from __future__ import annotations

import argparse
import json
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor import cli
from monitor.cli_ops import add_ops_parsers
from monitor.errors import MonitorError
from tests.support import Devnet
from tests.support_peers import TELEGRAM_TEST_TOKEN, TelegramServer

pytestmark = pytest.mark.devnet

CHAT_IDS = ("1001", "-1002003004005")
RPC_KEY = "rpc-key-s3cr3t-value"


def doctor(argv: Sequence[str]) -> int:
    """``liqmon doctor ...`` through cli.main once it registers the ops commands, else the same way main does."""
    if "add_ops_parsers" in vars(cli):
        return cli.main(["doctor", *argv])
    parser = argparse.ArgumentParser(prog="liqmon")
    add_ops_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["doctor", *argv])
    try:
        return int(args.func(args))
    except MonitorError as exc:
        print(f"liqmon: error: {exc}", file=sys.stderr)
        return 1


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed on exit: nothing listens there


@pytest.fixture
def telegram() -> Iterator[TelegramServer]:
    with TelegramServer() as server:
        yield server


@pytest.fixture
def setup(devnet: Devnet, tmp_path: Path, telegram: TelegramServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The devnet config (as data) plus a Telegram channel with one route per chat id."""
    monkeypatch.setenv("TG_TOKEN", TELEGRAM_TEST_TOKEN)
    devnet.node.mine()  # a fresh head: earlier tests may have left the latest block minutes old
    data: dict[str, Any] = yaml.safe_load(
        devnet.write_config(tmp_path / "base.yaml", tmp_path / "doctor.db").read_text()
    )
    data["alerts"] = {
        "channels": {"desk": {"type": "telegram", "token_env": "TG_TOKEN", "base_url": telegram.base_url,
                              "min_interval_s": 0}},
        "routes": [{"channel": "desk", "to": chat, "min_severity": "watch"} for chat in CHAT_IDS],
    }  # fmt: skip
    return data


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "liqmon.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def rows_of(capsys: pytest.CaptureFixture[str], argv: Sequence[str]) -> tuple[int, list[dict[str, Any]], str]:
    code = doctor([*argv, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out), out + err


def failed(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["check"], r["target"]) for r in rows if r["status"] == "FAIL"]


def test_healthy_devnet_is_all_ok_and_sends_nothing(
    setup: dict[str, Any], tmp_path: Path, telegram: TelegramServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(tmp_path, setup)
    code, rows, _ = rows_of(capsys, ["--config", str(config)])
    assert code == 0
    assert {r["status"] for r in rows} == {"OK"}, [r for r in rows if r["status"] != "OK"]
    checks = [r["check"] for r in rows]
    assert checks == [
        "config", "rpc", "head", "get_logs", "multicall3", "latency", "market",
        "database", "db_integrity", "db_journal", "db_contents", "channel", "route", "route",
    ]  # fmt: skip
    by_check = {r["check"]: r for r in rows}
    assert "chain id 31337" in by_check["rpc"]["detail"]
    assert "Borrow log(s)" in by_check["get_logs"]["detail"]
    assert " ms " in by_check["latency"]["detail"]
    assert "journal_mode: wal" in by_check["db_journal"]["detail"]
    assert all("not sent; use --send-test" in r["detail"] for r in rows if r["check"] == "route")
    assert all(set(r) == {"check", "target", "status", "detail", "seconds"} for r in rows)
    assert telegram.requests == 0 and telegram.messages == []

    # the table form: same verdict, a summary line, no token anywhere
    assert doctor(["--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0].split() == ["check", "target", "status", "detail", "seconds"]
    assert out.rstrip().endswith(f"doctor: {len(rows)} OK, 0 WARN, 0 FAIL")
    assert TELEGRAM_TEST_TOKEN not in out + err
    assert telegram.requests == 0


def test_send_test_delivers_one_message_per_route(
    setup: dict[str, Any], tmp_path: Path, telegram: TelegramServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, rows, text = rows_of(capsys, ["--config", str(write(tmp_path, setup)), "--send-test"])
    assert code == 0, failed(rows)
    routes = [r for r in rows if r["check"] == "route"]
    assert [r["status"] for r in routes] == ["OK", "OK"]
    assert all("test message delivered" in r["detail"] for r in routes)
    messages = telegram.messages
    assert sorted(str(m.chat_id) for m in messages) == sorted(CHAT_IDS)
    assert all("liqmon doctor test message" in m.plain for m in messages)
    assert TELEGRAM_TEST_TOKEN not in text


def test_send_test_reports_delivery_failure(
    setup: dict[str, Any], tmp_path: Path, telegram: TelegramServer, capsys: pytest.CaptureFixture[str]
) -> None:
    telegram.close()  # the Bot API is down
    code, rows, text = rows_of(capsys, ["--config", str(write(tmp_path, setup)), "--send-test"])
    assert code == 1
    assert failed(rows) == [("route", "alerts.routes[0]"), ("route", "alerts.routes[1]")]
    assert TELEGRAM_TEST_TOKEN not in text


def test_dead_second_endpoint_fails_and_its_secret_stays_hidden(
    setup: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RPC_KEY", RPC_KEY)
    setup["chains"]["devnet"]["rpc_urls"].append(f"http://127.0.0.1:{dead_port()}/v2/${{RPC_KEY}}")
    code, rows, text = rows_of(capsys, ["--config", str(write(tmp_path, setup))])
    assert code == 1
    (dead,) = [r for r in rows if r["status"] == "FAIL"]
    assert dead["check"] == "rpc"
    assert dead["target"].endswith("/v2/<secret>")
    assert "connection refused" in dead["detail"]
    # the first endpoint is fully checked, and the market runs through it
    assert [r["status"] for r in rows if r["check"] in ("head", "get_logs", "multicall3", "latency", "market")] == [
        "OK"
    ] * 5
    assert RPC_KEY not in text
    assert doctor(["--config", str(write(tmp_path, setup))]) == 1
    out, err = capsys.readouterr()
    assert RPC_KEY not in out + err and "<secret>" in out


def test_wrong_chain_id_fails(setup: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup["chains"]["devnet"]["chain_id"] = 1
    code, rows, _ = rows_of(capsys, ["--config", str(write(tmp_path, setup))])
    assert code == 1
    rpc = next(r for r in rows if r["check"] == "rpc")
    assert rpc["status"] == "FAIL"
    assert "serves chain id 31337, but chains.devnet.chain_id is 1" in rpc["detail"]
    market = next(r for r in rows if r["check"] == "market")
    assert market["status"] == "FAIL" and "no working RPC endpoint" in market["detail"]
    assert not any(r["check"] in ("head", "get_logs", "multicall3", "latency") for r in rows)


def test_multicall3_without_code_fails(
    setup: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup["chains"]["devnet"]["multicall3"] = "0x000000000000000000000000000000000000dead"
    code, rows, _ = rows_of(capsys, ["--config", str(write(tmp_path, setup))])
    assert code == 1
    assert failed(rows) == [("multicall3", f"devnet {setup['chains']['devnet']['rpc_urls'][0]}")]
    (row,) = [r for r in rows if r["check"] == "multicall3"]
    assert "no contract at 0x000000000000000000000000000000000000dEaD" in row["detail"]


def test_provider_without_code_fails_the_market(
    setup: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup["markets"][0]["pool_addresses_provider"] = "0x000000000000000000000000000000000000beef"
    code, rows, _ = rows_of(capsys, ["--config", str(write(tmp_path, setup))])
    assert code == 1
    assert failed(rows) == [("market", setup["markets"][0]["name"])]


def test_refused_log_range_warns(
    setup: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.chain.rpc import RpcClient
    from monitor.errors import RpcResponseError

    real = RpcClient.request

    def limited(self: RpcClient, method: str, params: Sequence[Any] = ()) -> Any:
        if method == "eth_getLogs":
            raise RpcResponseError("eth_getLogs: node error -32005: block range is too wide (max 1000)", -32005)
        return real(self, method, params)

    monkeypatch.setattr(RpcClient, "request", limited)
    code, rows, _ = rows_of(capsys, ["--config", str(write(tmp_path, setup))])
    assert code == 0  # a WARN is not a failure
    (row,) = [r for r in rows if r["check"] == "get_logs"]
    assert row["status"] == "WARN"
    assert "block range is too wide" in row["detail"] and "lower max_log_range" in row["detail"]


def test_bad_config_is_one_fail_row_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("chains: [\n")
    code, rows, text = rows_of(capsys, ["--config", str(bad)])
    assert code == 1
    assert len(rows) == 1
    assert (rows[0]["check"], rows[0]["status"]) == ("config", "FAIL")
    assert "invalid YAML" in rows[0]["detail"]
    assert "Traceback" not in text
    assert doctor(["--config", str(tmp_path / "missing.yaml")]) == 1
    out, err = capsys.readouterr()
    assert "config file not found" in out and "FAIL" in out
    assert "Traceback" not in out + err and err == ""
