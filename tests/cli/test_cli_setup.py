"""Getting started (issue 16): a fresh config for Aave V3 on Base with one watched wallet and a
Telegram route in two commands (`init`, `watch add`), validated by `doctor --offline` with no
network; the watch list edited safely (a change that would not load is undone)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from monitor.cli import main
from monitor.config import load_config

WALLET = "0x000000000000000000000000000000000000dEaD"
OTHER = "0x000000000000000000000000000000000000bEEF"


def _init(tmp_path: Path, *extra: str) -> Path:
    config = tmp_path / "config.yaml"
    assert main(["init", "--preset", "aave-v3-base", "--telegram", "-1001234567", "-o", str(config), *extra]) == 0
    return config


def test_init_then_watch_add_makes_a_config_doctor_accepts_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _init(tmp_path)
    assert (tmp_path / "watch.yaml").is_file()
    add = ["watch", "add", WALLET, "--label", "treasury", "--levels", "warning=1.5", "--config", str(config)]
    assert main(add) == 0
    monkeypatch.setenv("LIQMON_TELEGRAM_TOKEN", "123456:test-token")
    capsys.readouterr()
    assert main(["doctor", "--config", str(config), "--offline", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"FAIL"' not in out and "123456:test-token" not in out
    loaded = load_config(config)
    market = loaded.markets[0]
    assert (market.name, market.protocol, market.chain, loaded.chains["base"].chain_id) == (
        "aave-v3-base", "aave_v3", "base", 8453,
    )  # fmt: skip
    assert market.pool_addresses_provider == "0xe20fCBdBfFC4Dd138cE8b2E6FBb6CB49777ad64D"
    assert market.accounts == (WALLET,), "watch_only: only the watched wallet is read"
    assert loaded.alerts.messages.labels[WALLET.lower()] == "treasury"
    telegram = [r for r in loaded.alerts.routes if r.channel == "telegram"]
    assert telegram and telegram[0].to == "-1001234567"


def test_doctor_offline_names_the_missing_wallet_and_the_missing_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _init(tmp_path)
    monkeypatch.setenv("LIQMON_TELEGRAM_TOKEN", "123456:test-token")
    capsys.readouterr()
    assert main(["doctor", "--config", str(config), "--offline"]) == 1
    assert "liqmon watch add" in capsys.readouterr().out
    assert main(["watch", "add", WALLET, "--config", str(config)]) == 0
    monkeypatch.delenv("LIQMON_TELEGRAM_TOKEN")
    capsys.readouterr()
    assert main(["doctor", "--config", str(config), "--offline"]) == 1
    assert "LIQMON_TELEGRAM_TOKEN is not set" in capsys.readouterr().out


def test_watch_edits_are_validated_and_undone_when_they_would_not_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _init(tmp_path)
    watch = tmp_path / "watch.yaml"
    assert main(["watch", "add", WALLET, "--label", "me", "--config", str(config)]) == 0
    before = watch.read_text()
    assert main(["watch", "add", "0x123", "--config", str(config)]) == 1
    assert "is not an address" in capsys.readouterr().err
    assert watch.read_text() == before, "the bad entry was undone"
    assert main(["watch", "add", OTHER, "--notify", "pager:x", "--config", str(config)]) == 1
    assert "no channel 'pager'" in capsys.readouterr().err
    assert main(["watch", "add", OTHER, "--levels", "warning=0.9", "--config", str(config)]) == 1
    assert "above 1" in capsys.readouterr().err
    assert main(["watch", "add", OTHER, "--market", "nope", "--config", str(config)]) == 1
    assert "unknown market 'nope'" in capsys.readouterr().err
    assert watch.read_text() == before
    # a second add of the same wallet updates it; notify makes a route for it alone
    assert main(["watch", "add", WALLET.lower(), "--notify", "telegram:-42", "--config", str(config)]) == 0
    wallets = yaml.safe_load(watch.read_text())["wallets"]
    assert len(wallets) == 1 and wallets[0]["label"] == "me" and wallets[0]["notify"] == ["telegram:-42"]
    routes = load_config(config, env={"LIQMON_TELEGRAM_TOKEN": "1:x"}).alerts.routes
    assert any(r.to == "-42" and r.accounts == (WALLET,) for r in routes)
    capsys.readouterr()
    assert main(["watch", "list", "--config", str(config)]) == 0
    assert WALLET in capsys.readouterr().out
    assert main(["watch", "remove", OTHER, "--config", str(config)]) == 1
    assert "not on the watch list" in capsys.readouterr().err
    assert main(["watch", "remove", WALLET, "--config", str(config)]) == 0
    assert yaml.safe_load(watch.read_text())["wallets"] == []
    assert "none is listed" in capsys.readouterr().err, "removing the last wallet is allowed, and said"


def test_init_refuses_to_overwrite_and_explains_unknown_presets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _init(tmp_path)
    assert main(["init", "--preset", "aave-v3-base", "-o", str(config)]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["init", "--preset", "aave-v3-bse", "-o", str(tmp_path / "b.yaml")]) == 1
    assert "--list-presets" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["init", "-o", str(tmp_path / "c.yaml")]) == 1
    assert "--preset NAME" in capsys.readouterr().err
    assert main(["init", "--list-presets"]) == 0
    listed = capsys.readouterr().out
    assert "aave-v3-base" in listed and "morpho-blue-ethereum" in listed
    # every preset's config loads (all borrowers mode: no wallet needed)
    assert main(["init", "--preset", "spark-ethereum", "--preset", "compound-v3-usdc-ethereum", "--all-borrowers",
                 "-o", str(tmp_path / "d" / "config.yaml")]) == 0  # fmt: skip
    loaded = load_config(tmp_path / "d" / "config.yaml")
    assert [m.accounts for m in loaded.markets] == [None, None]
