"""The devnet market: reserves with mixed decimals, realistic risk parameters, one eMode.

Risk parameters follow Aave V3 Ethereum's published values closely (LTV / liquidation
threshold / bonus in basis points).
"""

from __future__ import annotations

from dataclasses import dataclass

USD = 10**8  # AaveOracle base currency unit (USD, 8 decimals), as on Ethereum


@dataclass(frozen=True, slots=True)
class ReserveSpec:
    symbol: str
    name: str
    decimals: int
    price_usd: float  # initial oracle price
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    reserve_factor: int
    emode_category: int = 0
    price_data: str = ""  # asset name in monitor/data/prices (for replays)


@dataclass(frozen=True, slots=True)
class EModeSpec:
    id: int
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    label: str


RESERVES: tuple[ReserveSpec, ...] = (
    ReserveSpec("WETH", "Wrapped Ether", 18, 2000.0, 8050, 8300, 10500, 1500, price_data="ETH"),
    ReserveSpec("WBTC", "Wrapped BTC", 8, 30000.0, 7300, 7800, 10500, 2000, price_data="BTC"),
    ReserveSpec("USDC", "USD Coin", 6, 1.0, 7700, 8000, 10450, 1000, 1, price_data="USDC"),
    ReserveSpec("DAI", "Dai Stablecoin", 18, 1.0, 6700, 7700, 10400, 1000, 1, price_data="DAI"),
    ReserveSpec("SOL", "Wrapped SOL", 18, 20.0, 5000, 6500, 10750, 2000, price_data="SOL"),
)

EMODES: tuple[EModeSpec, ...] = (EModeSpec(1, 9300, 9500, 10100, "Stablecoins"),)


def price_units(price_usd: float) -> int:
    """A USD price as an 8-decimal oracle answer."""
    return round(price_usd * USD)
