"""Run solc-js (npm ``solc`` 0.8.19) through ``scripts/solc_compile.cjs`` with Standard JSON.

Used by ``scripts/compile_contracts.py`` (our own contracts) and the Morpho Blue devnet build."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from monitor.errors import MonitorError

SOLC_VERSION_PREFIX = "0.8.19+"


class SolcError(MonitorError):
    """solc-js could not run; ``missing`` when node, the driver or solc 0.8.19 is absent."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def run_solc_driver(
    node: str, driver: Path, standard_input: dict[str, Any], *, cwd: Path, timeout: float
) -> tuple[str, dict[str, Any]]:
    """(solc version, Standard JSON output) for ``standard_input``."""
    try:
        proc = subprocess.run(
            [node, str(driver)],
            input=json.dumps(standard_input, sort_keys=True),
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SolcError(f"solc-js did not finish within {timeout:g} s") from exc
    except OSError as exc:
        raise SolcError(f"cannot run `{node}`: {exc}", missing=True) from exc
    if proc.returncode == 2:
        raise SolcError(proc.stderr.strip() or "solc-js is missing", missing=True)
    if proc.returncode != 0:
        raise SolcError(f"the solc driver failed (exit {proc.returncode}): {proc.stderr.strip()}")
    try:
        reply = json.loads(proc.stdout)
        version = str(reply["solcVersion"])
        output: dict[str, Any] = reply["output"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SolcError(f"the solc driver printed unexpected output: {exc}") from exc
    if not version.startswith(SOLC_VERSION_PREFIX):
        raise SolcError(
            f"solc-js {version} is installed but {SOLC_VERSION_PREFIX.rstrip('+')} is required", missing=True
        )
    return version, output
