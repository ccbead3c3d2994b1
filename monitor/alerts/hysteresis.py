"""Oracle alert hysteresis: an oracle alert (jump, drift, de-peg, divergence, stale) does not flap.

A jump is a one-observation event and a divergence hovers about its level, so without this an
alert fires at one block, resolves at the next and fires again at the one after (a USDC jump at
blocks 144, 145, 146). Here an active oracle alert:

- escalates at once (a critical anomaly while a warning is active);
- holds while its anomaly is seen, or is *near* (a divergence above ``(1 - exit_band)`` x its
  warning level, :func:`near_subjects`; a de-peg scoring above that share of its level,
  :func:`peg_near`; a jump while a sustained move of the same asset is seen
  and the other way round, :func:`linked_subjects`), and for a dwell after: it resolves (or steps down to a
  milder severity still seen) only once it has been gone for ``resolve_dwell_blocks`` blocks AND
  ``resolve_dwell_s`` seconds (``alerts.oracle``);
- a new episode starts only from a real anomaly, above its entry level: being near re-fires nothing.

The time and block the anomaly was last seen at the alert's severity are kept in
``alert_state.seen_at`` / ``seen_block`` (so a restart keeps the dwell).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.alerts.dedup import rank
from monitor.config.alerts import OracleConfig
from monitor.risk.anomalies import Anomaly


@dataclass(frozen=True, slots=True)
class OracleStep:
    severity: str  # the severity in force after this observation
    seen: bool  # the anomaly was seen at (or above) that severity: the dwell restarts
    held: bool  # kept at the previous severity although the anomaly is milder or gone


def step_oracle(
    before: Mapping[str, Any] | None,
    anomaly: Anomaly | None,
    near: bool,
    now: float,
    block: int,
    cfg: OracleConfig,
) -> OracleStep:
    """The severity of one oracle subject at ``block`` / ``now`` given its stored state ``before``."""
    previous = before["severity"] if before else "ok"
    if previous == "ok":
        return OracleStep(anomaly.severity, True, False) if anomaly else OracleStep("ok", False, False)
    if anomaly is not None and rank(anomaly.severity) >= rank(previous):
        return OracleStep(anomaly.severity, True, False)
    if anomaly is None and near:
        return OracleStep(previous, True, False)
    assert before is not None
    seen_at = before.get("seen_at")
    seen_block = before.get("seen_block")
    gone_s = now - float(seen_at if seen_at is not None else before["since"])
    gone_blocks = block - int(seen_block if seen_block is not None else before["last_block"])
    if gone_s >= cfg.resolve_dwell_s and gone_blocks >= cfg.resolve_dwell_blocks:
        return OracleStep(anomaly.severity if anomaly else "ok", anomaly is not None, False)
    return OracleStep(previous, False, True)


MOVE_KINDS = ("jump", "drift")
"""Two views of one price move: a jump on one block, a sustained move (drift) on the next (the
detector reports a drift only without a jump on the same observation)."""


def linked_subjects(current: Iterable[str]) -> frozenset[str]:
    """The subjects kept alive by those seen now: ``oracle:jump:X`` and ``oracle:drift:X`` hold each
    other, so a crash reported as jump, drift, jump... is one episode of each, not a flapping one."""
    out: set[str] = set()
    for subject in current:
        _, kind, asset = subject.split(":", 2)
        if kind in MOVE_KINDS:
            out.update(f"oracle:{k}:{asset}" for k in MOVE_KINDS if k != kind)
    return frozenset(out)


PEG_Z_WARNING = 6.0
"""The de-peg warning level of the monitor's detector (``AnomalyDetector``'s ``peg_z_warning``)."""


def peg_near(scores: Mapping[str, float], cfg: OracleConfig, z_warning: float = PEG_Z_WARNING) -> frozenset[str]:
    """``oracle:depeg:SYMBOL`` for each pegged asset whose distance from its peg scores at least
    ``(1 - exit_band) x`` the warning level (``scores``: the detector's score per pegged asset)."""
    floor = (1.0 - cfg.exit_band) * z_warning
    return frozenset(f"oracle:depeg:{asset}" for asset, z in scores.items() if z >= floor)


def near_subjects(protocol: Mapping[str, float], reference: Mapping[str, float], cfg: OracleConfig) -> frozenset[str]:
    """``oracle:divergence:SYMBOL`` for each asset whose protocol price is within the exit band
    of the divergence warning level (``|p / ref - 1| >= (1 - exit_band) x warning``)."""
    floor = (1.0 - cfg.exit_band) * cfg.divergence_warning_bps
    out: set[str] = set()
    for asset, price in protocol.items():
        ref = reference.get(asset)
        if ref and ref > 0 and price > 0 and abs(price / ref - 1.0) * 1e4 >= floor:
            out.add(f"oracle:divergence:{asset}")
    return frozenset(out)
