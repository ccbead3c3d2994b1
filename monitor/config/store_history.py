"""The ``store.history`` and ``store.retention`` sections: when a position row is written and
how old rows are thinned (monitor.store.history)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from monitor.config.validate import Validator
from monitor.store.history import HistoryPolicy, RetentionPolicy

HISTORY_KEYS: Final = ("hf_bands", "hf_move", "heartbeat_s")
RETENTION_KEYS: Final = ("full_days", "downsample_s")


def parse_history(v: Validator, value: object) -> HistoryPolicy:
    raw: Mapping[Any, Any] = {} if value is None else v.mapping(value, "store.history", "a mapping")
    v.check_keys(raw, HISTORY_KEYS, "store.history")
    default = HistoryPolicy()
    bands = default.hf_bands
    if "hf_bands" in raw:
        listed = v.sequence(raw["hf_bands"], "store.history.hf_bands", "a list of HF levels (e.g. [1.0, 1.1, 1.5])")
        if len(listed) > 64:
            v.fail("store.history.hf_bands", f"expected at most 64 levels, got {len(listed)}")
        bands = tuple(v.bounded_number(b, f"store.history.hf_bands[{i}]", 0.01, 1000.0) for i, b in enumerate(listed))
        if list(bands) != sorted(set(bands)):
            v.fail("store.history.hf_bands", f"expected increasing levels without repeats, got {list(bands)}")
    move = v.bounded_number(raw.get("hf_move", default.hf_move), "store.history.hf_move", 0.0001, 10.0)
    heartbeat = v.bounded_integer(
        raw.get("heartbeat_s", default.heartbeat_s), "store.history.heartbeat_s", 1, 30 * 86_400
    )
    return HistoryPolicy(hf_bands=bands, hf_move=move, heartbeat_s=heartbeat)


def parse_retention(v: Validator, value: object) -> RetentionPolicy:
    raw: Mapping[Any, Any] = {} if value is None else v.mapping(value, "store.retention", "a mapping")
    v.check_keys(raw, RETENTION_KEYS, "store.retention")
    default = RetentionPolicy()
    full_days: float | None = default.full_days
    if "full_days" in raw:
        full_days = (
            None
            if raw["full_days"] is None
            else v.bounded_number(raw["full_days"], "store.retention.full_days", 1.0, 36_500.0)
        )
    step = v.bounded_integer(
        raw.get("downsample_s", default.downsample_s), "store.retention.downsample_s", 60, 30 * 86_400
    )
    return RetentionPolicy(full_days=full_days, downsample_s=step)
