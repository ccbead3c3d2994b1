"""The same walk-forward run on an hourly prices file (a seeded synthetic file written and read
back through the --prices parser): bars, windows, leads and the comparison in hours."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monitor.risk import backtest as bt
from monitor.risk import backtest_data as bd
from monitor.risk.backtest_book import realistic_book
from monitor.risk.policy import PolicyConfig
from monitor.risk.synthetic_prices import SyntheticSpec, generate, write_csv


def test_walk_forward_on_an_hourly_file(tmp_path: Path) -> None:
    path = write_csv(generate(SyntheticSpec(days=60, seed=3)), tmp_path / "hourly.csv")
    px = bd.load_prices_csv(path)
    assert px.step_hours == 1.0
    s = bt.Settings(
        window_days=7, lead_hours=24, fold_windows=2, test_start="2024-01-29", history_days=21,
        min_history_days=14, bootstrap=100, cost_multiples=(1.0, 10.0), fixed_levels=(1.0, 1.05, 1.1, 1.2, 1.4),
    )  # fmt: skip
    report = bt.run_backtest(realistic_book(80, seed=3), px, PolicyConfig(paths=300), s)
    assert report.step_hours == 1.0
    assert report.settings["window_bars"] == 168 and report.settings["lead_bars"] == 24
    assert report.test_windows == 4 and report.train_windows >= 1
    kinds = [r.kind for r in report.rules]
    assert kinds.count("fixed") == 5 and kinds.count("policy") == 2
    liq = {r.liquidations for r in report.rules}
    assert len(liq) == 1 and liq.pop() > 0  # no reactions: every rule sees the same liquidations
    for r in (*report.rules, report.walk_forward_fixed):
        assert 0.0 <= r.recall <= 1.0
        if r.median_lead_hours is not None:  # leads in hours, within the lead window
            assert 1.0 <= r.median_lead_hours <= 24.0
    assert report.rules[0].warned == 0  # HF <= 1.00 never warns before a liquidation
    assert any(r.warned > 0 for r in report.policy_rules())
    levels = [f["fixed_level"] for f in report.folds]
    assert all(level in (1.0, 1.05, 1.1, 1.2, 1.4) for level in levels)
    c = report.comparison
    assert c["target_recall"] == report.walk_forward_fixed.recall
    assert isinstance(c["accepted"], bool) and len(c["policy_vs_fixed_family"]) == 2
    assert np.isfinite(report.walk_forward_fixed.cost_usd)
