"""`liqmon devnet up|seed|price|status|down` as a user runs them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main

pytestmark = pytest.mark.devnet


def alive(pid: int) -> bool:
    """Running and not a zombie (the test process is anvil's parent and does not reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_devnet_lifecycle(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    monkeypatch.setenv("LIQMON_CACHE", str(tmp_path))
    assert main(["devnet", "status"]) == 1
    assert "liqmon devnet up" in capsys.readouterr().err
    try:
        assert main(["devnet", "up"]) == 0
        assert "PoolAddressesProvider" in capsys.readouterr().out
        state = json.loads((tmp_path / "devnet.json").read_text())
        assert main(["devnet", "seed", "6", "--seed", "3"]) == 0
        assert main(["devnet", "price", "WETH", "1500"]) == 0
        assert main(["devnet", "price", "NOPE", "1"]) == 1
        assert "unknown devnet asset" in capsys.readouterr().err
        assert main(["devnet", "price"]) == 0
        assert "1,500.00000000" in capsys.readouterr().out
        config = tmp_path / "devnet.yaml"
        assert main(["scan", "--config", str(config), "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert len(rows) == 6
    finally:
        assert main(["devnet", "down"]) == 0
    deadline = time.monotonic() + 10
    while alive(state["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(state["pid"])
    assert not (tmp_path / "devnet.json").exists()
