"""Strict loading of the YAML config: schema, defaults, one-line errors and secrets."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import (
    CANONICAL_MULTICALL3,
    SUPPORTED_PROTOCOLS,
    ChainConfig,
    Config,
    MarketConfig,
    RpcEndpoint,
    StoreConfig,
    load_config,
    parse_config,
    redact,
)
from monitor.errors import ConfigError

PROVIDER = "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e"  # Aave V3 Ethereum, EIP-55
BORROWER_A = "0x52ec2F3d7C5977A8E558C8D9C6000B615098E8fC"
BORROWER_B = "0x1111111111111111111111111111111111111111"  # all digits: a YAML 1.1 hex int
SECRET = "s3cr3t-infura-key-123"

FULL_YAML = """\
chains:
  ethereum:
    chain_id: 1
    rpc_urls:
      - https://ethereum-rpc.publicnode.com
      - https://mainnet.infura.io/v3/${INFURA_KEY}
    request_timeout_s: 7.5
    max_retries: 2
    max_log_range: 5000
    confirmations: 3
    calls_per_batch: 100
    multicall3: 0xca11bde05977b3631167028862be2a173976ca11
    rate_limit_per_s: 10
  base:
    chain_id: 8453
    rpc_urls: [http://127.0.0.1:8545]
markets:
  - name: aave-v3-ethereum
    protocol: aave_v3
    chain: ethereum
    pool_addresses_provider: 0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e
    start_block: 16291127
  - name: aave-v3-ethereum.watch
    protocol: aave_v3
    chain: ethereum
    pool_addresses_provider: 0x2f39d218133afab8f2b819b1066c7e434ad94e9e
    accounts:
      - 0x52ec2f3d7c5977a8e558c8d9c6000b615098e8fc
      - 0x1111111111111111111111111111111111111111
      - 0x52ec2F3d7C5977A8E558C8D9C6000B615098E8fC
store:
  path: data/history.db
"""


def base() -> dict[str, Any]:
    """A small valid config as plain data; tests mutate a copy of it."""
    return {
        "chains": {
            "ethereum": {
                "chain_id": 1,
                "rpc_urls": ["https://ethereum-rpc.publicnode.com"],
            }
        },
        "markets": [
            {
                "name": "aave-v3-ethereum",
                "protocol": "aave_v3",
                "chain": "ethereum",
                "pool_addresses_provider": PROVIDER,
            }
        ],
    }


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in tmp_path so configs can be named by the short relative path 'config.yaml'."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(directory: Path, content: str | dict[str, Any], name: str = "config.yaml") -> Path:
    text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(content: str | dict[str, Any], env: dict[str, str] | None = None) -> str:
    """Write content to ./config.yaml, load it, and return the ConfigError message."""
    write(Path.cwd(), content)
    with pytest.raises(ConfigError) as info:
        load_config("config.yaml", env=env or {})
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("config.yaml: ")
    return message


# --------------------------------------------------------------------------- valid configs


def test_full_config_round_trips(tmp_path: Path) -> None:
    path = write(tmp_path, FULL_YAML)
    config = load_config(path, env={"INFURA_KEY": SECRET})

    assert isinstance(config, Config)
    assert config.source == path
    assert list(config.chains) == ["ethereum", "base"]
    eth = config.chains["ethereum"]
    assert eth == ChainConfig(
        name="ethereum",
        chain_id=1,
        rpc_urls=(
            RpcEndpoint(
                url="https://ethereum-rpc.publicnode.com",
                display="https://ethereum-rpc.publicnode.com",
                secrets=(),
            ),
            RpcEndpoint(
                url=f"https://mainnet.infura.io/v3/{SECRET}",
                display="https://mainnet.infura.io/v3/<secret>",
                secrets=(SECRET,),
            ),
        ),
        request_timeout_s=7.5,
        max_retries=2,
        max_log_range=5000,
        confirmations=3,
        calls_per_batch=100,
        multicall3=CANONICAL_MULTICALL3,
        rate_limit_per_s=10.0,
    )
    assert isinstance(eth.rate_limit_per_s, float)
    assert config.chains["base"].rpc_urls[0].url == "http://127.0.0.1:8545"

    first, watch = config.markets
    assert first == MarketConfig(
        name="aave-v3-ethereum",
        protocol="aave_v3",
        chain="ethereum",
        pool_addresses_provider=PROVIDER,
        start_block=16291127,
        accounts=None,
    )
    assert watch.name == "aave-v3-ethereum.watch"
    assert watch.pool_addresses_provider == PROVIDER  # lowercase input, stored checksummed
    # Duplicate (differently cased) watchlist entry removed, order kept.
    assert watch.accounts == (BORROWER_A, BORROWER_B)
    assert watch.start_block == 0

    assert config.store == StoreConfig(path=tmp_path / "data" / "history.db")
    assert config.chain_for(watch) is eth
    assert config.market("aave-v3-ethereum.watch") is watch


def test_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, base()), env={})
    chain = config.chains["ethereum"]
    assert chain.request_timeout_s == 15
    assert isinstance(chain.request_timeout_s, float)
    assert chain.max_retries == 4
    assert chain.max_log_range == 2000
    assert chain.confirmations == 0
    assert chain.calls_per_batch == 5_000  # a hard cap; batches are sized by gas
    assert chain.call_gas_budget == 30_000_000
    assert chain.max_concurrent_requests == 4
    assert chain.multicall3 == CANONICAL_MULTICALL3
    assert chain.rate_limit_per_s is None
    market = config.markets[0]
    assert market.start_block == 0
    assert market.accounts is None
    assert config.store.path == tmp_path / "liqmon.db"


def test_supported_protocols_constant() -> None:
    assert sorted(SUPPORTED_PROTOCOLS) == ["aave_v3", "compound_v3", "morpho_blue"]


def test_unquoted_hex_addresses_stay_strings(tmp_path: Path) -> None:
    # Plain PyYAML would read these as integers, which is the pitfall being guarded against.
    assert isinstance(yaml.safe_load(f"a: {BORROWER_B}")["a"], int)
    text = f"""\
chains:
  ethereum:
    chain_id: 1
    rpc_urls: [https://rpc.example]
    multicall3: {CANONICAL_MULTICALL3}
markets:
  - name: m
    protocol: aave_v3
    chain: ethereum
    pool_addresses_provider: {PROVIDER}
    accounts: [{BORROWER_B}, 0x00000000000000000000000000000000000000ab]
"""
    config = load_config(write(tmp_path, text), env={})
    market = config.markets[0]
    assert market.pool_addresses_provider == PROVIDER
    assert market.accounts == (BORROWER_B, "0x00000000000000000000000000000000000000AB")
    assert config.chains["ethereum"].multicall3 == CANONICAL_MULTICALL3


def test_plain_integers_still_parse(tmp_path: Path) -> None:
    text = yaml.safe_dump(base(), sort_keys=False).replace("chain_id: 1", "chain_id: 1_000")
    config = load_config(write(tmp_path, text), env={})
    assert config.chains["ethereum"].chain_id == 1000


def test_uppercase_address_accepted_and_checksummed(tmp_path: Path) -> None:
    data = base()
    data["markets"][0]["pool_addresses_provider"] = "0x" + PROVIDER[2:].upper()
    config = load_config(write(tmp_path, data), env={})
    assert config.markets[0].pool_addresses_provider == PROVIDER


def test_config_objects_are_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, base()), env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.markets[0].start_block = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.chains["other"] = config.chains["ethereum"]  # type: ignore[index]


# --------------------------------------------------------------------------- store path


def test_relative_store_path_is_relative_to_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    data = base()
    data["store"] = {"path": "db/liq.db"}
    write(sub, data)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config("../conf/config.yaml", env={})
    assert config.store.path.is_absolute()
    assert config.store.path.resolve() == (sub / "db" / "liq.db").resolve()


def test_absolute_store_path_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "abs" / "x.db"
    data = base()
    data["store"] = {"path": str(target)}
    assert load_config(write(tmp_path, data), env={}).store.path == target


def test_empty_store_section_uses_default(tmp_path: Path) -> None:
    text = yaml.safe_dump(base(), sort_keys=False) + "store:\n"
    assert load_config(write(tmp_path, text), env={}).store.path == tmp_path / "liqmon.db"


# --------------------------------------------------------------------------- secrets


def test_secret_expanded_from_env_and_hidden(in_tmp: Path) -> None:
    data = base()
    data["chains"]["ethereum"]["rpc_urls"] = ["https://x.example/${USER_}/v3/${KEY}"]
    config = load_config(write(in_tmp, data), env={"KEY": SECRET, "USER_": "bob-token"})
    endpoint = config.chains["ethereum"].rpc_urls[0]
    assert endpoint.url == f"https://x.example/bob-token/v3/{SECRET}"
    assert endpoint.display == "https://x.example/<secret>/v3/<secret>"
    assert endpoint.secrets == ("bob-token", SECRET)
    assert repr(endpoint) == endpoint.display
    assert str(endpoint) == endpoint.display
    for text in (repr(config), str(config), repr(config.chains), f"{endpoint}"):
        assert SECRET not in text
        assert "bob-token" not in text
    assert "<secret>" in repr(config)


def test_env_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIQMON_TEST_KEY", SECRET)
    data = base()
    data["chains"]["ethereum"]["rpc_urls"] = ["https://x.example/${LIQMON_TEST_KEY}"]
    config = load_config(write(tmp_path, data))
    assert config.chains["ethereum"].rpc_urls[0].url == f"https://x.example/{SECRET}"


def test_redact_replaces_every_secret(tmp_path: Path) -> None:
    data = base()
    data["chains"]["ethereum"]["rpc_urls"] = [
        "https://a.example/${KEY}",
        "https://b.example/${OTHER}",
    ]
    config = load_config(write(tmp_path, data), env={"KEY": SECRET, "OTHER": "tok/en"})
    text = f"GET https://a.example/{SECRET} failed; retry {SECRET}; other=tok/en, tok%2Fen"
    assert redact(text, config) == ("GET https://a.example/<secret> failed; retry <secret>; other=<secret>, <secret>")
    assert redact("nothing secret here", config) == "nothing secret here"


def test_missing_env_var(in_tmp: Path) -> None:
    data = base()
    data["chains"]["ethereum"]["rpc_urls"] = [
        "https://ethereum-rpc.publicnode.com",
        "https://mainnet.infura.io/v3/${INFURA_KEY}",
    ]
    assert error_of(data) == ("config.yaml: chains.ethereum.rpc_urls[1]: environment variable INFURA_KEY is not set")


def test_empty_env_var(in_tmp: Path) -> None:
    data = base()
    data["chains"]["ethereum"]["rpc_urls"] = ["https://x.example/${KEY}"]
    assert error_of(data, env={"KEY": ""}) == (
        "config.yaml: chains.ethereum.rpc_urls[0]: environment variable KEY is empty"
    )


def test_malformed_env_reference(in_tmp: Path) -> None:
    data = base()
    data["chains"]["ethereum"]["rpc_urls"] = ["https://x.example/${bad-name}"]
    message = error_of(data)
    assert message.startswith("config.yaml: chains.ethereum.rpc_urls[0]: malformed environment")


@pytest.mark.parametrize(
    ("template", "secret", "problem"),
    [
        ("wss://x.example/${KEY}", SECRET, "is a websocket URL"),
        ("${KEY}", f"ws://host/{SECRET}", "is a websocket URL"),
        ("ftp://x.example/${KEY}", SECRET, "is not an http:// or https:// URL"),
        ("https://x.example/${KEY}", f"a b{SECRET}", "contains whitespace"),
        ("https://x.example:${KEY}/", SECRET, "has an invalid host or port"),
        ("https://${KEY}", "", "environment variable KEY is empty"),
    ],
)
def test_secrets_never_appear_in_url_errors(in_tmp: Path, template: str, secret: str, problem: str) -> None:
    data = base()
    data["chains"]["ethereum"]["rpc_urls"] = [template]
    message = error_of(data, env={"KEY": secret})
    assert message.startswith("config.yaml: chains.ethereum.rpc_urls[0]: ")
    assert problem in message
    assert SECRET not in message


def test_websocket_url_rejected(in_tmp: Path) -> None:
    data = base()
    data["chains"]["ethereum"]["rpc_urls"] = ["wss://eth.example/ws"]
    assert error_of(data) == (
        "config.yaml: chains.ethereum.rpc_urls[0]: 'wss://eth.example/ws' is a websocket URL; "
        "websocket endpoints are not supported (use an http:// or https:// URL)"
    )


def test_duplicate_rpc_url_rejected(in_tmp: Path) -> None:
    data = base()
    data["chains"]["ethereum"]["rpc_urls"] = ["https://a.example", "https://a.example"]
    assert error_of(data) == ("config.yaml: chains.ethereum.rpc_urls[1]: duplicate of chains.ethereum.rpc_urls[0]")


# --------------------------------------------------------------------------- file / YAML errors


def test_missing_file(in_tmp: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config("missing.yaml", env={})
    assert str(info.value) == "missing.yaml: config file not found"


def test_path_is_a_directory(in_tmp: Path) -> None:
    (in_tmp / "conf.d").mkdir()
    with pytest.raises(ConfigError, match=r"^conf\.d: is a directory"):
        load_config("conf.d", env={})


def test_yaml_syntax_error_names_line(in_tmp: Path) -> None:
    message = error_of("chains:\n  ethereum:\n    chain_id: 1\n   bad: [unclosed\n")
    assert message.startswith("config.yaml: line 4, column ")
    assert "invalid YAML" in message


def test_yaml_duplicate_key_rejected(in_tmp: Path) -> None:
    text = "chains:\n  ethereum:\n    chain_id: 1\n    chain_id: 2\n"
    assert error_of(text) == "config.yaml: line 4, column 5: invalid YAML: duplicate key 'chain_id'"


def test_yaml_unsafe_tag_rejected(in_tmp: Path) -> None:
    message = error_of("chains: !!python/object/apply:os.system ['true']\n")
    assert message.startswith("config.yaml: line 1, column 9: invalid YAML: ")


def test_invalid_utf8(in_tmp: Path) -> None:
    (in_tmp / "config.yaml").write_bytes(b"chains: \xff\xfe\n")
    with pytest.raises(ConfigError) as info:
        load_config("config.yaml", env={})
    assert str(info.value).startswith("config.yaml: byte ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "config.yaml: expected a mapping at the top level, got a list"),
        ("just text\n", "config.yaml: expected a mapping at the top level, got 'just text'"),
        (
            "",
            "config.yaml: the config file is empty (expected a mapping with 'chains' and 'markets')",
        ),
    ],
)
def test_top_level_must_be_a_mapping(in_tmp: Path, text: str, expected: str) -> None:
    assert error_of(text) == expected


# --------------------------------------------------------------------------- schema errors


def _set(data: dict[str, Any], dotted: str, value: object) -> dict[str, Any]:
    """Set data at a path like 'chains.ethereum.chain_id' or 'markets.0.name'."""
    data = copy.deepcopy(data)
    *parents, last = dotted.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


@pytest.mark.parametrize(
    ("dotted", "value", "expected"),
    [
        (
            "chains.ethereum.chain_id",
            "one",
            "chains.ethereum.chain_id: expected an integer, got 'one'",
        ),
        (
            "chains.ethereum.chain_id",
            True,
            "chains.ethereum.chain_id: expected an integer, got true",
        ),
        (
            "chains.ethereum.chain_id",
            0,
            "chains.ethereum.chain_id: expected an integer >= 1, got 0",
        ),
        (
            "chains.ethereum.max_retries",
            1.5,
            "chains.ethereum.max_retries: expected an integer, got 1.5",
        ),
        (
            "chains.ethereum.confirmations",
            -1,
            "chains.ethereum.confirmations: expected an integer >= 0, got -1",
        ),
        (
            "chains.ethereum.max_log_range",
            0,
            "chains.ethereum.max_log_range: expected an integer >= 1, got 0",
        ),
        (
            "chains.ethereum.calls_per_batch",
            None,
            "chains.ethereum.calls_per_batch: expected an integer, got null",
        ),
        (
            "chains.ethereum.request_timeout_s",
            0,
            "chains.ethereum.request_timeout_s: expected a number between 0.001 and 3600, got 0",
        ),
        (
            "chains.ethereum.request_timeout_s",
            False,
            "chains.ethereum.request_timeout_s: expected a number, got false",
        ),
        (
            "chains.ethereum.rate_limit_per_s",
            float("inf"),
            "chains.ethereum.rate_limit_per_s: expected a number between 0.001 and 1e+06, got inf",
        ),
        (
            "chains.ethereum.rpc_urls",
            "https://a.example",
            "chains.ethereum.rpc_urls: expected a non-empty list of RPC URLs, got 'https://a.example'",
        ),
        (
            "chains.ethereum.rpc_urls",
            [],
            "chains.ethereum.rpc_urls: expected a non-empty list of RPC URLs",
        ),
        (
            "chains.ethereum.rpc_urls",
            ["eth.example"],
            "chains.ethereum.rpc_urls[0]: 'eth.example' is not an http:// or https:// URL",
        ),
        (
            "chains.ethereum.multicall3",
            "0x12",
            "chains.ethereum.multicall3: '0x12' is not an address (expected 0x followed by 40 hex digits)",
        ),
        (
            "markets.0.pool_addresses_provider",
            "0x12",
            "markets[0].pool_addresses_provider: '0x12' is not an address (expected 0x followed by 40 hex digits)",
        ),
        (
            "markets.0.pool_addresses_provider",
            "0x" + "0" * 40,
            "markets[0].pool_addresses_provider: the zero address is not allowed here",
        ),
        (
            "markets.0.pool_addresses_provider",
            PROVIDER.replace("AFaB", "AFAB"),
            f"markets[0].pool_addresses_provider: {PROVIDER.replace('AFaB', 'AFAB')!r} has a bad "
            "checksum (mixed-case addresses must be EIP-55 checksummed: check for a typo, "
            "or write it all-lowercase)",
        ),
        (
            "markets.0.start_block",
            -5,
            "markets[0].start_block: expected an integer >= 0, got -5",
        ),
        (
            "markets.0.protocol",
            "aave-v3",
            "markets[0].protocol: unsupported protocol 'aave-v3'; did you mean 'aave_v3'? "
            "(supported: aave_v3, compound_v3, morpho_blue)",
        ),
        (
            "markets.0.chain",
            "etherium",
            "markets[0].chain: unknown chain 'etherium'; did you mean 'ethereum'? (defined under 'chains': ethereum)",
        ),
        (
            "markets.0.name",
            "Aave V3",
            "markets[0].name: invalid name 'Aave V3' (expected lowercase letters, digits, '.', "
            "'_' or '-', starting with a letter or digit)",
        ),
        (
            "markets.0.accounts",
            [],
            "markets[0].accounts: expected a non-empty list of addresses (omit the key to discover borrowers)",
        ),
        (
            "markets.0.accounts",
            [BORROWER_A, "0xabc"],
            "markets[0].accounts[1]: '0xabc' is not an address (expected 0x followed by 40 hex digits)",
        ),
        ("markets", [], "markets: expected a non-empty list of markets"),
        ("markets.0", "aave", "markets[0]: expected a mapping of market settings, got 'aave'"),
        ("chains", {}, "chains: expected at least one chain"),
        (
            "chains",
            ["ethereum"],
            "chains: expected a mapping of chain name to chain settings, got a list",
        ),
        ("store", {"path": ""}, "store.path: expected a non-empty file path, got ''"),
        ("store", [], "store: expected a mapping, got a list"),
    ],
)
def test_bad_values(in_tmp: Path, dotted: str, value: object, expected: str) -> None:
    assert error_of(_set(base(), dotted, value)) == f"config.yaml: {expected}"


@pytest.mark.parametrize(
    ("dotted", "key", "expected"),
    [
        ("", "chain", "chain: unknown key (did you mean 'chains'?)"),
        (
            "chains.ethereum",
            "rpc_url",
            "chains.ethereum.rpc_url: unknown key (did you mean 'rpc_urls'?)",
        ),
        (
            "markets.0",
            "pool_address_provider",
            "markets[0].pool_address_provider: unknown key (did you mean 'pool_addresses_provider'?)",
        ),
        ("store", "pth", "store.pth: unknown key (did you mean 'path'?)"),
        ("chains.ethereum", "colour", "chains.ethereum.colour: unknown key"),
    ],
)
def test_unknown_keys(in_tmp: Path, dotted: str, key: str, expected: str) -> None:
    data = base()
    data["store"] = {"path": "x.db"}
    node: Any = data
    for part in filter(None, dotted.split(".")):
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[key] = 1
    assert error_of(data) == f"config.yaml: {expected}"


def test_unknown_key_with_odd_characters_stays_one_line(in_tmp: Path) -> None:
    data = base()
    data["chains"]["ethereum"]["a\nb"] = 1
    assert error_of(data) == "config.yaml: chains.ethereum['a\\nb']: unknown key"


@pytest.mark.parametrize(
    ("dotted", "expected"),
    [
        ("chains.ethereum.chain_id", "chains.ethereum.chain_id: required key is missing"),
        ("chains.ethereum.rpc_urls", "chains.ethereum.rpc_urls: required key is missing"),
        ("markets.0.name", "markets[0].name: required key is missing"),
        ("markets.0.protocol", "markets[0].protocol: required key is missing"),
        ("markets.0.chain", "markets[0].chain: required key is missing"),
        (
            "markets.0.pool_addresses_provider",
            "markets[0].pool_addresses_provider: required key is missing",
        ),
        ("chains", "chains: required key is missing"),
        ("markets", "markets: required key is missing"),
    ],
)
def test_missing_required_keys(in_tmp: Path, dotted: str, expected: str) -> None:
    data = base()
    *parents, last = dotted.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    del node[last]
    assert error_of(data) == f"config.yaml: {expected}"


def test_invalid_chain_name(in_tmp: Path) -> None:
    data = base()
    data["chains"] = {"Eth Main": data["chains"]["ethereum"]}
    assert error_of(data) == (
        "config.yaml: chains: invalid name 'Eth Main' (expected lowercase letters, digits, "
        "'_' or '-', starting with a letter or digit)"
    )


def test_yaml_bool_chain_name(in_tmp: Path) -> None:
    text = yaml.safe_dump(base(), sort_keys=False).replace("  ethereum:", "  on:", 1)
    assert error_of(text) == "config.yaml: chains: chain name true is not a string (quote it)"


def test_duplicate_market_name(in_tmp: Path) -> None:
    data = base()
    data["markets"].append(dict(data["markets"][0]))
    assert error_of(data) == (
        "config.yaml: markets[1].name: duplicate market name 'aave-v3-ethereum' (already used by markets[0])"
    )


# --------------------------------------------------------------------------- Config API


def test_unknown_market_lists_available(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL_YAML), env={"INFURA_KEY": SECRET})
    with pytest.raises(ConfigError) as info:
        config.market("aave-v3-etherium")
    message = str(info.value)
    assert "unknown market 'aave-v3-etherium'" in message
    assert "did you mean 'aave-v3-ethereum'?" in message
    assert "available: aave-v3-ethereum, aave-v3-ethereum.watch" in message


def test_chain_for_foreign_market_raises(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, base()), env={})
    foreign = dataclasses.replace(config.markets[0], chain="polygon")
    with pytest.raises(ConfigError, match="polygon"):
        config.chain_for(foreign)


def test_parse_config_from_code_uses_label_and_source(tmp_path: Path) -> None:
    data = base()
    data["chains"]["ethereum"]["rpc_urls"] = ("http://127.0.0.1:8545",)
    data["store"] = {"path": Path("devnet.db")}
    source = tmp_path / "devnet.yaml"
    config = parse_config(data, source, env={})
    assert config.source == source
    assert config.store.path == tmp_path / "devnet.db"
    assert config.chains["ethereum"].rpc_urls[0].url == "http://127.0.0.1:8545"

    bad = _set(data, "chains.ethereum.chain_id", "1")
    with pytest.raises(ConfigError) as info:
        parse_config(bad, source, env={}, label="<devnet>")
    assert str(info.value) == "<devnet>: chains.ethereum.chain_id: expected an integer, got '1'"
    with pytest.raises(ConfigError) as info:
        parse_config(bad, source, env={})
    assert str(info.value).startswith(f"{source}: chains.ethereum.chain_id: ")


def test_protocol_specific_keys(tmp_path: Path) -> None:
    base = {"chains": {"eth": {"chain_id": 1, "rpc_urls": ["http://127.0.0.1:8545"]}}}
    morpho = {
        "name": "morpho",
        "protocol": "morpho_blue",
        "chain": "eth",
        "morpho": "0xBBBBBbbBBb9cC5e90e3b3Af64bdAF62C37EEFFCb",
        "market_ids": ["0x" + "Ab" * 32, "0x" + "ab" * 32],
    }
    comet = {"name": "comet-usdc", "protocol": "compound_v3", "chain": "eth",
             "comet": "0xc3d688B66703497DAA19211EEdff47f25384cdc3"}  # fmt: skip
    config = parse_config(dict(base, markets=[morpho, comet]), tmp_path / "c.yaml")
    m, c = config.markets
    assert m.market_ids == ("0x" + "ab" * 32,) and m.morpho.startswith("0xBBBB") and m.pool_addresses_provider == ""
    assert c.comet == "0xc3d688B66703497DAA19211EEdff47f25384cdc3"
    with pytest.raises(ConfigError, match=r"markets\[0\]\.market_ids: required key is missing"):
        parse_config(dict(base, markets=[{k: v for k, v in morpho.items() if k != "market_ids"}]), tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match=r"markets\[0\]\.comet: not a morpho_blue setting"):
        parse_config(dict(base, markets=[dict(morpho, comet=comet["comet"])]), tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match=r"market_ids\[0\]: '0x12' is not a market id"):
        parse_config(dict(base, markets=[dict(morpho, market_ids=["0x12"])]), tmp_path / "c.yaml")
