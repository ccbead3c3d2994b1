"""Shared fixtures: one real Aave V3 devnet per test session, reverted between tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monitor.chain.rpc import RpcClient
from monitor.devnet.anvil import Anvil
from monitor.devnet.deploy import deploy_aave
from monitor.devnet.node import DevnetNode
from monitor.devnet.seed import seed_positions
from tests.support import Devnet

SEEDED_POSITIONS = 1000
SEED = 7


@pytest.fixture(scope="session")
def devnet_session() -> Iterator[Devnet]:
    """anvil + the real Aave V3 from @aave/core-v3 + 1,000 seeded positions (about 20 s)."""
    with Anvil() as anvil:
        client = RpcClient([anvil.url], timeout=120, max_retries=0)
        node = DevnetNode(client)
        deployment = deploy_aave(node)
        seeded = seed_positions(node, deployment, SEEDED_POSITIONS, seed=SEED)
        yield Devnet(anvil, client, node, deployment, seeded)
        client.close()


@pytest.fixture
def devnet(devnet_session: Devnet) -> Iterator[Devnet]:
    """The session devnet, reverted to its seeded state after the test."""
    snapshot = devnet_session.node.snapshot()
    yield devnet_session
    devnet_session.node.revert(snapshot)
