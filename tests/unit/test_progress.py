"""Progress of long work (issue 16 part 4): a bar with blocks done / total, rate and ETA on a
terminal (checked on a pseudo-TTY), info lines in the log otherwise."""

from __future__ import annotations

import fcntl
import io
import logging
import os
import pty
import select
import struct
import termios

import pytest

from monitor.progress import BlockProgress, eta_text


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _read_all(fd: int) -> str:
    chunks = []
    while select.select([fd], [], [], 0.2)[0]:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


def test_a_bar_on_a_pseudo_tty_shows_blocks_rate_eta_and_items() -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))  # a 160-column terminal
    stream = os.fdopen(slave, "w", buffering=1)
    try:
        clock = Clock()
        with BlockProgress("aave: borrowers", 100, 31_964, stream=stream, clock=clock) as bar:
            for end in [*range(2_099, 31_964, 2_000), 31_964]:
                clock.t += 1.0
                bar.advance(end, found=3)
        screen = _read_all(master)
    finally:
        stream.close()
        os.close(master)
    assert "aave: borrowers" in screen
    assert "100%" in screen and "31.9k/31.9k" in screen, screen[-300:]
    assert "blocks/s" in screen and "48 borrowers" in screen
    assert "<" in screen, "tqdm's elapsed<remaining (the ETA)"


def test_not_a_tty_writes_nothing_to_the_stream_and_logs_every_interval(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    clock = Clock()
    caplog.set_level(logging.INFO, logger="liqmon")
    with BlockProgress("aave: borrowers", 0, 9_999, stream=stream, clock=clock, log_every_s=30) as bar:
        for i in range(10):
            clock.t += 10.0
            bar.advance(i * 1000 + 999, found=1)
            if i == 3:
                assert "40.0%" in bar.summary() and "ETA 1 min 00 s" in bar.summary(), bar.summary()
    assert stream.getvalue() == ""
    records = [r for r in caplog.records if r.getMessage().startswith("progress")]
    assert len(records) == 4, "one line every 30 s of 100 s, and one at the end"
    last = records[-1]
    assert last.getMessage() == "progress done"
    assert (last.blocks_done, last.blocks_total, last.percent, last.borrowers) == (10_000, 10_000, 100.0, 10)  # type: ignore[attr-defined]


def test_eta_text_reads_as_a_person_would() -> None:
    assert eta_text(None) == "?"
    assert eta_text(12.4) == "12 s"
    assert eta_text(250) == "4 min 10 s"
    assert eta_text(3900) == "1 h 05 min"
