"""The liqmon config (as data) that scans a devnet's Aave V3 market; :mod:`monitor.devnet.world`
adds the Morpho Blue and Comet markets of the three-protocol world."""

from __future__ import annotations

from typing import Any

from monitor.devnet.anvil import DEVNET_CHAIN_ID
from monitor.devnet.deploy import Deployment

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
