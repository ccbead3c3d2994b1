"""``liqmon stress`` and ``liqmon calibrate``: risk questions answered from the stored
history (the newest scan of a market), no node needed. Runs are stored in SQLite."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from monitor import price_data
from monitor.cli_args import count, number, seed
from monitor.config import Config, load_config
from monitor.errors import InputError
from monitor.models import MarketSnapshot
from monitor.render import table, to_json
from monitor.risk.book import Book, book_from_snapshot
from monitor.risk.liquidation import liquidation_prices, repay_to_target
from monitor.risk.scenarios import (
    Scenario,
    correlated_scenario,
    historical_scenario,
    monte_carlo_bootstrap,
    monte_carlo_gbm,
    parse_shock,
    scenario_names,
    shock_scenario,
)
from monitor.risk.stress import evaluate, position_outcomes
from monitor.store import Store

MAX_PATHS = 200_000  # Monte Carlo paths: memory is paths x positions x assets


def stored_market(config: Config, store: Store, market: str | None) -> str:
    """The stored market to work on: ``--market`` (a config market, or one of the markets a
    config market stores, e.g. each Morpho Blue market id), or the only one there is."""
    stored = [str(m["name"]) for m in store.markets()]
    if market is None:
        if len(stored) == 1:
            return stored[0]
        if not stored:
            return config.markets[0].name  # load_snapshot says "run liqmon scan first"
        raise InputError(f"the history holds several markets ({', '.join(stored)}): choose one with --market")
    if market in stored:
        return market
    config.market(market)  # unknown everywhere: the error lists the config's markets
    return market


def _snapshot(config: Config, store: Store, market: str | None) -> MarketSnapshot:
    return store.load_snapshot(stored_market(config, store, market))


def data_symbols(book: Book) -> tuple[list[int], list[str], list[str]]:
    """Columns whose asset has price history, their data names, and the symbols without."""
    columns, names, missing = [], [], []
    for j, symbol in enumerate(book.symbols):
        try:
            names.append(price_data.resolve_asset(symbol))
            columns.append(j)
        except InputError:
            missing.append(symbol)
    return columns, names, missing


def _check_shock_symbols(book: Book, scenario: Scenario) -> None:
    known = {price_data.ALIASES.get(s.upper(), s.upper()) for s in book.symbols}
    unknown = [k for k in scenario.multipliers if k not in known]
    if unknown:
        raise InputError(
            f"unknown asset {', '.join(unknown)} in --shock: market {book.market} has {', '.join(book.symbols)}"
        )


def build_scenario(args: argparse.Namespace, book: Book) -> Scenario:
    if args.shock:
        scenario = shock_scenario(args.shock)
        _check_shock_symbols(book, scenario)
        return scenario
    if args.correlated:
        symbol, multiplier = parse_shock(args.correlated)
        book.column(symbol)
        _, names, _ = data_symbols(book)
        return correlated_scenario(symbol, multiplier - 1.0, names)
    return historical_scenario(args.scenario, args.horizon_days)


# -- stress -----------------------------------------------------------------------------


def cmd_stress(args: argparse.Namespace) -> int:
    modes = sum(bool(x) for x in (args.shock, args.scenario, args.correlated, args.monte_carlo))
    if modes != 1:
        raise InputError(
            "choose exactly one of --scenario NAME, --shock ASSET=x% (repeatable), --correlated ASSET=x% "
            f"or --monte-carlo N; scenarios: {', '.join(scenario_names())}"
        )
    config = load_config(args.config)
    if args.all_markets:
        return _all_markets(args, config)
    with Store(config.store.path) as store:
        snapshot = _snapshot(config, store, args.market)
        book = book_from_snapshot(snapshot)
        report = _monte_carlo(args, book) if args.monte_carlo else _single(args, book, snapshot)
        run_id = store.save_risk_run(
            "stress", book.market, book.block, report["scenario"], report["inputs"], report["summary"],
            report.pop("_outcomes", []),
        )  # fmt: skip
    report["run_id"] = run_id
    if args.json:
        print(to_json(report))
    else:
        print(report.pop("_text"))
        print(f"\nstored as risk run {run_id}; list runs with: liqmon history --config {args.config} --runs")
    report.pop("_text", None)
    return 0


ALL_MARKETS_HEADERS = ["market", "block", "positions", "liq. before", "liquidatable", "debt USD", "debt at risk",
                       "seized USD", "bad debt USD"]  # fmt: skip


def _all_markets(args: argparse.Namespace, config: Config) -> int:
    """``stress --all-markets``: the one scenario on the newest stored scan of every market of the
    config at once (the same multiplier for the same asset everywhere; Monte Carlo paths drawn
    once for all), per market and summed; one stored run per market."""
    from monitor.cli_desk import desk_markets
    from monitor.risk import stress_markets as sm

    if args.market:
        raise InputError(f"--market {args.market} with --all-markets: give one of them")
    if args.plot:
        raise InputError(f"--plot {args.plot}: draws one market's HF distribution, not --all-markets")
    with Store(config.store.path) as store:
        books, empty = [], []
        for name in desk_markets(config, store, None):
            snapshot = store.load_snapshot(name)
            if any(p.total_collateral_base or p.total_debt_base for p in snapshot.positions):
                books.append(book_from_snapshot(snapshot))
            else:
                empty.append(name)
        if not books:
            raise InputError(f"no market of {config.source} has stored positions with collateral or debt: "
                             "nothing to stress (run `liqmon scan`)")
        inputs = {"all_markets": True, "shock": args.shock, "scenario": args.scenario, "correlated": args.correlated,
                  "monte_carlo": args.monte_carlo, "method": args.method, "horizon_days": args.horizon_days,
                  "seed": args.seed}  # fmt: skip
        if args.monte_carlo:
            names = sm.data_names(books)
            if not names:
                raise InputError("no asset of these markets has price history for Monte Carlo")
            rng = np.random.default_rng(args.seed)
            draw = monte_carlo_gbm if args.method == "gbm" else monte_carlo_bootstrap
            per_mc, total_mc = sm.monte_carlo_books(books, names, draw(names, args.horizon_days, args.monte_carlo, rng))
            name = f"monte-carlo {args.method} {args.monte_carlo}x{args.horizon_days}d"
            rows = [{"market": b.market, "block": b.block, **sm.mc_summary(float(b.debt.sum()), b.size, o)}
                    for b, o in per_mc]  # fmt: skip
            total = sm.mc_summary(sum(r["debt_total_usd"] for r in rows), sum(b.size for b in books), total_mc)
            description = f"{args.monte_carlo} paths drawn once for {', '.join(names)}; VaR / ES of the per-path sum"
            missing = sm.symbols_without_data(books)
            description += f"; no price history (held constant): {', '.join(missing)}" if missing else ""
        else:
            scenario = _scenario_for_books(args, books)
            per, total = sm.stress_books(books, scenario)
            name, description = scenario.name, scenario.description
            rows = [{"market": m.market, "block": m.block, **m.summary} for m in per]
        run_ids = [
            store.save_risk_run("stress", r["market"], r["block"], name, inputs,
                                {k: v for k, v in r.items() if k not in ("market", "block")})
            for r in rows
        ]  # fmt: skip
    report = {"scenario": name, "description": description, "markets": rows, "total": total, "run_ids": run_ids,
              "markets_without_positions": empty}  # fmt: skip
    if args.json:
        print(to_json(report))
        return 0
    print(f"all markets of {args.config}: scenario {name}\n  {description}")
    if empty:
        print(f"  no positions stored (left out): {', '.join(empty)}")
    if args.monte_carlo:
        print(table(
            [(r["market"], r["block"], r["positions"], f"{r['debt_total_usd']:,.0f}", f"{r['bad_debt_mean_usd']:,.0f}",
              f"{r['bad_debt_var95_usd']:,.0f}", f"{r['bad_debt_var99_usd']:,.0f}", f"{r['bad_debt_es99_usd']:,.0f}")
             for r in [*rows, {"market": "all markets", "block": "", **total}]],
            ["market", "block", "positions", "debt USD", "bad debt mean", "VaR95", "VaR99", "ES99"], "<>>>>>>>",
        ))  # fmt: skip
    else:
        print(table(
            [(r["market"], r["block"], r["positions"], r["liquidatable_before"], r["liquidatable"],
              f"{r['debt_total_usd']:,.0f}", f"{r['debt_at_risk_usd']:,.0f}", f"{r['collateral_seized_usd']:,.0f}",
              f"{r['bad_debt_usd']:,.2f}") for r in [*rows, {"market": "all markets", "block": "", **total}]],
            ALL_MARKETS_HEADERS, "<>>>>>>>>",
        ))  # fmt: skip
    print(f"\nstored as risk runs {', '.join(map(str, run_ids))}; list them with: "
          f"liqmon history --config {args.config} --runs")
    return 0


def _scenario_for_books(args: argparse.Namespace, books: list[Book]) -> Scenario:
    """``build_scenario`` for several markets: shocks checked against the union of their assets,
    a correlated move conditioned over every asset any of them holds."""
    from monitor.risk.stress_markets import check_scenario_assets, data_names

    if args.shock:
        scenario = shock_scenario(args.shock)
        check_scenario_assets(books, scenario)
        return scenario
    if args.correlated:
        symbol, multiplier = parse_shock(args.correlated)
        if not any(s.upper() == symbol.upper() for b in books for s in b.symbols):
            held = sorted({s for b in books for s in b.symbols})
            raise InputError(f"--correlated {args.correlated}: no market holds {symbol} (they hold {', '.join(held)})")
        return correlated_scenario(symbol, multiplier - 1.0, data_names(books))
    return historical_scenario(args.scenario, args.horizon_days)


def _single(args: argparse.Namespace, book: Book, snapshot: MarketSnapshot) -> dict[str, Any]:
    scenario = build_scenario(args, book)
    m = scenario.vector(book.symbols)
    out = position_outcomes(book, m)
    liq_prices, distance = liquidation_prices(book)
    main = np.argmax(book.collateral, axis=1)
    repay = repay_to_target(book, args.target_hf)
    debt_total = float(book.debt.sum())
    summary = {
        "positions": book.size,
        "liquidatable_before": int((out.hf_before < 1).sum()),
        "liquidatable": int(out.liquidatable.sum()),
        "debt_total_usd": debt_total,
        "debt_at_risk_usd": float(out.debt_at_risk.sum()),
        "collateral_seized_usd": float(out.collateral_seized.sum()),
        "bad_debt_usd": float(out.bad_debt.sum()),
    }
    positions = []
    for i in np.argsort(out.hf_after, kind="stable"):
        positions.append({
            "account": book.accounts[i],
            "hf_before": _num(out.hf_before[i]),
            "hf_after": _num(out.hf_after[i]),
            "liquidatable": bool(out.liquidatable[i]),
            "debt_usd": float(book.debt[i].sum()),
            "debt_at_risk_usd": float(out.debt_at_risk[i]),
            "collateral_seized_usd": float(out.collateral_seized[i]),
            "bad_debt_usd": float(out.bad_debt[i]),
            "main_collateral": book.symbols[main[i]],
            "liquidation_price_usd": _num(liq_prices[i, main[i]]),
            "distance_pct": _num(distance[i, main[i]]),
            "repay_to_target_usd": float(repay[i]),
        })  # fmt: skip
    outcomes = [
        {"account": p["account"], "hf_before": p["hf_before"], "hf_after": p["hf_after"],
         "liquidatable": int(p["liquidatable"]), "debt_at_risk": p["debt_at_risk_usd"],
         "collateral_seized": p["collateral_seized_usd"], "bad_debt": p["bad_debt_usd"]}
        for p in positions
    ]  # fmt: skip
    if args.plot:
        from monitor.plots import hf_distribution

        hf_distribution(out.hf_before, out.hf_after, f"{book.market} @ {book.block}: {scenario.name}", args.plot)
    text = _single_text(book, scenario, summary, positions, args.top)
    return {
        "market": book.market,
        "block": book.block,
        "scenario": scenario.name,
        "description": scenario.description,
        "multipliers": {s: float(v) for s, v in zip(book.symbols, m, strict=True)},
        "inputs": {"shock": args.shock, "scenario": args.scenario, "correlated": args.correlated,
                   "horizon_days": args.horizon_days, "target_hf": args.target_hf},
        "summary": summary,
        "positions": positions,
        "_outcomes": outcomes,
        "_text": text,
    }  # fmt: skip


def _single_text(
    book: Book, scenario: Scenario, summary: dict[str, Any], positions: list[dict[str, Any]], top: int
) -> str:
    moves = ", ".join(f"{s} {(scenario.multiplier_for(s) - 1) * 100:+.1f}%" for s in book.symbols)
    head = [
        f"{book.market} @ block {book.block}: scenario {scenario.name}",
        f"  {scenario.description}",
        f"  price moves: {moves}",
        f"  liquidatable: {summary['liquidatable']} of {summary['positions']} positions "
        f"(before: {summary['liquidatable_before']})",
        f"  debt at risk {summary['debt_at_risk_usd']:,.0f} USD of {summary['debt_total_usd']:,.0f}; "
        f"collateral seized {summary['collateral_seized_usd']:,.0f}; bad debt {summary['bad_debt_usd']:,.2f}",
        "",
    ]
    rows = [
        (p["account"], _fmt(p["hf_before"]), _fmt(p["hf_after"]), "yes" if p["liquidatable"] else "",
         f"{p['debt_usd']:,.0f}", f"{p['collateral_seized_usd']:,.0f}", f"{p['bad_debt_usd']:,.0f}",
         f"{p['main_collateral']} {_fmt(p['liquidation_price_usd'], 2)} ({_fmt(p['distance_pct'], 1)}%)")
        for p in positions[:top]
    ]  # fmt: skip
    body = table(
        rows,
        ["account", "HF now", "HF after", "liq", "debt USD", "seized USD", "bad debt", "liq. price of main collateral"],
        "<>><>>><",
    )
    return "\n".join(head) + body


def _monte_carlo(args: argparse.Namespace, book: Book) -> dict[str, Any]:
    if args.monte_carlo < 10:
        raise InputError("--monte-carlo needs at least 10 paths")
    rng = np.random.default_rng(args.seed)
    columns, names, missing = data_symbols(book)
    if not columns:
        raise InputError(f"no asset of {book.market} has price history for Monte Carlo ({', '.join(book.symbols)})")
    if args.method == "gbm":
        sampled = monte_carlo_gbm(names, args.horizon_days, args.monte_carlo, rng)
    else:
        sampled = monte_carlo_bootstrap(names, args.horizon_days, args.monte_carlo, rng)
    m = np.ones((args.monte_carlo, len(book.symbols)))
    m[:, columns] = sampled
    out = evaluate(book, m)
    summary = {
        "positions": book.size,
        "paths": args.monte_carlo,
        "horizon_days": args.horizon_days,
        "method": args.method,
        "debt_total_usd": float(book.debt.sum()),
        "liquidatable_mean": float(out.liquidatable.mean()),
        "debt_at_risk_mean_usd": float(out.debt_at_risk.mean()),
        "bad_debt_mean_usd": float(out.bad_debt.mean()),
        "bad_debt_var95_usd": out.var(0.95),
        "bad_debt_var99_usd": out.var(0.99),
        "bad_debt_es95_usd": out.expected_shortfall(0.95),
        "bad_debt_es99_usd": out.expected_shortfall(0.99),
        "assets_without_history": missing,
    }
    name = f"monte-carlo {args.method} {args.monte_carlo}x{args.horizon_days}d"
    if args.plot:
        from monitor.plots import loss_distribution

        loss_distribution(out.bad_debt, summary["bad_debt_var95_usd"], summary["bad_debt_var99_usd"],
                          f"{book.market} @ {book.block}: {name}", args.plot)  # fmt: skip
    text = "\n".join([
        f"{book.market} @ block {book.block}: {name} (seed {args.seed})",
        f"  positions {book.size}, debt {summary['debt_total_usd']:,.0f} USD"
        + (f"; no price history (held constant): {', '.join(missing)}" if missing else ""),
        f"  liquidatable per path: mean {summary['liquidatable_mean']:.1f}",
        f"  debt at risk per path: mean {summary['debt_at_risk_mean_usd']:,.0f} USD",
        f"  bad debt: mean {summary['bad_debt_mean_usd']:,.0f}  VaR95 {summary['bad_debt_var95_usd']:,.0f}  "
        f"VaR99 {summary['bad_debt_var99_usd']:,.0f}  ES95 {summary['bad_debt_es95_usd']:,.0f}  "
        f"ES99 {summary['bad_debt_es99_usd']:,.0f} USD",
    ])  # fmt: skip
    return {
        "market": book.market, "block": book.block, "scenario": name,
        "inputs": {"paths": args.monte_carlo, "method": args.method, "horizon_days": args.horizon_days,
                   "seed": args.seed},
        "summary": summary, "_text": text,
    }  # fmt: skip


def _num(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


# -- calibrate --------------------------------------------------------------------------


def cmd_calibrate(args: argparse.Namespace) -> int:
    from monitor.risk.calibrate import calibrate

    config = load_config(args.config)
    weights = _crash_weights(args.crash_weight)
    with Store(config.store.path) as store:
        book = book_from_snapshot(_snapshot(config, store, args.market))
        book.column(args.asset)
        result = calibrate(
            book, args.asset, delay_hours=args.delay_hours, liquidity_usd=args.liquidity_usd,
            tolerance=args.tolerance, crash_tolerance=args.crash_tolerance, quantile=args.quantile,
            n_paths=args.paths, rng=np.random.default_rng(args.seed), crash_weights=weights,
            cascade=not args.no_cascade,
        )  # fmt: skip
        report = result.as_dict()
        summary = {
            "asset": result.asset, "current_lt": result.current_lt, "current_ltv": result.current_ltv,
            "recommended_lt": result.recommended_lt, "recommended_ltv": result.recommended_ltv,
            "smart_ltv": result.smart_ltv, "tolerance": result.tolerance, "quantile": result.quantile,
            "crash_tolerance": result.crash_tolerance, "binding": result.binding, "explanation": result.explanation,
        }  # fmt: skip
        inputs = {
            "asset": args.asset,
            "delay_hours": args.delay_hours,
            "liquidity_usd": args.liquidity_usd,
            "tolerance": args.tolerance,
            "crash_tolerance": args.crash_tolerance,
            "crash_weights": weights,
            "cascade": not args.no_cascade,
            "quantile": args.quantile,
            "paths": args.paths,
            "seed": args.seed,
        }
        run_id = store.save_risk_run("calibrate", book.market, book.block, f"calibrate {result.asset}", inputs, summary)
    report.update({"market": book.market, "block": book.block, "run_id": run_id})
    if args.plot:
        from monitor.plots import calibration_curve

        points = result.points
        calibration_curve(
            [p.lt for p in points],
            {"MC mean": [p.mean for p in points], "MC VaR95": [p.var95 for p in points],
             "MC VaR99": [p.var99 for p in points]},
            [result.tolerance * p.total_debt for p in points], result.recommended_lt, result.current_lt,
            f"{book.market} @ {book.block}: {result.asset} LT -> bad debt ({result.scenarios} Monte Carlo paths,"
            f" {len(result.crashes)} crashes, {result.delay_hours:g} h delay)", args.plot,
            crashes={c.name: list(c.bad_debt) for c in result.crashes},
            crash_tolerance_usd=[result.crash_tolerance * p.total_debt for p in points],
            warning=_edge_warning(result),
        )  # fmt: skip
    if args.json:
        print(to_json(report))
        return 0
    print(_calibration_text(result, book))
    print(f"\nstored as risk run {run_id}")
    return 0


def _crash_weights(items: list[str] | None) -> dict[str, float] | None:
    """``--crash-weight NAME=W`` (repeatable) as a mapping; the names are checked by calibrate."""
    if not items:
        return None
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = math.nan
        if not sep or not name or not math.isfinite(weight):
            raise InputError(f"--crash-weight {item!r}: expected NAME=WEIGHT, e.g. 2020-03-12=0.5")
        out[name.strip()] = weight
    return out


def _edge_warning(result: Any) -> str | None:
    if result.at_edge:
        return f"recommendation at the top of the sweep ({result.recommended_lt:.0%}): the stress set does not bind"
    if result.recommended_lt is None:
        return "no LT of the sweep passes: the recommendation is below the sweep"
    if result.recommended_lt <= result.points[0].lt + 1e-9:
        return f"recommendation at the bottom of the sweep ({result.recommended_lt:.0%})"
    return None


def _calibration_text(result: Any, book: Book) -> str:
    rec = (
        "none within tolerance"
        if result.recommended_lt is None
        else (f"LT {result.recommended_lt:.0%} / LTV {result.recommended_ltv:.0%}")
    )
    head = [
        f"{book.market} @ block {book.block}: calibration of {result.asset}",
        f"  scenarios: {len(result.crashes)} named crashes (apart) + {result.scenarios} Monte Carlo paths; liquidators"
        f" act {result.delay_hours:g} h after a position becomes liquidatable (the price moves over the delay);"
        f" seized collateral sold into {result.liquidity_usd:,.0f} USD of constant-product depth"
        + (" (cascade to the fixed point)" if result.cascade else " (no price impact)"),
        f"  current: LT {result.current_lt:.0%} / LTV {result.current_ltv:.0%}",
        f"  tests: every named crash's bad debt <= {result.crash_tolerance:.1%} of debt (weight 1 each unless"
        f" --crash-weight), Monte Carlo VaR{result.quantile * 100:g} <= {result.tolerance:.1%} of debt",
        f"  recommended: {rec}",
        f"  why: {result.explanation}",
        f"  RiskDAO smart LTV reference: {result.smart_ltv:.1%} (sigma over the delay {result.sigma_delay:.2%};"
        f" l = {result.sellable_usd:,.0f} USD sellable within the {result.bonus:.0%} bonus slippage)",
    ]
    warning = _edge_warning(result)
    if warning:
        head.append(f"  WARNING: {warning}")
    head.append("")
    names = [c.name for c in result.crashes]
    rows = []
    for g, p in enumerate(result.points):
        mark = " <" if result.recommended_lt is not None and abs(p.lt - result.recommended_lt) < 1e-9 else ""
        rows.append(
            (f"{p.lt:.0%}{mark}", f"{p.ltv:.0%}", f"{p.mean:,.0f}", f"{p.var99:,.0f}",
             f"{(p.var99 / p.total_debt if p.total_debt else 0):.2%}", f"{p.liquidatable_mean:.1f}",
             *(f"{c.fraction[g]:.1%}" for c in result.crashes))
        )  # fmt: skip
    headers = ["LT", "LTV", "MC mean", "MC VaR99", "VaR99/debt", "MC liq/path", *names]
    note = "\n  (crash columns: bad debt as a fraction of debt in that crash; < marks the recommendation)"
    return "\n".join(head) + table(rows, headers, ">" * len(headers)) + note


# -- parsers ----------------------------------------------------------------------------


def add_stress_parser(sub: Any) -> None:
    stress = sub.add_parser(
        "stress",
        help="what-if: price shocks, historical crashes, correlated shocks, Monte Carlo VaR",
        description="Stress the newest stored scan of a market (run `liqmon scan` first). Exactly one of "
        "--scenario, --shock, --correlated, --monte-carlo. Historical scenarios replay the worst window "
        f"(intraday lows) of real crashes: {', '.join(scenario_names())}.",
    )
    stress.add_argument("--config", required=True, type=Path, help="config file (YAML)")
    stress.add_argument("--market", help="market name (default: the config's only market)")
    stress.add_argument("--all-markets", action="store_true", help="the same scenario on every market of the config "
                        "at once (each one's newest stored scan; Monte Carlo paths drawn once for all), per market "
                        "and summed")
    stress.add_argument("--scenario", choices=scenario_names(), help="a named historical crash")
    stress.add_argument("--shock", action="append", metavar="ASSET=x%", help="instantaneous shock, e.g. WETH=-30%%")
    stress.add_argument("--correlated", metavar="ASSET=x%", help="shock one asset, move the others by their beta")
    stress.add_argument(
        "--monte-carlo", type=count(10, MAX_PATHS), metavar="N", help="N Monte Carlo paths: VaR / ES of bad debt"
    )
    stress.add_argument("--method", choices=("bootstrap", "gbm"), default="bootstrap", help="Monte Carlo method")
    stress.add_argument(
        "--horizon-days", type=count(1, 365), default=1, help="window of historical / Monte Carlo moves"
    )
    stress.add_argument("--seed", type=seed, default=1, help="Monte Carlo random seed")
    stress.add_argument(
        "--target-hf",
        type=number(1.0, 100.0, open_low=True),
        default=1.2,
        help="HF the repay amount restores (default 1.2)",
    )
    stress.add_argument("--top", type=count(0, 1_000_000), default=20, help="rows of the position table (default 20)")
    stress.add_argument("--json", action="store_true", help="machine-readable output")
    stress.add_argument("--plot", type=Path, metavar="FILE.png", help="HF distribution before / after")
    stress.set_defaults(func=cmd_stress)

    cal = sub.add_parser(
        "calibrate",
        help="sweep one collateral's liquidation threshold: LT -> bad debt per crash and Monte Carlo, a recommendation",
        description="For one collateral asset of the newest stored scan, sweep the liquidation threshold (LTV "
        "kept the same distance below), re-borrow each position at its current usage, and measure bad debt under "
        f"each named crash apart ({', '.join(scenario_names())}) and under bootstrapped Monte Carlo paths. "
        "Liquidators act --delay-hours after a position becomes liquidatable, at the price then (the move over the "
        "delay; within a day sqrt-time of the worst daily move), and sell the seized collateral into a "
        "constant-product market of --liquidity-usd depth, whose price impact liquidates more (a cascade solved "
        "to its fixed point). Recommends the highest LT whose bad debt in every crash stays within "
        "--crash-tolerance and whose Monte Carlo VaR stays within --tolerance, and says which constraint binds; "
        "compares with RiskDAO's smart LTV = exp(-c sigma / sqrt(l / d)) - bonus, l the volume sellable within "
        "the bonus slippage.",
    )
    cal.add_argument("--config", required=True, type=Path, help="config file (YAML)")
    cal.add_argument("--market", help="market name (default: the config's only market)")
    cal.add_argument("--asset", required=True, help="collateral asset symbol, e.g. WETH")
    cal.add_argument(
        "--delay-hours", type=number(0.0, 720.0), default=1.0, help="time before liquidators act (default 1)"
    )
    cal.add_argument(
        "--liquidity-usd",
        type=number(0.0, 1e18, open_low=True),
        default=5e6,
        help="DEX depth for seized collateral (default 5e6)",
    )
    cal.add_argument("--tolerance", type=number(0.0, 1.0, open_low=True), default=0.01,
                     help="Monte Carlo VaR limit as a fraction of debt (default 0.01)")  # fmt: skip
    cal.add_argument("--crash-tolerance", type=number(0.0, 1.0, open_low=True), default=0.02,
                     help="bad-debt limit in each named crash as a fraction of debt (default 0.02)")  # fmt: skip
    cal.add_argument("--crash-weight", action="append", metavar="NAME=W",
                     help="weight of a named crash in its test (default 1; 0 drops it), repeatable")  # fmt: skip
    cal.add_argument("--no-cascade", action="store_true", help="no price impact of the liquidation sales")
    cal.add_argument(
        "--quantile", type=number(0.5, 0.9999, open_low=True), default=0.99, help="VaR quantile (default 0.99)"
    )
    cal.add_argument("--paths", type=count(1, MAX_PATHS), default=2000, help="Monte Carlo paths (default 2000)")
    cal.add_argument("--seed", type=seed, default=1, help="random seed")
    cal.add_argument("--json", action="store_true", help="machine-readable output")
    cal.add_argument("--plot", type=Path, metavar="FILE.png", help="the curves (crashes apart) with the recommendation")
    cal.set_defaults(func=cmd_calibrate)


# -- backtest -----------------------------------------------------------------------------


def _policy_config(config: Config | None) -> Any:
    """The PolicyConfig ``liqmon run`` builds from the config file (the defaults without one)."""
    from monitor.config.alerts import policy_config
    from monitor.risk.policy import PolicyConfig

    if config is None:
        return PolicyConfig().validate()
    return policy_config(config.alerts).validate()


def _backtest_book(args: argparse.Namespace, config: Config | None) -> Any:
    from monitor.risk.backtest_book import realistic_book, stored_book

    if args.book_from_store:
        if config is None:
            raise InputError("--book-from-store replays the positions stored by `liqmon scan`: give --config FILE")
        with Store(config.store.path) as store:
            book = book_from_snapshot(_snapshot(config, store, args.market))
        return stored_book(book)
    return realistic_book(args.positions, args.seed, react_share=args.react_share)


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        out = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise InputError(f"{what} must be comma-separated numbers, got {text!r}") from exc
    if not out:
        raise InputError(f"{what} is empty; e.g. 0.1,1,10")
    return out


def _level_family(text: str) -> tuple[float, ...]:
    parts = text.split(":")
    if len(parts) != 3:
        raise InputError(f"--levels must be FIRST:LAST:STEP, e.g. 1.00:1.60:0.02, got {text!r}")
    first, last, step = _floats(",".join(parts), "--levels")
    if not (0 < first <= last) or step <= 0:
        raise InputError(f"--levels {text}: need 0 < FIRST <= LAST and STEP > 0")
    n = round((last - first) / step) + 1
    if n > 200:
        raise InputError(f"--levels {text}: {n} levels; at most 200")
    return tuple(round(first + i * step, 6) for i in range(n))


def cmd_backtest(args: argparse.Namespace) -> int:
    from monitor.risk import backtest as bt
    from monitor.risk import backtest_data as bd

    config = load_config(args.config) if args.config is not None else None
    cfg = _policy_config(config)
    cbook = _backtest_book(args, config)
    if args.prices is not None and args.prices.exists() and not args.prices.is_file():
        raise InputError(f"--prices {args.prices}: not a regular file (a directory, FIFO or device); give a CSV file")
    prices = bd.load_prices_csv(args.prices) if args.prices is not None else bd.shipped_daily()
    settings = bt.Settings(
        window_days=args.window_days, lead_hours=args.lead_hours, fold_windows=args.fold_windows,
        test_start=args.test_start, test_end=args.test_end, fit_start=args.fit_start,
        history_days=args.history_days, min_history_days=args.min_history_days,
        fixed_levels=_level_family(args.levels), cost_multiples=_floats(args.cost_multiples, "--cost-multiples"),
        severity=args.severity, bootstrap=args.bootstrap, block_windows=args.block_windows, seed=args.seed,
    )  # fmt: skip
    if args.plot is not None and args.plot.suffix.lower() != ".png":
        raise InputError(f"--plot {args.plot}: the file name must end in .png")
    progress = None if args.quiet else bt.progress_to_stderr
    if progress is not None:
        progress(f"backtest: {cbook.description}; prices {prices.source}")
    report = bt.run_backtest(cbook, prices, cfg, settings, progress=progress, jobs=args.jobs)
    if args.plot is not None:
        from monitor.plots import backtest_frontier

        backtest_frontier(report, args.plot)
    if args.json:
        print(to_json(report.as_dict()))
        return 0
    print(_backtest_text(report, args.by_class))
    return 0


def _pct(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.1%}"


def _ci_text(ci: tuple[float, float] | None, pct: bool) -> str:
    if ci is None or not all(math.isfinite(v) for v in ci):
        return "-"
    return f"{ci[0]:.1%}-{ci[1]:.1%}" if pct else f"{ci[0]:.0f}-{ci[1]:.0f}"


def _hours(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"


def _backtest_text(report: Any, by_class: bool) -> str:
    s = report.settings
    lines = [
        f"walk-forward backtest, out of sample {s['test_start']} .. {s['test_end']}: "
        f"{report.test_windows} test windows "
        f"of {s['window_days']:g} days ({report.train_windows} more before, for the fits), "
        f"{report.position_windows:,} position-windows",
        f"  prices: {report.prices}; book: {report.book}",
        f"  {s['severity']} episodes; credit only for an episode beginning <= {s['lead_hours']:g} h before the "
        f"liquidation (not at a window's start); alarm cost {s['alarm_cost_usd']:g} USD, miss = "
        f"{s['close_factor']:g} x debt x bonus",
        "",
    ]
    headers = ["rule", "kind", "liq.", "warned", "recall", "recall CI90", "false alarms", "FA/1000 pos-win",
               "FA/1000 CI90", "median lead h", "p10 lead h", "open at start"]  # fmt: skip
    rows = []
    for r in (*report.rules, report.walk_forward_fixed):
        rows.append((
            r.name, r.kind, r.liquidations, r.warned, _pct(r.recall), _ci_text(r.recall_ci, True),
            r.false_alarm_episodes, f"{r.false_alarms_per_1000:.1f}", _ci_text(r.false_alarms_per_1000_ci, False),
            _hours(r.median_lead_hours), _hours(r.p10_lead_hours), r.open_at_start,
        ))  # fmt: skip
    lines.append(table(rows, headers, "<<>>>>>>>>>>"))
    lines.append("")
    lines.append("folds (fixed level fitted on the windows before each):")
    for f in report.folds:
        crash = f" - tests {', '.join(f['crashes_tested'])}" if f["crashes_tested"] else ""
        lines.append(f"  {f['test_from'][:10]} .. {f['test_to'][:10]}: level {f['fixed_level']:.2f} "
                     f"(fit on {f['train_windows']} windows to {str(f['train_to'])[:10]}){crash}")  # fmt: skip
    c = report.comparison
    lines.append("")
    red = c["false_alarm_reduction"]
    ci = c["false_alarm_reduction_ci90"]
    if c["policy_false_alarm_episodes_at_target"] is None:
        lines.append(
            f"at the walk-forward fixed level's recall {_pct(c['target_recall'])} ({c['fixed_false_alarm_episodes']} "
            f"false-alarm episodes, median lead {_hours(c['fixed_median_lead_hours'])} h): the policy's frontier does "
            f"not reach it (its highest recall is {_pct(c['policy_max_recall'])})"
        )
    else:
        ci_txt = "-" if None in ci else f"{ci[0]:.1%} .. {ci[1]:.1%}"
        lines.append(
            f"at the walk-forward fixed level's recall {_pct(c['target_recall'])}: fixed "
            f"{c['fixed_false_alarm_episodes']} false-alarm episodes, policy frontier "
            f"{c['policy_false_alarm_episodes_at_target']:.0f} (reduction {_pct(red)}, CI90 {ci_txt}); median lead "
            f"fixed {_hours(c['fixed_median_lead_hours'])} h, policy {_hours(c['policy_median_lead_hours'])} h "
            f"(setting x{c['policy_setting_reaching_target']})"
        )
    lines.append(f"acceptance (>= 30 % fewer false alarms, lead not shorter): {'MET' if c['accepted'] else 'NOT MET'}")
    lines.append("each policy setting against the fixed family at the same recall:")
    fam_rows = [
        (f"x{f['cost_multiple']:g}", _pct(f["recall"]), f["false_alarm_episodes"],
         "-" if f["fixed_family_false_alarm_episodes_at_recall"] is None
         else f"{f['fixed_family_false_alarm_episodes_at_recall']:.0f}",
         _pct(f["reduction"]), f"{f['cost_usd']:,.0f}")
        for f in c["policy_vs_fixed_family"]
    ]  # fmt: skip
    lines.append(table(fam_rows, ["policy", "recall", "false alarms", "fixed family", "fewer", "stated cost USD"],
                       "<>>>>>"))  # fmt: skip
    lines.append(f"stated cost of the walk-forward fixed level: {report.walk_forward_fixed.cost_usd:,.0f} USD")
    if by_class:
        lines.append("")
        key = [report.walk_forward_fixed, *report.policy_rules()]
        for r in key:
            lines.append(f"{r.name} by class:")
            class_rows = [
                (k, v["position_windows"], v["liquidations"], v["warned"], _pct(v["recall"]),
                 v["false_alarm_episodes"], f"{v['false_alarms_per_1000']:.1f}")
                for k, v in r.by_class.items()
            ]  # fmt: skip
            lines.append(table(class_rows, ["class", "pos-win", "liq.", "warned", "recall", "false alarms", "FA/1000"],
                               "<>>>>>>"))  # fmt: skip
    for note in report.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


BACKTEST_HELP = """\
Walk-forward, per-episode backtest of the alert policy against every fixed HF level.

