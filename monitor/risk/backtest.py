"""Walk-forward, per-episode backtest of alert rules: the daemon's threshold policy against
the whole family of fixed HF levels, out of sample, with block-bootstrap confidence intervals.

Protocol
--------
Prices
    Bars at any granularity (:mod:`monitor.risk.backtest_data`): the shipped daily OHLC by
    default, or a ``--prices`` CSV (hourly, ...). The monitor looks at each bar's CLOSE
    (``observe_hours`` = the bar length); a position is LIQUIDATED at the first bar whose
    ADVERSE intraday point has HF < 1: the lower of (every asset at its bar low), (every asset
    at its bar high) and (the close) - lows for long collateral, highs for volatile debt.
Windows
    NON-overlapping evaluation windows of ``window_days`` tile the data, aligned on
    ``test_start``. In each, every eligible position of the book is OPENED at the window's
    first close with its book composition and HF (legs scaled by the price moves since that
    close) and followed to the window's end or its liquidation; then ``lead_hours`` more, only
    to resolve episodes that began near the end (see :mod:`monitor.risk.episodes`). A position
    is eligible when it has debt and every asset it holds has prices over the window, its tail
    and ``min_history_days`` before it (SOL begins in 2021; stablecoins are held at 1 USD before
    their data begins, LSTs are ETH times a synthetic ratio - the notes say so).
Rules and notifications
    Fixed levels ``1.00 .. 1.60`` and THE POLICY of the daemon
    (:func:`monitor.risk.policy.position_levels` through its ``LevelCache``, the same config
    ``liqmon run`` builds, ``observe_hours`` = the bar) at several ALARM-COST MULTIPLES (the
    config's alarm costs times k; k = 1 is the config as it stands). Severities step through
    :func:`monitor.risk.thresholds.step_severity` with the policy's ``exit_margin`` and
    ``min_dwell_s``, as in the daemon. What is counted is what the daemon SENDS under the
    shipped config (``count="notifications"``, the default): its route sends ``warning`` and
    above (``severity``), and dedup sends a message at every rise of the severity - the first
    one of an episode (``first``) and each escalation inside it (``severity_up``: warning to
    critical, or back to critical after the hysteresis let it fall). Every such notification is
    scored on its own: credited when it begins within ``lead_hours`` before the liquidation and
    not at the window's start, a false alarm when no liquidation follows within ``lead_hours``.
    Not counted: ``severity_down`` and ``resolved`` (good news, not an alarm) and ``repeat``
    reminders of an unchanged state (they re-send the same alarm; counting them would charge
    every rule per day spent below its level). ``count="episodes"`` scores only an episode's
    first notification (the former protocol, for comparison). A FIXED rule ``L`` re-arms the
    same way: warning at HF <= ``L`` and critical at ``1 + fixed_critical_step (L - 1)``
    (default 0.5: half-way to liquidation, the ladder of the former shipped floors 1.10 / 1.05),
    so both kinds get one further notification as a position falls; 1.0 makes it a single level.
    An episode already open when the window opens earns no credit but it is an alarm
    (:mod:`monitor.risk.episodes`).
    The policy's market state is the last ``history_days`` of returns (default its
    ``pool_days``, as ``liqmon run``) up to the close, NaN where no price was observed (a
    stablecoin held at 1 USD before its data is not shown to it as history). The other cost
    settings come from the same simulated curves (:func:`levels_at_cost_multiple`, tested
    equal to a direct call with the scaled config).
Reactions
    Positions marked as reacting (``react_share`` of the book, default 0) restore their
    start HF (repaying debt) ``reaction hours`` after a warning episode begins (the policy's
    warning horizon); a reaction changes that rule's path only.
Walk-forward
    Test windows are grouped into folds of ``fold_windows``. The fixed level of a fold is the
    one with the lowest STATED COST on all windows that end (tail included) before the fold
    begins: ``sum(missed liquidation penalties) + alarm_cost x notifications``, the penalty
    being ``close_factor x debt x (bonus - 1)`` at the liquidation (the cost the policy
    itself minimises). A named crash (:data:`monitor.risk.scenarios.HISTORICAL_EVENTS`) is
    never in the fit of the fold that tests it (checked). The policy fits nothing on the past
    but its market state, which holds only returns up to the decision (no lookahead).
Scores
    Per rule: liquidations, warned, recall (by count, and by liquidation penalty), false-alarm
    episodes (and per 1,000 position-windows), median and p10 lead (hours), the stated cost,
    per position class, with moving-block bootstrap CIs over test windows
    (``block_windows`` consecutive windows per block). The ACCEPTANCE COMPARISON: the
    policy's frontier (its cost settings; efficient points, linear between them) at the
    out-of-sample recall of the walk-forward fixed level; false-alarm episodes relative to it
    (with a bootstrap CI of the reduction), and the median lead of the cheapest policy setting
    reaching that recall; also each policy setting against the fixed family at its recall.
Runs
    ``jobs > 1`` replays windows in forked processes (same result). The daily acceptance run
    (1,000 positions, 106 windows of which 44 out of sample) takes 30-70 s on two cores.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from monitor.errors import InputError
from monitor.risk import backtest_data as bd
from monitor.risk import policy as _policy
from monitor.risk.backtest_book import ClassedBook
from monitor.risk.book import Array, Book
from monitor.risk.episodes import NO_LIQUIDATION, score_episodes
from monitor.risk.scenarios import HISTORICAL_EVENTS
from monitor.risk.thresholds import SEVERITIES, Levels, ThresholdPolicy, raw_severity, step_severity

__all__ = [
    "DEFAULT_COST_MULTIPLES",
    "DEFAULT_FIXED_LEVELS",
    "BacktestReport",
    "RuleScore",
    "Settings",
    "replay_window",
    "run_backtest",
]

DEFAULT_FIXED_LEVELS: tuple[float, ...] = tuple(round(1.0 + 0.02 * i, 2) for i in range(31))
DEFAULT_COST_MULTIPLES: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
SEVERITY_RANK = {name: i for i, name in enumerate(SEVERITIES)}


@dataclass(frozen=True, slots=True)
class Settings:
    window_days: float = 30.0
    lead_hours: float = 72.0
    fold_windows: int = 6
    test_start: str = "2020-01-01"
    test_end: str | None = None  # default: the end of the data
    fit_start: str | None = None  # first training window (default: as early as the data allows)
    history_days: float | None = None  # returns handed to the policy (default: its pool_days, as the daemon)
    min_history_days: float = 60.0
    fixed_levels: tuple[float, ...] = DEFAULT_FIXED_LEVELS
    cost_multiples: tuple[float, ...] = DEFAULT_COST_MULTIPLES
    severity: str = "warning"  # the lowest severity the daemon SENDS (the shipped route: min_severity warning)
    count: str = "notifications"  # every rise to a sent severity counts; "episodes": only an episode's start
    fixed_critical_step: float = 0.5  # a fixed rule L re-arms (its critical) at 1 + step (L - 1); 1: never
    close_factor: float = 0.5
    bootstrap: int = 1000
    block_windows: int = 3
    seed: int = 1

    def validate(self) -> Settings:
        for name in ("window_days", "lead_hours", "history_days", "close_factor"):
            v = getattr(self, name)
            if v is None and name == "history_days":
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                raise InputError(f"{name.replace('_', '-')} must be a number > 0, got {v!r}")
        if self.min_history_days < 0:
            raise InputError(f"min-history-days must be >= 0, got {self.min_history_days}")
        for name in ("fold_windows", "block_windows"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name.replace('_', '-')} must be an integer >= 1, got {v!r}")
        if isinstance(self.bootstrap, bool) or not isinstance(self.bootstrap, int) or self.bootstrap < 0:
            raise InputError(f"bootstrap must be an integer >= 0, got {self.bootstrap!r}")
        if self.severity not in ("watch", "warning", "critical"):
            raise InputError(f"severity must be watch, warning or critical, got {self.severity!r}")
        if self.count not in ("notifications", "episodes"):
            raise InputError(f"count must be notifications or episodes, got {self.count!r}")
        step = self.fixed_critical_step
        if isinstance(step, bool) or not isinstance(step, int | float) or not 0.0 <= step <= 1.0:
            raise InputError(f"fixed-critical-step must be in [0, 1], got {step!r}")
        if not self.fixed_levels or any(not math.isfinite(x) or x <= 0 for x in self.fixed_levels):
            raise InputError(f"fixed levels must be positive HF values, got {self.fixed_levels}")
        if any(not math.isfinite(k) or k <= 0 for k in self.cost_multiples):
            raise InputError(f"cost multiples must be > 0, got {self.cost_multiples}")
        return self


# -- one window ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowReplay:
    """What the rules did in one window: ``began [T+1, R, P]``, ``liq_bar [R, P]``,
    ``debt_at_liq [R, P]`` (USD), plus each rule's severity at every close ``[T+1, R, P]``."""

    began: NDArray[np.bool_]
    liq_bar: NDArray[np.int64]
    debt_at_liq: Array
    severity: NDArray[np.int64]


