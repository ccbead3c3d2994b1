"""Load and validate the YAML configuration strictly.

Every problem raises :class:`~monitor.errors.ConfigError` with a one-line message of the
shape ``"{file}: {key path}: {problem}"``. RPC URLs may reference environment variables as
``${NAME}``; the expanded values are secrets: they are kept in :attr:`RpcEndpoint.url` only,
print as ``<secret>`` and never appear in error messages (see also :func:`redact`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import quote, urlsplit

import yaml

from monitor.config.alerts import AlertsConfig, DaemonConfig, parse_alerts, parse_daemon
from monitor.config.presets import expand_presets
from monitor.config.store_history import parse_history, parse_retention
from monitor.config.validate import (
    SECRET_MASK,
    Validator,
    _describe,
    _did_you_mean,
    _one_line,
    _show,
)
from monitor.config.watchlist import expand_watchlist
from monitor.config.yaml12 import _read_regular_file, _StrictLoader, _yaml_error_message
from monitor.errors import ConfigError
from monitor.store.history import HistoryPolicy, RetentionPolicy

CANONICAL_MULTICALL3: Final = "0xcA11bde05977b3631167028862bE2a173976CA11"
"""Multicall3 is deployed at this address on (nearly) every EVM chain."""

SUPPORTED_PROTOCOLS: Final[frozenset[str]] = frozenset({"aave_v3", "morpho_blue", "compound_v3"})
"""Values accepted for ``markets[].protocol``."""

DEFAULT_STORE_PATH: Final = "liqmon.db"

_CHAIN_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9_-]*")

_MARKET_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9._-]*")

_ENV_REF_RE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

_TOP_KEYS: Final = ("chains", "markets", "store", "alerts", "daemon")

_CHAIN_KEYS: Final = (
    "chain_id",
    "rpc_urls",
    "request_timeout_s",
    "max_retries",
    "max_log_range",
    "confirmations",
    "calls_per_batch",
    "call_gas_budget",
    "max_concurrent_requests",
    "multicall3",
    "rate_limit_per_s",
    "retry_budget_s",
    "backoff_s",
    "backoff_cap_s",
    "max_response_bytes",
    "max_reorg_depth",
    "reorg_confirmations",
)

_MARKET_KEYS: Final = (
    "name",
    "protocol",
    "chain",
    "pool_addresses_provider",
    "morpho",
    "market_ids",
    "comet",
    "start_block",
    "accounts",
)
# the protocol-specific keys: each protocol requires its own and refuses the others'

_PROTOCOL_KEYS: Final[Mapping[str, tuple[str, ...]]] = {
    "aave_v3": ("pool_addresses_provider",),
    "morpho_blue": ("morpho", "market_ids"),
    "compound_v3": ("comet",),
}

_MARKET_ID_RE: Final = re.compile(r"0x[0-9a-fA-F]{64}")

_STORE_KEYS: Final = ("path", "lease_ttl_s", "history_url", "history", "retention")
_HISTORY_URL_SCHEMES: Final = ("postgresql", "postgres", "postgresql+psycopg")


# --------------------------------------------------------------------------- data model


@dataclass(frozen=True, slots=True, repr=False)
class RpcEndpoint:
    """One JSON-RPC endpoint; ``url`` holds secrets, ``display`` is safe to print."""

    url: str
    display: str
    secrets: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return self.display

    def __str__(self) -> str:
        return self.display


@dataclass(frozen=True, slots=True)
class ChainConfig:
    name: str
    chain_id: int
    rpc_urls: tuple[RpcEndpoint, ...]
    request_timeout_s: float
    max_retries: int
    max_log_range: int
    confirmations: int
    calls_per_batch: int
    multicall3: str
    rate_limit_per_s: float | None
    # retries go on while this many seconds since a request's first attempt are not spent
    retry_budget_s: float = 60.0
    backoff_s: float = 0.2  # first retry delay (jittered, doubled per retry up to backoff_cap_s)
    backoff_cap_s: float = 8.0
    max_response_bytes: int = 32 * 1024 * 1024  # one answer's body cap, read as a stream
    max_reorg_depth: int = 64  # a rollback deeper than this stops with an error, deletes nothing
    reorg_confirmations: int = 2  # a hash mismatch counts once the node's head is this far past it
    # Multicall3 batches: planned gas per aggregate3 eth_call (well under public nodes' 50 M cap);
    # calls_per_batch above is a hard cap on sub-calls per batch on top of it
    call_gas_budget: int = 30_000_000
    max_concurrent_requests: int = 4  # HTTP requests in flight at once per endpoint


@dataclass(frozen=True, slots=True)
class MarketConfig:
    name: str
    protocol: str
    chain: str
    pool_addresses_provider: str  # aave_v3 (and same-interface forks such as Spark); "" otherwise
    start_block: int
    accounts: tuple[str, ...] | None
    morpho: str = ""  # morpho_blue: the Morpho contract
    market_ids: tuple[str, ...] = ()  # morpho_blue: the market ids to watch (0x + 64 hex)
    comet: str = ""  # compound_v3: the Comet proxy


@dataclass(frozen=True, slots=True)
class StoreConfig:
    path: Path
    lease_ttl_s: float = 60.0  # the writer lease (`liqmon run`) expires this long after its last renewal
    # a PostgreSQL database for the shared history tables (postgresql://user:${PW}@host/db; the
    # expanded URL holds secrets, its display does not); None: the history stays in ``path``
    history_url: RpcEndpoint | None = None
    history: HistoryPolicy = field(default_factory=HistoryPolicy)  # store.history: when a position row is written
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)  # store.retention: thinning old rows


@dataclass(frozen=True, slots=True)
class Config:
    source: Path
    chains: Mapping[str, ChainConfig]
    markets: tuple[MarketConfig, ...]
    store: StoreConfig
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)

    def chain_for(self, market: MarketConfig) -> ChainConfig:
        """The chain ``market`` lives on."""
        try:
            return self.chains[market.chain]
        except KeyError:
            raise ConfigError(
                f"{self.source}: market {market.name!r} names chain {market.chain!r}, which this config does not define"
            ) from None

    def market(self, name: str) -> MarketConfig:
        """The market called ``name``; the error lists the configured markets."""
        for market in self.markets:
            if market.name == name:
                return market
        names = [m.name for m in self.markets]
        hint = _did_you_mean(name, names)
        raise ConfigError(
            f"{self.source}: unknown market {_show(name)}"
            f"{'; did you mean ' + repr(hint) + '?' if hint else ''}"
            f" (available: {', '.join(names)})"
        )


def redact(text: str, config: Config) -> str:
    """Replace every expanded secret of ``config`` occurring in ``text`` with ``<secret>``."""
    variants: set[str] = set()
    for chain in config.chains.values():
        for endpoint in chain.rpc_urls:
            for secret in endpoint.secrets:
                if secret:
                    variants.add(secret)
                    variants.add(quote(secret, safe=""))
    for secret in config.alerts.secrets():
        variants.update((secret, quote(secret, safe="")))
    if config.store.history_url is not None:
        for secret in config.store.history_url.secrets:
            variants.update((secret, quote(secret, safe="")))
    # Longest first, so a secret containing another one is masked whole.
    for secret in sorted(variants, key=len, reverse=True):
        text = text.replace(secret, SECRET_MASK)
    return text


OFFLINE_PLACEHOLDER: Final = "liqmon-offline-placeholder"


class OfflineEnv(Mapping[str, str]):
    """The environment for commands that only read the database (``history``): a variable
    that is not set reads as a placeholder, so a missing bot token or RPC key does not stop
    them. Never use it for a command that talks to a node or a channel."""

    def __init__(self, base: Mapping[str, str] | None = None) -> None:
        self._base = os.environ if base is None else base

    def __getitem__(self, key: str) -> str:
        value = self._base.get(key)
        return value if value else OFFLINE_PLACEHOLDER

    def __iter__(self) -> Iterator[str]:
        return iter(self._base)

    def __len__(self) -> int:
        return len(self._base)

    def get(self, key: str, default: object = None) -> Any:
        return self[key]


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, parse and validate the YAML config at ``path``.

    ``env`` supplies ``${NAME}`` values (defaults to :data:`os.environ`).
    """
    label = str(path)
    file = Path(path)
    try:
        raw = _read_regular_file(file, label)
    except FileNotFoundError:
        raise ConfigError(f"{label}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{label}: is a directory, not a config file") from None
    except PermissionError:
        raise ConfigError(f"{label}: cannot read config file (permission denied)") from None
    except OSError as exc:
        raise ConfigError(
            _one_line(f"{label}: cannot read config file ({exc.strerror or type(exc).__name__})")
        ) from None
    try:
        data: object = yaml.load(raw, Loader=_StrictLoader)  # _StrictLoader is a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_error_message(label, exc)) from None
    except RecursionError:
        raise ConfigError(f"{label}: invalid YAML: nested too deeply") from None
    if data is None:
        raise ConfigError(f"{label}: the config file is empty (expected a mapping with 'chains' and 'markets')")
    return parse_config(data, file.absolute(), env, label=label)


