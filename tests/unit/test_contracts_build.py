"""The committed contract artifacts are reproducible and match the Multicall3 ABI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from eth_utils.abi import function_signature_to_4byte_selector

from monitor.contracts import load_artifact, project_root
from monitor.errors import DevnetError

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "compile_contracts.py"
DRIVER = ROOT / "scripts" / "solc_compile.cjs"

# The canonical Multicall3 interface: signature -> selector.
MULTICALL3_SELECTORS = {
    "aggregate((address,bytes)[])": "252dba42",
    "aggregate3((address,bool,bytes)[])": "82ad56cb",
    "aggregate3Value((address,bool,uint256,bytes)[])": "174dea71",
    "blockAndAggregate((address,bytes)[])": "c3077fa9",
    "getBasefee()": "3e64a696",
    "getBlockHash(uint256)": "ee82ac5e",
    "getBlockNumber()": "42cbb15c",
    "getChainId()": "3408e470",
    "getCurrentBlockCoinbase()": "a8b0574e",
    "getCurrentBlockDifficulty()": "72425d9d",
    "getCurrentBlockGasLimit()": "86d516e8",
    "getCurrentBlockTimestamp()": "0f28c97d",
    "getEthBalance(address)": "4d2301cc",
    "getLastBlockHash()": "27e86d6e",
    "tryAggregate(bool,(address,bytes)[])": "bce38bd7",
    "tryBlockAndAggregate(bool,(address,bytes)[])": "399542e9",
}


def _canonical_type(param: dict[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def _signatures(abi: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        f"{item['name']}({','.join(_canonical_type(p) for p in item['inputs'])})": item
        for item in abi
        if item.get("type") == "function"
    }


def _run_script(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [sys.executable, str(cwd / "scripts" / "compile_contracts.py"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
        check=False,
    )


def test_committed_build_is_reproducible() -> None:
    # Needs node + solc-js: fail loudly (never skip) when they are missing.
    if shutil.which("node") is None:
        pytest.fail("`node` is not on PATH: install Node.js and run `npm install` in the project root")
    if not (ROOT / "node_modules" / "solc" / "package.json").is_file():
        pytest.fail(f"solc-js is missing from {ROOT / 'node_modules'}: run `npm install`")
    proc = _run_script("--check")
    assert proc.returncode == 0, (
        f"compile_contracts.py --check exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )


def test_multicall_artifact_has_runtime_code_and_aggregate3() -> None:
    artifact = load_artifact("LiqmonMulticall")
    assert artifact["contractName"] == "LiqmonMulticall"
    assert artifact["compiler"].startswith("0.8.19+commit.")
    runtime = artifact["deployedBytecode"]
    assert runtime.startswith("0x")
    assert len(runtime) > 2
    bytes.fromhex(runtime[2:])
    # no constructor: the runtime code must work when installed with anvil_setCode
    assert not any(item.get("type") == "constructor" for item in artifact["abi"])

    functions = _signatures(artifact["abi"])
    assert "aggregate3((address,bool,bytes)[])" in functions
    selector = function_signature_to_4byte_selector("aggregate3((address,bool,bytes)[])")
    assert selector.hex() == "82ad56cb"
    # the selector is dispatched by the runtime code (PUSH4 <selector>)
    assert "63" + selector.hex() in runtime.lower()


def test_multicall_abi_matches_multicall3_interface() -> None:
    artifact = load_artifact("LiqmonMulticall")
    functions = _signatures(artifact["abi"])
    assert set(functions) == set(MULTICALL3_SELECTORS)
    for signature, expected in MULTICALL3_SELECTORS.items():
        assert function_signature_to_4byte_selector(signature).hex() == expected, signature
        mutability = functions[signature]["stateMutability"]
        if signature.startswith("get"):
            assert mutability == "view", signature
        else:
            assert mutability == "payable", signature

    aggregate3 = functions["aggregate3((address,bool,bytes)[])"]
    assert [_canonical_type(o) for o in aggregate3["outputs"]] == ["(bool,bytes)[]"]
    aggregate = functions["aggregate((address,bytes)[])"]
    assert [_canonical_type(o) for o in aggregate["outputs"]] == ["uint256", "bytes[]"]

    reference = json.loads((ROOT / "contracts" / "abi" / "Multicall3.json").read_text())
    assert reference == artifact["abi"]


def test_load_artifact_missing_raises_devnet_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIQMON_ROOT", str(tmp_path))
    assert project_root() == tmp_path.resolve()
    with pytest.raises(DevnetError, match=r"compile_contracts\.py"):
        load_artifact("LiqmonMulticall")
    with pytest.raises(DevnetError, match="invalid contract name"):
        load_artifact("../secrets")


def test_load_artifact_rejects_malformed_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build = tmp_path / "contracts" / "build"
    build.mkdir(parents=True)
    (build / "Broken.json").write_text("{not json")
    (build / "Partial.json").write_text('{"abi": []}')
    monkeypatch.setenv("LIQMON_ROOT", str(tmp_path))
    with pytest.raises(DevnetError, match="not valid JSON"):
        load_artifact("Broken")
    with pytest.raises(DevnetError, match="lacks"):
        load_artifact("Partial")


def test_script_without_node_fails_cleanly(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path)}  # no `node` there
    proc = _run_script("--check", env=env)
    assert proc.returncode == 2, proc.stderr
    assert "npm install" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_script_without_solc_fails_cleanly(tmp_path: Path) -> None:
    # a copy of the project without node_modules/
    (tmp_path / "scripts").mkdir()
    shutil.copy2(SCRIPT, tmp_path / "scripts" / SCRIPT.name)
    shutil.copy2(DRIVER, tmp_path / "scripts" / DRIVER.name)
    shutil.copytree(ROOT / "contracts" / "src", tmp_path / "contracts" / "src")
    proc = _run_script("--check", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "npm install" in proc.stderr
    assert "Traceback" not in proc.stderr
