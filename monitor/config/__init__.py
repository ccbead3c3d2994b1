"""The configuration: loaded and validated strictly, one package without an import circle.

``core`` (the model, chains / markets / store, :func:`load_config`) uses ``alerts`` (the
``alerts:`` and ``daemon:`` sections), ``yaml12`` (reading the file) and ``validate`` (the
validator and its one-line errors); nothing imports back.

Every problem raises :class:`~monitor.errors.ConfigError` with a one-line message of the
shape ``"{file}: {key path}: {problem}"``. RPC URLs may reference environment variables as
``${NAME}``; the expanded values are secrets: they are kept in :attr:`RpcEndpoint.url` only,
print as ``<secret>`` and never appear in error messages (see also :func:`redact`).
"""

from monitor.config.core import (
    CANONICAL_MULTICALL3,
    DEFAULT_STORE_PATH,
    OFFLINE_PLACEHOLDER,
    SUPPORTED_PROTOCOLS,
    ChainConfig,
    Config,
    MarketConfig,
    OfflineEnv,
    RpcEndpoint,
    StoreConfig,
    load_config,
    parse_config,
    redact,
)
from monitor.config.validate import SECRET_MASK

__all__ = [
    "CANONICAL_MULTICALL3",
    "DEFAULT_STORE_PATH",
    "OFFLINE_PLACEHOLDER",
    "SECRET_MASK",
    "SUPPORTED_PROTOCOLS",
    "ChainConfig",
    "Config",
    "MarketConfig",
    "OfflineEnv",
    "RpcEndpoint",
    "StoreConfig",
    "load_config",
    "parse_config",
    "redact",
]