What is replayed: prices (the shipped daily OHLC 2014-2023, or --prices FILE at any
granularity) through a book (a seeded realistic book, or --book-from-store: the newest
stored scan of --config's market). Non-overlapping windows of --window-days; each position is
opened at a window's start at its book HF and followed to the window's end or its liquidation
(the first bar whose intraday adverse point has HF < 1). The monitor looks at each close.

Rules: the fixed family (--levels, default 1.00:1.60:0.02) and the threshold policy exactly
as `liqmon run` builds it from --config (its alerts.policy section; defaults without a file),
at several alarm-cost multiples (--cost-multiples; x1 = the config as it stands).

Counting: one alert per EPISODE (hysteresis: the policy's exit_margin / min_dwell_s). A
liquidation counts as warned only when a --severity episode BEGAN within --lead-hours before
it and not at the window's start; an episode without a liquidation within --lead-hours is a
false alarm. Walk-forward: the fixed level of each fold of --fold-windows test windows is the
one with the lowest stated cost (missed penalties + alarm cost x alarms) on the windows
before it; a named crash is never in the fit of the fold that tests it. 90 % confidence
intervals from a moving-block bootstrap over test windows.

The verdict line compares, at the walk-forward fixed level's recall, its false-alarm
episodes with the policy's frontier, and their median lead times.

Prices CSV: a header `timestamp,asset,price` or `timestamp,asset,open,high,low,close`;
timestamps ISO 8601 or unix seconds (the bar's close, UTC) on one regular grid.
"""


def add_backtest_parser(sub: Any) -> None:
    bt = sub.add_parser(
        "backtest",
        help="walk-forward backtest: the alert policy vs every fixed HF level, per episode, out of sample",
        description=BACKTEST_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  liqmon backtest --plot frontier.png\n  liqmon backtest --config config.yaml --json\n"
        "  liqmon backtest --prices hourly.csv --window-days 10 --test-start 2024-02-01\n"
        "  liqmon backtest --config config.yaml --book-from-store",
    )
    bt.add_argument("--config", type=Path, help="config file (YAML): the policy exactly as `liqmon run` uses it")
    bt.add_argument("--market", help="with --book-from-store: the stored market (default: the only one)")
    bt.add_argument("--book-from-store", action="store_true", help="replay the newest stored scan's positions")
    bt.add_argument(
        "--positions", type=count(1, 100_000), default=1000, help="size of the realistic book (default 1000)"
    )
    bt.add_argument("--seed", type=seed, default=7, help="seed of the book and of the bootstrap (default 7)")
    bt.add_argument("--react-share", type=number(0.0, 1.0), default=0.0,
                    help="share of users who act on a warning after the reaction time (default 0)")  # fmt: skip
    bt.add_argument(
        "--prices", type=Path, metavar="FILE.csv", help="prices CSV at any granularity (default: shipped daily)"
    )
    bt.add_argument(
        "--window-days",
        type=number(0.0, 3650.0, open_low=True),
        default=30.0,
        help="length of each evaluation window (default 30)",
    )
    bt.add_argument(
        "--lead-hours",
        type=number(0.0, 87_600.0, open_low=True),
        default=72.0,
        help="lead window that earns credit (default 72)",
    )
    bt.add_argument(
        "--fold-windows", type=count(1, 10_000), default=6, help="test windows per walk-forward fold (default 6)"
    )
    bt.add_argument("--test-start", default="2020-01-01", help="first day out of sample (default 2020-01-01)")
    bt.add_argument("--test-end", help="last day a test window may start (default: the end of the data)")
    bt.add_argument("--fit-start", default=None,
                    help="first day of the first training window (default: as early as the data allows)")  # fmt: skip
    bt.add_argument("--history-days", type=number(0.0, 36_500.0, open_low=True),
                    help="days of returns handed to the policy (default: its pool_days, as `liqmon run`)")  # fmt: skip
    bt.add_argument("--min-history-days", type=number(0.0, 36_500.0), default=60.0,
                    help="days of prices an asset needs before a window to take part (default 60)")  # fmt: skip
    bt.add_argument("--levels", default="1.00:1.60:0.02", help="fixed family FIRST:LAST:STEP (default 1.00:1.60:0.02)")
    bt.add_argument("--cost-multiples", default="0.01,0.03,0.1,0.3,1,3,10,30,100",
                    help="alarm-cost multiples at which the policy is evaluated (its frontier)")  # fmt: skip
    bt.add_argument("--severity", choices=("watch", "warning", "critical"), default="warning",
                    help="which episodes count as the warning (default warning)")  # fmt: skip
    bt.add_argument(
        "--bootstrap", type=count(0, 100_000), default=1000, help="bootstrap replicates for the CIs (default 1000)"
    )
    bt.add_argument("--block-windows", type=count(1, 10_000), default=3, help="windows per bootstrap block (default 3)")
    bt.add_argument("--by-class", action="store_true", help="also print recall and false alarms per position class")
    bt.add_argument("--jobs", type=count(1, 256), default=min(2, os.cpu_count() or 1),
                    help="processes replaying windows in parallel (default: 2 or the CPU count if lower)")  # fmt: skip
    bt.add_argument("--quiet", action="store_true", help="no progress on stderr")
    bt.add_argument("--json", action="store_true", help="machine-readable: every rule with kind, recall, CIs, leads")
    bt.add_argument("--plot", type=Path, metavar="FILE.png", help="the frontier: false alarms vs recall")
    bt.set_defaults(func=cmd_backtest)
