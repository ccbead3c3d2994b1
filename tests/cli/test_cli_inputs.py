"""Issue 13 acceptance: every hostile or careless input listed in the issue is one line on
stderr, exit 1 (2 for a usage error), never a traceback; credentials typed into a URL never
print; a broken pipe exits quietly; SIGTERM to ``demo`` stops its anvil.

One table (``ROWS``): each row is the argv (``{cfg}`` is replaced by a config file written
from the row's config text, ``{tmp}`` by the test's tmp path), the expected exit code, a
substring of the one-line message and strings that must not appear. Rows marked ``chain``
run against a bare Aave V3 devnet (anvil) of this module."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from monitor.chain.rpc import RpcClient
from monitor.cli import main
from monitor.devnet.anvil import Anvil
from monitor.devnet.deploy import Deployment, deploy_aave
from monitor.devnet.node import DevnetNode
from monitor.logs import setup_logging

PROVIDER = "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e"
BAD_CHECKSUM = "0x2F39d218133AFaB8F2B819B1066c7E434Ad94E9e"  # one letter's case flipped
NO_CODE = "0x000000000000000000000000000000000000dEaD"

BASE = """\
chains:
  ethereum:
    chain_id: {chain_id}
    rpc_urls:
      - {url}
    request_timeout_s: {timeout}
    max_retries: 0
    retry_budget_s: 1
{chain_extra}markets:
  - name: m
    protocol: aave_v3
    chain: ethereum
    pool_addresses_provider: {provider}
    start_block: {start_block}
