"""Compile npm Solidity sources with solc-js once and cache the artifacts in ``.liqmon-cache/``.

Shared by the Morpho Blue build (:mod:`monitor.devnet.morpho`) and the aave-v3-origin build
(:mod:`monitor.devnet.aave_origin_build`): :func:`source_cache_key` (sha256 of the sources,
the build configuration and the solc-js version), :func:`compile_standard_json` (node + the
solc driver, solc's errors raised as :class:`DevnetError`) and :func:`cached_contracts`
(read the cache, else compile and write it atomically).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from monitor.errors import DevnetError
from monitor.paths import project_root
from monitor.solc import SOLC_0_8_19, SolcError, SolcRelease, run_solc_driver

Contracts = dict[str, dict[str, Any]]


def source_cache_key(sources: Iterable[tuple[str, Path]], config: Mapping[str, Any], solc_version: str) -> str:
    """sha256 over each ``(label, path)`` in order (label, NUL, sha256 of the file), then
    ``config`` as sorted-key JSON, then the solc-js version."""
    digest = hashlib.sha256()
    for label, path in sources:
        digest.update(label.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    digest.update(json.dumps(config, sort_keys=True).encode())
    digest.update(solc_version.encode())
    return digest.hexdigest()


def compile_standard_json(
    what: str, standard_input: dict[str, Any], *, timeout: float, hint: str, release: SolcRelease = SOLC_0_8_19
) -> tuple[str, dict[str, Any]]:
    """(solc version, Standard JSON output) of ``standard_input``; DevnetError naming ``what``
    when node or the driver is missing, solc-js cannot run or solc reports errors."""
    node = shutil.which("node")
    if node is None:
        raise DevnetError(f"`node` was not found on PATH; it is needed to compile {what}: {hint}")
    driver = project_root() / "scripts" / "solc_compile.cjs"
    if not driver.is_file():
        raise DevnetError(f"the solc driver {driver} is missing")
    try:
        version, output = run_solc_driver(
            node, driver, standard_input, cwd=project_root(), timeout=timeout, release=release
        )
    except SolcError as exc:
        raise DevnetError(f"compiling {what}: {exc}" + (f"; {hint}" if exc.missing else "")) from exc
    errors = [
        str(d.get("formattedMessage") or d.get("message")).rstrip()
        for d in output.get("errors", [])
        if d.get("severity") == "error"
    ]
    if errors:
        raise DevnetError(f"solc reported errors compiling {what}:\n" + "\n".join(errors))
    return version, output


def load_cached(path: Path, complete: Callable[[Contracts], bool]) -> Contracts | None:
    """The ``contracts`` of the cache file at ``path``, or None if it is absent, unreadable or
    not ``complete``."""
    try:
        data = json.loads(path.read_text())
        contracts: Contracts = data["contracts"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return contracts if complete(contracts) else None


def write_atomically(path: Path, text: str, prefix: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename:
    concurrent runs never read half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_contracts(
    path: Path,
    *,
    complete: Callable[[Contracts], bool],
    compile: Callable[[], tuple[str, Contracts]],
    document: Callable[[str, Contracts], dict[str, Any]],
    tmp_prefix: str,
) -> Contracts:
    """The contracts cached at ``path`` if ``complete``; else ``compile()`` them and cache
    ``document(solc_version, contracts)`` (which must hold them under ``"contracts"``)."""
    cached = load_cached(path, complete)
    if cached is not None:
        return cached
    version, contracts = compile()
    write_atomically(path, json.dumps(document(version, contracts), sort_keys=True), tmp_prefix)
    return contracts