# --------------------------------------------------------------------------- validation


def parse_config(
    data: object,
    source: Path,
    env: Mapping[str, str] | None = None,
    *,
    label: str | None = None,
) -> Config:
    """Validate already-loaded config ``data`` (e.g. built in code).

    ``source`` is the config file's path (a relative store path is resolved against its
    directory); ``label`` is how errors name the file (defaults to ``str(source)``).
    """
    v = _ConfigValidator(label if label is not None else str(source), os.environ if env is None else env)
    if not isinstance(data, Mapping):
        v.fail_top(f"expected a mapping at the top level, got {_describe(data)}")
    data = expand_presets(data, v)  # `preset: aave-v3-base` -> the market's keys (+ its chain)
    data = expand_watchlist(data, source, v)  # `watch: watch.yaml` -> accounts, labels, routes, levels
    v.check_keys(data, _TOP_KEYS, "")
    for key in ("chains", "markets"):
        if key not in data:
            v.fail(key, "required key is missing")

    chains = v.chains(data["chains"])
    markets = v.markets(data["markets"], chains)
    store = v.store(data.get("store"), source)
    alerts = parse_alerts(v, data.get("alerts"), [m.name for m in markets])
    daemon = parse_daemon(v, data.get("daemon"))
    return Config(
        source=source,
        chains=MappingProxyType(chains),
        markets=markets,
        store=store,
        alerts=alerts,
        daemon=daemon,
    )


