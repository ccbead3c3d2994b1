"""Per-episode scoring of alert rules (pure numpy).

A WARNING EPISODE of a rule on a position begins at the close where its severity rises to
``warning`` or above (from below) and lasts until the hysteresis of
:func:`monitor.risk.thresholds.step_severity` lets it fall back; the replay records only
when episodes begin (``began [T+1, R, P]``, row 0 = already active when the window opens).
The backtest hands in every NOTIFICATION instead (each rise to a sent severity: an episode's
first message and each escalation inside it); each is then scored as an episode here.

For a liquidation at bar ``q`` (1 <= q <= T; bar ``q`` spans the time between the closes
``q - 1`` and ``q``) and a lead window of ``L`` bars:

- the liquidation is WARNED (credited) when an episode begins at a close ``t`` with
  ``max(1, q - L) <= t <= q - 1``; its lead is ``q - t`` bars for the earliest such ``t``
  (measured to the end of the liquidation bar, so a warning at the previous close has lead 1);
- an episode active at the window's start (row 0: the position was opened in that state)
  earns NO credit; it is still an alarm the user receives, so it is a FALSE ALARM when no
  liquidation follows within ``L`` bars of the start, and NEUTRAL otherwise (also counted
  apart as ``open_at_start``) - a rule that keeps many positions alarmed from the start pays
  for it;
- an episode beginning at ``t >= 1`` is a FALSE ALARM when no liquidation follows within
  ``L`` bars (``not t < q <= t + L``); it is a TRUE alarm when that liquidation falls in the
  window, and NEUTRAL (neither) when it falls in the tail after the window (the position is
  followed ``L`` bars past the window's end only to resolve such episodes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["NO_LIQUIDATION", "EpisodeScores", "score_episodes"]

NO_LIQUIDATION = np.iinfo(np.int32).max // 2


@dataclass(frozen=True, slots=True)
class EpisodeScores:
    """Per rule and position (``[R, P]``) for one window."""

    liquidated: NDArray[np.bool_]  # liquidated inside the window (bars 1..T)
    warned: NDArray[np.bool_]  # ... and credited
    lead_bars: NDArray[np.float64]  # lead of a warned liquidation, NaN otherwise
    false_alarms: NDArray[np.int64]  # episodes with no liquidation within L bars
    true_alarms: NDArray[np.int64]  # episodes followed by an in-window liquidation within L bars
    neutral: NDArray[np.int64]  # episodes followed by a liquidation in the tail
    open_at_start: NDArray[np.bool_]  # an episode active when the window opened


def score_episodes(
    began: NDArray[np.bool_], liq_bar: NDArray[np.int64], window_bars: int, lead_bars: int
) -> EpisodeScores:
    """Score one window: ``began [T+1, R, P]``, ``liq_bar [R, P]`` (1.. or :data:`NO_LIQUIDATION`),
    ``window_bars`` = T, ``lead_bars`` = L (see the module docstring)."""
    b = np.asarray(began, dtype=bool)
    q = np.asarray(liq_bar, dtype=np.int64)
    t_n = int(window_bars)
    lead = int(lead_bars)
    if b.ndim != 3 or b.shape[0] != t_n + 1 or b.shape[1:] != q.shape:
        raise ValueError(f"began must be [T+1, R, P] = [{t_n + 1}, *{q.shape}], got {b.shape}")
    if lead < 1:
        raise ValueError(f"lead_bars must be >= 1, got {lead_bars}")
    starts = b[1:]  # closes 1..T
    t = np.arange(1, t_n + 1, dtype=np.int64)[:, None, None]
    followed = (t < q[None]) & (q[None] <= t + lead)  # an episode at t is followed by the liquidation
    hit = starts & followed
    in_window = q <= t_n
    warned = hit.any(axis=0) & in_window
    first = np.argmax(hit, axis=0) + 1  # earliest crediting close
    lead_out = np.where(warned, (q - first).astype(np.float64), np.nan)
    n_hit = hit.sum(axis=0)
    open0 = b[0]
    open0_followed = open0 & (q <= lead)  # 0 < q always
    return EpisodeScores(
        liquidated=in_window,
        warned=warned,
        lead_bars=lead_out,
        false_alarms=((starts & ~followed).sum(axis=0) + (open0 & ~open0_followed)).astype(np.int64),
        true_alarms=np.where(in_window, n_hit, 0).astype(np.int64),
        neutral=(np.where(in_window, 0, n_hit) + open0_followed).astype(np.int64),
        open_at_start=open0.copy(),
    )
