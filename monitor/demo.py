"""``liqmon demo``: the embedded default. A throw-away devnet running the real Aave V3,
seeded positions, and the real ETH/BTC price path of Black Thursday (2020-03-12) walked
down the oracle, with a scan stored and summarised at every step."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from monitor.alerts.console import ConsoleChannel
from monitor.chain.rpc import RpcClient
from monitor.config import Config, parse_config
from monitor.devnet.anvil import Anvil
from monitor.devnet.deploy import Deployment, deploy_aave
from monitor.devnet.node import DevnetNode
from monitor.devnet.seed import seed_positions, set_price
from monitor.devnet.session import devnet_config
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


def summarize(label: str, prices: dict[str, float], snapshot: MarketSnapshot) -> StepSummary:
    hfs = [p.health_factor for p in snapshot.positions if p.health_factor != MAX_UINT256]
    return StepSummary(
        label=label,
        block=snapshot.block,
        prices=prices,
        liquidatable=sum(1 for h in hfs if h < WAD),
        at_risk=sum(1 for h in hfs if h < WAD * 11 // 10),
        min_hf=min(hfs) / WAD if hfs else math.inf,
    )


def run_demo(
    *,
    positions: int = 60,
    seed: int = 2020,
    substeps: int = 2,
    db_path: Path | None = None,
    say: Callable[[str], None] = print,
) -> Iterator[tuple[StepSummary, ScanResult, TickResult]]:
    """Yields one summary per price step; alerts go to the console channel as they are
    delivered; the devnet is stopped when the walk ends."""
    steps = crash_steps(substeps)
    with Anvil() as anvil, tempfile.TemporaryDirectory(prefix="liqmon-demo-") as tmp:
        client = RpcClient([anvil.url], timeout=120, max_retries=0)
        node = DevnetNode(client)
        say(f"devnet: anvil on {anvil.url}; deploying the real Aave V3 contracts from @aave/core-v3")
        deployment = deploy_aave(node)
        _set_prices(node, deployment, steps[0].prices)
        say(f"devnet: seeding {positions} positions (seed {seed}) at the {steps[0].label} prices")
        seed_positions(node, deployment, positions, seed=seed)
        store_path = db_path or Path(tmp) / "demo.db"
        config = _config(anvil.url, deployment, store_path)
        with Store(store_path) as store:
            monitor = Monitor(config, store, {"console": ConsoleChannel()}, clock=lambda: _chain_time(client))
            for step in steps:
                client.request("evm_increaseTime", [SECONDS_PER_REAL_STEP // substeps])
                _set_prices(node, deployment, step.prices)
                tick = monitor.tick()
                (result,) = tick.scans
                yield summarize(step.label, step.prices, result.snapshot), result, tick
        client.close()


def _chain_time(client: RpcClient) -> float:
    """The demo's clock is the chain's: the walk compresses days into seconds."""
    return float(int(client.get_block("latest")["timestamp"], 16))


def _set_prices(node: DevnetNode, deployment: Deployment, prices: dict[str, float]) -> None:
    for symbol, usd in prices.items():
        set_price(node, deployment, symbol, usd, mine=False)
    node.mine()


def _config(url: str, deployment: Deployment, store_path: Path) -> Config:
    data = devnet_config(url, deployment, str(store_path))
    # a day of the crash passes in seconds: no repeats of unchanged alerts within the walk
    data["alerts"] = {"repeat_interval_s": 3 * 86400, "routes": [{"channel": "console", "min_severity": "warning"}],
                      "channels": {"console": {"type": "console"}}}  # fmt: skip
    return parse_config(data, store_path.parent / "demo.yaml", label="demo config")
