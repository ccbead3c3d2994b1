"""`liqmon scan` shows discovery progress on a terminal (issue 16 part 4): run with stderr on a
pseudo-TTY it draws a bar with blocks done / total and the borrowers found; with stderr a pipe it
draws none (a log or a CI console gets no carriage-return noise)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
import urllib.request
from pathlib import Path

import yaml

from tests.support import Devnet


def _config(devnet: Devnet, tmp_path: Path) -> Path:
    path = devnet.write_config(tmp_path / "c.yaml", tmp_path / "p.db")
    data = yaml.safe_load(path.read_text())
    data["chains"]["devnet"]["max_log_range"] = 10  # many chunks: the bar moves
    data["markets"][0]["start_block"] = max(0, _head(devnet.url) - 400)  # 40 chunks: a few seconds
    path.write_text(yaml.safe_dump(data))
    return path


def _head(url: str) -> int:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(json.loads(response.read())["result"], 16)


def _liqmon() -> str:
    return str(Path(sys.executable).with_name("liqmon"))


def test_scan_draws_a_progress_bar_on_a_terminal(devnet: Devnet, tmp_path: Path) -> None:
    config = _config(devnet, tmp_path)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    out_file = (tmp_path / "stdout.txt").open("wb")  # a file, not a pipe nobody reads while the scan prints
    proc = subprocess.Popen([_liqmon(), "scan", "--config", str(config)], stdout=out_file, stderr=slave)
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        ready = select.select([master], [], [], 0.5)[0]
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=60)
    out_file.close()
    out = (tmp_path / "stdout.txt").read_bytes()
    os.close(master)
    text = screen.decode("utf-8", "replace")
    assert proc.returncode == 0, text[-2000:]
    assert "borrowers:" in text and "100%" in text and "blocks" in text, text[-1500:]
    assert "\r" in text, "a bar redrawn in place"
    assert b"HF" in out or b"positions" in out or out.strip(), "the scan still prints its table on stdout"


def test_scan_without_a_terminal_draws_no_bar(devnet: Devnet, tmp_path: Path) -> None:
    config = _config(devnet, tmp_path)
    result = subprocess.run([_liqmon(), "scan", "--config", str(config)], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "%|" not in result.stderr and "\r" not in result.stderr
