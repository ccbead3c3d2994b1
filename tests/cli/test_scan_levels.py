"""`liqmon scan` shows the threshold policy's levels per position, by severity, with the reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from tests.support import Devnet

pytestmark = pytest.mark.devnet


def test_scan_json_and_table_carry_levels_by_severity_and_why(devnet: Devnet, tmp_path: Path, capsys: Any) -> None:
    config = devnet.write_config(tmp_path / "devnet.yaml", tmp_path / "scan.db")
    assert main(["scan", "--config", str(config), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    with_debt = [r for r in rows if float(r["debt_usd"]) > 0]
    assert len(with_debt) > 100
    for r in with_debt:
        lv = r["levels"]
        assert set(lv) == {"watch", "warning", "critical"}
        assert lv["watch"] >= lv["warning"] >= lv["critical"] >= 1.0
        assert r["level_reason"].startswith(f"{r['position_class']}, ") and " h: warn at " in r["level_reason"]
    assert all(r["levels"] is None for r in rows if float(r["debt_usd"]) == 0)
    # composition matters: stablecoin eMode positions warn far later than the others
    emode = [r["levels"]["warning"] for r in with_debt if "eMode" in r["position_class"] and "WETH" not in
             r["position_class"] and "WBTC" not in r["position_class"]]  # fmt: skip
    volatile = [r["levels"]["warning"] for r in with_debt if "eMode" not in r["position_class"]]
    assert emode and volatile
    assert max(emode) < 1.05 < sorted(volatile)[len(volatile) // 2]
    assert main(["scan", "--config", str(config)]) == 0
    table = capsys.readouterr().out
    assert "level reason" in table and "warn at" in table
