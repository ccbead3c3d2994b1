"""One position's alert picture at a block: what the pipeline assessed, what the messages show."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Assessment:
    """One position's alert picture at a block."""

    account: str
    hf: float
    severity: str
    since: float
    level: float  # the HF at or below which the current (or, when ok, the watch) level starts
    probability: float  # P(HF < 1 within that level's horizon) at the current HF
    main_collateral: str
    liquidation_price: float | None
    price: float
    repay_usd: float
    add_usd: float
    levels: tuple[float, float, float] = (1.0, 1.0, 1.0)  # watch, warning, critical in force
    level_reason: str = ""  # "SOL/USDC, 24 h: warn at 1.31 (vol 4.1 %/day)" for the level above
    position_class: str = ""
    horizon_hours: float = 0.0  # of the level above
