"""store.history_url: a PostgreSQL URL for the shared history, its password from the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from monitor.config import parse_config, redact
from monitor.errors import ConfigError

PASSWORD = "s3cret-desk-pw"


def _data(store: dict[str, Any]) -> dict[str, Any]:
    return {
        "chains": {"eth": {"chain_id": 1, "rpc_urls": ["http://127.0.0.1:8545"]}},
        "markets": [
            {
                "name": "aave",
                "protocol": "aave_v3",
                "chain": "eth",
                "pool_addresses_provider": "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e",
            }
        ],
        "store": store,
    }


def test_history_url_expands_the_password_and_masks_it(tmp_path: Path) -> None:
    template = "postgresql://desk:${LIQMON_PG_PASSWORD}@db.desk:5432/liqmon"
    config = parse_config(_data({"history_url": template}), tmp_path / "c.yaml", env={"LIQMON_PG_PASSWORD": PASSWORD})
    url = config.store.history_url
    assert url is not None
    assert url.url == f"postgresql://desk:{PASSWORD}@db.desk:5432/liqmon"
    assert PASSWORD not in url.display and PASSWORD not in repr(config.store)
    assert redact(f"could not connect with {PASSWORD}", config) == "could not connect with <secret>"


def test_history_url_is_optional(tmp_path: Path) -> None:
    config = parse_config(_data({"path": "h.db"}), tmp_path / "c.yaml", env={})
    assert config.store.history_url is None


@pytest.mark.parametrize(
    ("value", "env", "problem"),
    [
        ("postgresql://desk:${PW}@db/liqmon", {}, "environment variable PW is not set"),
        ("postgresql://desk:${PW}@db/liqmon", {"PW": ""}, "environment variable PW is empty"),
        ("sqlite:///h.db", {}, "expected postgresql://user:${PASSWORD_VAR}@host:port/database"),
        ("postgresql://desk@db", {}, "expected postgresql://"),
        ("postgresql://desk:pw@db:99999/x", {}, "is not a valid URL"),
        ("postgresql://desk@db/li qmon", {}, "contains whitespace"),
        (5432, {}, "store.history_url: expected a string"),
    ],
)
def test_bad_history_urls_are_named(tmp_path: Path, value: object, env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_data({"history_url": value}), tmp_path / "c.yaml", env=env)
    message = str(info.value)
    assert "store.history_url" in message and problem in message
    assert "pw@" not in message  # a literal password is masked in the error too