store:
  path: {db}
{extra}"""


def config_text(**over: Any) -> str:
    values: dict[str, Any] = {
        "chain_id": 1, "url": "http://127.0.0.1:{port}", "timeout": 2, "chain_extra": "", "provider": PROVIDER,
        "start_block": 0, "db": "{tmp}/x.db", "extra": "",
    }  # fmt: skip
    values.update(over)
    return BASE.format(**values)


@dataclass(frozen=True)
class Row:
    name: str
    argv: tuple[str, ...]
    code: int
    needle: str
    config: str | None = None  # text of {cfg}
    absent: tuple[str, ...] = ()
    chain: bool = False  # {port} is the module's devnet, {provider} its PoolAddressesProvider


ACCOUNT = ("history", "--config", "{cfg}", "--account", PROVIDER)
CHAIN = {"chain_id": 31337, "url": "http://127.0.0.1:{port}", "provider": "{provider}"}

ROWS = [
    # -- the config file
    Row("yaml nested 5,000 deep", ("scan", "--config", "{cfg}"), 1, "nesting deeper than 64 levels",
        config="a: " + "[" * 5000 + "]" * 5000),
    Row("yaml nested 5,000 deep (block)", ("scan", "--config", "{cfg}"), 1, "nesting deeper than 64 levels",
        config="a:\n" + "- " * 5000 + "x\n"),
    Row("rpc url http://[::1", ("scan", "--config", "{cfg}"), 1, "rpc_urls[0]: 'http://[::1' is not a valid URL",
        config=config_text(url="http://[::1")),
    Row("NUL in the store path", ("scan", "--config", "{cfg}"), 1, "store.path",
        config=config_text(db='"{tmp}/x\\0.db"')),
    Row("--config /dev/zero", ("scan", "--config", "/dev/zero"), 1, "not a regular file"),
    Row("--config a FIFO", ("scan", "--config", "{tmp}/fifo"), 1, "not a regular file"),
    Row("--config a directory", ("scan", "--config", "{tmp}"), 1, "is a directory"),
    Row("request_timeout_s: 1e300 (YAML 1.2 number)", ("scan", "--config", "{cfg}"), 1,
        "request_timeout_s: expected a number between 0.001 and 3600, got 1e+300", config=config_text(timeout="1e300")),
    Row("chain_id: 075131 is decimal, not octal", ("scan", "--config", "{cfg}"), 1,
        "not the configured chain 75131", config=config_text(**{**CHAIN, "chain_id": "075131"}), chain=True),
    Row("chain_id beyond 2**53", ("scan", "--config", "{cfg}"), 1, "chains.ethereum.chain_id",
        config=config_text(chain_id=10**30)),
    Row("credentials typed into the URL", ("scan", "--config", "{cfg}"), 1, "http://<secret>@127.0.0.1:",
        config=config_text(url="http://user:hunter22@127.0.0.1:{closed}/?apikey=KEYKEYKEY"),
        absent=("hunter22", "KEYKEYKEY", "user:")),
    Row("Multicall3 without code", ("scan", "--config", "{cfg}"), 1, f"no Multicall3 contract at {NO_CODE}",
        config=config_text(**CHAIN, chain_extra=f"    multicall3: {NO_CODE}\n"), chain=True,
        absent=("PoolAddressesProvider",)),
    Row("Multicall3 names its config key", ("scan", "--config", "{cfg}"), 1, "chains.ethereum.multicall3",
        config=config_text(**CHAIN, chain_extra=f"    multicall3: {NO_CODE}\n"), chain=True),
    Row("reference feed without code", ("scan", "--config", "{cfg}"), 1,
        f"Chainlink feed WETH at {NO_CODE} answers nothing", chain=True,
        config=config_text(**CHAIN, extra=f"alerts:\n  oracle:\n    chainlink_feeds:\n      WETH: {NO_CODE}\n")),
    Row("start_block beyond the head", ("scan", "--config", "{cfg}"), 1,
        "start_block 1000000000 is beyond the chain's head", config=config_text(**CHAIN, start_block=10**9),
        chain=True),
    # -- history
    Row("--since 10**29", (*ACCOUNT, "--since", "99999999999999999999999999999"), 1, "--since", config=config_text()),
    Row("--since superscript two", (*ACCOUNT, "--since", "²"), 1, "expected a block number or a date",
        config=config_text()),
    Row("--account with a bad checksum", ("history", "--config", "{cfg}", "--account", BAD_CHECKSUM), 1,
        f"the checksummed form of these digits is {PROVIDER}", config=config_text()),
    # -- stress / calibrate / backtest: bounded counts (usage errors, before any work)
    Row("stress --seed -1", ("stress", "--config", "{cfg}", "--monte-carlo", "100", "--seed", "-1"), 2,
        "argument --seed: -1 is out of range", config=config_text()),
    Row("stress --monte-carlo 1e12", ("stress", "--config", "{cfg}", "--monte-carlo", "1e12"), 2,
        "argument --monte-carlo: expected an integer", config=config_text()),
    Row("stress --monte-carlo 10**12", ("stress", "--config", "{cfg}", "--monte-carlo", "1000000000000"), 2,
        "out of range: expected 10 to 200,000", config=config_text()),
    Row("stress --top -5", ("stress", "--config", "{cfg}", "--scenario", "2020-03-12", "--top", "-5"), 2,
        "argument --top", config=config_text()),
    Row("stress --target-hf nan", ("stress", "--config", "{cfg}", "--scenario", "2020-03-12", "--target-hf", "nan"),
        2, "argument --target-hf: expected a finite number", config=config_text()),
    Row("calibrate --paths 1e11", ("calibrate", "--config", "{cfg}", "--asset", "WETH", "--paths", "1e11"), 2,
        "argument --paths", config=config_text()),
    Row("calibrate --paths 0", ("calibrate", "--config", "{cfg}", "--asset", "WETH", "--paths", "0"), 2,
        "argument --paths: 0 is out of range", config=config_text()),
    Row("calibrate --delay-hours 1e12",
        ("calibrate", "--config", "{cfg}", "--asset", "WETH", "--delay-hours", "1e12"), 2,
        "argument --delay-hours: 1e12 is out of range", config=config_text()),
    Row("backtest --positions 10**12", ("backtest", "--quiet", "--positions", "1000000000000"), 2,
        "argument --positions"),
    Row("backtest --bootstrap 10**12", ("backtest", "--quiet", "--bootstrap", "1000000000000"), 2,
        "argument --bootstrap"),
    Row("backtest --window-days 0", ("backtest", "--quiet", "--window-days", "0"), 2, "argument --window-days"),
    Row("backtest --jobs 0", ("backtest", "--quiet", "--jobs", "0"), 2, "argument --jobs"),
    Row("backtest --prices a FIFO", ("backtest", "--quiet", "--prices", "{tmp}/fifo"), 1, "not a regular file"),
    Row("run --max-ticks 0", ("run", "--config", "{cfg}", "--max-ticks", "0"), 2, "argument --max-ticks",
        config=config_text()),
    # -- devnet / demo (refused before any node is started)
    Row("devnet price WETH inf", ("devnet", "price", "WETH", "inf"), 2, "argument usd: expected a finite number"),
    Row("devnet price WETH -1", ("devnet", "price", "WETH", "-1"), 2, "argument usd"),
    Row("devnet seed 1e14", ("devnet", "seed", "1e14"), 2, "devnet seed takes a count"),
    Row("devnet seed 10**14", ("devnet", "seed", "100000000000000"), 2, "expected 1 to 5,000"),
    Row("demo --substeps -1", ("demo", "--substeps", "-1"), 2, "argument --substeps"),
    Row("demo --positions 0", ("demo", "--positions", "0"), 2, "argument --positions"),
    Row("a missing argument", ("scan",), 2, "the following arguments are required: --config"),
]  # fmt: skip


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def chain() -> Iterator[tuple[Anvil, Deployment]]:
    """A bare Aave V3 devnet (no positions): enough for the rows that need a node."""
    with Anvil() as anvil:
        client = RpcClient([anvil.url], timeout=60, max_retries=0)
        deployment = deploy_aave(DevnetNode(client))
        client.close()
        yield anvil, deployment


def call(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's usage errors
        return int(exc.code or 0)


def the_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("liqmon"), lines[0]
    return lines[0]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_input_is_one_clean_line(row: Row, tmp_path: Path, capsys: Any, request: pytest.FixtureRequest) -> None:
    values = {"tmp": str(tmp_path), "closed": str(closed_port()), "port": str(closed_port()), "provider": PROVIDER}
    if row.chain:
        anvil, deployment = request.getfixturevalue("chain")
        values.update(port=str(anvil.port), provider=deployment.pool_addresses_provider)
    os.mkfifo(tmp_path / "fifo")
    if row.config is not None:
        text = row.config
        for key, value in values.items():
            text = text.replace("{" + key + "}", value)
        (tmp_path / "c.yaml").write_text(text)
    argv = [a.replace("{cfg}", str(tmp_path / "c.yaml")).replace("{tmp}", str(tmp_path)) for a in row.argv]
    started = time.monotonic()
    code = call(argv)
    captured = capsys.readouterr()
    line = the_line(captured.err)
    assert code == row.code, line
    assert row.needle in line
    for secret in row.absent:
        assert secret not in captured.err + captured.out
    assert time.monotonic() - started < 20, "an input error must not wait on anything"


def test_doctor_masks_credentials_typed_into_a_url(tmp_path: Path, capsys: Any) -> None:
    cfg = tmp_path / "c.yaml"
    url = f"https://alice:hunter22@127.0.0.1:{closed_port()}/v3?apikey=KEYKEYKEY&chain=1"
    cfg.write_text(config_text(url=url).replace("{tmp}", str(tmp_path)))
    assert call(["doctor", "--config", str(cfg)]) == 1
    out = capsys.readouterr()
    assert "<secret>@127.0.0.1" in out.out and "apikey=<secret>" in out.out
    for secret in ("hunter22", "KEYKEYKEY", "alice"):
        assert secret not in out.out + out.err


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """setup_logging changes the root handlers and some loggers' levels: put them back."""
    root = logging.getLogger()
    names = ("apscheduler", "apscheduler.executors", "urllib3")
    saved = (list(root.handlers), root.level, {n: logging.getLogger(n).level for n in names})
    yield
    handlers, level, levels = saved
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, value in levels.items():
        logging.getLogger(name).setLevel(value)


