"""Argument checks shared by the risk modules: bad input becomes an InputError naming it."""

from __future__ import annotations

import math

from monitor.errors import InputError
from monitor.price_data import parse_day as parse_day  # re-exported for the risk modules


def finite_number(value: float, what: str) -> float:
    """``value`` as a finite float; bools, non-numbers, NaN and infinities are refused."""
    if isinstance(value, bool):
        raise InputError(f"{what} must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} must be a number, got {value!r}") from exc
    if not math.isfinite(out):
        raise InputError(f"{what} must be finite, got {value!r}")
    return out


def positive_int(value: int, what: str) -> int:
    """``value`` as an int >= 1; bools and non-integers are refused."""
    import numpy as np

    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InputError(f"{what} must be an integer, got {value!r}")
    if value < 1:
        raise InputError(f"{what} must be >= 1, got {value}")
    return int(value)