LevelFn = Callable[[int, Book], Array]  # (close t, book at t) -> levels [K, P, 3] of K policy settings


def replay_window(
    book: Book,
    m_close: Array,
    m_low: Array,
    m_high: Array,
    *,
    fixed_levels: Sequence[float],
    policy: LevelFn | None = None,
    n_policy: int = 0,
    window_bars: int,
    step_hours: float,
    severity_rank: int,
    exit_margin: float,
    min_dwell_s: float,
    reacts: NDArray[np.bool_] | None = None,
    react_bars: int = 1,
    rearm: bool = True,
    fixed_critical_step: float = 1.0,
) -> WindowReplay:
    """Replay one window. ``m_close [X+1, A]`` are the closes 0..X relative to close 0 and
    ``m_low / m_high [X+1, A]`` the bar extremes (row 0 unused), ``X = window_bars + tail``.
    A decision at close ``t`` reads only rows ``<= t`` (``policy(t, book_t)`` is called with
    the book moved to close ``t`` and returns the levels of ``n_policy`` settings; it must
    itself use returns up to ``t`` only).

    ``began[t]`` marks the NOTIFICATIONS at close ``t``: with ``rearm`` every rise of the
    severity to ``severity_rank`` or above (from ok / watch: the episode's first message; from
    warning to critical, or back to critical after the hysteresis let it fall: the daemon's
    ``severity_up``); without, only the rise from below ``severity_rank`` (the episode's start).
    A fixed level ``L`` is watch = warning = ``L`` and critical ``1 + fixed_critical_step (L - 1)``
    (1.0: a single level, no re-arm)."""
    n_bars = m_close.shape[0] - 1
    t_w = int(window_bars)
    if not 1 <= t_w <= n_bars:
        raise InputError(f"window_bars {window_bars} must be within the {n_bars} bars given")
    p_n = book.size
    fixed = np.asarray(fixed_levels, dtype=np.float64)
    n_f, n_k = fixed.size, (int(n_policy) if policy is not None else 0)
    r_n = n_f + n_k
    hf_close = np.stack([book.health_factors(m_close[t]) for t in range(n_bars + 1)])  # [X+1, P]
    hf_adv = np.full_like(hf_close, np.inf)
    for t in range(1, n_bars + 1):
        hf_adv[t] = np.minimum(np.minimum(book.health_factors(m_low[t]), book.health_factors(m_high[t])), hf_close[t])
    debt_usd = m_close @ book.debt.T  # [X+1, P]
    hf0 = hf_close[0]
    factor = np.ones((r_n, p_n))  # HF multiplier from reactions (repaid debt), per rule
    react_at = np.full((r_n, p_n), NO_LIQUIDATION, dtype=np.int64)
    reacting = np.zeros(p_n, dtype=bool) if reacts is None else np.asarray(reacts, dtype=bool)
    liq = np.full((r_n, p_n), NO_LIQUIDATION, dtype=np.int64)
    debt_liq = np.zeros((r_n, p_n))
    began = np.zeros((t_w + 1, r_n, p_n), dtype=bool)
    sev_out = np.zeros((t_w + 1, r_n, p_n), dtype=np.int64)
    tp = ThresholdPolicy(exit_margin=exit_margin, min_dwell_s=min_dwell_s)

    fixed_lv = np.column_stack([fixed, fixed, 1.0 + float(fixed_critical_step) * (fixed - 1.0)])  # [F, 3]

    def levels_at(t: int) -> Levels:
        lv = np.empty((r_n, p_n, 3))
        lv[:n_f] = fixed_lv[:, None, :]
        if policy is not None and n_k:
            lv[n_f:] = policy(t, _moved(book, m_close[t]))
        flat = lv.reshape(r_n * p_n, 3)
        return Levels(flat[:, 0].copy(), flat[:, 1].copy(), flat[:, 2].copy())

    hf_r = factor * hf0[None, :]
    sev = raw_severity(hf_r.ravel(), levels_at(0)).reshape(r_n, p_n)
    since = np.full((r_n, p_n), -np.inf)
    began[0] = sev >= severity_rank
    sev_out[0] = sev
    react_at = np.where(began[0] & reacting[None, :], react_bars, react_at)
    for t in range(1, n_bars + 1):
        alive = liq == NO_LIQUIDATION
        newly = alive & (hf_adv[t][None, :] * factor < 1.0)
        liq = np.where(newly, t, liq)
        debt_liq = np.where(newly, debt_usd[t][None, :] / factor, debt_liq)
        alive &= ~newly
        # reactions due at this close restore the start HF from the next bar on
        due = alive & (react_at == t)
        if due.any():
            restore = np.maximum(factor, hf0[None, :] / np.where(hf_close[t] > 0, hf_close[t], np.inf)[None, :])
            factor = np.where(due, restore, factor)
        if t > t_w:
            continue
        hf_r = np.where(alive, factor * hf_close[t][None, :], np.inf)
        new_sev, new_since = step_severity(
            sev.ravel(), since.ravel(), hf_r.ravel(), levels_at(t), t * step_hours * 3600.0, tp
        )
        new_sev = new_sev.reshape(r_n, p_n)
        start = alive & (new_sev >= severity_rank) & (sev < severity_rank)
        began[t] = (alive & (new_sev >= severity_rank) & (new_sev > sev)) if rearm else start
        react_at = np.where(start & reacting[None, :] & (react_at == NO_LIQUIDATION), t + react_bars, react_at)
        sev, since = new_sev, new_since.reshape(r_n, p_n)
        sev_out[t] = np.where(alive, sev, SEVERITY_RANK["liquidatable"])
    return WindowReplay(began, liq, debt_liq, sev_out)


