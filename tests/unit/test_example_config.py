"""The shipped config.yaml is valid and names the real Aave V3 Ethereum market."""

from __future__ import annotations

from pathlib import Path

from monitor.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_loads() -> None:
    config = load_config(ROOT / "config.yaml", env={})
    (market,) = config.markets
    assert market.pool_addresses_provider == "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e"
    assert market.protocol == "aave_v3" and market.accounts is None
    chain = config.chain_for(market)
    assert chain.chain_id == 1 and len(chain.rpc_urls) >= 2
    assert all(u.url.startswith("https://") for u in chain.rpc_urls)
    assert config.store.path == ROOT / "liqmon.db"
