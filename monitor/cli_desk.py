"""``liqmon history`` for a risk desk: every position of a market below an HF at a block or
date (``--below HF --at``), or at any block of a range (``--below HF --since --until``), and a
portfolio view across markets (``--portfolio [--at]``). Read from the stored history only
(monitor.store.desk); every bad input is one line naming the value."""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from monitor.config import Config
from monitor.errors import InputError
from monitor.render import table, to_csv, to_json
from monitor.store import Store
from monitor.store.desk import StoredRange

MAX_BLOCK = 2**63 - 1  # what SQLite stores
AT_RISK_HF = "1.25"  # the portfolio's default at-risk level: the at_risk view's
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?)?$")


@dataclass(frozen=True, slots=True)
class When:
    """A point given as a block number or a UTC date/time (exactly one is set)."""

    flag: str
    text: str
    block: int | None = None
    timestamp: float | None = None

    def after(self, r: StoredRange) -> bool:
        return self.block > r.last_block if self.block is not None else (self.timestamp or 0) > r.last_time

    def before(self, r: StoredRange) -> bool:
        return self.block < r.first_block if self.block is not None else (self.timestamp or 0) < r.first_time

    def __str__(self) -> str:
        return f"{self.flag} {self.text}"


def parse_when(flag: str, text: str | None) -> When | None:
    """``--at`` / ``--since`` / ``--until``: a block number, or an ISO date (UTC; a date alone is 00:00)."""
    if text is None:
        return None
    if text.isascii() and text.isdigit():
        if len(text) > 19 or int(text) > MAX_BLOCK:
            raise InputError(f"{flag} {_short(text)}: a block number is at most {MAX_BLOCK:,}")
        return When(flag, text, block=int(text))
    if _DATE.match(text):
        try:
            when = datetime.fromisoformat(text).replace(tzinfo=UTC)
        except ValueError as exc:
            raise InputError(f"{flag} {text!r}: not a date ({exc}); e.g. 2026-11-20 or 2026-11-20T12:00") from None
        return When(flag, text, timestamp=when.timestamp())
    raise InputError(f"{flag} {_short(text)}: expected a block number or a UTC date (2026-11-20, 2026-11-20T12:00)")


def parse_hf(text: str, flag: str = "--below") -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InputError(f"{flag} {_short(text)}: expected a health factor such as 1.2") from None
    if not value.is_finite() or value <= 0 or value > 1_000_000:
        raise InputError(f"{flag} {_short(text)}: an HF limit must be above 0 and at most 1,000,000, e.g. 1.2")
    return value


def until_filter(rows: list[dict[str, Any]], text: str | None, *, time_key: str = "timestamp") -> list[dict[str, Any]]:
    """Rows at or before ``--until`` (by ``block``, or by ``time_key`` for a date)."""
    until = parse_when("--until", text)
    if until is None:
        return rows
    if until.block is not None:
        return [r for r in rows if r.get("block") is not None and int(r["block"]) <= until.block]
    return [r for r in rows if r.get(time_key) is not None and float(r[time_key]) <= (until.timestamp or 0.0)]


def _short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


# -- which markets ------------------------------------------------------------------------


def desk_markets(config: Config, store: Store, market: str | None) -> list[str]:
    """The stored markets a desk command reads: ``--market`` (a stored market, or a config market
    with every market it stores, e.g. each Morpho Blue market id), else every market of the config."""
    stored = [str(m["name"]) for m in store.markets()]

    def of(name: str) -> list[str]:
        return [s for s in stored if s == name or s.startswith(name + ":")]

    if market is not None:
        if market in stored:
            return [market]
        config.market(market)  # unknown everywhere: the error lists the config's markets
        found = of(market)
        if not found:
            raise InputError(f"--market {market}: no stored scan of it in {config.store.path}; run `liqmon scan` first")
        return found
    names = [s for m in config.markets for s in of(m.name)]
    if not names:
        raise InputError(f"no stored scan of any market of {config.source} in {config.store.path}; run `liqmon scan`")
    return names


def _ranges(store: Store, markets: list[str]) -> dict[str, StoredRange]:
    out = {}
    for m in markets:
        r = store.stored_range(m)
        if r is None:
            raise InputError(f"market {m} has no stored scan in {store.path}; run `liqmon scan` first")
        out[m] = r
    return out