class _ConfigValidator(Validator):
    """The validator with the chain, market and store sections."""

    def endpoint(self, value: object, path: str) -> RpcEndpoint:
        template = self.string(value, path)
        if "${" in _ENV_REF_RE.sub("", template):
            self.fail(
                path,
                f"malformed environment reference in {_show(template)} (expected ${{NAME}} "
                "with NAME made of letters, digits and '_')",
            )
        secrets: list[str] = []

        def expand(match: re.Match[str]) -> str:
            var = match.group(1)
            secret = self.env.get(var)
            if secret is None:
                self.fail(path, f"environment variable {var} is not set")
            if not secret:
                self.fail(path, f"environment variable {var} is empty")
            if secret not in secrets:
                secrets.append(secret)
            return secret

        url = _ENV_REF_RE.sub(expand, template)
        display, literal = _mask_url(_ENV_REF_RE.sub(SECRET_MASK, template))
        secrets.extend(s for s in literal if s not in secrets)
        shown = _show(display)
        if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
            self.fail(path, f"{shown} contains whitespace or control characters")
        try:
            parts = urlsplit(url)
        except ValueError as exc:  # e.g. "Invalid IPv6 URL" for http://[::1
            self.fail(path, f"{shown} is not a valid URL ({exc})")
        scheme = parts.scheme.lower()
        if scheme in ("ws", "wss"):
            self.fail(
                path,
                f"{shown} is a websocket URL; websocket endpoints are not supported (use an http:// or https:// URL)",
            )
        if scheme not in ("http", "https") or "://" not in url:
            self.fail(path, f"{shown} is not an http:// or https:// URL")
        try:
            host = parts.hostname
            _ = parts.port  # raises ValueError on a bad port
        except ValueError:
            self.fail(path, f"{shown} has an invalid host or port")
        if not host:
            self.fail(path, f"{shown} has no host")
        return RpcEndpoint(url=url, display=display, secrets=tuple(secrets))

    # -- sections

    def chains(self, value: object) -> dict[str, ChainConfig]:
        raw = self.mapping(value, "chains", "a mapping of chain name to chain settings")
        if not raw:
            self.fail("chains", "expected at least one chain")
        chains: dict[str, ChainConfig] = {}
        for key, body in raw.items():
            if not isinstance(key, str):
                self.fail("chains", f"chain name {_describe(key)} is not a string (quote it)")
            self.name(key, "chains", _CHAIN_NAME_RE, ", '_' or '-'")
            chains[key] = self.chain(key, body, f"chains.{key}")
        return chains

    def chain(self, name: str, value: object, path: str) -> ChainConfig:
        raw = self.mapping(value, path, "a mapping of chain settings")
        self.check_keys(raw, _CHAIN_KEYS, path)
        self.required(raw, ("chain_id", "rpc_urls"), path)
        chain_id = self.bounded_integer(raw["chain_id"], f"{path}.chain_id", 1, 2**53 - 1)

        urls_path = f"{path}.rpc_urls"
        urls = self.sequence(raw["rpc_urls"], urls_path, "a non-empty list of RPC URLs")
        if not urls:
            self.fail(urls_path, "expected a non-empty list of RPC URLs")
        endpoints: list[RpcEndpoint] = []
        for i, item in enumerate(urls):
            endpoint = self.endpoint(item, f"{urls_path}[{i}]")
            for j, earlier in enumerate(endpoints):
                if earlier.url == endpoint.url:
                    self.fail(f"{urls_path}[{i}]", f"duplicate of {urls_path}[{j}]")
            endpoints.append(endpoint)

        rate = raw.get("rate_limit_per_s")
        return ChainConfig(
            name=name,
            chain_id=chain_id,
            rpc_urls=tuple(endpoints),
            request_timeout_s=self.bounded_number(
                raw.get("request_timeout_s", 15), f"{path}.request_timeout_s", 0.001, 3600.0
            ),
            max_retries=self.bounded_integer(raw.get("max_retries", 4), f"{path}.max_retries", 0, 100),
            max_log_range=self.bounded_integer(raw.get("max_log_range", 2000), f"{path}.max_log_range", 1, 10_000_000),
            confirmations=self.bounded_integer(raw.get("confirmations", 0), f"{path}.confirmations", 0, 10_000),
            calls_per_batch=self.bounded_integer(
                raw.get("calls_per_batch", 5_000), f"{path}.calls_per_batch", 1, 100_000
            ),
            call_gas_budget=self.bounded_integer(
                raw.get("call_gas_budget", 30_000_000), f"{path}.call_gas_budget", 100_000, 10**10
            ),
            max_concurrent_requests=self.bounded_integer(
                raw.get("max_concurrent_requests", 4), f"{path}.max_concurrent_requests", 1, 64
            ),
            multicall3=self.address(raw.get("multicall3", CANONICAL_MULTICALL3), f"{path}.multicall3"),
            rate_limit_per_s=(
                None if rate is None else self.bounded_number(rate, f"{path}.rate_limit_per_s", 0.001, 1e6)
            ),
            retry_budget_s=self.bounded_number(raw.get("retry_budget_s", 60), f"{path}.retry_budget_s", 0.0, 86_400.0),
            backoff_s=self.bounded_number(raw.get("backoff_s", 0.2), f"{path}.backoff_s", 0.0, 60.0),
            backoff_cap_s=self.bounded_number(raw.get("backoff_cap_s", 8), f"{path}.backoff_cap_s", 0.0, 600.0),
            max_response_bytes=self.bounded_integer(
                raw.get("max_response_bytes", 32 * 1024 * 1024), f"{path}.max_response_bytes", 1024, 2**31
            ),
            max_reorg_depth=self.bounded_integer(raw.get("max_reorg_depth", 64), f"{path}.max_reorg_depth", 1, 100_000),
            reorg_confirmations=self.bounded_integer(
                raw.get("reorg_confirmations", 2), f"{path}.reorg_confirmations", 0, 1_000
            ),
        )

    def markets(self, value: object, chains: Mapping[str, ChainConfig]) -> tuple[MarketConfig, ...]:
        items = self.sequence(value, "markets", "a non-empty list of markets")
        if not items:
            self.fail("markets", "expected a non-empty list of markets")
        markets: list[MarketConfig] = []
        first_index: dict[str, int] = {}
        for i, item in enumerate(items):
            market = self.market(item, f"markets[{i}]", chains)
            if market.name in first_index:
                self.fail(
                    f"markets[{i}].name",
                    f"duplicate market name {market.name!r} (already used by markets[{first_index[market.name]}])",
                )
            first_index[market.name] = i
            markets.append(market)
        return tuple(markets)

    def market(self, value: object, path: str, chains: Mapping[str, ChainConfig]) -> MarketConfig:
        raw = self.mapping(value, path, "a mapping of market settings")
        self.check_keys(raw, _MARKET_KEYS, path)
        self.required(raw, ("name", "protocol", "chain"), path)
        name = self.name(raw["name"], f"{path}.name", _MARKET_NAME_RE, ", '.', '_' or '-'")

        protocol = self.string(raw["protocol"], f"{path}.protocol")
        if protocol not in SUPPORTED_PROTOCOLS:
            hint = _did_you_mean(protocol, sorted(SUPPORTED_PROTOCOLS))
            self.fail(
                f"{path}.protocol",
                f"unsupported protocol {_show(protocol)}"
                f"{'; did you mean ' + repr(hint) + '?' if hint else ''}"
                f" (supported: {', '.join(sorted(SUPPORTED_PROTOCOLS))})",
            )

        chain = self.string(raw["chain"], f"{path}.chain")
        if chain not in chains:
            hint = _did_you_mean(chain, list(chains))
            self.fail(
                f"{path}.chain",
                f"unknown chain {_show(chain)}"
                f"{'; did you mean ' + repr(hint) + '?' if hint else ''}"
                f" (defined under 'chains': {', '.join(chains)})",
            )

        own = _PROTOCOL_KEYS[protocol]
        self.required(raw, own, path)
        for other in {k for keys in _PROTOCOL_KEYS.values() for k in keys} - set(own):
            if other in raw:
                self.fail(f"{path}.{other}", f"not a {protocol} setting (it needs: {', '.join(own)})")
        provider = (
            self.address(raw["pool_addresses_provider"], f"{path}.pool_addresses_provider")
            if "pool_addresses_provider" in raw
            else ""
        )
        morpho = self.address(raw["morpho"], f"{path}.morpho") if "morpho" in raw else ""
        comet = self.address(raw["comet"], f"{path}.comet") if "comet" in raw else ""
        market_ids: tuple[str, ...] = ()
        if "market_ids" in raw:
            ids_path = f"{path}.market_ids"
            listed_ids = self.sequence(raw["market_ids"], ids_path, "a non-empty list of Morpho market ids")
            if not listed_ids:
                self.fail(ids_path, "expected a non-empty list of Morpho market ids (0x followed by 64 hex digits)")
            for i, item in enumerate(listed_ids):
                text = self.string(item, f"{ids_path}[{i}]")
                if not _MARKET_ID_RE.fullmatch(text):
                    self.fail(f"{ids_path}[{i}]", f"{_show(text)} is not a market id (0x followed by 64 hex digits)")
            market_ids = tuple(dict.fromkeys(str(i).lower() for i in listed_ids))
        start_block = self.bounded_integer(raw.get("start_block", 0), f"{path}.start_block", 0, 2**63 - 1)

        accounts: tuple[str, ...] | None = None
        raw_accounts = raw.get("accounts")
        if raw_accounts is not None:
            accounts_path = f"{path}.accounts"
            what = "a non-empty list of addresses (omit the key to discover borrowers)"
            listed = self.sequence(raw_accounts, accounts_path, what)
            if not listed:
                self.fail(accounts_path, f"expected {what}")
            unique = dict.fromkeys(self.address(item, f"{accounts_path}[{i}]") for i, item in enumerate(listed))
            accounts = tuple(unique)

        return MarketConfig(
            name=name,
            protocol=protocol,
            chain=chain,
            pool_addresses_provider=provider,
            start_block=start_block,
            accounts=accounts,
            morpho=morpho,
            market_ids=market_ids,
            comet=comet,
        )

    def store(self, value: object, source: Path) -> StoreConfig:
        raw: Mapping[Any, Any] = {} if value is None else self.mapping(value, "store", "a mapping")
        self.check_keys(raw, _STORE_KEYS, "store")
        path_value = raw.get("path", DEFAULT_STORE_PATH)
        if isinstance(path_value, os.PathLike):
            path_value = os.fspath(path_value)
        if not isinstance(path_value, str) or not path_value.strip():
            self.fail("store.path", f"expected a non-empty file path, got {_describe(path_value)}")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in path_value):
            self.fail("store.path", f"{_show(path_value)} contains a NUL or control character")
        path = Path(path_value).expanduser()
        if not path.is_absolute():
            path = source.parent.absolute() / path
        lease = self.bounded_number(raw.get("lease_ttl_s", 60), "store.lease_ttl_s", 1.0, 86_400.0)
        history_url = None if raw.get("history_url") is None else self.history_url(raw["history_url"])
        return StoreConfig(
            path=path, lease_ttl_s=lease, history_url=history_url, history=parse_history(self, raw.get("history")),
            retention=parse_retention(self, raw.get("retention")),
        )  # fmt: skip

    def history_url(self, value: object) -> RpcEndpoint:
        """``store.history_url``: a postgresql:// URL, ``${NAME}`` expanded from the environment."""
        key = "store.history_url"
        template = self.string(value, key)
        if "${" in _ENV_REF_RE.sub("", template):
            self.fail(key, f"malformed environment reference in {_show(template)} (expected ${{NAME}})")
        secrets: list[str] = []

        def expand(match: re.Match[str]) -> str:
            secret = self.env.get(match.group(1))
            if not secret:
                self.fail(key, f"environment variable {match.group(1)} is {'empty' if secret == '' else 'not set'}")
            secrets.append(secret)
            return secret

        url = _ENV_REF_RE.sub(expand, template)
        display, literal = _mask_url(_ENV_REF_RE.sub(SECRET_MASK, template))
        shown = _show(display)
        if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
            self.fail(key, f"{shown} contains whitespace or control characters")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError as exc:
            self.fail(key, f"{shown} is not a valid URL ({exc})")
        if parts.scheme.lower() not in _HISTORY_URL_SCHEMES or not parts.hostname or len(parts.path) < 2:
            self.fail(
                key,
                f"{shown}: expected postgresql://user:${{PASSWORD_VAR}}@host:port/database"
                " (the SQLite history is store.path)",
            )
        return RpcEndpoint(url=url, display=display, secrets=tuple(dict.fromkeys([*secrets, *literal])))


