"""The ``liqmon`` command line: the only place library errors become user messages."""

from __future__ import annotations

import argparse
import re
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_utils import is_address, to_checksum_address

from monitor import __version__
from monitor.alerts.pipeline import levels_by_account
from monitor.cli_alerts import add_alert_parsers
from monitor.cli_args import Parser, count, number, say_broken_pipe, seed
from monitor.cli_desk import history_desk, until_filter
from monitor.cli_ops import add_ops_parsers
from monitor.cli_risk import add_stress_parser
from monitor.cli_setup import add_setup_parsers
from monitor.cli_silence import add_silence_parsers
from monitor.config import Config, OfflineEnv, load_config
from monitor.errors import InputError, MonitorError
from monitor.models import MarketSnapshot, Position
from monitor.protocols.aave_revisions import version_label
from monitor.render import short_hf, table, to_csv, to_json
from monitor.risk.health import categories_by_id, effective_params, in_emode_category, rules_of
from monitor.scan import ScanResult, scan_all
from monitor.service import market_state_of
from monitor.store import Store
from monitor.store.mirror import shared_url

SHORT = {"aave_v3": "aave", "morpho_blue": "morpho", "compound_v3": "comet"}
EXIT_ERROR = 1
EXIT_USAGE = 2
MAX_BLOCK = 2**63 - 1  # what SQLite stores
MAX_SEED_POSITIONS = 5_000  # devnet seed / demo --positions: each is a few transactions on anvil
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a tool killed by the signal

DESCRIPTION = """\
liqmon watches lending positions on Aave V3 (and its forks, e.g. Spark), Morpho Blue and
Compound V3 on EVM chains and warns before they can be liquidated. Every command that reads
a chain takes --config FILE (see config.yaml); `liqmon demo` needs nothing: it runs a local
devnet with the real Aave V3 and Morpho Blue contracts and a Compound V3 look-alike, and
walks prices down the real ETH and BTC paths of 2020-03-12."""

EXAMPLES = """\
examples:
  liqmon demo
  liqmon scan --config config.yaml
  liqmon scan --config config.yaml --json
  liqmon history --config config.yaml --account 0xAbC... --since 2024-01-01 --format csv
  liqmon history --config config.yaml --below 1.2 --at 2026-11-20
  liqmon history --config config.yaml --portfolio
  liqmon stress --config config.yaml --all-markets --scenario 2022-11-ftx
  liqmon devnet up && liqmon devnet seed 50 && liqmon scan --config .liqmon-cache/devnet.yaml
  liqmon devnet price WETH 1500
"""


DEVNET_HELP = """\
A local anvil devnet with the demo's three-protocol world:
  Aave V3       the real contracts (@aave/core-v3): WETH, WBTC, USDC, DAI, SOL and a
                stablecoin eMode (market aave-v3-devnet)
  Morpho Blue   the real contract (@morpho-org/morpho-blue) on the same tokens: WETH/USDC
                and WBTC/DAI markets (market morpho-blue-devnet)
  Compound V3   a contract with Comet's semantics: base USDC, collateral WETH, WBTC, COMP
                (market compound-v3-devnet)
Every asset has one price on every protocol that lists it.

  up                start anvil, deploy the three, write .liqmon-cache/devnet.yaml (a config
                    scanning all three markets)
  seed N            N positions on each protocol (--seed, --first-index: more accounts)
  price             every protocol's oracle price of each asset
  price SYMBOL USD  move SYMBOL on every protocol that lists it (one block)
  status            the node and the three deployments' addresses
  down              stop the node"""

DEVNET_EXAMPLES = """\
examples:
  liqmon devnet up
  liqmon devnet seed 20
  liqmon devnet price WETH 1500
  liqmon scan --config .liqmon-cache/devnet.yaml
  liqmon devnet down"""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- scan -------------------------------------------------------------------------------


