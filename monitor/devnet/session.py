"""A devnet that outlives one command: ``liqmon devnet up`` starts anvil detached, deploys
Aave V3 and writes a state file plus a ready-to-use config; later commands attach to it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from monitor.chain.rpc import RpcClient
from monitor.devnet.anvil import DEVNET_CHAIN_ID, Anvil, wait_ready
from monitor.devnet.deploy import Deployment, deploy_aave
from monitor.devnet.node import DevnetNode
from monitor.errors import DevnetError, RpcError
from monitor.paths import cache_dir

MARKET_NAME = "aave-v3-devnet"


def devnet_config(url: str, deployment: Deployment, db_path: str = "devnet.db") -> dict[str, Any]:
    """A liqmon config (as data) that scans the devnet market."""
    return {
        "chains": {
            "devnet": {
                "chain_id": DEVNET_CHAIN_ID,
                "rpc_urls": [url],
                "request_timeout_s": 30,
                "max_log_range": 5000,
                "calls_per_batch": 1000,
            }
        },
        "markets": [
            {
                "name": MARKET_NAME,
                "protocol": "aave_v3",
                "chain": "devnet",
                "pool_addresses_provider": deployment.pool_addresses_provider,
                "start_block": 0,
            }
        ],
        "store": {"path": db_path},
    }


@dataclass(frozen=True, slots=True)
class DevnetSession:
    pid: int
    url: str
    deployment: Deployment

    @staticmethod
    def state_file() -> Path:
        return cache_dir() / "devnet.json"

    @staticmethod
    def config_file() -> Path:
        return cache_dir() / "devnet.yaml"

    def client(self) -> RpcClient:
        return RpcClient([self.url], timeout=120, max_retries=0)

    def save(self) -> None:
        data = {
            "pid": self.pid,
            "url": self.url,
            "deployment": json.loads(self.deployment.to_json()),
        }
        self.state_file().write_text(json.dumps(data, indent=2))
        cfg = devnet_config(self.url, self.deployment)
        self.config_file().write_text(yaml.safe_dump(cfg, sort_keys=False))

    @classmethod
    def load(cls) -> DevnetSession:
        path = cls.state_file()
        if not path.is_file():
            raise DevnetError("no devnet is running: start one with `liqmon devnet up`")
        data = json.loads(path.read_text())
        session = cls(int(data["pid"]), str(data["url"]), Deployment.from_json(json.dumps(data["deployment"])))
        try:
            session.client().chain_id()
        except RpcError as exc:
            raise DevnetError(
                f"the devnet at {session.url} does not answer (stopped?): run `liqmon devnet down` "
                "then `liqmon devnet up`"
            ) from exc
        return session


def up(port: int | None = None) -> DevnetSession:
    if DevnetSession.state_file().is_file():
        try:
            return DevnetSession.load()
        except DevnetError:
            down()
    log = (cache_dir() / "anvil.log").open("ab")
    anvil = Anvil(port=port)
    process = subprocess.Popen(anvil.command(), stdout=log, stderr=log, start_new_session=True)
    anvil.process = None
    client = RpcClient([anvil.url], timeout=60, max_retries=0)
    try:
        wait_ready(anvil.url, process)
        deployment = deploy_aave(DevnetNode(client))
    except BaseException:
        process.kill()
        raise
    finally:
        client.close()
    session = DevnetSession(process.pid, anvil.url, deployment)
    session.save()
    return session


def down() -> bool:
    """Stop the devnet started by ``up``; False when none was recorded."""
    path = DevnetSession.state_file()
    if not path.is_file():
        return False
    pid = int(json.loads(path.read_text()).get("pid", 0))
    if pid > 0:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    path.unlink(missing_ok=True)
    DevnetSession.config_file().unlink(missing_ok=True)
    return True
