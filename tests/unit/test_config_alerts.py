"""Alert channels, routes and daemon settings are validated at start, secrets from env."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import load_config, redact
from monitor.config.alerts import policy_config
from monitor.errors import ConfigError
from monitor.risk.policy import PolicyConfig

BASE: dict[str, Any] = {
    "chains": {"eth": {"chain_id": 1, "rpc_urls": ["http://127.0.0.1:8545"]}},
    "markets": [
        {"name": "m", "protocol": "aave_v3", "chain": "eth",
         "pool_addresses_provider": "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e"}
    ],
}  # fmt: skip
ALERTS: dict[str, Any] = {
    "policy": {"reaction_hours": {"watch": 48, "critical": 2}, "alarm_cost_usd": 4, "paths": 1000,
               "hard_levels": {"critical": 1.02}, "exit_margin": 0.01},
    "channels": {
        "desk": {"type": "telegram", "token_env": "TG_TOKEN", "base_url": "http://127.0.0.1:9999"},
        "mail": {"type": "email", "host": "127.0.0.1", "port": 2525, "security": "none", "sender": "a@b.io",
                 "username_env": "SMTP_USER", "password_env": "SMTP_PASS"},
        "console": {"type": "console"},
    },
    "routes": [
        {"channel": "desk", "to": -1001234567890, "min_severity": "critical"},
        {"channel": "mail", "to": "me@example.com, ops@example.com",
         "accounts": ["0x2f39d218133afab8f2b819b1066c7e434ad94e9e"], "min_severity": "watch"},
        {"channel": "console"},
    ],
}  # fmt: skip
ENV = {"TG_TOKEN": "123:SECRETTOKEN", "SMTP_USER": "bot", "SMTP_PASS": "hunter2hunter2"}


def write(tmp_path: Path, alerts: Any, daemon: Any = None) -> Path:
    data = dict(BASE, alerts=alerts)
    if daemon is not None:
        data["daemon"] = daemon
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_full_alerts_section(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ALERTS, {"mode": "interval", "interval_s": 5}), env=ENV)
    a = config.alerts
    p = policy_config(a)
    assert p.reaction_hours == (48.0, PolicyConfig().reaction_hours[1], 2.0)  # warning: the default
    assert p.alarm_cost_usd == (4.0, 4.0, 4.0) and p.paths == 1000
    assert p.hard_levels == (1.02, 1.02, 1.02)  # a hard critical level is also a warning and a watch level
    assert a.exit_margin == p.exit_margin == 0.01 and a.min_dwell_s == 300.0
    assert a.channels["desk"].token is not None and a.channels["desk"].token.value == "123:SECRETTOKEN"
    assert "SECRETTOKEN" not in repr(a) and "hunter2" not in repr(a)
    assert a.routes[0].to == "-1001234567890" and a.routes[1].to == "me@example.com,ops@example.com"
    assert a.routes[1].accounts == ("0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e",)
    assert config.daemon.mode == "interval" and config.daemon.interval_s == 5
    assert redact("token 123:SECRETTOKEN pw hunter2hunter2", config) == "token <secret> pw <secret>"


def test_policy_defaults_overrides_and_the_former_hysteresis_place(tmp_path: Path) -> None:
    alerts = {"min_dwell_s": 60, "policy": {"market_levels": {"m": {"watch": 1.5}},
              "account_levels": {"0x2f39d218133afab8f2b819b1066c7e434ad94e9e": {"warning": 1.3}}}}  # fmt: skip
    p = policy_config(load_config(write(tmp_path, alerts), env={}).alerts)
    assert p.min_dwell_s == 60.0 and p.hard_levels is None and p.reaction_hours == PolicyConfig().reaction_hours
    mine, other = "0x2F39d218133AFaB8F2B819B1066c7E434Ad94E9e", "0x" + "1" * 40
    assert p.hard_for("m", [mine, other]).tolist() == [[1.5, 1.3, 1.0], [1.5, 1.0, 1.0]]  # the largest applies
    assert p.hard_for("elsewhere", [other]).tolist() == [[1.0, 1.0, 1.0]]  # never binding unless set
    path = tmp_path / "bare.yaml"
    path.write_text(yaml.safe_dump(BASE))
    assert policy_config(load_config(path, env={}).alerts) == PolicyConfig()


def test_probability_bounds_per_severity_or_one_number(tmp_path: Path) -> None:
    alerts = {"policy": {"min_probability": {"warning": 0.004}, "max_probability": 0.3}}
    p = policy_config(load_config(write(tmp_path, alerts), env={}).alerts)
    d = PolicyConfig()
    assert p.min_probability == (d.min_probability[0], 0.004, d.min_probability[2])
    assert p.max_probability == (0.3, 0.3, 0.3)
    for bad, match in (({"max_probability": 1.5}, "max_probability"), ({"min_probability": 0}, "min_probability"),
                       ({"min_probability": 0.4, "max_probability": 0.3}, "must not exceed")):  # fmt: skip
        with pytest.raises(ConfigError, match=match):
            load_config(write(tmp_path, {"policy": bad}), env={})


def test_lowest_sent_severity_is_what_a_backtest_of_the_config_counts(tmp_path: Path) -> None:
    a = load_config(write(tmp_path, ALERTS), env=ENV).alerts
    assert a.lowest_sent_severity() == "watch"  # the mail route sends watch
    shipped = load_config(Path(__file__).resolve().parents[2] / "config.yaml", env={}).alerts
    assert shipped.lowest_sent_severity() == "warning"  # the shipped console route: warning and above
    only_critical = {"routes": [{"channel": "console", "min_severity": "liquidatable"}]}
    assert load_config(write(tmp_path, only_critical), env={}).alerts.lowest_sent_severity() == "critical"


def test_route_hard_levels_apply_to_the_positions_the_route_selects(tmp_path: Path) -> None:
    mine, other = "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e", "0x" + "1" * 40
    alerts = {"routes": [{"channel": "console", "accounts": [mine.lower()], "hard_levels": {"warning": 1.2}},
                         {"channel": "console", "markets": ["m"], "min_severity": "critical"}]}  # fmt: skip
    a = load_config(write(tmp_path, alerts), env={}).alerts
    assert a.routes[0].hard_levels == (1.2, 1.2, 1.0) and a.routes[1].hard_levels is None
    assert policy_config(a).hard_for("m", [mine, other]).tolist() == [[1.2, 1.2, 1.0], [1.0, 1.0, 1.0]]
    alerts["routes"][0]["hard_levels"] = {"critical": 0.5}
    with pytest.raises(ConfigError, match=r"routes\[0\]\.hard_levels\.critical"):
        load_config(write(tmp_path, alerts), env={})


def test_route_matching(tmp_path: Path) -> None:
    routes = load_config(write(tmp_path, ALERTS), env=ENV).alerts.routes
    mine = "0x2F39d218133AFaB8F2B819B1066c7E434Ad94E9e"
    other = "0x" + "1" * 40
    assert [r.channel for r in routes if r.matches("m", mine, "watch")] == ["mail"]  # console defaults to warning
    assert [r.channel for r in routes if r.matches("m", mine, "warning")] == ["mail", "console"]
    assert [r.channel for r in routes if r.matches("m", other, "critical")] == ["desk", "console"]
    assert [r.channel for r in routes if r.matches("m", None, "warning")] == ["console"]  # an oracle anomaly


@pytest.mark.parametrize(
    ("edit", "env", "needle"),
    [
        (lambda a: a, {}, "alerts.channels.desk.token_env: environment variable TG_TOKEN is not set"),
        (lambda a: a["channels"]["desk"].update(token_env="123:abc"), ENV, "environment variable name"),
        (lambda a: a["routes"][0].update(to="general"), ENV, "routes[0].to: 'general' is not a Telegram chat id"),
        (lambda a: a["channels"]["mail"].update(port=70000), ENV, "alerts.channels.mail.port: expected a TCP port"),
        (lambda a: a["channels"]["mail"].update(port="smtp"), ENV, "alerts.channels.mail.port: expected an integer"),
        (lambda a: a["routes"][1].update(to="not-an-email"), ENV, "is not an email address"),
        (lambda a: a["routes"][0].update(channel="pager"), ENV, "unknown channel 'pager'"),
        (lambda a: a["routes"][0].update(min_severity="meh"), ENV, "min_severity"),
        (lambda a: a["routes"][0].update(markets=["x"]), ENV, "unknown market 'x'"),
        (lambda a: a["channels"]["desk"].update(type="pager"), ENV, "alerts.channels.desk.type"),
        (lambda a: a["channels"]["desk"].update(tokenenv="X"), ENV, "did you mean 'token_env'"),
        (lambda a: a.update(floors={"critical": 1.05}), ENV, "alerts.floors: fixed floors were removed"),
        (lambda a: a.update(floors={"critical": 1.05}), ENV, "alerts.policy.hard_levels: {watch: 1.25"),
        (lambda a: a.update(tolerances={"watch": 0.1}), ENV, "alerts.tolerances: removed"),
        (lambda a: a.update(horizon_hours=2), ENV, "alerts.horizon_hours: moved: set alerts.policy.reaction_hours"),
        (lambda a: a.update(vol_floor=1), ENV, "alerts.vol_floor: removed"),
        (lambda a: a["policy"].update(reaction_hour=3), ENV, "alerts.policy.reaction_hour: unknown key (did you"),
        (lambda a: a["policy"].update(reaction_hours={"warning": 200}), ENV, "reaction_hours must not increase"),
        (lambda a: a["policy"].update(alarm_cost_usd=0), ENV, "alerts.policy.alarm_cost_usd: expected a finite"),
        (lambda a: a["policy"].update(hard_levels={"critical": 0.9}), ENV, "hard_levels.critical: expected a health"),
        (lambda a: a["policy"].update(hard_levels={"watch": 1.1, "warning": 1.2}), ENV, "watch >= warning"),
        (lambda a: a["policy"].update(market_levels={"x": {"watch": 1.5}}), ENV, "market_levels.x: unknown market"),
        (lambda a: a["policy"].update(account_levels={"0x12": {"watch": 1.5}}), ENV, "account_levels.0x12"),
        (lambda a: a["policy"].update(paths=10), ENV, "alerts.policy.paths: expected an integer >= 200"),
        (lambda a: a["policy"].update(close_factor=1.5), ENV, "alerts.policy: close_factor must be in [0, 1]"),
        (lambda a: a.update(exit_margin=0.05), ENV, "alerts.exit_margin: given twice"),
    ],
)  # fmt: skip
def test_bad_channel_config_fails_at_load(tmp_path: Path, edit: Any, env: dict[str, str], needle: str) -> None:
    import copy

    alerts = copy.deepcopy(ALERTS)
    edit(alerts)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, alerts), env=env)
    message = str(info.value)
    assert needle in message and "c.yaml" in message and "\n" not in message
    assert "SECRETTOKEN" not in message and "hunter2" not in message


def test_defaults_console_only(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(BASE))
    config = load_config(path, env={})
    assert list(config.alerts.channels) == ["console"] and config.alerts.routes[0].channel == "console"
    assert config.daemon.mode == "block"


def test_bad_daemon(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"daemon\.mode"):
        load_config(write(tmp_path, None, {"mode": "cron"}), env={})
    with pytest.raises(ConfigError, match=r"daemon\.metrics_port"):
        load_config(write(tmp_path, None, {"metrics_port": 0}), env={})
