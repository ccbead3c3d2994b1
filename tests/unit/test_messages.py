"""Messages worth reading on a phone (issue 15 part 1): every message kind on every channel
format against committed snapshots (tests/snapshots/messages/), the first line within 80
characters over many generated positions, token amounts exact to the shown decimals (from
the exact integer targets), links present, no internal reason codes, safe templates.

Regenerate the snapshots after an intended change with ``LIQMON_UPDATE_SNAPSHOTS=1``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal, localcontext
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.alerts.advice import TokenAmount, advise
from monitor.alerts.assessment import Assessment
from monitor.alerts.console import ConsoleChannel, console_line
from monitor.alerts.email import EmailChannel
from monitor.alerts.message import FIRST_LINE_MAX, Message
from monitor.alerts.pipeline import message_from_json, message_json
from monitor.alerts.render import (
    SUMMARY_MAX,
    duration_text,
    episode_start,
    hf_text,
    plain_change,
    render,
    render_anomaly,
    render_test,
)
from monitor.alerts.templates import FIELDS, check_template, fill
from monitor.config.alerts import AlertsConfig, parse_alerts
from monitor.config.validate import Validator
from monitor.errors import ConfigError
from monitor.models import RAY, WAD, AssetLeg, EModeCategory, MarketSnapshot, Position, Reserve
from monitor.risk.anomalies import Anomaly
from monitor.risk.health import account_data, categories_by_id, rules_of
from monitor.risk.liquidation import (
    after_repay,
    after_supply,
    exact_liquidation_price,
    exact_repay_to_target,
    exact_supply_to_target,
)
from monitor.wadray import ray_mul

SNAPSHOTS = Path(__file__).resolve().parents[1] / "snapshots" / "messages"
UPDATE = os.environ.get("LIQMON_UPDATE_SNAPSHOTS") == "1"
USD = 10**8
ZERO = "0x" + "0" * 40
E18, E6, E8 = 10**18, 10**6, 10**8
TREASURY = "0x9DDb84E474ECeb08b71D815430CF13b2ea6E50fe"
OTHER = "0xC1B9933BFcEaC6f4692ef1A13A223956Cb6b3679"
BLOCK_TIME = 1_583_971_200  # 2020-03-12 00:00 UTC
REASON_CODES = re.compile(r"\breason\b|severity_up|severity_down|\bfirst\b|\(was ok\)|_")


def _reserve(symbol: str, rid: int, decimals: int, ltv: int, lt: int, price: int, **kw: Any) -> Reserve:
    return Reserve(
        f"0x{rid + 1:040x}",
        symbol,
        decimals,
        rid,
        ltv,
        lt,
        10_500,
        0,
        True,
        False,
        True,
        ZERO,
        ZERO,
        ZERO,
        kw.get("li", RAY),
        kw.get("vi", RAY),
        price,
    )


WETH = _reserve("WETH", 0, 18, 8_000, 8_250, 1_953_10 * USD // 100)
USDC = _reserve("USDC", 1, 6, 7_500, 7_800, USD, li=RAY + RAY // 37, vi=RAY + RAY // 11)
WBTC = _reserve("WBTC", 2, 8, 7_000, 7_500, 7_910_09 * USD // 100)
RESERVES = (WETH, USDC, WBTC)


def _position(
    account: str,
    coll: Sequence[int],
    debt: Sequence[int],
    reserves: Sequence[Reserve] = RESERVES,
    emode: int = 0,
    revision: int = 0,
) -> Position:
    """Scaled balances ``coll`` / ``debt`` per reserve; totals and HF recomputed (Aave 3.0 rules)."""
    legs, cfg = [], 0
    for r, c, d in zip(reserves, coll, debt, strict=True):
        owed = ray_mul(d, r.variable_borrow_index)
        legs.append(AssetLeg(r.asset, r.symbol, c, ray_mul(c, r.liquidity_index), d, owed, 0, c > 0))
        cfg |= (1 << (2 * r.reserve_id + 1)) if c else 0
        cfg |= (1 << (2 * r.reserve_id)) if d else 0
    pos = Position("aave-v3", account, 100, 0, 0, 0, 0, 0, 0, emode, cfg, tuple(legs))
    snap = _snapshot([pos], reserves, revision=revision)
    data = account_data(pos.legs, reserves, emode, cfg, categories_by_id(snap.emode_categories), rules=rules_of(snap))
    return replace(
        pos,
        health_factor=data.health_factor,
        total_collateral_base=data.total_collateral_base,
        total_debt_base=data.total_debt_base,
    )


def _snapshot(
    positions: Sequence[Position],
    reserves: Sequence[Reserve] = RESERVES,
    *,
    chain_id: int = 1,
    market: str = "aave-v3",
    protocol: str = "aave_v3",
    revision: int = 0,
) -> MarketSnapshot:
    return MarketSnapshot(
        market,
        protocol,
        chain_id,
        19_876_543,
        "0x" + "11" * 32,
        BLOCK_TIME,
        USD,
        tuple(reserves),
        (EModeCategory(1, 9_000, 9_300, 10_100, ZERO, "ETH"),),
        tuple(positions),
        revision=revision,
    )


def _config(**extra: Any) -> AlertsConfig:
    raw = {"labels": {TREASURY: "treasury"}, **extra}
    return parse_alerts(Validator("test.yaml", {}), raw, ["aave-v3"])


CFG = _config()
# 10 WETH (19,531 USD, LT 82.5 %) against 13,600 USDC of scaled debt (x 1.0909 index): HF ~1.09
WARN_POS = _position(TREASURY, (10 * E18, 0, 0), (0, 13_600 * E6, 0))
SNAP = _snapshot([WARN_POS])


def _assessment(pos: Position, severity: str, level: float, probability: float = 0.034, **kw: Any) -> Assessment:
    return Assessment(
        account=pos.account,
        hf=pos.health_factor / WAD,
        severity=severity,
        since=BLOCK_TIME,
        level=level,
        probability=probability,
        main_collateral="WETH",
        liquidation_price=None,
        price=1953.1,
        repay_usd=0.0,
        add_usd=0.0,
        levels=kw.get("levels", (1.40, 1.25, 1.10)),
        level_reason=kw.get("reason", "WETH/USDC, 48 h: warn at 1.25 (vol 2.3 %/day)"),
        position_class="WETH/USDC",
        horizon_hours=kw.get("horizon", 48.0),
    )


def _kinds() -> dict[str, Message]:
    """One message of every kind, from the same fixed inputs."""
    crit_pos = _position(TREASURY, (10 * E18, 0, 0), (0, 14_500 * E6, 0))
    liq_reserves = (replace(WETH, price=2_600 * USD), USDC, WBTC)
    liq_pos = _position(OTHER, (0, 0, 1 * E8), (1 * E18, 3_200 * E6, 0), reserves=liq_reserves)  # WBTC vs WETH+USDC
    liq_snap = _snapshot([liq_pos], liq_reserves)
    crit_snap = _snapshot([crit_pos])
    watch = _assessment(WARN_POS, "watch", 1.40, probability=0.0004, reason="")
    liq = _assessment(liq_pos, "liquidatable", 1.0, 0.9)
    back = replace(_assessment(WARN_POS, "ok", 1.40), hf=1.62)
    jump = Anomaly(
        "jump",
        "WETH",
        "critical",
        "WETH moved -23.90% (1953.1 -> 1486.3) in 6 h: 11.2 sigma at 4.1 % daily volatility",
        11.2,
    )
    stale = Anomaly("stale", "USDC", "warning", "USDC price not updated for 26 h (heartbeat 24 h + margin 5 min)", 9e4)
    diverge = Anomaly(
        "divergence", "WETH", "warning", "WETH protocol price 1953.1 is +180 bps from the reference 1918.6", 180.0
    )
    with_feed = _config(oracle={"chainlink_feeds": {"USDC": "0x" + "8f" * 20}})
    where = "alerts.routes[0] (desk -> -1001234567890)"
    out = {
        "watch": render(SNAP, watch, "first", "ok", CFG),
        "warning": render(SNAP, _assessment(WARN_POS, "warning", 1.25), "severity_up", "watch", CFG),
        "critical": render(crit_snap, _assessment(crit_pos, "critical", 1.10, 0.0), "repeat", "critical", CFG),
        "liquidatable": render(liq_snap, liq, "severity_up", "critical", CFG),
        "resolved": render(SNAP, back, "resolved", "critical", CFG, started=BLOCK_TIME - (3 * 3600 + 12 * 60)),
        "oracle_jump": render_anomaly(SNAP, jump, "oracle:jump:WETH", "first", CFG),
        "oracle_stale": render_anomaly(SNAP, stale, "oracle:stale:USDC", "first", with_feed),
        "oracle_divergence": render_anomaly(
            SNAP, diverge, "oracle:divergence:WETH", "severity_down", CFG, previous="critical"
        ),
        "oracle_resolved": render_anomaly(SNAP, None, "oracle:divergence:WETH", "resolved", CFG),
        "test": render_test(where, "host-1", "config.yaml", CFG, key="t"),
    }
    return out


KINDS = _kinds()


def _email(message: Message) -> EmailMessage:
    channel = EmailChannel("mail", host="127.0.0.1", port=25, security="none", sender="liqmon@example.org")
    return channel.build(replace(message, key="outbox:1"), ["desk@example.org"])


def _forms(message: Message) -> dict[str, str]:
    mail = _email(message)
    plain, html_part = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None and html_part is not None
    return {
        "telegram.html": message.html(),
        "email.txt": f"Subject: {mail['Subject']}\n\n{plain.get_content()}",
        "email.html": html_part.get_content(),
        "console.txt": console_line(message) + "\n",
        "plain.txt": message.plain() + "\n",
        "markdown.md": message.markdown() + "\n",
        "fields.json": json.dumps(message.field_map, indent=1, ensure_ascii=False) + "\n",
    }


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_on_every_channel_matches_its_snapshot(kind: str) -> None:
    for form, text in _forms(KINDS[kind]).items():
        path = SNAPSHOTS / f"{kind}.{form}"
        if UPDATE:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        assert path.is_file(), f"no snapshot {path.name}: run with LIQMON_UPDATE_SNAPSHOTS=1 and review it"
        assert text == path.read_text(encoding="utf-8"), f"{path.name} differs from its snapshot"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_first_line_fits_a_phone_and_no_reason_codes(kind: str) -> None:
    message = KINDS[kind]
    assert len(message.headline) <= FIRST_LINE_MAX, message.headline
    assert len(message.summary_line()) <= SUMMARY_MAX
    assert _email(message)["Subject"] == message.headline
    body = "\n".join(message.lines)
    assert message.title not in body  # the header is not repeated in the body
    for text in (message.headline, body, message.summary_line()):
        assert not REASON_CODES.search(text), text


def test_position_messages_carry_links_and_a_first_line_with_everything() -> None:
    warning = KINDS["warning"]
    assert warning.headline == "⚠️ WARNING treasury · Ethereum · aave-v3 · HF 1.09 → warn 1.25"
    assert dict(warning.links) == {
        "Position": "https://app.aave.com/",
        "Explorer": f"https://etherscan.io/address/{TREASURY}",
    }
    assert f'<a href="https://etherscan.io/address/{TREASURY}">Explorer</a>' in warning.html()
    assert warning.field_map["label"] == "treasury" and warning.field_map["block"] == "19876543"
    assert "Block 19,876,543 · 2020-03-12 00:00 UTC" in warning.lines
    assert KINDS["liquidatable"].headline.startswith("🚨 LIQUIDATABLE 0xC1B9…3679 · Ethereum · aave-v3 · HF 0.")


def test_plain_words_for_every_dedup_reason() -> None:
    assert plain_change("first", "ok", "warning") == "new"
    assert plain_change("severity_up", "warning", "critical") == "worse: warning → critical"
    assert plain_change("severity_down", "critical", "warning") == "better: critical → warning"
    assert plain_change("repeat", "critical", "critical") == "still critical (reminder)"
    assert plain_change("resolved", "critical", "ok") == "recovered"
    assert KINDS["critical"].lines[0].startswith("Still critical (reminder). HF 1.02 is below the critical level 1.10")
    assert KINDS["resolved"].lines[0].startswith("Recovered: back to safe after 3 h 12 min (was critical)")


def test_probability_only_where_it_means_something() -> None:
    assert "Chance of liquidation within 48 h: 3.4 %." in KINDS["warning"].lines
    assert "Chance of liquidation within 48 h: < 0.1 %." in KINDS["watch"].lines
    assert not any("Chance" in line or "0.00" in line for line in KINDS["critical"].lines)  # exactly 0: hidden
    assert not any("Chance" in line for line in KINDS["liquidatable"].lines)  # already liquidatable


def test_liquidation_price_in_the_direction_that_matters() -> None:
    (fall,) = [line for line in KINDS["warning"].lines if line.startswith("Liquidated if")]
    assert fall.startswith("Liquidated if WETH falls to ")
    price = exact_liquidation_price(WARN_POS, RESERVES, {}, "WETH")
    assert price is not None and price[1] == -1
    assert f"falls to {price[0] / USD:,.2f} USD (−" in fall
    # collateral USDC, debt WETH: the debt asset rises
    short = _position(OTHER, (0, 30_000 * E6, 0), (10 * E18, 0, 0))
    advice = advise(_snapshot([short]), OTHER, 1.5, pegged={"USDC", "DAI"})
    assert advice.liquidation is not None and advice.liquidation.symbol == "WETH" and advice.liquidation.direction == 1
    message = render(_snapshot([short]), _assessment(short, "warning", 1.25), "first", "ok", CFG)
    assert any(line.startswith("Liquidated if WETH rises to ") and "(+" in line for line in message.lines)


def _shown(amount: TokenAmount) -> Decimal:
    with localcontext(prec=120):
        return Decimal(amount.text().split()[0].replace(",", ""))


def _check_exact(amount: TokenAmount, exact_units: int) -> None:
    """The text is the exact integer target rounded UP to the shown decimals, and no more (the
    advice searches at the shown precision: its units are that rounded amount)."""
    assert amount.places() == TokenAmount(amount.symbol, exact_units, amount.decimals).places()
    assert amount.units >= exact_units
    with localcontext(prec=120):
        step = Decimal(1).scaleb(-amount.places())
        exact = Decimal(exact_units).scaleb(-amount.decimals)
        assert _shown(amount) >= exact > _shown(amount) - step


def test_token_amounts_are_the_exact_targets_rounded_up_to_the_shown_decimals() -> None:
    target = 3 * WAD // 2
    advice = advise(SNAP, TREASURY, 1.5)
    assert advice.repay is not None and advice.supply is not None
    _check_exact(advice.repay, exact_repay_to_target(WARN_POS, RESERVES, {}, "USDC", target) or -1)
    _check_exact(advice.supply, exact_supply_to_target(WARN_POS, RESERVES, {}, "WETH", target) or -1)
    # doing what the message says reaches the target: the shown amounts, in units, restore HF 1.5
    shown_repay = int(_shown(advice.repay) * 10**6)
    hf = account_data(
        after_repay(WARN_POS, RESERVES, "USDC", shown_repay).legs,
        RESERVES,
        0,
        after_repay(WARN_POS, RESERVES, "USDC", shown_repay).user_configuration,
        {},
    ).health_factor
    assert hf >= target
    supplied = after_supply(WARN_POS, RESERVES, "WETH", int(_shown(advice.supply) * 10**18))
    assert account_data(supplied.legs, RESERVES, 0, supplied.user_configuration, {}).health_factor >= target
    todo = f"To reach HF 1.5: repay {advice.repay.text()} or add {advice.supply.text()}."
    assert todo in KINDS["warning"].lines and " USDC or add " in todo and todo.endswith(" WETH.")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    coll=st.lists(st.integers(0, 10**6), min_size=3, max_size=3),
    debt_share=st.floats(0.3, 0.99),
    debt_col=st.integers(0, 2),
    label=st.text(
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), min_size=0, max_size=24
    ).map(str.strip),
    market=st.text("abcdefghijklmnopqrstuvwxyz0123456789-:/", min_size=1, max_size=80),
    chain_id=st.sampled_from([1, 10, 137, 8453, 42161, 31337, 999_999_999]),
    severity=st.sampled_from(["watch", "warning", "critical", "liquidatable"]),
    protocol=st.sampled_from(["aave_v3", "morpho_blue", "compound_v3"]),
)
def test_first_line_at_most_80_characters_over_generated_positions(
    coll: list[int],
    debt_share: float,
    debt_col: int,
    label: str,
    market: str,
    chain_id: int,
    severity: str,
    protocol: str,
) -> None:
    units = [c * 10 ** (r.decimals - 3) for c, r in zip(coll, RESERVES, strict=True)]
    if not any(units):
        units[0] = E18
    value = sum(u * r.price // 10**r.decimals for u, r in zip(units, RESERVES, strict=True))
    debt = [0, 0, 0]
    r = RESERVES[debt_col]
    debt[debt_col] = max(1, int(value * debt_share) * 10**r.decimals // r.price)
    pos = _position(TREASURY, units, debt)
    snap = _snapshot([pos], chain_id=chain_id, market=market, protocol=protocol)
    cfg = _config(labels={TREASURY: label}) if label and label.isprintable() else CFG
    a = _assessment(pos, severity, {"watch": 1.4, "warning": 1.25, "critical": 1.1, "liquidatable": 1.0}[severity])
    for reason in ("first", "severity_up", "repeat", "resolved"):
        message = render(snap, a, reason, "watch", cfg, started=BLOCK_TIME - 100)
        assert len(message.headline) <= FIRST_LINE_MAX, message.headline
        assert len(message.summary_line()) <= SUMMARY_MAX
        assert "\n" not in message.headline
    oracle = render_anomaly(snap, Anomaly("jump", "WETH", "warning", "moved", 7.0), "oracle:jump:WETH", "first", cfg)
    assert len(oracle.headline) <= FIRST_LINE_MAX


@settings(max_examples=100, deadline=None)
@given(units=st.integers(1, 10**30), decimals=st.sampled_from([0, 2, 6, 8, 18]))
def test_token_amount_text_rounds_up_at_four_significant_digits(units: int, decimals: int) -> None:
    amount = TokenAmount("TKN", units, decimals)
    _check_exact(amount, units)
    digits = amount.text().split()[0].replace(",", "").replace(".", "").lstrip("0")
    assert len(digits) >= min(4, len(str(units)))  # never fewer than 4 significant digits (or all of them)


def test_other_protocols_use_the_closed_form_on_the_snapshot_integers() -> None:
    pos = _position(TREASURY, (10 * E18, 0, 0), (0, 13_600 * E6, 0))
    snap = _snapshot([pos], protocol="morpho_blue", market="morpho-blue:weth/usdc-86:17f00ce9")
    advice = advise(snap, TREASURY, 1.5)
    assert advice.repay is not None and advice.supply is not None
    debt = pos.legs[1].debt  # owed USDC units; weighted collateral in base units x 1e4
    weighted = pos.legs[0].collateral * WETH.price * 8_250 // 10**18
    repaid = debt - advice.repay.units
    assert weighted * 10**6 * 2 >= 3 * repaid * USDC.price * 10_000  # HF >= 1.5 after the repay
    assert weighted * 10**6 * 2 < 3 * (repaid + 1) * USDC.price * 10_000  # one unit less is not enough
    message = render(snap, _assessment(pos, "warning", 1.25), "first", "ok", CFG)
    assert "morpho-blue:weth/usdc-86 · HF" in message.headline  # the market id goes from the first line
    assert ("Position", "https://app.morpho.org/") in message.links


def test_hf_and_durations_read_plainly() -> None:
    assert [hf_text(x) for x in (1.0442, 0.9996, 1.0049, float("inf"))] == ["1.04", "0.9996", "1.004", "∞"]
    assert [duration_text(s) for s in (30, 2700, 11_520, 3600, 187_200)] == [
        "30 s",
        "45 min",
        "3 h 12 min",
        "1 h",
        "2 d 4 h",
    ]


def test_old_outbox_rows_still_load_and_new_ones_round_trip() -> None:
    old = message_from_json("outbox:7", json.dumps({"severity": "warning", "title": "m: 0xabc HF 1.1", "lines": ["x"]}))
    assert (old.severity, old.title, old.lines, old.links, old.fields) == ("warning", "m: 0xabc HF 1.1", ("x",), (), ())
    assert console_line(old) == "⚠️ WARNING m: 0xabc HF 1.1 — x"
    for message in KINDS.values():
        back = message_from_json("k", message_json(message))
        assert back == replace(message, key="k")


def test_episode_start_reads_the_first_alert_of_the_episode() -> None:
    class Rows:
        def alerts(self, *, market: str | None = None, subject: str | None = None) -> list[dict[str, Any]]:
            first = {"reason": "first", "detail": message_json(KINDS["watch"]), "created_at": 5.0}
            return [
                {"reason": "first", "detail": "{}", "created_at": 1.0},
                {"reason": "resolved"},
                first,
                {"reason": "severity_up", "detail": "{}"},
            ]

    assert episode_start(Rows(), "aave-v3", TREASURY) == float(BLOCK_TIME)


def test_console_prints_one_line_or_the_whole_message(capsys: Any) -> None:
    import io

    out = io.StringIO()
    ConsoleChannel(stream=out).send(KINDS["warning"])
    ConsoleChannel(stream=out, verbose=True).send(KINDS["warning"])
    first, *rest = out.getvalue().split("\n")
    assert first == KINDS["warning"].summary_line() and len(first) <= SUMMARY_MAX
    assert "\n".join(rest).startswith(KINDS["warning"].plain())


# -- templates -----------------------------------------------------------------------------


def test_templates_override_the_parts_with_the_fixed_fields() -> None:
    cfg = _config(
        templates={
            "position": {
                "title": "$who HF $hf (${level_name} $level) on $$chain",
                "summary": "$who: $change",
                "body": "$todo\n$liquidation\n$link",
            }
        }
    )
    message = render(SNAP, _assessment(WARN_POS, "warning", 1.25), "first", "ok", cfg)
    assert message.headline == "⚠️ WARNING treasury HF 1.09 (warn 1.25) on $chain"
    assert message.summary_line() == "⚠️ WARNING treasury: new"
    assert message.lines[0].startswith("To reach HF 1.5: repay ") and message.lines[-1] == "https://app.aave.com/"
    assert fill("${who}x $$ $hf", {"who": "a"}) == "ax $ "  # a field the message lacks is empty


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("$nope", "unknown field $nope"),
        ("${account.__class__}", "bad placeholder"),
        ("cost $5", "bad placeholder"),
        ("$", "bad placeholder"),
        ("{hf}", None),
        ("$hf.__class__", None),
    ],
)
def test_template_language_is_safe(template: str, problem: str | None) -> None:
    if problem is None:  # no attribute access: ".__class__" stays literal text
        check_template(template)
        assert fill(template, {"hf": "1.08"}) in ("{hf}", "1.08.__class__")
        return
    with pytest.raises(ValueError, match=re.escape(problem)):
        check_template(template)
    with pytest.raises(
        ConfigError, match=re.escape("test.yaml: alerts.templates.resolved.body: ") + ".*" + re.escape(problem)
    ):
        _config(templates={"resolved": {"body": template}})


def test_message_config_errors_name_the_key() -> None:
    cases = [
        ({"templates": {"nonsense": {"title": "x"}}}, "alerts.templates.nonsense: unknown key"),
        ({"templates": {"position": {"headline": "x"}}}, "alerts.templates.position.headline: unknown key"),
        ({"labels": {"0x12": "x"}}, "alerts.labels.0x12: '0x12' is not an address"),
        ({"labels": {TREASURY: ""}}, f"alerts.labels.{TREASURY}: expected a one-line label"),
        ({"links": {"apps": {"uniswap": "https://x"}}}, "alerts.links.apps.uniswap: unknown protocol"),
        ({"links": {"explorers": {"mars": "https://x"}}}, "alerts.links.explorers.mars: expected a chain id"),
        ({"links": {"explorers": {1: "ftp://x"}}}, "alerts.links.explorers.1: expected an http(s) URL"),
        ({"links": {"explorers": {1: "https://x/$nope"}}}, "alerts.links.explorers.1: unknown field $nope"),
        ({"links": {"wallets": {}}}, "alerts.links.wallets: unknown key"),
    ]
    for raw, expected in cases:
        with pytest.raises(ConfigError) as info:
            _config(**raw)
        assert str(info.value).startswith(f"test.yaml: {expected}"), str(info.value)
        assert "\n" not in str(info.value)


def test_a_label_from_the_accounts_section_is_used_when_labels_has_none() -> None:
    cfg = parse_alerts(Validator("t.yaml", {}), {"accounts": {OTHER: {"label": "desk"}}}, ["aave-v3"])
    pos = _position(OTHER, (10 * E18, 0, 0), (0, 13_600 * E6, 0))
    message = render(_snapshot([pos]), _assessment(pos, "warning", 1.25), "first", "ok", cfg)
    assert message.headline.startswith("⚠️ WARNING desk · Ethereum · ")
    assert "(desk)" in message.lines[-2] and message.field_map["label"] == "desk"


def test_links_are_configurable_per_chain_and_protocol() -> None:
    cfg = _config(
        links={
            "explorers": {"devnet": "http://127.0.0.1:4000/wallet/$account", "ethereum": None},
            "apps": {"aave_v3": "https://app.aave.com/?marketName=proto_mainnet_v3&user=$account"},
        }
    )
    on_devnet = render(
        _snapshot([WARN_POS], chain_id=31337), _assessment(WARN_POS, "warning", 1.25), "first", "ok", cfg
    )
    assert dict(on_devnet.links) == {
        "Position": f"https://app.aave.com/?marketName=proto_mainnet_v3&user={TREASURY}",
        "Explorer": f"http://127.0.0.1:4000/wallet/{TREASURY}",
    }
    assert "&amp;user=" in on_devnet.html()  # the URL is escaped inside href
    mainnet = render(SNAP, _assessment(WARN_POS, "warning", 1.25), "first", "ok", cfg)
    assert [label for label, _ in mainnet.links] == ["Position"]  # explorer turned off for chain 1
    assert "devnet" in on_devnet.headline and " · Ethereum · " in mainnet.headline


def test_every_template_field_is_filled_for_a_position() -> None:
    body = "\n".join(f"{name}=${name}" for name in FIELDS)
    cfg = _config(templates={"resolved": {"body": body}})
    resolved = render(
        SNAP, replace(_assessment(WARN_POS, "ok", 1.4), hf=1.62), "resolved", "critical", cfg, started=BLOCK_TIME - 600
    )
    filled = dict(line.split("=", 1) for line in resolved.lines)
    assert filled["duration"] == "10 min" and filled["who"] == "treasury" and filled["chain"] == "Ethereum"
    assert filled["link"] == "https://app.aave.com/" and filled["time"] == "2020-03-12 00:00 UTC"