def _moved(book: Book, mult: Array) -> Book:
    return replace(book, collateral=book.collateral * mult, debt=book.debt * mult)


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleScore:
    """One rule over the test windows (counts summed, CIs from the block bootstrap)."""

    name: str
    kind: str  # "fixed" | "policy" | "fixed-walk-forward"
    level: float | None
    cost_multiple: float | None
    liquidations: int
    warned: int
    recall: float
    recall_ci: tuple[float, float]
    false_alarm_episodes: int
    false_alarms_per_1000: float  # per 1,000 position-windows
    false_alarms_per_1000_ci: tuple[float, float]
    true_alarm_episodes: int
    open_at_start: int
    median_lead_hours: float | None
    p10_lead_hours: float | None
    median_lead_ci: tuple[float, float] | None
    cost_usd: float
    recall_usd: float  # share of the liquidation penalties (USD) that were warned
    by_class: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "level": self.level, "cost_multiple": self.cost_multiple,
            "liquidations": self.liquidations, "warned": self.warned, "recall": _nan(self.recall),
            "recall_ci": [_nan(x) for x in self.recall_ci], "false_alarm_episodes": self.false_alarm_episodes,
            "false_alarms_per_1000_position_windows": self.false_alarms_per_1000,
            "false_alarms_per_1000_ci": list(self.false_alarms_per_1000_ci),
            "true_alarm_episodes": self.true_alarm_episodes, "open_at_start": self.open_at_start,
            "median_lead_hours": self.median_lead_hours, "p10_lead_hours": self.p10_lead_hours,
            "median_lead_ci": None if self.median_lead_ci is None else list(self.median_lead_ci),
            "cost_usd": self.cost_usd,
            "recall_usd": _nan(self.recall_usd), "by_class": self.by_class,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class BacktestReport:
    settings: dict[str, Any]
    prices: str
    step_hours: float
    book: str
    class_shares: dict[str, float]
    test_windows: int
    train_windows: int
    position_windows: int
    folds: tuple[dict[str, Any], ...]
    rules: tuple[RuleScore, ...]  # fixed family, then the policy at each cost multiple
    walk_forward_fixed: RuleScore
    comparison: dict[str, Any]
    notes: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings, "prices": self.prices, "step_hours": self.step_hours, "book": self.book,
            "class_shares": self.class_shares, "test_windows": self.test_windows,
            "train_windows": self.train_windows, "position_windows": self.position_windows,
            "folds": list(self.folds), "rules": [r.as_dict() for r in self.rules],
            "walk_forward_fixed": self.walk_forward_fixed.as_dict(), "comparison": self.comparison,
            "notes": list(self.notes),
        }  # fmt: skip

    def policy_rules(self) -> list[RuleScore]:
        return [r for r in self.rules if r.kind == "policy"]

    def fixed_rules(self) -> list[RuleScore]:
        return [r for r in self.rules if r.kind == "fixed"]


