"""``liqmon demo``: the embedded default. A throw-away devnet running the real Aave V3,
seeded positions, and the real ETH/BTC price path of Black Thursday (2020-03-12) walked
down the oracle, with a scan stored and summarised at every step."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.alerts.console import ConsoleChannel
from monitor.chain.rpc import RpcClient
from monitor.config import Config, parse_config
from monitor.devnet.anvil import Anvil
from monitor.devnet.comet import seed_comet
from monitor.devnet.morpho import seed_morpho
from monitor.devnet.node import DevnetNode
from monitor.devnet.seed import seed_positions
from monitor.devnet.world import World, deploy_world, set_world_price, world_config
from monitor.models import MAX_UINT256, WAD, MarketSnapshot
from monitor.price_data import intraday_path
from monitor.scan import ScanResult
from monitor.service import Monitor, TickResult
from monitor.store import Store

CRASH_START, CRASH_END = "2020-03-11", "2020-03-13"
SECONDS_PER_REAL_STEP = 6 * 3600  # open -> high/low -> low/high -> close: about a quarter day each
WALKED = {"WETH": "ETH", "WBTC": "BTC"}  # devnet symbol -> price-data asset


@dataclass(frozen=True, slots=True)
class Step:
    label: str
    prices: dict[str, float]  # devnet symbol -> USD
    real: bool  # a real data point (False: geometric interpolation between two)


def crash_steps(substeps: int = 2) -> list[Step]:
    """The real intraday-ordered path of each walked asset, aligned by label, with
    ``substeps - 1`` geometric points between consecutive real points."""
    paths = {sym: intraday_path(asset, CRASH_START, CRASH_END) for sym, asset in WALKED.items()}
    labels = [label for label, _ in next(iter(paths.values()))]
    points = [{sym: dict(path)[label] for sym, path in paths.items()} for label in labels]
    steps: list[Step] = [Step(labels[0], points[0], True)]
    for i in range(1, len(points)):
        prev, cur = points[i - 1], points[i]
        for k in range(1, substeps):
            t = k / substeps
            mid = {s: math.exp(math.log(prev[s]) * (1 - t) + math.log(cur[s]) * t) for s in cur}
            steps.append(Step(f"  ~ {labels[i]}", mid, False))
        steps.append(Step(labels[i], cur, True))
    return steps


@dataclass(frozen=True, slots=True)
class StepSummary:
    label: str
    block: int
    prices: dict[str, float]
    liquidatable: int
    at_risk: int  # HF < 1.1
    min_hf: float
    by_protocol: dict[str, int]  # liquidatable positions per protocol family


def summarize(label: str, prices: dict[str, float], snapshots: Sequence[MarketSnapshot]) -> StepSummary:
    hfs = [(s.protocol, p.health_factor) for s in snapshots for p in s.positions if p.health_factor != MAX_UINT256]
    by_protocol = {s.protocol: 0 for s in snapshots}
    for protocol, hf in hfs:
        by_protocol[protocol] += hf < WAD
    return StepSummary(
        label=label,
        block=snapshots[0].block,
        prices=prices,
        liquidatable=sum(by_protocol.values()),
        at_risk=sum(1 for _, h in hfs if h < WAD * 11 // 10),
        min_hf=min(h for _, h in hfs) / WAD if hfs else math.inf,
        by_protocol=by_protocol,
    )


def run_demo(
    *,
    positions: int = 60,
    seed: int = 2020,
    substeps: int = 2,
    db_path: Path | None = None,
    say: Callable[[str], None] = print,
    verbose: bool = False,
) -> Generator[tuple[StepSummary, list[ScanResult], TickResult], None, None]:
    """Yields one summary per price step; alerts go to the console channel as they are
    delivered, one line each (``verbose``: the whole message); the devnet is stopped when the
    walk ends."""
    steps = crash_steps(substeps)
    with Anvil() as anvil, tempfile.TemporaryDirectory(prefix="liqmon-demo-") as tmp:
        client = RpcClient([anvil.url], timeout=120, max_retries=0)
        node = DevnetNode(client)
        say(f"devnet: anvil on {anvil.url}; deploying the real Aave V3 (@aave/core-v3), the real Morpho Blue "
            "(@morpho-org/morpho-blue, compiled with solc-js 0.8.19) and a Comet-semantics market")  # fmt: skip
        world = deploy_world(node)
        _set_prices(node, world, steps[0].prices)
        say(f"devnet: seeding {positions} Aave, {positions // 2} Morpho Blue and {positions // 2} Compound V3 "
            f"positions (seed {seed}) at the {steps[0].label} prices")  # fmt: skip
        seed_positions(node, world.aave, positions, seed=seed)
        seed_morpho(node, world.morpho, positions // 2, seed=seed)
        seed_comet(node, world.comet, positions // 2, seed=seed)
        store_path = db_path or Path(tmp) / "demo.db"
        config = _config(anvil.url, world, store_path)
        with Store(store_path) as store:
            console = ConsoleChannel(verbose=verbose)
            monitor = Monitor(config, store, {"console": console}, clock=lambda: _chain_time(client))
            try:  # each tick follows the positions by their events (monitor.positions.tracker)
                for step in steps:
                    client.request("evm_increaseTime", [SECONDS_PER_REAL_STEP // substeps])
                    _set_prices(node, world, step.prices)
                    tick = monitor.tick()
                    scans = list(tick.scans)
                    yield summarize(step.label, step.prices, [r.snapshot for r in scans]), scans, tick
            finally:
                monitor.close()  # the tracker's clients
        client.close()


def _chain_time(client: RpcClient) -> float:
    """The demo's clock is the chain's: the walk compresses days into seconds."""
    return float(int(client.get_block("latest")["timestamp"], 16))


def _set_prices(node: DevnetNode, world: World, prices: dict[str, float]) -> None:
    for symbol, usd in prices.items():
        set_world_price(node, world, symbol, usd)
    node.mine()


def _config(url: str, world: World, store_path: Path) -> Config:
    data = world_config(url, world, str(store_path))
    # a day of the crash passes in seconds: no repeats of unchanged alerts within the walk
    data["alerts"] = {"repeat_interval_s": 3 * 86400, "routes": [{"channel": "console", "min_severity": "warning"}],
                      "channels": {"console": {"type": "console"}}}  # fmt: skip
    return parse_config(data, store_path.parent / "demo.yaml", label="demo config")
