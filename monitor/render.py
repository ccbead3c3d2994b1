"""Readable tables and machine formats (CSV, JSON) for the CLI."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], align: str = "") -> str:
    """A fixed-width text table; ``align`` is one char per column ('<' or '>')."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    aligns = (align or "<" * len(headers)).ljust(len(headers), "<")
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(f"{v:{aligns[i]}{widths[i]}}" for i, v in enumerate(row)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in row.items()})
    return out.getvalue()


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def short_hf(text: str) -> str:
    """'1.234567890000000000' -> '1.2346'; 'inf' stays."""
    if text == "inf":
        return "inf"
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac[:4]}"
