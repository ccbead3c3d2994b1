"""Every Aave V3 signature liqmon uses exists, with the same outputs, in the real artifacts."""

from __future__ import annotations

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


FNS = [v for v in vars(abi).values() if isinstance(v, Fn)]


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
