"""The charts (issue 16 part 8): 1,600 px wide, dates on time axes, log scale for loss tails,
rates per 1,000 position-days with the usual fixed levels as baselines, a warning when a
recommendation sits at the edge of its sweep."""

from __future__ import annotations

import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from monitor import plots
from monitor.errors import InputError

DAY = 86_400


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _positions(n: int = 48) -> list[dict[str, Any]]:
    t0 = 1_700_000_000
    return [{"block": 1000 + 300 * i, "timestamp": t0 + 3600 * i, "hf": 1.6 - 0.01 * i} for i in range(n)]


def _alerts() -> list[dict[str, Any]]:
    return [{"block": 1000 + 300 * 30 + 7, "severity": "warning", "hf": 1.30, "threshold": 1.32, "reason": "first"}]


def test_every_chart_is_1600_px_wide(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    made = [
        plots.hf_distribution(rng.uniform(0.8, 3, 200), rng.uniform(0.5, 3, 200), "t", tmp_path / "a.png"),
        plots.loss_distribution(rng.pareto(2.0, 500) * 1e5, 2e5, 6e5, "t", tmp_path / "b.png"),
        plots.calibration_curve([0.7, 0.8, 0.9], {"MC mean": [0, 1, 5]}, [2, 2, 2], 0.8, 0.85, "t",
                                tmp_path / "c.png", warning="at the edge"),
        plots.hf_history("0xabc", _positions(), _alerts(), tmp_path / "d.png"),
    ]
    for path in made:
        width, height = _png_size(path)
        assert width == plots.WIDTH_PX, (path.name, width)
        assert 400 < height < 1600


def test_hf_history_has_dates_on_its_time_axis_and_alerts_at_their_block_time() -> None:
    fig = plots.hf_history_figure("0xabc", _positions(), _alerts())
    ax = fig.axes[0]
    assert ax.get_xlabel() == "time (UTC)"
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert labels and not any(t.replace(",", "").isdigit() and len(t) > 5 for t in labels), labels
    import matplotlib.dates as mdates

    offsets = ax.collections[0].get_offsets()  # the alert marker, at the time of block 10,000's row
    expected = mdates.date2num(np.datetime64(1_700_000_000 + 3600 * 30, "s").astype("datetime64[us]").item())
    assert float(offsets[0][0]) == pytest.approx(expected)


def test_hf_history_without_timestamps_uses_whole_block_numbers() -> None:
    rows = [{"block": 20_000_000 + i, "hf": 1.5} for i in range(5)]
    fig = plots.hf_history_figure("0xabc", rows, [])
    ax = fig.axes[0]
    assert ax.get_xlabel() == "block"
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if rows[0]["block"] <= t <= rows[-1]["block"]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert ax.xaxis.get_offset_text().get_text() == "", "no '+2e7' offset: block numbers read as they are"


def test_loss_tail_is_on_a_log_scale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    real_save = plots._save

    def spy(fig: Any, path: Path) -> Path:
        seen["yscale"] = fig.axes[0].get_yscale()
        return real_save(fig, path)

    monkeypatch.setattr(plots, "_save", spy)
    plots.loss_distribution(np.random.default_rng(2).pareto(1.5, 400) * 1e4, 1e4, 9e4, "t", tmp_path / "l.png")
    assert seen["yscale"] == "log"


def _rule(kind: str, level: float, fa_per_1000_windows: float, recall: float, cost: float = 1.0) -> Any:
    return SimpleNamespace(kind=kind, level=level, false_alarms_per_1000=fa_per_1000_windows, recall=recall,
                           recall_ci=(recall - 0.05, recall + 0.05), cost_multiple=cost)  # fmt: skip


def test_frontier_rates_are_per_1000_position_days_with_fixed_baselines() -> None:
    levels = [1.05 + 0.05 * i for i in range(10)]
    fixed = [_rule("fixed", lv, 30.0 * i, 0.5 + 0.04 * i) for i, lv in enumerate(levels)]
    report = SimpleNamespace(
        rules=[*fixed, _rule("policy", 0.0, 60.0, 0.8, 1.0)],
        walk_forward_fixed=fixed[4],
        comparison={"false_alarm_reduction": 0.4},
        settings={"test_start": "2020-01-01", "test_end": "2023-08-13T00:00", "window_days": 30.0},
    )
    fig = plots.backtest_frontier_figure(report)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "false-alarm episodes per 1,000 position-days"
    line = ax.lines[0]
    assert max(line.get_xdata()) == pytest.approx(30.0 * 9 / 30.0), "per window / 30 days = per day"
    texts = {t.get_text() for t in ax.texts}
    assert {"fixed 1.10", "fixed 1.25", "fixed 1.50"} <= texts
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("baseline: fixed HF") for t in legend)


def test_a_plot_path_must_be_png(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"must end in \.png"):
        plots.hf_history("0xabc", _positions(3), [], tmp_path / "x.jpg")
