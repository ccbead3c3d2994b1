"""`liqmon history --below / --at / --until / --portfolio` and `liqmon stress --all-markets` on a
stored three-protocol devnet history (Aave V3, two Morpho Blue markets, the Comet look-alike;
three scans a day apart with WETH and WBTC falling), one devnet for the module. Rows are checked
against the store's own snapshots of the same blocks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.chain.rpc import RpcClient
from monitor.cli import main
from monitor.devnet.anvil import Anvil
from monitor.devnet.comet import seed_comet
from monitor.devnet.morpho import SEED_NAMESPACE, seed_morpho
from monitor.devnet.node import DevnetNode
from monitor.devnet.seed import seed_positions
from monitor.devnet.world import align_world_prices, deploy_world, set_world_price, world_config
from monitor.models import MAX_UINT256, WAD, MarketSnapshot, format_wad
from monitor.store import Store

pytestmark = pytest.mark.devnet

AAVE_SEED = 20_011  # Comet's accounts are seed_account(seed + 20_000, i): the same as Aave's for seed 11
COMET_SEED = 11
MORPHO_SEED = AAVE_SEED - SEED_NAMESPACE  # Morpho's are seed_account(seed + SEED_NAMESPACE, i)
DAY = 86_400


@dataclass
class Stored:
    config: Path
    db: Path
    blocks: list[int]  # the three scanned blocks
    times: list[int]  # their block times
    markets: list[str]  # stored market names


def _iso_minute(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M")


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    tmp = tmp_path_factory.mktemp("desk")
    with Anvil() as anvil:
        client = RpcClient([anvil.url], timeout=120, max_retries=0)
        node = DevnetNode(client)
        world = deploy_world(node)
        align_world_prices(node, world)
        seed_positions(node, world.aave, 30, seed=AAVE_SEED)
        seed_morpho(node, world.morpho, 12, seed=MORPHO_SEED)  # 12 of the Aave accounts, 6 per market
        seed_comet(node, world.comet, 10, seed=COMET_SEED)  # 10 of the Aave accounts
        db = tmp / "desk.db"
        config = tmp / "desk.yaml"
        config.write_text(yaml.safe_dump(world_config(anvil.url, world, str(db))))
        moves = [{}, {"WETH": 1800.0}, {"WETH": 1560.0, "WBTC": 25_500.0}]
        for k, prices in enumerate(moves):
            if k:
                client.request("evm_increaseTime", [DAY])
            for symbol, usd in prices.items():
                set_world_price(node, world, symbol, usd)
            node.mine()
            assert main(["scan", "--config", str(config)]) == 0
        with Store(db) as store:
            scans = store.scans("aave-v3-devnet")
            markets = [m["name"] for m in store.markets()]
        client.close()
        yield Stored(config, db, [s["block"] for s in scans], [s["timestamp"] for s in scans], markets)


def run(capsys: Any, *args: str) -> Any:
    capsys.readouterr()
    assert main(list(args)) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def below(snapshot: MarketSnapshot, hf: str) -> list[tuple[str, int]]:
    """(account, HF WAD) of the snapshot's positions with debt below ``hf``, lowest first."""
    limit = int(Decimal(hf) * WAD)
    rows = [p for p in snapshot.positions if p.health_factor != MAX_UINT256 and p.health_factor < limit]
    return sorted(((p.account, p.health_factor) for p in rows), key=lambda x: (x[1], x[0]))


def test_below_at_each_block_equals_the_snapshot(stored: Stored, capsys: Any) -> None:
    seen = 0
    with Store(stored.db) as store:
        for market in stored.markets:
            for block in stored.blocks:
                rows = run(capsys, "history", "--config", str(stored.config), "--market", market, "--below", "1.2",
                           "--at", str(block), "--format", "json")  # fmt: skip
                want = below(store.load_snapshot(market, block), "1.2")
                assert [(r["account"], r["health_factor"]) for r in rows] == [(a, format_wad(h)) for a, h in want]
                assert all(r["block"] == block and r["market"] == market for r in rows)
                seen += len(rows)
    assert seen > 10  # the falling prices put positions below 1.2


