"""Progress of long work over a block range (borrower discovery, catching up): a bar with blocks
done / total, rate and ETA on a terminal (tqdm), and an info line in the log every
``log_every_s`` otherwise, so ``liqmon run`` under systemd says how far discovery has come."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any

log = logging.getLogger("liqmon")


def _is_tty(stream: IO[str] | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream
        return False


def eta_text(seconds: float | None) -> str:
    """``1 h 05 min``, ``4 min 10 s``, ``12 s``; ``?`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


class BlockProgress:
    """Progress over blocks ``first..last`` (inclusive). ``advance(to_block, found)`` after each
    chunk; a context manager (the bar is closed, a last log line written)."""

    def __init__(
        self,
        label: str,
        first: int,
        last: int,
        *,
        stream: IO[str] | None = None,
        log_every_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        what: str = "borrowers",
    ) -> None:
        self.label = label
        self.first = first
        self.total = max(0, last - first + 1)
        self.done = 0
        self.found = 0
        self.what = what
        self.clock = clock
        self.started = clock()
        self.log_every_s = log_every_s
        self._last_log = self.started
        out = sys.stderr if stream is None else stream
        self._bar: Any = None
        if _is_tty(out) and self.total:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=label, unit=" blocks", unit_scale=True, file=out, leave=True,
                             dynamic_ncols=True, mininterval=0.2, smoothing=0.1)  # fmt: skip

    # -- figures ----------------------------------------------------------------------------

    @property
    def fraction(self) -> float:
        return 1.0 if not self.total else self.done / self.total

    def rate(self) -> float | None:
        """Blocks a second so far."""
        elapsed = self.clock() - self.started
        return self.done / elapsed if elapsed > 0 and self.done else None

    def eta_s(self) -> float | None:
        rate = self.rate()
        return (self.total - self.done) / rate if rate else None

    def summary(self) -> str:
        """``aave: borrowers 41.3 % (13,160 / 31,865 blocks), 2,104 blocks/s, ETA 9 s, 57 borrowers``."""
        rate = self.rate()
        return (
            f"{self.label} {self.fraction:.1%} ({self.done:,} / {self.total:,} blocks), "
            f"{'?' if rate is None else f'{rate:,.0f}'} blocks/s, ETA {eta_text(self.eta_s())}, "
            f"{self.found:,} {self.what}"
        )

    # -- updates ----------------------------------------------------------------------------

    def advance(self, to_block: int, found: int = 0) -> None:
        """Blocks up to ``to_block`` are done; ``found`` more items in them."""
        done = min(self.total, max(self.done, to_block - self.first + 1))
        step, self.done = done - self.done, done
        self.found += found
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self.found:,} {self.what}", refresh=False)
            self._bar.update(step)
        now = self.clock()
        if now - self._last_log >= self.log_every_s:
            self._last_log = now
            self._log("progress")

    def _log(self, event: str) -> None:
        log.info(
            event,
            extra={"task": self.label, "blocks_done": self.done, "blocks_total": self.total,
                   "percent": round(100 * self.fraction, 1), "rate_blocks_s": round(self.rate() or 0.0, 1),
                   "eta_s": None if self.eta_s() is None else round(self.eta_s() or 0.0), self.what: self.found},
        )  # fmt: skip

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.total and self.clock() - self.started >= self.log_every_s:
            self._log("progress done")

    def __enter__(self) -> BlockProgress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
