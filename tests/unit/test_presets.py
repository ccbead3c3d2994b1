"""The shipped presets (monitor/data/presets.json) are public facts, checked here: every Aave V3
address and chain id against the npm @aave-dao/aave-address-book (unpacked by scripts/setup.sh),
every Morpho Blue market id against the keccak256 of its parameters, and every preset expands to
a config that validates."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from monitor.config import parse_config
from monitor.config.presets import chain_presets, explorer_for, market_presets
from monitor.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / ".liqmon-cache/npm/aave-address-book-4.68.1/package"


def _address_book(module: str) -> dict[str, Any]:
    assert (BOOK / "package.json").is_file(), f"{BOOK} is missing: run bash scripts/setup.sh"
    script = f"const m = require({json.dumps(str(BOOK / 'dist' / module))}); console.log(JSON.stringify(m))"
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True).stdout
    book: dict[str, Any] = json.loads(out)
    return book


AAVE = sorted(n for n, p in market_presets().items() if p.address_book)


def test_the_presets_cover_the_main_markets() -> None:
    names = set(market_presets())
    wanted = ("aave-v3-ethereum", "aave-v3-arbitrum", "aave-v3-base", "aave-v3-optimism", "aave-v3-polygon",
              "aave-v3-avalanche", "spark-ethereum", "compound-v3-usdc-ethereum", "morpho-blue-ethereum")  # fmt: skip
    for name in wanted:
        assert name in names
    assert len(AAVE) >= 6


@pytest.mark.parametrize("name", AAVE)
def test_aave_preset_matches_the_address_book(name: str) -> None:
    preset = market_presets()[name]
    assert preset.raw is not None
    book = _address_book(preset.address_book)
    assert preset.addresses["pool_addresses_provider"] == book["POOL_ADDRESSES_PROVIDER"]
    assert preset.raw["pool"] == book["POOL"]
    assert chain_presets()[preset.chain].chain_id == book["CHAIN_ID"]


def test_morpho_market_ids_are_the_hash_of_their_parameters() -> None:
    checked = 0
    for preset in market_presets().values():
        assert preset.raw is not None
        for m in preset.raw.get("markets", ()):
            fields = [to_checksum_address(m[k]) for k in ("loan_token", "collateral_token", "oracle", "irm")]
            digest = keccak(encode(["address", "address", "address", "address", "uint256"], [*fields, int(m["lltv"])]))
            assert "0x" + digest.hex() == m["id"], m["label"]
            checked += 1
    assert checked >= 3


@pytest.mark.parametrize("name", sorted(market_presets()))
def test_every_preset_expands_to_a_valid_config(name: str, tmp_path: Path) -> None:
    config = parse_config({"markets": [{"preset": name}], "store": {"path": "h.db"}}, tmp_path / "c.yaml", env={})
    market = config.markets[0]
    preset = market_presets()[name]
    assert (market.name, market.protocol, market.chain, market.start_block) == (
        name, preset.protocol, preset.chain, preset.start_block,
    )  # fmt: skip
    chain = config.chain_for(market)
    assert chain.chain_id == chain_presets()[preset.chain].chain_id
    assert chain.rpc_urls, "public RPC defaults"
    assert (explorer_for(chain.chain_id) or "").startswith("https://")


def test_user_keys_beside_a_preset_win_and_a_wrong_chain_id_is_named(tmp_path: Path) -> None:
    data = {
        "chains": {"base": {"chain_id": 8453, "rpc_urls": ["http://127.0.0.1:8545"]}},
        "markets": [
            {"preset": "aave-v3-base", "name": "mine", "accounts": ["0x000000000000000000000000000000000000dEaD"]}
        ],
        "store": {"path": "h.db"},
    }
    config = parse_config(data, tmp_path / "c.yaml", env={})
    assert config.markets[0].name == "mine" and config.markets[0].accounts
    assert config.chains["base"].rpc_urls[0].display == "http://127.0.0.1:8545"
    data["chains"]["base"]["chain_id"] = 1  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"chains\.base\.chain_id: 1 but preset 'aave-v3-base'"):
        parse_config(data, tmp_path / "c.yaml", env={})
    with pytest.raises(
        ConfigError, match=r"markets\[0\]\.preset: unknown preset 'aave-v3-bse'; did you mean 'aave-v3-base'"
    ):
        parse_config({"markets": [{"preset": "aave-v3-bse"}]}, tmp_path / "c.yaml", env={})