def test_between_two_scans_the_earlier_one_is_in_force(stored: Stored, capsys: Any) -> None:
    b1, b2, _ = stored.blocks
    assert b2 - b1 > 1
    base = ["history", "--config", str(stored.config), "--below", "1.3", "--format", "json"]
    assert run(capsys, *base, "--at", str(b2 - 1)) == run(capsys, *base, "--at", str(b1))
    assert run(capsys, *base, "--at", str(b2)) != run(capsys, *base, "--at", str(b1))


def test_below_at_a_date_is_every_market_at_the_scan_then(stored: Stored, capsys: Any) -> None:
    t2 = stored.times[1]
    rows = run(capsys, "history", "--config", str(stored.config), "--below", "1.2", "--at", _iso_minute(t2 + 60),
               "--format", "json")  # fmt: skip
    with Store(stored.db) as store:
        want = sorted((m, a) for m in stored.markets for a, _ in below(store.load_snapshot(m, stored.blocks[1]), "1.2"))
    assert sorted((r["market"], r["account"]) for r in rows) == want
    assert {r["market"].split(":")[0] for r in rows} >= {"aave-v3-devnet"}
    hfs = [r["hf"] for r in rows]
    assert hfs == sorted(hfs)


def test_below_within_a_range_is_the_union_of_the_scans(stored: Stored, capsys: Any) -> None:
    b1, b2, b3 = stored.blocks
    rows = run(capsys, "history", "--config", str(stored.config), "--below", "1.15", "--since", str(b2),
               "--until", str(b3), "--format", "json")  # fmt: skip
    with Store(stored.db) as store:
        want: dict[tuple[str, str], int] = {}
        for m in stored.markets:
            for b in (b2, b3):
                for account, hf in below(store.load_snapshot(m, b), "1.15"):
                    want[(m, account)] = min(want.get((m, account), hf), hf)
    assert {(r["market"], r["account"]): r["lowest_health_factor"] for r in rows} == {
        k: format_wad(v) for k, v in want.items()
    }
    for r in rows:
        assert b2 <= r["first_below_block"] <= r["lowest_block"] <= b3
    before = run(capsys, "history", "--config", str(stored.config), "--below", "1.15", "--until", str(b1),
                 "--format", "json")  # fmt: skip
    with Store(stored.db) as store:  # up to the first scan: that scan alone
        first = {(m, a) for m in stored.markets for a, _ in below(store.load_snapshot(m, b1), "1.15")}
    assert {(r["market"], r["account"]) for r in before} == first != want.keys()


def test_portfolio_per_market_and_accounts_in_several(stored: Stored, capsys: Any) -> None:
    view = run(capsys, "history", "--config", str(stored.config), "--portfolio", "--at", str(stored.blocks[2]),
               "--format", "json")  # fmt: skip
    by_market = {m["market"]: m for m in view["markets"]}
    assert sorted(by_market) == sorted(stored.markets)
    accounts: dict[str, set[str]] = {}
    with Store(stored.db) as store:
        for name in stored.markets:
            snap = store.load_snapshot(name, stored.blocks[2])
            held = [p for p in snap.positions if p.total_collateral_base or p.total_debt_base]
            row = by_market[name]
            assert row["positions"] == len(held) and row["block"] == stored.blocks[2]
            assert row["debt_usd"] == pytest.approx(sum(p.total_debt_base for p in held) / snap.base_currency_unit)
            assert row["at_risk"] == len(below(snap, "1.25"))
            assert row["liquidatable"] == sum(1 for p in held if p.health_factor < WAD)
            for p in held:
                accounts.setdefault(p.account, set()).add(name)
    shared = {a: m for a, m in accounts.items() if len(m) > 1}
    assert len(shared) >= 10  # the Comet and Morpho accounts are Aave accounts too
    assert {s["account"]: set(s["markets"]) for s in view["shared_accounts"]} == shared
    assert view["totals"]["positions"] == sum(m["positions"] for m in view["markets"])
    latest = run(capsys, "history", "--config", str(stored.config), "--portfolio", "--format", "json")
    assert latest["markets"] == view["markets"]  # the newest scans are the third ones
    first = run(capsys, "history", "--config", str(stored.config), "--portfolio", "--below", "1.1", "--at",
                str(stored.blocks[0]), "--format", "json")  # fmt: skip
    assert first["at_risk_hf"] == 1.1 and first["totals"]["at_risk"] < latest["totals"]["at_risk"] + 1


