"""Silences, acknowledgements and oracle hysteresis: the pure rules and their store tables."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from monitor.alerts.hysteresis import PEG_Z_WARNING, linked_subjects, near_subjects, peg_near, step_oracle
from monitor.alerts.inhibit import attach_causes
from monitor.alerts.silences import acknowledged, matches, parse_duration, silencing
from monitor.config.alerts import OracleConfig
from monitor.errors import InputError
from monitor.models import MarketSnapshot
from monitor.risk.anomalies import Anomaly, AnomalyDetector
from monitor.store import Store

ACCOUNT = "0x00000000000000000000000000000000000000A1"
T0 = 1_700_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "s.db", clock=lambda: T0) as s:
        yield s


@pytest.mark.parametrize(("text", "seconds"), [("30m", 1800), ("6h", 21600), ("1d12h", 129600), ("2w", 1209600),
                                                ("1.5h", 5400), (" 90 m ", 5400)])  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "6", "h", "-1h", "0h", "6x", "6h junk", "400d"])
def test_bad_durations_are_one_line_errors(text: str) -> None:
    with pytest.raises(InputError, match=r"duration|year"):
        parse_duration(text)


def alert(subject: str = ACCOUNT, market: str = "m", severity: str = "warning", previous: str = "ok") -> dict[str, Any]:
    return {"subject": subject, "market": market, "severity": severity, "previous": previous}


def test_silence_matchers_all_must_match_and_severity_means_at_most() -> None:
    assert matches({"account": ACCOUNT.lower()}, alert())  # case-insensitive
    assert not matches({"account": ACCOUNT, "market": "other"}, alert())
    assert matches({"market": "m"}, alert(subject="oracle:jump:WETH"))
    assert matches({"severity": "warning"}, alert(severity="watch"))
    assert matches({"severity": "warning"}, alert(severity="warning"))
    assert not matches({"severity": "warning"}, alert(severity="critical"))  # an escalation comes through
    # a resolution is judged by what it resolves
    assert matches({"severity": "warning"}, alert(severity="ok", previous="warning"))
    assert not matches({"severity": "warning"}, alert(severity="ok", previous="liquidatable"))
    assert silencing([{"id": 1, "market": "x"}, {"id": 2, "account": ACCOUNT}], alert())["id"] == 2  # type: ignore[index]
    assert silencing([{"id": 1, "market": "x"}], alert()) is None


def test_acknowledged_covers_repeats_up_to_its_severity() -> None:
    ack = {"severity": "warning"}
    assert acknowledged(ack, "warning") and acknowledged(ack, "watch")
    assert not acknowledged(ack, "critical") and not acknowledged(None, "watch")


def test_silences_table_add_list_expire(store: Store) -> None:
    a = store.add_silence(account=ACCOUNT, market=None, severity="warning", starts_at=T0, ends_at=T0 + 3600,
                          comment="rebalancing")  # fmt: skip
    b = store.add_silence(account=None, market="m", severity=None, starts_at=T0, ends_at=T0 + 60, comment="x")
    assert [s["id"] for s in store.silences(active_at=T0 + 10)] == [a, b]
    assert [s["id"] for s in store.silences(active_at=T0 + 60)] == [a]  # b ended
    store.expire_silence(a, T0 + 100)
    assert store.silences(active_at=T0 + 101) == []
    assert [s["id"] for s in store.silences()] == [b, a]  # every one, newest first
    with pytest.raises(InputError, match="already over"):
        store.expire_silence(a, T0 + 200)
    with pytest.raises(InputError, match="does not exist"):
        store.expire_silence(999, T0)


def record(store: Store, severity: str, previous: str, reason: str, subject: str = ACCOUNT) -> int:
    row = {"subject": subject, "severity": severity, "previous": previous, "reason": reason, "hf": 1.1,
           "threshold": 1.2, "detail": json.dumps({"severity": severity, "title": "t", "lines": []})}  # fmt: skip
    return store.record_alerts("m", 1, [], [(row, [])])[0]


def test_an_ack_lasts_until_the_episode_escalates_or_ends(store: Store) -> None:
    first = record(store, "warning", "ok", "first")
    (latest,) = store.latest_alerts(ACCOUNT.lower())  # the subject is matched case-insensitively
    assert latest["id"] == first
    store.add_ack("m", ACCOUNT, first, "warning", "on it", T0)
    assert set(store.active_acks("m")) == {ACCOUNT}
    record(store, "warning", "warning", "repeat")  # a repeat does not end it (it is what it stops)
    record(store, "watch", "warning", "severity_down")
    assert set(store.active_acks("m")) == {ACCOUNT}
    record(store, "critical", "watch", "severity_up")  # escalation: reminders come again
    assert store.active_acks("m") == {}
    again = record(store, "critical", "critical", "repeat")
    store.add_ack("m", ACCOUNT, again, "critical", "", T0)
    record(store, "ok", "critical", "resolved")  # the episode is over: a new one is not acknowledged
    assert store.active_acks("m") == {}


# ----------------------------------------------------------------------------- hysteresis

CFG = OracleConfig(resolve_dwell_blocks=3, resolve_dwell_s=600.0, exit_band=0.2)


def jump(severity: str = "warning") -> Anomaly:
    return Anomaly("jump", "USDC", severity, "USDC moved", 7.0)


def run(observed: list[Anomaly | None], cfg: OracleConfig = CFG, step_s: float = 12.0) -> list[str]:
    """The severity in force per block, state kept as the pipeline keeps it."""
    state: dict[str, Any] | None = None
    out = []
    for i, anomaly in enumerate(observed):
        block, now = 144 + i, T0 + i * step_s
        step = step_oracle(state, anomaly, False, now, block, cfg)
        if state is None or step.severity != state["severity"]:
            state = {"severity": step.severity, "since": now, "last_block": block, "seen_at": None, "seen_block": None}
        if step.seen:
            state |= {"seen_at": now, "seen_block": block}
        out.append(step.severity)
    return out


def test_a_jump_that_comes_and_goes_does_not_flap() -> None:
    # blocks 144 (jump), 145 (gone), 146 (jump), then quiet
    seen = [jump(), None, jump(), None, None, None, None]
    without = run(seen, OracleConfig(resolve_dwell_blocks=0, resolve_dwell_s=0))
    assert without == ["warning", "ok", "warning", "ok", "ok", "ok", "ok"]  # what happened before: it flapped
    # with 12 s blocks the 600 s dwell decides: held for 50 blocks after the last sighting
    assert run(seen) == ["warning"] * 7
    quiet = run([jump(), *([None] * 60)])
    assert quiet.index("ok") == 50 and set(quiet[50:]) == {"ok"}
    # with two-hour steps (the devnet replay) the 3-block dwell decides
    assert run(seen, step_s=7200) == ["warning", "warning", "warning", "warning", "warning", "ok", "ok"]


def test_escalation_is_immediate_and_a_milder_anomaly_steps_down_only_after_the_dwell() -> None:
    got = run([jump(), jump("critical"), jump(), jump(), jump(), jump()], step_s=7200)
    assert got == ["warning", "critical", "critical", "critical", "warning", "warning"]


def test_divergence_within_the_exit_band_holds_but_never_starts_an_episode() -> None:
    near = near_subjects({"WETH": 2017.0, "WBTC": 30_000.0}, {"WETH": 2000.0, "WBTC": 30_000.0},
                         OracleConfig(divergence_warning_bps=100, exit_band=0.2))  # fmt: skip
    assert near == {"oracle:divergence:WETH"}  # 85 bps >= 80 bps; WBTC at 0
    before = {"severity": "warning", "since": T0, "last_block": 1, "seen_at": T0, "seen_block": 1}
    held = step_oracle(before, None, True, T0 + 10_000, 100, CFG)
    assert (held.severity, held.seen) == ("warning", True)
    assert step_oracle(None, None, True, T0, 1, CFG).severity == "ok"


def test_a_jump_and_a_sustained_move_of_one_asset_hold_each_other() -> None:
    linked = linked_subjects(["oracle:jump:WBTC", "oracle:drift:WETH", "oracle:stale:DAI"])
    assert linked == {"oracle:drift:WBTC", "oracle:jump:WETH"}


# ----------------------------------------------------------------------------- inhibition


def test_an_oracle_alert_of_the_tick_becomes_the_cause_of_the_positions_holding_its_asset() -> None:
    def leg(symbol: str, collateral: int = 0, debt: int = 0) -> SimpleNamespace:
        return SimpleNamespace(symbol=symbol, collateral=collateral, debt=debt)

    positions = [
        SimpleNamespace(account="0xA", legs=(leg("WETH", collateral=5), leg("USDC", debt=3))),  # WETH collateral
        SimpleNamespace(account="0xB", legs=(leg("WBTC", collateral=1), leg("WETH", debt=2))),  # WETH debt
        SimpleNamespace(account="0xC", legs=(leg("WBTC", collateral=1), leg("WETH"), leg("DAI", debt=1))),  # none
        SimpleNamespace(account="0xD", legs=(leg("WETH", collateral=1), leg("DAI", debt=1))),
    ]
    snapshot = cast(MarketSnapshot, SimpleNamespace(positions=positions))

    def row(subject: str, severity: str, reason: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return {"subject": subject, "severity": severity, "reason": reason}, []

    alerts = [row("0xA", "warning", "first"), row("0xB", "critical", "severity_up"), row("0xC", "warning", "first"),
              row("0xD", "warning", "repeat"), row("oracle:jump:WETH", "critical", "first"),
              row("oracle:drift:WETH", "warning", "first"), row("oracle:stale:WBTC", "ok", "resolved")]  # fmt: skip
    assert attach_causes(snapshot, alerts) == 2
    causes = {r["subject"]: r.get("cause") for r, _ in alerts}
    assert causes["0xA"] == causes["0xB"] == "oracle:jump:WETH"  # the most severe oracle alert on the asset
    assert causes["0xC"] is None  # a zero WETH leg: not held; a resolved WBTC check causes nothing
    assert causes["0xD"] is None  # a repeat reminder was not moved by anything


def test_a_depeg_within_the_exit_band_is_near() -> None:
    assert inspect.signature(AnomalyDetector).parameters["peg_z_warning"].default == PEG_Z_WARNING
    near = peg_near({"USDC": 5.0, "DAI": 4.7, "USDT": 0.3}, OracleConfig(exit_band=0.2))
    assert near == {"oracle:depeg:USDC"}  # 5.0 >= 0.8 x 6; DAI at 4.7 is below the band
