"""Shared fixtures: one real Aave V3 devnet (3.0) and one newest-Pool devnet (aave-v3-origin) per
test session, each reverted between tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monitor.chain.rpc import RpcClient
from monitor.devnet.aave_origin import INTEREST_DAYS, OriginDevnet, start_origin_devnet
from monitor.devnet.anvil import Anvil
from monitor.devnet.deploy import deploy_aave
from monitor.devnet.node import DevnetNode
from monitor.devnet.seed import seed_positions
from tests.support import Devnet

SEEDED_POSITIONS = 1000
SEED = 7
ORIGIN_POSITIONS = 240
ORIGIN_SEED = 9


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


@pytest.fixture(scope="session")
def origin_devnet_session() -> Iterator[OriginDevnet]:
    """anvil + the newest Aave V3 Pool (aave-v3-origin 3.6.0, compiled and cached) + 240 seeded
    positions + 90 days of interest, once per session (a few seconds once the compile is cached)."""
    with start_origin_devnet(ORIGIN_POSITIONS, seed=ORIGIN_SEED, days=INTEREST_DAYS) as origin:
        yield origin


@pytest.fixture
def origin_devnet(origin_devnet_session: OriginDevnet) -> Iterator[OriginDevnet]:
    """The session's aave-v3-origin devnet (``.url``, ``.node``, ``.deployment``, ``.accounts``,
    ``.positions``), reverted to its seeded state after the test."""
    snapshot = origin_devnet_session.node.snapshot()
    yield origin_devnet_session
    origin_devnet_session.node.revert(snapshot)
