"""Test support shared by fixtures and tests (importable as ``tests.support``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from monitor.chain.rpc import RpcClient
from monitor.config import Config, parse_config
from monitor.devnet.anvil import Anvil
from monitor.devnet.deploy import Deployment
from monitor.devnet.node import DevnetNode
from monitor.devnet.seed import SeededPosition
from monitor.devnet.session import devnet_config


@dataclass
class Devnet:
    anvil: Anvil
    client: RpcClient
    node: DevnetNode
    deployment: Deployment
    seeded: list[SeededPosition]

    @property
    def url(self) -> str:
        return self.anvil.url

    def config(self, db_path: Path, **market_overrides: object) -> Config:
        data = devnet_config(self.url, self.deployment, str(db_path))
        data["markets"][0].update(market_overrides)
        return parse_config(data, db_path.parent / "devnet.yaml")

    def write_config(self, path: Path, db_path: Path) -> Path:
        import yaml

        path.write_text(yaml.safe_dump(devnet_config(self.url, self.deployment, str(db_path))))
        return path