def test_tables_read_as_a_desk_reads_them(stored: Stored, capsys: Any) -> None:
    capsys.readouterr()
    assert main(["history", "--config", str(stored.config), "--portfolio"]) == 0
    out = capsys.readouterr().out
    assert "total" in out and "accounts in several markets:" in out and "HF<1.25" in out
    assert main(["history", "--config", str(stored.config), "--market", "morpho-blue-devnet", "--below", "1.2"]) == 0
    out = capsys.readouterr().out
    heads = [line for line in out.splitlines() if " @ block " in line]
    assert len(heads) == 2 and all(h.startswith("morpho-blue-devnet:") for h in heads)  # a config market: its two
    assert main(["history", "--config", str(stored.config), "--below", "1.2", "--since", str(stored.blocks[0])]) == 0
    assert "lowest HF" in capsys.readouterr().out


def test_until_for_one_account(stored: Stored, capsys: Any) -> None:
    with Store(stored.db) as store:
        account = store.load_snapshot("compound-v3-devnet", stored.blocks[0]).positions[0].account
    rows = run(capsys, "history", "--config", str(stored.config), "--account", account, "--format", "json")
    until = run(capsys, "history", "--config", str(stored.config), "--account", account, "--until",
                str(stored.blocks[1]), "--format", "json")  # fmt: skip
    assert until == [r for r in rows if r["block"] <= stored.blocks[1]] and len(until) < len(rows)
    by_date = run(capsys, "history", "--config", str(stored.config), "--account", account, "--until",
                  _iso_minute(stored.times[1] + 60), "--format", "json")  # fmt: skip
    assert by_date == until


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--below", "1.2", "--market", "nope"], "unknown market 'nope'"),
        (["--below", "1.2", "--at", "2026-13-45"], "--at '2026-13-45': not a date"),
        (["--below", "1.2", "--at", "next tuesday"], "--at 'next tuesday': expected a block number or a UTC date"),
        (["--below", "0"], "--below '0': an HF limit must be above 0"),
        (["--below", "-1.5"], "--below '-1.5': an HF limit must be above 0"),
        (["--below", "abc"], "--below 'abc': expected a health factor"),
        (["--below", "nan"], "--below 'nan'"),
        (["--below", "1.2", "--at", "999999999"], "--at 999999999: after the newest stored scan of"),
        (["--portfolio", "--at", "2001-01-01"], "--at 2001-01-01: before the first stored scan of"),
        (["--below", "1.2", "--at", "2999-01-01"], "--at 2999-01-01: after the newest stored scan"),
        (["--below", "1.2", "--at", "5", "--since", "3"], "give either --at"),
        (["--below", "1.2", "--since", "10", "--until", "5"], "--until 5: before --since 10"),
        (["--below", "1.2", "--since", "999999999"], "no stored scan of"),
        (["--portfolio", "--since", "5"], "--portfolio shows one point"),
        (["--below", "1.2", "--account", "0x" + "ab" * 20], "--below 1.2 is a market-wide view: it does not take"),
        (["--portfolio", "--alerts"], "--portfolio is a market-wide view: it does not take --alerts"),
        (["--account", "0x" + "ab" * 20, "--at", "5"], "--at 5: goes with --below HF or --portfolio"),
        (["--account", "0x" + "ab" * 20, "--until", "5x"], "--until '5x'"),
    ],
)
def test_bad_input_is_one_line(stored: Stored, capsys: Any, args: list[str], needle: str) -> None:
    capsys.readouterr()
    assert main(["history", "--config", str(stored.config), *args]) == 1
    err = capsys.readouterr().err
    assert needle in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


# -- stress --all-markets ------------------------------------------------------------------------

