"""Compiled artifacts of liqmon's own contracts (``contracts/build/<Name>.json``).

The artifacts are produced, reproducibly, by ``scripts/compile_contracts.py`` and
committed, so reading them needs neither node nor solc. Each one is a JSON object
with ``contractName``, ``abi``, ``bytecode``, ``deployedBytecode`` (0x-hex),
``compiler`` and ``sourceSha256``.

The project root is the parent of the ``monitor`` package; set ``LIQMON_ROOT`` to
point somewhere else (e.g. a checkout used by tests).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import monitor
from monitor.errors import DevnetError

ROOT_ENV_VAR = "LIQMON_ROOT"
REQUIRED_KEYS = ("contractName", "abi", "bytecode", "deployedBytecode")

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REBUILD_HINT = "run `python scripts/compile_contracts.py` (after `npm install`) to rebuild it"


def project_root() -> Path:
    """The liqmon project root: ``$LIQMON_ROOT`` if set, else the parent of ``monitor/``."""
    override = os.environ.get(ROOT_ENV_VAR)
    if override:
        return Path(override).expanduser().resolve()
    return Path(monitor.__file__).resolve().parents[1]


def artifact_path(name: str) -> Path:
    """Where the artifact of contract ``name`` lives (it may not exist)."""
    return project_root() / "contracts" / "build" / f"{name}.json"


def load_artifact(name: str) -> dict[str, Any]:
    """Read ``contracts/build/<name>.json``.

    Raises :class:`~monitor.errors.DevnetError` when the name is not a contract
    identifier, or the file is missing, unreadable, not JSON or lacks a required key.
    """
    if not _NAME_RE.fullmatch(name):
        raise DevnetError(f"invalid contract name {name!r}: expected a Solidity identifier")
    path = artifact_path(name)
    if not path.is_file():
        raise DevnetError(
            f"contract artifact {path} is missing (no compiled contract {name!r}); "
            f"{_REBUILD_HINT}, or set {ROOT_ENV_VAR} to the project root"
        )
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DevnetError(f"cannot read contract artifact {path}: {exc}") from exc
    except ValueError as exc:
        raise DevnetError(f"contract artifact {path} is not valid JSON ({exc}); {_REBUILD_HINT}") from exc
    if not isinstance(data, dict):
        raise DevnetError(f"contract artifact {path} is not a JSON object; {_REBUILD_HINT}")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise DevnetError(f"contract artifact {path} lacks {', '.join(missing)}; {_REBUILD_HINT}")
    return data
