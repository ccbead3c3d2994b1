"""`liqmon devnet up|seed|price|status|down` as a user runs them: one three-protocol devnet
(Aave V3, Morpho Blue, the Comet look-alike) for the whole module."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli import main
from monitor.devnet.morpho import morpho_artifacts, morpho_artifacts_path

pytestmark = pytest.mark.devnet

PROTOCOL_OF = {"aave-v3-devnet": "aave", "morpho-blue-devnet": "morpho", "compound-v3-devnet": "comet"}


def alive(pid: int) -> bool:
    """Running and not a zombie (the test process is anvil's parent and does not reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``liqmon devnet up`` in a cache directory of its own; ``devnet down`` after the module
    (and the node's process gone)."""
    path = tmp_path_factory.mktemp("devnet-cache")
    morpho_artifacts()  # compiled once per machine (solc-js, ~30 s) into the default cache; `up` reuses it
    compiled = morpho_artifacts_path()
    shutil.copyfile(compiled, path / compiled.name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LIQMON_CACHE", str(path))
        assert main(["devnet", "up"]) == 0
        pid = json.loads((path / "devnet.json").read_text())["pid"]
        try:
            yield path
        finally:
            assert main(["devnet", "down"]) == 0
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid)
        assert not (path / "devnet.json").exists() and not (path / "devnet.yaml").exists()


@pytest.fixture
def in_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LIQMON_CACHE", str(cache))
    return cache


def _prices(out: str) -> dict[str, list[str]]:
    """``devnet price`` table: symbol -> [aave, morpho, comet] cells."""
    return {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:] if line.strip()}


def test_status_without_a_devnet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("LIQMON_CACHE", str(tmp_path))
    assert main(["devnet", "status"]) == 1
    assert "liqmon devnet up" in capsys.readouterr().err
    assert main(["devnet", "down"]) == 0
    assert "no devnet was running" in capsys.readouterr().out


def test_config_scans_three_protocols_after_seed(in_cache: Path, capsys: Any) -> None:
    config = yaml.safe_load((in_cache / "devnet.yaml").read_text())
    assert [(m["name"], m["protocol"]) for m in config["markets"]] == [
        ("aave-v3-devnet", "aave_v3"), ("morpho-blue-devnet", "morpho_blue"), ("compound-v3-devnet", "compound_v3"),
    ]  # fmt: skip
    assert len(config["markets"][1]["market_ids"]) == 2
    capsys.readouterr()
    assert main(["devnet", "seed", "6", "--seed", "3"]) == 0
    assert "seeded 6 Aave V3, 6 Morpho Blue and 6 Compound V3 positions" in capsys.readouterr().out
    assert main(["devnet", "seed", "2", "--seed", "3", "--first-index", "6"]) == 0  # more accounts, not the same
    capsys.readouterr()
    assert main(["scan", "--config", str(in_cache / "devnet.yaml"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_protocol: dict[str, set[str]] = {}
    for row in rows:
        by_protocol.setdefault(PROTOCOL_OF[row["market"].split(":")[0]], set()).add(row["account"])
    assert {k: len(v) for k, v in by_protocol.items()} == {"aave": 8, "morpho": 8, "comet": 8}
    assert main(["scan", "--config", str(in_cache / "devnet.yaml")]) == 0
    out = capsys.readouterr().out
    heads = [line.split(" @ ")[0] for line in out.splitlines() if " @ block " in line]
    assert heads[0] == "aave-v3-devnet" and heads[-1] == "compound-v3-devnet"
    assert sorted(h.split(":")[1] for h in heads[1:-1]) == ["wbtc/dai-77", "weth/usdc-86"]


def test_price_moves_the_asset_on_every_protocol(in_cache: Path, capsys: Any) -> None:
    assert main(["devnet", "price"]) == 0
    before = _prices(capsys.readouterr().out)
    assert before["WBTC"] == ["30,000.00000000"] * 3  # one price per asset from `up` on
    assert before["SOL"] == ["20.00000000", "-", "-"] and before["COMP"] == ["-", "-", "50.00000000"]
    assert main(["devnet", "price", "weth", "1500"]) == 0
    assert "WETH = 1500.0 USD on every protocol" in capsys.readouterr().out
    assert main(["devnet", "price", "COMP", "40"]) == 0  # an asset only the Comet market lists
    assert main(["devnet", "price"]) == 0
    after = _prices(capsys.readouterr().out)
    assert after["WETH"] == ["1,500.00000000"] * 3
    assert after["COMP"] == ["-", "-", "40.00000000"]
    assert after["WBTC"] == before["WBTC"] and after["DAI"] == before["DAI"]
    assert main(["devnet", "price", "NOPE", "1"]) == 1
    err = capsys.readouterr().err
    assert "unknown devnet asset 'NOPE'" in err and "COMP" in err and len(err.strip().splitlines()) == 1
    assert main(["devnet", "price", "WETH", "2000"]) == 0


def test_status_names_the_three_deployments(in_cache: Path, capsys: Any) -> None:
    state = json.loads((in_cache / "devnet.json").read_text())
    assert main(["devnet", "status"]) == 0
    out = capsys.readouterr().out
    assert state["world"]["aave"]["pool_addresses_provider"] in out
    assert state["world"]["morpho"]["morpho"] in out and "WETH/USDC, WBTC/DAI" in out
    assert state["world"]["comet"]["comet"] in out and "collateral WETH, WBTC, COMP" in out


def test_up_again_attaches_to_the_running_devnet(in_cache: Path, capsys: Any) -> None:
    pid = json.loads((in_cache / "devnet.json").read_text())["pid"]
    assert main(["devnet", "up"]) == 0
    assert f"(pid {pid})" in capsys.readouterr().out


def test_help_names_the_three_protocols(capsys: Any) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    top = capsys.readouterr().out
    assert "Aave V3 and forks" not in top
    assert all(name in top for name in ("Aave V3", "Morpho Blue", "Compound V3"))
    with pytest.raises(SystemExit):
        main(["devnet", "--help"])
    text = capsys.readouterr().out
    for needle in ("aave-v3-devnet", "morpho-blue-devnet", "compound-v3-devnet", "WETH/USDC", "on every protocol",
                   "liqmon devnet price WETH 1500"):  # fmt: skip
        assert needle in text