def _span(r: StoredRange) -> str:
    return (f"stored: blocks {r.first_block:,}..{r.last_block:,}, {_iso(r.first_time)} .. {_iso(r.last_time)} UTC")


def _check_one_chain(when: When, ranges: dict[str, StoredRange]) -> None:
    chains = sorted({r.chain_id for r in ranges.values()})
    if when.block is not None and len(chains) > 1:
        raise InputError(
            f"{when}: a block number needs markets of one chain, these are on chains {', '.join(map(str, chains))};"
            " give a date or --market"
        )


def block_at(store: Store, r: StoredRange, when: When) -> int:
    """The stored scan in force at ``when``; an error naming the value outside the stored range."""
    if when.after(r):
        raise InputError(f"{when}: after the newest stored scan of {r.market} ({_span(r)})")
    if when.before(r):
        raise InputError(f"{when}: before the first stored scan of {r.market} ({_span(r)})")
    found = store.scan_block_at(r.market, block=when.block, timestamp=when.timestamp)
    assert found is not None  # within the range: the first scan at least
    return found


# -- history --below ------------------------------------------------------------------------


def history_desk(args: argparse.Namespace, config: Config) -> int:
    """``history --below`` / ``--portfolio``."""
    other = [flag for flag, on in (("--account", args.account), ("--alerts", args.alerts), ("--prices", args.prices),
                                   ("--runs", args.runs), ("--plot", args.plot)) if on]  # fmt: skip
    if other:
        view = "--portfolio" if args.portfolio else f"--below {args.below}"
        raise InputError(f"{view} is a market-wide view: it does not take {', '.join(other)} (use one view at a time)")
    at = parse_when("--at", args.at)
    since, until = parse_when("--since", args.since), parse_when("--until", args.until)
    limit = parse_hf(args.below) if args.below is not None else None
    if at is not None and (since or until):
        raise InputError(f"{at}: give either --at (one point) or --since / --until (a range), not both")
    with Store(config.store.path, history=config.store.history) as store:  # its bounds: store.desk
        markets = desk_markets(config, store, args.market)
        ranges = _ranges(store, markets)
        if args.portfolio:
            if since or until:
                raise InputError("--portfolio shows one point: give --at DATE|BLOCK (default: the newest scans)")
            return _portfolio(args, store, ranges, at, limit if limit is not None else Decimal(AT_RISK_HF))
        assert limit is not None
        if since or until:
            return _below_between(args, store, ranges, limit, since, until)
        return _below_at(args, store, ranges, limit, at)


def _blocks(store: Store, ranges: dict[str, StoredRange], at: When | None) -> dict[str, int]:
    if at is None:
        return {m: r.last_block for m, r in ranges.items()}
    _check_one_chain(at, ranges)
    return {m: block_at(store, r, at) for m, r in ranges.items()}


def _below_at(args: argparse.Namespace, store: Store, ranges: dict[str, StoredRange], limit: Decimal,
              at: When | None) -> int:  # fmt: skip
    blocks = _blocks(store, ranges, at)
    rows = [row for m, b in blocks.items() for row in store.positions_below(m, limit, b)]
    rows.sort(key=lambda r: (r["hf"], r["market"], r["account"]))
    if args.format != "table":
        return _machine(args.format, rows)
    for m, b in blocks.items():
        n = sum(1 for r in rows if r["market"] == m)
        print(f"{m} @ block {b:,} ({_iso(store.scan_time(m, b))} UTC): {n} positions below HF {limit}")
    if rows:
        print(table(
            [(r["market"], r["account"], _hf(r["hf"]), f"{r['collateral_usd']:,.2f}", f"{r['debt_usd']:,.2f}",
              r["emode_category"] or "-") for r in rows],
            ["market", "account", "HF", "collateral USD", "debt USD", "eMode"],
            "<<>>>>",
        ))  # fmt: skip
    return 0


