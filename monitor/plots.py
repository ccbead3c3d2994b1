"""PNG charts for the CLI (matplotlib, headless), all :data:`WIDTH_PX` wide: dates on time axes,
log scales where a tail matters, rates normalised per 1,000 position-days, a warning on the
figure when a recommendation sits at the edge of what was swept."""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monitor.errors import InputError
from monitor.risk.book import Array


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


WIDTH_PX = 1600  # every chart, whatever its aspect


def _save(fig: Any, path: Path) -> Path:
    if path.suffix.lower() != ".png":
        raise InputError(f"--plot {path}: the file name must end in .png")
    fig.tight_layout()  # margins inside the figure: the saved width is exactly WIDTH_PX
    try:
        fig.savefig(path, dpi=WIDTH_PX / fig.get_figwidth())
    except OSError as exc:
        raise InputError(f"--plot {path}: cannot write it ({exc.strerror})") from exc
    return path


def hf_distribution(before: Array, after: Array, title: str, path: Path) -> Path:
    """Histogram of health factors before and after a scenario (HF capped at 4 for display)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bins = np.linspace(0, 4, 81)
    finite_before = np.clip(before[np.isfinite(before)], 0, 4)
    finite_after = np.clip(after[np.isfinite(after)], 0, 4)
    ax.hist(finite_before, bins=bins, alpha=0.55, label="before", color="#4c72b0")
    ax.hist(finite_after, bins=bins, alpha=0.55, label="after", color="#dd8452")
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1, label="HF = 1 (liquidatable below)")
    ax.set_xlabel("health factor (capped at 4)")
    ax.set_ylabel("positions")
    ax.set_title(title)
    ax.legend()
    path = _save(fig, path)
    plt.close(fig)
    return path


def loss_distribution(bad_debt: Array, var95: float, var99: float, title: str, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.hist(bad_debt, bins=60, color="#55a868")
    ax.set_yscale("log")  # the tail is a few scenarios: on a linear axis it is invisible
    for value, label in ((var95, "VaR 95"), (var99, "VaR 99")):
        ax.axvline(value, linestyle="--", color="black", linewidth=1)
        ax.text(value, ax.get_ylim()[1] * 0.5, f" {label}\n {value:,.0f}", fontsize=8)
    ax.set_xlabel("bad debt (USD)")
    ax.set_ylabel("scenarios (log scale)")
    ax.set_title(title)
    path = _save(fig, path)
    plt.close(fig)
    return path


def calibration_curve(
    lts: Sequence[float],
    series: dict[str, Sequence[float]],
    tolerance_usd: Sequence[float],
    recommended: float | None,
    current: float,
    title: str,
    path: Path,
    *,
    crashes: Mapping[str, Sequence[float]] | None = None,
    crash_tolerance_usd: Sequence[float] | None = None,
    warning: str | None = None,
) -> Path:
    """LT -> bad debt: the Monte Carlo series (left) and each named crash apart (right, dashed), each
    against its own tolerance; the current and recommended LT marked; ``warning`` (e.g. the
    recommendation at the sweep's edge) printed in red on the figure."""
    plt = _pyplot()
    x = np.asarray(lts) * 100
    panels = 2 if crashes else 1
    fig, axes = plt.subplots(1, panels, figsize=(8 * panels, 4.5), squeeze=False)
    ax = axes[0][0]
    for label, values in series.items():
        ax.plot(x, values, marker=".", label=label)
    ax.plot(x, tolerance_usd, color="grey", linestyle=":", label="Monte Carlo tolerance x debt")
    ax.set_title("Monte Carlo", fontsize=10)
    if crashes:
        cx = axes[0][1]
        for name, values in crashes.items():
            cx.plot(x, values, linestyle="--", marker=".", label=f"crash {name}")
        if crash_tolerance_usd is not None:
            cx.plot(x, crash_tolerance_usd, color="grey", linestyle=":", label="crash tolerance x debt")
        cx.set_title("named crashes (each tested apart)", fontsize=10)
    for a in axes[0]:
        a.axvline(current * 100, color="#c44e52", linestyle="--", label=f"current LT {current:.0%}")
        if recommended is not None:
            a.axvline(recommended * 100, color="#55a868", linestyle="-", label=f"recommended LT {recommended:.0%}")
        a.set_xlabel("liquidation threshold (%)")
        a.set_ylabel("bad debt (USD)")
        a.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    if warning:
        fig.text(0.5, 0.01, f"WARNING: {warning}", color="#c44e52", ha="center", fontsize=9)
    path = _save(fig, path)
    plt.close(fig)
    return path


_SEVERITY_COLOURS = {"watch": "#8da0cb", "warning": "#fc8d62", "critical": "#e41a1c", "liquidatable": "#000000",
                     "ok": "#66c2a5"}  # fmt: skip


def hf_history(account: str, positions: Sequence[Any], alerts: Sequence[Any], path: Path) -> Path:
    """HF over time (UTC dates when the rows have timestamps, else block numbers) with the alert
    thresholds in force and a marker per alert sent."""
    plt = _pyplot()
    fig = hf_history_figure(account, positions, alerts)
    path = _save(fig, path)
    plt.close(fig)
    return path


def _when(row: Mapping[str, Any], dated: bool) -> Any:
    import datetime as dt

    if dated:
        return dt.datetime.fromtimestamp(float(row["timestamp"]), dt.UTC)
    return row["block"]


def hf_history_figure(account: str, positions: Sequence[Any], alerts: Sequence[Any]) -> Any:
    """The figure of :func:`hf_history` (tests read its axes)."""
    import matplotlib.dates as mdates
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(12, 5.4))
    dated = bool(positions) and all(p.get("timestamp") for p in positions)
    xs = [_when(p, dated) for p in positions]
    hfs = [p["hf"] if p["hf"] is not None else np.nan for p in positions]
    ax.plot(xs, hfs, color="#4c72b0", label="health factor", drawstyle="steps-post")
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label="liquidation (HF 1)")
    blocks = [p["block"] for p in positions]
    for a in alerts:
        colour = _SEVERITY_COLOURS.get(a["severity"], "grey")
        # an alert is placed at its block's time: the newest position row at or before it
        i = max(0, bisect.bisect_right(blocks, a["block"]) - 1)
        at = xs[i] if dated and xs else a["block"]
        if a["hf"] is not None:
            ax.scatter([at], [a["hf"]], color=colour, zorder=3, s=40)
            ax.annotate(a["severity"], (at, a["hf"]), fontsize=7, textcoords="offset points", xytext=(4, 6))
        if a["threshold"] is not None and a["severity"] not in ("ok", "liquidatable") and xs:
            ax.hlines(a["threshold"], at, xs[-1], colors=colour, linestyles=":", linewidth=1)
    if dated:
        locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
        ax.set_xlabel("time (UTC)")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.ticklabel_format(axis="x", style="plain", useOffset=False)
        ax.set_xlabel("block")
    ax.set_ylabel("health factor")
    ax.set_title(f"{account}: HF, thresholds in force (dotted) and alerts sent")
    finite = [h for h in hfs if np.isfinite(h)]
    if finite:
        ax.set_ylim(max(0.0, min(finite) * 0.9), min(4.0, max(finite) * 1.1))
    ax.legend(fontsize=8, loc="upper right")
    return fig


