"""Operations commands: ``liqmon doctor`` (check a deployment end to end)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from monitor.doctor import exit_code, render, run_doctor
from monitor.render import to_json


def cmd_doctor(args: argparse.Namespace) -> int:
    rows = run_doctor(args.config, send_test=args.send_test, offline=args.offline)
    if args.json:
        print(to_json([r.as_dict() for r in rows]))
    else:
        print(render(rows))
    return exit_code(rows)


def add_ops_parsers(sub: Any) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="check the config, RPC endpoints, markets, database and alert channels; exit 1 on any FAIL",
        description="Checks, one row each (OK / WARN / FAIL): the config loads; every RPC endpoint answers with the "
        "configured chain id, has a recent head, serves eth_getLogs over max_log_range blocks, has Multicall3, and "
        "its latency; every market's PoolAddressesProvider answers getPool(); the database opens, passes "
        "integrity_check and is in WAL mode; every alert channel builds and every route's destination is valid. "
        "Nothing is sent unless --send-test is given. Exit code 0 when nothing FAILed, 1 otherwise. Secrets are "
        "never printed.",
    )
    doctor.add_argument("--config", required=True, type=Path, help="config file (YAML)")
    doctor.add_argument(
        "--send-test", action="store_true", help="send one test message through every alert route (watch severity)"
    )
    doctor.add_argument(
        "--offline", action="store_true", help="only what needs no network: config, database, channels and routes"
    )
    doctor.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    doctor.set_defaults(func=cmd_doctor)
