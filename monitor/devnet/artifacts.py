"""Compiled Aave V3 artifacts from the npm package ``@aave/core-v3``, with library linking."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from monitor.errors import DevnetError
from monitor.paths import node_modules


def aave_artifacts_dir() -> Path:
    path = node_modules() / "@aave" / "core-v3" / "artifacts" / "contracts"
    if not path.is_dir():
        raise DevnetError(
            f"Aave V3 artifacts not found at {path}: run `bash scripts/setup.sh` "
            "(or `npm install`) in the project root (it installs @aave/core-v3)"
        )
    return path


@cache
def _index() -> dict[str, Path]:
    index: dict[str, Path] = {}
    for path in aave_artifacts_dir().rglob("*.json"):
        if not path.name.endswith(".dbg.json"):
            index.setdefault(path.stem, path)
    return index


@cache
def aave_artifact(name: str) -> dict[str, Any]:
    """The Hardhat artifact of contract ``name`` (abi, bytecode, linkReferences)."""
    path = _index().get(name)
    if path is None:
        raise DevnetError(f"no artifact named {name} in @aave/core-v3")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def link(artifact: dict[str, Any], libraries: dict[str, str]) -> bytes:
    """Creation bytecode with every library placeholder replaced by its address."""
    # placeholders look like __$<34 hex>$__: make them hex, then overwrite them below
    code = bytearray(bytes.fromhex(artifact["bytecode"][2:].replace("__$", "000").replace("$__", "000")))
    for _source, libs in (artifact.get("linkReferences") or {}).items():
        for lib_name, refs in libs.items():
            if lib_name not in libraries:
                raise DevnetError(f"{artifact['contractName']} needs library {lib_name} linked")
            address = bytes.fromhex(libraries[lib_name][2:])
            for ref in refs:
                start, length = ref["start"], ref["length"]
                code[start : start + length] = address
    return bytes(code)


def abi_type(param: dict[str, Any]) -> str:
    """The canonical ABI type of one ABI parameter (tuples expanded)."""
    kind: str = param["type"]
    if kind.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in param["components"])
        return f"({inner}){kind[5:]}"
    return kind


def constructor_types(artifact: dict[str, Any]) -> list[str]:
    for item in artifact["abi"]:
        if item.get("type") == "constructor":
            return [abi_type(p) for p in item["inputs"]]
    return []
