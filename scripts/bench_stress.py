#!/usr/bin/env python3
"""Benchmark: ``monitor.risk.stress.evaluate`` on 100,000 positions x 1,000 scenarios.

A benchmark, not a test. It builds a synthetic book (``synthetic_book``, 5 assets, fixed
seed) and a matrix of correlated lognormal price multipliers (fixed seed), then measures:

1. ``evaluate`` -- liqmon's engine (float32 dense screen in scenario chunks, float64
   outcome arithmetic on the liquidatable (scenario, position) pairs only), on the full
   size, median of ``--repeat`` runs;
2. ``python loop`` -- a straightforward per-position, per-scenario Python loop computing
   the same outcomes (liquidatable count, debt at risk, collateral seized, bad debt). The
   full size would take far too long, so it runs on a subset (``--loop-positions`` x
   ``--loop-scenarios``) and its time is EXTRAPOLATED linearly per (position x scenario)
   pair;
3. ``naive numpy`` -- the obvious vectorisation: full float64 [S, P] matrices with a
   division for the HF, no chunking, no sparsity. On ``--naive-scenarios`` scenarios (the
   full size would need about 10 GB of temporaries), extrapolated per pair likewise.

It checks that the loop's and naive numpy's results equal ``evaluate``'s on their sizes:
liquidatable counts equal except for pairs with ``|HF - 1| < 2e-4`` (the float32 screen),
and debt at risk, seized and bad debt equal within 1e-6 relative (up to those ties).
Targets: ``evaluate`` <= 2 s for 100,000 x 1,000 and >= 50x faster than the Python loop.

Usage::

    .venv/bin/python scripts/bench_stress.py [--positions 100000] [--scenarios 1000]
        [--repeat 3] [--loop-positions 2000] [--loop-scenarios 50]
        [--naive-scenarios 100] [--chunk 128] [--seed 7] [--json]

Exit codes: 0 done (targets are reported, not enforced), 1 an engine disagrees, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from monitor.risk.book import Book, synthetic_book
from monitor.risk.stress import CLOSE_FACTOR_HF_THRESHOLD, DEFAULT_CLOSE_FACTOR, ScenarioOutcomes, evaluate

Array = NDArray[np.float64]
T = TypeVar("T")

SYMBOLS = ("WETH", "WBTC", "LINK", "USDC", "DAI")
PRICES = (2000.0, 60_000.0, 15.0, 1.0, 1.0)
LTS = (0.83, 0.78, 0.68, 0.78, 0.77)
DAILY_VOL = (0.045, 0.040, 0.065, 0.002, 0.002)
HORIZON_DAYS = 7.0
CRYPTO_CORR, STABLE_CORR = 0.8, 0.1
TIE = 2e-4
TARGET_SECONDS = 2.0
TARGET_RATIO = 50.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- inputs ---------------------------------------------------------------------------------


def make_book(n: int, seed: int) -> Book:
    # exact HF (Aave 3.5+, Morpho, Comet), as the loop and naive numpy below compute it
    return synthetic_book(n, SYMBOLS, PRICES, LTS, np.random.default_rng(seed), lt_rounding="exact")


def make_multipliers(s: int, seed: int) -> Array:
    """Driftless correlated lognormal multipliers over ``HORIZON_DAYS``: crypto assets
    correlated 0.8 with each other, stables 0.1 with everything."""
    a = len(SYMBOLS)
    crypto = np.array([v > 0.01 for v in DAILY_VOL])
    corr = np.where(np.outer(crypto, crypto), CRYPTO_CORR, STABLE_CORR)
    np.fill_diagonal(corr, 1.0)
    sigma = np.asarray(DAILY_VOL) * np.sqrt(HORIZON_DAYS)
    cov = corr * np.outer(sigma, sigma)
    z = np.random.default_rng(seed).standard_normal((s, a))
    log_m = -0.5 * np.diag(cov) + z @ np.linalg.cholesky(cov).T
    m: Array = np.exp(log_m)
    return m


# -- the two references ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Totals:
    """Per-scenario totals, plus the number of (scenario, position) pairs within TIE of HF 1."""

    liquidatable: NDArray[np.int64]
    debt_at_risk: Array
    collateral_seized: Array
    bad_debt: Array
    ties: NDArray[np.int64]
    tie_debt: Array


def python_loop(book: Book, multipliers: Array) -> Totals:
    """One position and one scenario at a time, in plain Python floats (no floor, as ``evaluate``)."""
    a = len(book.symbols)
    coll = book.collateral.tolist()
    debt = book.debt.tolist()
    lt = book.lt.tolist()
    bonus = book.bonus.tolist()
    s = len(multipliers)
    count = [0] * s
    at_risk, seized, bad = [0.0] * s, [0.0] * s, [0.0] * s
    ties, tie_debt = [0] * s, [0.0] * s
    for si, m_row in enumerate(multipliers.tolist()):
        for p in range(len(coll)):
            c_p, d_p, lt_p, b_p = coll[p], debt[p], lt[p], bonus[p]
            weighted = total_c = total_d = bonus_sum = 0.0
            for j in range(a):
                value = c_p[j] * m_row[j]
                total_c += value
                weighted += value * lt_p[j]
                bonus_sum += value * b_p[j]
                total_d += d_p[j] * m_row[j]
            hf = weighted / total_d if total_d > 0 else float("inf")
            if abs(hf - 1.0) < TIE:
                ties[si] += 1
                tie_debt[si] += total_d
            if hf >= 1.0:
                continue
            count[si] += 1
            at_risk[si] += total_d
            close = 1.0 if hf < CLOSE_FACTOR_HF_THRESHOLD else DEFAULT_CLOSE_FACTOR
            shocked = [c_p[j] * m_row[j] for j in range(a)]
            k = shocked.index(max(shocked))  # the largest collateral after the shock, as np.argmax
            seized[si] += min(close * total_d * b_p[k], shocked[k])
            avg_bonus = bonus_sum / total_c if total_c > 0 else 1.0
            bad[si] += max(0.0, total_d - total_c / avg_bonus)
    return Totals(
        np.array(count), np.array(at_risk), np.array(seized), np.array(bad), np.array(ties), np.array(tie_debt)
    )


def naive_numpy(book: Book, multipliers: Array) -> Totals:
    """Full float64 [S, P] matrices, HF by division, no chunking and no sparsity."""
    m = multipliers
    weighted = m @ (book.collateral * book.lt).T
    debt = m @ book.debt.T
    coll = m @ book.collateral.T
    bonus_value = m @ (book.collateral * book.bonus).T
    with np.errstate(divide="ignore", invalid="ignore"):
        hf = np.where(debt > 0, weighted / debt, np.inf)
        avg_bonus = np.where(coll > 0, bonus_value / coll, 1.0)
    liq = hf < 1.0
    close = np.where(hf < CLOSE_FACTOR_HF_THRESHOLD, 1.0, DEFAULT_CLOSE_FACTOR)
    shocked = m[:, None, :] * book.collateral[None, :, :]  # [S, P, A]
    main = np.argmax(shocked, axis=2)
    take = np.minimum(
        close * debt * np.take_along_axis(book.bonus[None], main[..., None], 2)[..., 0],
        np.take_along_axis(shocked, main[..., None], 2)[..., 0],
    )
    left = np.maximum(0.0, debt - coll / avg_bonus)
    near = np.abs(hf - 1.0) < TIE
    return Totals(
        liq.sum(axis=1),
        np.where(liq, debt, 0.0).sum(axis=1),
        np.where(liq, take, 0.0).sum(axis=1),
        np.where(liq, left, 0.0).sum(axis=1),
        near.sum(axis=1),
        np.where(near, debt, 0.0).sum(axis=1),
    )


def compare(name: str, ref: Totals, got: ScenarioOutcomes) -> list[str]:
    """Counts equal up to the tie pairs; sums within 1e-6 relative (up to the tie pairs' debt)."""
    problems: list[str] = []
    for i in range(len(ref.liquidatable)):
        gap = abs(int(got.liquidatable[i]) - int(ref.liquidatable[i]))
        if gap > ref.ties[i]:
            problems.append(
                f"{name} scenario {i}: liquidatable {ref.liquidatable[i]} vs evaluate {got.liquidatable[i]} "
                f"({ref.ties[i]} ties)"
            )
        slack = ref.tie_debt[i] * 1.5 if ref.ties[i] else 0.0  # seized <= debt x bonus for a tie
        for what, r, g in (
            ("debt_at_risk", ref.debt_at_risk[i], got.debt_at_risk[i]),
            ("collateral_seized", ref.collateral_seized[i], got.collateral_seized[i]),
            ("bad_debt", ref.bad_debt[i], got.bad_debt[i]),
        ):
            if abs(g - r) > 1e-6 * max(abs(r), abs(g)) + 1e-6 + slack:
                problems.append(f"{name} scenario {i}: {what} {r:.6f} vs evaluate {g:.6f}")
    return problems


# -- timing ---------------------------------------------------------------------------------


def timed(work: Callable[[], T], repeat: int, label: str) -> tuple[list[float], T]:
    times: list[float] = []
    value: T | None = None
    for i in range(repeat):
        start = time.perf_counter()
        value = work()
        times.append(time.perf_counter() - start)
        log(f"  {label} run {i + 1}/{repeat}: {times[-1]:.3f} s")
    assert value is not None
    return times, value


@dataclass(frozen=True, slots=True)
class Row:
    method: str
    positions: int
    scenarios: int
    runs: tuple[float, ...]
    seconds: float  # median measured at (positions x scenarios)
    full_seconds: float  # at the full size: measured, or extrapolated per pair
    extrapolated: bool

    @property
    def pairs(self) -> int:
        return self.positions * self.scenarios

    @property
    def pairs_per_second(self) -> float:
        return self.pairs / self.seconds


def machine() -> dict[str, Any]:
    blas = "unknown"
    try:
        config = np.show_config(mode="dicts")
        info = config["Build Dependencies"]["blas"]
        blas = f"{info.get('name', '?')} {info.get('version', '')}".strip()
    except Exception:  # older numpy has no dict mode
        pass
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def fmt_int(n: int) -> str:
    return f"{n:,}"


def table(rows: Sequence[Row], engine: Row, n: int, s: int) -> list[str]:
    lines = [
        f"| method | measured on (positions x scenarios) | seconds (median) | pairs/s | "
        f"seconds at {fmt_int(n)} x {fmt_int(s)} | ratio vs evaluate |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        full = f"{r.full_seconds:,.2f}" + (" (extrapolated)" if r.extrapolated else "")
        lines.append(
            f"| {r.method} | {fmt_int(r.positions)} x {fmt_int(r.scenarios)} | {r.seconds:.3f} | "
            f"{r.pairs_per_second:,.0f} | {full} | {r.full_seconds / engine.full_seconds:,.1f}x |"
        )
    return lines


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--positions", type=int, default=100_000, help="synthetic positions")
    parser.add_argument("--scenarios", type=int, default=1_000, help="scenario rows (multiplier vectors)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per method (median)")
    parser.add_argument("--loop-positions", type=int, default=2_000, help="positions for the Python loop")
    parser.add_argument("--loop-scenarios", type=int, default=50, help="scenarios for the Python loop")
    parser.add_argument("--naive-scenarios", type=int, default=100, help="scenarios for naive numpy (all positions)")
    parser.add_argument("--chunk", type=int, default=128, help="evaluate(): scenarios per chunk")
    parser.add_argument("--seed", type=int, default=7, help="seed for the book and the scenarios")
    parser.add_argument("--json", action="store_true", help="also print a JSON summary")
    args = parser.parse_args(argv)
    for name in ("positions", "scenarios", "repeat", "loop_positions", "loop_scenarios", "naive_scenarios", "chunk"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    args.loop_positions = min(args.loop_positions, args.positions)
    args.loop_scenarios = min(args.loop_scenarios, args.scenarios)
    args.naive_scenarios = min(args.naive_scenarios, args.scenarios)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    n, s = args.positions, args.scenarios
    env = machine()
    log(f"building a synthetic book of {n:,} positions x {len(SYMBOLS)} assets and {s:,} scenarios ...")
    book = make_book(n, args.seed)
    m = make_multipliers(s, args.seed + 1)

    log(f"evaluate(): {n:,} x {s:,}, chunk {args.chunk} ...")
    evaluate(book.with_rows(np.arange(min(n, 1000))), m[: min(s, 10)])  # warm-up: BLAS threads, imports
    eval_runs, outcome = timed(lambda: evaluate(book, m, chunk=args.chunk), args.repeat, "evaluate")
    eval_median = statistics.median(eval_runs)
    eval_row = Row("liqmon evaluate()", n, s, tuple(eval_runs), eval_median, eval_median, False)

    lp, ls = args.loop_positions, args.loop_scenarios
    sub_book, sub_m = book.with_rows(np.arange(lp)), m[:ls]
    log(f"python loop: {lp:,} x {ls:,} ({lp * ls:,} pairs) ...")
    loop_runs, loop_totals = timed(lambda: python_loop(sub_book, sub_m), args.repeat, "python loop")
    loop_median = statistics.median(loop_runs)
    loop_row = Row(
        "straightforward Python loop", lp, ls, tuple(loop_runs), loop_median, loop_median / (lp * ls) * n * s, True
    )
    problems = compare("python loop", loop_totals, evaluate(sub_book, sub_m, chunk=args.chunk))

    ns = args.naive_scenarios
    naive_m = m[:ns]
    log(f"naive numpy (float64 [S, P], no chunking): {n:,} x {ns:,} ...")
    naive_runs, naive_totals = timed(lambda: naive_numpy(book, naive_m), args.repeat, "naive numpy")
    naive_median = statistics.median(naive_runs)
    naive_row = Row(
        "naive numpy (float64 [S, P], division, no chunking)", n, ns, tuple(naive_runs), naive_median,
        naive_median / (n * ns) * n * s, ns != s,
    )  # fmt: skip
    problems += compare("naive numpy", naive_totals, evaluate(book, naive_m, chunk=args.chunk))

    if problems:
        for p in problems[:20]:
            log(f"MISMATCH {p}")
        log(f"FAILED: {len(problems)} disagreements with evaluate()")
        return 1

    rows = [eval_row, loop_row, naive_row]
    ratio_loop = loop_row.full_seconds / eval_row.seconds
    ratio_naive = naive_row.full_seconds / eval_row.seconds
    liq_pairs = int(outcome.liquidatable.sum())
    seconds_ok = eval_row.seconds <= TARGET_SECONDS * (n * s) / 100_000_000
    ratio_ok = ratio_loop >= TARGET_RATIO

    print(
        f"Stress engine: {n:,} synthetic positions x {s:,} scenarios ({len(SYMBOLS)} assets, "
        f"correlated lognormal multipliers over {HORIZON_DAYS:g} days, seed {args.seed}), median of {args.repeat}"
    )
    print(
        f"Machine: nproc {env['nproc']}, Python {env['python']}, numpy {env['numpy']}, BLAS {env['blas']}; "
        f"{env['date']}; load average at start {env['load_average']}"
    )
    print()
    print("\n".join(table(rows, eval_row, n, s)))
    print()
    print(
        f"evaluate(): {eval_row.seconds:.3f} s for {n * s:,} pairs = {eval_row.pairs_per_second:,.0f} pairs/s "
        f"(runs: {', '.join(f'{t:.3f}' for t in eval_runs)}); "
        f"{liq_pairs:,} liquidatable pairs ({liq_pairs / (n * s):.2%})."
    )
    print(
        f"Python loop: EXTRAPOLATED from {lp:,} positions x {ls:,} scenarios ({lp * ls:,} pairs, "
        f"{loop_median:.3f} s) linearly per pair to {n:,} x {s:,}: {loop_row.full_seconds:,.1f} s."
    )
    naive_note = (
        f"EXTRAPOLATED from {n:,} x {ns:,} ({naive_median:.3f} s) linearly per pair"
        if naive_row.extrapolated
        else "measured at the full size"
    )
    print(f"naive numpy: {naive_note}: {naive_row.full_seconds:,.2f} s.")
    print(
        f"Checked: the Python loop ({lp:,} x {ls:,}) and naive numpy ({n:,} x {ns:,}) agree with evaluate() "
        f"(counts equal except |HF-1| < {TIE:g} ties: {int(loop_totals.ties.sum())} and "
        f"{int(naive_totals.ties.sum())} tie pairs; sums within 1e-6)."
    )
    print(f"Ratio vs Python loop: {ratio_loop:,.0f}x; ratio vs naive numpy: {ratio_naive:,.1f}x.")
    print(
        f"Targets: evaluate <= {TARGET_SECONDS:g} s per 100,000 x 1,000: {'YES' if seconds_ok else 'NO'}; "
        f">= {TARGET_RATIO:g}x the Python loop: {'YES' if ratio_ok else 'NO'}."
    )
    if args.json:
        summary = {
            "positions": n,
            "scenarios": s,
            "assets": len(SYMBOLS),
            "seed": args.seed,
            "chunk": args.chunk,
            "repeat": args.repeat,
            "machine": env,
            "rows": [{**asdict(r), "pairs": r.pairs, "pairs_per_second": r.pairs_per_second} for r in rows],
            "liquidatable_pairs": liq_pairs,
            "ratio_vs_python_loop": ratio_loop,
            "ratio_vs_naive_numpy": ratio_naive,
            "tie_pairs": {"python_loop": int(loop_totals.ties.sum()), "naive_numpy": int(naive_totals.ties.sum())},
            "targets": {"seconds_le_2": seconds_ok, "ratio_ge_50": ratio_ok},
            "agree": True,
        }
        print()
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
