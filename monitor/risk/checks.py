"""Argument checks shared by the risk modules: bad input becomes an InputError naming it."""

from __future__ import annotations

import math

from monitor.errors import InputError


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
