"""The validator of the config sections: typed, bounded scalars and one-line errors of the
shape ``"{file}: {key path}: {problem}"`` (:class:`~monitor.errors.ConfigError`). Every
section parser (:mod:`monitor.config.core`, :mod:`monitor.config.alerts`) reports through it."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, NoReturn

from eth_utils.address import is_checksum_address, to_checksum_address

from monitor.errors import ConfigError

SECRET_MASK: Final = "<secret>"

_ADDRESS_RE: Final = re.compile(r"0x[0-9a-fA-F]{40}")

_PLAIN_KEY_RE: Final = re.compile(r"[A-Za-z0-9_-]+")

_ZERO_ADDRESS: Final = "0x" + "0" * 40

_MAX_INTEGER: Final = 2**63 - 1  # what SQLite stores

_MAX_NUMBER: Final = 1e12  # no positive setting needs more (seconds, USD, bps)


class Validator:
    def __init__(self, label: str, env: Mapping[str, str]) -> None:
        self.label = label
        self.env = env

    # -- reporting

    def fail_top(self, problem: str) -> NoReturn:
        raise ConfigError(_one_line(f"{self.label}: {problem}"))

    def fail(self, path: str, problem: str) -> NoReturn:
        raise ConfigError(_one_line(f"{self.label}: {path}: {problem}"))

    def check_keys(self, mapping: Mapping[Any, Any], allowed: Sequence[str], path: str) -> None:
        for key in mapping:
            if not isinstance(key, str) or key not in allowed:
                hint = _did_you_mean(key, allowed) if isinstance(key, str) else None
                suffix = f" (did you mean {hint!r}?)" if hint else ""
                self.fail(_join(path, key), f"unknown key{suffix}")

    def mapping(self, value: object, path: str, what: str) -> Mapping[Any, Any]:
        if not isinstance(value, Mapping):
            self.fail(path, f"expected {what}, got {_describe(value)}")
        return value

    def sequence(self, value: object, path: str, what: str) -> Sequence[Any]:
        if not isinstance(value, list | tuple):
            self.fail(path, f"expected {what}, got {_describe(value)}")
        return value

    def required(self, mapping: Mapping[Any, Any], keys: Iterable[str], path: str) -> None:
        for key in keys:
            if key not in mapping:
                self.fail(_join(path, key), "required key is missing")

    # -- scalars

    def integer(self, value: object, path: str, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"expected an integer, got {_describe(value)}")
        if value < minimum:
            self.fail(path, f"expected an integer >= {minimum}, got {value}")
        if value > _MAX_INTEGER:
            self.fail(path, f"expected an integer <= {_MAX_INTEGER} (2**63 - 1), got {_show(str(value), 40)}")
        return value

    def bounded_integer(self, value: object, path: str, minimum: int, maximum: int) -> int:
        number = self.integer(value, path, minimum)
        if number > maximum:
            self.fail(path, f"expected an integer between {minimum} and {maximum}, got {number}")
        return number

    def bounded_number(self, value: object, path: str, minimum: float, maximum: float) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, f"expected a number, got {_describe(value)}")
        if not math.isfinite(value) or not minimum <= value <= maximum:
            self.fail(path, f"expected a number between {minimum:g} and {maximum:g}, got {_describe(value)}")
        return float(value)

    def positive_number(self, value: object, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, f"expected a number, got {_describe(value)}")
        if not math.isfinite(value) or value <= 0:
            self.fail(path, f"expected a finite number > 0, got {_describe(value)}")
        if value > _MAX_NUMBER:
            self.fail(path, f"expected a number > 0 and at most {_MAX_NUMBER:g}, got {_describe(value)}")
        return float(value)

    def string(self, value: object, path: str) -> str:
        if not isinstance(value, str):
            self.fail(path, f"expected a string, got {_describe(value)}")
        return value

    def name(self, value: object, path: str, pattern: re.Pattern[str], chars: str) -> str:
        text = self.string(value, path)
        if not pattern.fullmatch(text):
            self.fail(
                path,
                f"invalid name {_show(text)} (expected lowercase letters, digits{chars}, "
                "starting with a letter or digit)",
            )
        return text

    def address(self, value: object, path: str) -> str:
        if not isinstance(value, str):
            self.fail(path, f"expected an address string, got {_describe(value)}")
        if not _ADDRESS_RE.fullmatch(value):
            self.fail(path, f"{_show(value)} is not an address (expected 0x followed by 40 hex digits)")
        digits = value[2:]
        if digits not in (digits.lower(), digits.upper()) and not is_checksum_address(value):
            self.fail(
                path,
                f"{_show(value)} has a bad checksum (mixed-case addresses must be EIP-55 "
                "checksummed: check for a typo, or write it all-lowercase)",
            )
        if value.lower() == _ZERO_ADDRESS:
            self.fail(path, "the zero address is not allowed here")
        return str(to_checksum_address(value))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _show(value: str, limit: int = 80) -> str:
    """``repr`` of a user string, shortened so messages stay readable."""
    if len(value) > limit:
        value = value[: limit - 3] + "..."
    return repr(value)


def _describe(value: object) -> str:
    """How a value of the wrong type is named in an error."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _show(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a value of type {type(value).__name__}"


def _join(path: str, key: object) -> str:
    if isinstance(key, str) and _PLAIN_KEY_RE.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]" if path else f"[{key!r}]"


def _did_you_mean(word: str, options: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return matches[0] if matches else None
