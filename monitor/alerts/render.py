"""From an assessment (or an oracle anomaly) and its dedup reason to a :class:`Message`."""

from __future__ import annotations

from monitor.alerts.assessment import Assessment
from monitor.alerts.message import Message
from monitor.config.alerts import AlertsConfig
from monitor.risk.anomalies import Anomaly


def render(market: str, block: int, a: Assessment, reason: str, previous: str, cfg: AlertsConfig) -> Message:
    """The alert message: HF, the level in force and why ("SOL/USDC, 24 h: warn at 1.31 ..."),
    the liquidation price of the main collateral and what restores ``target_hf``."""
    title = f"{market}: {a.account} HF {a.hf:.4f}"
    lines = [f"market {market}, block {block}", f"account {a.account}"]
    if reason == "resolved":
        lines.append(f"health factor {a.hf:.4f} is back above its alert level {a.level:.4f} (was {previous})")
    else:
        lines.append(
            f"health factor {a.hf:.4f}, {a.severity} level {a.level:.4f}; "
            f"P(HF < 1 within {a.horizon_hours:.3g} h) = {a.probability:.2%}"
        )
    if a.level_reason:
        lines.append(f"level in force: {a.level_reason}")
    if a.liquidation_price is not None:
        move = (a.liquidation_price / a.price - 1) * 100 if a.price else 0.0
        lines.append(
            f"liquidation price of {a.main_collateral}: {a.liquidation_price:,.2f} USD "
            f"({move:+.1f}% from {a.price:,.2f})"
        )
    if reason != "resolved" and (a.repay_usd > 0 or a.add_usd > 0):
        lines.append(
            f"to reach HF {cfg.target_hf:g}: repay {a.repay_usd:,.2f} USD of debt, or add {a.add_usd:,.2f} USD of "
            f"{a.main_collateral}"
        )
    lines.append(f"reason: {reason.replace('_', ' ')} (was {previous})")
    return Message(key="", severity="resolved" if reason == "resolved" else a.severity, title=title, lines=tuple(lines))


def render_anomaly(market: str, block: int, anomaly: Anomaly | None, subject: str, reason: str) -> Message:
    if anomaly is None:
        return Message("", "resolved", f"{market}: oracle {subject.split(':', 1)[1]}",
                       (f"market {market}, block {block}", "the oracle check passes again"))  # fmt: skip
    return Message(
        "", anomaly.severity, f"{market}: oracle {anomaly.kind} on {anomaly.asset}",
        (f"market {market}, block {block}", anomaly.detail, f"reason: {reason.replace('_', ' ')}"),
    )  # fmt: skip
