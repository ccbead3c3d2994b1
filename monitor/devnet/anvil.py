"""Start and stop an anvil node (npm ``@foundry-rs/anvil``) on a free loopback port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from monitor.chain.rpc import RpcClient
from monitor.errors import DevnetError, RpcError
from monitor.paths import cache_dir, node_modules

DEVNET_CHAIN_ID = 31337
# anvil writes the states it drops from memory under a cache directory (default
# ~/.foundry/anvil/tmp, never cleaned after a kill); each node gets its own directory, removed
# when it stops, and at most this many states on disk (a long devnet run filled 80 GB without it)
MAX_PERSISTED_STATES = 64


def anvil_binary() -> Path:
    override = os.environ.get("LIQMON_ANVIL")
    path = Path(override) if override else (node_modules() / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil")
    if not path.is_file():
        raise DevnetError(
            f"anvil not found at {path}: run `bash scripts/setup.sh` (or `npm install`) in the project root "
            "(it installs @foundry-rs/anvil), or set LIQMON_ANVIL"
        )
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Poll ``eth_chainId`` until anvil answers; DevnetError if it exits or stays silent."""
    client = RpcClient([url], timeout=2.0, max_retries=0)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise DevnetError(
                    f"anvil exited at start with code {process.returncode}; is port "
                    f"{url.rsplit(':', 1)[-1]} free? (log: {cache_dir() / 'anvil.log'})"
                )
            try:
                client.chain_id()
                return
            except RpcError:
                time.sleep(0.05)
    finally:
        client.close()
    raise DevnetError(f"anvil did not answer on {url} within {timeout:g} s")


class Anvil:
    """An anvil process; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        *,
        port: int | None = None,
        load_state: Path | None = None,
        block_time: float | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.port = port or free_port()
        self.load_state = load_state
        self.block_time = block_time
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        self.state_cache: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            str(anvil_binary()),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--chain-id", str(DEVNET_CHAIN_ID),
            "--silent",
            "--gas-limit", "1000000000",
            "--code-size-limit", "100000",
            "--accounts", "2",
            "--balance", "100000000",
            "--max-persisted-states", str(MAX_PERSISTED_STATES),
        ]  # fmt: skip
        if self.state_cache is not None:
            cmd += ["--cache-path", str(self.state_cache)]
        if self.load_state is not None:
            cmd += ["--load-state", str(self.load_state)]
        if self.block_time is not None:
            cmd += ["--block-time", str(self.block_time)]
        return cmd + list(self.extra_args)

    def start(self, timeout: float = 30.0) -> Anvil:
        self.state_cache = Path(tempfile.mkdtemp(prefix="liqmon-anvil-states-"))
        try:
            self.process = subprocess.Popen(
                self.command(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            self._drop_state_cache()
            raise DevnetError(f"cannot start anvil: {exc}") from exc
        try:
            wait_ready(self.url, self.process, timeout)
        except DevnetError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        proc, self.process = self.process, None
        try:
            if proc is None or proc.poll() is not None:
                return
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        finally:
            self._drop_state_cache()

    def _drop_state_cache(self) -> None:
        cache, self.state_cache = self.state_cache, None
        if cache is not None:
            shutil.rmtree(cache, ignore_errors=True)

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
