"""User mistakes give one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from tests.support import Devnet

PROVIDER = "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e"
BAD_CHECKSUM = "0x2F39d218133AFaB8F2B819B1066c7E434Ad94E9e"
GOOD = """\
chains:
  ethereum:
    chain_id: 1
    rpc_urls: [http://127.0.0.1:{port}]
    request_timeout_s: 0.5
    max_retries: 1
markets:
  - name: aave-v3-ethereum
    protocol: aave_v3
    chain: ethereum
    pool_addresses_provider: 0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e
store:
  path: {db}
"""


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor.cli", *args], capture_output=True, text=True, timeout=60)


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("liqmon: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda t: t.replace("    chain: ethereum\n", "    chain: ethereum\n    colour: red\n"), "markets[0].colour"),
        (lambda t: t.replace(PROVIDER, "0x2f39"), "markets[0].pool_addresses_provider"),
        (lambda t: t.replace(PROVIDER, BAD_CHECKSUM), "checksum"),
        (lambda t: t.replace("chain_id: 1", "chain_id: one"), "chains.ethereum.chain_id"),
        (lambda t: t.replace("rpc_urls", "rpc_url"), "chains.ethereum.rpc_url"),
    ],
)  # fmt: skip
def test_bad_config_names_file_and_key(tmp_path: Path, edit: Any, needle: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(edit(GOOD.format(port=closed_port(), db=tmp_path / "x.db")))
    result = run_cli("scan", "--config", str(cfg))
    assert result.returncode == 1
    line = one_line_error(result.stderr)
    assert str(cfg) in line and needle in line


def test_missing_config_file(tmp_path: Path) -> None:
    result = run_cli("scan", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    line = one_line_error(result.stderr)
    assert "nope.yaml" in line and "not found" in line


def test_unreachable_rpc_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(GOOD.format(port=closed_port(), db=tmp_path / "x.db"))
    result = run_cli("scan", "--config", str(cfg))
    assert result.returncode == 1
    line = one_line_error(result.stderr)
    assert "connection refused" in line and "127.0.0.1" in line


def test_wrong_chain_id_is_named(devnet: Devnet, tmp_path: Path, capsys: Any) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(GOOD.format(port=devnet.anvil.port, db=tmp_path / "x.db"))
    assert main(["scan", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "chains.ethereum.chain_id" in err and "31337" in err


def test_not_an_aave_provider(devnet: Devnet, tmp_path: Path, capsys: Any) -> None:
    cfg = tmp_path / "c.yaml"
    text = GOOD.format(port=devnet.anvil.port, db=tmp_path / "x.db").replace("chain_id: 1", "chain_id: 31337")
    cfg.write_text(text.replace("0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e", devnet.deployment.whale))
    assert main(["scan", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "PoolAddressesProvider" in err and "Traceback" not in err


def test_history_bad_inputs(tmp_path: Path, capsys: Any) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(GOOD.format(port=closed_port(), db=tmp_path / "x.db"))
    assert main(["history", "--config", str(cfg), "--account", "0x123"]) == 1
    assert "--account" in capsys.readouterr().err
    account = "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e"
    assert main(["history", "--config", str(cfg), "--account", account, "--since", "yesterday"]) == 1
    assert "--since" in capsys.readouterr().err
    assert main(["history", "--config", str(cfg), "--account", account, "--market", "nope"]) == 1
    assert "aave-v3-ethereum" in capsys.readouterr().err


def test_help_explains_every_command() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("scan", "history", "devnet", "demo"):
        assert command in result.stdout
    for command in ("scan", "history", "devnet", "demo"):
        sub = run_cli(command, "--help")
        assert sub.returncode == 0 and "usage: liqmon" in sub.stdout


def test_no_command_prints_help() -> None:
    result = run_cli()
    assert result.returncode == 2 and "usage: liqmon" in result.stdout
