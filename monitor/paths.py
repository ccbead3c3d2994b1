"""Where the project's non-Python parts live (node_modules, contracts/, the devnet cache)."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout root: ``$LIQMON_ROOT`` or the parent of the ``monitor`` package."""
    override = os.environ.get("LIQMON_ROOT")
    if override:
        return Path(override).resolve()
    return Path(__file__).resolve().parents[1]


def node_modules() -> Path:
    return project_root() / "node_modules"


def cache_dir() -> Path:
    """Scratch space for devnet state dumps: ``$LIQMON_CACHE`` or ``.liqmon-cache/``."""
    override = os.environ.get("LIQMON_CACHE")
    path = Path(override) if override else project_root() / ".liqmon-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path
