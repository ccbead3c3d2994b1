"""A devnet that outlives one command: ``liqmon devnet up`` starts anvil detached, deploys the
three-protocol world (the real Aave V3, the real Morpho Blue, the Comet look-alike) and writes a
state file plus a ready-to-use config scanning all three; later commands attach to it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from monitor.chain.rpc import RpcClient
from monitor.devnet.anvil import Anvil, wait_ready
from monitor.devnet.deploy import Deployment
from monitor.devnet.market_config import MARKET_NAME, devnet_config
from monitor.devnet.node import DevnetNode
from monitor.devnet.world import World, align_world_prices, deploy_world, world_config
from monitor.errors import DevnetError, RpcError
from monitor.paths import cache_dir

__all__ = ["MARKET_NAME", "DevnetSession", "devnet_config", "down", "up"]

DB_NAME = "devnet.db"  # beside the config, so relative to it


@dataclass(frozen=True, slots=True)
class DevnetSession:
    pid: int
    url: str
    world: World

    @property
    def deployment(self) -> Deployment:
        """The Aave V3 deployment of the world."""
        return self.world.aave

    @staticmethod
    def state_file() -> Path:
        return cache_dir() / "devnet.json"

    @staticmethod
    def config_file() -> Path:
        return cache_dir() / "devnet.yaml"

    def client(self) -> RpcClient:
        return RpcClient([self.url], timeout=120, max_retries=0)

    def save(self) -> None:
        data = {"pid": self.pid, "url": self.url, "world": json.loads(self.world.to_json())}
        self.state_file().write_text(json.dumps(data, indent=2))
        cfg = world_config(self.url, self.world, DB_NAME)
        self.config_file().write_text(yaml.safe_dump(cfg, sort_keys=False))

    @classmethod
    def load(cls) -> DevnetSession:
        path = cls.state_file()
        if not path.is_file():
            raise DevnetError("no devnet is running: start one with `liqmon devnet up`")
        data = json.loads(path.read_text())
        if "world" not in data:  # written before the three-protocol world
            raise DevnetError(
                f"{path} describes an Aave-only devnet of an older liqmon: run `liqmon devnet down` "
                "then `liqmon devnet up`"
            )
        session = cls(int(data["pid"]), str(data["url"]), World.from_json(json.dumps(data["world"])))
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
    for stale in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm"):  # the history of a chain that is gone
        (cache_dir() / stale).unlink(missing_ok=True)
    log = (cache_dir() / "anvil.log").open("ab")
    anvil = Anvil(port=port)
    process = subprocess.Popen(anvil.command(), stdout=log, stderr=log, start_new_session=True)
    anvil.process = None
    client = RpcClient([anvil.url], timeout=60, max_retries=0)
    try:
        wait_ready(anvil.url, process)
        node = DevnetNode(client)
        world = deploy_world(node)
        align_world_prices(node, world)
    except BaseException:
        process.kill()
        raise
    finally:
        client.close()
    session = DevnetSession(process.pid, anvil.url, world)
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
