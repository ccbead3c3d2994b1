"""The daemon's follow options: defaults, values taken, bad values named in one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from monitor.config import parse_config
from monitor.devnet.session import devnet_config
from monitor.errors import ConfigError

PROVIDER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def _data(**daemon: Any) -> dict[str, Any]:
    data = devnet_config("http://127.0.0.1:8545", type("D", (), {"pool_addresses_provider": PROVIDER})(), "x.db")
    data["daemon"] = daemon
    return data


def test_defaults_and_values(tmp_path: Path) -> None:
    default = parse_config(_data(), tmp_path / "c.yaml").daemon
    assert (default.reconcile_sample, default.reconcile_all_every, default.catch_up_blocks) == (16, 1800, 500)
    chosen = parse_config(_data(reconcile_sample=0, reconcile_all_every=0, catch_up_blocks=1), tmp_path / "c.yaml")
    assert (chosen.daemon.reconcile_sample, chosen.daemon.reconcile_all_every, chosen.daemon.catch_up_blocks) == (
        0, 0, 1)  # fmt: skip


@pytest.mark.parametrize(
    ("key", "value"),
    [("reconcile_sample", -1), ("reconcile_all_every", 1.5), ("catch_up_blocks", 0), ("catch_up_blocks", True)],
)
def test_bad_values_are_named(tmp_path: Path, key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"daemon.{key}") as err:
        parse_config(_data(**{key: value}), tmp_path / "c.yaml")
    assert "\n" not in str(err.value)
