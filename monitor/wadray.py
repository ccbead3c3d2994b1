"""Aave's WadRayMath, PercentageMath and MathUtils in Python integers.

The un-suffixed functions round half up, as every Aave V3 revision's ``rayMul`` / ``wadDiv`` /
``percentMul`` / ``percentDiv`` do. The ``_floor`` / ``_ceil`` variants are the explicitly
rounded ones of aave-v3-origin 3.5+ (``rayMulFloor``, ``rayMulCeil``, ``rayDivFloor``,
``rayDivCeil``, ``percentMulFloor``, ``percentMulCeil``, ``percentDivCeil``,
``MathUtils.mulDivCeil``). Inputs are non-negative integers, as on chain.
"""

from __future__ import annotations

WAD = 10**18
RAY = 10**27
HALF_RAY = RAY // 2
PERCENTAGE_FACTOR = 10_000
HALF_PERCENT = PERCENTAGE_FACTOR // 2


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def ray_mul(a: int, b: int) -> int:
    return (a * b + HALF_RAY) // RAY


def ray_mul_floor(a: int, b: int) -> int:
    return (a * b) // RAY


def ray_mul_ceil(a: int, b: int) -> int:
    return _ceil_div(a * b, RAY)


def ray_div(a: int, b: int) -> int:
    return (a * RAY + b // 2) // b


def ray_div_floor(a: int, b: int) -> int:
    return (a * RAY) // b


def ray_div_ceil(a: int, b: int) -> int:
    return _ceil_div(a * RAY, b)


def wad_div(a: int, b: int) -> int:
    return (a * WAD + b // 2) // b


def percent_mul(value: int, percentage: int) -> int:
    return (value * percentage + HALF_PERCENT) // PERCENTAGE_FACTOR


def percent_mul_floor(value: int, percentage: int) -> int:
    return (value * percentage) // PERCENTAGE_FACTOR


def percent_mul_ceil(value: int, percentage: int) -> int:
    return _ceil_div(value * percentage, PERCENTAGE_FACTOR)


def percent_div(value: int, percentage: int) -> int:
    return (value * PERCENTAGE_FACTOR + percentage // 2) // percentage


def percent_div_ceil(value: int, percentage: int) -> int:
    return _ceil_div(value * PERCENTAGE_FACTOR, percentage)


def mul_div_ceil(a: int, b: int, c: int) -> int:
    """``MathUtils.mulDivCeil``: ceil(a * b / c)."""
    return _ceil_div(a * b, c)


def percent_div_floor(value: int, percentage: int) -> int:
    return (value * PERCENTAGE_FACTOR) // percentage