def cmd_scan(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store_cfg = config.store
    with Store(
        store_cfg.path, history=store_cfg.history, retention=store_cfg.retention, history_url=shared_url(store_cfg)
    ) as store:
        results = scan_all(config, store, market_name=args.market, progress=_say if args.verbose else _quiet)
        levels = {r.snapshot.market: scan_levels(config, store, r.snapshot) for r in results}
    if args.json:
        print(to_json([p for r in results for p in _positions_json(r.snapshot, levels[r.snapshot.market])]))
        return 0
    for result in results:
        print(_scan_table(result, levels[result.snapshot.market]))
    return 0


def scan_levels(config: Config, store: Store, snapshot: MarketSnapshot) -> dict[str, dict[str, Any]]:
    """The threshold policy's levels per account (the daemon's policy and config section)."""
    market = market_state_of(store, snapshot)
    return levels_by_account(snapshot, market, config.alerts, float(snapshot.timestamp),
                             observe_hours=config.daemon.interval_s / 3600.0)  # fmt: skip


def _quiet(_message: str) -> None:
    return None


def _positions_json(snapshot: MarketSnapshot, levels: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    rows = [p.as_json(snapshot.base_currency_unit) for p in snapshot.positions]
    for row in rows:  # the policy's levels by severity and why (none without debt)
        row.update((levels or {}).get(row["account"], {"levels": None, "level_reason": None, "position_class": None}))
    if snapshot.protocol == "aave_v3":
        for row, position in zip(rows, snapshot.positions, strict=True):
            row.update(aave_position_json(snapshot, position))
    return sorted(rows, key=_hf_key)


def aave_position_json(snapshot: MarketSnapshot, position: Position) -> dict[str, Any]:
    """The Aave fields of one ``scan --json`` row: the Pool revision and version, and the
    position's eMode with, per collateral leg, whether the category covers it and the LTV / LT /
    bonus (bps) that apply to it under the revision's rules (risk.health.effective_params)."""
    rules = rules_of(snapshot)
    categories = categories_by_id(snapshot.emode_categories)
    category = categories.get(position.emode_category)
    reserves = {r.asset: r for r in snapshot.reserves}
    legs = []
    for leg in position.legs:
        reserve = reserves.get(leg.asset)
        if reserve is None or not (leg.used_as_collateral and leg.collateral):
            continue
        ltv, lt, bonus = effective_params(reserve, position.emode_category, categories, rules)
        legs.append({
            "asset": leg.asset, "symbol": leg.symbol,
            "in_emode": in_emode_category(reserve, position.emode_category, categories, rules),
            "ltv_bps": ltv, "liquidation_threshold_bps": lt, "liquidation_bonus_bps": bonus,
        })  # fmt: skip
    return {
        "aave_revision": snapshot.revision,
        "aave_version": version_label(snapshot.revision) if snapshot.revision else rules.label,
        "emode": {"id": position.emode_category, "label": category.label if category else "", "collateral": legs},
    }


def _hf_key(row: dict[str, Any]) -> float:
    text = row["health_factor"]
    return float("inf") if text == "inf" else float(text)


def _scan_table(result: ScanResult, levels: dict[str, dict[str, Any]] | None = None) -> str:
    snap = result.snapshot
    rows = sorted(_positions_json(snap, levels), key=_hf_key)
    body = table(
        [
            (r["account"], short_hf(r["health_factor"]), _usd(r["collateral_usd"]), _usd(r["debt_usd"]),
             f"{r['liquidation_threshold_bps'] / 100:.2f}%", r["emode_category"] or "-", *_level_cells(r))
            for r in rows
        ],
        ["account", "HF", "collateral USD", "debt USD", "LT", "eMode", "watch", "warning", "critical", "level reason"],
        "<>>>>>>>><",
    )  # fmt: skip
    discovered = f", {result.new_accounts} new accounts" if result.new_accounts else ""
    head = f"{snap.market} @ block {snap.block}: {len(rows)} positions{discovered}"
    if snap.protocol == "aave_v3" and rows:
        head += f", Aave {rows[0]['aave_version']} (Pool revision {snap.revision})"
    liquidatable = sum(1 for r in rows if _hf_key(r) < 1)
    differ = sum(1 for r in rows if r.get("liquidatable_after_accrual") not in (None, r.get("liquidatable_now")))
    accrual = f" ({differ} only after interest accrual: isLiquidatable at the stored index says no)" if differ else ""
    return f"{head}\n{body}\nliquidatable (HF < 1): {liquidatable}{accrual}\n"


def _level_cells(row: dict[str, Any]) -> tuple[str, str, str, str]:
    lv = row.get("levels")
    if not lv:
        return "-", "-", "-", "-"
    return f"{lv['watch']:.2f}", f"{lv['warning']:.2f}", f"{lv['critical']:.2f}", row["level_reason"]


def _usd(text: str) -> str:
    return f"{float(text):,.2f}"


# -- history ----------------------------------------------------------------------------

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?)?$")


def parse_since(text: str | None) -> tuple[int | None, float | None]:
    """``--since``: a block number, or an ISO date/time (UTC)."""
    if text is None:
        return None, None
    if text.isascii() and text.isdigit():
        if len(text) > 19 or int(text) > MAX_BLOCK:
            raise InputError(f"--since {_short(text)}: a block number is at most {MAX_BLOCK:,}")
        return int(text), None
    if _DATE.match(text):
        try:
            when = datetime.fromisoformat(text).replace(tzinfo=UTC)
        except ValueError as exc:
            raise InputError(f"--since {text!r}: {exc}") from exc
        return None, when.timestamp()
    raise InputError(f"--since {_short(text)}: expected a block number or a date like 2024-01-31")


def _short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def parse_account(text: str) -> str:
    if not is_address(text):
        raise InputError(f"--account {_short(text, 50)} is not an address (0x followed by 40 hex digits)")
    digits = text[2:]
    if digits not in (digits.lower(), digits.upper()) and to_checksum_address(text) != text:
        raise InputError(
            f"--account {text} has a bad EIP-55 checksum (a typo?); the checksummed form of these digits is "
            f"{to_checksum_address(text)}, or write the address all-lowercase"
        )
    return to_checksum_address(text)


def cmd_history(args: argparse.Namespace) -> int:
    config = load_config(args.config, env=OfflineEnv())  # reads the database only: no token or RPC key needed
    if args.below is not None or args.portfolio:  # market-wide views for a desk (monitor/cli_desk.py)
        return history_desk(args, config)
    if args.at is not None:
        raise InputError(f"--at {args.at}: goes with --below HF or --portfolio (for one account use --since / --until)")
    if args.runs:
        return _history_runs(args, config.store.path)
    if args.alerts:
        return _history_alerts(args, config.store.path)
    if args.prices:
        return _history_prices(args, config)
    if args.account is None:
        raise InputError(
            "give --account ADDR (an account's positions), --below HF (every position below it), --portfolio, "
            "--alerts, --prices or --runs (stress / calibration runs)"
        )
    account = parse_account(args.account)
    since_block, since_time = parse_since(args.since)
    if args.market:
        config.market(args.market)
    with Store(config.store.path) as store:
        rows = store.position_history(account, market=args.market, since_block=since_block, since_time=since_time)
        rows = until_filter(rows, args.until)
    if args.plot:
        _plot_account(config.store.path, account, rows, args.plot)
        print(f"plot written to {args.plot}")
    return _emit(args.format, rows, f"no stored positions for {account} in {config.store.path}", lambda: table(
        [(r["market"], r["block"], _iso(r["timestamp"]), short_hf(r["health_factor"]), f"{r['collateral_usd']:,.2f}",
          f"{r['debt_usd']:,.2f}") for r in rows],
        ["market", "block", "time (UTC)", "HF", "collateral USD", "debt USD"],
        "<><>>>",
    ))  # fmt: skip


def _emit(fmt: str, rows: list[dict[str, Any]], empty: str, render: Callable[[], str]) -> int:
    """Print ``rows`` as JSON, CSV or (``render()``) a table; ``empty`` when there are none."""
    if fmt == "json":
        print(to_json(rows))
    elif fmt == "csv":
        sys.stdout.write(to_csv(rows))
    else:
        print(render() if rows else empty)
    return 0


def _history_runs(args: argparse.Namespace, db: Path) -> int:
    with Store(db) as store:
        runs = store.risk_runs(market=args.market)
    if args.format == "json":
        return _emit("json", runs, "", str)
    flat = [
        {"id": r["id"], "kind": r["kind"], "market": r["market"], "block": r["block"], "scenario": r["scenario"],
         "created": _iso(int(r["created_at"])), **{f"summary.{k}": v for k, v in r["summary"].items()}}
        for r in runs
    ]  # fmt: skip
    return _emit(args.format, flat, f"no stored stress or calibration runs in {db}", lambda: table(
        [(r["id"], r["kind"], r["market"], r["block"], r["scenario"], _iso(int(r["created_at"])), _run_line(r))
         for r in runs],
        ["run", "kind", "market", "block", "scenario", "created (UTC)", "result"],
        "><<><<<",
    ))  # fmt: skip


def _history_alerts(args: argparse.Namespace, db: Path) -> int:
    since_block, _ = parse_since(args.since)
    subject = parse_account(args.account) if args.account else None
    with Store(db) as store:
        alerts = store.alerts(market=args.market, subject=subject, since_block=since_block)
        alerts = until_filter(alerts, args.until, time_key="created_at")
        outbox: dict[int, list[dict[str, Any]]] = {}
        for r in store.outbox():
            outbox.setdefault(r["alert_id"], []).append(r)
    for a in alerts:
        rows = outbox.get(a["id"], [])
        a["deliveries"] = [{"channel": r["channel"], "destination": r["destination"], "status": r["status"],
                            "attempts": r["attempts"], "error": r["last_error"]} for r in rows]  # fmt: skip
        a["delivery"] = _delivery_summary(rows)
    return _emit(args.format, alerts, f"no stored alerts in {db}", lambda: table(
        [(a["id"], a["market"], a["block"], _iso(int(a["created_at"])), a["subject"], a["severity"], a["reason"],
          "-" if a["hf"] is None else f"{a['hf']:.4f}", "-" if a["threshold"] is None else f"{a['threshold']:.4f}",
          a["delivery"]) for a in alerts],
        ["id", "market", "block", "time (UTC)", "subject", "severity", "reason", "HF", "threshold", "delivery"],
        "><><<<<>><",
    ))  # fmt: skip


def _delivery_summary(rows: list[dict[str, Any]]) -> str:
    """``sent`` / ``pending`` / ``failed: <reason>`` per outbox row of an alert (channel named
    when there are several), ``no route`` without any."""
    if not rows:
        return "no route"

    def one(r: dict[str, Any]) -> str:
        if r["status"] == "silenced":  # recorded, not sent (liqmon silence list)
            return f"silenced by #{r['silence_id']}"
        failed = r["status"] == "failed" and r["last_error"]
        return f"failed: {r['last_error']}" if failed else str(r["status"])

    if len(rows) == 1:
        return one(rows[0])
    return "; ".join(f"{r['channel']} {one(r)}" for r in rows)


def _history_prices(args: argparse.Namespace, config: Any) -> int:
    since_block, _ = parse_since(args.since)
    markets = [args.market] if args.market else [m.name for m in config.markets]
    with Store(config.store.path) as store:
        prices = [row for m in markets for row in store.price_history(m, args.asset, since_block=since_block)]
        prices = until_filter(prices, args.until)
    return _emit(args.format, prices, f"no stored prices in {config.store.path}", lambda: table(
        [(p["market"], p["block"], _iso(p["timestamp"]), p["symbol"], f"{p['price_usd']:,.8f}") for p in prices],
        ["market", "block", "time (UTC)", "asset", "USD"],
        "<><<>",
    ))  # fmt: skip


def _plot_account(db: Path, account: str, rows: list[dict[str, Any]], path: Path) -> None:
    from monitor.plots import hf_history

    if not rows:
        raise InputError(f"no stored positions for {account}: nothing to plot")
    with Store(db) as store:
        alerts = store.alerts(subject=account)
    hf_history(account, rows, alerts, path)


def _run_line(run: dict[str, Any]) -> str:
    s = run["summary"]
    if "recommended_lt" in s:
        rec = s["recommended_lt"]
        return f"recommended LT {rec:.0%}" if rec is not None else "no LT within tolerance"
    if "bad_debt_var99_usd" in s:
        return f"VaR99 bad debt {s['bad_debt_var99_usd']:,.0f} USD"
    return f"{s.get('liquidatable', 0)} liquidatable, bad debt {s.get('bad_debt_usd', 0):,.0f} USD"


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


# -- devnet -----------------------------------------------------------------------------


def cmd_devnet(args: argparse.Namespace) -> int:
    from monitor.devnet import session
    from monitor.devnet.node import DevnetNode
    from monitor.devnet.world import seed_world, set_world_price, world_prices

    config_file = session.DevnetSession.config_file()
    if args.action == "up":
        s = session.up(args.port)
        w = s.world
        print(f"devnet up: {s.url} (pid {s.pid}): Aave V3 (PoolAddressesProvider {w.aave.pool_addresses_provider}), "
              f"Morpho Blue {w.morpho.morpho} ({len(w.morpho.markets)} markets), Compound V3 look-alike "
              f"{w.comet.comet}")  # fmt: skip
        print(f"seed positions with: liqmon devnet seed 20; scan all three with: liqmon scan --config {config_file}")
        return 0
    if args.action == "down":
        print("devnet stopped" if session.down() else "no devnet was running")
        return 0
    s = session.DevnetSession.load()
    node = DevnetNode(s.client())
    if args.action == "price":
        if args.symbol is None:
            prices = world_prices(node, s.world)
            cells = [(sym, *(f"{p[k]:,.8f}" if k in p else "-" for k in ("aave", "morpho", "comet")))
                     for sym, p in prices.items()]  # fmt: skip
            print(table(cells, ["asset", "Aave V3 USD", "Morpho Blue", "Compound V3 USD"], "<>>>"))
            return 0
        if args.usd is None:
            raise InputError("usage: liqmon devnet price SYMBOL USD (e.g. liqmon devnet price WETH 1500)")
        symbol = args.symbol.upper()
        set_world_price(node, s.world, symbol, args.usd)
        node.mine()
        print(f"{symbol} = {args.usd} USD on every protocol that lists it")
        return 0
    if args.action == "seed":
        seeded = seed_world(node, s.world, args.count, seed=args.seed, first_index=args.first_index)
        print(f"seeded {seeded.aave} Aave V3, {seeded.morpho} Morpho Blue and {seeded.comet} Compound V3 positions "
              f"(seed {args.seed}); scan with: liqmon scan --config {config_file}")  # fmt: skip
        return 0
    w = s.world
    print(f"devnet: {s.url} (pid {s.pid}); config {config_file}")
    print(f"  aave-v3-devnet: PoolAddressesProvider {w.aave.pool_addresses_provider}")
    print(f"  morpho-blue-devnet: Morpho {w.morpho.morpho}, markets "
          + ", ".join(f"{m.collateral_symbol}/{m.loan_symbol}" for m in w.morpho.markets))  # fmt: skip
    print(f"  compound-v3-devnet: Comet {w.comet.comet}, base {w.comet.base.symbol}, collateral "
          + ", ".join(c.symbol for c in w.comet.collaterals))  # fmt: skip
    return 0


# -- demo -------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.demo import run_demo

    print("liqmon demo: Black Thursday (2020-03-12) replayed on a local devnet (Aave V3, Morpho Blue, Compound V3)\n")
    rows: list[Any] = []
    walk = run_demo(positions=args.positions, seed=args.seed, substeps=args.substeps, db_path=args.db, say=_say,
                    verbose=args.verbose)  # fmt: skip
    with _terminated_unwinds(), closing(walk):  # SIGTERM / SIGHUP unwind: the demo's anvil is stopped
        last = _demo_walk(walk, rows)
    assert last is not None
    at_risk = [r for s in last for r in _positions_json(s.snapshot) if _hf_key(r) < 1.1]
    total = sum(len(s.snapshot.positions) for s in last)
    print(f"\nat risk at the end of the walk (HF < 1.1): {len(at_risk)} of {total} (Aave, Morpho Blue, Compound V3)")
    at_risk.sort(key=_hf_key)
    print(table(
        [(r["market"], r["account"], short_hf(r["health_factor"]), _usd(r["collateral_usd"]), _usd(r["debt_usd"]),
          ",".join(leg["symbol"] for leg in r["legs"] if int(leg["collateral"]))) for r in at_risk],
        ["market", "account", "HF", "collateral", "debt", "collateral assets"],
        "<<>>><",
    ))  # fmt: skip
    if args.db:
        print(f"\nhistory stored in {args.db}")
    return 0


def _demo_walk(walk: Iterator[tuple[Any, list[ScanResult], Any]], rows: list[Any]) -> list[ScanResult] | None:
    last = None
    for summary, scans, _tick in walk:
        line = (
            f"{summary.label:<22} ETH {summary.prices['WETH']:>8.2f}  BTC {summary.prices['WBTC']:>9.2f}  "
            f"block {summary.block:>5}  HF<1.1: {summary.at_risk:>3}  HF<1: {summary.liquidatable:>3} "
            f"({' '.join(f'{SHORT.get(k, k)} {v}' for k, v in summary.by_protocol.items())})  "
            f"min HF {summary.min_hf:.4f}"
        )
        print(line, flush=True)
        rows.append(summary)
        last = scans
    return last


@contextmanager
def _terminated_unwinds() -> Iterator[None]:
    """SIGTERM and SIGHUP raise SystemExit(128 + signal) while the block runs, so every
    ``with`` and ``finally`` below unwinds (the demo's anvil runs in its own session and
    would outlive a plain kill); the previous handlers come back after."""

    def stop(signum: int, _frame: Any) -> None:
        print(f"liqmon: stopped by {signal.Signals(signum).name}", file=sys.stderr, flush=True)
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# -- parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="liqmon",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"liqmon {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    scan = sub.add_parser("scan", help="one pass: discover borrowers, read positions at one block, store, print")
    scan.add_argument("--config", required=True, type=Path, help="config file (YAML)")
    scan.add_argument("--market", help="only this market (default: all markets in the config)")
    scan.add_argument("--json", action="store_true", help="print a JSON list of positions sorted by HF")
    scan.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    scan.set_defaults(func=cmd_scan)

    history = sub.add_parser(
        "history", help="the stored history: an account over time, every position below an HF at a date, "
        "a portfolio across markets, alerts, prices, risk runs"
    )
    history.add_argument("--config", required=True, type=Path, help="config file (YAML)")
    history.add_argument("--account", help="account address: its positions over time")
    history.add_argument("--runs", action="store_true", help="list stored stress and calibration runs instead")
    history.add_argument("--alerts", action="store_true", help="list stored alerts (of --account if given)")
    history.add_argument("--prices", action="store_true", help="list stored oracle prices (of --asset if given)")
    history.add_argument("--asset", help="with --prices: one asset (symbol or address)")
    history.add_argument(
        "--plot", type=Path, metavar="FILE.png", help="with --account: HF over time, thresholds, alerts"
    )
    history.add_argument("--market", help="only this market")
    history.add_argument("--since", help="a block number or a UTC date (2024-01-31 or 2024-01-31T12:00)")
    history.add_argument("--until", help="up to this block number or UTC date (with --since: a range)")
    history.add_argument("--below", metavar="HF", help="every position of --market (default: all) below this HF "
                         "at --at (default: the newest scan), or at any stored block of --since..--until")
    history.add_argument("--at", metavar="DATE|BLOCK", help="with --below / --portfolio: the stored state in force "
                         "at this block or UTC date")
    history.add_argument("--portfolio", action="store_true", help="per market: positions, collateral, debt, "
                         "liquidatable and at-risk counts (HF < --below, default 1.25); accounts in several markets")
    history.add_argument("--format", choices=("table", "csv", "json"), default="table")
    history.set_defaults(func=cmd_history)

    devnet = sub.add_parser(
        "devnet",
        help="a local anvil devnet with Aave V3, Morpho Blue and a Compound V3 look-alike",
        description=DEVNET_HELP,
        epilog=DEVNET_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    devnet.add_argument("action", choices=("up", "down", "status", "price", "seed"))
    devnet.add_argument("symbol", nargs="?", help="price: asset symbol (WETH, WBTC, USDC, DAI, SOL, COMP)")
    devnet.add_argument("usd", nargs="?", type=number(0.0, 1e15, open_low=True), help="price: new USD price")
    devnet.add_argument("--port", type=count(1024, 65535), help="up: loopback port (default: a free one)")
    devnet.add_argument("--seed", type=seed, default=1, help="seed: random seed (default 1)")
    devnet.add_argument(
        "--first-index", type=count(0, 1_000_000), default=0, help="seed: index of the first account"
    )
    devnet.set_defaults(func=cmd_devnet, count=None)

    add_stress_parser(sub)
    add_alert_parsers(sub)
    add_ops_parsers(sub)
    add_setup_parsers(sub)
    add_silence_parsers(sub)

    demo = sub.add_parser("demo", help="the embedded default: devnet + seeded positions + the 2020-03-12 crash")
    demo.add_argument(
        "--positions", type=count(1, MAX_SEED_POSITIONS), default=60, help="positions to seed (default 60)"
    )
    demo.add_argument("--seed", type=seed, default=2020, help="random seed (default 2020)")
    demo.add_argument(
        "--substeps", type=count(1, 24), default=2, help="price steps between real data points (1-24, default 2)"
    )
    demo.add_argument("--db", type=Path, help="keep the history in this SQLite file")
    demo.add_argument("-v", "--verbose", action="store_true", help="print each alert in full (default: one line each)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if args.command == "devnet" and args.action == "seed":
        try:
            args.count = count(1, MAX_SEED_POSITIONS)(args.symbol or "")
        except argparse.ArgumentTypeError as exc:
            parser.error(f"devnet seed takes a count (liqmon devnet seed 50): {exc}")
    try:
        return int(args.func(args))
    except MonitorError as exc:
        print(f"liqmon: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("liqmon: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `liqmon scan --json | head`: the reader has what it wanted
        say_broken_pipe()
        return EXIT_BROKEN_PIPE


def run() -> None:
    code = main()
    try:
        sys.stdout.flush()  # a pipe closed early fails here, at the last buffered write
    except BrokenPipeError:
        say_broken_pipe()
        code = EXIT_BROKEN_PIPE
    sys.exit(code)


if __name__ == "__main__":
    run()
