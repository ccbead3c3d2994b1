"""Happy paths of scan, history and demo through the CLI entry point."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from monitor.devnet.seed import set_price
from tests.support import Devnet

pytestmark = pytest.mark.devnet


def test_scan_table_sorted_by_hf(devnet: Devnet, tmp_path: Path, capsys: Any) -> None:
    cfg = devnet.write_config(tmp_path / "c.yaml", tmp_path / "t.db")
    assert main(["scan", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("aave-v3-devnet @ block ") and f"{len(devnet.seeded)} positions" in lines[0]
    hfs = [float(line.split()[1]) for line in lines[3 : 3 + len(devnet.seeded)]]
    assert hfs == sorted(hfs)
    assert "liquidatable (HF < 1): 0" in out


def test_history_over_two_scans_in_three_formats(devnet: Devnet, tmp_path: Path, capsys: Any) -> None:
    cfg = devnet.write_config(tmp_path / "c.yaml", tmp_path / "h.db")
    account = devnet.seeded[0].account
    assert main(["scan", "--config", str(cfg)]) == 0
    set_price(devnet.node, devnet.deployment, "WETH", 1000)
    assert main(["scan", "--config", str(cfg)]) == 0
    capsys.readouterr()

    assert main(["history", "--config", str(cfg), "--account", account.lower(), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 and rows[0]["block"] < rows[1]["block"]
    assert all(r["account"] == account for r in rows)

    assert main(["history", "--config", str(cfg), "--account", account, "--format", "csv"]) == 0
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [int(r["block"]) for r in parsed] == [r["block"] for r in rows]
    assert parsed[0]["health_factor"] == rows[0]["health_factor"]

    since = str(rows[1]["block"])
    assert main(["history", "--config", str(cfg), "--account", account, "--since", since]) == 0
    table_out = capsys.readouterr().out
    assert since in table_out and str(rows[0]["block"]) not in table_out.split("\n", 2)[2]


def test_demo_walks_the_crash_and_flags_positions(capsys: Any, tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    assert main(["demo", "--positions", "30", "--substeps", "1", "--db", str(db), "-v"]) == 0
    out = capsys.readouterr().out
    assert "2020-03-12 low" in out and "ETH   111.21" in out
    # -v: each alert in full (headline, what to do in token units, the block)
    assert "\nTo reach HF 1.5: repay " in out and "\nLiquidated if " in out and "\nBlock " in out
    steps = [line for line in out.splitlines() if line.startswith("2020-03-")]
    first_liq = int(steps[0].split("HF<1:")[1].split()[0])
    worst_liq = max(int(line.split("HF<1:")[1].split()[0]) for line in steps)
    assert first_liq == 0 and worst_liq > 0
    assert "at risk at the end of the walk" in out
    assert db.is_file()


def test_demo_history_lists_alerts_prices_and_plots(capsys: Any, tmp_path: Path) -> None:
    import yaml

    db = tmp_path / "demo.db"
    assert main(["demo", "--positions", "30", "--substeps", "1", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "🚨 LIQUIDATABLE " in out and "✅ RESOLVED " in out and "oracle jump on WETH" in out
    alert_lines = [line for line in out.splitlines() if line.split(" ", 1)[0] in ("👀", "⚠️", "🔴", "🚨", "✅")]
    assert len(alert_lines) > 20 and max(map(len, alert_lines)) <= 120  # one compact line per alert
    assert not any("To reach HF" in line or "reason:" in line for line in out.splitlines())  # not the full text
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "chains": {"devnet": {"chain_id": 31337, "rpc_urls": ["http://127.0.0.1:1"]}},
        "markets": [{"name": "aave-v3-devnet", "protocol": "aave_v3", "chain": "devnet",
                     "pool_addresses_provider": "0x5FbDB2315678afecb367f032d93F642f64180aa3"}],
        "store": {"path": str(db)},
    }))  # fmt: skip
    assert main(["history", "--config", str(cfg), "--alerts", "--format", "json"]) == 0
    alerts = json.loads(capsys.readouterr().out)
    liquidatable = [a for a in alerts if a["severity"] == "liquidatable"]
    assert liquidatable and all(a["delivery"] == "sent" for a in liquidatable)
    assert main(["history", "--config", str(cfg), "--prices", "--asset", "WETH", "--format", "json"]) == 0
    prices = json.loads(capsys.readouterr().out)
    assert min(p["price_usd"] for p in prices) == pytest.approx(95.184303, rel=1e-6)  # 2020-03-13 low
    account = liquidatable[0]["subject"]
    plot = tmp_path / "hf.png"
    assert main(["history", "--config", str(cfg), "--account", account, "--plot", str(plot)]) == 0
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_run_fails_at_start_on_bad_channel_config(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    import yaml

    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "chains": {"devnet": {"chain_id": 31337, "rpc_urls": ["http://127.0.0.1:1"]}},
        "markets": [{"name": "m", "protocol": "aave_v3", "chain": "devnet",
                     "pool_addresses_provider": "0x5FbDB2315678afecb367f032d93F642f64180aa3"}],
        "alerts": {"channels": {"tg": {"type": "telegram", "token_env": "NO_SUCH_TOKEN"}},
                   "routes": [{"channel": "tg", "to": "-100123"}]},
    }))  # fmt: skip
    assert main(["run", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "alerts.channels.tg.token_env: environment variable NO_SUCH_TOKEN is not set" in err
    assert err.count("\n") == 1
