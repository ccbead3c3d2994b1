"""Compile the newest Aave V3 (npm ``@aave-dao/aave-v3-origin`` 3.6.0, Pool revision 10) with solc-js.

The package ships Solidity sources only (BUSL-1.1); nothing compiled from it is committed.
:func:`origin_artifacts` compiles the contracts the devnet deploys with solc-js 0.8.27 (npm
alias ``solc-0.8.27``) using aave-v3-origin's own ``foundry.toml`` profile (optimizer 200
runs, evmVersion shanghai, ``bytecode_hash = 'none'``, no via-IR) and caches the result in
``.liqmon-cache/aave-origin-<sha256>.json``, keyed by every source file of the four npm
packages involved, the settings and the solc-js version. A cold compile takes about 10 s on
two cores (solc-js is WebAssembly, single-threaded); later runs read the cache in milliseconds.
``scripts/setup.sh`` warms the cache (``python -m monitor.devnet.aave_origin_build``) so the
test session does not pay for it.

Import remappings (aave-v3-origin's ``remappings.txt`` points into git submodules; here they
point into npm packages):

- ``solidity-utils/`` -> ``@bgd-labs/solidity-utils/src/`` (1.1.2, the package's dependency)
- ``openzeppelin-contracts/contracts/`` -> ``@openzeppelin/contracts/`` (5.x)
- ``openzeppelin-contracts-upgradeable/contracts/`` -> ``@openzeppelin/contracts-upgradeable/``

npm resolves solidity-utils' ``^5.1.0`` to the newest OpenZeppelin 5.x (5.7.0 in the lock), where
``ReentrancyGuardUpgradeable`` no longer exists: ``treasury/Collector.sol`` would not compile, but
nothing the devnet deploys imports it. The contracts compiled here need only the OpenZeppelin
remapping (``tests/devnet/test_origin_devnet.py`` walks their imports).

Public API:

- ``ORIGIN_CONTRACTS``: contract name -> source unit of everything compiled
- :func:`origin_artifacts` -> ``{name: {"abi", "bytecode", "linkReferences"}}``
- :func:`origin_artifacts_path` -> the cache file for the installed sources
- :func:`origin_package_version` -> the installed ``@aave-dao/aave-v3-origin`` version
- :func:`link_origin` -> creation bytecode with library addresses filled in
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from monitor.devnet.solc_cache import cached_contracts, compile_standard_json, source_cache_key
from monitor.errors import DevnetError
from monitor.paths import cache_dir, node_modules
from monitor.solc import SOLC_0_8_27, SolcError, solc_package_version

ORIGIN_PACKAGE = "@aave-dao/aave-v3-origin"
ORIGIN_VERSION = "3.6.0"
ORIGIN_SRC = f"{ORIGIN_PACKAGE}/src/contracts"
# the npm packages whose sources the build reads (their files make the cache key)
SOURCE_PACKAGES = (
    ORIGIN_PACKAGE,
    "@bgd-labs/solidity-utils",
    "@openzeppelin/contracts",
    "@openzeppelin/contracts-upgradeable",
)
SOLC = SOLC_0_8_27
COMPILE_TIMEOUT_S = 1800
SETUP_HINT = "run `bash scripts/setup.sh` in the project root"

# contract name -> source unit (under node_modules)
ORIGIN_CONTRACTS: dict[str, str] = {
    "PoolAddressesProvider": f"{ORIGIN_SRC}/protocol/configuration/PoolAddressesProvider.sol",
    "ACLManager": f"{ORIGIN_SRC}/protocol/configuration/ACLManager.sol",
    "PoolInstance": f"{ORIGIN_SRC}/instances/PoolInstance.sol",
    "PoolConfiguratorInstance": f"{ORIGIN_SRC}/instances/PoolConfiguratorInstance.sol",
    "ATokenInstance": f"{ORIGIN_SRC}/instances/ATokenInstance.sol",
    "VariableDebtTokenInstance": f"{ORIGIN_SRC}/instances/VariableDebtTokenInstance.sol",
    "AaveOracle": f"{ORIGIN_SRC}/misc/AaveOracle.sol",
    "DefaultReserveInterestRateStrategyV2": f"{ORIGIN_SRC}/misc/DefaultReserveInterestRateStrategyV2.sol",
    "AaveProtocolDataProvider": f"{ORIGIN_SRC}/helpers/AaveProtocolDataProvider.sol",
    "MintableERC20": f"{ORIGIN_SRC}/mocks/tokens/MintableERC20.sol",
    # external libraries the Pool and the PoolConfigurator link against (their ABIs hold events too)
    "SupplyLogic": f"{ORIGIN_SRC}/protocol/libraries/logic/SupplyLogic.sol",
    "BorrowLogic": f"{ORIGIN_SRC}/protocol/libraries/logic/BorrowLogic.sol",
    "LiquidationLogic": f"{ORIGIN_SRC}/protocol/libraries/logic/LiquidationLogic.sol",
    "FlashLoanLogic": f"{ORIGIN_SRC}/protocol/libraries/logic/FlashLoanLogic.sol",
    "PoolLogic": f"{ORIGIN_SRC}/protocol/libraries/logic/PoolLogic.sol",
    "ConfiguratorLogic": f"{ORIGIN_SRC}/protocol/libraries/logic/ConfiguratorLogic.sol",
    # the Errors library: its ABI holds every custom error (decode revert reasons)
    "Errors": f"{ORIGIN_SRC}/protocol/libraries/helpers/Errors.sol",
}

REMAPPINGS: tuple[str, ...] = (
    "solidity-utils/=@bgd-labs/solidity-utils/src/",
    "openzeppelin-contracts-upgradeable/contracts/=@openzeppelin/contracts-upgradeable/",
    "openzeppelin-contracts/contracts/=@openzeppelin/contracts/",
)

# aave-v3-origin foundry.toml [profile.default]: optimizer 200 runs, solc 0.8.27, shanghai, bytecode_hash none
ORIGIN_SETTINGS: dict[str, Any] = {
    "remappings": list(REMAPPINGS),
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "shanghai",
    "metadata": {"bytecodeHash": "none"},
    "outputSelection": {
        unit: {name: ["abi", "evm.bytecode.object", "evm.bytecode.linkReferences"]}
        for name, unit in ORIGIN_CONTRACTS.items()
    },
}


# artifacts already loaded in this process, by (node_modules, cache dir): the sources are hashed once
_MEMO: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}


def _package_dir(name: str) -> Path:
    path = node_modules() / name
    if not (path / "package.json").is_file():
        raise DevnetError(f"npm package {name} is not installed under {node_modules()}: {SETUP_HINT}")
    return path


def origin_package_version() -> str:
    """The installed ``@aave-dao/aave-v3-origin`` version (e.g. ``"3.6.0"``)."""
    path = _package_dir(ORIGIN_PACKAGE) / "package.json"
    try:
        return str(json.loads(path.read_text())["version"])
    except (OSError, ValueError, KeyError) as exc:
        raise DevnetError(f"cannot read {path}: {exc}; {SETUP_HINT}") from exc


def _solc_version() -> str:
    try:
        return solc_package_version(node_modules(), SOLC)
    except SolcError as exc:
        raise DevnetError(f"{exc}: {SETUP_HINT}") from exc


def _sources() -> Iterator[tuple[str, Path]]:
    for name in SOURCE_PACKAGES:
        package = _package_dir(name)
        for path in sorted(package.rglob("*.sol")):
            yield f"{name}/{path.relative_to(package).as_posix()}", path


def _cache_key(solc_version: str) -> str:
    """sha256 of every Solidity source of the packages involved, the settings and solc-js."""
    config = {"contracts": ORIGIN_CONTRACTS, "settings": ORIGIN_SETTINGS}
    return source_cache_key(_sources(), config, solc_version)


def origin_artifacts_path() -> Path:
    """Where the artifacts compiled from the installed sources and solc-js are cached."""
    return cache_dir() / f"aave-origin-{_cache_key(_solc_version())}.json"


def _complete(contracts: dict[str, dict[str, Any]]) -> bool:
    return all(isinstance(contracts.get(n), dict) and "bytecode" in contracts[n] for n in ORIGIN_CONTRACTS)


def _compile() -> tuple[str, dict[str, dict[str, Any]]]:
    sources = {
        unit: {"content": (node_modules() / unit).read_text(encoding="utf-8")}
        for unit in sorted(set(ORIGIN_CONTRACTS.values()))
    }
    standard_input = {"language": "Solidity", "sources": sources, "settings": ORIGIN_SETTINGS}
    version, output = compile_standard_json(
        "aave-v3-origin", standard_input, timeout=COMPILE_TIMEOUT_S, hint=SETUP_HINT, release=SOLC
    )
    contracts: dict[str, dict[str, Any]] = {}
    for name, unit in ORIGIN_CONTRACTS.items():
        compiled = output.get("contracts", {}).get(unit, {}).get(name)
        if not compiled:
            raise DevnetError(f"solc produced no contract {name} from {unit}")
        bytecode = compiled.get("evm", {}).get("bytecode", {})
        contracts[name] = {
            "abi": compiled.get("abi", []),
            "bytecode": "0x" + bytecode.get("object", ""),
            "linkReferences": bytecode.get("linkReferences", {}),
        }
    return version, contracts


def origin_artifacts() -> dict[str, dict[str, Any]]:
    """``{name: {"abi", "bytecode", "linkReferences"}}`` for every contract in ``ORIGIN_CONTRACTS``.

    Compiled from ``node_modules/@aave-dao/aave-v3-origin`` with solc-js 0.8.27 on the first
    call (about 10 s) and loaded from ``.liqmon-cache/aave-origin-<sha256>.json`` afterwards
    (once per process: later calls return the same dictionary, do not modify it).
    ``bytecode`` keeps solc's ``__$<hash>$__`` library placeholders: use :func:`link_origin`.
    """
    memo_key = (str(node_modules()), str(cache_dir()))
    if memo_key in _MEMO:
        return _MEMO[memo_key]
    contracts = cached_contracts(
        origin_artifacts_path(),
        complete=_complete,
        compile=_compile,
        document=lambda version, contracts: {
            "solcVersion": version, "package": f"{ORIGIN_PACKAGE}@{origin_package_version()}",
            "settings": ORIGIN_SETTINGS, "contracts": contracts,
        },
        tmp_prefix=".aave-origin-",
    )  # fmt: skip
    _MEMO[memo_key] = contracts
    return contracts


def link_origin(artifact: dict[str, Any], libraries: dict[str, str], name: str = "contract") -> bytes:
    """Creation bytecode of ``artifact`` with each library placeholder replaced by its address.

    ``libraries`` maps library names (e.g. ``"LiquidationLogic"``) to addresses; solc's
    ``linkReferences`` give byte offsets in the creation code."""
    hex_code = str(artifact["bytecode"])[2:]
    # placeholders are __$<34 hex>$__ (40 chars): make them valid hex first, overwrite below
    code = bytearray(bytes.fromhex(hex_code.replace("__$", "000").replace("$__", "000")))
    for _source, libs in (artifact.get("linkReferences") or {}).items():
        for lib_name, refs in libs.items():
            if lib_name not in libraries:
                raise DevnetError(f"{name} needs library {lib_name} linked")
            address = bytes.fromhex(libraries[lib_name][2:])
            for ref in refs:
                start, length = int(ref["start"]), int(ref["length"])
                code[start : start + length] = address
    return bytes(code)


def linked_libraries(artifact: dict[str, Any]) -> list[str]:
    """Names of the libraries ``artifact`` must be linked against."""
    return sorted({lib for libs in (artifact.get("linkReferences") or {}).values() for lib in libs})


def main() -> int:
    """``python -m monitor.devnet.aave_origin_build``: compile (or find cached) and report."""
    started = time.monotonic()
    try:
        path = origin_artifacts_path()
        cached = path.is_file()
        contracts = origin_artifacts()
    except DevnetError as exc:
        print(f"aave-v3-origin build: {exc}", file=sys.stderr)
        return 1
    state = "cached" if cached else "compiled"
    print(
        f"aave-v3-origin {origin_package_version()}: {len(contracts)} contracts {state} in "
        f"{time.monotonic() - started:.1f} s -> {path}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
