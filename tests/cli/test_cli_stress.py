"""`liqmon stress` from stored scans: scenarios, runs stored, listed, and clear input errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli import main
from monitor.devnet.session import devnet_config
from monitor.risk.scenarios import scenario_names
from tests.support import Devnet

pytestmark = pytest.mark.devnet


@pytest.fixture
def scanned(devnet: Devnet, tmp_path: Path, capsys: Any) -> Path:
    cfg = devnet.write_config(tmp_path / "c.yaml", tmp_path / "s.db")
    assert main(["scan", "--config", str(cfg)]) == 0
    capsys.readouterr()
    return cfg


def test_shock_json_and_plot(scanned: Path, tmp_path: Path, capsys: Any) -> None:
    plot = tmp_path / "hf.png"
    args = [
        "stress",
        "--config",
        str(scanned),
        "--shock",
        "WETH=-35%",
        "--shock",
        "USDC=-5%",
        "--json",
        "--plot",
        str(plot),
    ]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["multipliers"]["WETH"] == pytest.approx(0.65) and report["multipliers"]["USDC"] == pytest.approx(0.95)
    summary = report["summary"]
    assert summary["positions"] == 1000 and 0 < summary["liquidatable"] < 1000
    assert summary["bad_debt_usd"] <= summary["debt_at_risk_usd"] <= summary["debt_total_usd"]
    hfs = [p["hf_after"] for p in report["positions"]]
    assert hfs == sorted(hfs)
    assert sum(p["liquidatable"] for p in report["positions"]) == summary["liquidatable"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_historical_and_monte_carlo_runs_are_stored_and_listed(scanned: Path, capsys: Any) -> None:
    assert main(["stress", "--config", str(scanned), "--scenario", "2020-03-12", "--horizon-days", "2"]) == 0
    out = capsys.readouterr().out
    assert "2020-03-12 2d" in out and "WETH -51.2%" in out  # low 95.18 (03-13) / close 194.87 (03-11), real data
    assert main(["stress", "--config", str(scanned), "--monte-carlo", "300", "--json"]) == 0
    mc = json.loads(capsys.readouterr().out)["summary"]
    assert mc["bad_debt_var99_usd"] >= mc["bad_debt_var95_usd"] >= 0
    assert mc["bad_debt_es99_usd"] >= mc["bad_debt_var99_usd"]
    assert main(["history", "--config", str(scanned), "--runs", "--format", "json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [r["scenario"] for r in runs] == ["2020-03-12 2d", "monte-carlo bootstrap 300x1d"]
    assert runs[0]["summary"]["liquidatable"] > 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--shock", "XYZ=-5%"], "unknown asset XYZ"),
        (["--shock", "WETH=-100%"], "-100 %"),
        (["--shock", "WETH"], "ASSET=CHANGE"),
        ([], "choose exactly one"),
        (["--shock", "WETH=-5%", "--monte-carlo", "10"], "choose exactly one"),
        (["--market", "nope", "--shock", "WETH=-5%"], "aave-v3-devnet"),
    ],
)
def test_bad_input_is_one_clear_line(scanned: Path, capsys: Any, args: list[str], needle: str) -> None:
    assert main(["stress", "--config", str(scanned), *args]) == 1
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_empty_market_and_missing_scan(devnet: Devnet, tmp_path: Path, capsys: Any) -> None:
    cfg = tmp_path / "c.yaml"
    data = devnet_config(devnet.url, devnet.deployment, str(tmp_path / "e.db"))
    assert main(["stress", "--config", str(_write(cfg, data)), "--shock", "WETH=-5%"]) == 1
    assert "run `liqmon scan` first" in capsys.readouterr().err
    data["markets"][0]["accounts"] = ["0x000000000000000000000000000000000000dEaD"]
    assert main(["scan", "--config", str(_write(cfg, data))]) == 0
    capsys.readouterr()
    assert main(["stress", "--config", str(cfg), "--shock", "WETH=-5%"]) == 1
    assert "no positions with collateral or debt" in capsys.readouterr().err


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_calibrate_reports_curve_and_recommendation(scanned: Path, tmp_path: Path, capsys: Any) -> None:
    plot = tmp_path / "cal.png"
    args = ["calibrate", "--config", str(scanned), "--asset", "WETH", "--paths", "300", "--liquidity-usd", "2e6",
            "--json", "--plot", str(plot)]  # fmt: skip
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    points = report["points"]
    assert report["current_lt"] == pytest.approx(0.83)
    assert len(points) >= 50 and points[0]["lt"] < points[-1]["lt"]
    # the crashes are reported apart from the Monte Carlo paths, one curve each over the same grid
    assert report["scenarios"] == 300
    assert [c["name"] for c in report["crashes"]] == scenario_names()
    assert all(len(c["bad_debt"]) == len(points) for c in report["crashes"])
    rec = report["recommended_lt"]
    passing = [
        p["lt"] for g, p in enumerate(points)
        if p["var_q"] <= 0.01 * p["total_debt"] + 1e-6
        and all(c["weight"] * c["bad_debt"][g] <= 0.02 * p["total_debt"] + 1e-6 for c in report["crashes"])
    ]  # fmt: skip
    assert rec == (pytest.approx(max(passing)) if passing else None)
    assert report["explanation"] and report["binding"]
    assert 0 <= report["smart_ltv"] <= 1
    assert report["smart_ltv_sellable_usd"] == pytest.approx(2e6 * 0.05 / 0.95, rel=1e-6)  # WETH bonus 5 %
    assert plot.stat().st_size > 10_000
    assert main(["history", "--config", str(scanned), "--runs"]) == 0
    assert "calibrate WETH" in capsys.readouterr().out
    assert main(["calibrate", "--config", str(scanned), "--asset", "NOPE"]) == 1
    assert "unknown asset 'NOPE'" in capsys.readouterr().err


def test_calibrate_table_shows_the_crashes_the_reason_and_the_delay(scanned: Path, capsys: Any) -> None:
    base = ["calibrate", "--config", str(scanned), "--asset", "WETH", "--paths", "200", "--liquidity-usd", "1e15"]
    assert main([*base, "--delay-hours", "1"]) == 0
    out = capsys.readouterr().out
    assert "2020-03-12" in out and "MC VaR99" in out and "why:" in out and "sellable within the 5% bonus" in out
    assert main([*base, "--json", "--delay-hours", "1"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert main([*base, "--json", "--delay-hours", "24"]) == 0
    day = json.loads(capsys.readouterr().out)
    black = next(c for c in one["crashes"] if c["name"] == "2020-03-12")
    black_day = next(c for c in day["crashes"] if c["name"] == "2020-03-12")
    assert black_day["delay_move"] > black["delay_move"] and sum(black_day["bad_debt"]) > sum(black["bad_debt"])
    assert main([*base, "--crash-weight", "2020-03-12"]) == 1
    assert "--crash-weight '2020-03-12': expected NAME=WEIGHT" in capsys.readouterr().err
    assert main([*base, "--crash-weight", "1999-01-01=1"]) == 1
    assert "unknown crash '1999-01-01'" in capsys.readouterr().err
