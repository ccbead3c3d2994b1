"""Per-wallet, per-route and per-market levels and policy knobs on top of the optimized policy
(issue 15 part 4): precedence account > route > market > global per knob and severity (of the
routes, the first with a policy), hard levels as floors (every one that applies holds), the same
code for the daemon's LevelCache, scan and the backtest, and strict config validation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from monitor.config import load_config
from monitor.config.alerts import policy_config
from monitor.errors import ConfigError, InputError
from monitor.risk.policy import LevelCache, PolicyConfig, PolicyOverride, market_state_from_prices, position_levels
from tests.unit.test_policy import FAST, SOL_USDC, SYMBOLS, WETH_USDC, make_book

MINE = "0x0000000000000000000000000000000000000001"  # make_book's first account
OTHER = "0x0000000000000000000000000000000000000002"
DAY = "2023-06-15"


def override(kind: str, markets: tuple[str, ...] | None = None, accounts: tuple[str, ...] | None = None,
             **knobs: Any) -> PolicyOverride:  # fmt: skip
    return PolicyOverride(kind, markets, accounts, **knobs, source=f"alerts.{kind}")


# --------------------------------------------------------------------------- precedence


def test_knobs_precedence_account_route_market_global_per_severity() -> None:
    cfg = replace(FAST, overrides=(
        override("market", ("m",), reaction_hours=(100.0, 40.0, None), alarm_cost_usd=(None, 7.0, None)),
        override("route", None, (MINE,), reaction_hours=(None, 30.0, None)),
        override("route", None, None, reaction_hours=(None, 20.0, 3.0)),  # a later route: not for MINE
        override("account", None, (MINE.upper().replace("0X", "0x"),), reaction_hours=(None, None, 2.0)),
    ))  # fmt: skip
    k = cfg.validate().knobs_for("m", [MINE, OTHER])
    g = FAST.reaction_hours
    assert k.reaction_hours.tolist() == [[100.0, 30.0, 2.0], [100.0, 20.0, 3.0]]
    assert k.alarm_cost_usd.tolist() == [[FAST.alarm_cost_usd[0], 7.0, FAST.alarm_cost_usd[2]]] * 2
    elsewhere = cfg.knobs_for("n", [MINE, OTHER])  # the market entry selects market m only
    assert elsewhere.reaction_hours.tolist() == [[g[0], 30.0, 2.0], [g[0], 20.0, 3.0]]
    assert cfg.knobs_for("n", []).reaction_hours.shape == (0, 3)
    plain = FAST.knobs_for("m", [MINE])
    assert plain.min_probability.tolist() == [list(FAST.min_probability)]


def test_inconsistent_combinations_are_refused_naming_the_entries() -> None:
    bad = replace(FAST, overrides=(override("account", None, (MINE,), reaction_hours=(None, 500.0, None)),))
    with pytest.raises(InputError, match=r"alerts\.account: reaction_hours must not increase"):
        bad.validate()
    route = override("route", ("m",), None, min_probability=(None, 0.04, None))
    account = override("account", None, (MINE,), max_probability=(None, 0.03, None))
    with pytest.raises(InputError, match=r"alerts\.route with alerts\.account: min_probability must not exceed"):
        replace(FAST, overrides=(route, account)).validate()
    disjoint = override("route", None, (OTHER,), min_probability=(None, 0.04, None))
    replace(FAST, overrides=(disjoint, account)).validate()  # never select one position together: fine


def test_many_wallets_are_checked_and_resolved_in_linear_time_naming_the_wallet_at_fault() -> None:
    wallets = [f"0x{i:040x}" for i in range(1, 3001)]
    same = [PolicyOverride("account", None, (w,), max_probability=(None, 0.03, None), source=f"alerts.accounts.{w}")
            for w in wallets]  # fmt: skip
    other = PolicyOverride("account", None, ("0x" + "e" * 40,), reaction_hours=(None, 30.0, None), source="alerts.e")
    route = override("route", None, (wallets[1234],), min_probability=(None, 0.04, None))
    with pytest.raises(InputError, match=rf"^alerts\.route with alerts\.accounts\.{wallets[1234]}: min_probability"):
        replace(FAST, overrides=(route, *same, other)).validate()
    cfg = replace(FAST, overrides=(*same, other)).validate()
    k = cfg.knobs_for("m", [*wallets, "0x" + "e" * 40, "0x" + "f" * 40])
    assert (k.max_probability[:3000, 1] == 0.03).all() and k.max_probability[3000, 1] == FAST.max_probability[1]
    assert k.reaction_hours[3000].tolist() == [FAST.reaction_hours[0], 30.0, FAST.reaction_hours[2]]
    assert k.reaction_hours[3001].tolist() == list(FAST.reaction_hours)


# --------------------------------------------------------------------------- in the policy code


def test_an_account_with_its_own_knobs_gets_the_levels_of_a_global_policy_with_them() -> None:
    book = make_book([SOL_USDC, SOL_USDC, WETH_USDC])
    market = market_state_from_prices(SYMBOLS, DAY)
    own: dict[str, Any] = {"reaction_hours": (168.0, 12.0, 2.0), "alarm_cost_usd": (2.0, 50.0, 25.0),
           "min_probability": (0.05, 0.002, 0.02), "max_probability": (0.2, 0.5, 0.1)}  # fmt: skip
    cfg = replace(FAST, overrides=(override("account", None, (MINE,), **own),))
    pl = position_levels(book, market, cfg, observe_hours=1.0)
    base = position_levels(book, market, FAST, observe_hours=1.0)
    alone = position_levels(book, market, replace(FAST, **own), observe_hours=1.0)
    np.testing.assert_allclose(pl.levels[0], alone.levels[0])  # the wallet: its own knobs
    np.testing.assert_allclose(pl.levels[1:], base.levels[1:])  # the same position elsewhere: the global ones
    assert pl.levels[0, 1] != base.levels[0, 1]
    assert pl.horizons_hours[0, 1] == 13.0 and pl.horizons_hours[1, 1] == FAST.reaction_hours[1] + 1.0
    cached = LevelCache().levels_for(book, market, cfg, 0.0, observe_hours=1.0)  # what the daemon uses
    np.testing.assert_allclose(cached.levels, pl.levels)


def test_wallet_hard_level_warns_at_1_5_for_that_wallet_only() -> None:
    book = make_book([WETH_USDC, WETH_USDC])
    cfg = replace(FAST, account_levels=((MINE, (1.5, 1.5, 1.0)),))
    pl = position_levels(book, market_state_from_prices(SYMBOLS, DAY), cfg)
    assert pl.levels[0, 1] == 1.5 and pl.hard[0, 1] and "(hard level)" in pl.reasons[0]
    assert pl.levels[1, 1] < 1.5 and not pl.hard[1].any()


# --------------------------------------------------------------------------- config


BASE: dict[str, Any] = {
    "chains": {"eth": {"chain_id": 1, "rpc_urls": ["http://127.0.0.1:8545"]}},
    "markets": [{"name": "m", "protocol": "aave_v3", "chain": "eth",
                 "pool_addresses_provider": "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e"},
                {"name": "n", "protocol": "aave_v3", "chain": "eth",
                 "pool_addresses_provider": "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e"}],
}  # fmt: skip
WALLET = "0x2f39d218133afab8f2b819b1066c7e434ad94e9e"
CHECKSUMMED = "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e"


def load(tmp_path: Path, alerts: dict[str, Any]) -> Any:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(dict(BASE, alerts=alerts)))
    return load_config(path, env={}).alerts


def test_config_accounts_routes_and_markets_with_own_levels_and_policy(tmp_path: Path) -> None:
    a = load(tmp_path, {
        "accounts": {WALLET: {"label": "treasury", "levels": {"warning": 1.5},
                              "policy": {"reaction_hours": {"warning": 24}, "probability": {"critical": 0.05}}}},
        "markets": {"n": {"levels": {"watch": 1.3}, "policy": {"alarm_cost_usd": 3}}},
        "routes": [{"channel": "console", "markets": ["m"], "levels": {"critical": 1.05},
                    "policy": {"min_probability": 0.01}}],
    })  # fmt: skip
    entry = a.accounts[WALLET]
    assert entry.account == CHECKSUMMED and entry.label == "treasury" and entry.levels == (1.5, 1.5, 1.0)
    assert a.routes[0].hard_levels == (1.05, 1.05, 1.05) and a.routes[0].policy is not None
    p = policy_config(a)
    other = "0x" + "3" * 40
    assert p.hard_for("m", [CHECKSUMMED, other]).tolist() == [[1.5, 1.5, 1.05], [1.05, 1.05, 1.05]]
    assert p.hard_for("n", [CHECKSUMMED, other]).tolist() == [[1.5, 1.5, 1.0], [1.3, 1.0, 1.0]]
    k = p.knobs_for("m", [CHECKSUMMED, other])
    d = PolicyConfig()
    assert k.reaction_hours.tolist() == [[d.reaction_hours[0], 24.0, d.reaction_hours[2]], list(d.reaction_hours)]
    assert k.min_probability.tolist() == [[0.01, 0.01, 0.05], [0.01, 0.01, 0.01]]  # account > route
    assert k.max_probability[0, 2] == 0.05 and k.max_probability[1, 2] == d.max_probability[2]
    assert p.knobs_for("n", [other]).alarm_cost_usd.tolist() == [[3.0, 3.0, 3.0]]


@pytest.mark.parametrize(
    ("alerts", "match"),
    [
        ({"accounts": {WALLET: {"lable": "x"}}}, r"accounts\.0x2f.*\.lable: unknown key \(did you mean 'label'"),
        ({"accounts": {"0x12": {"label": "x"}}}, r"alerts\.accounts\.0x12: .* is not an address"),
        ({"accounts": {WALLET: {}}}, "give at least one of label, levels, policy"),
        ({"accounts": {WALLET: {"label": "x" * 30}}}, r"label: expected 1-24"),
        ({"accounts": {WALLET: {"levels": {"warning": 0.9}}}}, r"levels\.warning: expected a health factor > 1"),
        ({"accounts": {WALLET: {"policy": {"tolerance": 0.1}}}}, r"policy\.tolerance: unknown key"),
        ({"accounts": {WALLET: {"policy": {}}}}, "give at least one of reaction_hours"),
        ({"accounts": {WALLET: {"policy": {"probability": 1.5}}}}, r"policy\.probability: expected a probability"),
        ({"accounts": {WALLET: {"policy": {"probability": 0.1, "min_probability": 0.01}}}}, "at once"),
        ({"accounts": {WALLET: {"policy": {"reaction_hours": {"warning": 500}}}}},
         r"alerts\.accounts\.0x2f.*\.policy: reaction_hours must not increase"),
        ({"accounts": {WALLET: {"label": "a"}, WALLET.upper().replace("0X", "0x"): {"label": "b"}}}, "given twice"),
        ({"accounts": {WALLET: {"levels": {"watch": 1.4}}}, "policy": {"account_levels": {WALLET: {"watch": 1.3}}}},
         "also given in alerts.policy.account_levels"),
        ({"markets": {"x": {"levels": {"watch": 1.4}}}}, r"alerts\.markets\.x: unknown market"),
        ({"routes": [{"channel": "console", "levels": {"watch": 1.4}, "hard_levels": {"watch": 1.4}}]}, "keep levels"),
        ({"routes": [{"channel": "console", "policy": {"alarm_cost_usd": {"warn": 1}}}]},
         r"routes\[0\]\.policy\.alarm_cost_usd\.warn: unknown key"),
        ({"routes": [{"channel": "console", "markets": ["m"], "policy": {"min_probability": {"warning": 0.04}}}],
          "accounts": {WALLET: {"policy": {"max_probability": {"warning": 0.03}}}}},
         r"alerts\.routes\[0\]\.policy with alerts\.accounts\..*\.policy: min_probability must not exceed"),
    ],
)  # fmt: skip
def test_config_errors_are_one_line_naming_the_key(tmp_path: Path, alerts: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        load(tmp_path, alerts)
    assert "\n" not in str(info.value)


def test_backtest_cost_multiples_use_each_positions_own_alarm_costs() -> None:
    from monitor.risk import backtest as bt

    book = make_book([SOL_USDC, SOL_USDC])
    market = market_state_from_prices(SYMBOLS, DAY)
    own = (4.0, 40.0, 100.0)
    cfg = replace(FAST, overrides=(override("account", None, (MINE,), alarm_cost_usd=own),))
    pl = position_levels(book, market, cfg)
    hard = cfg.hard_for(book.market, book.accounts)
    for k in (0.1, 3.0):
        g, o = FAST.alarm_cost_usd, own
        mine = replace(cfg.overrides[0], alarm_cost_usd=(k * o[0], k * o[1], k * o[2]))
        scaled = replace(cfg, alarm_cost_usd=(k * g[0], k * g[1], k * g[2]), overrides=(mine,))
        direct = position_levels(book, market, scaled).levels
        got = bt.levels_at_cost_multiple(pl, cfg, k, hard, cfg.knobs_for(book.market, book.accounts))
        np.testing.assert_allclose(got, direct, rtol=0, atol=1e-12)
