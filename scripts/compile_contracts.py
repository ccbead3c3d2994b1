#!/usr/bin/env python3
"""Compile liqmon's own Solidity contracts reproducibly.

Every ``contracts/src/*.sol`` file is compiled in one solc Standard JSON run (solc-js
0.8.19 from ``node_modules``, driven by ``scripts/solc_compile.cjs``) with fixed
settings: optimizer on, 200 runs, evmVersion ``paris`` and no metadata hash, so the
bytecode does not depend on file paths or the machine.

Each contract defined in those files is written to ``contracts/build/<Name>.json``
(keys ``abi``, ``bytecode``, ``compiler``, ``contractName``, ``deployedBytecode``,
``sourceSha256``); reference ABIs listed in ``ABI_EXPORTS`` are written to
``contracts/abi/<Name>.json``. Output is deterministic: sorted keys, indent 2,
trailing newline.

Usage::

    python scripts/compile_contracts.py           # write contracts/build and contracts/abi
    python scripts/compile_contracts.py --check   # exit 1 if the committed files are stale

Exit codes: 0 success, 1 compile error or ``--check`` found differences,
2 node / solc-js missing (run ``npm install``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from monitor.solc import SolcError, run_solc_driver

ROOT = Path(__file__).resolve().parents[1]
SRC_DIR = ROOT / "contracts" / "src"
BUILD_DIR = ROOT / "contracts" / "build"
ABI_DIR = ROOT / "contracts" / "abi"
DRIVER = ROOT / "scripts" / "solc_compile.cjs"


# contracts/abi/<key>.json  <-  ABI of contracts/build/<value>.json
ABI_EXPORTS: dict[str, str] = {"Multicall3": "LiqmonMulticall"}

SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "paris",
    "metadata": {"bytecodeHash": "none"},
    "outputSelection": {
        "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]},
    },
}

NODE_TIMEOUT_S = 300


class CompileFailure(Exception):
    """A problem to report to the user as one message, with an exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def dump_json(value: Any) -> str:
    """The one serialisation used for every file this script writes."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def source_unit_name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def find_sources() -> list[Path]:
    sources = sorted(SRC_DIR.glob("*.sol"))
    if not sources:
        raise CompileFailure(f"no Solidity sources found in {SRC_DIR}")
    return sources


def check_toolchain() -> str:
    """Return the path of ``node``; fail clearly when node or solc-js is missing."""
    node = shutil.which("node")
    if node is None:
        raise CompileFailure(
            f"`node` was not found on PATH; install Node.js (>= 18), then run `npm install` in {ROOT}",
            exit_code=2,
        )
    if not (ROOT / "node_modules" / "solc" / "package.json").is_file():
        raise CompileFailure(
            f"solc-js is not installed ({ROOT / 'node_modules' / 'solc'} is missing); run `npm install` in {ROOT}",
            exit_code=2,
        )
    if not DRIVER.is_file():
        raise CompileFailure(f"the solc driver {DRIVER} is missing", exit_code=2)
    return node


def run_solc(node: str, sources: list[Path]) -> tuple[str, dict[str, Any]]:
    """Compile ``sources`` with solc-js; return (solc version, Standard JSON output)."""
    standard_input = {
        "language": "Solidity",
        "sources": {source_unit_name(p): {"content": p.read_text(encoding="utf-8")} for p in sources},
        "settings": SETTINGS,
    }
    try:
        return run_solc_driver(node, DRIVER, standard_input, cwd=ROOT, timeout=NODE_TIMEOUT_S)
    except SolcError as exc:
        if exc.missing:
            raise CompileFailure(f"{exc}; run `npm install` in {ROOT}", exit_code=2) from exc
        raise CompileFailure(str(exc)) from exc


def report_diagnostics(output: dict[str, Any]) -> None:
    """Print warnings to stderr; raise when solc reported any error."""
    errors: list[str] = []
    for diag in output.get("errors", []):
        text = str(diag.get("formattedMessage") or diag.get("message") or diag).rstrip()
        if diag.get("severity") == "error":
            errors.append(text)
        else:
            print(text, file=sys.stderr)
    if errors:
        raise CompileFailure("solc reported errors:\n" + "\n".join(errors))


def prefixed(hex_code: str) -> str:
    return hex_code if hex_code.startswith("0x") else "0x" + hex_code


def build_files(version: str, output: dict[str, Any], sources: list[Path]) -> dict[Path, str]:
    """Every file this script owns, mapped to its exact expected text."""
    files: dict[Path, str] = {}
    artifacts: dict[str, dict[str, Any]] = {}
    compiled = output.get("contracts", {})
    for path in sources:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        unit = source_unit_name(path)
        for name, contract in sorted(compiled.get(unit, {}).items()):
            if name in artifacts:
                raise CompileFailure(f"contract name {name!r} is defined in more than one file of {SRC_DIR}")
            evm = contract.get("evm", {})
            artifact = {
                "abi": contract.get("abi", []),
                "bytecode": prefixed(evm.get("bytecode", {}).get("object", "")),
                "compiler": version,
                "contractName": name,
                "deployedBytecode": prefixed(evm.get("deployedBytecode", {}).get("object", "")),
                "sourceSha256": digest,
            }
            artifacts[name] = artifact
            files[BUILD_DIR / f"{name}.json"] = dump_json(artifact)
    for abi_name, contract_name in sorted(ABI_EXPORTS.items()):
        if contract_name not in artifacts:
            raise CompileFailure(
                f"{ABI_DIR / (abi_name + '.json')} is exported from contract "
                f"{contract_name!r}, which is not defined in {SRC_DIR}"
            )
        files[ABI_DIR / f"{abi_name}.json"] = dump_json(artifacts[contract_name]["abi"])
    return files


def stale_files(expected: dict[Path, str]) -> list[Path]:
    """JSON files in contracts/build (or exported ABIs) the script would not write."""
    present = set(BUILD_DIR.glob("*.json"))
    return sorted(present - set(expected))


def differences(expected: dict[Path, str]) -> list[str]:
    diffs: list[str] = []
    for path, text in sorted(expected.items()):
        rel = path.relative_to(ROOT).as_posix()
        if not path.is_file():
            diffs.append(f"missing: {rel}")
        elif path.read_text(encoding="utf-8") != text:
            diffs.append(f"differs: {rel}")
    for path in stale_files(expected):
        diffs.append(f"not produced by the sources (stale): {path.relative_to(ROOT).as_posix()}")
    return diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Compile contracts/src/*.sol into contracts/build/<Name>.json (solc 0.8.19)."
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="compile in memory only; exit 1 listing the files that differ from the output",
    )
    args = parser.parse_args(argv)

    try:
        sources = find_sources()
        node = check_toolchain()
        version, output = run_solc(node, sources)
        report_diagnostics(output)
        expected = build_files(version, output, sources)
    except CompileFailure as exc:
        print(f"compile_contracts: {exc}", file=sys.stderr)
        return exc.exit_code

    if args.check:
        diffs = differences(expected)
        if diffs:
            print(
                "compile_contracts: contracts/ is not reproducible from the sources; "
                "run `python scripts/compile_contracts.py`:",
                file=sys.stderr,
            )
            for line in diffs:
                print(f"  {line}", file=sys.stderr)
            return 1
        print(f"compile_contracts: {len(expected)} file(s) up to date ({version})")
        return 0

    written = 0
    for path, text in sorted(expected.items()):
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
        written += 1
        print(f"wrote {path.relative_to(ROOT).as_posix()}")
    for path in stale_files(expected):
        print(
            f"compile_contracts: warning: {path.relative_to(ROOT).as_posix()} is not produced "
            "by any contracts/src/*.sol file; delete it",
            file=sys.stderr,
        )
    print(f"compile_contracts: {len(expected)} file(s), {written} updated ({version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
