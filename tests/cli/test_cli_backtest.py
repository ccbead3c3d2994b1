"""`liqmon backtest`: help, input errors, --prices at hourly granularity with --json and --plot,
and --config giving the policy exactly as `liqmon run` loads it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli import main
from monitor.risk.synthetic_prices import SyntheticSpec, generate, write_csv

CONFIG: dict[str, Any] = {
    "chains": {"eth": {"chain_id": 1, "rpc_urls": ["http://127.0.0.1:8545"]}},
    "markets": [
        {"name": "m", "protocol": "aave_v3", "chain": "eth",
         "pool_addresses_provider": "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e"}
    ],
    "alerts": {"policy": {"alarm_cost_usd": {"watch": 3, "warning": 7, "critical": 20}, "paths": 300,
                          "exit_margin": 0.03}},
}  # fmt: skip
SMALL = [
    "--window-days", "7", "--lead-hours", "24", "--test-start", "2024-01-29", "--positions", "60",
    "--bootstrap", "50", "--cost-multiples", "1,10", "--levels", "1.0:1.2:0.1", "--history-days", "21",
    "--min-history-days", "14", "--jobs", "1", "--quiet",
]  # fmt: skip


@pytest.fixture(scope="module")
def hourly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_csv(generate(SyntheticSpec(days=50, seed=3)), tmp_path_factory.mktemp("p") / "hourly.csv")


def test_help_explains_the_protocol(capsys: Any) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["backtest", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ("EPISODE", "--lead-hours", "--prices", "Walk-forward", "--book-from-store", "--cost-multiples"):
        assert word in out


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--prices", "/nonexistent/p.csv"], "no such file"),
        (["--levels", "1.5:1.0:0.1"], "--levels"),
        (["--levels", "1.0-1.6"], "FIRST:LAST:STEP"),
        (["--cost-multiples", "a,b"], "--cost-multiples"),
        (["--book-from-store"], "--book-from-store"),
        (["--test-start", "2031-01-01"], "after the end of the prices"),
        (["--plot", "frontier.jpg"], ".png"),
    ],
)
def test_bad_input_is_a_one_line_error(args: list[str], match: str, capsys: Any) -> None:
    assert main(["backtest", "--quiet", *args]) == 1
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err


def test_bad_prices_file_names_the_line(tmp_path: Path, capsys: Any) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,asset,price\n2024-01-01,ETH,1\n2024-01-02,ETH,x\n")
    assert main(["backtest", "--prices", str(bad)]) == 1
    assert "line 3: price 'x'" in capsys.readouterr().err


def test_hourly_prices_json_and_plot(hourly: Path, tmp_path: Path, capsys: Any) -> None:
    plot = tmp_path / "frontier.png"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    assert main(["backtest", "--config", str(cfg), "--prices", str(hourly), *SMALL, "--json", "--plot", str(plot)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["step_hours"] == 1.0
    assert data["settings"]["alarm_cost_usd"] == 7.0  # the config's warning alarm cost, as `run` uses it
    assert data["settings"]["exit_margin"] == 0.03
    kinds = [r["kind"] for r in data["rules"]]
    assert kinds == ["fixed"] * 3 + ["policy"] * 2
    for r in data["rules"]:
        for key in ("recall", "false_alarm_episodes", "median_lead_hours", "recall_ci", "false_alarms_per_1000_ci"):
            assert key in r
    assert [r["cost_multiple"] for r in data["rules"] if r["kind"] == "policy"] == [1.0, 10.0]
    assert data["walk_forward_fixed"]["kind"] == "fixed-walk-forward"
    assert "accepted" in data["comparison"]
    assert plot.stat().st_size > 10_000


def test_table_output_and_progress(hourly: Path, capsys: Any) -> None:
    args = [a for a in SMALL if a != "--quiet"]
    assert main(["backtest", "--prices", str(hourly), *args, "--by-class"]) == 0
    captured = capsys.readouterr()
    assert "window 1/" in captured.err  # progress on stderr
    out = captured.out
    assert "policy x1 alarm cost" in out and "fixed level (walk-forward)" in out
    assert "acceptance (>= 30 % fewer false alarms" in out and "by class" in out


def test_book_from_store_replays_the_stored_positions(tmp_path: Path, capsys: Any) -> None:
    from monitor.store import Store
    from tests.unit.test_store import make_snapshot

    db = tmp_path / "s.db"
    with Store(db) as store:
        store.save_snapshot(make_snapshot())
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**CONFIG, "store": {"path": str(db)}}))
    args = ["backtest", "--config", str(cfg), "--book-from-store", "--test-start", "2023-01-01", "--bootstrap", "20",
            "--cost-multiples", "1", "--levels", "1.0:1.6:0.2", "--jobs", "1", "--quiet", "--json"]  # fmt: skip
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["book"].startswith("stored positions of")
    assert data["class_shares"] == {"WETH/USDC": 1.0}  # the one position with debt; the debt-free one is left out
    assert data["position_windows"] == data["test_windows"]
    assert data["step_hours"] == 24.0