SUMMED = ("positions", "liquidatable_before", "liquidatable", "debt_total_usd", "debt_at_risk_usd",
          "collateral_seized_usd", "bad_debt_usd")  # fmt: skip


def test_stress_all_markets_is_each_market_alone_summed(stored: Stored, capsys: Any) -> None:
    cfg = str(stored.config)
    report = run(capsys, "stress", "--config", cfg, "--all-markets", "--shock", "WETH=-30%", "--json")
    assert sorted(m["market"] for m in report["markets"]) == sorted(stored.markets)
    assert report["markets_without_positions"] == []
    for row in report["markets"]:
        with Store(stored.db) as store:
            symbols = [r.symbol for r in store.load_snapshot(row["market"]).reserves]
        shock = "WETH=-30%" if "WETH" in symbols else f"{symbols[0]}=0%"  # a market without WETH: unchanged
        alone = run(capsys, "stress", "--config", cfg, "--market", row["market"], "--shock", shock, "--json")
        assert alone["block"] == row["block"] == stored.blocks[2]
        assert {k: row[k] for k in SUMMED} == pytest.approx({k: alone["summary"][k] for k in SUMMED})
    for k in SUMMED:
        assert report["total"][k] == pytest.approx(sum(m[k] for m in report["markets"]))
    assert report["total"]["liquidatable"] > report["total"]["liquidatable_before"]  # WETH moved on every protocol
    assert sum(1 for m in report["markets"] if m["liquidatable"] > m["liquidatable_before"]) >= 2  # Aave, Comet
    runs = run(capsys, "history", "--config", cfg, "--runs", "--format", "json")
    assert [r["id"] for r in runs if r["inputs"].get("all_markets")][-len(stored.markets):] == report["run_ids"]


def test_stress_all_markets_historical_and_monte_carlo(stored: Stored, capsys: Any) -> None:
    cfg = str(stored.config)
    crash = run(capsys, "stress", "--config", cfg, "--all-markets", "--scenario", "2020-03-12", "--json")
    assert crash["scenario"].startswith("2020-03-12") and len(crash["markets"]) == len(stored.markets)
    assert crash["total"]["liquidatable"] == sum(m["liquidatable"] for m in crash["markets"]) > 0
    mc = run(capsys, "stress", "--config", cfg, "--all-markets", "--monte-carlo", "300", "--seed", "4", "--json")
    total = mc["total"]
    assert total["bad_debt_mean_usd"] == pytest.approx(sum(m["bad_debt_mean_usd"] for m in mc["markets"]))
    assert total["liquidatable_mean"] == pytest.approx(sum(m["liquidatable_mean"] for m in mc["markets"]))
    assert total["bad_debt_es99_usd"] >= total["bad_debt_var99_usd"] >= total["bad_debt_var95_usd"] >= 0
    assert "paths drawn once for ETH, BTC" in mc["description"]
    again = run(capsys, "stress", "--config", cfg, "--all-markets", "--monte-carlo", "300", "--seed", "4", "--json")
    assert again["total"] == total  # the seed reproduces the paths
    capsys.readouterr()
    assert main(["stress", "--config", cfg, "--all-markets", "--shock", "WBTC=-20%"]) == 0
    out = capsys.readouterr().out
    assert "all markets" in out and "stored as risk runs" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--all-markets", "--market", "aave-v3-devnet", "--shock", "WETH=-5%"], "--market aave-v3-devnet with"),
        (["--all-markets", "--shock", "XYZ=-5%"], "unknown asset XYZ in --shock: the markets hold"),
        (["--all-markets", "--correlated", "XYZ=-5%"], "--correlated XYZ=-5%: no market holds XYZ"),
        (["--all-markets", "--shock", "WETH=-5%", "--plot", "x.png"], "--plot x.png"),
        (["--all-markets"], "choose exactly one"),
    ],
)
def test_stress_all_markets_bad_input_is_one_line(stored: Stored, capsys: Any, args: list[str], needle: str) -> None:
    capsys.readouterr()
    assert main(["stress", "--config", str(stored.config), *args]) == 1
    err = capsys.readouterr().err
    assert needle in err, err
    assert len(err.strip().splitlines()) == 1
