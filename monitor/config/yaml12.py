"""Reading a config file: a regular file of bounded size, parsed as YAML with YAML 1.2
numbers (PyYAML implements YAML 1.1), duplicate keys refused, nesting bounded."""

from __future__ import annotations

import math
import re
import stat
from collections.abc import Hashable
from pathlib import Path
from typing import Any, Final

import yaml

from monitor.config.validate import _one_line
from monitor.errors import ConfigError

_INT_TAG: Final = "tag:yaml.org,2002:int"
_FLOAT_TAG: Final = "tag:yaml.org,2002:float"
# YAML 1.2 core-schema numbers (PyYAML implements YAML 1.1): decimal integers (a leading
# zero is not octal: ``chain_id: 075131`` is 75131), ``0o`` octal, floats with or without a
# dot (``1e300`` is a number, not a string), ``.inf`` / ``.nan``; no sexagesimal ``1:30``.
# ``0x...`` stays a string, so that unquoted addresses are never huge integers.
_INT_12_RE: Final = re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7]+)$")
_FLOAT_12_RE: Final = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_MAX_CONFIG_BYTES: Final = 4 * 1024 * 1024
_MAX_YAML_DEPTH: Final = 64


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 numbers that keeps ``0x...`` scalars as strings, rejects
    duplicate keys and nesting deeper than :data:`_MAX_YAML_DEPTH`."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > _MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(None, None, f"nesting deeper than {_MAX_YAML_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            ident = (key_node.tag, key_node.value)
            if ident in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                )
            seen.add(ident)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node)).replace("_", "")
        return int(text[2:], 8) if text.startswith("0o") else int(text, 10)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        text = str(self.construct_scalar(node)).replace("_", "").lower()
        if text.endswith(".inf"):
            return -math.inf if text.startswith("-") else math.inf
        return math.nan if text == ".nan" else float(text)


def _yaml12_resolvers() -> dict[Any, list[tuple[str, re.Pattern[str]]]]:
    out: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items():
        kept = [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
        if kept:
            out[first] = kept
    for first in "-+0123456789.":
        out.setdefault(first, [])
        out[first] = [(_INT_TAG, _INT_12_RE), (_FLOAT_TAG, _FLOAT_12_RE), *out[first]]
    return out


_StrictLoader.yaml_implicit_resolvers = _yaml12_resolvers()
_StrictLoader.add_constructor(_INT_TAG, _StrictLoader.construct_yaml_int)
_StrictLoader.add_constructor(_FLOAT_TAG, _StrictLoader.construct_yaml_float)


def _yaml_error_message(label: str, exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        reason = exc.problem or exc.context or "syntax error"
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return _one_line(f"{label}: {where}invalid YAML: {reason}")
    if isinstance(exc, yaml.reader.ReaderError):
        if isinstance(exc.character, bytes):
            problem = f"cannot decode as {exc.encoding} ({exc.reason})"
        else:
            problem = f"invalid YAML: {exc.reason}"
        return _one_line(f"{label}: byte {exc.position}: {problem}")
    return _one_line(f"{label}: invalid YAML: {exc}")


def _read_regular_file(file: Path, label: str) -> bytes:
    """The bytes of a regular file of at most :data:`_MAX_CONFIG_BYTES`: a FIFO, a device
    (``/dev/zero``) or a socket is refused before it is opened, so reading never hangs."""
    if "\x00" in str(file):
        raise ConfigError(f"{label!r}: the config path contains a NUL byte")
    mode = file.stat().st_mode  # FileNotFoundError / PermissionError: the caller's messages
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(str(file))
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{label}: not a regular file (a FIFO, device or socket); give a YAML file")
    with file.open("rb") as fh:
        raw = fh.read(_MAX_CONFIG_BYTES + 1)
    if len(raw) > _MAX_CONFIG_BYTES:
        raise ConfigError(f"{label}: larger than {_MAX_CONFIG_BYTES // (1024 * 1024)} MiB; is it a config file?")
    return raw
