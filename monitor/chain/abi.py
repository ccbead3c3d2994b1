"""Tiny, fast ABI function specs: ``fn("balanceOf(address)", "uint256")``.

Readers declare the few functions they call as signatures instead of shipping JSON ABIs;
encoding and decoding go through eth-abi, with a fast path for single-word results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak

from monitor.errors import DecodeError


def split_types(types: str) -> tuple[str, ...]:
    """Split ``"address,(uint256,bool)[],bytes"`` on top-level commas."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, char in enumerate(types):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(types[start:i].strip())
            start = i + 1
    tail = types[start:].strip()
    if tail:
        parts.append(tail)
    return tuple(parts)


_WORD_TYPES = frozenset({"uint256", "uint128", "uint64", "uint40", "uint32", "uint16", "uint8"})


@dataclass(frozen=True, slots=True)
class Fn:
    """One contract function: its selector, input types and output types."""

    signature: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    selector: bytes

    @property
    def name(self) -> str:
        return self.signature.split("(", 1)[0]

    def encode(self, *args: Any) -> bytes:
        if len(args) != len(self.inputs):
            raise TypeError(f"{self.signature} takes {len(self.inputs)} arguments, got {len(args)}")
        if self.inputs == ("address",) and isinstance(args[0], str) and len(args[0]) == 42:
            return self.selector + b"\x00" * 12 + bytes.fromhex(args[0][2:])  # the hot path: balanceOf(user)
        return self.selector + abi_encode(list(self.inputs), list(args))

    def decode(self, data: bytes) -> tuple[Any, ...]:
        """Decode the return data; raises DecodeError when it does not fit the outputs."""
        if len(data) % 32:
            raise DecodeError(f"{self.signature}: {len(data)} bytes of return data is not a whole number of words")
        if self.outputs and all(t in _WORD_TYPES for t in self.outputs):
            return self._decode_words(data)
        try:
            return tuple(abi_decode(list(self.outputs), data, strict=False))
        except Exception as exc:  # eth-abi raises several unrelated types
            raise DecodeError(f"{self.signature}: cannot decode {len(data)} bytes: {exc}") from exc

    def _decode_words(self, data: bytes) -> tuple[int, ...]:
        """Unsigned integer outputs, one 32-byte word each (no eth-abi overhead)."""
        if len(data) < 32 * len(self.outputs):
            raise DecodeError(f"{self.signature}: expected {32 * len(self.outputs)} bytes, got {len(data)}")
        values = []
        for i, kind in enumerate(self.outputs):
            value = int.from_bytes(data[32 * i : 32 * i + 32], "big")
            if value >> int(kind[4:]):
                raise DecodeError(f"{self.signature}: {value} does not fit {kind}")
            values.append(value)
        return tuple(values)

    def decode_one(self, data: bytes) -> Any:
        return self.decode(data)[0]


def fn(signature: str, returns: str = "") -> Fn:
    """Build an :class:`Fn` from ``"name(type,...)"`` and a comma-separated return list."""
    if "(" not in signature or not signature.endswith(")"):
        raise ValueError(f"bad function signature {signature!r}")
    inputs = split_types(signature[signature.index("(") + 1 : -1])
    outputs = split_types(returns)
    return Fn(signature, inputs, outputs, keccak(text=signature)[:4])


def event_topic(signature: str) -> str:
    """The topic0 of an event signature, as 0x-hex."""
    return "0x" + keccak(text=signature).hex()


def decode_words(types: Sequence[str], data: bytes) -> tuple[Any, ...]:
    try:
        return tuple(abi_decode(list(types), data, strict=False))
    except Exception as exc:
        raise DecodeError(f"cannot decode {len(data)} bytes as ({','.join(types)}): {exc}") from exc
