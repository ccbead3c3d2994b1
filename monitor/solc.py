"""Run solc-js through ``scripts/solc_compile.cjs`` with Standard JSON.

Two solc-js builds are installed from npm: ``solc`` 0.8.19 (our own contracts, Morpho Blue)
and ``solc-0.8.27`` (the npm alias ``"solc-0.8.27": "npm:solc@0.8.27"``, for the
aave-v3-origin sources). :class:`SolcRelease` names one of them; :func:`run_solc_driver`
compiles with it (0.8.19 by default) and checks that the installed version is the one asked
for. :func:`solc_package_version` reads the installed version from its ``package.json``
(for cache keys) without running node.

Used by ``scripts/compile_contracts.py``, the Morpho Blue build and the aave-v3-origin build.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.errors import MonitorError


@dataclass(frozen=True, slots=True)
class SolcRelease:
    """One solc-js npm package (``package``, an alias allowed) and the version it must be."""

    package: str
    version: str  # e.g. "0.8.19"

    @property
    def version_prefix(self) -> str:
        """What ``solc.version()`` starts with, e.g. ``"0.8.19+"``."""
        return self.version + "+"


SOLC_0_8_19 = SolcRelease("solc", "0.8.19")
SOLC_0_8_27 = SolcRelease("solc-0.8.27", "0.8.27")

# kept for callers of the first version of this module
SOLC_VERSION_PREFIX = SOLC_0_8_19.version_prefix


class SolcError(MonitorError):
    """solc-js could not run; ``missing`` when node, the driver or the solc-js package is absent."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def solc_package_version(node_modules: Path, release: SolcRelease = SOLC_0_8_19) -> str:
    """The version in ``node_modules/<package>/package.json``; SolcError(missing) without it."""
    path = node_modules / release.package / "package.json"
    try:
        version = str(json.loads(path.read_text())["version"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SolcError(f"solc-js {release.version} is not installed ({path})", missing=True) from exc
    if version != release.version:
        raise SolcError(
            f"npm package {release.package} is solc-js {version} but {release.version} is required", missing=True
        )
    return version


def run_solc_driver(
    node: str,
    driver: Path,
    standard_input: dict[str, Any],
    *,
    cwd: Path,
    timeout: float,
    release: SolcRelease = SOLC_0_8_19,
) -> tuple[str, dict[str, Any]]:
    """(solc version, Standard JSON output) for ``standard_input``, compiled by ``release``."""
    try:
        proc = subprocess.run(
            [node, str(driver), release.package],
            input=json.dumps(standard_input, sort_keys=True),
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SolcError(f"solc-js {release.version} did not finish within {timeout:g} s") from exc
    except OSError as exc:
        raise SolcError(f"cannot run `{node}`: {exc}", missing=True) from exc
    if proc.returncode == 2:
        raise SolcError(proc.stderr.strip() or f"solc-js {release.version} is missing", missing=True)
    if proc.returncode != 0:
        raise SolcError(f"the solc driver failed (exit {proc.returncode}): {proc.stderr.strip()}")
    try:
        reply = json.loads(proc.stdout)
        version = str(reply["solcVersion"])
        output: dict[str, Any] = reply["output"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SolcError(f"the solc driver printed unexpected output: {exc}") from exc
    if not version.startswith(release.version_prefix):
        raise SolcError(
            f"solc-js {version} is installed as npm package {release.package} but {release.version} is required",
            missing=True,
        )
    return version, output