@pytest.mark.usefixtures("restored_logging")
def test_a_logged_exception_is_its_reason_and_where_never_a_traceback() -> None:
    stream = io.StringIO()
    setup_logging("json", lambda text: text.replace("hunter22", "<secret>"), stream=stream)
    log = logging.getLogger("monitor.test")
    try:
        {"k": 1}["http://u:hunter22@host"]
    except KeyError:
        log.exception("job failed")
        logging.getLogger("apscheduler.executors.default").error("Job raised", exc_info=True)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines  # apscheduler's own traceback line is silenced: the daemon says "job failed"
    record = json.loads(lines[0])
    assert "Traceback" not in lines[0] and "hunter22" not in lines[0]
    assert record["error"] == "KeyError: 'http://u:<secret>@host'"
    assert record["where"].startswith("test_cli_inputs.py:") and record["where"].endswith(
        "in test_a_logged_exception_is_its_reason_and_where_never_a_traceback"
    )


def _liqmon(*args: str, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "monitor.cli", *args], text=True, stderr=subprocess.PIPE, **kw)


def test_scan_json_into_a_closed_pipe_exits_quietly(chain: tuple[Anvil, Deployment], tmp_path: Path) -> None:
    anvil, deployment = chain
    cfg = tmp_path / "c.yaml"
    cfg.write_text(config_text(**CHAIN).format(port=anvil.port, provider=deployment.pool_addresses_provider,
                                               tmp=tmp_path))  # fmt: skip
    proc = _liqmon("scan", "--config", str(cfg), "--json", stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()  # `| head` that has read what it wanted
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert err.strip() == ""
    assert proc.returncode == 141


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_sigterm_to_demo_stops_its_anvil() -> None:
    proc = _liqmon("demo", "--positions", "2", stdout=subprocess.DEVNULL)
    assert proc.stderr is not None
    first = proc.stderr.readline()  # "devnet: anvil on http://127.0.0.1:PORT; deploying ..."
    assert "anvil on http://127.0.0.1:" in first, first
    port = int(first.split("127.0.0.1:")[1].split(";")[0])
    assert _accepts(port)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and "stopped by SIGTERM" in err
    deadline = time.monotonic() + 10
    while _accepts(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _accepts(port), f"the demo's anvil on port {port} outlived the demo"