def backtest_frontier(report: Any, path: Path) -> Path:
    """The backtest frontier: false-alarm episodes per 1,000 position-windows (x) against recall
    (y); the fixed family as a line with its 90 % CI band (recall), the policy at each cost
    setting as points, the walk-forward fixed level marked."""
    plt = _pyplot()
    fig = backtest_frontier_figure(report)
    path = _save(fig, path)
    plt.close(fig)
    return path


BASELINE_LEVELS = (1.1, 1.25, 1.5)  # the fixed levels people use, marked on the frontier


def backtest_frontier_figure(report: Any) -> Any:
    """The figure of :func:`backtest_frontier`; rates per 1,000 position-DAYS (windows of different
    length compare), the usual fixed levels marked as baselines."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(12, 7))
    per_day = 1.0 / float(report.settings.get("window_days", 30.0))
    fixed = [r for r in report.rules if r.kind == "fixed" and np.isfinite(r.recall)]
    policy = [r for r in report.rules if r.kind == "policy" and np.isfinite(r.recall)]
    if fixed:
        x = np.array([r.false_alarms_per_1000 * per_day for r in fixed])
        y = np.array([r.recall for r in fixed])
        lo = np.array([r.recall_ci[0] for r in fixed])
        hi = np.array([r.recall_ci[1] for r in fixed])
        order = np.argsort(x)
        ax.plot(x[order], y[order], color="#4c72b0", marker=".", label="fixed HF levels")
        ok = np.isfinite(lo) & np.isfinite(hi)
        if ok.any():
            o = order[ok[order]]
            ax.fill_between(x[o], lo[o], hi[o], color="#4c72b0", alpha=0.18, label="fixed: recall CI 90 %")
        for r in fixed[:: max(1, len(fixed) // 8)]:
            ax.annotate(f"{r.level:.2f}", (r.false_alarms_per_1000 * per_day, r.recall), fontsize=7, color="#4c72b0",
                        textcoords="offset points", xytext=(3, -9))  # fmt: skip
        for base in BASELINE_LEVELS:
            near = min(fixed, key=lambda r: abs(r.level - base))
            if abs(near.level - base) < 0.011:
                ax.scatter([near.false_alarms_per_1000 * per_day], [near.recall], marker="s", s=50, color="#4c72b0",
                           zorder=4, label=f"baseline: fixed HF {base:.2f}" if base == BASELINE_LEVELS[0] else None)
                ax.annotate(f"fixed {base:.2f}", (near.false_alarms_per_1000 * per_day, near.recall), fontsize=8,
                            color="#4c72b0", textcoords="offset points", xytext=(6, 4))  # fmt: skip
    if policy:
        px = [r.false_alarms_per_1000 * per_day for r in policy]
        py = [r.recall for r in policy]
        ax.errorbar(
            px, py,
            yerr=[[max(0.0, r.recall - r.recall_ci[0]) if np.isfinite(r.recall_ci[0]) else 0.0 for r in policy],
                  [max(0.0, r.recall_ci[1] - r.recall) if np.isfinite(r.recall_ci[1]) else 0.0 for r in policy]],
            fmt="o", color="#dd8452", label="policy (alarm-cost multiples)", capsize=2,
        )  # fmt: skip
        for r in policy:
            ax.annotate(f"x{r.cost_multiple:g}", (r.false_alarms_per_1000 * per_day, r.recall), fontsize=7,
                        color="#dd8452", textcoords="offset points", xytext=(4, 4))  # fmt: skip
    wf = report.walk_forward_fixed
    if np.isfinite(wf.recall):
        ax.scatter([wf.false_alarms_per_1000 * per_day], [wf.recall], marker="*", s=180, color="#c44e52", zorder=5,
                   label="best fixed level (walk-forward)")  # fmt: skip
    c = report.comparison
    red = c.get("false_alarm_reduction")
    verdict = (
        "frontier short of the fixed recall" if red is None else f"{red:.0%} fewer false alarms at the fixed recall"
    )
    ax.set_xlabel("false-alarm episodes per 1,000 position-days")
    ax.set_ylabel("recall (liquidations warned within the lead window)")
    ax.set_title(f"out of sample {report.settings['test_start']} .. {report.settings['test_end'][:10]}: "
                 f"policy: {verdict}", fontsize=10)  # fmt: skip
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)
    return fig