def _nan(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


# -- the whole run ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Stats:
    """One window: per rule and class sums ``[R, C]``, missed penalties ``[R]``, positions
    ``[C]`` and, per rule, the lead times (hours) of its warned liquidations."""

    liq: NDArray[np.int64]
    warned: NDArray[np.int64]
    fa: NDArray[np.int64]
    true: NDArray[np.int64]
    neutral: NDArray[np.int64]
    open0: NDArray[np.int64]
    missed_usd: Array
    liq_usd: Array  # [R] penalties of all liquidations (USD)
    positions: NDArray[np.int64]
    leads: list[Array]


@dataclass(frozen=True, slots=True)
class Plan:
    """The windows of a run, as bar indices of their first close."""

    starts: tuple[int, ...]  # every window, non-overlapping, ``window_bars`` apart
    test: tuple[int, ...]  # the out-of-sample windows
    window_bars: int
    lead_bars: int
    folds: tuple[dict[str, Any], ...]  # {"test": [...], "train": [...], "crashes": [...]}


def plan_windows(px: bd.PriceSet, s: Settings) -> Plan:
    """Non-overlapping windows aligned on ``test_start`` and the walk-forward folds: a fold's
    fit uses only windows whose end (tail included) precedes the fold, and none that meets a
    named crash the fold tests."""
    step_h = px.step_hours
    t_w = bd.steps_for(s.window_days * 24.0, step_h, "window-days")
    lead = bd.steps_for(s.lead_hours, step_h, "lead-hours")
    min_hist = round(s.min_history_days * 24.0 / step_h)
    n = px.size
    test_first = _bar_at(px, s.test_start, "test start")
    test_last = n - 1 if s.test_end is None else _bar_at(px, s.test_end, "test end")
    first_ok = max(min_hist, 1)
    fit_first = first_ok if s.fit_start is None else max(first_ok, _bar_at(px, s.fit_start, "fit start"))
    first = test_first - max(0, (test_first - fit_first) // t_w) * t_w
    starts = tuple(b for b in range(first, n, t_w) if b >= first_ok and b + t_w + lead < n)
    test = tuple(b for b in starts if test_first <= b <= test_last)
    if not test:
        raise InputError(
            f"no test window of {s.window_days:g} days (+ {s.lead_hours:g} h tail) fits between "
            f"{s.test_start} and the end of the prices ({px.day(n - 1)}): give more data, a shorter "
            "--window-days or an earlier --test-start"
        )
    folds = _folds(px, list(test), list(starts), t_w, lead, s.fold_windows)
    return Plan(starts, test, t_w, lead, tuple(folds))


@dataclass(frozen=True, slots=True)
class _Job:
    """Everything one window needs (module-global while a run lasts, so forked workers share it)."""

    cbook: ClassedBook
    px: bd.PriceSet
    rets: Array
    cfg: _policy.PolicyConfig
    s: Settings
    plan: Plan
    onehot: NDArray[np.int64]
    bonus: Array
    fixed: tuple[float, ...]
    mults: tuple[float, ...]
    hist: int
    min_hist: int
    react_bars: int


_JOB: _Job | None = None


def _eligible(job: _Job, b: int) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    book = job.cbook.book
    span = job.px.close[max(b - job.min_hist, 0) : b + job.plan.window_bars + job.plan.lead_bars + 1]
    ok_assets: NDArray[np.bool_] = np.asarray(np.isfinite(span).all(axis=0), dtype=bool)
    held = (book.collateral > 0) | (book.debt > 0)
    elig = (book.debt.sum(axis=1) > 0) & ~(held & ~ok_assets[None, :]).any(axis=1)
    return np.flatnonzero(elig).astype(np.int64), ok_assets


def _run_window(b: int) -> tuple[int, int, _Stats | None]:
    job = _JOB
    assert job is not None
    rows, ok_assets = _eligible(job, b)
    if rows.size == 0:
        return b, 0, None
    px, plan = job.px, job.plan
    hi = b + plan.window_bars + plan.lead_bars
    sub = job.cbook.book.with_rows(rows)
    base = np.where(ok_assets, px.close[b], 1.0)
    m_c = np.where(ok_assets, px.close[b : hi + 1] / base, 1.0)
    m_l = np.where(ok_assets, px.low[b : hi + 1] / base, 1.0)
    m_h = np.where(ok_assets, px.high[b : hi + 1] / base, 1.0)
    is_test = b in plan.test
    fn = _policy_fn(job.cfg, job.mults, job.rets, b, job.hist, px, px.step_hours) if is_test else None
    rep = replay_window(
        sub, m_c, m_l, m_h, fixed_levels=job.fixed, policy=fn, n_policy=len(job.mults),
        window_bars=plan.window_bars, step_hours=px.step_hours, severity_rank=SEVERITY_RANK[job.s.severity],
        exit_margin=float(job.cfg.exit_margin), min_dwell_s=float(job.cfg.min_dwell_s),
        reacts=job.cbook.reacts[rows], react_bars=job.react_bars, rearm=job.s.count == "notifications",
        fixed_critical_step=job.s.fixed_critical_step,
    )  # fmt: skip
    st = _window_stats(rep, plan.window_bars, plan.lead_bars, px.step_hours, job.onehot[rows], job.bonus[rows],
                       job.s.close_factor)  # fmt: skip
    return b, int(rows.size), st


def run_backtest(
    cbook: ClassedBook,
    prices: bd.PriceSet,
    policy_cfg: _policy.PolicyConfig,
    settings: Settings = Settings(),
    *,
    progress: Callable[[str], None] | None = None,
    jobs: int = 1,
) -> BacktestReport:
    """The walk-forward backtest of the module docstring. ``jobs > 1`` replays windows in that
    many forked processes (the result is the same)."""
    global _JOB
    s = settings.validate()
    policy_cfg.validate()
    book = cbook.book
    if book.size == 0:
        raise InputError("the book is empty: no positions to backtest")
    bp = bd.book_prices(prices, book.symbols)
    px = bp.prices
    step_h = px.step_hours
    plan = plan_windows(px, s)
    starts, test, t_w, lead = plan.starts, plan.test, plan.window_bars, plan.lead_bars
    react_h = _reaction_hours(policy_cfg, s.severity)
    class_names = list(dict.fromkeys(cbook.classes))
    class_idx = np.array([class_names.index(c) for c in cbook.classes])
    onehot = np.zeros((book.size, len(class_names)), dtype=np.int64)
    onehot[np.arange(book.size), class_idx] = 1
    fixed = tuple(float(x) for x in s.fixed_levels)
    mults = tuple(float(k) for k in s.cost_multiples)
    alarm_cost = _alarm_cost(policy_cfg, s.severity)
    # the policy sees returns only where prices were observed (a stablecoin's 1.0 before its data
    # begins is a stand-in for the replay, not a history to learn "stablecoins never move" from)
    _JOB = _Job(
        cbook, px, bd.log_returns(np.where(bp.observed, px.close, np.nan)), policy_cfg, s, plan, onehot,
        _position_bonus(book), fixed, mults,
        bd.steps_for((s.history_days or policy_cfg.pool_days) * 24.0, step_h, "history-days"),
        round(s.min_history_days * 24.0 / step_h),
        bd.steps_for(react_h, step_h, "reaction horizon"),
    )  # fmt: skip
    stats: dict[int, _Stats] = {}
    eligible_counts: dict[int, int] = {}
    say = progress or (lambda _m: None)
    order = sorted(starts, key=lambda b: (b not in test, b))  # the heavy (policy) windows first
    try:
        if jobs > 1:
            import multiprocessing

            with multiprocessing.get_context("fork").Pool(min(jobs, len(order))) as pool:
                results = pool.imap_unordered(_run_window, order)
                for done, (b, count, st) in enumerate(results, 1):
                    _collect(b, count, st, stats, eligible_counts, say, done, len(order), px, b in test)
        else:
            for done, b in enumerate(order, 1):
                _, count, st = _run_window(b)
                _collect(b, count, st, stats, eligible_counts, say, done, len(order), px, b in test)
    finally:
        _JOB = None

    folds = plan.folds
    n_f, n_k = len(fixed), len(mults)
    fold_rows: list[dict[str, Any]] = []
    chosen: dict[int, int] = {}
    for fold in folds:
        train = [b for b in fold["train"] if b in stats]
        if train:
            cost = np.zeros(n_f)
            for b in train:
                st = stats[b]
                alarms = (st.fa + st.true + st.neutral).sum(axis=1)[:n_f]
                cost += st.missed_usd[:n_f] + alarm_cost * alarms
            pick = int(np.argmin(cost))  # ties -> the lowest level (fewer alarms)
        else:
            pick = int(np.argmin(np.abs(np.asarray(fixed) - 1.1)))
        for b in fold["test"]:
            chosen[b] = pick
        fold_rows.append({
            "test_from": px.day(fold["test"][0]), "test_to": px.day(fold["test"][-1] + t_w),
            "test_windows": len(fold["test"]), "train_windows": len(train),
            "train_to": px.day(max(train) + t_w + lead) if train else None,
            "crashes_tested": fold["crashes"], "fixed_level": fixed[pick],
        })  # fmt: skip
    test_ok = [b for b in test if b in stats]
    if not test_ok:
        raise InputError("no test window has an eligible position (debt, and prices for every asset held)")
    agg = _Aggregate.build([stats[b] for b in test_ok], n_f + n_k)
    wf_rule = np.array([chosen[b] for b in test_ok])
    rng = np.random.default_rng(s.seed)
    boots = _bootstrap_weights(len(test_ok), s.block_windows, s.bootstrap, rng)
    rules: list[RuleScore] = []
    for r, level in enumerate(fixed):
        rules.append(agg.score(f"HF <= {level:.2f}", "fixed", level, None, np.full(len(test_ok), r), boots,
                               alarm_cost, class_names, lead_ci=False))  # fmt: skip
    for k, mult in enumerate(mults):
        rules.append(agg.score(f"policy x{mult:g} alarm cost", "policy", None, mult, np.full(len(test_ok), n_f + k),
                               boots, alarm_cost, class_names, lead_ci=True))  # fmt: skip
    wf = agg.score("fixed level (walk-forward)", "fixed-walk-forward", None, None, wf_rule, boots, alarm_cost,
                   class_names, lead_ci=True)  # fmt: skip
    comparison = _compare(agg, wf_rule, n_f, mults, boots, rules, wf)
    notes = _notes(bp, cbook, eligible_counts, test_ok)
    return BacktestReport(
        settings={
            "window_days": s.window_days,
            "lead_hours": s.lead_hours,
            "fold_windows": s.fold_windows,
            "test_start": s.test_start,
            "test_end": s.test_end or px.day(px.size - 1),
            "fit_start": s.fit_start,
            "severity": s.severity,
            "count": s.count,
            "fixed_critical_step": s.fixed_critical_step,
            "fixed_levels": [fixed[0], fixed[-1], len(fixed)],
            "cost_multiples": list(mults),
            "alarm_cost_usd": alarm_cost,
            "reaction_hours": react_h,
            "window_bars": t_w,
            "lead_bars": lead,
            "jobs": jobs,
            "bootstrap": s.bootstrap,
            "block_windows": s.block_windows,
            "seed": s.seed,
            "exit_margin": float(policy_cfg.exit_margin),
            "min_dwell_s": float(policy_cfg.min_dwell_s),
            "close_factor": s.close_factor,
        },
        prices=px.source,
        step_hours=step_h,
        book=cbook.description,
        class_shares=cbook.shares(),
        test_windows=len(test_ok),
        train_windows=len([b for b in starts if b < test[0] and b in stats]),
        position_windows=int(agg.positions.sum()),
        folds=tuple(fold_rows),
        rules=tuple(rules),
        walk_forward_fixed=wf,
        comparison=comparison,
        notes=notes,
    )


def _bar_at(px: bd.PriceSet, day: str, what: str) -> int:
    from monitor.risk.checks import parse_day

    ts = parse_day(day, what)
    i = px.index_at(ts)
    if i >= px.size:
        raise InputError(f"{what} {day} is after the end of the prices ({px.day(px.size - 1)})")
    return i


def _policy_fn(
    cfg: _policy.PolicyConfig, mults: tuple[float, ...], rets: Array, b: int, hist: int, px: bd.PriceSet, step_h: float
) -> LevelFn:
    """The daemon's levels at each close of the window starting at bar ``b``: one
    :class:`~monitor.risk.policy.LevelCache` (a fresh one per window: the positions are new),
    the market state of the returns up to that close, ``observe_hours`` = the bar; the other
    alarm-cost settings from the same simulated curves (:func:`levels_at_cost_multiple`)."""
    cache = _policy.LevelCache()

    def fn(t: int, moved: Book) -> Array:
        end = b + t  # rets[j] is the return into close j + 1: rows < end are closes <= b + t
        market = _policy.MarketState(px.symbols, rets[max(0, end - hist) : end], step_h, None, px.source)
        pl = cache.levels_for(moved, market, cfg, float(px.times[end]), observe_hours=step_h)
        hard = cfg.hard_for(moved.market, moved.accounts)
        knobs = cfg.knobs_for(moved.market, moved.accounts) if cfg.overrides else None  # per-wallet / route
        return np.stack([pl.levels if k == 1.0 else levels_at_cost_multiple(pl, cfg, k, hard, knobs) for k in mults])

    return fn


def levels_at_cost_multiple(
    pl: _policy.PolicyLevels, cfg: _policy.PolicyConfig, k: float, hard: Array, knobs: _policy.PolicyKnobs | None = None
) -> Array:
    """``[P, 3]``: the levels :func:`monitor.risk.policy.position_levels` gives with every alarm
    cost times ``k``, from the curves it simulated (they do not depend on the costs) through
    :func:`monitor.risk.policy.levels_for_costs` with the config's probability bounds (tested
    equal to a direct call with the scaled config)."""
    alarm = k * np.asarray(cfg.alarm_cost_usd if knobs is None else knobs.alarm_cost_usd, dtype=np.float64)
    bounds = (cfg.min_probability, cfg.max_probability) if knobs is None else (knobs.min_probability,
                                                                               knobs.max_probability)  # fmt: skip
    levels, _binding = _policy.levels_for_costs(pl.curves, pl.miss_cost_usd, alarm, hard, bounds=bounds)
    return levels


def scaled_config(cfg: _policy.PolicyConfig, k: float) -> _policy.PolicyConfig:
    """``cfg`` with every alarm cost times ``k``."""
    a, b, c = (float(x) * k for x in cfg.alarm_cost_usd)
    return replace(cfg, alarm_cost_usd=(a, b, c))


def _alarm_cost(cfg: _policy.PolicyConfig, severity: str) -> float:
    return float(cfg.alarm_cost_usd[("watch", "warning", "critical").index(severity)])


def _reaction_hours(cfg: _policy.PolicyConfig, severity: str) -> float:
    return float(cfg.reaction_hours[("watch", "warning", "critical").index(severity)])


def _position_bonus(book: Book) -> Array:
    total = book.collateral.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        avg = np.where(total > 0, (book.collateral * book.bonus).sum(axis=1) / np.where(total > 0, total, 1.0), 1.0)
    out: Array = np.clip(avg - 1.0, 0.0, None)
    return out


def _collect(
    b: int,
    count: int,
    st: _Stats | None,
    stats: dict[int, _Stats],
    eligible: dict[int, int],
    say: Callable[[str], None],
    done: int,
    total: int,
    px: bd.PriceSet,
    is_test: bool,
) -> None:
    eligible[b] = count
    if st is not None:
        stats[b] = st
    if is_test or done % 10 == 0 or done == total:
        say(f"window {done}/{total} ({px.day(b)[:10]}{', test' if is_test else ''}): {count} positions")


def _window_stats(
    rep: WindowReplay, t_w: int, lead: int, step_h: float, onehot: NDArray[np.int64], bonus: Array, close_factor: float
) -> _Stats:
    sc = score_episodes(rep.began, rep.liq_bar, t_w, lead)
    missed = sc.liquidated & ~sc.warned
    return _Stats(
        liq=sc.liquidated.astype(np.int64) @ onehot,
        warned=sc.warned.astype(np.int64) @ onehot,
        fa=sc.false_alarms @ onehot,
        true=sc.true_alarms @ onehot,
        neutral=sc.neutral @ onehot,
        open0=sc.open_at_start.astype(np.int64) @ onehot,
        missed_usd=(np.where(missed, rep.debt_at_liq, 0.0) * bonus[None, :] * close_factor).sum(axis=1),
        liq_usd=(np.where(sc.liquidated, rep.debt_at_liq, 0.0) * bonus[None, :] * close_factor).sum(axis=1),
        positions=onehot.sum(axis=0),
        leads=[sc.lead_bars[r][np.isfinite(sc.lead_bars[r])] * step_h for r in range(sc.lead_bars.shape[0])],
    )


def _folds(
    px: bd.PriceSet, test: list[int], starts: list[int], t_w: int, lead: int, per_fold: int
) -> list[dict[str, Any]]:
    out = []
    for i in range(0, len(test), per_fold):
        chunk = test[i : i + per_fold]
        t0, t1 = chunk[0], chunk[-1] + t_w + lead
        crashes = [name for name, ev in HISTORICAL_EVENTS.items() if _overlaps(px, ev.start, ev.end, t0, t1)]
        train = [b for b in starts if b + t_w + lead <= t0]
        for name in crashes:  # held out of this fold's fit (by construction; checked)
            ev = HISTORICAL_EVENTS[name]
            train = [b for b in train if not _overlaps(px, ev.start, ev.end, b, b + t_w + lead)]
        assert all(b + t_w + lead <= t0 for b in train)
        out.append({"test": chunk, "train": train, "crashes": crashes})
    return out


def _overlaps(px: bd.PriceSet, start: str, end: str, b0: int, b1: int) -> bool:
    """Whether the days start..end (inclusive) meet the bars b0..b1 (their closes)."""
    lo = int(pd.Timestamp(start).timestamp())
    hi = int((pd.Timestamp(end) + pd.Timedelta(days=1)).timestamp())
    t0 = int(px.times[b0]) - int(px.step_hours * 3600)
    t1 = int(px.times[min(b1, px.size - 1)])
    return lo < t1 and hi > t0


def _bootstrap_weights(n: int, block: int, reps: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """``[B, n]``: how often each window is drawn by a circular moving-block bootstrap."""
    if reps == 0:
        return np.zeros((0, n), dtype=np.int64)
    b = min(block, n)
    n_blocks = math.ceil(n / b)
    first = rng.integers(0, n, (reps, n_blocks))
    idx = (first[:, :, None] + np.arange(b)[None, None, :]).reshape(reps, -1)[:, :n] % n
    out = np.zeros((reps, n), dtype=np.int64)
    np.add.at(out, (np.repeat(np.arange(reps), idx.shape[1]), idx.ravel()), 1)
    return out


@dataclass(slots=True)
class _Aggregate:
    liq: NDArray[np.int64]  # [W, R, C]
    warned: NDArray[np.int64]
    fa: NDArray[np.int64]
    true: NDArray[np.int64]
    open0: NDArray[np.int64]
    missed_usd: Array  # [W, R]
    liq_usd: Array  # [W, R]
    positions: NDArray[np.int64]  # [W, C]
    leads: list[list[Array]]  # [W][R]

    @staticmethod
    def build(stats: list[_Stats], n_rules: int) -> _Aggregate:
        def stack(name: str) -> Any:
            return np.stack([getattr(st, name) for st in stats])

        return _Aggregate(stack("liq"), stack("warned"), stack("fa"), stack("true") + stack("neutral"),
                          stack("open0"), stack("missed_usd"), stack("liq_usd"), stack("positions"),
                          [st.leads for st in stats])  # fmt: skip

    def pick(self, name: str, rule: NDArray[np.int64]) -> Any:
        arr = getattr(self, name)
        return arr[np.arange(arr.shape[0]), rule]

    def score(
        self,
        name: str,
        kind: str,
        level: float | None,
        mult: float | None,
        rule: NDArray[np.int64],
        boots: NDArray[np.int64],
        alarm_cost: float,
        class_names: list[str],
        *,
        lead_ci: bool,
    ) -> RuleScore:
        liq, warned, fa = self.pick("liq", rule), self.pick("warned", rule), self.pick("fa", rule)  # [W, C]
        true, open0 = self.pick("true", rule), self.pick("open0", rule)
        pos_w = self.positions.sum(axis=1)  # [W]
        liq_w, warned_w, fa_w = liq.sum(axis=1), warned.sum(axis=1), fa.sum(axis=1)
        leads = [self.leads[w][int(r)] for w, r in enumerate(rule)]
        all_leads = np.concatenate(leads) if leads else np.zeros(0)
        n_liq, n_warn, n_fa = int(liq_w.sum()), int(warned_w.sum()), int(fa_w.sum())
        positions = int(pos_w.sum())
        recall = n_warn / n_liq if n_liq else math.nan
        fa_rate = 1000.0 * n_fa / positions if positions else 0.0
        if boots.shape[0]:
            b_liq, b_warn, b_fa, b_pos = boots @ liq_w, boots @ warned_w, boots @ fa_w, boots @ pos_w
            with np.errstate(divide="ignore", invalid="ignore"):
                b_recall = np.where(b_liq > 0, b_warn / np.where(b_liq > 0, b_liq, 1), np.nan)
                b_rate = 1000.0 * b_fa / np.where(b_pos > 0, b_pos, 1)
            recall_ci = _ci(b_recall)
            rate_ci = _ci(b_rate)
            lead_interval = _lead_ci(leads, boots) if lead_ci else None
        else:
            recall_ci, rate_ci, lead_interval = (math.nan, math.nan), (math.nan, math.nan), None
        by_class: dict[str, dict[str, float | None]] = {}
        for c, cname in enumerate(class_names):
            lc, wc = int(liq[:, c].sum()), int(warned[:, c].sum())
            pc = int(self.positions[:, c].sum())
            by_class[cname] = {
                "position_windows": pc, "liquidations": lc, "warned": wc,
                "recall": (wc / lc) if lc else None, "false_alarm_episodes": int(fa[:, c].sum()),
                "false_alarms_per_1000": 1000.0 * float(fa[:, c].sum()) / pc if pc else 0.0,
            }  # fmt: skip
        alarms = int(fa_w.sum() + true.sum())
        missed = float(self.pick("missed_usd", rule).sum())
        liq_usd = float(self.pick("liq_usd", rule).sum())
        return RuleScore(
            name=name, kind=kind, level=level, cost_multiple=mult, liquidations=n_liq, warned=n_warn,
            recall=recall, recall_ci=recall_ci, false_alarm_episodes=n_fa, false_alarms_per_1000=fa_rate,
            false_alarms_per_1000_ci=rate_ci, true_alarm_episodes=int(true.sum()), open_at_start=int(open0.sum()),
            median_lead_hours=float(np.median(all_leads)) if all_leads.size else None,
            p10_lead_hours=float(np.percentile(all_leads, 10)) if all_leads.size else None,
            median_lead_ci=lead_interval, cost_usd=missed + alarm_cost * alarms,
            recall_usd=1.0 - missed / liq_usd if liq_usd > 0 else math.nan, by_class=by_class,
        )  # fmt: skip


def _ci(values: Array, level: float = 0.9) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (math.nan, math.nan)
    a = (1.0 - level) / 2.0
    return (float(np.quantile(v, a)), float(np.quantile(v, 1.0 - a)))


def _lead_ci(leads: list[Array], boots: NDArray[np.int64]) -> tuple[float, float] | None:
    sizes = np.array([x.size for x in leads])
    if sizes.sum() == 0:
        return None
    flat = np.concatenate(leads)
    owner = np.repeat(np.arange(len(leads)), sizes)
    meds = np.empty(boots.shape[0])
    for i, wts in enumerate(boots):
        rep = np.repeat(flat, wts[owner])
        meds[i] = np.median(rep) if rep.size else np.nan
    lo, hi = _ci(meds)
    return (lo, hi)


# -- the acceptance comparison -------------------------------------------------------------


def frontier_at(recalls: Array, fas: Array, target: float) -> float:
    """False alarms of the efficient frontier of ``(recall, fa)`` points at recall ``target``:
    the points no other point dominates (at least the recall with fewer false alarms, or more
    recall with no more), linear between them (a mix of two rules); below the lowest efficient
    recall, that point's false alarms. NaN when no point reaches ``target``."""
    r = np.asarray(recalls, dtype=np.float64)
    f = np.asarray(fas, dtype=np.float64)
    ok = np.isfinite(r) & np.isfinite(f)
    r, f = r[ok], f[ok]
    if r.size == 0 or not math.isfinite(target) or target > r.max() + 1e-12:
        return math.nan
    dominated = ((r[None, :] >= r[:, None]) & (f[None, :] < f[:, None])) | (
        (r[None, :] > r[:, None]) & (f[None, :] <= f[:, None])
    )
    keep = ~dominated.any(axis=1)
    r, f = r[keep], f[keep]
    order = np.lexsort((f, r))
    r, f = r[order], f[order]
    if target <= r[0]:
        return float(f[0])
    return float(np.interp(target, r, f))


def _compare(
    agg: _Aggregate,
    wf_rule: NDArray[np.int64],
    n_f: int,
    mults: tuple[float, ...],
    boots: NDArray[np.int64],
    rules: list[RuleScore],
    wf: RuleScore,
) -> dict[str, Any]:
    pol = [r for r in rules if r.kind == "policy"]
    target = wf.recall
    fa_at = frontier_at(np.array([p.recall for p in pol]), np.array([p.false_alarm_episodes for p in pol]), target)
    fixed_fa = wf.false_alarm_episodes
    reduction = 1.0 - fa_at / fixed_fa if fixed_fa and math.isfinite(fa_at) else math.nan
    reach = [p for p in pol if math.isfinite(p.recall) and p.recall >= target - 1e-12]
    deploy = min(reach, key=lambda p: p.false_alarm_episodes) if reach else None
    # bootstrap of the reduction (same windows for both)
    red_ci: tuple[float, float] = (math.nan, math.nan)
    if boots.shape[0] and math.isfinite(target):
        n_w = agg.liq.shape[0]
        wf_liq = agg.pick("liq", wf_rule).sum(axis=1)
        wf_warn = agg.pick("warned", wf_rule).sum(axis=1)
        wf_fa = agg.pick("fa", wf_rule).sum(axis=1)
        p_liq = agg.liq[:, n_f:].sum(axis=2)  # [W, K]
        p_warn = agg.warned[:, n_f:].sum(axis=2)
        p_fa = agg.fa[:, n_f:].sum(axis=2)
        vals = np.full(boots.shape[0], np.nan)
        for i, wts in enumerate(boots):
            assert wts.shape[0] == n_w
            bl, bw, bf = wts @ wf_liq, wts @ wf_warn, wts @ wf_fa
            if bl == 0 or bf == 0:
                continue
            pl, pw, pf = wts @ p_liq, wts @ p_warn, wts @ p_fa
            with np.errstate(divide="ignore", invalid="ignore"):
                prec = np.where(pl > 0, pw / np.where(pl > 0, pl, 1), np.nan)
            at = frontier_at(prec, pf.astype(np.float64), bw / bl)
            vals[i] = 1.0 - at / bf if math.isfinite(at) else np.nan
        red_ci = _ci(vals)
    lead_ok = (
        deploy is not None
        and deploy.median_lead_hours is not None
        and wf.median_lead_hours is not None
        and deploy.median_lead_hours >= wf.median_lead_hours
    )
    if not math.isfinite(reduction):
        red_ci = (math.nan, math.nan)
    fixed_rules = [r for r in rules if r.kind == "fixed"]
    f_rec = np.array([r.recall for r in fixed_rules])
    f_fa = np.array([float(r.false_alarm_episodes) for r in fixed_rules])
    family = []
    for p in pol:  # each policy setting against the whole fixed family at the same recall
        at = frontier_at(f_rec, f_fa, p.recall) if math.isfinite(p.recall) else math.nan
        family.append({
            "cost_multiple": p.cost_multiple, "recall": _nan(p.recall), "false_alarm_episodes": p.false_alarm_episodes,
            "fixed_family_false_alarm_episodes_at_recall": _nan(at),
            "reduction": _nan(1.0 - p.false_alarm_episodes / at) if math.isfinite(at) and at > 0 else None,
            "cost_usd": p.cost_usd,
        })  # fmt: skip
    stated = next((p for p in pol if p.cost_multiple == 1.0), None)
    return {
        "target_recall": _nan(target),
        "fixed_false_alarm_episodes": fixed_fa,
        "fixed_median_lead_hours": wf.median_lead_hours,
        "policy_max_recall": _nan(max((p.recall for p in pol if math.isfinite(p.recall)), default=math.nan)),
        "policy_false_alarm_episodes_at_target": _nan(fa_at),
        "false_alarm_reduction": _nan(reduction),
        "false_alarm_reduction_ci90": [_nan(x) for x in red_ci],
        "policy_setting_reaching_target": None if deploy is None else deploy.cost_multiple,
        "policy_setting_recall": None if deploy is None else _nan(deploy.recall),
        "policy_setting_false_alarm_episodes": None if deploy is None else deploy.false_alarm_episodes,
        "policy_setting_reduction": None
        if deploy is None or not fixed_fa
        else 1.0 - deploy.false_alarm_episodes / fixed_fa,
        "policy_median_lead_hours": None if deploy is None else deploy.median_lead_hours,
        "lead_not_shorter": bool(lead_ok),
        "accepted": bool(math.isfinite(reduction) and reduction >= 0.30 and lead_ok),
        "stated_cost_usd": {
            "fixed_walk_forward": wf.cost_usd,
            "policy_x1": None if stated is None else stated.cost_usd,
        },
        "policy_vs_fixed_family": family,
    }


def _notes(bp: bd.BookPrices, cbook: ClassedBook, eligible: dict[int, int], test: list[int]) -> tuple[str, ...]:
    notes = []
    if bp.synthetic:
        notes.append(f"{', '.join(bp.synthetic)}: no price in the data; SYNTHETIC = ETH x an LST/ETH ratio "
                     "(3.5 %/year drift, rare seeded depegs of 1-6 %)")  # fmt: skip
    if bp.pegged:
        notes.append(f"{', '.join(bp.pegged)}: held at 1 USD before their price data begins")
    if bp.missing:
        notes.append(f"{', '.join(bp.missing)}: no price data; their positions are left out")
    counts = [eligible[b] for b in test]
    if counts and min(counts) < cbook.book.size:
        notes.append(f"positions eligible per test window: {min(counts)}..{max(counts)} of {cbook.book.size} "
                     "(assets without price data over the window and its history are left out)")  # fmt: skip
    return tuple(notes)


def progress_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
