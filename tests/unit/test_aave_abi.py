"""Every Aave V3 signature liqmon uses exists, with the same outputs, in the real artifacts
(3.0, @aave/core-v3 1.19.3) or, for the newer functions, in the 3.6.0 IPool.sol source."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.chain.abi import Fn, event_topic
from monitor.devnet.artifacts import aave_artifact, abi_type
from monitor.protocols import aave_v3_abi as abi

CONTRACTS = (
    "Pool", "PoolAddressesProvider", "PoolConfigurator", "ACLManager", "AaveOracle",
    "AaveProtocolDataProvider", "AToken", "VariableDebtToken", "StableDebtToken", "MintableERC20",
)  # fmt: skip


def artifact_functions() -> dict[str, set[tuple[str, ...]]]:
    found: dict[str, set[tuple[str, ...]]] = {}
    for name in CONTRACTS:
        for item in aave_artifact(name)["abi"]:
            if item.get("type") == "function":
                sig = f"{item['name']}({','.join(abi_type(p) for p in item['inputs'])})"
                found.setdefault(sig, set()).add(tuple(abi_type(p) for p in item["outputs"]))
    return found


FNS = [v for v in vars(abi).values() if isinstance(v, Fn) and v not in abi.ORIGIN_ONLY]
ORIGIN = Path(__file__).resolve().parents[2] / "node_modules/@aave-dao/aave-v3-origin/src/contracts"
SOLIDITY_TYPES = {"IPoolAddressesProvider": "address", "IERC20": "address"}


def same_encoding(ours: tuple[str, ...], theirs: tuple[str, ...]) -> bool:
    """Equal types, or theirs is one STATIC struct whose fields are ours (same bytes)."""
    if ours == theirs:
        return True
    if len(theirs) == 1 and theirs[0].startswith("(") and theirs[0].endswith(")"):
        inner = theirs[0][1:-1]
        static = not any(word in inner for word in ("string", "bytes", "[]"))
        return static and ",".join(ours) == inner
    return False


@pytest.mark.parametrize("fn", FNS, ids=[f.signature for f in FNS])
def test_signature_exists_in_artifacts(fn: Fn) -> None:
    functions = artifact_functions()
    assert fn.signature in functions, fn.signature
    assert any(same_encoding(fn.outputs, theirs) for theirs in functions[fn.signature]), functions[fn.signature]


def test_borrow_event_topic_matches_artifact() -> None:
    for item in aave_artifact("Pool")["abi"]:
        if item.get("type") == "event" and item["name"] == "Borrow":
            sig = f"Borrow({','.join(abi_type(p) for p in item['inputs'])})"
            assert sig == abi.BORROW_EVENT
            assert [p["name"] for p in item["inputs"] if p["indexed"]][1] == "onBehalfOf"
            assert event_topic(sig) == abi.BORROW_TOPIC
            return
    raise AssertionError("Borrow event not in the Pool ABI")


def origin_text(relative: str) -> str:
    path = ORIGIN / relative
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `npm ci` (package.json pins @aave-dao/aave-v3-origin 3.6.0)")
    return path.read_text()


def solidity_types(params: str, structs: dict[str, str]) -> tuple[str, ...]:
    """``uint8 id, address asset`` -> ("uint8", "address"); ``DataTypes.X memory`` -> its tuple."""
    out = []
    for param in filter(None, (p.strip() for p in params.split(","))):
        kind = param.split()[0]
        if kind.startswith("DataTypes."):
            kind = structs[kind.removeprefix("DataTypes.")]
        out.append(SOLIDITY_TYPES.get(kind, kind))
    return tuple(out)


def origin_functions() -> dict[str, tuple[str, ...]]:
    raw = {
        name: [line.split()[0] for line in body.split(";") if line.split()]
        for name, body in re.findall(
            r"struct (\w+) \{([^}]*)\}", re.sub(r"//[^\n]*", "", origin_text("protocol/libraries/types/DataTypes.sol"))
        )
    }

    def resolve(name: str) -> str:
        return "(" + ",".join(resolve(t) if t in raw else t for t in raw[name]) + ")"

    structs = {name: resolve(name) for name in raw}
    found = {}
    text = re.sub(r"\s+", " ", re.sub(r"//[^\n]*|/\*.*?\*/", "", origin_text("interfaces/IPool.sol"), flags=re.S))
    for name, params, returns in re.findall(
        r"function (\w+)\(([^)]*)\) external view(?: virtual)? returns \(([^)]*)\)", text
    ):
        inputs = solidity_types(params, structs)
        found[f"{name}({','.join(inputs)})"] = solidity_types(returns, structs)
    return found


@pytest.mark.parametrize("fn", abi.ORIGIN_ONLY, ids=[f.signature for f in abi.ORIGIN_ONLY])
def test_newer_signature_exists_in_the_3_6_interface(fn: Fn) -> None:
    functions = origin_functions()
    assert fn.signature in functions, fn.signature
    assert same_encoding(fn.outputs, functions[fn.signature]), functions[fn.signature]
    assert fn.signature not in artifact_functions() or fn.name == "POOL_REVISION"  # really newer than 3.0


def test_3_6_interface_parser_reads_known_functions() -> None:
    functions = origin_functions()
    assert functions["getReserveData(address)"] == (abi.RESERVE_DATA_TYPE,)  # ReserveDataLegacy: 3.0's layout
    assert functions["getEModeCategoryCollateralConfig(uint8)"] == ("(uint16,uint16,uint16)",)
    assert functions["getUserAccountData(address)"] == ("uint256",) * 6