def _below_between(args: argparse.Namespace, store: Store, ranges: dict[str, StoredRange], limit: Decimal,
                   since: When | None, until: When | None) -> int:  # fmt: skip
    for w in (since, until):
        if w is not None:
            _check_one_chain(w, ranges)
    if since and until and (since.block is None) == (until.block is None) and _point(since) > _point(until):
        raise InputError(f"{until}: before {since}; the range is --since .. --until")
    rows: list[dict[str, Any]] = []
    spans = []
    for m, r in ranges.items():
        if (since is not None and since.after(r)) or (until is not None and until.before(r)):
            raise InputError(f"{since or ''} {until or ''}: no stored scan of {m} in that range ({_span(r)})".strip())
        first = r.first_block if since is None or since.before(r) else block_at(store, r, since)
        last = r.last_block if until is None or until.after(r) else block_at(store, r, until)
        if first > last:
            raise InputError(f"{since} {until}: no stored scan of {m} in that range ({_span(r)})")
        spans.append((m, first, last))
        rows += store.positions_below_between(m, limit, first, last)
    rows.sort(key=lambda r: (r["lowest_hf"], r["market"], r["account"]))
    if args.format != "table":
        return _machine(args.format, rows)
    for m, first, last in spans:
        n = sum(1 for r in rows if r["market"] == m)
        print(f"{m} blocks {first:,}..{last:,}: {n} positions below HF {limit} at some stored block")
    if rows:
        print(table(
            [(r["market"], r["account"], _hf(r["lowest_hf"]), f"{r['lowest_block']:,}", _iso(r["lowest_timestamp"]),
              f"{r['first_below_block']:,}", "closed" if r["closed"] else _hf(r["last_hf"]),
              f"{r['collateral_usd']:,.2f}", f"{r['debt_usd']:,.2f}") for r in rows],
            ["market", "account", "lowest HF", "at block", "time (UTC)", "first below", "HF at end", "collateral USD",
             "debt USD"],
            "<<>><>>>>",
        ))  # fmt: skip
    return 0


def _portfolio(args: argparse.Namespace, store: Store, ranges: dict[str, StoredRange], at: When | None,
               limit: Decimal) -> int:  # fmt: skip
    view = store.portfolio(_blocks(store, ranges, at), limit)
    view["at_risk_hf"] = float(limit)
    if args.format == "json":
        print(to_json(view))
        return 0
    if args.format == "csv":
        sys.stdout.write(to_csv([*view["markets"], {"market": "total", **view["totals"]}]))
        return 0
    t = view["totals"]
    print(table(
        [*((m["market"], m["protocol"], f"{m['block']:,}", _iso(m["timestamp"]), m["positions"], m["borrowers"],
            f"{m['collateral_usd']:,.0f}", f"{m['debt_usd']:,.0f}", m["liquidatable"], m["at_risk"],
            f"{m['at_risk_debt_usd']:,.0f}", _hf(m["min_hf"])) for m in view["markets"]),
         ("total", "", "", "", t["positions"], t["borrowers"], f"{t['collateral_usd']:,.0f}", f"{t['debt_usd']:,.0f}",
          t["liquidatable"], t["at_risk"], f"{t['at_risk_debt_usd']:,.0f}", "")],
        ["market", "protocol", "block", "time (UTC)", "positions", "borrowers", "collateral USD", "debt USD", "HF<1",
         f"HF<{limit}", f"debt HF<{limit}", "min HF"],
        "<<><>>>>>>>>",
    ))  # fmt: skip
    shared = view["shared_accounts"]
    print(f"\naccounts in several markets: {len(shared)}")
    if shared:
        print(table(
            [(s["account"], ", ".join(s["markets"]), f"{s['collateral_usd']:,.2f}", f"{s['debt_usd']:,.2f}",
              _hf(s["min_hf"]), s["min_hf_market"] or "-") for s in shared],
            ["account", "markets", "collateral USD", "debt USD", "min HF", "in"],
            "<<>>><",
        ))  # fmt: skip
    return 0


def _point(w: When) -> float:
    return float(w.block) if w.block is not None else w.timestamp or 0.0


def _hf(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.4f}"


def _machine(fmt: str, rows: list[dict[str, Any]]) -> int:
    if fmt == "json":
        print(to_json(rows))
    else:
        sys.stdout.write(to_csv(rows))
    return 0
