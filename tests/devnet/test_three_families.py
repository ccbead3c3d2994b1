"""One config with Aave V3, Morpho Blue and Compound V3: one scan, one history, one alert stream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.alerts.telegram import TelegramChannel
from monitor.chain.rpc import RpcClient
from monitor.cli import main
from monitor.config import parse_config
from monitor.devnet.anvil import Anvil
from monitor.devnet.node import DevnetNode
from monitor.devnet.world import (
    COMET_MARKET,
    MORPHO_MARKET,
    World,
    deploy_world,
    seed_world,
    set_world_price,
    world_config,
)
from monitor.models import WAD
from monitor.service import Monitor
from monitor.store import Store
from tests.support_peers import TELEGRAM_TEST_TOKEN, TelegramServer

pytestmark = pytest.mark.devnet


@dataclass
class WorldNet:
    url: str
    node: DevnetNode
    world: World


@pytest.fixture(scope="module")
def world() -> Iterator[WorldNet]:
    with Anvil() as anvil:
        node = DevnetNode(RpcClient([anvil.url], timeout=120, max_retries=0))
        built = deploy_world(node)
        seed_world(node, built, 40, seed=3)
        yield WorldNet(anvil.url, node, built)


def test_one_scan_one_history_one_alert_stream(world: WorldNet, tmp_path: Path, capsys: Any) -> None:
    data = world_config(world.url, world.world, str(tmp_path / "w.db"))
    with TelegramServer() as telegram:
        data["alerts"] = {
            "channels": {"desk": {"type": "telegram", "token_env": "TG", "base_url": telegram.base_url,
                                  "min_interval_s": 0}},
            "routes": [{"channel": "desk", "to": "-100321", "min_severity": "warning"}],
            "grouping": {"max_per_message": 1},  # one message per alert: counted below (grouping: test_grouping*)
        }  # fmt: skip
        config = parse_config(data, tmp_path / "w.yaml", env={"TG": TELEGRAM_TEST_TOKEN})
        channels = {"desk": TelegramChannel("desk", TELEGRAM_TEST_TOKEN, base_url=telegram.base_url,
                                            min_interval_per_chat_s=0)}  # fmt: skip
        with Store(config.store.path) as store:
            monitor = Monitor(config, store, channels)
            first = monitor.tick()
            protocols = {s.snapshot.protocol for s in first.scans}
            assert protocols == {"aave_v3", "morpho_blue", "compound_v3"}
            assert len(first.scans) == 4  # Aave, two Morpho markets, Comet
            assert all(len(s.snapshot.positions) >= 10 for s in first.scans)
            assert len({s.snapshot.block for s in first.scans}) == 1  # one block for all

            set_world_price(world.node, world.world, "WETH", 2000 * 0.62)
            world.node.mine()
            second = monitor.tick()
            liquidatable = {s.snapshot.market: sum(p.health_factor < WAD for p in s.snapshot.positions)
                            for s in second.scans}  # fmt: skip
            alerts = store.alerts()
            markets = {a["market"] for a in alerts}
        telegram_texts = [m.plain for m in telegram.messages]
    assert liquidatable["aave-v3-devnet"] > 0 and liquidatable[COMET_MARKET] > 0
    assert any(v > 0 for k, v in liquidatable.items() if k.startswith(MORPHO_MARKET + ":weth"))
    assert {"aave-v3-devnet", COMET_MARKET} <= markets and any(m.startswith(MORPHO_MARKET) for m in markets)
    assert len(telegram_texts) == sum(1 for a in alerts if a["severity"] in ("warning", "critical", "liquidatable"))
    assert any(COMET_MARKET in t for t in telegram_texts) and any(MORPHO_MARKET in t for t in telegram_texts)

    # one history: every family's markets and positions are in the same store, queried the same way
    cfg_path = tmp_path / "w.yaml"
    cfg_path.write_text(yaml.safe_dump({k: v for k, v in data.items() if k != "alerts"}))
    morpho_account = next(a["subject"] for a in alerts if a["market"].startswith(MORPHO_MARKET))
    assert main(["history", "--config", str(cfg_path), "--account", morpho_account, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 and rows[0]["market"].startswith(MORPHO_MARKET)
    # and risk works on any family: stress a Morpho market and the Comet market from the store
    morpho_market = rows[0]["market"]
    for market in (morpho_market, COMET_MARKET):
        assert main(["stress", "--config", str(cfg_path), "--market", market, "--shock", "WETH=-20%", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["market"] == market and report["summary"]["positions"] > 0
