"""The shared history on PostgreSQL against the local SQLite store (issue 14 part 6).

The market of scripts/bench_history.py (seeded: N positions of 2-3 legs over R reserves, 1 %
of the accounts touched per block, indexes accruing every block, prices every 10 blocks) is
saved block by block, in the same run, into

- ``Store`` (SQLite, the local store, as the daemon writes it), and
- ``SharedHistory`` (PostgreSQL through psycopg, the same history code),

timing the first block (every position written) and the steady blocks (median, p95), then
the reads (latest positions, an account's history, the incremental price read) and the
bytes each database holds for the history. PostgreSQL runs on loopback (``--dsn``, or a
throwaway server from scripts/postgres.sh): over a network add one round trip per statement
(``statements per save`` is printed).

    .venv/bin/python scripts/bench_shared_history.py                 # 10,000 positions, 60 reserves, 300 blocks
    .venv/bin/python scripts/bench_shared_history.py --quick         # 2,000 positions, 20 reserves, 100 blocks
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.models import MarketSnapshot  # noqa: E402
from monitor.store import Store  # noqa: E402
from monitor.store.connection import SqlConnection, connect  # noqa: E402
from monitor.store.shared import HISTORY_TABLES, SharedHistory  # noqa: E402


def _simulation(positions: int, reserves: int) -> Any:
    spec = importlib.util.spec_from_file_location("bench_history", ROOT / "scripts" / "bench_history.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_history"] = module
    spec.loader.exec_module(module)
    return module.Simulation(positions, reserves), module.MARKET


class _Counting:
    """Counts the statements a SqlConnection sends (executemany counts once: one pipeline)."""

    def __init__(self, conn: SqlConnection) -> None:
        self.statements = 0
        for name in ("execute", "executemany", "query"):
            original = getattr(conn, name)

            def counted(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                self.statements += 1
                return _original(*args, **kwargs)

            setattr(conn, name, counted)


def _time(save: Any, snapshot: MarketSnapshot) -> float:
    started = time.perf_counter()
    save(snapshot)
    return (time.perf_counter() - started) * 1000


def _pg_bytes(conn: SqlConnection) -> int:
    total = 0
    for table in (*HISTORY_TABLES, "scans", "market_params", "markets"):
        total += int(conn.execute("SELECT pg_total_relation_size(?::regclass)", [table])[0][0])
    return total


def _sqlite_history_bytes(path: Path) -> int:
    import sqlite3

    db = sqlite3.connect(path)
    try:
        rows = db.execute(
            "SELECT sum(pgsize) FROM dbstat WHERE name IN (SELECT name FROM sqlite_master WHERE tbl_name IN"
            f" ({', '.join('?' for _ in (*HISTORY_TABLES, 'scans', 'market_params', 'markets'))}))",
            [*HISTORY_TABLES, "scans", "market_params", "markets"],
        ).fetchone()
        return int(rows[0] or 0)
    finally:
        db.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--positions", type=int, default=10_000)
    parser.add_argument("--reserves", type=int, default=60)
    parser.add_argument("--blocks", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="2,000 positions, 20 reserves, 100 blocks")
    parser.add_argument("--dsn", help="a PostgreSQL server (default: a throwaway one from scripts/postgres.sh)")
    args = parser.parse_args()
    if args.quick:
        args.positions, args.reserves, args.blocks = 2_000, 20, 100
    touched = max(1, args.positions // 100)

    started_here = None
    dsn = args.dsn
    if dsn is None:
        started_here = tempfile.mkdtemp(prefix="liqmon-bench-pg.")
        t0 = time.perf_counter()
        dsn = subprocess.run(
            ["bash", str(ROOT / "scripts" / "postgres.sh"), "start", started_here],
            check=True, capture_output=True, text=True,
        ).stdout.strip().splitlines()[-1]  # fmt: skip
        print(f"PostgreSQL started in {time.perf_counter() - t0:.2f} s")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = connect(dsn)
    admin.execute(f"CREATE SCHEMA {schema}")
    url = f"{dsn}{'&' if '?' in dsn else '?'}options=-c%20search_path%3D{schema}"
    folder = Path(tempfile.mkdtemp(prefix="liqmon-bench-shared."))
    try:
        sim, market = _simulation(args.positions, args.reserves)
        print(f"{args.positions:,} positions, {args.reserves} reserves, {args.blocks} blocks, {touched} touched each")
        local = Store(folder / "local.db")
        pg_conn = connect(url)
        counter = _Counting(pg_conn)
        shared = SharedHistory(url, conn=pg_conn)
        first = sim.snapshot()
        t_local0, t_pg0 = _time(local.save_snapshot, first), _time(shared.save_snapshot, first)
        counter.statements = 0
        local_ms, pg_ms = [], []
        for _ in range(args.blocks):
            snapshot = sim.step(touched)
            local_ms.append(_time(local.save_snapshot, snapshot))
            pg_ms.append(_time(shared.save_snapshot, snapshot))
        per_save = counter.statements / args.blocks

        def p95(values: list[float]) -> float:
            return sorted(values)[int(len(values) * 0.95) - 1]

        print("\nsave_snapshot        SQLite (Store)   PostgreSQL (SharedHistory)   ratio")
        print(f"first block (all)    {t_local0:10.1f} ms   {t_pg0:10.1f} ms                 {t_pg0 / t_local0:5.2f}")
        lm, pm = statistics.median(local_ms), statistics.median(pg_ms)
        print(f"steady, median       {lm:10.1f} ms   {pm:10.1f} ms                 {pm / lm:5.2f}")
        print(f"steady, p95          {p95(local_ms):10.1f} ms   {p95(pg_ms):10.1f} ms")
        print(f"statements a steady save on PostgreSQL: {per_save:.1f} + BEGIN and COMMIT (one round trip each)")

        account = sim.accounts[0].address
        reads = (
            ("latest_positions", lambda s: s.latest_positions(market)),
            ("position_history", lambda s: s.position_history(account)),
            ("price_history(after_block)", lambda s: s.price_history(market, after_block=sim.block - 10)),
        )
        print("\nreads                               SQLite        PostgreSQL")
        for name, read in reads:
            answers, times = [], []
            for store in (local, shared):
                t = time.perf_counter()
                answers.append(read(store))
                times.append((time.perf_counter() - t) * 1000)
            same = "same answer" if answers[0] == answers[1] else "DIFFERENT ANSWERS"
            print(f"{name:32s} {times[0]:9.1f} ms  {times[1]:9.1f} ms   {same}")
        local_bytes, pg_bytes = _sqlite_history_bytes(folder / "local.db"), _pg_bytes(pg_conn)
        rows = int(pg_conn.execute("SELECT count(*) FROM position_rows")[0][0])
        legs = int(pg_conn.execute("SELECT count(*) FROM position_legs")[0][0])
        print(f"\nhistory bytes: SQLite {local_bytes / 1e6:.1f} MB, PostgreSQL {pg_bytes / 1e6:.1f} MB"
              f" (ratio {pg_bytes / local_bytes:.2f}); {rows:,} position rows, {legs:,} leg rows")  # fmt: skip
        local.close()
        pg_conn.close()
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()
        if started_here is not None:
            subprocess.run(["bash", str(ROOT / "scripts" / "postgres.sh"), "stop", started_here], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
