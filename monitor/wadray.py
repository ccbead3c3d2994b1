"""Aave's WadRayMath and PercentageMath in Python integers (half-up rounding, as on chain)."""

from __future__ import annotations

WAD = 10**18
RAY = 10**27
PERCENTAGE_FACTOR = 10_000
HALF_PERCENT = PERCENTAGE_FACTOR // 2


def ray_mul(a: int, b: int) -> int:
    return (a * b + RAY // 2) // RAY


def wad_div(a: int, b: int) -> int:
    return (a * WAD + b // 2) // b


def percent_mul(value: int, percentage: int) -> int:
    return (value * percentage + HALF_PERCENT) // PERCENTAGE_FACTOR


def percent_div(value: int, percentage: int) -> int:
    return (value * PERCENTAGE_FACTOR + percentage // 2) // percentage
