"""``liqmon silence add | list | expire`` and ``liqmon ack``: mute alerts, acknowledge an episode.

A silence (:mod:`monitor.alerts.silences`) is stored in the history database and applied when
the daemon delivers: a matching alert is recorded (``history --alerts`` shows it silenced), never
sent. An acknowledgement stops the repeat reminders of an open episode until it escalates.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_utils import is_address, to_checksum_address

from monitor.alerts.silences import parse_duration
from monitor.cli_args import count
from monitor.config import Config, OfflineEnv, load_config
from monitor.errors import InputError
from monitor.render import table, to_json
from monitor.store import Store

SEVERITIES = ("watch", "warning", "critical", "liquidatable")
clock: Callable[[], float] = time.time  # the CLI's clock (tests replace it)


def parse_subject(text: str, flag: str = "--account") -> str:
    """A checksummed account, or an oracle subject (``oracle:jump:WETH``) as given."""
    clean = text.strip()
    if clean.lower().startswith("oracle:") and clean.count(":") == 2:
        kind, asset = clean.split(":")[1:]
        return f"oracle:{kind.lower()}:{asset.upper()}"
    if not is_address(clean):
        raise InputError(f"{flag} {clean[:50]!r} is not an address (0x and 40 hex digits) or an oracle subject "
                         "(oracle:KIND:ASSET, as history --alerts shows)")  # fmt: skip
    digits = clean[2:]
    if digits not in (digits.lower(), digits.upper()) and to_checksum_address(clean) != clean:
        raise InputError(f"{flag} {clean} has a bad EIP-55 checksum (a typo?); the checksummed form is "
                         f"{to_checksum_address(clean)}, or write it all-lowercase")  # fmt: skip
    return to_checksum_address(clean)


def _iso(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config, env=OfflineEnv())  # the database only: no token or RPC key needed


def _store(args: argparse.Namespace) -> Store:
    return Store(_config(args).store.path)


def cmd_silence_add(args: argparse.Namespace) -> int:
    if not (args.account or args.market or args.severity):
        raise InputError("silence add: give at least one of --account, --market, --severity (what to mute)")
    seconds = parse_duration(args.duration)
    account = parse_subject(args.account) if args.account else None
    config = _config(args)
    markets = [m.name for m in config.markets]
    if args.market and args.market not in markets:
        raise InputError(f"--market {args.market!r} is not in the config (markets: {', '.join(markets)})")
    now = clock()
    with Store(config.store.path) as store:
        silence_id = store.add_silence(account=account, market=args.market, severity=args.severity, starts_at=now,
                                       ends_at=now + seconds, comment=args.comment)  # fmt: skip
    what = ", ".join(f"{k} {v}" for k, v in (("account", account), ("market", args.market),
                                             ("severity <=", args.severity)) if v)  # fmt: skip
    print(f"silence {silence_id}: {what} muted until {_iso(now + seconds)} UTC ({args.comment})")
    return 0


def _state(row: dict[str, Any], now: float) -> str:
    if row["expired_at"] is not None:
        return "expired"
    if row["ends_at"] <= now:
        return "ended"
    return "active" if row["starts_at"] <= now else "pending"


def cmd_silence_list(args: argparse.Namespace) -> int:
    now = clock()
    with _store(args) as store:
        rows = store.silences() if args.all else store.silences(active_at=now)
    for r in rows:
        r["state"] = _state(r, now)
    if args.json:
        print(to_json(rows))
        return 0
    if not rows:
        print("no silences in force" + ("" if args.all else " (--all lists ended ones too)"))
        return 0
    print(table([(r["id"], r["state"], r["account"] or "*", r["market"] or "*", r["severity"] or "*",
                  _iso(r["starts_at"]), _iso(r["expired_at"] or r["ends_at"]), r["comment"]) for r in rows],
                ["id", "state", "account", "market", "severity <=", "from (UTC)", "until (UTC)", "comment"],
                ">"))  # fmt: skip
    return 0


def cmd_silence_expire(args: argparse.Namespace) -> int:
    with _store(args) as store:
        store.expire_silence(args.id, clock())
    print(f"silence {args.id} expired: matching alerts are sent again from now on")
    return 0


def cmd_ack(args: argparse.Namespace) -> int:
    """Acknowledge the open episode of an account (in every market, or --market) or of an alert id."""
    target = args.target.strip()
    now = clock()
    with _store(args) as store:
        if target.isdigit():
            alert = store.alert(int(target))
            if alert is None:
                raise InputError(f"alert {target} does not exist (history --alerts shows the ids)")
            latest = store.latest_alerts(alert["subject"], alert["market"])
            history = store.alerts(market=alert["market"], subject=alert["subject"])
            start = max((a["id"] for a in history if a["reason"] == "first"), default=alert["id"])
            if alert["id"] < start:
                raise InputError(f"alert {target} belongs to an episode of {alert['subject']} that has ended; "
                                 f"acknowledge the open one with its account or alert {start}")  # fmt: skip
        else:
            latest = store.latest_alerts(parse_subject(target, "ACCOUNT"), args.market)
        open_ = [a for a in latest if a["severity"] != "ok"]
        if not open_:
            raise InputError(f"{target}: no open alert episode to acknowledge (it is resolved or never alerted)")
        for a in open_:
            store.add_ack(a["market"], a["subject"], a["id"], a["severity"], args.comment, now)
            print(f"acknowledged {a['subject']} in {a['market']} at {a['severity']} (alert {a['id']}): "
                  "no repeats until it escalates or resolves")  # fmt: skip
    return 0


def add_silence_parsers(sub: Any) -> None:
    silence = sub.add_parser(
        "silence", help="mute alerts by account / market / severity for a while (recorded, not sent)",
        description="Silences live in the history database; the daemon applies them when it delivers. "
        "Example: liqmon silence add --config c.yaml --account 0xAbC... --for 6h --comment 'rebalancing'",
    )  # fmt: skip
    actions = silence.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="mute matching alerts (every matcher given must match)")
    add.add_argument("--config", required=True, type=Path, help="config file (YAML)")
    add.add_argument("--account", help="an account address (or an oracle subject such as oracle:jump:WETH)")
    add.add_argument("--market", help="a market name of the config")
    add.add_argument("--severity", choices=SEVERITIES, help="this severity and milder (an escalation still comes)")
    add.add_argument("--for", dest="duration", required=True, help="how long: 30m, 6h, 1d12h, 2w (at most a year)")
    add.add_argument("--comment", required=True, help="why (shown by silence list)")
    add.set_defaults(func=cmd_silence_add)
    listing = actions.add_parser("list", help="silences in force (--all: every one)")
    listing.add_argument("--config", required=True, type=Path, help="config file (YAML)")
    listing.add_argument("--all", action="store_true", help="ended and expired silences too")
    listing.add_argument("--json", action="store_true", help="JSON for machines")
    listing.set_defaults(func=cmd_silence_list)
    expire = actions.add_parser("expire", help="end a silence now")
    expire.add_argument("id", type=count(1, 2**63 - 1), help="the silence id (silence list)")
    expire.add_argument("--config", required=True, type=Path, help="config file (YAML)")
    expire.set_defaults(func=cmd_silence_expire)

    ack = sub.add_parser(
        "ack", help="acknowledge an open alert episode: its repeats stop until it escalates",
        description="ACCOUNT: its open episodes (every market, or --market); ALERT_ID: that alert's episode. "
        "Example: liqmon ack --config c.yaml 0xAbC... --comment 'on it'",
    )  # fmt: skip
    ack.add_argument("target", metavar="ACCOUNT|ALERT_ID", help="an account (or oracle:KIND:ASSET) or an alert id")
    ack.add_argument("--config", required=True, type=Path, help="config file (YAML)")
    ack.add_argument("--market", help="with ACCOUNT: only this market")
    ack.add_argument("--comment", default="", help="a note")
    ack.set_defaults(func=cmd_ack)