# --------------------------------------------------------------------------- helpers


_MIN_LITERAL_SECRET: Final = 4  # shorter literals are masked in the display only, not in every log line


def _mask_url(url: str) -> tuple[str, list[str]]:
    """``url`` with credentials typed literally into it masked (``user:pw@`` and every query
    value, e.g. ``?apikey=K``), and those literals, so that :func:`redact` masks them in logs."""
    literal: list[str] = []
    head, sep, rest = url.partition("://")
    if not sep:
        return url, literal
    netloc, slash, tail = rest.partition("/")
    if "@" in netloc and "?" not in netloc and "#" not in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        password = userinfo.partition(":")[2] if ":" in userinfo else userinfo  # a bare token as user
        if password and password != SECRET_MASK:
            literal.append(password)
        netloc = f"{SECRET_MASK}@{hostport}"
    rest = netloc + slash + tail
    base, qmark, query = rest.partition("?")
    if qmark:
        query, hash_sign, fragment = query.partition("#")
        masked = []
        for pair in query.split("&"):
            key, eq, value = pair.partition("=")
            if eq and value and value != SECRET_MASK:
                literal.append(value)
                value = SECRET_MASK
            masked.append(f"{key}{eq}{value}")
        rest = base + qmark + "&".join(masked) + hash_sign + fragment
    return f"{head}{sep}{rest}", [s for s in literal if len(s) >= _MIN_LITERAL_SECRET]
