"""One root exception; each error names the value at fault and what to do next.

The library raises these; only :mod:`monitor.cli` turns them into user messages.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Root of every error liqmon raises on purpose."""


class ConfigError(MonitorError):
    """The configuration file is missing, malformed or has a bad value."""


class InputError(MonitorError):
    """A command-line argument is invalid (unknown asset, bad shock, bad address...)."""


class RpcError(MonitorError):
    """A JSON-RPC endpoint failed, or every endpoint failed."""


class RpcResponseError(RpcError):
    """The node answered with a JSON-RPC error object (revert, bad params, limits)."""

    def __init__(self, message: str, code: int | None = None, data: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


class DecodeError(MonitorError):
    """A node answered with data that does not decode as the ABI says."""


class StoreError(MonitorError):
    """The SQLite history store cannot be opened, migrated or written."""


class DevnetError(MonitorError):
    """The local devnet (anvil + real Aave V3) cannot be started, deployed or seeded."""
