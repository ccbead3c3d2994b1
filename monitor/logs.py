"""Structured logs: one JSON object per line (or plain text), secrets redacted."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        tail = " ".join(f"{k}={v}" for k, v in extra.items())
        return f"{time.strftime('%H:%M:%S', time.gmtime(record.created))} {record.levelname.lower():7} " \
               f"{record.getMessage()}{' ' + tail if tail else ''}"  # fmt: skip


def where(exc: BaseException) -> str:
    """A short code location of ``exc``: the innermost frame of liqmon's own code (else the
    innermost frame), as ``monitor/scan.py:123 in scan_all``."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    own = [f for f in frames if f"{os.sep}monitor{os.sep}" in f.filename]
    frame = (own or frames)[-1]
    parts = Path(frame.filename).parts
    short = "/".join(parts[parts.index("monitor") :]) if "monitor" in parts else Path(frame.filename).name
    return f"{short}:{frame.lineno} in {frame.name}"


def error_fields(exc: BaseException, redact: Callable[[str], str] = str) -> dict[str, str]:
    """What a log line says of an exception: its type and message (redacted) and where, never
    the traceback (which holds local values outside the secret filter)."""
    message = " ".join(str(exc).split())
    return {"error": redact(f"{type(exc).__name__}: {message}" if message else type(exc).__name__),
            "where": where(exc)}  # fmt: skip


class RedactFilter(logging.Filter):
    """Replaces secrets in the formatted message and in every extra field; an attached
    exception becomes ``error`` (type and message, redacted) and ``where`` (a short code
    location): no traceback reaches the log."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info:
            exc = record.exc_info[1]
            if exc is not None:
                for key, value in error_fields(exc, self.redact).items():
                    if key not in vars(record):
                        setattr(record, key, value)
            record.exc_info = None
            record.exc_text = None
        record.stack_info = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


def setup_logging(
    fmt: str, redact: Callable[[str], str], stream: TextIO | None = None, level: int = logging.INFO
) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactFilter(redact))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("apscheduler.executors").setLevel(logging.CRITICAL)  # a failed job: the daemon's "job failed"
    logging.getLogger("urllib3").setLevel(logging.WARNING)
